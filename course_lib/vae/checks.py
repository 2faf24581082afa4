"""Answers to notebook 07's exercises, computed with this chapter's kernels (never stored).

Two "write the kernel" exercises (the reparameterisation, K&W Eq. 10, and the negative ELBO of one image,
K&W Eq. 3 with the closed-form KL of App. B) are checked against ``course_lib.vae.vae`` on seeded random
inputs and edge cases (:func:`reparameterize_cases`, :func:`neg_elbo_cases`); four hand computations are
checked to the precision their questions ask for.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from course_lib.checks import Verdict, check_kernel, report
from course_lib.vae.vae import (
    IMAGE_SHAPE,
    bernoulli_log_likelihood,
    gaussian_kl,
    reparameterize,
)

# ---------------------------------------------------------------------------------------------- write the kernel


def reparameterize_cases(seed: int = 0) -> list[tuple[str, tuple[Tensor, Tensor, Tensor]]]:
    """Seeded float64 inputs ``(mu, logvar, eps)`` for ``reparameterize``, each (N, D), with edge cases."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, scale=1.0: scale * torch.randn(*shape, generator=g, dtype=torch.float64)
    mu, eps = r(1, 5), r(1, 5)
    return [
        ("random mu, logvar, eps of shape (4, 2)", (r(4, 2), r(4, 2), r(4, 2))),
        ("random (8, 16), log-variances from about -6 to 6", (r(8, 16), r(8, 16, scale=2.0), r(8, 16))),
        ("edge: logvar = 0, so sigma = 1 and z = mu + eps", (r(3, 4), torch.zeros(3, 4, dtype=torch.float64), r(3, 4))),
        ("edge: a batch of one (1, 5)", (mu, r(1, 5), eps)),
    ]


def check_reparameterize_kernel(fn) -> Verdict:
    """``fn(mu, logvar, eps) -> z`` against ``course_lib.vae.vae.reparameterize`` on :func:`reparameterize_cases`."""
    return check_kernel(fn, reparameterize, reparameterize_cases(), name="my_reparameterize",
                        reference_name="course_lib.vae.vae.reparameterize",
                        hint="z = mu + sigma * eps with sigma = exp(logvar / 2), the standard deviation "
                             "(not the variance exp(logvar)), element by element.")


def neg_elbo(logits: Tensor, x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """course_lib's negative ELBO of each image, one sample of z: KL(q(z|x) || N(0, I)) - log p(x | z).

    logits (N, C, H, W) of the decoder at z, binary x (N, C, H, W), mu and logvar (N, D) -> (N,) nats."""
    return gaussian_kl(mu, logvar) - bernoulli_log_likelihood(logits, x)


def neg_elbo_cases(seed: int = 0) -> list[tuple[str, tuple[Tensor, Tensor, Tensor, Tensor]]]:
    """Seeded float64 inputs ``(logits, x, mu, logvar)`` for :func:`neg_elbo`, binary x, with edge cases."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, scale=1.0: scale * torch.randn(*shape, generator=g, dtype=torch.float64)
    binary = lambda logits: torch.bernoulli(torch.full_like(logits, 0.3), generator=g)

    def case(n, image, d, logit_scale=2.0, mu=None, logvar=None):
        logits = r(n, *image, scale=logit_scale)
        return (logits, binary(logits), r(n, d) if mu is None else mu, r(n, d) if logvar is None else logvar)

    zeros = torch.zeros(1, 16, dtype=torch.float64)
    return [
        ("random: 4 images (1, 28, 28), D = 16", case(4, IMAGE_SHAPE, 16)),
        ("random: 3 images (2, 5, 7), D = 2, large logits (|logit| up to 13)",
         case(3, (2, 5, 7), 2, logit_scale=5.0)),
        ("edge: a batch of one image (1, 28, 28) with q(z|x) = N(0, I) (mu = 0, logvar = 0, so the KL is 0)",
         case(1, IMAGE_SHAPE, 16, mu=zeros, logvar=zeros)),
    ]


def check_neg_elbo_kernel(fn) -> Verdict:
    """``fn(logits, x, mu, logvar) -> (N,)`` against :func:`neg_elbo` (course_lib's ``gaussian_kl`` minus its
    ``bernoulli_log_likelihood``) on :func:`neg_elbo_cases`."""
    return check_kernel(fn, neg_elbo, neg_elbo_cases(), name="my_neg_elbo",
                        reference_name="course_lib.vae.vae.gaussian_kl - bernoulli_log_likelihood",
                        hint="one number per image: the Bernoulli NLL summed over all C*H*W pixels of the image "
                             "plus the KL summed over the D latent dimensions, with its factor 1/2 and "
                             "sigma^2 = exp(logvar).")


# ---------------------------------------------------------------------------------------------- hand computations


def check_gaussian_kl(answer, mu=(1.0, 0.0), logvar=(0.0, math.log(4.0))) -> Verdict:
    """KL(q || N(0, I)) in nats, to 3 decimals, for q = N(mu, diag exp(logvar))."""
    expected = gaussian_kl(torch.tensor([mu], dtype=torch.float64), torch.tensor([logvar], dtype=torch.float64))
    return report(answer, float(expected), decimals=3,
                  hint="sum over dimensions of 1/2 (mu^2 + sigma^2 - 1 - log sigma^2), with sigma^2 = exp(logvar)")


def check_reparameterization(answer, mu: float = 1.0, logvar: float = math.log(4.0), eps: float = -0.5) -> Verdict:
    """The sample z (to 3 decimals) the reparameterisation trick gives for mu, logvar and the noise eps."""
    t = lambda v: torch.tensor([[v]], dtype=torch.float64)
    expected = reparameterize(t(mu), t(logvar), t(eps))
    return report(answer, float(expected), decimals=3, hint="z = mu + sigma * eps, and sigma = exp(logvar / 2)")


def check_iwae_estimate(answer, log_weights=(-100.0, -101.0, -103.0)) -> Verdict:
    """The k-sample IWAE estimate of log p(x) (to 3 decimals) from the log importance weights log w_i."""
    log_w = torch.tensor(log_weights, dtype=torch.float64)
    expected = torch.logsumexp(log_w, 0) - math.log(len(log_w))
    return report(answer, float(expected), decimals=3,
                  hint="log of the *mean* of the weights: logsumexp(log w) - log k (not the mean of the log weights)")


def check_bernoulli_nll(answer, p: float = 0.1) -> Verdict:
    """The pair (NLL in nats, bits per pixel), each to 3 significant digits, of an all-black binary 28x28 image
    under a decoder that says p (the probability of a white pixel) for every pixel."""
    logits = torch.full((1, *IMAGE_SHAPE), math.log(p / (1 - p)), dtype=torch.float64)
    nats = float(-bernoulli_log_likelihood(logits, torch.zeros_like(logits)))
    bits_per_pixel = nats / (math.log(2) * math.prod(IMAGE_SHAPE))
    return report(answer, (nats, bits_per_pixel), sig=3,
                  hint="a pair (nats, bits per pixel): each of the 784 black pixels costs -log(1 - p) nats and they "
                       "add up; bits per pixel divides by 784 pixels and by ln 2 nats per bit")
