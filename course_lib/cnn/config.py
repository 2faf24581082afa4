"""Notebook 01's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class CNNConfig:
    n_train: int | None      # training images (None: all 60,000)
    n_test: int | None       # test images (None: all 10,000)
    steps: int               # optimizer steps per architecture
    batch_size: int = 128
    lr: float = 3e-3         # peak of the one-cycle schedule (AdamW)
    augment: bool = True     # random flips and 2-pixel shifts
    grad_images: int = 64    # images in the batch whose first-layer gradient is measured at 10, 20, 40 layers


CONFIGS = {
    "smoke": CNNConfig(n_train=1_000, n_test=300, steps=4, batch_size=32, grad_images=16),
    "cpu": CNNConfig(n_train=None, n_test=None, steps=250),     # ~half an epoch each: minutes on 2 cores
    "gpu": CNNConfig(n_train=None, n_test=None, steps=7_000),   # 15 epochs each
}


def config(profile: str = "auto", **overrides) -> CNNConfig:
    return pick(CONFIGS, profile, **overrides)
