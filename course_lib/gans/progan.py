"""Progressive GAN (Karras et al. 2018, https://arxiv.org/abs/1710.10196) at 7 -> 14 -> 28 pixels.

Its four ideas, each a short kernel here:

- **growing with fade-in** (Sec. 2, Fig. 2): a new resolution's block enters with weight alpha rising 0 -> 1,
  out = (1 - alpha) * upsample(toRGB_old(h)) + alpha * toRGB_new(block(upsample(h))), and D mirrors it;
- **minibatch standard deviation** (Sec. 3): the std of each feature over the minibatch, averaged to one number
  and appended as a constant feature map, lets D see a batch's variety (against mode collapse);
- **equalized learning rate** (Sec. 4.1): weights drawn from N(0, 1) and multiplied at run time by He's
  constant c = sqrt(2 / fan_in), so Adam's per-parameter steps are equally large for every layer;
- **pixelwise feature normalization** (Sec. 4.2): b = a / sqrt(mean_j a_j^2 + 1e-8) over the channels of
  each pixel, after every conv of G.

The paper trains with WGAN-GP; this course uses the non-saturating logistic loss with an R1 penalty (as
StyleGAN does), so that the three GANs of notebook 10 differ only in their architecture.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.gans.dcgan import check_gan_images, check_z

RESOLUTIONS = (7, 14, 28)


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Sec. 4.2: x (B, C, ...) divided by the root mean square over its C channels, at each position."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Sec. 3: x (B, C, H, W) -> (B, C + 1, H, W), the extra map the mean over (C, H, W) of the batch's std."""
    B, C, H, W = x.shape
    std = (x.var(dim=0, unbiased=False) + eps).sqrt().mean()            # (): one number for the batch
    return torch.cat([x, std.expand(B, 1, H, W)], dim=1)


def fade_in(alpha: float, old: Tensor, new: Tensor) -> Tensor:
    """Fig. 2 (b): (1 - alpha) * old + alpha * new, same shapes; alpha goes 0 -> 1 while a block grows in."""
    return torch.lerp(old, new, alpha)


class EqualizedLinear(nn.Module):
    """Sec. 4.1: y = (c W) x + b with W ~ N(0, 1) stored and c = gain / sqrt(fan_in) applied at run time.

    ``lr_mul`` (StyleGAN's mapping network) scales both the stored weights' init and their run-time use."""

    def __init__(self, d_in: int, d_out: int, gain: float = math.sqrt(2), lr_mul: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((d_out,), float(bias_init)) / lr_mul)
        self.scale, self.lr_mul = gain / math.sqrt(d_in) * lr_mul, lr_mul

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualizedConv2d(nn.Module):
    """Sec. 4.1 for a k x k convolution with 'same' padding: weights N(0, 1) times sqrt(2 / (C_in k k))."""

    def __init__(self, c_in: int, c_out: int, k: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale, self.padding = gain / math.sqrt(c_in * k * k), k // 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


def upsample(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, 2H, 2W), nearest neighbour."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downsample(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, H/2, W/2), 2x2 average."""
    return F.avg_pool2d(x, 2)


def real_at(x: Tensor, res: int, alpha: float = 1.0) -> Tensor:
    """Real images (B, 1, 28, 28) shown to D at resolution ``res``, faded like G's output while ``res`` grows in."""
    while x.shape[-1] > res:
        x = downsample(x)
    if alpha < 1 and res > RESOLUTIONS[0]:
        x = fade_in(alpha, upsample(downsample(x)), x)
    return x


class ProGenerator(nn.Module):
    """z (B, z_dim) -> images (B, 1, res, res) in about [-1, 1], for res in 7, 14, 28 with fade-in alpha.

    ``channels`` per resolution (7, 14, 28): fewer at higher resolution, as in the paper's Table 2."""

    def __init__(self, z_dim: int = 128, channels: tuple[int, int, int] = (64, 32, 16)):
        super().__init__()
        C = self.channels = tuple(channels)
        self.z_dim = z_dim
        self.project = EqualizedLinear(z_dim, C[0] * 7 * 7, gain=math.sqrt(2) / 4)  # the paper's 4x4 'conv' on z
        self.base = EqualizedConv2d(C[0], C[0], 3)
        self.blocks = nn.ModuleList([nn.ModuleList([EqualizedConv2d(C[i], C[i + 1], 3),
                                                    EqualizedConv2d(C[i + 1], C[i + 1], 3)])
                                     for i in range(len(RESOLUTIONS) - 1)])       # to 14, to 28
        self.to_rgb = nn.ModuleList([EqualizedConv2d(c, 1, 1, gain=1.0) for c in C])

    def forward(self, z: Tensor, res: int = 28, alpha: float = 1.0) -> Tensor:
        check_z(z, self.z_dim)
        if res not in RESOLUTIONS:
            raise ValueError(f"res must be one of {RESOLUTIONS}, got {res}")
        h = pixel_norm(lrelu(self.project(pixel_norm(z)).view(-1, self.channels[0], 7, 7)))   # (B, C0, 7, 7)
        h = pixel_norm(lrelu(self.base(h)))
        stage = RESOLUTIONS.index(res)
        for i in range(stage):
            previous = h
            h = upsample(h)                                                      # (B, C_i, 2H, 2W)
            for conv in self.blocks[i]:
                h = pixel_norm(lrelu(conv(h)))                                   # (B, C_i+1, 2H, 2W)
        out = self.to_rgb[stage](h)                                              # (B, 1, res, res)
        if stage and alpha < 1:
            out = fade_in(alpha, upsample(self.to_rgb[stage - 1](previous)), out)
        return out


class ProDiscriminator(nn.Module):
    """Images (B, 1, res, res) -> logits (B,), mirroring :class:`ProGenerator`, minibatch std before the end."""

    def __init__(self, channels: tuple[int, int, int] = (64, 32, 16)):
        super().__init__()
        C = tuple(channels)
        self.from_rgb = nn.ModuleList([EqualizedConv2d(1, c, 1) for c in C])
        self.blocks = nn.ModuleList([nn.ModuleList([EqualizedConv2d(C[i + 1], C[i + 1], 3),
                                                    EqualizedConv2d(C[i + 1], C[i], 3)])
                                     for i in range(len(RESOLUTIONS) - 1)])       # 14 -> 7 and 28 -> 14
        self.final_conv = EqualizedConv2d(C[0] + 1, C[0], 3)
        self.final = nn.Sequential(nn.Flatten(), EqualizedLinear(C[0] * 7 * 7, C[0]), nn.LeakyReLU(0.2),
                                   EqualizedLinear(C[0], 1, gain=1.0))

    def forward(self, x: Tensor, res: int = 28, alpha: float = 1.0) -> Tensor:
        if res not in RESOLUTIONS:
            raise ValueError(f"res must be one of {RESOLUTIONS}, got {res}")
        check_gan_images(x, res)
        stage = RESOLUTIONS.index(res)
        h = lrelu(self.from_rgb[stage](x))                                       # (B, C_stage, res, res)
        for i in reversed(range(stage)):
            for conv in self.blocks[i]:
                h = lrelu(conv(h))
            h = downsample(h)                                                    # (B, C_i, res/2, res/2)
            if i == stage - 1 and alpha < 1:
                h = fade_in(alpha, lrelu(self.from_rgb[stage - 1](downsample(x))), h)
        h = lrelu(self.final_conv(minibatch_stddev(h)))                          # (B, C0, 7, 7)
        return self.final(h)[:, 0]
