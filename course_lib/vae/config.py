"""Notebook 07's sizes per profile (shown in its parameters cell). Notebook 08 keeps its own in ``course_lib.vq.config``."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class VAENotebookConfig:
    steps: int                  # steps (batch 128) of the short visible training run of a 16-D VAE
    n_train: int | None         # training images it draws from (None: all 60,000)
    n_scatter: int              # test images in the 2-D latent scatter plots
    n_fid: int                  # prior samples per model (and real test images) for each FID
    n_nll: int | None           # test images for the ELBO and the IWAE NLL (None: all 10,000)
    k_nll: int = 100            # importance samples of the IWAE NLL
    n_curve: int = 200          # test images for the bound-against-k curve and the naive prior-sampling estimate
    beta_epochs: int = 3        # epochs of each 2-D VAE of the beta = 0 / beta = 1 comparison (batch 128)
    beta_n_train: int | None = None  # its training images (None: all 60,000)


VAE_CONFIGS = {
    "smoke": VAENotebookConfig(steps=20, n_train=1_000, n_scatter=300, n_fid=200, n_nll=50, n_curve=20,
                                beta_epochs=1, beta_n_train=1_000),
    "cpu": VAENotebookConfig(steps=400, n_train=None, n_scatter=3_000, n_fid=3_000, n_nll=None),
    "gpu": VAENotebookConfig(steps=3_000, n_train=None, n_scatter=5_000, n_fid=10_000, n_nll=None),
}


def vae_config(profile: str = "auto", **overrides) -> VAENotebookConfig:
    return pick(VAE_CONFIGS, profile, **overrides)
