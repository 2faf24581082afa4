"""GAN theory on a grid: the optimal discriminator, the value function, KL and Jensen-Shannon divergences.

Goodfellow et al. 2014, "Generative Adversarial Nets" (https://arxiv.org/abs/1406.2661):

- Eq. 1, the value function:  V(D, G) = E_{x ~ p_data}[log D(x)] + E_{x ~ p_g}[log(1 - D(x))];
- Proposition 1: for G fixed, the optimal discriminator is  D*_G(x) = p_data(x) / (p_data(x) + p_g(x));
- Theorem 1: the virtual training criterion  C(G) = max_D V(D, G) = V(D*_G, G) = -log 4 + 2 JSD(p_data || p_g),
  whose global minimum -log 4 is reached if and only if p_g = p_data (Eq. 5-6 of the paper's proof).

Everything here works on densities tabulated on a grid (or on discrete distributions). Conventions:

- ``p``, ``q``, ``p_data``, ``p_g`` are (..., K): the last dimension is the support, K grid points or K outcomes
  (flatten a 2-D grid to K = H * W first); the leading dimensions are a batch of distributions.
- ``dx`` is the cell width: a number (a uniform grid; 1 for a discrete distribution, 0.01 for a grid with
  spacing 0.01, dx * dy for a 2-D grid) or a tensor broadcastable to (..., K) (a non-uniform grid). An integral
  int f(x) dx is the Riemann sum ``(f * dx).sum(-1)``, so every density must have ``(p * dx).sum(-1) = 1``.
- Divergences are in nats (natural log), with 0 log 0 = 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

LOG2 = math.log(2.0)
MASS_TOLERANCE = 1e-2  # |sum p dx - 1| allowed: a Riemann sum over a finite grid misses a little mass


def _check(name: str, t: Tensor, dx: float | Tensor = 1.0, *, density: bool = True) -> Tensor:
    """``t`` (..., K) as a float tensor, after checking it is a finite, non-negative density with mass 1."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (..., K), got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a float tensor of shape (..., K), got dtype {t.dtype}")
    if t.ndim == 0 or t.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (..., K) with K >= 1 support points, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got NaN or inf in a tensor of shape {tuple(t.shape)}")
    if density:
        if bool((t < 0).any()):
            raise ValueError(f"{name} must be a density (>= 0), got a minimum of {float(t.min()):.3g}")
        mass = (t * dx).sum(-1)
        if bool(((mass - 1).abs() > MASS_TOLERANCE).any()):
            raise ValueError(f"{name} of shape {tuple(t.shape)} must integrate to 1 over its last dimension "
                             f"((p * dx).sum(-1) = 1 with cell width dx); got masses from {float(mass.min()):.4g} "
                             f"to {float(mass.max()):.4g}")
    return t


def _check_pair(p: Tensor, q: Tensor, dx: float | Tensor, names=("p", "q")) -> None:
    for name, t in zip(names, (p, q)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape (..., K), got {type(t).__name__}")
    if p.shape != q.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape (..., K), "
                         f"got {tuple(p.shape)} and {tuple(q.shape)}")
    _check(names[0], p, dx)
    _check(names[1], q, dx)


