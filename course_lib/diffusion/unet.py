"""The noise-prediction U-Net eps_theta(x_t, t) of Ho et al. 2020 (Appendix B), sized for 28x28 images.

Ho et al. use a PixelCNN++-style U-Net (Ronneberger et al. 2015; Salimans et al. 2017) with group norm,
self-attention at the 16x16 resolution and the time t given to every residual block through the Transformer's
sinusoidal position embedding (Vaswani et al. 2017, Sec. 3.5). Built in the notes' five steps:

1. a conv on the noisy image; sinusoidal embeddings of the noise level t, then an MLP (Linear, SiLU, Linear);
2. down stages: 2 ResNet blocks (GroupNorm, SiLU, conv, + time embedding, GroupNorm, SiLU, conv, + shortcut),
   then GroupNorm + self-attention + residual (at the low resolutions), then a stride-2 downsample;
3. a middle of ResNet blocks interleaved with attention;
4. up stages mirroring them: each ResNet block takes the stage's output concatenated with the skip saved by
   the matching down block (channels), then attention, then a nearest-neighbour x2 upsample and a conv;
5. a final ResNet block (on the output concatenated with the first conv's), GroupNorm, SiLU and a conv.

Default: channels (32, 64, 64) at resolutions 28 -> 14 -> 7, attention at 7x7 (and in the middle):
about 1.3M parameters (diffusers' comparable ``UNet2DModel`` has 1.1M).
Shapes: B batch, C channels, H, W height, width, D time-embedding width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import attention  # noqa: F401  (Eq. 1 written out; re-exported as course_lib.diffusion.attention)


def sinusoidal_embedding(t: Tensor, dim: int) -> Tensor:
    """Ho et al.'s ``get_timestep_embedding`` (the Transformer's sinusoids, Vaswani et al. Sec. 3.5):
    emb[b, i] = sin(t_b * 10000^(-i / (dim/2 - 1))), emb[b, dim/2 + i] = cos(same), i = 0 .. dim/2 - 1.

    t (B,) int or float (a step or a noise level) -> (B, dim) float32 (float64 if t is float64)."""
    if not isinstance(t, Tensor) or t.ndim != 1:
        raise ValueError(f"expected t of shape (B,), got {tuple(getattr(t, 'shape', ())) or t!r}")
    if dim < 4 or dim % 2:
        raise ValueError(f"expected an even embedding width dim >= 4, got {dim}")
    half = dim // 2
    dtype = t.dtype if t.dtype == torch.float64 else torch.float32
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=dtype, device=t.device) / (half - 1))  # (dim/2,)
    angles = t.to(dtype)[:, None] * freqs[None]                                                        # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)                                              # (B, dim)


class ResBlock(nn.Module):
    """Ho et al.'s residual block: h = conv(SiLU(GN(x))) + Linear(SiLU(temb)); h = conv(SiLU(GN(h)));
    out = shortcut(x) + h (a 1x1 conv when the channels change). x (B, C_in, H, W), temb (B, D) -> (B, C_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int = 8):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(groups, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))                          # (B, C_out, H, W)
        h = h + self.time(F.silu(temb))[:, :, None, None]             # + (B, C_out, 1, 1): the time embedding
        h = self.conv2(F.silu(self.norm2(h)))                          # (B, C_out, H, W)
        return self.shortcut(x) + h


