"""Mean average precision, COCO style, written out so that precision and recall can be watched being built.

Everingham et al. 2010 ("The PASCAL Visual Object Classes (VOC) Challenge", Sec. 4.2) define average precision
as the mean, over equally spaced recall levels r, of the *interpolated* precision
p_interp(r) = max_{r' >= r} p(r'); Lin et al. 2014 (COCO) use 101 recall levels 0, 0.01, ..., 1 and cap the
detections at 100 per image. For one class, over the whole data set:

1. in each image, sort the class's detections by decreasing score (keep the first 100) and match them
   greedily to its ground-truth boxes: a detection is a true positive when some not-yet-matched ground truth
   has IoU >= threshold with it (the best such one is taken); otherwise it is a false positive;
2. pool the detections of all images, sort by decreasing score, and after each one count
   precision = TP / (TP + FP) and recall = TP / n_gt;
3. AP = mean over the 101 recall levels of the interpolated precision (0 beyond the highest recall).

mAP is the mean of AP over the classes that have at least one ground-truth box; a class seen only in the
predictions is left out, and with no ground truth at all the result is -1 (pycocotools' "absent" marker).
``mean_average_precision`` equals ``torchmetrics.detection.MeanAveragePrecision(iou_thresholds=[t],
box_format="xyxy").compute()["map"]`` (pycocotools backend, area range "all"); the tests check it.

preds and targets are lists with one dict per image, in torchmetrics' format:
preds ``{"boxes": (K, 4) float xyxy, "scores": (K,) float, "labels": (K,) int}``,
targets ``{"boxes": (G, 4) float xyxy, "labels": (G,) int}``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from course_lib.detection.boxes import box_iou

MAX_DETECTIONS = 100                       # per image and per class, as COCOeval applies maxDets
RECALL_LEVELS = torch.linspace(0, 1, 101)  # float32, exactly the points torchmetrics hands to pycocotools


def _check_images(preds: list[dict], targets: list[dict]) -> None:
    if not isinstance(preds, (list, tuple)) or not isinstance(targets, (list, tuple)) or len(preds) != len(targets):
        raise ValueError("expected preds and targets as lists of the same length, one dict per image")
    for kind, items, keys in (("preds", preds, ("boxes", "scores", "labels")),
                              ("targets", targets, ("boxes", "labels"))):
        for item in items:
            boxes = item.get("boxes") if isinstance(item, dict) else None
            if (not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != 4
                    or not boxes.is_floating_point() or any(not isinstance(item.get(k), Tensor) for k in keys)
                    or any(tuple(item[k].shape) != (len(boxes),) for k in keys[1:])
                    or item["labels"].is_floating_point()):
                raise ValueError(f"expected {kind} as dicts with boxes of shape (N, 4) float and "
                                 f"{', '.join(keys[1:])} of shape (N,) (labels int)")


def match_detections(boxes: Tensor, scores: Tensor, gt_boxes: Tensor, iou_threshold: float) -> Tensor:
    """One image, one class: detections boxes (D, 4), scores (D,), ground truth gt_boxes (G, 4), xyxy
    -> is_true_positive (D,) bool, in order of decreasing score (equal scores: input order).

    Greedy, as COCOeval.evaluateImg (``match_by_iou``): each detection in turn takes the unmatched ground truth
    with the highest IoU, if that IoU is >= iou_threshold (equal IoUs: the later ground truth, as COCO's loop
    does). Each ground truth is matched at most once. IoU of two zero-area boxes counts as 0.
    """
    if not isinstance(scores, Tensor) or not isinstance(boxes, Tensor) or tuple(scores.shape) != (len(boxes),):
        raise ValueError(f"expected scores of shape (D,) for boxes (D, 4), got {getattr(scores, 'shape', scores)}")
    order = scores.argsort(descending=True, stable=True)              # (D,)
    iou = box_iou(boxes[order].double(), gt_boxes.double()).nan_to_num(0.0)  # (D, G)
    return match_by_iou(iou, iou_threshold)


def precision_recall(preds: list[dict], targets: list[dict], label: int,
                     iou_threshold: float = 0.5) -> tuple[Tensor, Tensor, int]:
    """The precision-recall curve of one class over all images -> precision (D,), recall (D,) float64 after
    each of the D pooled detections (sorted by decreasing score), and n_gt, the class's ground-truth count."""
    _check_images(preds, targets)
    scores, is_tp, n_gt = [torch.zeros(0)], [torch.zeros(0, dtype=torch.bool)], 0   # no images: empty curves
    for pred, target in zip(preds, targets):
        mine, gt = pred["labels"] == label, target["boxes"][target["labels"] == label]   # (K,) bool, (G, 4)
        top = pred["scores"][mine].argsort(descending=True, stable=True)[:MAX_DETECTIONS]
        boxes, image_scores = pred["boxes"][mine][top], pred["scores"][mine][top]         # (D_i, 4), (D_i,)
        is_tp.append(match_detections(boxes, image_scores, gt, iou_threshold))
        scores.append(image_scores.sort(descending=True, stable=True).values)
        n_gt += len(gt)
    scores, is_tp = torch.cat(scores).double(), torch.cat(is_tp)        # (D,) each, image by image
    order = scores.argsort(descending=True, stable=True)                # pooled; ties: earlier image first
    tp = is_tp[order].double().cumsum(0)                                # (D,) true positives so far
    fp = (~is_tp[order]).double().cumsum(0)                             # (D,) false positives so far
    precision = tp / (tp + fp)
    recall = tp / max(n_gt, 1)
    return precision, recall, n_gt


