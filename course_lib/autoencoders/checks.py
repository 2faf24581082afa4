"""Answers to notebook 06's exercises, computed with this chapter's kernels and models (never stored).

Hand computations (``check_*``), each compared to the precision its question states, and the seeded inputs of
the two "write the kernel" exercises: ``k_sparse_cases`` (checked against ``kernels.k_sparse``) and
``contractive_cases`` (checked against ``kernels.sigmoid_contractive_penalty``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from course_lib.autoencoders.kernels import k_sparse, kl_sparsity, principal_angles, sigmoid_contractive_penalty
from course_lib.autoencoders.models import Autoencoder
from course_lib.checks import Verdict, report

# ---------------------------------------------------------------------------------------- write the kernels


def k_sparse_cases(seed: int = 0) -> list[tuple[str, tuple[Tensor, int]]]:
    """Seeded float64 inputs ``(description, (h (B, D), k))`` for the k-sparse layer: random rows of several
    widths, then the edge cases k = 1, k = D (nothing dropped), and rows with ties and with only negative
    activations (no tie straddles the k-th place, so the right output is unique)."""
    g = torch.Generator().manual_seed(seed)

    def randn(B: int, D: int) -> Tensor:
        return torch.randn(B, D, generator=g, dtype=torch.float64)

    ties = torch.tensor([[3.0, 1.0, 1.0, 2.0, 0.0],          # tie below the k-th place: both dropped
                         [-0.5, -2.0, -0.1, -3.0, -1.0],     # all negative: the two least negative are kept
                         [2.0, 2.0, 1.0, 0.5, 0.5]], dtype=torch.float64)  # tie at the top: both kept
    return [
        ("random h (4, 10), k = 3", (randn(4, 10), 3)),
        ("random h (3, 256), k = 25 (the notebook's sizes)", (randn(3, 256), 25)),
        ("edge: k = 1, h (5, 7)", (randn(5, 7), 1)),
        ("edge: k = D = 6, nothing dropped, h (2, 6)", (randn(2, 6), 6)),
        ("edge: ties and an all-negative row, k = 2: " + str(ties.tolist()), (ties, 2)),
    ]


def contractive_cases(seed: int = 0) -> list[tuple[str, tuple[Tensor, Tensor]]]:
    """Seeded float64 inputs ``(description, (h (B, D), W (D, D_in)))`` for the contractive penalty of a sigmoid
    encoder h = sigmoid(W x + b): random codes and weights with D != D_in (so a norm over the wrong axis of W
    fails), a batch of one, and saturated units (h = 0 or 1, where the penalty vanishes) beside h = 0.5."""
    g = torch.Generator().manual_seed(seed)

    def codes(B: int, D: int) -> Tensor:
        return torch.sigmoid(2 * torch.randn(B, D, generator=g, dtype=torch.float64))

    def weight(D: int, D_in: int) -> Tensor:
        return torch.randn(D, D_in, generator=g, dtype=torch.float64) / math.sqrt(D_in)

    saturated = torch.tensor([[0.0, 1.0, 0.5, 0.9], [1.0, 0.2, 0.0, 0.5]], dtype=torch.float64)
    return [
        ("random h (4, 5), W (5, 7)", (codes(4, 5), weight(5, 7))),
        ("random h (16, 32), W (32, 20)", (codes(16, 32), weight(32, 20))),
        ("edge: one example, h (1, 3), W (3, 784)", (codes(1, 3), weight(3, 784))),
        ("edge: saturated units (h = 0 or 1) beside h = 0.5: h " + str(saturated.tolist()) + ", W (4, 6)",
         (saturated, weight(4, 6))),
    ]


# ---------------------------------------------------------------------------------------- hand computations


def expected_principal_angle() -> float:
    plane, line = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), torch.tensor([[1.0], [1.0], [1.0]])
    return math.degrees(principal_angles(plane.double(), line.double())[0].item())


def check_principal_angle(answer) -> Verdict:
    """Angle in degrees, to one decimal, between the plane z = 0 and the line through (1, 1, 1) in 3-D."""
    return report(answer, expected_principal_angle(),
                  "in degrees, not radians: the cosine is the length of the line's unit vector projected onto the "
                  "plane (not onto the plane's normal)", decimals=1)


def check_kl_sparsity(answer, rho: float = 0.05, rho_hat: float = 0.5, D: int = 100) -> Verdict:
    """The sparsity penalty (natural log, two decimals) of D hidden units that each fire with mean rho_hat, target rho."""
    expected = kl_sparsity(torch.full((1, D), rho_hat, dtype=torch.float64), rho).item()
    return report(answer, expected,
                  "D * [rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat))], natural log, summed "
                  "over all D units", decimals=2)


def check_k_sparse(answer, h=(0.3, -1.2, 2.0, 0.7, 0.1), k: int = 2) -> Verdict:
    """The output (a list of five numbers, to two decimals) of the k-sparse layer for one example's activations h."""
    expected = k_sparse(torch.tensor([h], dtype=torch.float64), k)[0].tolist()
    return report(None if answer is None else list(answer), expected,
                  "keep the k largest values (largest, not largest in size) where they are; every other entry "
                  "becomes 0; the output has as many entries as h", decimals=2)


def check_contractive_unit(answer, h: float = 0.2, w_norm_sq: float = 4.0) -> Verdict:
    """A sigmoid code unit with activation h and weight row of squared norm w_norm_sq: its term of ||J_f(x)||_F^2,
    to 3 significant digits. (At h = 0.5, h (1 - h), h^2 and (1 - h)^2 would all be 0.25; at h = 0.2 they differ.)"""
    W = torch.tensor([[math.sqrt(w_norm_sq)]], dtype=torch.float64)
    expected = sigmoid_contractive_penalty(torch.tensor([[h]], dtype=torch.float64), W).item()
    return report(answer, expected,
                  "the sigmoid's derivative is h (1 - h) (h is already the sigmoid's output); square it and "
                  "multiply by ||W_j||^2", sig=3)


def check_ae_parameters(answer, d_code: int = 32) -> Verdict:
    """Parameters (weights and biases) of ``Autoencoder(d_code)``: one linear layer 784 -> d_code and one back;
    an exact integer."""
    expected = sum(p.numel() for p in Autoencoder(d_code).parameters())
    return report(answer, expected, "each linear layer has in * out weights and out biases", sig=None)
