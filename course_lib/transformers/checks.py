"""Answers to the exercises of notebooks 16-18, computed with this chapter's kernels (never stored).

Write the kernel: the patch embedding of notebook 17 (ViT Eq. 1: x_p E + b on the image cut into p x p patches),
checked against ``PatchEmbed``'s strided convolution on seeded random inputs and the cases that tell the plausible
slips apart (patches read column by column, a patch flattened as (p, p, C) instead of (C, p, p) -- only a
3-channel image shows it --, the bias forgotten, p = 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.checks import Verdict, check_kernel


def patch_embed_reference(x: Tensor, weight: Tensor, bias: Tensor, p: int) -> Tensor:
    """The strided convolution PatchEmbed runs: x (B, C, H, W), weight (D, C, p, p), bias (D,) -> (B, N, D)."""
    return F.conv2d(x, weight, bias, stride=p).flatten(2).transpose(1, 2)


def patch_embed_cases(seed: int = 0) -> list[tuple[str, tuple]]:
    """(x, weight, bias, p) tuples."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, dtype=torch.float32: torch.randn(*shape, generator=g, dtype=dtype)   # noqa: E731
    return [
        ("random (4, 1, 28, 28) images, p = 4, D = 64 (the notebook's ViT)", (r(4, 1, 28, 28), r(64, 1, 4, 4), r(64), 4)),
        ("random (2, 1, 28, 28), p = 7, D = 8", (r(2, 1, 28, 28), r(8, 1, 7, 7), r(8), 7)),
        ("a non-square grid: (1, 1, 8, 12), p = 4 (2 rows of 3 patches)", (r(1, 1, 8, 12), r(5, 1, 4, 4), r(5), 4)),
        ("3 channels (2, 3, 8, 8), p = 4, float64: a patch flattens channel by channel, (C, p, p)",
         (r(2, 3, 8, 8, dtype=torch.float64), r(6, 3, 4, 4, dtype=torch.float64), r(6, dtype=torch.float64), 4)),
        ("edge: p = 1 (every pixel a token), bias only (weight 0)", (r(1, 2, 3, 3), torch.zeros(4, 2, 1, 1), r(4), 1)),
    ]


def check_patch_embed_kernel(fn) -> Verdict:
    """``fn(x, weight, bias, p) -> tokens (B, N, D)`` against PatchEmbed's convolution."""
    return check_kernel(fn, patch_embed_reference, patch_embed_cases(), name="my_patch_embed",
                        reference_name="course_lib.transformers.PatchEmbed",
                        hint="cut x into p x p patches row by row (patch n = row n // (W/p), column n % (W/p)), "
                             "flatten each as (C, p, p) -- `patchify` does both --, then multiply by "
                             "weight.flatten(1).T (D columns) and add the bias.")
