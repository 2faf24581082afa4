"""Notebook 10's three generators as shipped checkpoints: DCGAN, Progressive GAN and StyleGAN.

All three train with the same loss (non-saturating, lazy R1 with gamma = 1) and EMA of G. StyleGAN, whose 6,000-step
run ended at FID 21.7, takes 14,000 steps of batch 32 (about an hour on one CPU thread); Progressive GAN, whose
6,000-step run ended at FID 25 with two thirds of its steps spent below 28 x 28, takes 12,000 (each phase twice as long); DCGAN, whose step is several times
cheaper, 30,000 of batch 64 (about an hour each). Each keeps its paper's Adam settings (DCGAN: lr 2e-4, betas (0.5, 0.999); Progressive GAN and StyleGAN:
lr 1e-3, betas (0, 0.99)). The checkpoint holds G's EMA weights only; :func:`load_generator` loads it by name
(shipped, else cached, else trained here with the resumable state).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_lib.gans.dcgan import DCGANDiscriminator, DCGANGenerator
from course_lib.gans.progan import ProDiscriminator, ProGenerator
from course_lib.gans.stylegan import StyleGenerator
from course_lib.gans.train import GANTrainConfig, sample, train_gan

STYLEGAN_STEPS = 14_000
DCGAN_STEPS = 30_000
GROW = (1_500, 1_500, 2_000, 2_000, 5_000)   # Progressive GAN: stable 7, fade 14, stable 14, fade 28, stable 28
PROGAN_STEPS = sum(GROW)                    # 12,000


@dataclass
class GANSpec:
    build_g: type
    build_d: type
    train: GANTrainConfig


SHIPPED = {
    # DCGAN is the cheapest step (~10 steps/s at batch 64 on one CPU thread), so it gets the longest run.
    "gan_dcgan": GANSpec(DCGANGenerator, DCGANDiscriminator,
                         GANTrainConfig(steps=DCGAN_STEPS, batch_size=64, lr=2e-4, betas=(0.5, 0.999), r1_gamma=1.0)),
    "gan_progan": GANSpec(ProGenerator, ProDiscriminator,
                          GANTrainConfig(steps=PROGAN_STEPS, batch_size=32, lr=1e-3, betas=(0.0, 0.99), r1_gamma=1.0,
                                         grow=GROW)),
    "gan_stylegan": GANSpec(StyleGenerator, ProDiscriminator,
                            GANTrainConfig(steps=STYLEGAN_STEPS, batch_size=32, lr=1e-3, betas=(0.0, 0.99), r1_gamma=1.0)),
}


def build_generator(name: str) -> nn.Module:
    if name not in SHIPPED:
        raise ValueError(f"unknown GAN {name!r}: expected one of {sorted(SHIPPED)}")
    return SHIPPED[name].build_g()


def train_shipped(G: nn.Module, name: str, cfg: GANTrainConfig | None = None, progress: bool = True) -> dict:
    """Train ``G`` (and a fresh discriminator) with the spec of ``name``; metrics include FID on 3,000 samples."""
    from course_lib import metrics
    from course_lib.checkpoints import state_path
    from course_lib.data import fashion_mnist

    spec = SHIPPED[name]
    cfg = cfg or spec.train
    torch.manual_seed(cfg.seed)
    D = spec.build_d().to(next(G.parameters()).device)
    result = train_gan(G, D, cfg, state=state_path(name), progress=progress)
    real = fashion_mnist("test").subset(3_000, seed=0).images
    result["fid_3000"] = round(metrics.fid(sample(G, 3_000, seed=1), real), 3)
    return result


def load_generator(name: str, device: torch.device | str = "cpu", profile: str = "auto") -> nn.Module:
    """G of the checkpoint ``name`` in eval mode, its manifest entry as ``G.checkpoint_entry``."""
    from course_lib import checkpoints

    G = build_generator(name).to(device)
    G.checkpoint_entry = checkpoints.load(name, G, lambda m: train_shipped(m, name), profile=profile)
    return G.eval()


def _make(name: str):
    def make():
        return build_generator(name), lambda m: train_shipped(m, name)
    return make


CHECKPOINTS = {name: _make(name) for name in SHIPPED}     # for ``python -m course_lib checkpoints``
