"""Notebook 08's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class VQNotebookConfig:
    n_train: int | None      # training images for the short visible runs (None: all 60,000)
    steps: int               # steps of each short visible run (the four of the ablation, the three betas)
    batch_size: int = 64
    lr: float = 2e-3         # AdamW
    restart_every: int = 25  # steps between dead-code restarts in the runs with restarts
    kmeans_images: int = 2_000  # training images whose encoder outputs initialise the codebook (k-means)
    n_eval: int = 5_000      # test images for MSE, codebook usage and FID of the tokenizers
    prior_images: int | None = 20_000  # training images whose tokens train the prior (None: all 60,000)
    prior_steps: int = 400   # steps of the prior's visible training loop
    prior_batch: int = 64    # token grids per step
    prior_lr: float = 3e-3   # AdamW
    n_fid: int = 1_000       # samples (and real test images) for the FIDs of the prior and its baseline


VQ_CONFIGS = {
    "smoke": VQNotebookConfig(n_train=1_000, steps=4, batch_size=16, restart_every=2, kmeans_images=128, n_eval=128,
                              prior_images=500, prior_steps=3, n_fid=100),
    "cpu": VQNotebookConfig(n_train=None, steps=200),
    "gpu": VQNotebookConfig(n_train=None, steps=2_000, batch_size=128, n_eval=10_000, prior_images=None,
                            prior_steps=5_000, prior_batch=128, n_fid=5_000),
}


def vq_config(profile: str = "auto", **overrides) -> VQNotebookConfig:
    return pick(VQ_CONFIGS, profile, **overrides)
