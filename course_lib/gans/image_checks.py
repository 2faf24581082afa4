"""Answers to notebook 10's exercises, computed with this chapter's kernels (never stored).

Write the kernel: AdaIN (Karras et al. 2019, Eq. 1), checked against ``course_lib.gans.stylegan.adain`` on seeded
random inputs and edge cases. Hand computation: He's constant of an equalized 3x3 convolution (Karras et al.
2018, Sec. 4.1), checked to 3 significant digits.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from course_lib.checks import Verdict, check_kernel, report
from course_lib.gans.stylegan import adain


def adain_cases(seed: int = 0) -> list[tuple[str, tuple[Tensor, Tensor, Tensor]]]:
    """Seeded inputs ``(x, y_s, y_b)``: x (B, C, H, W), styles (B, C)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, dtype=torch.float32: torch.randn(*s, generator=g, dtype=dtype)  # noqa: E731
    const = torch.ones(2, 3, 4, 4, dtype=torch.float64) * torch.tensor([1.0, -2.0, 5.0], dtype=torch.float64)[:, None, None]
    const[1] = const[1] + 1e-3 * r(3, 4, 4, dtype=torch.float64)
    return [
        ("random x (4, 8, 7, 7) with mean 3 and std 2, float32", (3 + 2 * r(4, 8, 7, 7), r(4, 8), r(4, 8))),
        ("random x (2, 3, 14, 14), float64", (r(2, 3, 14, 14, dtype=torch.float64), r(2, 3, dtype=torch.float64),
                                              r(2, 3, dtype=torch.float64))),
        ("edge: one image, one channel (1, 1, 5, 5)", (r(1, 1, 5, 5), r(1, 1), r(1, 1))),
        ("edge: channels that are constant in image 0 and nearly constant in image 1 (2, 3, 4, 4), float64",
         (const, r(2, 3, dtype=torch.float64), r(2, 3, dtype=torch.float64))),
    ]


def check_adain_kernel(fn) -> Verdict:
    """``fn(x, y_s, y_b) -> (B, C, H, W)`` against ``course_lib.gans.stylegan.adain`` (eps = 1e-5)."""
    return check_kernel(fn, adain, adain_cases(), name="my_adain", reference_name="course_lib.gans.stylegan.adain",
                        hint="mean and standard deviation over (H, W) of each image and channel (keepdim=True), the "
                             "biased variance (unbiased=False) plus eps = 1e-5 under the square root; then "
                             "y_s[:, :, None, None] * normalized + y_b[:, :, None, None]. Statistics over the batch "
                             "(batch norm) or over the channels (layer norm) are not AdaIN's.")


def check_he_constant(answer, c_in: int = 32, k: int = 3) -> Verdict:
    """He's constant sqrt(2 / fan_in) of a k x k convolution from c_in channels, to 3 significant digits."""
    return report(answer, math.sqrt(2 / (c_in * k * k)),
                  hint="fan_in counts the inputs of one output unit: every input channel times the k x k window "
                       "(the output channels do not enter); c = sqrt(2 / fan_in)")
