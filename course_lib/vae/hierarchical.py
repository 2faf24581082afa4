"""A Markovian hierarchical VAE: T layers of latents, each generated from the one above it.

The notes' "Hierarchical VAE" (the form of Luo 2022, "Understanding Diffusion Models: A Unified
Perspective", Eqs. 23-24; Sonderby et al. 2016 and Vahdat & Kautz 2020 refine it):

    generative  p(x, z_{1:T}) = p(z_T) p(x | z_1) prod_{t=2}^{T} p(z_{t-1} | z_t),   p(z_T) = N(0, I)
    inference   q(z_{1:T} | x) = q(z_1 | x) prod_{t=2}^{T} q(z_t | z_{t-1})

Every conditional is a diagonal Gaussian whose mean and log-variance an MLP computes, except
p(x | z_1), the Bernoulli decoder of ``course_lib.vae.vae`` (same likelihood, same binarized data).
The ELBO is E_q[log p(x, z_{1:T}) - log q(z_{1:T} | x)]; :meth:`HierarchicalVAE.terms` splits it into the
reconstruction term E_q log p(x | z_1) and KL(q(z_{1:T} | x) || p(z_{1:T})), estimated with one sampled
chain, the top layer's KL to N(0, I) in closed form. :meth:`HierarchicalVAE.log_weights` gives the
importance weights of the IWAE bound, so ``vae.elbo`` and ``vae.iwae_nll`` work unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from course_lib import checkpoints
from course_lib.profiles import pick
from course_lib.utils import device as default_device
from course_lib.vae.vae import (
    FALLBACK,
    IMAGE_SHAPE,
    TrainConfig,
    _check_count,
    _check_images,
    _check_latent,
    _describe,
    _dtype,
    bernoulli_log_likelihood,
    gaussian_kl,
    gaussian_log_prob,
    mlp,
    reparameterize,
    train_model,
)


class HierarchicalVAE(nn.Module):
    """Latents z_1 (N, D_1), ..., z_T (N, D_T) with ``latent_dims = (D_1, ..., D_T)``, T >= 2.

    q(z_1 | x): MLP x -> hidden -> hidden -> (mu, logvar);  q(z_t | z_{t-1}): MLP with one ``top_hidden`` layer;
    p(z_{t-1} | z_t): MLP with one ``top_hidden`` layer;     p(x | z_1): MLP z_1 -> hidden -> hidden -> logits."""

    def __init__(self, latent_dims: tuple[int, ...] = (16, 8), hidden: int = 252, top_hidden: int = 128,
                 image_shape: tuple[int, ...] = IMAGE_SHAPE):
        super().__init__()
        if len(latent_dims) < 2:
            raise ValueError(f"a hierarchical VAE needs >= 2 latent layers, got latent_dims={latent_dims}")
        self.latent_dims, self.image_shape = tuple(latent_dims), tuple(image_shape)
        P, d = math.prod(image_shape), self.latent_dims
        self.encoder = mlp(P, hidden, hidden, 2 * d[0])                                           # q(z_1 | x)
        self.up = nn.ModuleList(mlp(d[t - 1], top_hidden, 2 * d[t]) for t in range(1, len(d)))    # q(z_t | z_{t-1})
        self.down = nn.ModuleList(mlp(d[t], top_hidden, 2 * d[t - 1]) for t in range(1, len(d)))  # p(z_{t-1} | z_t)
        self.decoder = mlp(d[0], hidden, hidden, P)                                               # p(x | z_1)

    @property
    def T(self) -> int:
        return len(self.latent_dims)

    def decode(self, z1: Tensor) -> Tensor:
        """z_1 (..., D_1) -> Bernoulli logits (..., C, H, W) of p(x | z_1)."""
        _check_latent(z1, self.latent_dims[0], "z_1")
        return self.decoder(z1.to(_dtype(self))).unflatten(-1, self.image_shape)

    def p_step(self, t: int, z_t: Tensor) -> tuple[Tensor, Tensor]:
        """p(z_{t-1} | z_t) for t = 2..T: z_t (..., D_t) -> mu, logvar (..., D_{t-1})."""
        if not 2 <= t <= self.T:
            raise ValueError(f"expected t in 2..{self.T}, got {t}")
        d = self.latent_dims[t - 1]
        if not isinstance(z_t, Tensor) or z_t.ndim < 1 or z_t.shape[-1] != d or not z_t.is_floating_point():
            raise ValueError(f"expected float z_t (..., {d}) at level {t}, got {_describe(z_t)}")
        return self.down[t - 2](z_t.to(_dtype(self))).chunk(2, -1)

    def infer(self, x: Tensor, k: int | None = None) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Sample the inference chain bottom-up: x (N, C, H, W) -> [(z_t, mu_t, logvar_t) for t = 1..T],
        each (N, D_t), or (k, N, D_t) with k samples per image."""
        _check_images(x, self.image_shape)
        mu, logvar = self.encoder(x.flatten(1).to(_dtype(self))).chunk(2, -1)  # (N, D_1)
        if k is not None:
            mu, logvar = mu.expand(k, *mu.shape), logvar.expand(k, *logvar.shape)  # (k, N, D_1)
        chain = [(reparameterize(mu, logvar), mu, logvar)]
        for up in self.up:
            mu, logvar = up(chain[-1][0]).chunk(2, -1)                        # q(z_t | z_{t-1})
            chain.append((reparameterize(mu, logvar), mu, logvar))
        return chain

    def _log_p_minus_log_q_below_top(self, chain) -> Tensor:
        """sum_{t=1}^{T-1} [log p(z_t | z_{t+1}) - log q(z_t | .)] for one sampled chain -> (...)."""
        total = 0
        for t in range(1, self.T):                                            # levels 1..T-1 (1-based)
            z, mu_q, logvar_q = chain[t - 1]
            mu_p, logvar_p = self.p_step(t + 1, chain[t][0])
            total = total + gaussian_log_prob(z, mu_p, logvar_p) - gaussian_log_prob(z, mu_q, logvar_q)
        return total

    def kl_per_level(self, x: Tensor) -> list[Tensor]:
        """The KL term of ``terms`` split by level, each (N,), one sampled chain: for t < T the single-sample
        E_q[log q(z_t | .) - log p(z_t | z_{t+1})], for the top level KL(q(z_T | z_{T-1}) || N(0, I)) in closed
        form. Their sum is ``terms``' KL for the same chain."""
        chain = self.infer(x)
        levels = []
        for t in range(1, self.T):
            z, mu_q, logvar_q = chain[t - 1]
            mu_p, logvar_p = self.p_step(t + 1, chain[t][0])
            levels.append(gaussian_log_prob(z, mu_q, logvar_q) - gaussian_log_prob(z, mu_p, logvar_p))
        return levels + [gaussian_kl(chain[-1][1], chain[-1][2])]

    def terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(E_q log p(x | z_1), KL(q(z_{1:T} | x) || p(z_{1:T}))) per example (N,), one sampled chain;
        the top layer's KL(q(z_T | z_{T-1}) || N(0, I)) in closed form."""
        chain = self.infer(x)
        recon = bernoulli_log_likelihood(self.decode(chain[0][0]), x)
        kl = gaussian_kl(chain[-1][1], chain[-1][2]) - self._log_p_minus_log_q_below_top(chain)
        return recon, kl

    def log_weights(self, x: Tensor, k: int) -> Tensor:
        """log w = log p(x | z_1) + log p(z_{1:T}) - log q(z_{1:T} | x) of k chains per image -> (k, N)."""
        chain = self.infer(x, k)
        z_top, mu_top, logvar_top = chain[-1]
        return (bernoulli_log_likelihood(self.decode(chain[0][0]), x) + self._log_p_minus_log_q_below_top(chain)
                + gaussian_log_prob(z_top) - gaussian_log_prob(z_top, mu_top, logvar_top))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Ancestral sampling z_T ~ N(0, I), z_{t-1} ~ p(z_{t-1} | z_t), then the decoder's mean: (n, C, H, W)."""
        _check_count(n)
        dev = next(self.parameters()).device
        z = torch.randn(n, self.latent_dims[-1], generator=generator).to(dev)
        for t in range(self.T, 1, -1):
            mu, logvar = self.p_step(t, z)
            z = reparameterize(mu, logvar, torch.randn(mu.shape, generator=generator).to(dev))
        return torch.sigmoid(self.decode(z))


# ---------------------------------------------------------------------------------------------- checkpoint

NAME = "hvae_2level"
SHIPPED = TrainConfig(epochs=40)


def build_hvae() -> HierarchicalVAE:
    """Two levels, z_1 16-D and z_2 8-D, with about the parameters of ``VAE(latent_dim=16)`` (within 1 %)."""
    return HierarchicalVAE((16, 8), hidden=252, top_hidden=128)


def load_hvae(device=None, profile: str = "auto") -> HierarchicalVAE:
    """The trained two-level VAE by checkpoint name, in eval mode: shipped, else cached, else trained now."""
    model = build_hvae().to(device or default_device())
    cfg = pick(FALLBACK, profile)
    model.checkpoint_entry = checkpoints.load(NAME, model, lambda m: train_model(m, cfg), profile=profile)
    return model.eval().requires_grad_(False)
