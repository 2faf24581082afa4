"""Answers to notebook 08's exercises, computed with the VQ-VAE's own kernels (never stored).

The "write the kernel" exercise is the quantizer with its straight-through gradient: the learner's
``quantize(z_e, codebook) -> (z_q, codes)`` is run by :func:`with_gradients`, which also back-propagates a
seeded upstream gradient, and compared with course_lib's ``nearest_code`` + ``straight_through`` (what
``VectorQuantizer.forward`` does) on outputs *and* gradients, on :func:`quantize_cases`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from course_lib.checks import Verdict, check_kernel, report
from course_lib.vq.quantizer import nearest_code, perplexity, straight_through, vq_loss
from course_lib.vq.vqvae import VQVAE, build_vqvae

# squared L2, L1, cosine similarity and dot product each pick a different row (2, 0, 3 and 1): only the
# quantizer's squared Euclidean distance gives the expected answer.
NEAREST_Z = torch.tensor([2.0, -0.5])
NEAREST_CODEBOOK = torch.tensor([[2.0, 1.0], [3.0, 2.0], [1.0, 0.5], [0.5, 0.0]])
USAGE_COUNTS = (40, 30, 20, 10, 0, 0, 0, 0)


# ---------------------------------------------------------------------------------------------- write the kernel


def quantize(z_e: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor]:
    """course_lib's quantizer on rows (as ``VectorQuantizer.forward`` does on a grid): z_e (M, D), codebook
    (K, D) -> (z_q (M, D) with the value of the nearest codes and the gradient of z_e, codes (M,) int64)."""
    codes = nearest_code(z_e.detach(), codebook.detach())                 # Eq. 1
    return straight_through(z_e, codebook[codes]), codes                 # Eq. 2, Sec. 3.2


def with_gradients(fn: Callable) -> Callable:
    """Wrap a quantizer ``fn(z_e, codebook) -> (z_q, codes)`` so that a check compares its gradients too.

    The wrapped function takes ``(z_e, codebook, upstream)``, runs ``fn`` on leaf copies of z_e and the
    codebook, back-propagates L = sum(upstream * z_q) and returns ``(z_q, codes, gradients)``, gradients =
    dL/dz_e and dL/dcodebook flattened into one vector (M*D + K*D,): the straight-through reference has
    dL/dz_e = upstream and dL/dcodebook = 0, so one relative error covers both. A gradient that does not reach
    a leaf counts as zeros. ``fn`` returning None gives None."""

    def run(z_e: Tensor, codebook: Tensor, upstream: Tensor):
        z_e, codebook = z_e.detach().clone().requires_grad_(True), codebook.detach().clone().requires_grad_(True)
        out = fn(z_e, codebook)
        if out is None:
            return None
        if not isinstance(out, (tuple, list)) or len(out) != 2 or not all(isinstance(t, Tensor) for t in out):
            raise TypeError(f"expected a pair of tensors (z_q, codes), got {type(out).__name__}")
        z_q, codes = out
        if z_q.shape != upstream.shape:
            raise ValueError(f"expected z_q of shape {tuple(upstream.shape)} (one row per row of z_e), got "
                             f"{tuple(z_q.shape)}")
        grads = (torch.autograd.grad((z_q * upstream).sum(), (z_e, codebook), allow_unused=True)
                 if z_q.requires_grad else (None, None))
        grads = [torch.zeros_like(leaf) if grad is None else grad for grad, leaf in zip(grads, (z_e, codebook))]
        return z_q.detach(), codes, torch.cat([grad.flatten() for grad in grads])

    return run


def quantize_cases(seed: int = 0) -> list[tuple[str, tuple[Tensor, Tensor, Tensor]]]:
    """Seeded float64 inputs ``(z_e (M, D), codebook (K, D), upstream (M, D))``, with a tie and a single code."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    square = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    centre = torch.tensor([[0.5, 0.5], [0.5, 0.0], [2.0, 2.0]], dtype=torch.float64)
    return [
        ("random: 6 outputs z_e, 5 codes, D = 2", (r(6, 2), r(5, 2), r(6, 2))),
        ("random: 30 outputs, 16 codes, D = 8", (r(30, 8), r(16, 8), r(30, 8))),
        ("edge: ties -- (0.5, 0.5) is equally far from the 4 codes (corners of the unit square), (0.5, 0) from "
         "codes 0 and 2; the first index wins, as with torch.argmin", (centre, square, r(3, 2))),
        ("edge: a single code (K = 1), every output maps to it", (r(5, 3), r(1, 3), r(5, 3))),
    ]


