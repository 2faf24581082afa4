"""Boxes: area, IoU, non-maximum suppression and the box coding of box regression.

Girshick et al. 2014, "Rich feature hierarchies for accurate object detection and semantic segmentation"
(R-CNN): each class's detections are pruned by greedy non-maximum suppression (Sec. 2.2), and a linear
regressor moves each proposal P towards its ground-truth box G through the coding of Appendix C, Eq. 6-9:

    t_x = (G_x - P_x) / P_w      t_y = (G_y - P_y) / P_h      (centres)
    t_w = log(G_w / P_w)         t_h = log(G_h / P_h)         (sizes)

Boxes are xyxy: (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1, in pixels. Every kernel here equals its
torchvision.ops counterpart (``box_area``, ``box_iou``, ``nms``, ``batched_nms``) and ``BoxCoder(weights=(1, 1,
1, 1))``; tests/test_detection_kernels.py and tests/test_fuzz.py check it. Like torchvision, areas and IoUs of
float16 / bfloat16 boxes are computed in float32 (a 300 x 300 px area overflows float16).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from course_lib.utils import (
    at_least_float32 as _upcast,  # float16/bfloat16 -> float32, else unchanged
)


def _check_boxes(boxes: Tensor, name: str = "boxes") -> None:
    if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != 4 or not boxes.is_floating_point():
        raise ValueError(f"expected {name} of shape (N, 4) float, "
                         f"got {getattr(boxes, 'shape', type(boxes).__name__)} {getattr(boxes, 'dtype', '')}")


def _check_vector(x: Tensor, n: int, name: str, floating: bool) -> None:
    kind = "float" if floating else "int"
    if (not isinstance(x, Tensor) or tuple(x.shape) != (n,)
            or x.is_floating_point() != floating or x.dtype == torch.bool):
        raise ValueError(f"expected {name} of shape ({n},) {kind}, "
                         f"got {getattr(x, 'shape', type(x).__name__)} {getattr(x, 'dtype', '')}")


def box_area(boxes: Tensor) -> Tensor:
    """boxes (N, 4) xyxy -> (N,) areas (x1 - x0) * (y1 - y0), not clamped (torchvision's ``box_area``)."""
    _check_boxes(boxes)
    boxes = _upcast(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of every box of a (N, 4) with every box of b (M, 4), xyxy -> (N, M).

    IoU = |a n b| / (|a| + |b| - |a n b|). Two zero-area boxes have 0 / 0 = NaN, as in torchvision's
    ``box_iou`` (no epsilon is added); a zero-area box against a box with area > 0 has IoU 0.
    """
    _check_boxes(a, "a")
    _check_boxes(b, "b")
    a, b = _upcast(a), _upcast(b)
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])          # (N, M, 2)
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])      # (N, M, 2)
    wh = (bottom_right - top_left).clamp(min=0)                        # (N, M, 2) overlap width, height
    inter = wh[..., 0] * wh[..., 1]                                    # (N, M)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter        # (N, M)
    return inter / union


def paired_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of each box of a (..., 4) with the box at the same place in b (..., 4), xyxy -> (...): the course's one
    pairwise IoU (YOLO's responsible predictor, notebook 02's box regressor and its loss). The diagonal of
    ``box_iou``: two zero-area boxes give 0 / 0 = NaN, as there. The shapes may broadcast (one ground truth
    against B predictors); float16 / bfloat16 are computed in float32, as there."""
    try:
        ok = a.is_floating_point() and b.is_floating_point() and a.shape[-1:] == b.shape[-1:] == (4,)
        torch.broadcast_shapes(a.shape, b.shape)
    except (AttributeError, RuntimeError):
        ok = False
    if not ok:
        raise ValueError(f"expected boxes a and b of broadcastable shapes (..., 4) float, "
                         f"got {tuple(getattr(a, 'shape', ()))} and {tuple(getattr(b, 'shape', ()))}")
    a, b = _upcast(a), _upcast(b)
    wh = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def _greedy_suppression(iou: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Keep the best-scoring box, drop every box whose IoU with it is > iou_threshold, repeat.
    iou (N, N), scores (N,) -> kept indices (K,) int64 by decreasing score (equal scores: lower index first)."""
    order = scores.argsort(descending=True, stable=True)               # (N,)
    keep = []
    while order.numel() > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        # compared in float64, as torchvision does: an IoU of 1/3 in float32 is above a threshold of 1/3
        order = rest[~(iou[best, rest].double() > iou_threshold)]      # NaN IoU (two empty boxes) suppresses nothing
    return torch.stack(keep) if keep else torch.empty(0, dtype=torch.int64, device=scores.device)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression (R-CNN Sec. 2.2): boxes (N, 4) xyxy, scores (N,) -> kept indices (K,)
    int64, sorted by decreasing score. A box is dropped when its IoU with a kept, higher-scoring box is
    strictly greater than ``iou_threshold``.

    Ties in score are taken in index order (lower index first), as torchvision's CPU kernel does (it sorts
    the scores with a stable descending sort).
    """
    _check_boxes(boxes)
    _check_vector(scores, len(boxes), "scores", floating=True)
    return _greedy_suppression(box_iou(boxes, boxes), scores, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """``nms`` within each label: boxes (N, 4) xyxy, scores (N,), labels (N,) int -> kept indices (K,) int64
    by decreasing score. Boxes with different labels never suppress each other: their IoU is set to 0."""
    _check_boxes(boxes)
    _check_vector(scores, len(boxes), "scores", floating=True)
    _check_vector(labels, len(boxes), "labels", floating=False)
    same_label = labels[:, None] == labels[None, :]                    # (N, N)
    iou = torch.where(same_label, box_iou(boxes, boxes), torch.zeros((), dtype=boxes.dtype))
    return _greedy_suppression(iou, scores, iou_threshold)


def _centres_and_sizes(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """boxes (N, 4) xyxy -> centre x, centre y, width, height, each (N,)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h, w, h


def encode(proposals: Tensor, gt: Tensor) -> Tensor:
    """R-CNN Appendix C, Eq. 6-9 inverted: the regression targets that move each proposal P (N, 4) onto its
    ground truth G (N, 4), both xyxy -> deltas (N, 4) = (t_x, t_y, t_w, t_h).

    t_x = (G_x - P_x) / P_w, t_y = (G_y - P_y) / P_h, t_w = log(G_w / P_w), t_h = log(G_h / P_h)
    with (x, y) the box centre. Zero-width proposals give inf / NaN, as in torchvision.
    """
    _check_boxes(proposals, "proposals")
    _check_boxes(gt, "gt")
    if gt.shape != proposals.shape:
        raise ValueError(f"expected gt of shape ({len(proposals)}, 4) float like proposals, got {tuple(gt.shape)}")
    px, py, pw, ph = _centres_and_sizes(proposals)
    gx, gy, gw, gh = _centres_and_sizes(gt)
    return torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=1)


def decode(proposals: Tensor, deltas: Tensor, max_log_scale: float = math.log(1000.0 / 16)) -> Tensor:
    """R-CNN Appendix C, Eq. 1-4: apply deltas (N, 4) = (d_x, d_y, d_w, d_h) to proposals P (N, 4) xyxy
    -> boxes (N, 4) xyxy, with

    G_x = P_w d_x + P_x,  G_y = P_h d_y + P_y,  G_w = P_w exp(d_w),  G_h = P_h exp(d_h).

    d_w and d_h are first clamped to at most ``max_log_scale`` (a box grows at most 1000/16 = 62.5 times),
    the guard against exp overflow that torchvision's BoxCoder uses; below it, decode(P, encode(P, G)) = G.
    """
    _check_boxes(proposals, "proposals")
    _check_boxes(deltas, "deltas")
    if deltas.shape != proposals.shape:
        raise ValueError(f"expected deltas of shape ({len(proposals)}, 4) float like proposals, "
                         f"got {tuple(deltas.shape)}")
    proposals = proposals.to(deltas.dtype)
    px, py, pw, ph = _centres_and_sizes(proposals)
    dx, dy, dw, dh = deltas.unbind(dim=1)                              # (N,) each
    gx, gy = dx * pw + px, dy * ph + py                                # (N,) centres
    gw, gh = torch.exp(dw.clamp(max=max_log_scale)) * pw, torch.exp(dh.clamp(max=max_log_scale)) * ph
    return torch.stack([gx - 0.5 * gw, gy - 0.5 * gh, gx + 0.5 * gw, gy + 0.5 * gh], dim=1)
