"""Notebook 01's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class CNNConfig:
    n_train: int | None      # training images (None: all 60,000)
    n_test: int | None       # test images (None: all 10,000)
    steps: int | None        # optimizer steps per architecture (None: as many as `seconds` allows)
    seconds: float | None = None  # training seconds per architecture: equal wall-clock (None: `steps` steps each)
    n_eval: int | None = None     # test images the architecture table is measured on (None: all of the test set)
    batch_size: int = 128
    lr: float = 3e-3         # peak of the one-cycle schedule (AdamW)
    augment: bool = True     # random flips and 2-pixel shifts
    # The degradation experiment (He et al. 2015, Sec. 4.1): plain vs residual stacks at two depths, with BN.
    deg_n_train: int = 4096  # training images it fits (its training error is measured on these)
    deg_size: int = 7        # images average-pooled to deg_size x deg_size, so deep stacks are cheap
    deg_width: int = 16      # channels of every block
    deg_blocks: tuple[int, int] = (3, 12)  # blocks of the shallow and the deep stack (2 convs each)
    deg_steps: int = 200     # SGD steps for each of the four stacks
    deg_batch: int = 64
    deg_lr: float = 0.1      # SGD with momentum 0.9, as in the paper (constant here: the run is short)


CONFIGS = {
    "smoke": CNNConfig(n_train=1_000, n_test=300, steps=4, batch_size=32,
                       deg_n_train=256, deg_blocks=(1, 3), deg_steps=8, deg_batch=32),
    # equal wall-clock: ~30 s per architecture (one fixed step count per architecture, from its measured speed)
    "cpu": CNNConfig(n_train=None, n_test=None, steps=None, seconds=30, n_eval=4_000),
    "gpu": CNNConfig(n_train=None, n_test=None, steps=None, seconds=120,
                     deg_n_train=16_384, deg_size=14, deg_blocks=(3, 12), deg_steps=1_000, deg_batch=128),
}


def config(profile: str = "auto", **overrides) -> CNNConfig:
    return pick(CONFIGS, profile, **overrides)
