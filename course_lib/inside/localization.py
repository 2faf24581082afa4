"""Where is the object? Boxes from saliency maps, the pointing game, and a box regressor for comparison.

Simonyan, Vedaldi & Zisserman 2013 (Sec. 3.2) localise objects with a classifier that never saw a box:
the saliency map of the predicted class is thresholded and the bounding box of the largest connected
component is taken (the paper seeds a GraphCut segmentation with the thresholded pixels; here the
threshold alone). The *pointing game* (Zhang et al. 2016, "Top-down Neural Attention by Excitation
Backprop") asks less: does the map's maximum fall inside the object's box?

For comparison, ``BoxRegressor`` is trained *with* boxes: a small CNN that maps a 64x64 Fashion scene with
one item to that item's box, with an L1 loss on the coordinates plus a (1 - IoU) loss.
Boxes are xyxy in pixels, half-open on the pixel grid: pixel (row i, col j) lies in (x0, y0, x1, y1) when
x0 <= j + 0.5 <= x1 and y0 <= i + 0.5 <= y1 (the convention of ``course_lib.data``'s tight boxes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.detection.boxes import paired_iou


def connected_components(mask: Tensor) -> tuple[Tensor, int]:
    """4-connected components of a bool mask (H, W), by flood fill.

    Returns labels (H, W) int64 -- 0 for background, 1..n numbered in raster order of each component's
    first pixel -- and n.
    """
    if not isinstance(mask, Tensor) or mask.ndim != 2:
        raise ValueError(f"expected mask of shape (H, W), got {getattr(mask, 'shape', type(mask).__name__)}")
    H, W = mask.shape
    inside = mask.bool().tolist()                                  # plain lists: fast to index one by one
    labels = [[0] * W for _ in range(H)]
    n = 0
    for y in range(H):
        for x in range(W):
            if not inside[y][x] or labels[y][x]:
                continue
            n += 1                                                 # a new component: flood it
            labels[y][x], stack = n, [(y, x)]
            while stack:
                cy, cx = stack.pop()
                for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                    if 0 <= ny < H and 0 <= nx < W and inside[ny][nx] and not labels[ny][nx]:
                        labels[ny][nx] = n
                        stack.append((ny, nx))
    return torch.tensor(labels, dtype=torch.int64).view(H, W), n


def box_from_saliency(saliency_map: Tensor, quantile: float = 0.9) -> Tensor:
    """Box (4,) xyxy of the largest 4-connected component of the pixels with saliency >= the ``quantile``
    quantile of the map (H, W) (ties between components: the first in raster order).

    The threshold is inclusive: on a map that is zero almost everywhere, a quantile that falls on zero
    keeps every pixel -- pick the quantile above the fraction of zeros. The quantile is taken in float64, so
    that one that falls exactly on a pixel's value (q (H W - 1) an integer) keeps that pixel.
    """
    if (not isinstance(saliency_map, Tensor) or saliency_map.ndim != 2 or not saliency_map.is_floating_point()
            or saliency_map.numel() == 0 or not bool(saliency_map.isfinite().all())):
        raise ValueError(f"expected a finite saliency_map of shape (H, W) float, H, W >= 1, "
                         f"got {getattr(saliency_map, 'shape', type(saliency_map).__name__)}")
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"expected 0 <= quantile <= 1, got {quantile}")
    saliency_map = saliency_map.detach().double().cpu()
    mask = saliency_map >= torch.quantile(saliency_map.flatten(), quantile)   # (H, W)
    labels, n = connected_components(mask)
    sizes = torch.bincount(labels.flatten(), minlength=n + 1)[1:]  # (n,) pixels per component
    ys, xs = (labels == sizes.argmax() + 1).nonzero(as_tuple=True)
    return torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()  # (4,) xyxy


def pointing_game(maps: Tensor, boxes: Tensor, tolerance: float = 0.0) -> Tensor:
    """(N,) bool: does the arg-max pixel of each map (N, H, W) fall inside its box (N, 4) xyxy, grown by
    ``tolerance`` pixels on every side (Zhang et al. 2016 use 15 px at 224 px)?"""
    if not isinstance(maps, Tensor) or maps.ndim != 3 or not maps.is_floating_point() or 0 in maps.shape[1:]:
        raise ValueError(f"expected maps of shape (N, H, W) float, H, W >= 1, "
                         f"got {getattr(maps, 'shape', type(maps).__name__)} {getattr(maps, 'dtype', '')}")
    if not isinstance(boxes, Tensor) or tuple(boxes.shape) != (len(maps), 4):
        raise ValueError(f"expected boxes of shape ({len(maps)}, 4) xyxy, "
                         f"got {getattr(boxes, 'shape', type(boxes).__name__)}")
    N, H, W = maps.shape
    best = maps.flatten(1).argmax(dim=1)                           # (N,) first maximum in raster order
    cy, cx = (best // W).float() + 0.5, (best % W).float() + 0.5   # pixel centres
    boxes = boxes.float().to(maps.device)
    return ((boxes[:, 0] - tolerance <= cx) & (cx <= boxes[:, 2] + tolerance)
            & (boxes[:, 1] - tolerance <= cy) & (cy <= boxes[:, 3] + tolerance))


class BoxRegressor(nn.Module):
    """(B, 1, size, size) -> one box (B, 4) xyxy in pixels: four convs with max pooling, then a linear layer.

    The last layer gives 4 numbers; sigmoid * size puts them on the canvas, and each pair is sorted so
    that x0 <= x1 and y0 <= y1. No global pooling: the box needs to know *where*, so the 4x4 map is flattened.
    """

    def __init__(self, size: int = 64, width: int = 16):
        super().__init__()
        w = width
        self.size = size
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),           # size -> size / 2
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),       # -> size / 4
            nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # -> size / 8
            nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(4),  # -> 4 x 4
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * w * 4 * 4, 4)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, self.size, self.size) or not x.is_floating_point():
            raise ValueError(f"expected x of shape (B, 1, {self.size}, {self.size}) float, got {tuple(x.shape)}")
        a = self.head(self.body(x)).sigmoid() * self.size           # (B, 4) in [0, size]
        lo, hi = torch.minimum(a[:, :2], a[:, 2:]), torch.maximum(a[:, :2], a[:, 2:])  # (B, 2) each
        return torch.cat([lo, hi], dim=1)                           # (B, 4) xyxy


def box_loss(pred: Tensor, boxes: Tensor, size: int) -> Tensor:
    """L1 on coordinates / size plus mean (1 - IoU), for pred and boxes (B, 4) xyxy in pixels (IoU: notebook 03's
    ``paired_iou``; two zero-area boxes count as IoU 0)."""
    if not isinstance(pred, Tensor) or not isinstance(boxes, Tensor) or pred.shape != boxes.shape or pred.shape[-1:] != (4,):
        raise ValueError(f"expected pred and boxes of the same shape (B, 4) xyxy, got "
                         f"{tuple(getattr(pred, 'shape', ()))} and {tuple(getattr(boxes, 'shape', ()))}")
    return F.l1_loss(pred / size, boxes / size) + (1 - paired_iou(pred, boxes).nan_to_num(0.0)).mean()


def train_step(model: BoxRegressor, optimizer: torch.optim.Optimizer, x: Tensor, boxes: Tensor) -> Tensor:
    """One optimizer step of ``box_loss`` on scenes x (B, 1, size, size) with one box each (B, 4) xyxy."""
    if not isinstance(boxes, Tensor) or tuple(boxes.shape) != (len(x), 4):
        raise ValueError(f"expected boxes of shape ({len(x)}, 4) xyxy, "
                         f"got {getattr(boxes, 'shape', type(boxes).__name__)}")
    model.train()
    loss = box_loss(model(x), boxes.to(x.dtype), model.size)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()
