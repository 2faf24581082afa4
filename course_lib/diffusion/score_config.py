"""Notebook 12's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class ScoreConfig:
    toy_n_train: int            # samples of the 2-D mixture the toy score networks learn from
    toy_steps: int              # Adam steps of each toy score network (batch toy_batch)
    toy_batch: int
    grid_points: int            # points per axis of the grid on [-10, 10]^2 where score errors are measured
    langevin_n: int             # chains (samples) of each Langevin sampler on the mixture
    langevin_steps: int         # steps of plain Langevin dynamics
    langevin_eps: float         # its step size
    anneal_L: int               # noise levels of annealed Langevin on the mixture (sigma_1 = 20 .. sigma_L = 0.1)
    anneal_steps: int           # steps per level
    anneal_eps: float           # its eps: alpha_i = eps sigma_i^2 / sigma_L^2
    pca_n: int                  # Fashion-MNIST images for the manifold-hypothesis spectrum
    ncsn_steps: int             # steps of the notebook's own NCSN training loop on Fashion-MNIST (batch ncsn_batch)
    ncsn_batch: int
    n_samples: int              # NCSN samples for the FID (and real test images for its floor)
    steps_per_sigma: int        # annealed Langevin steps per noise level on Fashion-MNIST
    sample_eps: float           # its eps (alpha_i = eps sigma_i^2 / sigma_L^2)


SCORE_CONFIGS = {
    "smoke": ScoreConfig(toy_n_train=2_000, toy_steps=100, toy_batch=256, grid_points=41, langevin_n=500,
                         langevin_steps=200, langevin_eps=0.1, anneal_L=10, anneal_steps=20, anneal_eps=0.01, pca_n=2_000,
                         ncsn_steps=3, ncsn_batch=16, n_samples=20, steps_per_sigma=1, sample_eps=5e-5),
    "cpu": ScoreConfig(toy_n_train=10_000, toy_steps=2_000, toy_batch=256, grid_points=101, langevin_n=4_000,
                       langevin_steps=1_000, langevin_eps=0.1, anneal_L=10, anneal_steps=100, anneal_eps=0.01, pca_n=10_000,
                       ncsn_steps=20, ncsn_batch=64, n_samples=100, steps_per_sigma=20, sample_eps=1e-4),
    "gpu": ScoreConfig(toy_n_train=50_000, toy_steps=5_000, toy_batch=1_024, grid_points=201, langevin_n=10_000,
                       langevin_steps=2_000, langevin_eps=0.1, anneal_L=10, anneal_steps=100, anneal_eps=0.01, pca_n=20_000,
                       ncsn_steps=1_000, ncsn_batch=128, n_samples=1_000, steps_per_sigma=100, sample_eps=2e-5),
}


def score_config(profile: str = "auto", **overrides) -> ScoreConfig:
    return pick(SCORE_CONFIGS, profile, **overrides)
