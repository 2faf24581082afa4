"""Tolerances for comparing two computations that may take different kernel paths.

Two float computations of the same quantity (other batch sizes, other BLAS calls, other thread counts,
another CPU's SIMD kernels) agree only up to rounding, and rounding scales with the size of the numbers that
were *computed*, not with the size of their result. An occlusion attribution is a difference of two logits:
two logits of size 10 that differ by 2 ulp give a difference off by ~2e-6 whatever the difference itself is.
So each tolerance here takes ``scale``: the magnitude of the quantities the compared results were computed
from (the logits, the activations, the summed terms), and allows ``ulps`` units of rounding of that size.

Used by the tests that compare course_lib with an oracle; ``ulps`` is generous (rounding errors of a sum of
n terms grow like sqrt(n) to n ulp) but still ~1e5 times tighter than any real bug shows up in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor


def eps(dtype: torch.dtype) -> float:
    """Machine epsilon of a float dtype (float32 ~1.2e-7, float64 ~2.2e-16)."""
    return torch.finfo(dtype).eps


def scaled_atol(scale: float | Tensor, dtype: torch.dtype, ulps: float = 64) -> float:
    """Absolute tolerance ``ulps * eps(dtype) * scale`` for results computed from numbers of size ``scale``."""
    scale = float(scale.detach().abs().max()) if isinstance(scale, Tensor) else abs(float(scale))
    return ulps * eps(dtype) * scale


def assert_close_scaled(actual: Tensor, expected: Tensor, scale: float | Tensor, *, ulps: float = 64,
                        dtype: torch.dtype | None = None) -> None:
    """|actual - expected| <= ulps * eps * scale everywhere (eps of the lower-precision of the two dtypes)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if dtype is None:
        dtype = min(actual.dtype, expected.dtype, key=lambda d: torch.finfo(d).bits)
    atol = scaled_atol(scale, dtype, ulps)
    error = float((actual.double() - expected.double()).abs().max()) if actual.numel() else 0.0
    assert error <= atol, f"max abs error {error:.3g} > {atol:.3g} (= {ulps} ulp of {dtype} at scale {scale})"


def assert_argmax_consistent(index: Tensor, scores: Tensor, *, scale: float | Tensor | None = None,
                             ulps: float = 64) -> None:
    """``index`` (...) is an arg-max of ``scores`` (..., K) up to rounding.

    Two kernel paths may break a near-tie differently, so instead of ``torch.equal`` on two arg-maxes this
    checks that the chosen entry is within the rounding tolerance of the maximum.
    """
    assert index.shape == scores.shape[:-1], (index.shape, scores.shape)
    chosen = scores.gather(-1, index[..., None].long())[..., 0]
    best = scores.amax(-1)
    atol = scaled_atol(scores if scale is None else scale, scores.dtype, ulps)
    gap = float((best - chosen).max()) if chosen.numel() else 0.0
    assert gap <= atol, f"the chosen entry is {gap:.3g} below the maximum (tolerance {atol:.3g})"
