"""Notebook 14's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class GuidanceNotebookConfig:
    n_toy: int            # particles of the 2-D annealed Langevin runs (Bayes' rule for scores, guidance scales)
    toy_steps: int        # Langevin steps per noise level in those runs (10 levels)
    train_steps: int      # steps of the notebook's own visible CFG training run (label dropout at work)
    batch_size: int       # its batch (64, as the shipped run; smaller in smoke)
    n_acc: int            # noisy test images per t for the noisy classifier's accuracy
    sample_steps: int     # DDIM steps of every sampler in the notebook (the shipped manifest uses 50)
    n_sweep: int          # samples per guidance scale (n_sweep / 10 per class) and real test images for FID
    cfg_scales: tuple[float, ...]   # classifier-free guidance scales of the sweep
    cg_scales: tuple[float, ...]    # classifier-guidance scales on chapter 13's unconditional DDPM


CONFIGS = {
    "smoke": GuidanceNotebookConfig(n_toy=200, toy_steps=10, train_steps=2, batch_size=16, n_acc=20, sample_steps=4, n_sweep=20,
                                    cfg_scales=(0.0, 1.0, 3.0), cg_scales=(0.0, 3.0)),
    "cpu": GuidanceNotebookConfig(n_toy=2_000, toy_steps=50, train_steps=40, batch_size=64, n_acc=500, sample_steps=25,
                                  n_sweep=200, cfg_scales=(0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0), cg_scales=(0.0, 1.0, 3.0, 10.0)),
    "gpu": GuidanceNotebookConfig(n_toy=10_000, toy_steps=100, train_steps=1_000, batch_size=64, n_acc=2_000, sample_steps=50,
                                  n_sweep=1_000, cfg_scales=(0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
                                  cg_scales=(0.0, 1.0, 3.0, 10.0, 30.0)),
}


def guidance_notebook_config(profile: str = "auto", **overrides) -> GuidanceNotebookConfig:
    return pick(CONFIGS, profile, **overrides)
