"""MUNIT (Huang et al. 2018, https://arxiv.org/abs/1804.04732): multimodal unsupervised image-to-image translation.

The notes: "uniform content space but different style space". Each domain i has an auto-encoder whose
encoder splits an image into a **content code** c (a spatial map, shared across domains) and a **style code**
s (a small vector, specific to the domain); its decoder rebuilds the image from (c, s), with s entering
through **AdaIN** (Sec. 3.2: the style's MLP gives every residual block's AdaIN scale and bias).
Translation a -> b: keep the content of x_a, draw a style s_b ~ N(0, I) of domain b, decode with G_b: each
sampled style gives another output (multimodal).

Losses (Sec. 3.1), each returned by :func:`munit_losses`:

- image reconstruction  ||G_i(E^c_i(x_i), E^s_i(x_i)) - x_i||_1 in each domain;
- latent reconstruction ||E^c_j(G_j(c_i, s_j)) - c_i||_1 and ||E^s_j(G_j(c_i, s_j)) - s_j||_1 with s_j ~ N(0, I);
- adversarial: a discriminator per domain on the translations (non-saturating).

Sizes are for 28x28 single-channel images: content (B, C, 7, 7), style (B, style_dim).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.gans.dcgan import check_gan_images
from course_lib.gans.stylegan import adain
from course_lib.gans.toy import d_loss, g_loss_nonsaturating


class ResBlock(nn.Module):
    """x + conv(norm(relu(conv(norm(x))))); instance norm, or AdaIN when styles are given."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x: Tensor, styles: tuple[Tensor, Tensor, Tensor, Tensor] | None = None) -> Tensor:
        if styles is None:
            h = F.relu(F.instance_norm(self.conv1(x)))
            return x + F.instance_norm(self.conv2(h))
        s1, b1, s2, b2 = styles                                           # (B, C) each
        h = F.relu(adain(self.conv1(x), s1, b1))
        return x + adain(self.conv2(h), s2, b2)


