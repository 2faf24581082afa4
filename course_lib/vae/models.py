"""The AE and the VAE of notebook 07: MLP encoders and decoders with the Bernoulli decoder of ``kernels``."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from course_lib.vae.kernels import (
    IMAGE_SHAPE,
    _check_count,
    _check_images,
    _check_latent,
    _dtype,
    bernoulli_log_likelihood,
    gaussian_kl,
    gaussian_log_prob,
    reparameterize,
)


def mlp(*sizes: int) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


class AE(nn.Module):
    """A plain deterministic autoencoder with the VAE's shape: x (N, C, H, W) -> z (N, D) -> logits.

    Trained with the same Bernoulli reconstruction term and no KL: nothing organises its latent space."""

    def __init__(self, latent_dim: int = 2, hidden: int = 256, image_shape: tuple[int, ...] = IMAGE_SHAPE):
        super().__init__()
        self.latent_dim, self.image_shape = latent_dim, tuple(image_shape)
        P = math.prod(image_shape)
        self.encoder = mlp(P, hidden, hidden, latent_dim)
        self.decoder = mlp(latent_dim, hidden, hidden, P)

    def encode(self, x: Tensor) -> Tensor:
        _check_images(x, self.image_shape)
        return self.encoder(x.flatten(1).to(_dtype(self)))              # (N, D)

    def decode(self, z: Tensor) -> Tensor:
        """z (..., D) -> Bernoulli logits (..., C, H, W)."""
        _check_latent(z, self.latent_dim)
        return self.decoder(z.to(_dtype(self))).unflatten(-1, self.image_shape)

    def terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(log p(x | z = encode(x)), 0) per example: the reconstruction term alone."""
        recon = bernoulli_log_likelihood(self.decode(self.encode(x)), x)
        return recon, torch.zeros_like(recon)


class VAE(nn.Module):
    """q(z|x) = N(mu(x), diag exp(logvar(x))), p(z) = N(0, I), p(x|z) = Bernoulli(sigmoid(decoder(z))).

    x (N, C, H, W) -> encoder (MLP) -> mu, logvar (N, D); z (N, D) -> decoder (MLP) -> logits (N, C, H, W)."""

    def __init__(self, latent_dim: int = 16, hidden: int = 256, image_shape: tuple[int, ...] = IMAGE_SHAPE):
        super().__init__()
        self.latent_dim, self.image_shape = latent_dim, tuple(image_shape)
        P = math.prod(image_shape)
        self.encoder = mlp(P, hidden, hidden, 2 * latent_dim)
        self.decoder = mlp(latent_dim, hidden, hidden, P)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _check_images(x, self.image_shape)
        mu, logvar = self.encoder(x.flatten(1).to(_dtype(self))).chunk(2, -1)  # (N, D) each
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """z (..., D) -> Bernoulli logits (..., C, H, W)."""
        _check_latent(z, self.latent_dim)
        return self.decoder(z.to(_dtype(self))).unflatten(-1, self.image_shape)

    def terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """ELBO terms (K&W Eq. 3) per example: (E_q log p(x|z) with one z, KL(q(z|x) || p(z))), each (N,)."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)                                  # (N, D)
        return bernoulli_log_likelihood(self.decode(z), x), gaussian_kl(mu, logvar)

    def log_weights(self, x: Tensor, k: int) -> Tensor:
        """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x): x (N, C, H, W) -> (k, N)."""
        mu, logvar = self.encode(x)                                     # (N, D)
        z = reparameterize(mu.expand(k, *mu.shape), logvar.expand(k, *logvar.shape))  # (k, N, D)
        return (bernoulli_log_likelihood(self.decode(z), x) + gaussian_log_prob(z)
                - gaussian_log_prob(z, mu, logvar))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Decoder means sigmoid(logits) of z ~ p(z) = N(0, I): (n, C, H, W) gray images."""
        _check_count(n)
        dev = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(dev)
        return torch.sigmoid(self.decode(z))


# ---------------------------------------------------------------------------------------------- training
