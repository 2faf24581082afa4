"""pix2pix (Isola et al. 2017, https://arxiv.org/abs/1611.07004) for 28x28 edge maps -> Fashion-MNIST items.

- **Generator**: a U-Net (Sec. 3.2.1): an encoder that halves the resolution twice, a decoder that doubles it
  back, and **skip connections** that concatenate each encoder layer's output to the decoder layer of the same
  size, so that low-level information (where the edges are) need not squeeze through the bottleneck.
- **Discriminator**: a **PatchGAN** (Sec. 3.2.2), conditioned on the input: it sees (edge map, image) as two
  channels and outputs one logit per patch; its receptive field is what "patch" means
  (:func:`patch_receptive_field`).
- **Loss** (Eq. 4): G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G), with the conditional GAN loss of Eq. 1
  (non-saturating for G) and L_L1 = E ||y - G(x)||_1. There is no noise z: the paper found G learned to
  ignore it, so the mapping is (nearly) deterministic -- one output per input.

Images live in [-1, 1] inside the networks (``course_lib.gans.dcgan.to_gan`` / ``to_unit``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.gans.dcgan import check_gan_images
from course_lib.gans.toy import d_loss, g_loss_nonsaturating


class UNet(nn.Module):
    """x (B, 1, 28, 28) in [-1, 1] -> y (B, 1, 28, 28) in [-1, 1]; ``skips=False`` gives the plain encoder-decoder."""

    def __init__(self, width: int = 32, skips: bool = True):
        super().__init__()
        w, self.skips = width, skips
        k = 2 if skips else 1                                                      # decoder inputs are concatenated
        self.e1 = nn.Sequential(nn.Conv2d(1, w, 4, 2, 1), nn.LeakyReLU(0.2))                            # 28 -> 14
        self.e2 = nn.Sequential(nn.Conv2d(w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2))  # 14 -> 7
        self.mid = nn.Sequential(nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.BatchNorm2d(2 * w), nn.ReLU())   # 7
        self.d2 = nn.Sequential(nn.ConvTranspose2d(k * 2 * w, w, 4, 2, 1), nn.BatchNorm2d(w), nn.ReLU())  # 7 -> 14
        self.d1 = nn.Sequential(nn.ConvTranspose2d(k * w, 1, 4, 2, 1), nn.Tanh())                       # 14 -> 28

    def forward(self, x: Tensor) -> Tensor:
        check_gan_images(x)
        h1 = self.e1(x)                                                  # (B, w, 14, 14)
        h2 = self.e2(h1)                                                 # (B, 2w, 7, 7)
        m = self.mid(h2)                                                 # (B, 2w, 7, 7)
        u2 = self.d2(torch.cat([m, h2], 1) if self.skips else m)         # (B, w, 14, 14)
        return self.d1(torch.cat([u2, h1], 1) if self.skips else u2)     # (B, 1, 28, 28)


class PatchDiscriminator(nn.Module):
    """(x, y) (B, 1, 28, 28) each -> logits (B, 6, 6): one real/fake decision per 22x22 patch of the pair."""

    def __init__(self, width: int = 32, in_channels: int = 2):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, w, 4, 2, 1), nn.LeakyReLU(0.2),                     # (B, w, 14, 14)
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),    # (B, 2w, 7, 7)
            nn.Conv2d(2 * w, 1, 4, 1, 1),                                              # (B, 1, 6, 6)
        )

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        check_gan_images(x)
        if y is not None:
            check_gan_images(y)
            x = torch.cat([x, y], dim=1)                                  # (B, 2, 28, 28): D sees the pair
        return self.net(x)[:, 0]


def patch_receptive_field(layers: list[tuple[int, int]]) -> int:
    """Side of the input patch that one output unit of a stack of convolutions sees.

    ``layers`` = [(kernel, stride), ...] from input to output. Walking back from one output unit (r = 1):
    r <- stride * r + (kernel - stride) at each layer. Padding moves the patch, it does not resize it."""
    r = 1
    for k, s in reversed(layers):
        if k < 1 or s < 1:
            raise ValueError(f"expected (kernel, stride) pairs of positive ints, got {(k, s)}")
        r = s * r + (k - s)
    return r


def conv_layers(model: nn.Module) -> list[tuple[int, int]]:
    """(kernel, stride) of each Conv2d of ``model`` in order (square kernels)."""
    return [(m.kernel_size[0], m.stride[0]) for m in model.modules() if isinstance(m, nn.Conv2d)]


def pix2pix_g_loss(D: nn.Module, x: Tensor, y_fake: Tensor, y: Tensor, lam: float) -> dict[str, Tensor]:
    """Eq. 4 for G: the non-saturating cGAN term on D(x, G(x)) plus lambda * L1(y, G(x)); returns each term."""
    adv = g_loss_nonsaturating(D(x, y_fake).flatten())
    l1 = F.l1_loss(y_fake, y)
    return {"adv": adv, "l1": l1, "total": adv + lam * l1}


def pix2pix_d_loss(D: nn.Module, x: Tensor, y_fake: Tensor, y: Tensor) -> Tensor:
    """Eq. 1 for D, per patch: real pairs (x, y) -> 1, fake pairs (x, G(x)) -> 0 (halved, as in the paper)."""
    return 0.5 * d_loss(D(x, y).flatten(), D(x, y_fake.detach()).flatten())
