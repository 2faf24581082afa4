"""Answers to notebook 07's exercises, computed with this chapter's kernels (never stored)."""

from __future__ import annotations

import math

import torch

from course_lib.checks import report
from course_lib.vae.vae import IMAGE_SHAPE, bernoulli_log_likelihood, gaussian_kl, reparameterize


def _rounded(answer, digits: int = 3):
    return None if answer is None else round(float(answer), digits)


def check_gaussian_kl(answer, mu=(1.0, 0.0), logvar=(0.0, math.log(4.0))) -> bool:
    """KL(q || N(0, I)) in nats, to 3 decimals, for q = N(mu, diag exp(logvar))."""
    expected = gaussian_kl(torch.tensor([mu], dtype=torch.float64), torch.tensor([logvar], dtype=torch.float64))
    return report(_rounded(answer), round(float(expected), 3),
                  "sum over dimensions of 1/2 (mu^2 + sigma^2 - 1 - log sigma^2), with sigma^2 = exp(logvar)")


def check_reparameterization(answer, mu: float = 1.0, logvar: float = math.log(4.0), eps: float = -0.5) -> bool:
    """The sample z the reparameterisation trick gives for mu, logvar and the noise eps."""
    t = lambda v: torch.tensor([[v]], dtype=torch.float64)  # noqa: E731
    expected = reparameterize(t(mu), t(logvar), t(eps))
    return report(_rounded(answer), round(float(expected), 3), "z = mu + sigma * eps, and sigma = exp(logvar / 2)")


def check_iwae_estimate(answer, log_weights=(-100.0, -101.0, -103.0)) -> bool:
    """The k-sample IWAE estimate of log p(x) (to 3 decimals) from the log importance weights log w_i."""
    log_w = torch.tensor(log_weights, dtype=torch.float64)
    expected = torch.logsumexp(log_w, 0) - math.log(len(log_w))
    return report(_rounded(answer), round(float(expected), 3),
                  "log of the *mean* of the weights: logsumexp(log w) - log k (not the mean of the log weights)")


def check_bernoulli_nll(answer, p: float = 0.1) -> bool:
    """NLL in nats (to 2 decimals) of an all-black binary 28x28 image under a decoder that says p for every pixel."""
    logits = torch.full((1, *IMAGE_SHAPE), math.log(p / (1 - p)), dtype=torch.float64)
    expected = -bernoulli_log_likelihood(logits, torch.zeros_like(logits))
    return report(None if answer is None else round(float(answer), 2), round(float(expected), 2),
                  "each of the 784 black pixels costs -log(1 - p) nats; they add up")
