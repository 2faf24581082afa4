"""Chapters 12-13: score matching, Langevin dynamics and DDPM.

Notebook 12 (Song & Ermon 2019, score-based generative modelling):

- ``toy``      a mixture of Gaussians with exact log-density, score and perturbed scores (p * N(0, sigma^2 I))
- ``score``    denoising score matching (Vincent 2011; Song & Ermon Eq. 5-6), Langevin dynamics (Eq. 2),
               annealed Langevin dynamics (Algorithm 1), geometric noise levels

Notebook 13 (Ho et al. 2020, DDPM; Song et al. 2021, DDIM):

- ``schedule`` the noise schedule (linear, cosine), q(x_t | x_0), one DDPM step (Algorithm 2), one DDIM step
               (Eq. 12), L_simple (Eq. 14) and the DSM link score = -eps / sqrt(1 - abar_t)
- ``unet``     the noise-prediction U-Net eps_theta(x_t, t) with sinusoidal time embeddings

Time steps are 0-based (t = 0 .. T-1), as in diffusers. The library gives single steps; the notebooks own the
sampling loops.
"""

from course_lib.diffusion.schedule import (
    NoiseSchedule,
    cosine_betas,
    ddim_timesteps,
    ddpm_loss,
    linear_betas,
)
from course_lib.diffusion.score import (
    annealed_langevin,
    dsm_loss,
    geometric_sigmas,
    langevin,
    langevin_step,
)
from course_lib.diffusion.toy import GaussianMixture, mode_weights, song_ermon_mixture
from course_lib.diffusion.unet import (
    AttentionBlock,
    ResBlock,
    UNet,
    attention,
    sinusoidal_embedding,
)

__all__ = [
    "AttentionBlock", "GaussianMixture", "NoiseSchedule", "ResBlock", "UNet", "annealed_langevin", "attention",
    "cosine_betas", "ddim_timesteps", "ddpm_loss", "dsm_loss", "geometric_sigmas", "langevin", "langevin_step",
    "linear_betas", "mode_weights", "sinusoidal_embedding", "song_ermon_mixture",
]
