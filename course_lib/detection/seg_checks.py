"""Answers to notebook 05's exercises, computed with this chapter's code (never stored)."""

from __future__ import annotations

import torch

from course_lib.checks import report
from course_lib.detection.maskrcnn import MaskHead
from course_lib.detection.roi import _round_half_away, roi_align
from course_lib.detection.seg_metrics import mask_iou


def ramp(size: int = 4) -> torch.Tensor:
    """The exercise's feature map (1, 1, size, size): f[y, x] = 10 y + x."""
    return (10 * torch.arange(size, dtype=torch.float32)[:, None] + torch.arange(size))[None, None]


def expected_roi_align_value(box=(1.0, 1.0, 3.0, 2.0)) -> float:
    return float(roi_align(ramp(), [torch.tensor([box])], 1, spatial_scale=1.0, sampling_ratio=1, aligned=True))


def check_roi_align_value(answer, box=(1.0, 1.0, 3.0, 2.0)) -> bool:
    """RoIAlign with one 1 x 1 bin, one sample (sampling_ratio=1), aligned=True, spatial_scale=1, of ``box`` (xyxy)
    on the 4 x 4 map f[y, x] = 10 y + x (``ramp()``): what value comes out?"""
    return report(None if answer is None else round(float(answer), 4), round(expected_roi_align_value(box), 4),
                  "aligned: shift the box by -0.5; the one sample is the box centre; bilinear interpolation of "
                  "a linear map is exact, so read 10 y + x there")


def expected_roi_pool_shift(x0: float = 13.0, stride: int = 4) -> float:
    return abs(x0 - _round_half_away(x0 / stride) * stride)


def check_roi_pool_shift(answer, x0: float = 13.0, stride: int = 4) -> bool:
    """RoIPool rounds a box's left edge x0 (image pixels) to whole cells of a stride-``stride`` feature map:
    round(x0 / stride). How many image pixels from x0 does the rounded edge (cells * stride) land?"""
    return report(None if answer is None else float(answer), float(expected_roi_pool_shift(x0, stride)),
                  "divide by the stride, round to the nearest integer, multiply back, take the difference")


def expected_mask_outputs(num_classes: int = 80, M: int = 28) -> int:
    head = MaskHead(in_channels=8, width=8, num_classes=num_classes)
    with torch.no_grad():
        return head(torch.zeros(1, 8, M // 2, M // 2)).numel()


def check_mask_outputs(answer, num_classes: int = 80, M: int = 28) -> bool:
    """How many mask logits does the mask head output for ONE RoI with ``num_classes`` classes (COCO: 80) and
    M x M masks (M = 28)?"""
    return report(None if answer is None else int(answer), expected_mask_outputs(num_classes, M),
                  "one M x M mask per class (the loss then reads only the ground-truth class's mask)")


def exercise_masks() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 8 x 8 masks: a 4 x 4 square at rows/cols 0-3 and one at rows/cols 2-5."""
    a, b = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    a[0, :4, :4], b[0, 2:6, 2:6] = True, True
    return a, b


def expected_mask_iou() -> float:
    a, b = exercise_masks()
    return float(mask_iou(a, b)[0, 0])


def check_mask_iou(answer) -> bool:
    """The mask IoU of the two masks of ``exercise_masks()`` (what mask AP@0.5 compares with 0.5)."""
    return report(None if answer is None else float(answer), expected_mask_iou(),
                  "count the shared pixels, divide by the pixels in either mask (4 x 4 + 4 x 4 - overlap)")
