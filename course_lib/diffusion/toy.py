"""A mixture of isotropic Gaussians with an exact density, an exact score and exact perturbed scores.

p(x) = sum_k w_k N(x; mu_k, s_k^2 I) in D dimensions (D = 2 for the figures). Everything score matching needs
is closed-form:

- log p(x) = logsumexp_k [log w_k - D/2 log(2 pi s_k^2) - ||x - mu_k||^2 / (2 s_k^2)];
- its score grad log p(x) = sum_k r_k(x) (mu_k - x) / s_k^2, r_k(x) = w_k N_k(x) / p(x) (the responsibilities);
- the density perturbed by Gaussian noise, q_sigma = p * N(0, sigma^2 I), is again such a mixture, with every
  variance s_k^2 increased by sigma^2 (a sum of independent Gaussians): :meth:`GaussianMixture.perturbed`.

Song & Ermon 2019 Sec. 3.2 use p = 1/5 N((-5, -5), I) + 4/5 N((5, 5), I) to show that Langevin dynamics with
the exact score gets the modes' *weights* wrong (the modes are separated by a region of low density the score
says nothing across) and that annealing over noise levels fixes it: :func:`song_ermon_mixture`.

Shapes: x (N, D), means (K, D), stds (K,), weights (K,), D dimensions, K components. Float64 by default.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class GaussianMixture:
    """p(x) = sum_k weights[k] N(x; means[k], stds[k]^2 I). means (K, D), stds (K,), weights (K,) summing to 1 (to 1e-6;
    renormalized in float64). Stored as float64; every method computes in the dtype of its x."""

    def __init__(self, means: Tensor, stds: Tensor, weights: Tensor):
        means, stds, weights = (torch.as_tensor(v, dtype=torch.float64) for v in (means, stds, weights))
        if means.ndim != 2 or stds.shape != (len(means),) or weights.shape != (len(means),):
            raise ValueError(f"expected means (K, D), stds (K,), weights (K,), got {tuple(means.shape)}, "
                             f"{tuple(stds.shape)}, {tuple(weights.shape)}")
        if bool((stds <= 0).any()) or bool((weights < 0).any()) or abs(float(weights.sum()) - 1) > 1e-6:
            raise ValueError(f"expected stds > 0 and weights >= 0 summing to 1, "
                             f"got {stds.tolist()}, {weights.tolist()}")
        self.means, self.stds, self.weights = means, stds, weights / weights.sum()   # exactly normalized in float64

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != self.dim or not x.is_floating_point():
            raise ValueError(f"expected x of shape (N, {self.dim}) float, got {tuple(getattr(x, 'shape', ()))}")

    def _log_terms(self, x: Tensor, var: Tensor) -> Tensor:
        """log w_k + log N(x; mu_k, var I) for x (N, D), var (N, K) or (1, K) -> (N, K), in x's dtype."""
        mu, w, var = self.means.to(x), self.weights.to(x), var.to(x)
        sq = (x[:, None, :] - mu[None]).pow(2).sum(-1)                                  # (N, K)
        return w.log() - 0.5 * self.dim * torch.log(2 * math.pi * var) - sq / (2 * var)

    def _score(self, x: Tensor, var: Tensor) -> Tensor:
        """sum_k r_k(x) (mu_k - x) / var_k: x (N, D), var (N, K) or (1, K) -> (N, D)."""
        r = self._log_terms(x, var).softmax(1)                                          # (N, K) responsibilities
        return (r[:, :, None] * (self.means.to(x)[None] - x[:, None, :]) / var.to(x)[:, :, None]).sum(1)

    def component_log_probs(self, x: Tensor) -> Tensor:
        """log w_k + log N(x; mu_k, s_k^2 I): x (N, D) -> (N, K), in x's dtype."""
        self._check(x)
        return self._log_terms(x, self.stds[None] ** 2)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x): x (N, D) -> (N,)."""
        return self.component_log_probs(x).logsumexp(1)

    def score(self, x: Tensor) -> Tensor:
        """grad_x log p(x) = sum_k r_k(x) (mu_k - x) / s_k^2, r_k = w_k N_k(x) / p(x): x (N, D) -> (N, D)."""
        self._check(x)
        return self._score(x, self.stds[None] ** 2)

    def perturbed(self, sigma: float) -> GaussianMixture:
        """q_sigma = p * N(0, sigma^2 I): the same mixture with variances s_k^2 + sigma^2."""
        return GaussianMixture(self.means, (self.stds**2 + sigma**2).sqrt(), self.weights)

    def perturbed_score(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        """grad log q_sigma(x), q_sigma = p * N(0, sigma^2 I) (variances s_k^2 + sigma^2), for one sigma (a float
        or 0-d tensor) or one per row (N,) (a noise-conditional score): x (N, D) -> (N, D)."""
        self._check(x)
        sigma = torch.as_tensor(sigma, dtype=torch.float64).to(self.stds.device)
        if sigma.shape not in {(), (len(x),)}:
            raise ValueError(f"expected sigma a float or of shape ({len(x)},), got {tuple(sigma.shape)}")
        return self._score(x, self.stds[None] ** 2 + sigma.reshape(-1, 1) ** 2)     # var (N, K) or (1, K)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples (n, D) float64: a component k ~ Categorical(weights), then mu_k + s_k z."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)     # (n,)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k, None] * z


def song_ermon_mixture() -> GaussianMixture:
    """Song & Ermon 2019 Sec. 3.2: 1/5 N((-5, -5), I) + 4/5 N((5, 5), I)."""
    f64 = torch.float64
    return GaussianMixture(torch.tensor([[-5.0, -5.0], [5.0, 5.0]], dtype=f64), torch.ones(2, dtype=f64),
                           torch.tensor([0.2, 0.8], dtype=f64))


def mode_weights(x: Tensor, means: Tensor) -> Tensor:
    """The share of samples x (N, D) nearest to each mean (K, D) -> (K,) summing to 1 (for N > 0)."""
    if x.ndim != 2 or means.ndim != 2 or x.shape[1] != means.shape[1]:
        raise ValueError(f"expected x (N, D) and means (K, D), got {tuple(x.shape)} and {tuple(means.shape)}")
    nearest = torch.cdist(x.double(), means.double()).argmin(1)                           # (N,)
    return torch.bincount(nearest, minlength=len(means)).double() / max(len(x), 1)
