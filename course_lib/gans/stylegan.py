"""StyleGAN (Karras et al. 2019, https://arxiv.org/abs/1812.04948) at 28x28: the style-based generator.

- **mapping network** f (Sec. 2): z -> w through an MLP (8 layers in the paper, 4 here, learning rate x 0.01);
- **AdaIN** (Eq. 1): AdaIN(x_i, y) = y_s,i * (x_i - mu(x_i)) / sigma(x_i) + y_b,i, one per conv layer, with the
  style y = (y_s, y_b) a learned affine map "A" of w: each layer's statistics are set by w;
- **per-layer noise** (Sec. 2, "B"): a single-channel Gaussian image, scaled per channel by learned factors,
  added after each conv -- the stochastic detail (hair, texture) that w does not fix;
- the synthesis starts from a **learned constant** 7x7 tensor instead of z;
- **style mixing** (Sec. 3.1): w1 drives the layers before a crossover point and w2 those after it;
- **truncation** (Sec. 3.1, Eq. 3 of Appendix B): w' = w_avg + psi (w - w_avg), w_avg tracked during training.

This is StyleGAN 1's AdaIN generator (not StyleGAN 2's modulated convolution), trained at 28x28 directly,
without progressive growing, against :class:`~course_lib.gans.progan.ProDiscriminator`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_lib.gans.dcgan import check_z
from course_lib.gans.progan import EqualizedConv2d, EqualizedLinear, lrelu, pixel_norm, upsample


def adain(x: Tensor, y_s: Tensor, y_b: Tensor, eps: float = 1e-5) -> Tensor:
    """Eq. 1: x (B, C, H, W), y_s and y_b (B, C) -> y_s * (x - mean) / std + y_b, statistics per image and channel."""
    B, C = x.shape[:2]
    if y_s.shape != (B, C) or y_b.shape != (B, C):
        raise ValueError(f"expected styles y_s, y_b of shape (B, C) = ({B}, {C}), got {tuple(y_s.shape)}, "
                         f"{tuple(y_b.shape)}")
    mu = x.mean(dim=(2, 3), keepdim=True)                                   # (B, C, 1, 1)
    sigma = (x.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return y_s[:, :, None, None] * (x - mu) / sigma + y_b[:, :, None, None]


class StyleLayer(nn.Module):
    """(optional upsample, 3x3 conv), + B * noise, LeakyReLU, AdaIN with the style A(w)."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, conv: bool = True, up: bool = False):
        super().__init__()
        self.up = up
        self.conv = EqualizedConv2d(c_in, c_out, 3) if conv else None
        self.noise_strength = nn.Parameter(torch.zeros(c_out))              # "B": learned per-channel scale
        self.affine = EqualizedLinear(w_dim, 2 * c_out, gain=1.0)           # "A": w -> (y_s, y_b)
        with torch.no_grad():
            self.affine.bias[:c_out] = 1.0                                   # y_s starts at 1

    def forward(self, x: Tensor, w: Tensor, noise: Tensor | None = None) -> Tensor:
        if self.up:
            x = upsample(x)
        if self.conv is not None:
            x = self.conv(x)
        B, C, H, W = x.shape
        if noise is None:
            noise = torch.randn(B, 1, H, W, device=x.device, dtype=x.dtype)
        x = lrelu(x + self.noise_strength[None, :, None, None] * noise)
        y_s, y_b = self.affine(w).chunk(2, dim=1)                           # (B, C) each
        return adain(x, y_s, y_b)


class StyleGenerator(nn.Module):
    """z (B, z_dim) -> images (B, 1, 28, 28): mapping to w, then 6 style layers from a learned 7x7 constant.

    ``forward(z, psi=1.0, z2=None, crossover=None, noise=None)``: truncation psi, style mixing (w of z drives
    layers < crossover, w of z2 the others) and fixed noise images (a list, one (B, 1, H, W) per layer)."""

    def __init__(self, z_dim: int = 128, w_dim: int = 128, channels: tuple[int, int, int] = (64, 32, 16),
                 mapping_layers: int = 4, w_avg_beta: float = 0.995):
        super().__init__()
        C = tuple(channels)
        self.z_dim, self.w_dim, self.w_avg_beta = z_dim, w_dim, w_avg_beta
        self.mapping = nn.Sequential(*[m for i in range(mapping_layers) for m in
                                       (EqualizedLinear(z_dim if i == 0 else w_dim, w_dim, lr_mul=0.01),
                                        nn.LeakyReLU(0.2))])
        self.const = nn.Parameter(torch.ones(1, C[0], 7, 7))
        self.layers = nn.ModuleList([
            StyleLayer(C[0], C[0], w_dim, conv=False), StyleLayer(C[0], C[0], w_dim),        # 7 x 7
            StyleLayer(C[0], C[1], w_dim, up=True), StyleLayer(C[1], C[1], w_dim),           # 14 x 14
            StyleLayer(C[1], C[2], w_dim, up=True), StyleLayer(C[2], C[2], w_dim),           # 28 x 28
        ])
        self.to_rgb = EqualizedConv2d(C[2], 1, 1, gain=1.0)
        self.register_buffer("w_avg", torch.zeros(w_dim))                                 # for truncation

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def map(self, z: Tensor, psi: float = 1.0) -> Tensor:
        """z (B, z_dim) -> w (B, w_dim), truncated towards w_avg by psi (1: none). Tracks w_avg in training."""
        check_z(z, self.z_dim)
        w = self.mapping(pixel_norm(z))
        if self.training:
            with torch.no_grad():
                self.w_avg.lerp_(w.mean(0), 1 - self.w_avg_beta)
        return torch.lerp(self.w_avg, w, psi) if psi != 1 else w

    def synthesis(self, ws: Tensor, noise: list[Tensor] | None = None) -> Tensor:
        """ws (B, num_layers, w_dim): one w per layer -> images (B, 1, 28, 28)."""
        B = ws.shape[0]
        if ws.ndim != 3 or ws.shape[1:] != (self.num_layers, self.w_dim):
            raise ValueError(f"expected ws of shape (B, {self.num_layers}, {self.w_dim}), got {tuple(ws.shape)}")
        x = self.const.expand(B, -1, -1, -1)
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i], None if noise is None else noise[i])
        return self.to_rgb(x)

    def forward(self, z: Tensor, psi: float = 1.0, z2: Tensor | None = None, crossover: int | None = None,
                noise: list[Tensor] | None = None) -> Tensor:
        w = self.map(z, psi)
        ws = w[:, None].repeat(1, self.num_layers, 1)                         # (B, L, w_dim)
        if z2 is not None:
            if crossover is None or not 0 <= crossover <= self.num_layers:
                raise ValueError(f"style mixing needs a crossover layer in 0..{self.num_layers}, got {crossover}")
            ws[:, crossover:] = self.map(z2, psi)[:, None]
        return self.synthesis(ws, noise)