def optimal_discriminator(p_data: Tensor, p_g: Tensor) -> Tensor:
    """Proposition 1: D*(x) = p_data(x) / (p_data(x) + p_g(x)), element by element.

    p_data, p_g: the two densities at the same points, any shape (non-negative, finite) -> D* of that shape,
    in [0, 1]. Where both are 0 the ratio is 0/0: there D does not enter V (both of its terms are weighted by a
    zero density), so every value is optimal; we return 1/2, the prior P(y = data) of the two-class view, since
    such an x carries no evidence either way.
    """
    for name, t in (("p_data", p_data), ("p_g", p_g)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise ValueError(f"{name} must be a float tensor, got {getattr(t, 'dtype', type(t).__name__)}")
    if p_data.shape != p_g.shape:
        raise ValueError(f"p_data and p_g must have the same shape, got {tuple(p_data.shape)} and {tuple(p_g.shape)}")
    if bool((p_data < 0).any() | (p_g < 0).any()):
        raise ValueError("p_data and p_g must be densities (>= 0) at each point; got a negative value")
    total = p_data + p_g
    return torch.where(total > 0, p_data / torch.where(total > 0, total, 1.0), 0.5)


def kl_divergence(p: Tensor, q: Tensor, dx: float | Tensor = 1.0) -> Tensor:
    """KL(p || q) = int p log(p / q) dx in nats, for p, q (..., K) -> (...).

    0 log(0 / q) = 0; a point where p > 0 and q = 0 makes it +inf (q misses mass that p has: the reason the
    forward KL forces a model to cover every mode of the data).
    """
    _check_pair(p, q, dx)
    terms = torch.xlogy(p, p) - torch.xlogy(p, q)                   # (..., K); p log q = -inf where q = 0 < p
    return (terms * dx).sum(-1)


def js_divergence(p: Tensor, q: Tensor, dx: float | Tensor = 1.0) -> Tensor:
    """JSD(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m), m = (p + q) / 2, in nats: p, q (..., K) -> (...).

    Symmetric, in [0, log 2]: 0 iff p = q, log 2 iff p and q have disjoint supports. Equals
    ``scipy.spatial.distance.jensenshannon(p, q) ** 2`` (natural log) for discrete distributions.
    """
    _check_pair(p, q, dx)
    m = 0.5 * (p + q)                                                # (..., K), > 0 wherever p or q is
    terms = 0.5 * (torch.xlogy(p, p) - torch.xlogy(p, m)) + 0.5 * (torch.xlogy(q, q) - torch.xlogy(q, m))
    return (terms * dx).sum(-1)


def gan_value(d: Tensor, p_data: Tensor, p_g: Tensor, dx: float | Tensor = 1.0) -> Tensor:
    """Goodfellow et al. Eq. 1 on a grid: V(D) = int [p_data log D + p_g log(1 - D)] dx, in nats.

    d: D(x) in [0, 1] at the grid points; p_data, p_g: densities; all (..., K) -> (...). 0 log 0 = 0, so D may
    be 0 (or 1) where p_data (or p_g) is 0; where the density is positive, such a D gives -inf (for V at D*, where
    that happens by rounding, use :func:`virtual_criterion`).
    """
    _check_pair(p_data, p_g, dx, names=("p_data", "p_g"))
    if not isinstance(d, Tensor) or d.shape != p_data.shape:
        raise ValueError(f"d must be a tensor of the densities' shape {tuple(p_data.shape)}, "
                         f"got {tuple(d.shape) if isinstance(d, Tensor) else type(d).__name__}")
    if bool(((d < 0) | (d > 1) | d.isnan()).any()):
        raise ValueError("d must be a probability, D(x) in [0, 1], at every point")
    return ((torch.xlogy(p_data, d) + torch.xlogy(p_g, 1 - d)) * dx).sum(-1)


def virtual_criterion(p_data: Tensor, p_g: Tensor, dx: float | Tensor = 1.0) -> Tensor:
    """Theorem 1's C(G) = max_D V(D, G) = V(D*_G, G): p_data, p_g (..., K) -> (...), in [-log 4, 0].

    V at D* with log D* = log p_data - log(p_data + p_g) and log(1 - D*) = log p_g - log(p_data + p_g) taken from
    the densities: where p_g < 1e-16 p_data, D* itself rounds to exactly 1 in float64 and ``gan_value(D*, ...)``
    would weight log(1 - 1) = -inf by a tiny but positive p_g.
    """
    _check_pair(p_data, p_g, dx, names=("p_data", "p_g"))
    total = p_data + p_g                                             # (..., K)
    terms = (torch.xlogy(p_data, p_data) - torch.xlogy(p_data, total)) + (torch.xlogy(p_g, p_g) - torch.xlogy(p_g, total))
    return (terms * dx).sum(-1)


def binary_entropy(d: Tensor) -> Tensor:
    """H(d) = -d log d - (1 - d) log(1 - d) in nats, element by element (0 log 0 = 0): the entropy of a two-class
    P(y | x) with P(y = data | x) = d."""
    return -torch.xlogy(d, d) - torch.xlogy(1 - d, 1 - d)


def binary_cross_entropy(target: Tensor, d: Tensor) -> Tensor:
    """CE(target, d) = -target log d - (1 - target) log(1 - d), element by element: the cross-entropy of a
    discriminator's P(y = data | x) = d against the true posterior P(y = data | x) = target."""
    return -torch.xlogy(target, d) - torch.xlogy(1 - target, 1 - d)


def grid(lo: float, hi: float, n: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, float]:
    """n points spaced evenly from lo to hi (cell centres of n equal cells) and the cell width dx."""
    if not (hi > lo and n >= 1):
        raise ValueError(f"grid needs hi > lo and n >= 1, got lo={lo}, hi={hi}, n={n}")
    dx = (hi - lo) / n
    return lo + dx * (torch.arange(n, dtype=dtype) + 0.5), dx
