"""Answers to notebooks 03's and 04's exercises, computed with this chapter's kernels (never stored)."""

from __future__ import annotations

import torch

from course_lib.checks import report
from course_lib.detection.boxes import nms
from course_lib.detection.metrics import average_precision_101

NMS_BOXES = torch.tensor([[10.0, 10.0, 30.0, 30.0], [12.0, 12.0, 32.0, 32.0], [40.0, 10.0, 60.0, 30.0],
                          [11.0, 9.0, 29.0, 31.0], [41.0, 12.0, 59.0, 33.0]])
NMS_SCORES = torch.tensor([0.9, 0.8, 0.7, 0.95, 0.3])


def check_nms(answer, iou_threshold: float = 0.5) -> bool:
    """Indices kept by NMS on ``NMS_BOXES`` / ``NMS_SCORES`` at ``iou_threshold``, by decreasing score."""
    expected = nms(NMS_BOXES, NMS_SCORES, iou_threshold).tolist()
    return report(None if answer is None else [int(i) for i in answer], expected,
                  "sort by score; keep the best; drop every box overlapping it by more than the threshold; repeat")


def check_average_precision(answer, precision=(1.0, 1.0, 0.67, 0.75, 0.6), recall=(0.25, 0.5, 0.5, 0.75, 0.75)) -> bool:
    """COCO's 101-point AP for the given precision/recall after each detection (sorted by score)."""
    expected = average_precision_101(torch.tensor(precision), torch.tensor(recall))
    return report(None if answer is None else round(float(answer), 4), round(expected, 4),
                  "take the running maximum of precision from the right, then average it at recall 0, 0.01, ..., 1")


def check_grid_cell(answer, box=(20.0, 36.0, 44.0, 60.0), S: int = 8, size: int = 64) -> bool:
    """(row, col) of the YOLO grid cell responsible for ``box`` (xyxy) on a size x size image with S x S cells."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    expected = (int(cy * S // size), int(cx * S // size))
    return report(None if answer is None else tuple(int(v) for v in answer), expected,
                  "the cell that contains the box centre: row from y, column from x, each = floor(coord * S / size)")


def check_yolo_outputs(answer, S: int = 7, B: int = 2, C: int = 20) -> bool:
    """How many numbers does YOLO v1 output per image for an S x S grid, B boxes per cell and C classes?"""
    return report(answer, S * S * (B * 5 + C), "each cell predicts B boxes of (x, y, w, h, confidence) and C class probabilities")
