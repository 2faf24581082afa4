"""Answers to notebook 12's exercises, computed with this chapter's code (never stored).

One "write the kernel" exercise -- the Langevin update (Song & Ermon 2019, Eq. 2) -- is checked against
``course_lib.diffusion.score.langevin_step`` on seeded random inputs and edge cases; three hand computations
are checked to the precision their questions ask, each rejecting the plausible wrong answers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib.checks import Verdict, check_kernel, report
from course_lib.diffusion.score import geometric_sigmas, langevin_step
from course_lib.diffusion.toy import GaussianMixture

# ---------------------------------------------------------------------------------------------- write the kernel


def langevin_step_cases(seed: int = 0) -> list[tuple[str, tuple[Tensor, Tensor, float, Tensor]]]:
    """Seeded inputs ``(x, score, step_size, z)`` for one Langevin step: x, score, z of one shape (B, ...)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, dtype=torch.float32: torch.randn(*shape, generator=g, dtype=dtype)
    return [
        ("2-D points (64, 2), float64, step size 0.1", (r(64, 2, dtype=torch.float64), r(64, 2, dtype=torch.float64),
                                                        0.1, r(64, 2, dtype=torch.float64))),
        ("images (4, 1, 28, 28), float32, step size 2e-5 (Song & Ermon's eps)",
         (torch.rand(4, 1, 28, 28, generator=g), 50 * r(4, 1, 28, 28), 2e-5, r(4, 1, 28, 28))),
        ("a large step size 3.0, (16, 2) float64 (the square root is not the step size)",
         (r(16, 2, dtype=torch.float64), r(16, 2, dtype=torch.float64), 3.0, r(16, 2, dtype=torch.float64))),
        ("edge: zero noise z: only the drift (eps / 2) * score remains, (8, 3) float64",
         (r(8, 3, dtype=torch.float64), r(8, 3, dtype=torch.float64), 0.5, torch.zeros(8, 3, dtype=torch.float64))),
    ]


def check_langevin_step_kernel(fn) -> Verdict:
    """``fn(x, score, step_size, z) -> x_next`` against ``course_lib.diffusion.score.langevin_step``."""
    return check_kernel(fn, langevin_step, langevin_step_cases(), name="my_langevin_step",
                        reference_name="course_lib.diffusion.score.langevin_step",
                        hint="x + (eps / 2) * score + sqrt(eps) * z: half the step size on the score, and the "
                             "square root of the step size (not the step size itself) on the noise; the noise is "
                             "added, whatever the score.")


# ---------------------------------------------------------------------------------------------- hand computations


def check_gaussian_score(answer, x: float = 3.0, mu: float = 1.0, var: float = 4.0) -> Verdict:
    """The score d/dx log N(x; mu, var) (3 significant digits) at x = 3 for mu = 1, variance 4: (mu - x) / var."""
    one = GaussianMixture(torch.tensor([[mu]]), torch.tensor([var ** 0.5]), torch.tensor([1.0]))
    expected = float(one.score(torch.tensor([[x]], dtype=torch.float64))[0, 0])
    return report(answer, expected, sig=3,
                  hint="d/dx [-(x - mu)^2 / (2 s^2)] = -(x - mu) / s^2: divide by the variance (4), not the standard "
                       "deviation; the sign points back towards the mean")


def check_perturbed_std(answer, sigma: float = 3.0) -> Verdict:
    """The standard deviation (3 significant digits) of each component of Song & Ermon's mixture (unit standard
    deviations) after perturbation with N(0, sigma^2 I), sigma = 3."""
    from course_lib.diffusion.toy import song_ermon_mixture

    expected = float(song_ermon_mixture().perturbed(sigma).stds[0])
    return report(answer, expected, sig=3,
                  hint="independent Gaussians add their variances, not their standard deviations: sqrt(1^2 + 3^2)")


def check_annealed_step(answer, eps: float = 2e-5, sigma_1: float = 1.0, sigma_L: float = 0.01, L: int = 10) -> Verdict:
    """Song & Ermon's Algorithm 1: the step size alpha_1 = eps sigma_1^2 / sigma_L^2 (3 significant digits) at the
    first (largest) level, for eps = 2e-5, sigma_1 = 1, sigma_L = 0.01."""
    sigmas = geometric_sigmas(sigma_1, sigma_L, L)
    expected = eps * float(sigmas[0]) ** 2 / float(sigmas[-1]) ** 2
    return report(answer, expected, sig=3,
                  hint="alpha_i = eps * sigma_i^2 / sigma_L^2: the ratio of the noise levels, squared "
                       "(1 / 0.01 = 100, squared 10,000)")