def average_precision_101(precision: Tensor, recall: Tensor) -> float:
    """Area under one precision (D,) / recall (D,) curve, COCO's way: replace each precision by the best
    precision at that recall or beyond (the monotone envelope, p_interp), then average it at the 101 recall
    levels 0, 0.01, ..., 1; a level above the highest recall reached counts 0."""
    if (not isinstance(precision, Tensor) or not isinstance(recall, Tensor) or precision.ndim != 1
            or precision.shape != recall.shape):
        raise ValueError(f"expected precision and recall of the same shape (D,), "
                         f"got {getattr(precision, 'shape', precision)} and {getattr(recall, 'shape', recall)}")
    envelope = precision.double().flip(0).cummax(0).values.flip(0)      # (D,) non-increasing
    levels = RECALL_LEVELS.double()                                     # (101,)
    first = torch.searchsorted(recall.double().contiguous(), levels, side="left")  # first detection reaching each level
    reached = first < len(recall)                                       # (101,)
    sampled = torch.zeros(len(levels), dtype=torch.float64)
    sampled[reached] = envelope[first[reached]]
    return float(sampled.mean())


def mean_average_precision(preds: list[dict], targets: list[dict], iou_threshold: float = 0.5) -> float:
    """COCO-style mAP at one IoU threshold: the mean of ``average_precision_101`` over the labels that have
    ground truth (labels found only in preds are left out). -1.0 when no image has a ground-truth box."""
    _check_images(preds, targets)
    labels = sorted(set(torch.cat([t["labels"] for t in targets] + [torch.zeros(0, dtype=torch.int64)]).tolist()))
    aps = []
    for label in labels:
        precision, recall, n_gt = precision_recall(preds, targets, label, iou_threshold)
        aps.append(average_precision_101(precision, recall))
    return sum(aps) / len(aps) if aps else -1.0


COCO_IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))   # 0.50, 0.55, ..., 0.95


def match_by_iou(iou: Tensor, threshold: float) -> Tensor:
    """Greedy COCO matching for one image and one class, iou (D, G) with the detections already sorted by
    decreasing score -> is_true_positive (D,): each detection in turn takes the unmatched ground truth of
    highest IoU if it is >= threshold (equal IoUs: the later ground truth, as COCOeval's loop)."""
    if not isinstance(iou, Tensor) or iou.ndim != 2:
        raise ValueError(f"expected iou (D, G), got {tuple(getattr(iou, 'shape', ())) or type(iou).__name__}")
    threshold = min(threshold, 1 - 1e-10)                               # COCO's cap, so IoU = 1 still matches
    matched = torch.zeros(iou.shape[1], dtype=torch.bool)               # (G,)
    is_tp = torch.zeros(iou.shape[0], dtype=torch.bool)                 # (D,)
    for d in (iou >= threshold).any(1).nonzero().flatten().tolist():   # only rows that can match anything
        candidates = (iou[d] >= threshold) & ~matched
        if candidates.any():
            g = int((candidates & (iou[d] == iou[d][candidates].max())).nonzero().max())
            matched[g], is_tp[d] = True, True
    return is_tp


