"""Answers to notebook 13's exercises, computed with this chapter's kernels (never stored).

Write the kernel: q(x_t | x_0) sampled in closed form (Ho et al. Eq. 4) and one ancestral step of Algorithm 2,
each checked against ``course_lib.diffusion.NoiseSchedule`` on seeded random inputs and edge cases. Hand
computation: the signal-to-noise ratio abar_t / (1 - abar_t) of the linear schedule at a given t.
"""

from __future__ import annotations

import torch

from course_lib.checks import Verdict, check_kernel, report
from course_lib.diffusion.schedule import NoiseSchedule


def _cases(seed: int, with_noise: bool) -> list[tuple[str, tuple]]:
    g = torch.Generator().manual_seed(seed)
    s = NoiseSchedule(1000)
    r = lambda *shape, dtype=torch.float32: torch.randn(*shape, generator=g, dtype=dtype)
    t = torch.randint(0, 1000, (4,), generator=g)
    edge_t = torch.tensor([0, 999])
    if with_noise:      # (schedule, eps, t, xt, noise)
        return [("random x_t (4, 1, 28, 28) at random t, float32", (s, r(4, 1, 28, 28), t, r(4, 1, 28, 28), r(4, 1, 28, 28))),
                ("edge: t = 0 (no noise is added) and t = 999, float64",
                 (s, r(2, 3, 5, 5, dtype=torch.float64), edge_t, r(2, 3, 5, 5, dtype=torch.float64),
                  r(2, 3, 5, 5, dtype=torch.float64)))]
    return [("random x0 (4, 1, 28, 28) at random t, float32", (s, r(4, 1, 28, 28), t, r(4, 1, 28, 28))),
            ("edge: t = 0 and t = 999 on (2, 3, 5, 5), float64",
             (s, r(2, 3, 5, 5, dtype=torch.float64), edge_t, r(2, 3, 5, 5, dtype=torch.float64)))]


def check_q_sample_kernel(fn) -> Verdict:
    """``fn(schedule, x0, t, eps) -> x_t`` against ``NoiseSchedule.q_sample``."""
    return check_kernel(fn, lambda s, x0, t, eps: s.q_sample(x0, t, eps), _cases(0, False), name="my_q_sample",
                        reference_name="course_lib.diffusion.NoiseSchedule.q_sample",
                        hint="x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * eps with abar_t = schedule.alpha_bar[t] "
                             "(a (B,) float64 vector: cast it to x0's dtype and view it as (B, 1, 1, 1) to broadcast).")


def check_ddpm_step_kernel(fn) -> Verdict:
    """``fn(schedule, eps, t, xt, noise) -> x_{t-1}`` against ``NoiseSchedule.ddpm_step``."""
    return check_kernel(fn, lambda s, eps, t, xt, z: s.ddpm_step(eps, t, xt, z), _cases(1, True),
                        name="my_ddpm_step", reference_name="course_lib.diffusion.NoiseSchedule.ddpm_step",
                        hint="mean = (x_t - beta_t / sqrt(1 - abar_t) * eps) / sqrt(alpha_t) (Eq. 11); add "
                             "sigma_t * noise with sigma_t^2 = schedule.posterior_variance[t] (beta tilde, which is "
                             "0 at t = 0). Index each (T,) table by t, cast to x_t's dtype, view as (B, 1, 1, 1).")


def check_snr(answer, t: int = 500) -> Verdict:
    """abar_t / (1 - abar_t) of the linear schedule (T = 1000, beta 1e-4 .. 0.02) at 0-based step t, to 2 significant digits."""
    abar = float(NoiseSchedule(1000).alpha_bar[t])
    return report(answer, abar / (1 - abar), sig=2,
                  hint="abar_t is the product of (1 - beta_s) for s = 0 .. t, with beta_s = 1e-4 + s * (0.02 - 1e-4) "
                       "/ 999; log abar_t = sum of log(1 - beta_s) ~ -sum beta_s for small beta.")