def check_quantize_kernel(fn: Callable) -> Verdict:
    """``fn(z_e, codebook) -> (z_q, codes)`` against :func:`quantize` on :func:`quantize_cases`: z_q, the codes,
    and the gradients of sum(upstream * z_q) with respect to z_e and to the codebook (:func:`with_gradients`)."""
    return check_kernel(with_gradients(fn), with_gradients(quantize), quantize_cases(), name="my_quantize",
                        reference_name="course_lib.vq.nearest_code + straight_through",
                        hint="three things are compared: z_q (the nearest codes' values), the codes (smallest "
                             "squared Euclidean distance, first index on a tie) and the gradients of "
                             "L = sum(upstream * z_q): dL/dz_e must be upstream itself (straight through) and "
                             "dL/dcodebook zero (the decoder's gradient must not reach the codes).")


# ---------------------------------------------------------------------------------------------- hand computations


def check_bits_per_image(answer) -> Verdict:
    """How many bits does the course tokenizer need to store one 28x28 image as tokens?"""
    model = build_vqvae()
    expected = VQVAE.grid ** 2 * math.log2(model.num_codes)
    return report(answer, int(expected) if expected.is_integer() else expected,
                  "one token per grid cell (7 x 7), each an index into K codes: log2 K bits")


def nearest_by_rule(z: Tensor = NEAREST_Z, codebook: Tensor = NEAREST_CODEBOOK) -> dict[str, int]:
    """The row of ``codebook`` that each plausible rule picks for ``z``: the quantizer's squared Euclidean
    distance, and the wrong ones (L1 distance, cosine similarity, dot product)."""
    z, codebook = z.double(), codebook.double()
    return {"squared Euclidean distance": int(nearest_code(z[None], codebook)[0]),
            "L1 distance": int((codebook - z).abs().sum(1).argmin()),
            "cosine similarity": int(torch.nn.functional.cosine_similarity(codebook, z[None]).argmax()),
            "dot product": int((codebook @ z).argmax())}


def check_nearest_code(answer) -> Verdict:
    """Index of the row of ``NEAREST_CODEBOOK`` (K, 2) that the quantizer picks for ``NEAREST_Z`` (2,)."""
    rules = nearest_by_rule()
    expected = rules.pop("squared Euclidean distance")
    hint = "squared Euclidean distance to every row, then the argmin (rows count from 0)"
    wrong = [rule for rule, row in rules.items() if row == answer]
    if wrong:
        hint = f"row {answer} is the one the {wrong[0]} picks; the quantizer uses the " + hint
    return report(answer, expected, hint)


def check_perplexity(answer, counts: tuple[int, ...] = USAGE_COUNTS) -> Verdict:
    """Perplexity exp(H(p)) of a codebook used ``counts[k]`` times for code k (3 significant digits)."""
    codes = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    return report(answer, perplexity(codes, len(counts)), sig=3,
                  hint="p = counts / counts.sum(); H = -sum p log p over the used codes (natural log); answer exp(H)")


def check_commitment_gradient(answer, z_e: float = 1.0, e: float = 0.4, beta: float = 0.25) -> Verdict:
    """d(vq loss)/d z_e (3 decimals) for a one-number encoder output ``z_e`` whose nearest code is ``e``."""
    z = torch.tensor([z_e], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(vq_loss(z, torch.tensor([e], dtype=torch.float64), beta), z)
    return report(answer, grad.item(), decimals=3,
                  hint="the codebook term has sg(z_e): no gradient; the commitment term beta (z_e - sg(e))^2 has one")