def average_precisions(ious: dict[int, list[tuple[Tensor, Tensor]]], thresholds=COCO_IOU_THRESHOLDS) -> dict[float, float]:
    """AP at each IoU threshold, averaged over the labels, from each image's IoUs computed once.

    ``ious[label]`` holds, per image, (scores (D_i,) sorted by decreasing score, iou (D_i, G_i) of those
    detections with the label's ground truth); the same pooling, matching and 101-point AP as
    ``precision_recall`` + ``average_precision_101`` at one threshold, so each entry equals
    ``mean_average_precision`` (or ``mask_average_precision``) at that threshold. -1.0 without labels."""
    aps: dict[float, list[float]] = {t: [] for t in thresholds}
    for per_image in ious.values():
        n_gt = sum(iou.shape[1] for _, iou in per_image)
        scores = torch.cat([torch.zeros(0, dtype=torch.float64)] + [sc.double() for sc, _ in per_image])
        order = scores.argsort(descending=True, stable=True)            # pooled; ties: earlier image first
        for t in thresholds:
            is_tp = torch.cat([torch.zeros(0, dtype=torch.bool)] + [match_by_iou(iou, t) for _, iou in per_image])
            tp, fp = is_tp[order].double().cumsum(0), (~is_tp[order]).double().cumsum(0)
            aps[t].append(average_precision_101(tp / (tp + fp), tp / max(n_gt, 1)))
    return {t: sum(v) / len(v) if v else -1.0 for t, v in aps.items()}


def ious_by_label(preds: list[dict], targets: list[dict],
                  image_iou: Callable[..., Tensor]) -> dict[int, list[tuple[Tensor, Tensor]]]:
    """For each label with ground truth, per image: (scores (D_i,) of its best ``MAX_DETECTIONS`` detections of
    that label, by decreasing score; ``image_iou(pred, target, label, mine, top)`` (D_i, G_i), the IoUs of those
    detections -- ``pred``'s entries ``[mine][top]`` -- with the label's ground truth)."""
    labels = sorted(set(torch.cat([t["labels"] for t in targets] + [torch.zeros(0, dtype=torch.int64)]).tolist()))
    ious: dict[int, list[tuple[Tensor, Tensor]]] = {}
    for label in labels:
        ious[label] = []
        for pred, target in zip(preds, targets):
            mine = pred["labels"] == label
            top = pred["scores"][mine].argsort(descending=True, stable=True)[:MAX_DETECTIONS]
            ious[label].append((pred["scores"][mine][top], image_iou(pred, target, label, mine, top)))
    return ious


def box_average_precisions(preds: list[dict], targets: list[dict], thresholds=COCO_IOU_THRESHOLDS) -> dict[float, float]:
    """Box AP at each IoU threshold (each = ``mean_average_precision`` there), the IoUs computed once."""
    _check_images(preds, targets)

    def image_iou(pred: dict, target: dict, label: int, mine: Tensor, top: Tensor) -> Tensor:
        gt = target["boxes"][target["labels"] == label]                                   # (G_i, 4)
        return box_iou(pred["boxes"][mine][top].double(), gt.double()).nan_to_num(0.0)   # (D_i, G_i)

    return average_precisions(ious_by_label(preds, targets, image_iou), thresholds)


def coco_summary(aps: dict[float, float]) -> dict[str, float]:
    """COCO's three headline numbers from the APs at its ten IoU thresholds (``box_average_precisions`` or
    ``course_lib.maskrcnn.masks.mask_average_precisions``): AP50, AP75 and AP = their mean over 0.50:0.05:0.95 ("AP[.5:.95]")."""
    if set(aps) != set(COCO_IOU_THRESHOLDS):
        raise ValueError(f"expected APs at COCO's thresholds {COCO_IOU_THRESHOLDS}, got {sorted(aps)}")
    return {"AP": sum(aps.values()) / len(aps), "AP50": aps[0.5], "AP75": aps[0.75]}
