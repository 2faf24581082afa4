"""DCGAN (Radford et al. 2016, https://arxiv.org/abs/1511.06434) for 28x28 Fashion-MNIST.

The paper's architecture guidelines (Sec. 3): strided convolutions instead of pooling (transposed ones in G),
batch norm in both nets except G's output layer and D's input layer, no hidden fully connected layers beyond
the projection of z, ReLU in G with a tanh output, LeakyReLU(0.2) in D.

Inside every GAN of the course images live in [-1, 1] (tanh's range); :func:`to_gan` and :func:`to_unit` convert
from and to the course's [0, 1], where the judge and the figures expect them.
"""

from __future__ import annotations

from torch import Tensor, nn


def to_gan(x: Tensor) -> Tensor:
    """Images in [0, 1] -> [-1, 1]."""
    return x * 2 - 1


def to_unit(x: Tensor) -> Tensor:
    """Images in [-1, 1] (a generator's output) -> [0, 1], clamped."""
    return ((x + 1) / 2).clamp(0, 1)


def check_z(z: Tensor, z_dim: int) -> None:
    if not isinstance(z, Tensor) or z.ndim != 2 or z.shape[1] != z_dim or not z.is_floating_point():
        raise ValueError(f"expected z of shape (B, {z_dim}) float, got {tuple(getattr(z, 'shape', ()))}")


def check_gan_images(x: Tensor, size: int = 28) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (1, size, size) or not x.is_floating_point():
        raise ValueError(f"expected images of shape (B, 1, {size}, {size}) float in [-1, 1], "
                         f"got {tuple(getattr(x, 'shape', ()))}")


class DCGANGenerator(nn.Module):
    """z (B, z_dim) -> images (B, 1, 28, 28) in [-1, 1]: project to (2w, 7, 7), then two stride-2 transposed convs."""

    def __init__(self, z_dim: int = 64, width: int = 32):
        super().__init__()
        w = width
        self.z_dim = z_dim
        self.net = nn.Sequential(
            nn.Linear(z_dim, 2 * w * 7 * 7, bias=False), nn.Unflatten(1, (2 * w, 7, 7)),       # (B, 2w, 7, 7)
            nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1, bias=False),                 # (B, w, 14, 14)
            nn.BatchNorm2d(w), nn.ReLU(),
            nn.ConvTranspose2d(w, 1, 4, stride=2, padding=1), nn.Tanh(),                       # (B, 1, 28, 28)
        )

    def forward(self, z: Tensor) -> Tensor:
        check_z(z, self.z_dim)
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    """Images (B, 1, 28, 28) in [-1, 1] -> logits (B,): two stride-2 convs, then one linear layer."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(1, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),                         # (B, w, 14, 14)
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * w),      # (B, 2w, 7, 7)
            nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(2 * w * 7 * 7, 1),                                           # (B, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        check_gan_images(x)
        return self.net(x)[:, 0]
