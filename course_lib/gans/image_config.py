"""Notebook 10's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class GANImagesConfig:
    steps: int          # steps (batch 32) of the DCGAN trained in the notebook's visible loop
    n_train: int | None  # training images it draws from (None: all 60,000)
    n_fid: int          # samples per model (and real test images) for each FID
    n_hist: int         # samples per model for the judge's class histogram
    n_psi: int          # samples per truncation psi for the FID-vs-psi curve


CONFIGS = {
    "smoke": GANImagesConfig(steps=10, n_train=1_000, n_fid=100, n_hist=100, n_psi=100),
    "cpu": GANImagesConfig(steps=600, n_train=None, n_fid=3_000, n_hist=10_000, n_psi=1_000),
    "gpu": GANImagesConfig(steps=6_000, n_train=None, n_fid=10_000, n_hist=10_000, n_psi=3_000),
}


def gan_images_config(profile: str = "auto", **overrides) -> GANImagesConfig:
    return pick(CONFIGS, profile, **overrides)
