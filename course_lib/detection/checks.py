"""Answers to notebook 03's exercises (and the NMS boxes notebook 04 reuses), computed with this chapter's kernels (never stored).

Hand computations (``check_nms``, ``check_average_precision``)
compare an answer with the course's own computation to the precision the question asks for; the seeded inputs
of the "write the kernel" exercises (``iou_cases``, ``nms_cases``) are built here so that
tests/test_exercises_03_04.py checks the same inputs as the notebook.
"""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib.checks import Verdict, check_kernel, report
from course_lib.detection.boxes import batched_nms, nms
from course_lib.detection.metrics import average_precision_101

NMS_BOXES = torch.tensor([[10.0, 10.0, 30.0, 30.0], [12.0, 12.0, 32.0, 32.0], [40.0, 10.0, 60.0, 30.0],
                          [11.0, 9.0, 29.0, 31.0], [41.0, 12.0, 59.0, 33.0]])
NMS_SCORES = torch.tensor([0.9, 0.8, 0.7, 0.95, 0.3])
NMS_LABELS = torch.tensor([1, 1, 1, 2, 1])   # notebook 04: box 3 is another class than the rest


# --- hand computations ---------------------------------------------------------------------------------------

def check_nms(answer, iou_threshold: float = 0.5, per_class: bool = False) -> Verdict:
    """Indices kept by NMS on ``NMS_BOXES`` / ``NMS_SCORES`` at ``iou_threshold``, by decreasing score; with
    ``per_class``, NMS within each label of ``NMS_LABELS`` (``batched_nms``, as YOLO's and R-CNN's decoding)."""
    if per_class:
        expected = batched_nms(NMS_BOXES, NMS_SCORES, NMS_LABELS, iou_threshold).tolist()
        hint = ("boxes of different classes never suppress each other: run NMS within each class, then list "
                "every kept index by decreasing score")
    else:
        expected = nms(NMS_BOXES, NMS_SCORES, iou_threshold).tolist()
        hint = ("sort by score; keep the best; drop every box whose IoU with it is above the threshold; repeat "
                "with the boxes left; list the kept indices in the order they were kept")
    return report(None if answer is None else [int(i) for i in answer], expected, hint)


def precision_recall_of(is_tp, n_gt: int) -> tuple[Tensor, Tensor]:
    """Precision (D,) and recall (D,) float64 after each of D detections sorted by decreasing score, from
    whether each is a true positive and the class's ground-truth count."""
    tp = torch.tensor([bool(v) for v in is_tp], dtype=torch.float64).cumsum(0)     # (D,) true positives so far
    return tp / torch.arange(1, len(tp) + 1, dtype=torch.float64), tp / n_gt


def check_average_precision(answer, is_tp=(True, False, True, True), n_gt: int = 4, decimals: int = 3) -> Verdict:
    """COCO's 101-point interpolated AP of one class whose detections, sorted by decreasing score, are true or
    false positives as in ``is_tp``, with ``n_gt`` ground-truth boxes; to ``decimals`` decimal places.

    The default detections make the interpolation matter (precision rises from 1/2 to 2/3 to 3/4 after the
    false positive), so AP without the running maximum (0.608), the plain mean of the precisions (0.729),
    PASCAL's 11-point AP (0.614) and the all-point area (0.625) all differ from the answer (0.629) at 3 decimals.
    """
    precision, recall = precision_recall_of(is_tp, n_gt)
    expected = average_precision_101(precision, recall)
    return report(None if answer is None else answer, expected,
                  "precision = TP / detections so far, recall = TP / ground truths; replace each precision by "
                  "the best precision at that recall or beyond (the running maximum from the right), then "
                  "average it at the 101 recall levels 0, 0.01, ..., 1 (0 above the highest recall reached)",
                  decimals=decimals)


# --- seeded inputs of the "write the kernel" exercises ---------------------------------------------------------

def random_boxes(n: int, g: torch.Generator, size: float = 64.0, dtype=torch.float64) -> Tensor:
    """n random xyxy boxes (n, 4) on a size x size canvas, sides 2 .. size / 2."""
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * size * 0.75
    wh = 2 + torch.rand(n, 2, generator=g, dtype=dtype) * (size / 2 - 2)
    return torch.cat([xy, xy + wh], dim=1)