class ContentEncoder(nn.Module):
    """x (B, 1, 28, 28) -> content c (B, C, 7, 7): downsampling convs, instance norm, residual blocks.
    Instance norm removes each image's channel statistics -- the style -- from the content code."""

    def __init__(self, channels: int = 64, n_res: int = 2):
        super().__init__()
        C = channels
        self.down = nn.Sequential(
            nn.Conv2d(1, C // 2, 3, 1, 1), nn.InstanceNorm2d(C // 2), nn.ReLU(),        # 28
            nn.Conv2d(C // 2, C, 4, 2, 1), nn.InstanceNorm2d(C), nn.ReLU(),             # 14
            nn.Conv2d(C, C, 4, 2, 1), nn.InstanceNorm2d(C), nn.ReLU(),                  # 7
        )
        self.res = nn.ModuleList([ResBlock(C) for _ in range(n_res)])

    def forward(self, x: Tensor) -> Tensor:
        check_gan_images(x)
        h = self.down(x)
        for block in self.res:
            h = block(h)
        return h


class StyleEncoder(nn.Module):
    """x (B, 1, 28, 28) -> style s (B, style_dim): convs *without* instance norm, global average pooling, linear."""

    def __init__(self, style_dim: int = 8, channels: int = 64):
        super().__init__()
        C = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, C // 2, 3, 1, 1), nn.ReLU(), nn.Conv2d(C // 2, C, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(C, C, 4, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(C, style_dim))

    def forward(self, x: Tensor) -> Tensor:
        check_gan_images(x)
        return self.net(x)


class Decoder(nn.Module):
    """(content (B, C, 7, 7), style (B, style_dim)) -> image (B, 1, 28, 28): AdaIN residual blocks whose scales
    and biases an MLP computes from the style, then upsampling convs (with layer norm, as the paper's)."""

    def __init__(self, style_dim: int = 8, channels: int = 64, n_res: int = 2, hidden: int = 128):
        super().__init__()
        C = channels
        self.res = nn.ModuleList([ResBlock(C) for _ in range(n_res)])
        self.mlp = nn.Sequential(nn.Linear(style_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_res * 4 * C))             # (scale, bias) x 2 per block
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(C, C // 2, 5, 1, 2), nn.GroupNorm(1, C // 2), nn.ReLU(),  # 14
            nn.Upsample(scale_factor=2), nn.Conv2d(C // 2, C // 4, 5, 1, 2), nn.GroupNorm(1, C // 4), nn.ReLU(),  # 28
            nn.Conv2d(C // 4, 1, 7, 1, 3), nn.Tanh())
        self.C = C

    def forward(self, c: Tensor, s: Tensor) -> Tensor:
        B, C = c.shape[:2]
        if c.ndim != 4 or C != self.C or s.ndim != 2 or s.shape[0] != B:
            raise ValueError(f"expected content (B, {self.C}, h, w) and style (B, style_dim), got {tuple(c.shape)} "
                             f"and {tuple(s.shape)}")
        params = self.mlp(s).view(B, len(self.res), 4, C)                  # (B, blocks, 4, C)
        h = c
        for i, block in enumerate(self.res):
            scale1, bias1, scale2, bias2 = params[:, i].unbind(1)           # (B, C) each
            h = block(h, (1 + scale1, bias1, 1 + scale2, bias2))
        return self.up(h)


class MUNIT(nn.Module):
    """Two domains, a and b: a content encoder, a style encoder and a decoder for each."""

    def __init__(self, style_dim: int = 8, channels: int = 64):
        super().__init__()
        self.style_dim = style_dim
        self.enc_c = nn.ModuleDict({d: ContentEncoder(channels) for d in "ab"})
        self.enc_s = nn.ModuleDict({d: StyleEncoder(style_dim, channels) for d in "ab"})
        self.dec = nn.ModuleDict({d: Decoder(style_dim, channels) for d in "ab"})

    def encode(self, x: Tensor, domain: str) -> tuple[Tensor, Tensor]:
        return self.enc_c[domain](x), self.enc_s[domain](x)

    def translate(self, x: Tensor, source: str, target: str, s: Tensor | None = None,
                  generator: torch.Generator | None = None) -> Tensor:
        """x of domain ``source`` -> domain ``target`` with style s (B, style_dim), drawn from N(0, I) if None."""
        c = self.enc_c[source](x)
        if s is None:
            s = torch.randn(len(x), self.style_dim, generator=generator).to(x.device)
        return self.dec[target](c, s)


def munit_losses(model: MUNIT, discs: nn.ModuleDict, x_a: Tensor, x_b: Tensor, s_a: Tensor, s_b: Tensor,
                 lam_x: float = 10.0, lam_c: float = 1.0, lam_s: float = 1.0) -> dict[str, Tensor]:
    """The generator's losses (Eq. 5 with Sec. 3.1's terms) for a batch of each domain and sampled styles
    s_a, s_b (B, style_dim); ``discs['a']``, ``discs['b']`` give patch logits. Returns every term and 'total'."""
    c_a, s_a_own = model.encode(x_a, "a")
    c_b, s_b_own = model.encode(x_b, "b")
    recon_x = F.l1_loss(model.dec["a"](c_a, s_a_own), x_a) + F.l1_loss(model.dec["b"](c_b, s_b_own), x_b)
    x_ab, x_ba = model.dec["b"](c_a, s_b), model.dec["a"](c_b, s_a)         # translations
    c_a_back, s_b_back = model.encode(x_ab, "b")
    c_b_back, s_a_back = model.encode(x_ba, "a")
    recon_c = F.l1_loss(c_a_back, c_a) + F.l1_loss(c_b_back, c_b)
    recon_s = F.l1_loss(s_b_back, s_b) + F.l1_loss(s_a_back, s_a)
    adv = g_loss_nonsaturating(discs["b"](x_ab).flatten()) + g_loss_nonsaturating(discs["a"](x_ba).flatten())
    total = adv + lam_x * recon_x + lam_c * recon_c + lam_s * recon_s
    return {"recon_x": recon_x, "recon_c": recon_c, "recon_s": recon_s, "adv": adv, "total": total,
            "x_ab": x_ab.detach(), "x_ba": x_ba.detach()}


def munit_d_loss(discs: nn.ModuleDict, x_a: Tensor, x_b: Tensor, x_ba: Tensor, x_ab: Tensor) -> Tensor:
    """Each domain's discriminator: its real images -> 1, translations into it -> 0."""
    return d_loss(discs["a"](x_a).flatten(), discs["a"](x_ba).flatten()) + \
        d_loss(discs["b"](x_b).flatten(), discs["b"](x_ab).flatten())
