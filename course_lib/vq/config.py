"""Notebook 08's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class VQNotebookConfig:
    n_train: int | None      # training images for the two short visible runs (None: all 60,000)
    steps: int               # steps of each visible run (without and with the fix)
    batch_size: int = 64
    lr: float = 2e-3         # AdamW
    restart_every: int = 25  # steps between dead-code restarts in the run with the fix
    n_eval: int = 5_000      # test images for MSE, codebook usage and FID of the shipped tokenizers


VQ_CONFIGS = {
    "smoke": VQNotebookConfig(n_train=1_000, steps=6, n_eval=250),
    "cpu": VQNotebookConfig(n_train=None, steps=300),
    "gpu": VQNotebookConfig(n_train=None, steps=2_000, batch_size=128, n_eval=10_000),
}


def vq_config(profile: str = "auto", **overrides) -> VQNotebookConfig:
    return pick(VQ_CONFIGS, profile, **overrides)
