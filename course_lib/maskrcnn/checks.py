"""Answers to notebook 05's exercises, computed with this chapter's code (never stored).

Hand computations (``check_*``), each compared to the precision its question states, and the seeded inputs of
the "write RoIAlign" exercise (``roi_align_cases``) with the reference it is checked against (``roi_align_one``:
course_lib's ``roi_align``, which equals torchvision's).
"""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib.checks import Verdict, report
from course_lib.maskrcnn.model import MaskHead
from course_lib.maskrcnn.roi import _round_half_away, roi_align
from course_lib.maskrcnn.masks import mask_iou

# ---------------------------------------------------------------------------------------- write RoIAlign


def roi_align_one(features: Tensor, box: Tensor, output_size: int, sampling_ratio: int) -> Tensor:
    """course_lib's ``roi_align`` (aligned=True, spatial_scale=1) for ONE RoI on ONE map: features (C, H, W),
    box (4,) = (x0, y0, x1, y1) in feature cells, sampling_ratio >= 1 samples per bin side -> (C, P, P)."""
    return roi_align(features[None], [box[None]], output_size, 1.0, sampling_ratio, aligned=True)[0]


def roi_align_cases(seed: int = 5) -> list[tuple[str, tuple[Tensor, Tensor, int, int]]]:
    """Seeded float64 inputs ``(description, (features (C, H, W), box (4,), output_size, sampling_ratio))`` of
    the exercise: three random boxes inside maps of different shapes (H != W, to catch swapped axes), then the
    edge cases -- a box partly outside the map (samples more than one cell out read 0, closer ones read the
    border) and a box smaller than one bin's share of a cell."""
    g = torch.Generator().manual_seed(seed)

    def fmap(C: int, H: int, W: int) -> Tensor:
        return torch.randn(C, H, W, generator=g, dtype=torch.float64)

    def inside(H: int, W: int) -> Tensor:                               # a random box well inside the map
        x0, y0 = (torch.rand(2, generator=g, dtype=torch.float64) * torch.tensor([W / 2, H / 2])).tolist()
        x1, y1 = (torch.tensor([x0, y0]) + 1 + torch.rand(2, generator=g, dtype=torch.float64)
                  * torch.tensor([W / 2 - 1, H / 2 - 1])).tolist()
        return torch.tensor([x0, y0, x1, y1], dtype=torch.float64)

    f64 = torch.float64
    return [
        ("random 3 x 8 x 8 map, 2 x 2 bins, 2 x 2 samples", (fmap(3, 8, 8), inside(8, 8), 2, 2)),
        ("random 2 x 6 x 11 map (H != W), 3 x 3 bins, 1 sample", (fmap(2, 6, 11), inside(6, 11), 3, 1)),
        ("random 1 x 16 x 16 map, 7 x 7 bins, 2 x 2 samples", (fmap(1, 16, 16), inside(16, 16), 7, 2)),
        ("edge: box (-2.7, 3.4, 4.2, 9.6) partly outside a 2 x 8 x 10 map, 2 x 2 bins, 3 x 3 samples",
         (fmap(2, 8, 10), torch.tensor([-2.7, 3.4, 4.2, 9.6], dtype=f64), 2, 3)),
        ("edge: box (2.1, 1.4, 2.4, 1.6), 0.3 x 0.2 cells, smaller than one cell, 2 x 2 bins, 2 x 2 samples",
         (fmap(2, 5, 5), torch.tensor([2.1, 1.4, 2.4, 1.6], dtype=f64), 2, 2)),
    ]


# ---------------------------------------------------------------------------------------- hand computations


def ramp(size: int = 4) -> torch.Tensor:
    """The exercise's feature map (1, 1, size, size): f[y, x] = 10 y + x."""
    return (10 * torch.arange(size, dtype=torch.float32)[:, None] + torch.arange(size))[None, None]


def expected_roi_align_value(box=(1.0, 1.0, 3.0, 2.0)) -> float:
    return float(roi_align(ramp(), [torch.tensor([box])], 1, spatial_scale=1.0, sampling_ratio=1, aligned=True))


def check_roi_align_value(answer, box=(1.0, 1.0, 3.0, 2.0)) -> Verdict:
    """RoIAlign with one 1 x 1 bin, one sample (sampling_ratio=1), aligned=True, spatial_scale=1, of ``box`` (xyxy)
    on the 4 x 4 map f[y, x] = 10 y + x (``ramp()``): what value comes out, to one decimal?"""
    return report(answer, expected_roi_align_value(box),
                  "aligned: shift the box by -0.5; the one sample is the box centre (x, y); bilinear interpolation "
                  "of a linear map is exact, so read 10 y + x there", decimals=1)


def expected_roi_pool_shift(x0: float = 15.0, stride: int = 4) -> float:
    return abs(x0 - _round_half_away(x0 / stride) * stride)


def check_roi_pool_shift(answer, x0: float = 15.0, stride: int = 4) -> Verdict:
    """RoIPool rounds a box's left edge x0 (image pixels) to whole cells of a stride-``stride`` feature map:
    round(x0 / stride). How many image pixels from x0 does the rounded edge (cells * stride) land, to one
    decimal? (At x0 = 15, stride 4, rounding and flooring land on different cells.)"""
    return report(answer, float(expected_roi_pool_shift(x0, stride)),
                  "divide by the stride, round to the NEAREST integer (not down), multiply back by the stride, "
                  "take the distance in image pixels", decimals=1)


def expected_mask_outputs(num_classes: int = 80, M: int = 28) -> int:
    head = MaskHead(in_channels=8, width=8, num_classes=num_classes)
    with torch.no_grad():
        return head(torch.zeros(1, 8, M // 2, M // 2)).numel()


def check_mask_outputs(answer, num_classes: int = 80, M: int = 28) -> Verdict:
    """How many mask logits does the mask head output for ONE RoI with ``num_classes`` classes (COCO: 80) and
    M x M masks (M = 28)? An exact integer."""
    return report(answer, expected_mask_outputs(num_classes, M),
                  "one M x M mask per class, no background mask (the loss then reads only the ground-truth "
                  "class's mask)", sig=None)


def exercise_masks() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 8 x 8 masks: a 4 x 4 square at rows/cols 0-3 and one at rows/cols 2-5."""
    a, b = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    a[0, :4, :4], b[0, 2:6, 2:6] = True, True
    return a, b


def expected_mask_iou() -> float:
    a, b = exercise_masks()
    return float(mask_iou(a, b)[0, 0])


def check_mask_iou(answer) -> Verdict:
    """The mask IoU of the two masks of ``exercise_masks()`` (what mask AP@0.5 compares with 0.5), to 3
    significant digits."""
    return report(answer, expected_mask_iou(),
                  "count the shared pixels (rows 2-3 x columns 2-3), divide by the pixels in either mask "
                  "(4 x 4 + 4 x 4 - shared)", sig=3)
