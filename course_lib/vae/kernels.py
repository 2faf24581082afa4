"""The kernels of the variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes") and the
importance-weighted bound (Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders").

**Likelihood.** Every model here is a model of *binary* images b in {0, 1}^(C*H*W) with a factorised
Bernoulli decoder, p(b | z) = prod_i Bern(b_i; sigmoid(logits_i(z))). Fashion-MNIST's gray intensities
x in [0, 1] are read as pixel probabilities and binarized, b ~ Bern(x) ("stochastic binarization", the
convention of Burda et al. for MNIST): training draws a fresh binarization of every batch, and a reported
NLL is -log p(b) in nats of one seeded binarization of the test set -- a true negative log-likelihood of a
discrete variable, so it is >= 0. (The same formula applied to gray x is a cross-entropy, not a likelihood:
it does not sum to one over [0, 1]^784. It equals the expected log-likelihood of b ~ Bern(x); no NLL
reported here uses it.) The decoder's mean sigmoid(logits) estimates E[b | z], a gray image: the pictures.

Equations (K&W = Kingma & Welling; IWAE = Burda et al.):

    reparameterisation  z = mu + exp(logvar / 2) * eps,  eps ~ N(0, I)                        K&W Eq. 10
    Gaussian KL         KL(N(mu, sigma^2) || N(0, I)) = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)  K&W App. B
    ELBO                log p(x) >= E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))                    K&W Eq. 3
    IWAE bound          log p(x) >= E[log 1/k sum_i p(x, z_i) / q(z_i|x)],  z_i ~ q(z|x) iid      IWAE Eq. 8

The IWAE bound with k = 1 is the ELBO (in expectation); it never loosens as k grows (IWAE Thm. 1) and
tends to log p(x) as k -> infinity.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.utils import (
    at_least_float32 as _upcast,  # float16/bfloat16 -> float32, else unchanged
)

IMAGE_SHAPE = (1, 28, 28)


# ---------------------------------------------------------------------------------------------- kernels
# The kernels take float tensors; the densities, the KL and the variances compute float16 / bfloat16 in
# float32 (torchvision's ``_upcast``): half precision would round sigma^2 - 1 - log sigma^2 or a 784-pixel
# sum to three digits.


def _describe(x) -> str:
    return f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__


def _check_gaussian(mu: Tensor, logvar: Tensor) -> None:
    if (not isinstance(mu, Tensor) or not isinstance(logvar, Tensor) or mu.ndim < 2 or mu.shape != logvar.shape
            or not mu.is_floating_point() or not logvar.is_floating_point()):
        raise ValueError(f"expected float mu and logvar of the same shape (N, D), got {_describe(mu)} and "
                         f"{_describe(logvar)}")


def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor | None = None) -> Tensor:
    """K&W Eq. 10: z = mu + exp(logvar / 2) * eps. mu, logvar (..., D); eps of their shape, or drawn ~ N(0, I)."""
    _check_gaussian(mu, logvar)
    if eps is not None and (not isinstance(eps, Tensor) or eps.shape != mu.shape or not eps.is_floating_point()):
        raise ValueError(f"expected float eps of the shape of mu {tuple(mu.shape)}, got {_describe(eps)}")
    mu, logvar = _upcast(mu), _upcast(logvar)
    if eps is None:
        eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device)  # the same draw whatever mu's strides
    return mu + torch.exp(0.5 * logvar) * _upcast(eps)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) of each row (K&W App. B): mu, logvar (N, D) -> (N,) nats.

    1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)."""
    _check_gaussian(mu, logvar)
    mu, logvar = _upcast(mu), _upcast(logvar)
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(-1)


