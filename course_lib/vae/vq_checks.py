"""Answers to notebook 08's exercises, computed with the VQ-VAE's own kernels (never stored)."""

from __future__ import annotations

import math

import torch

from course_lib.checks import report
from course_lib.vae.vq import VQVAE, build_vqvae, nearest_code, perplexity, vq_loss

NEAREST_Z = torch.tensor([0.9, -0.2, 0.4])
NEAREST_CODEBOOK = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, -0.5, 0.5], [1.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
USAGE_COUNTS = (40, 30, 20, 10, 0, 0, 0, 0)


def check_bits_per_image(answer) -> bool:
    """How many bits does the course tokenizer need to store one 28x28 image as tokens?"""
    model = build_vqvae()
    expected = VQVAE.grid ** 2 * math.log2(model.num_codes)
    return report(answer, int(expected) if expected.is_integer() else expected,
                  "one token per grid cell (7 x 7), each an index into K codes: log2 K bits")


def check_nearest_code(answer) -> bool:
    """Index of the row of ``NEAREST_CODEBOOK`` (K, 3) that the quantizer picks for ``NEAREST_Z`` (3,)."""
    expected = int(nearest_code(NEAREST_Z[None], NEAREST_CODEBOOK)[0])
    return report(None if answer is None else int(answer), expected,
                  "squared Euclidean distance to every row, then the argmin (not the largest dot product)")


def check_perplexity(answer, counts: tuple[int, ...] = USAGE_COUNTS) -> bool:
    """Perplexity exp(H(p)) of a codebook used ``counts[k]`` times for code k (3 decimals)."""
    codes = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    expected = round(perplexity(codes, len(counts)), 3)
    return report(None if answer is None else round(float(answer), 3), expected,
                  "p = counts / counts.sum(); H = -sum p log p over the used codes (natural log); answer exp(H)")


def check_commitment_gradient(answer, z_e: float = 1.0, e: float = 0.4, beta: float = 0.25) -> bool:
    """d(vq loss)/d z_e for a one-number encoder output ``z_e`` whose nearest code is ``e`` (4 decimals)."""
    z = torch.tensor([z_e], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(vq_loss(z, torch.tensor([e], dtype=torch.float64), beta), z)
    return report(None if answer is None else round(float(answer), 4), round(grad.item(), 4),
                  "the codebook term has sg(z_e): no gradient; the commitment term beta (z_e - sg(e))^2 has one")
