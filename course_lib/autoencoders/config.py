"""Notebook 06's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class AENotebookConfig:
    n_train: int            # Fashion-MNIST training images used by every model
    n_test: int             # test images for every reported number
    batch_size: int
    k_pca: int              # code size of the linear AE and of PCA
    steps_linear: int       # Adam steps of the linear AE (batch 512)
    d_overcomplete: int     # code size of the over-complete AE (> 784 pixels)
    steps_overcomplete: int
    n_memorize: int         # training images the deep AE with a tiny code memorizes (full batch)
    memorize_hidden: tuple[int, ...]  # its encoder's hidden widths (the decoder mirrors them)
    d_memorize: int         # its code size: 1 or 2 numbers per image
    steps_memorize: int     # its Adam steps, and those of the same AE on n_train images (batches of n_memorize)
    d_hidden: int           # code size of the plain, denoising, sparse, k-sparse and contractive AEs
    steps: int              # Adam steps of each of those
    k_sparse: int           # k of the k-sparse AE
    n_jacobian: int         # test images for the encoder Jacobian norm
    n_probe: int            # training codes for the linear probe (it is tested on n_test codes)
    probe_max_iter: int     # L-BFGS iterations of the probe's logistic regression


AE_CONFIGS = {
    "smoke": AENotebookConfig(n_train=1_000, n_test=300, batch_size=128, k_pca=8, steps_linear=15, d_overcomplete=1024,
                              steps_overcomplete=10, n_memorize=100, memorize_hidden=(32, 32, 32), d_memorize=2,
                              steps_memorize=10, d_hidden=256, steps=10, k_sparse=25, n_jacobian=20, n_probe=200,
                              probe_max_iter=50),
    "cpu": AENotebookConfig(n_train=10_000, n_test=2_000, batch_size=128, k_pca=8, steps_linear=1_500,
                            d_overcomplete=1024, steps_overcomplete=1_500, n_memorize=100,
                            memorize_hidden=(128, 128, 128), d_memorize=2, steps_memorize=1_500, d_hidden=256,
                            steps=1_500, k_sparse=25, n_jacobian=200, n_probe=5_000, probe_max_iter=1_000),
    "gpu": AENotebookConfig(n_train=60_000, n_test=10_000, batch_size=256, k_pca=16, steps_linear=10_000,
                            d_overcomplete=2048, steps_overcomplete=10_000, n_memorize=100,
                            memorize_hidden=(256, 256, 256), d_memorize=2, steps_memorize=5_000, d_hidden=1024,
                            steps=10_000, k_sparse=40, n_jacobian=1_000, n_probe=20_000, probe_max_iter=1_000),
}


def ae_config(profile: str = "auto", **overrides) -> AENotebookConfig:
    return pick(AE_CONFIGS, profile, **overrides)