class AttentionBlock(nn.Module):
    """x + proj(MultiHeadSelfAttention(GN(x))) over the H*W positions. (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, heads: int = 4, groups: int = 8):
        super().__init__()
        if channels % heads:
            raise ValueError(f"expected channels divisible by heads, got {channels} and {heads}")
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).view(B, 3, self.heads, C // self.heads, H * W)   # (B, 3, heads, C/heads, HW)
        q, k, v = qkv.transpose(-2, -1).unbind(1)                                       # 3 x (B, heads, HW, C/heads)
        y = F.scaled_dot_product_attention(q, k, v)                                     # (B, heads, HW, C/heads)
        y = y.transpose(-2, -1).reshape(B, C, H, W)                                     # (B, C, H, W)
        return x + self.proj(y)


class UNet(nn.Module):
    """eps_theta(x_t, t): x (B, C, H, W), t (B,) (or a scalar) -> (B, C, H, W), the same shape as x.

    ``channels[i]`` is the width at level i (level i has resolution H / 2^i); ``attention[i]`` says whether
    level i has self-attention; the middle always has. H and W must be multiples of 2^(levels - 1).
    t may be an integer step (DDPM) or a float noise level (a noise-conditional score network).
    """

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (32, 64, 64),
                 attention: tuple[bool, ...] = (False, False, True), heads: int = 4, groups: int = 8):
        super().__init__()
        if len(attention) != len(channels):
            raise ValueError(f"expected one attention flag per level ({len(channels)}), got {attention}")
        self.in_channels, self.channels = in_channels, tuple(channels)
        c0, D = channels[0], 4 * channels[0]
        self.time_mlp = nn.Sequential(nn.Linear(c0, D), nn.SiLU(), nn.Linear(D, D))        # step 1
        self.conv_in = nn.Conv2d(in_channels, c0, 3, padding=1)

        def attn(c: int, on: bool) -> nn.Module:
            return AttentionBlock(c, heads, groups) if on else nn.Identity()

        self.down, skips, c_prev = nn.ModuleList(), [], c0                               # step 2
        for i, (c, a) in enumerate(zip(channels, attention)):
            last = i == len(channels) - 1
            self.down.append(nn.ModuleDict({
                "res1": ResBlock(c_prev, c, D, groups), "res2": ResBlock(c, c, D, groups), "attn": attn(c, a),
                "down": nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1)}))
            skips += [c, c]
            c_prev = c
        self.mid1 = ResBlock(c_prev, c_prev, D, groups)                                    # step 3
        self.mid_attn = AttentionBlock(c_prev, heads, groups)
        self.mid2 = ResBlock(c_prev, c_prev, D, groups)
        self.up = nn.ModuleList()                                                          # step 4
        for i in reversed(range(len(channels))):
            c, first = channels[i], i == 0
            self.up.append(nn.ModuleDict({
                "res1": ResBlock(c_prev + skips.pop(), c, D, groups), "res2": ResBlock(c + skips.pop(), c, D, groups),
                "attn": attn(c, attention[i]),
                "up": nn.Identity() if first else nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                               nn.Conv2d(c, channels[i - 1], 3, padding=1))}))
            c_prev = channels[i - 1] if i else c
        self.res_out = ResBlock(c_prev + c0, c0, D, groups)                                 # step 5
        self.norm_out, self.conv_out = nn.GroupNorm(groups, c0), nn.Conv2d(c0, in_channels, 3, padding=1)

    def check(self, x: Tensor, t: Tensor | float) -> Tensor:
        """Raise a ValueError naming the expected shapes; return t as a (B,) tensor."""
        m = 2 ** (len(self.channels) - 1)
        if (not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels or not x.is_floating_point()
                or x.shape[2] % m or x.shape[3] % m):
            raise ValueError(f"expected x of shape (B, {self.in_channels}, H, W) float with H and W multiples of {m} "
                             f"(e.g. (B, {self.in_channels}, 28, 28)), got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
                             f"{'' if not isinstance(x, Tensor) or x.is_floating_point() else f' {x.dtype}'}")
        B = x.shape[0]
        if not isinstance(t, Tensor):
            t = torch.tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(B)
        if t.shape != (B,):
            raise ValueError(f"expected t of shape ({B},) or a scalar, got {tuple(t.shape)}")
        return t.to(x.device)

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        t = self.check(x, t)                                                    # (B,)
        temb = self.time_mlp(sinusoidal_embedding(t, self.channels[0]).to(x.dtype))   # (B, D)
        return self.trunk(x, temb)

    def trunk(self, x: Tensor, temb: Tensor) -> Tensor:
        """Steps 2-5 given the embedding temb (B, D) that every ResBlock adds: x (B, C, H, W) -> (B, C, H, W).
        A conditional U-Net adds its condition to temb and calls this (``course_lib.guidance``)."""
        h = self.conv_in(x)                                                     # (B, c0, H, W)
        first, skips = h, []
        for stage in self.down:                                                 # level i: (B, c_i, H/2^i, W/2^i)
            h = stage["res1"](h, temb)
            skips.append(h)
            h = stage["attn"](stage["res2"](h, temb))
            skips.append(h)
            h = stage["down"](h)                                                # (B, c_i, H/2^(i+1), ...) but last
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)                  # (B, c_last, lowest resolution)
        for stage in self.up:
            h = stage["res1"](torch.cat([h, skips.pop()], 1), temb)             # (B, c_i, ...) from c + skip
            h = stage["attn"](stage["res2"](torch.cat([h, skips.pop()], 1), temb))
            h = stage["up"](h)                                                  # (B, c_{i-1}, 2H_i, 2W_i), not at 0
        h = self.res_out(torch.cat([h, first], 1), temb)                        # (B, c0, H, W)
        return self.conv_out(F.silu(self.norm_out(h)))                          # (B, C, H, W)
