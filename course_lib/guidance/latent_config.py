"""Notebook 15's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class LatentNotebookConfig:
    n_recon: int          # captioned test images through the autoencoder (reconstruction MSE and FID)
    n_train_latents: int  # captioned training images encoded for the notebook's own short training run
    train_steps: int      # steps of that visible run (batch 64)
    n_eval: int           # test captions sampled per guidance scale (class, attribute accuracy, FID)
    sample_steps: int     # DDIM steps of every sampler (the shipped manifest uses 50)
    scales: tuple[float, ...]   # classifier-free guidance scales compared
    n_speed: int          # images sampled by the pixel-space model for the seconds-per-image comparison


CONFIGS = {
    "smoke": LatentNotebookConfig(n_recon=50, n_train_latents=512, train_steps=2, n_eval=20, sample_steps=4,
                                  scales=(0.0, 1.0, 3.0), n_speed=2),
    "cpu": LatentNotebookConfig(n_recon=1_000, n_train_latents=10_000, train_steps=100, n_eval=300, sample_steps=50,
                                scales=(0.0, 1.0, 3.0, 5.0), n_speed=20),
    "gpu": LatentNotebookConfig(n_recon=10_000, n_train_latents=60_000, train_steps=2_000, n_eval=1_000,
                                sample_steps=50, scales=(0.0, 1.0, 2.0, 3.0, 5.0), n_speed=200),
}


def latent_notebook_config(profile: str = "auto", **overrides) -> LatentNotebookConfig:
    return pick(CONFIGS, profile, **overrides)