def iou_cases(seed: int = 0) -> list[tuple[str, tuple[Tensor, Tensor]]]:
    """Inputs (a (N, 4), b (M, 4)) float64 for a pairwise IoU kernel: random box sets of several sizes, and the
    edge cases (disjoint boxes -- apart in x and in y, where an unclamped overlap is a positive product of two
    negatives --, identical boxes, touching boxes, a zero-area box against boxes with area)."""
    g = torch.Generator().manual_seed(seed)
    t = lambda *rows: torch.tensor(rows, dtype=torch.float64)  # noqa: E731
    return [
        ("5 x 7 random boxes", (random_boxes(5, g), random_boxes(7, g))),
        ("1 x 1 random boxes", (random_boxes(1, g), random_boxes(1, g))),
        ("12 x 3 random boxes", (random_boxes(12, g), random_boxes(3, g))),
        ("disjoint boxes, apart in x and in y",
         (t([0, 0, 10, 10], [30, 30, 40, 45]), t([20, 20, 25, 28], [0, 50, 8, 60]))),
        ("identical boxes", (t([5, 5, 25, 15], [3.5, 7.25, 9.5, 30]), t([5, 5, 25, 15], [3.5, 7.25, 9.5, 30]))),
        ("boxes touching along an edge", (t([0, 0, 10, 10]), t([10, 0, 20, 10], [0, 10, 10, 20], [10, 10, 12, 12]))),
        ("a zero-area box (a line, then a point) against boxes with area",
         (t([5, 5, 5, 20], [8, 8, 8, 8]), t([0, 0, 10, 10], [4, 4, 12, 30], [6, 6, 9, 9]))),
    ]


def _jittered(centres: Tensor, copies: int, sigma: float, g: torch.Generator) -> Tensor:
    """``copies`` noisy copies of each box of centres (K, 4) -> (K * copies, 4), as a detector fires them."""
    boxes = centres.repeat_interleave(copies, 0)
    return boxes + torch.randn(boxes.shape, generator=g, dtype=boxes.dtype) * sigma


def nms_cases(seed: int = 0) -> list[tuple[str, tuple[Tensor, Tensor, float]]]:
    """Inputs (boxes (N, 4) float64, scores (N,) float64, iou_threshold) for a greedy NMS kernel: clusters of
    jittered boxes at three thresholds, and the edge cases (ties in score, an empty set, all boxes overlapping,
    a chain A-B-C where only the suppressed B overlaps C, an IoU exactly at the threshold)."""
    g = torch.Generator().manual_seed(seed)
    t = lambda *rows: torch.tensor(rows, dtype=torch.float64)  # noqa: E731
    cases = []
    for k, copies, thr in ((3, 6, 0.5), (5, 4, 0.3), (2, 8, 0.7)):
        boxes = _jittered(random_boxes(k, g), copies, 2.5, g)
        cases.append((f"{k} objects x {copies} jittered boxes, threshold {thr}",
                      (boxes, torch.rand(len(boxes), generator=g, dtype=torch.float64), thr)))
    tied = t([10, 10, 30, 30], [11, 11, 31, 31], [40, 40, 50, 50], [41, 40, 51, 50])
    cases += [
        ("ties in score: equal scores keep the lower index first", (tied, t(0.8, 0.8, 0.6, 0.6), 0.5)),
        ("an empty set of boxes", (torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, dtype=torch.float64), 0.5)),
        ("all boxes overlapping one another", (_jittered(t([20, 20, 44, 44]), 10, 0.5, g),
                                               torch.rand(10, generator=g, dtype=torch.float64), 0.5)),
        ("a chain: A overlaps B, B overlaps C, A does not overlap C",
         (t([0, 0, 10, 10], [3, 0, 13, 10], [7, 0, 17, 10]), t(0.9, 0.8, 0.7), 0.4)),
        ("an IoU exactly at the threshold (kept: only IoU above it suppresses)",
         (t([0, 0, 4, 4], [0, 0, 4, 2]), t(0.9, 0.8), 0.5)),
    ]
    return cases
