"""Answers to notebook 06's exercises, computed with this chapter's kernels and models (never stored)."""

from __future__ import annotations

import math

import torch

from course_lib.autoencoders.kernels import k_sparse, kl_sparsity, principal_angles, sigmoid_contractive_penalty
from course_lib.autoencoders.models import Autoencoder
from course_lib.checks import report


def check_principal_angle(answer) -> bool:
    """Angle in degrees, to one decimal, between the plane z = 0 and the line through (1, 1, 1) in 3-D."""
    plane, line = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), torch.tensor([[1.0], [1.0], [1.0]])
    expected = round(math.degrees(principal_angles(plane, line)[0].item()), 1)
    return report(None if answer is None else round(float(answer), 1), expected,
                  "the cosine is the length of the line's unit vector projected onto the plane")


def check_kl_sparsity(answer, rho: float = 0.05, rho_hat: float = 0.5, D: int = 100) -> bool:
    """The sparsity penalty (natural log, two decimals) of D hidden units that each fire with mean rho_hat, target rho."""
    expected = round(kl_sparsity(torch.full((1, D), rho_hat, dtype=torch.float64), rho).item(), 2)
    return report(None if answer is None else round(float(answer), 2), expected,
                  "D * [rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat))]")


def check_k_sparse(answer, h=(0.3, -1.2, 2.0, 0.7, 0.1), k: int = 2) -> bool:
    """The output (a list) of the k-sparse layer for one example's activations h."""
    expected = [round(v, 6) for v in k_sparse(torch.tensor([h], dtype=torch.float64), k)[0].tolist()]
    return report(None if answer is None else [round(float(v), 6) for v in answer], expected,
                  "keep the k largest values where they are; every other entry becomes 0")


def check_contractive_unit(answer, h: float = 0.5, w_norm_sq: float = 4.0) -> bool:
    """A sigmoid code unit with activation h and weight row of squared norm w_norm_sq: its term of ||J_f(x)||_F^2."""
    W = torch.tensor([[math.sqrt(w_norm_sq)]], dtype=torch.float64)
    expected = sigmoid_contractive_penalty(torch.tensor([[h]], dtype=torch.float64), W).item()
    return report(None if answer is None else float(answer), expected,
                  "the sigmoid's derivative is h (1 - h); square it and multiply by ||W_j||^2")


def check_ae_parameters(answer, d_code: int = 32) -> bool:
    """Parameters (weights and biases) of ``Autoencoder(d_code)``: one linear layer 784 -> d_code and one back."""
    expected = sum(p.numel() for p in Autoencoder(d_code).parameters())
    return report(answer, expected, "each linear layer has in * out weights and out biases")