def gaussian_log_prob(z: Tensor, mu: Tensor | None = None, logvar: Tensor | None = None) -> Tensor:
    """log N(z; mu, diag exp(logvar)) summed over the last dim: z (..., D), mu, logvar broadcastable
    (None: the standard normal) -> (...)."""
    given = [t for t in (mu, logvar) if t is not None]
    if not isinstance(z, Tensor) or z.ndim < 1 or not all(isinstance(t, Tensor) for t in given) or not all(
            t.is_floating_point() for t in (z, *given)):
        raise ValueError(f"expected float z (..., D), mu and logvar, got {_describe(z)}, {_describe(mu)}, "
                         f"{_describe(logvar)}")
    try:
        torch.broadcast_shapes(z.shape, *(t.shape for t in given))
    except RuntimeError:
        raise ValueError(f"expected mu and logvar that broadcast with z (..., D) = {tuple(z.shape)}, got "
                         f"{_describe(mu)} and {_describe(logvar)}") from None
    z = _upcast(z)
    mu = torch.zeros_like(z) if mu is None else _upcast(mu)
    logvar = torch.zeros_like(z) if logvar is None else _upcast(logvar)
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).square() * torch.exp(-logvar)).sum(-1)


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x | z) = sum_i [x_i log p_i + (1 - x_i) log(1 - p_i)], p = sigmoid(logits), summed over the
    image: float logits (..., C, H, W) and x (..., C, H, W) broadcast together -> (...) nats. A log-likelihood
    for binary x; for gray x in [0, 1] the same number is a cross-entropy (see the module docstring)."""
    if (not isinstance(logits, Tensor) or not isinstance(x, Tensor) or logits.ndim < 3 or x.ndim < 3
            or not logits.is_floating_point() or not x.is_floating_point()):
        raise ValueError(f"expected float logits and x (..., C, H, W), got {_describe(logits)} and {_describe(x)}")
    try:
        dtype = torch.promote_types(_upcast(logits).dtype, _upcast(x).dtype)  # float64 with float32: float64
        logits, x = torch.broadcast_tensors(logits.to(dtype), x.to(dtype))
    except RuntimeError:
        raise ValueError(f"expected logits and x (..., C, H, W) that broadcast together, got {tuple(logits.shape)} "
                         f"and {tuple(x.shape)}") from None
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(-3).sum(-1)


def binarize(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Stochastic binarization: b ~ Bern(x), x (N, C, H, W) in [0, 1] -> b of the same shape in {0, 1}."""
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"expected float images (N, C, H, W) in [0, 1], got {_describe(x)}")
    if x.numel() and not ((x >= 0) & (x <= 1)).all():                  # NaN fails too
        raise ValueError(f"expected float images (N, C, H, W) in [0, 1], got values in [{x.min()}, {x.max()}]")
    return torch.bernoulli(x, generator=generator)


def active_units(mu: Tensor, threshold: float = 1e-2) -> Tensor:
    """IWAE Sec. 5.2: latent dim j is active when Cov_x(E_q[z_j | x]) > threshold. mu (N, D) -> (D,) bool."""
    if not isinstance(mu, Tensor) or mu.ndim != 2 or len(mu) < 2 or not mu.is_floating_point():
        raise ValueError(f"expected float posterior means (N, D) with N >= 2, got {_describe(mu)}")
    if mu.shape[1] == 0:                                                # no latent dims: none active (var warns)
        return torch.zeros(0, dtype=torch.bool, device=mu.device)
    return _upcast(mu).var(0) > threshold


# The models take float inputs of any precision and compute in their own (x.to(the weights' dtype)).


def _check_images(x: Tensor, shape: tuple[int, ...]) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != tuple(shape) or not x.is_floating_point():
        raise ValueError(f"expected float images (N, {', '.join(map(str, shape))}), got {_describe(x)}")


def _check_latent(z: Tensor, dim: int, name: str = "z") -> None:
    if not isinstance(z, Tensor) or z.ndim < 1 or z.shape[-1] != dim or not z.is_floating_point():
        raise ValueError(f"expected float {name} (..., {dim}), got {_describe(z)}")


def _check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"expected n >= 0 samples, got {n!r}")


def _dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def elbo(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """K&W Eq. 3, one sample of z per example: x (N, C, H, W) binary -> (recon_term, kl_term), each (N,) nats,
    recon_term = E_q[log p(x|z)] (Bernoulli likelihood) and kl_term = KL(q(z|x) || p(z));
    ELBO = recon_term - kl_term <= log p(x) in expectation. Works for ``VAE`` (KL in closed form) and
    ``HierarchicalVAE`` (KL of the whole chain q(z_{1:T}|x) to p(z_{1:T}), estimated on the sampled chain)."""
    if not hasattr(model, "log_weights"):
        raise TypeError(f"{type(model).__name__} has no ELBO: it is not a latent-variable model")
    return model.terms(x)


def iwae_nll(model: nn.Module, x: Tensor, k: int, batch_size: int = 256) -> Tensor:
    """IWAE Eq. 8 as an NLL estimate: -log 1/k sum_i w_i, w_i = p(x, z_i) / q(z_i | x), z_i ~ q(z | x):
    x (N, C, H, W) binary -> (N,) nats, an upper bound on -log p(x) in expectation. k = 1: -ELBO."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not isinstance(x, Tensor) or x.ndim != 4:
        shape = getattr(model, "image_shape", ("C", "H", "W"))
        raise ValueError(f"expected images (N, {', '.join(map(str, shape))}), got {_describe(x)}")
    out = []
    for i in range(0, max(len(x), 1), batch_size):                    # N = 0: one empty batch, checked by the model
        log_w = model.log_weights(x[i:i + batch_size], k)               # (k, B)
        out.append(math.log(k) - torch.logsumexp(log_w, 0))
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------- models
