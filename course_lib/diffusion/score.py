"""Denoising score matching and Langevin dynamics (the score-based view of diffusion).

- Vincent 2011, "A Connection Between Score Matching and Denoising Autoencoders": for x~ = x + sigma z,
  z ~ N(0, I), minimizing E ||s(x~) - grad_{x~} log q_sigma(x~ | x)||^2 = E ||s(x~) + (x~ - x) / sigma^2||^2
  over s gives the score of the *perturbed* density, s*(x~) = grad log q_sigma(x~), q_sigma = p_data * N(0, sigma^2 I).
- Song & Ermon 2019, "Generative Modeling by Estimating Gradients of the Data Distribution"
  (https://arxiv.org/abs/1907.05600): Eq. 2, Langevin dynamics x <- x + (eps/2) grad log p(x) + sqrt(eps) z;
  Eq. 5-6, the noise-conditional DSM objective l(theta; sigma) = 1/2 E ||s(x~, sigma) + (x~ - x) / sigma^2||^2
  weighted by lambda(sigma) = sigma^2 (so every noise level contributes O(1)); Algorithm 1, annealed Langevin
  dynamics over sigma_1 > ... > sigma_L with step sizes alpha_i = eps sigma_i^2 / sigma_L^2.

Shapes: x (B, ...) any trailing shape (B, 2) for the toy, (B, 1, 28, 28) for images; sigma a float or (B,).
A score function maps x (B, ...) (and, noise-conditional, sigma (B,)) to a tensor of x's shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from course_lib.utils import values_checkable


def _sigma_column(sigma: float | Tensor, x: Tensor) -> Tensor:
    """sigma (a float, a 0-d tensor or (B,)) -> (B,) and (B, 1, ..., 1) views in x's dtype, all > 0."""
    B = x.shape[0]
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if s.ndim == 0:
        s = s.expand(B)
    if s.shape != (B,):
        raise ValueError(f"expected sigma a float or a tensor of shape ({B},), got {tuple(s.shape)}")
    if values_checkable(s) and bool((s <= 0).any()):
        raise ValueError("expected sigma > 0")
    return s


def dsm_loss(score_model: Callable[[Tensor, Tensor], Tensor], x: Tensor, sigma: float | Tensor,
             z: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Song & Ermon Eq. 5-6 with lambda(sigma) = sigma^2, i.e. Vincent's DSM loss times sigma^2:

        sigma^2 * 1/2 ||s(x~, sigma) + (x~ - x) / sigma^2||^2 = 1/2 ||sigma s(x~, sigma) + z||^2,  x~ = x + sigma z,

    summed over the dimensions of each example and averaged over the batch.

    score_model(x~ (B, ...), sigma (B,)) -> (B, ...); x (B, ...) clean data; sigma a float or (B,) (one noise
    level per example, as in Song & Ermon's training); z (B, ...) the noise (drawn from ``generator`` if None)
    -> scalar. Its minimizer over s is the score of the perturbed density q_sigma at each sigma."""
    if not isinstance(x, Tensor) or x.ndim < 1 or not x.is_floating_point():
        raise ValueError(f"expected x a float tensor of shape (B, ...), got {getattr(x, 'shape', type(x))}")
    s = _sigma_column(sigma, x)                                          # (B,)
    if z is None:
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    elif z.shape != x.shape:
        raise ValueError(f"expected z of shape {tuple(x.shape)} (the shape of x), got {tuple(z.shape)}")
    col = s.view(-1, *([1] * (x.ndim - 1)))                              # (B, 1, ..., 1)
    x_tilde = x + col * z                                                # (B, ...)
    score = score_model(x_tilde, s)                                      # (B, ...)
    if score.shape != x.shape:
        raise ValueError(f"expected score_model to return shape {tuple(x.shape)}, got {tuple(score.shape)}")
    return 0.5 * (col * score + z).flatten(1).pow(2).sum(1).mean()


def langevin_step(x: Tensor, score: Tensor, step_size: float, z: Tensor) -> Tensor:
    """Song & Ermon Eq. 2, one step: x + (eps/2) score + sqrt(eps) z. x, score, z (B, ...) -> (B, ...)."""
    if score.shape != x.shape or z.shape != x.shape:
        raise ValueError(f"expected score and z of shape {tuple(x.shape)}, got {tuple(score.shape)}, {tuple(z.shape)}")
    if step_size <= 0:
        raise ValueError(f"expected a step size eps > 0, got {step_size}")
    return x + 0.5 * step_size * score + math.sqrt(step_size) * z


def langevin(score_fn: Callable[[Tensor], Tensor], x: Tensor, step_size: float, n_steps: int,
             generator: torch.Generator | None = None) -> Tensor:
    """n_steps of Langevin dynamics (Eq. 2) from x (B, ...) with score_fn(x (B, ...)) -> (B, ...) = grad log p.
    As eps -> 0 and n_steps -> inf, x is a sample of p (Welling & Teh 2011). -> (B, ...), no gradient."""
    with torch.no_grad():
        for _ in range(n_steps):
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x = langevin_step(x, score_fn(x), step_size, z)
    return x


def geometric_sigmas(sigma_1: float, sigma_L: float, L: int) -> Tensor:
    """Song & Ermon Sec. 4.2: a geometric sequence sigma_1 > ... > sigma_L (sigma_i / sigma_{i+1} constant). -> (L,)."""
    if not sigma_1 > sigma_L > 0 or L < 2:
        raise ValueError(f"expected sigma_1 > sigma_L > 0 and L >= 2, got {sigma_1}, {sigma_L}, {L}")
    return torch.logspace(math.log10(sigma_1), math.log10(sigma_L), L, dtype=torch.float64)


def annealed_langevin(score_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, sigmas: Tensor | list[float],
                      eps: float, steps_per_sigma: int, generator: torch.Generator | None = None) -> Tensor:
    """Song & Ermon Algorithm 1: for sigma_i in sigma_1 > ... > sigma_L, alpha_i = eps sigma_i^2 / sigma_L^2,
    then ``steps_per_sigma`` Langevin steps x <- x + (alpha_i/2) s(x, sigma_i) + sqrt(alpha_i) z.

    score_fn(x (B, ...), sigma (B,)) -> (B, ...); x (B, ...) the start (e.g. uniform noise); sigmas (L,)
    decreasing -> x (B, ...), a sample of (about) q_{sigma_L}, without gradient."""
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if len(sigmas) < 1 or bool((sigmas <= 0).any()) or bool((sigmas[1:] >= sigmas[:-1]).any()):
        raise ValueError(f"expected sigmas (L,) positive and strictly decreasing, got {sigmas.tolist()}")
    B = x.shape[0]
    with torch.no_grad():
        for sigma in sigmas.tolist():
            alpha = eps * sigma**2 / float(sigmas[-1]) ** 2
            s = torch.full((B,), sigma, dtype=x.dtype, device=x.device)
            for _ in range(steps_per_sigma):
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                x = langevin_step(x, score_fn(x, s), alpha, z)
    return x
