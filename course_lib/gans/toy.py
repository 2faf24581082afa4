"""A GAN on 2-D toy data: the ring of Gaussians, small MLPs G and D, the losses, a mode-coverage metric.

Goodfellow et al. 2014 (https://arxiv.org/abs/1406.2661). With D's output a logit l (D(x) = sigmoid(l)):

- D maximizes Eq. 1, V = E_data[log D(x)] + E_z[log(1 - D(G(z)))]: :func:`d_loss` is -V on a batch, the
  binary cross-entropy of "real" (label 1) and "fake" (label 0);
- G minimizes E_z[log(1 - D(G(z)))] (the *saturating* loss of the minimax game, :func:`g_loss_saturating`),
  or, as the paper recommends in Sec. 3, maximizes E_z[log D(G(z))] (the *non-saturating* loss,
  :func:`g_loss_nonsaturating`): the same fixed point, but a strong gradient early in training when D
  confidently rejects the fakes. d/dl log(1 - sigmoid(l)) = -sigmoid(l) = -D, which vanishes as D -> 0, while
  d/dl [-log sigmoid(l)] = -(1 - D), which stays near -1.

All the losses are written from logits with softplus (log sigmoid(l) = -softplus(-l), log(1 - sigmoid(l)) =
-softplus(l)), which is finite for any logit; log(sigmoid(l)) overflows to -inf once sigmoid(l) underflows.
The ring of Gaussians is the 2-D benchmark of mode collapse (Metz et al. 2017, "Unrolled GANs", Sec. 3.1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ---------------------------------------------------------------------------------------------- data


def ring_centers(k: int = 8, radius: float = 2.0) -> Tensor:
    """The k mode centres evenly spaced on a circle of the given radius: (k, 2), the first at (radius, 0)."""
    if k < 1 or radius < 0:
        raise ValueError(f"ring_centers needs k >= 1 modes and radius >= 0, got k={k}, radius={radius}")
    angles = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
    return (radius * torch.stack([angles.cos(), angles.sin()], 1)).float()      # (k, 2)


def mixture_of_gaussians_2d(n: int, k: int = 8, radius: float = 2.0, std: float = 0.05,
                            generator: torch.Generator | None = None) -> Tensor:
    """n samples (n, 2) of an equal-weight mixture of k isotropic Gaussians N(c_j, std^2 I) on a ring."""
    if n < 0 or std < 0:
        raise ValueError(f"mixture_of_gaussians_2d needs n >= 0 samples and std >= 0, got n={n}, std={std}")
    centers = ring_centers(k, radius)                                            # (k, 2)
    which = torch.randint(k, (n,), generator=generator)                          # (n,) mode of each sample
    return centers[which] + std * torch.randn(n, 2, generator=generator)       # (n, 2)


def mode_coverage(samples: Tensor, centers: Tensor, std: float, min_share: float = 0.25) -> dict:
    """How well samples (N, 2) cover the modes centers (k, 2) of a ring of Gaussians of standard deviation std.

    A sample is *high quality* when it lies within 3 std of its nearest centre (Metz et al. 2017); a mode is
    *hit* when its high-quality samples number at least ``min_share`` of its fair share N / k. Returns
    ``{"modes_hit": int, "high_quality": fraction in [0, 1], "counts": (k,) high-quality samples per mode}``.
    """
    if samples.ndim != 2 or samples.shape[1] != 2 or centers.ndim != 2 or centers.shape[1] != 2:
        raise ValueError(f"mode_coverage needs samples (N, 2) and centers (k, 2), "
                         f"got {tuple(samples.shape)} and {tuple(centers.shape)}")
    N, k = len(samples), len(centers)
    dist = torch.cdist(samples.float(), centers.float())                        # (N, k)
    nearest, which = dist.min(1)                                                 # (N,), (N,)
    good = nearest <= 3 * std                                                    # (N,) high-quality samples
    counts = torch.bincount(which[good], minlength=k)                            # (k,)
    return {"modes_hit": int((counts >= min_share * N / k).sum()) if N else 0,
            "high_quality": float(good.float().mean()) if N else 0.0, "counts": counts}


# ---------------------------------------------------------------------------------------------- models


def mlp(d_in: int, d_out: int, hidden: int, depth: int, act: Callable[[], nn.Module] = nn.ReLU) -> nn.Sequential:
    """d_in -> [hidden, act] x depth -> d_out."""
    layers, width = [], d_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, d_out))


class Generator(nn.Module):
    """G: noise z (B, Z) ~ N(0, I) -> samples x (B, D), an MLP with ReLUs."""

    def __init__(self, z_dim: int = 8, x_dim: int = 2, hidden: int = 128, depth: int = 2):
        super().__init__()
        self.z_dim = z_dim
        self.net = mlp(z_dim, x_dim, hidden, depth)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)                                                       # (B, D)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples (n, D): G(z) with z ~ N(0, I) drawn from ``generator``."""
        z = torch.randn(n, self.z_dim, generator=generator).to(next(self.parameters()).device)
        return self(z)


class Discriminator(nn.Module):
    """D: samples x (B, D) -> logits l (B,); D(x) = sigmoid(l) is the probability that x is real data."""

    def __init__(self, x_dim: int = 2, hidden: int = 128, depth: int = 2):
        super().__init__()
        self.net = mlp(x_dim, 1, hidden, depth, act=lambda: nn.LeakyReLU(0.2))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)[:, 0]                                                 # (B,) logits


# ---------------------------------------------------------------------------------------------- losses


def d_loss(d_real_logits: Tensor, d_fake_logits: Tensor) -> Tensor:
    """-V on a batch: -mean log D(x) - mean log(1 - D(G(z))) = BCE(real, 1) + BCE(fake, 0).

    d_real_logits (B,), d_fake_logits (B',) -> () nats. At D = D* it estimates log 4 - 2 JSD(p_data || p_g)."""
    return F.softplus(-d_real_logits).mean() + F.softplus(d_fake_logits).mean()


def g_loss_saturating(d_fake_logits: Tensor) -> Tensor:
    """The minimax generator loss mean log(1 - D(G(z))) (to minimize): d_fake_logits (B,) -> () nats."""
    return -F.softplus(d_fake_logits).mean()


def g_loss_nonsaturating(d_fake_logits: Tensor) -> Tensor:
    """The non-saturating generator loss -mean log D(G(z)) (Goodfellow et al. Sec. 3): (B,) -> () nats."""
    return F.softplus(-d_fake_logits).mean()
