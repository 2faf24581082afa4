"""Notebook 09's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class GanTheoryConfig:
    grid_points: int            # points of the 1-D grid on [-15, 15] for densities, KL, JSD, V and C(G)
    kl_steps: int               # Adam steps of each Gaussian fit (forward and reverse KL)
    d_samples: int              # samples of p_data and of p_g the 1-D discriminator of Proposition 1 sees
    d_steps: int                # its Adam steps (batch d_batch of each class)
    d_batch: int
    gan_steps: int              # alternating D / G steps of the 2-D GAN (batch gan_batch)
    gan_batch: int
    gan_seeds: int              # GANs trained (seeds 0, 1, ...); seed 0 also keeps snapshots
    snapshots: tuple[int, ...]  # steps at which seed 0's samples and D are kept for the figure
    n_eval: int                 # generator samples for the mode-coverage numbers
    reject_steps: int           # D-only steps against a fixed, untrained G (the saturation experiment)


GAN_THEORY_CONFIGS = {
    "smoke": GanTheoryConfig(grid_points=1_201, kl_steps=100, d_samples=2_000, d_steps=150, d_batch=256,
                             gan_steps=100, gan_batch=128, gan_seeds=1, snapshots=(0, 50, 100), n_eval=1_000,
                             reject_steps=60),
    "cpu": GanTheoryConfig(grid_points=3_001, kl_steps=600, d_samples=10_000, d_steps=1_500, d_batch=1_024,
                           gan_steps=2_000, gan_batch=256, gan_seeds=3, snapshots=(0, 250, 1_000, 2_000),
                           n_eval=4_000, reject_steps=300),
    "gpu": GanTheoryConfig(grid_points=6_001, kl_steps=1_000, d_samples=50_000, d_steps=4_000, d_batch=4_096,
                           gan_steps=5_000, gan_batch=512, gan_seeds=5, snapshots=(0, 500, 2_000, 5_000),
                           n_eval=10_000, reject_steps=300),
}


def gan_theory_config(profile: str = "auto", **overrides) -> GanTheoryConfig:
    return pick(GAN_THEORY_CONFIGS, profile, **overrides)
