"""Mask average precision: chapter 03's COCO-style AP with the IoU of masks in place of the IoU of boxes.

Lin et al. 2014 (COCO) score instance segmentation exactly as detection -- per class, detections sorted by
score, greedily matched to unmatched ground truths at IoU >= t, precision / recall pooled over images, 101-point
interpolated AP -- except that the overlap of a detection and a ground truth is the IoU of their *masks*:

    IoU(A, B) = |A n B| / |A u B|    (pixels; two empty masks: 0)

``mask_average_precision`` equals ``torchmetrics.detection.MeanAveragePrecision(iou_type="segm",
iou_thresholds=[t]).compute()["map"]`` (pycocotools backend, area range "all", 100 detections per image);
tests/test_maskrcnn.py checks it. The box version is ``metrics.mean_average_precision``.

preds and targets are lists with one dict per image: preds ``{"masks": (D, H, W) bool, "scores": (D,),
"labels": (D,)}``, targets ``{"masks": (G, H, W) bool, "labels": (G,)}`` (uint8 / float masks are
thresholded: > 0 for targets, > 0.5 for predicted probabilities, via ``binarize``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib.detection.metrics import (
    COCO_IOU_THRESHOLDS,
    MAX_DETECTIONS,
    average_precision_101,
    average_precisions,
    ious_by_label,
    match_by_iou,
)


def binarize(masks: Tensor, threshold: float = 0.5) -> Tensor:
    """masks (..., H, W): bool kept, uint8 / int -> != 0, float -> > threshold (the paper's 0.5 on probabilities)."""
    if masks.dtype == torch.bool:
        return masks
    return masks > threshold if masks.is_floating_point() else masks != 0


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every mask of a (N, H, W) with every mask of b (M, H, W) -> (N, M) float64; 0 when both are empty.
    Masks are bool, integer (nonzero = inside, as pycocotools) or float of exactly 0 and 1 (probabilities must be
    thresholded first, e.g. with ``binarize``)."""
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"expected masks a (N, H, W) and b (M, H, W) of one size, got {tuple(a.shape)}, {tuple(b.shape)}")
    for m in (a, b):
        if m.is_floating_point() and not ((m == 0) | (m == 1)).all():
            raise ValueError(f"expected binary masks (N, H, W): bool, int or float of 0 and 1 only, got {m.dtype} "
                             f"values such as {m[(m != 0) & (m != 1)][0].item()} (threshold probabilities first)")
    a, b = (a.flatten(1) != 0).double(), (b.flatten(1) != 0).double()   # (N, H*W), (M, H*W) in {0, 1}
    inter = a @ b.T                                                     # (N, M) shared pixels
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter               # (N, M)
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros((), dtype=torch.float64))


def _check(preds: list[dict], targets: list[dict]) -> None:
    if not isinstance(preds, (list, tuple)) or not isinstance(targets, (list, tuple)) or len(preds) != len(targets):
        raise ValueError("expected preds and targets as lists of the same length, one dict per image")
    for kind, items, keys in (("preds", preds, ("scores", "labels")), ("targets", targets, ("labels",))):
        for item in items:
            masks = item.get("masks") if isinstance(item, dict) else None
            if (not isinstance(masks, Tensor) or masks.ndim != 3
                    or any(not isinstance(item.get(k), Tensor) or tuple(item[k].shape) != (len(masks),) for k in keys)):
                raise ValueError(f"expected {kind} as dicts with masks of shape (N, H, W) and "
                                 f"{', '.join(keys)} of shape (N,)")


def mask_precision_recall(preds: list[dict], targets: list[dict], label: int,
                          iou_threshold: float = 0.5) -> tuple[Tensor, Tensor, int]:
    """The precision-recall curve of one class over all images with mask IoU -> precision (D,), recall (D,)
    after each of the D pooled detections (by decreasing score), and n_gt (``metrics.precision_recall``'s recipe)."""
    _check(preds, targets)
    scores, is_tp, n_gt = [], [], 0
    for pred, target in zip(preds, targets):
        mine = pred["labels"] == label
        order = pred["scores"][mine].argsort(descending=True, stable=True)[:MAX_DETECTIONS]
        masks, image_scores = binarize(pred["masks"][mine][order]), pred["scores"][mine][order]   # (D_i, H, W)
        gt = binarize(target["masks"][target["labels"] == label], 0.0)                         # (G_i, H, W)
        is_tp.append(match_by_iou(mask_iou(masks, gt), iou_threshold))
        scores.append(image_scores)
        n_gt += len(gt)
    scores = torch.cat(scores).double() if scores else torch.zeros(0, dtype=torch.float64)   # no images: empty
    is_tp = torch.cat(is_tp) if is_tp else torch.zeros(0, dtype=torch.bool)
    order = scores.argsort(descending=True, stable=True)                # pooled; ties: earlier image first
    tp = is_tp[order].double().cumsum(0)
    fp = (~is_tp[order]).double().cumsum(0)
    return tp / (tp + fp), tp / max(n_gt, 1), n_gt


def mask_average_precision(preds: list[dict], targets: list[dict], iou_threshold: float = 0.5) -> float:
    """Mask AP at one IoU threshold: the mean of ``average_precision_101`` over the labels with ground truth;
    -1.0 when no image has a ground-truth mask (pycocotools' "absent")."""
    _check(preds, targets)
    labels = sorted(set(torch.cat([t["labels"] for t in targets] + [torch.zeros(0, dtype=torch.int64)]).tolist()))
    aps = [average_precision_101(*mask_precision_recall(preds, targets, c, iou_threshold)[:2]) for c in labels]
    return sum(aps) / len(aps) if aps else -1.0


def mask_average_precisions(preds: list[dict], targets: list[dict], thresholds=COCO_IOU_THRESHOLDS) -> dict[float, float]:
    """Mask AP at each IoU threshold (each = ``mask_average_precision`` there), the mask IoUs computed once."""
    _check(preds, targets)

    def image_iou(pred: dict, target: dict, label: int, mine: Tensor, top: Tensor) -> Tensor:
        gt = binarize(target["masks"][target["labels"] == label], 0.0)                  # (G_i, H, W)
        return mask_iou(binarize(pred["masks"][mine][top]), gt)                          # (D_i, G_i)

    return average_precisions(ious_by_label(preds, targets, image_iou), thresholds)


def torchmetrics_map(preds: list[dict], targets: list[dict], iou_type: str = "segm",
                     iou_threshold: float | None = 0.5) -> float | dict[str, float]:
    """The cross-check: torchmetrics' MeanAveragePrecision (pycocotools backend) at one IoU threshold, for
    ``iou_type`` "segm" (masks, binarized as above) or "bbox" (boxes). With ``iou_threshold=None``, COCO's ten
    thresholds, and the dict {"AP", "AP50", "AP75"} (as ``metrics.coco_summary``)."""
    import warnings

    from torchmetrics.detection import MeanAveragePrecision

    thresholds = None if iou_threshold is None else [iou_threshold]
    metric = MeanAveragePrecision(iou_type=iou_type, iou_thresholds=thresholds, box_format="xyxy")
    metric.warn_on_many_detections = False
    key = "masks" if iou_type == "segm" else "boxes"
    p = [{key: binarize(d[key]) if key == "masks" else d[key], "scores": d["scores"], "labels": d["labels"]} for d in preds]
    t = [{key: binarize(d[key], 0.0) if key == "masks" else d[key], "labels": d["labels"]} for d in targets]
    metric.update(p, t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = metric.compute()
    if iou_threshold is None:
        return {"AP": float(result["map"]), "AP50": float(result["map_50"]), "AP75": float(result["map_75"])}
    return float(result["map"])
