"""Notebook 13's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class DDPMNotebookConfig:
    n_forward: int        # test images pushed through T steps of q(x_t | x_{t-1}) for the closed-form check
    train_steps: int      # steps of the notebook's own visible training run
    batch_size: int       # its batch (64, as the shipped run; smaller in smoke)
    toy_steps: int        # Adam steps of the 2-D eps-network of the DSM-link check
    n_frames: int         # images sampled by the notebook's DDPM-1000 loop (frames over t, seconds per image)
    n_fid: int            # samples per sampler (and real test images) for each FID in the notebook
    n_dae: int            # samples for the single-noise-level DAE against diffusion comparison
    n_loss: int           # test images for the loss-by-t comparison (10 values of t each)
    chain_T: int          # steps of the notebook's Algorithm 2 loop: all 1,000, except in smoke (code path only)
    n_compare: int        # samples per model for the table against the other generative models


CONFIGS = {
    "smoke": DDPMNotebookConfig(n_forward=64, train_steps=2, batch_size=16, toy_steps=50, n_frames=2, n_fid=12,
                                n_dae=6, n_loss=8, chain_T=40, n_compare=100),
    "cpu": DDPMNotebookConfig(n_forward=2_000, train_steps=120, batch_size=64, toy_steps=1_500, n_frames=8, n_fid=300,
                              n_dae=150, n_loss=200, chain_T=1_000, n_compare=3_000),
    "gpu": DDPMNotebookConfig(n_forward=10_000, train_steps=2_000, batch_size=64, toy_steps=3_000, n_frames=64,
                              n_fid=3_000, n_dae=3_000, n_loss=2_000, chain_T=1_000, n_compare=3_000),
}


def ddpm_notebook_config(profile: str = "auto", **overrides) -> DDPMNotebookConfig:
    return pick(CONFIGS, profile, **overrides)
