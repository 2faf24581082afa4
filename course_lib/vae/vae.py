"""The variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes") and the
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
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from course_lib import checkpoints
from course_lib.profiles import pick
from course_lib.utils import (
    at_least_float32 as _upcast,  # float16/bfloat16 -> float32, else unchanged
)
from course_lib.utils import device as default_device

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


def mlp(*sizes: int) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


class AE(nn.Module):
    """A plain deterministic autoencoder with the VAE's shape: x (N, C, H, W) -> z (N, D) -> logits.

    Trained with the same Bernoulli reconstruction term and no KL: nothing organises its latent space."""

    def __init__(self, latent_dim: int = 2, hidden: int = 256, image_shape: tuple[int, ...] = IMAGE_SHAPE):
        super().__init__()
        self.latent_dim, self.image_shape = latent_dim, tuple(image_shape)
        P = math.prod(image_shape)
        self.encoder = mlp(P, hidden, hidden, latent_dim)
        self.decoder = mlp(latent_dim, hidden, hidden, P)

    def encode(self, x: Tensor) -> Tensor:
        _check_images(x, self.image_shape)
        return self.encoder(x.flatten(1).to(_dtype(self)))              # (N, D)

    def decode(self, z: Tensor) -> Tensor:
        """z (..., D) -> Bernoulli logits (..., C, H, W)."""
        _check_latent(z, self.latent_dim)
        return self.decoder(z.to(_dtype(self))).unflatten(-1, self.image_shape)

    def terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(log p(x | z = encode(x)), 0) per example: the reconstruction term alone."""
        recon = bernoulli_log_likelihood(self.decode(self.encode(x)), x)
        return recon, torch.zeros_like(recon)


class VAE(nn.Module):
    """q(z|x) = N(mu(x), diag exp(logvar(x))), p(z) = N(0, I), p(x|z) = Bernoulli(sigmoid(decoder(z))).

    x (N, C, H, W) -> encoder (MLP) -> mu, logvar (N, D); z (N, D) -> decoder (MLP) -> logits (N, C, H, W)."""

    def __init__(self, latent_dim: int = 16, hidden: int = 256, image_shape: tuple[int, ...] = IMAGE_SHAPE):
        super().__init__()
        self.latent_dim, self.image_shape = latent_dim, tuple(image_shape)
        P = math.prod(image_shape)
        self.encoder = mlp(P, hidden, hidden, 2 * latent_dim)
        self.decoder = mlp(latent_dim, hidden, hidden, P)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _check_images(x, self.image_shape)
        mu, logvar = self.encoder(x.flatten(1).to(_dtype(self))).chunk(2, -1)  # (N, D) each
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """z (..., D) -> Bernoulli logits (..., C, H, W)."""
        _check_latent(z, self.latent_dim)
        return self.decoder(z.to(_dtype(self))).unflatten(-1, self.image_shape)

    def terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """ELBO terms (K&W Eq. 3) per example: (E_q log p(x|z) with one z, KL(q(z|x) || p(z))), each (N,)."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)                                  # (N, D)
        return bernoulli_log_likelihood(self.decode(z), x), gaussian_kl(mu, logvar)

    def log_weights(self, x: Tensor, k: int) -> Tensor:
        """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x): x (N, C, H, W) -> (k, N)."""
        mu, logvar = self.encode(x)                                     # (N, D)
        z = reparameterize(mu.expand(k, *mu.shape), logvar.expand(k, *logvar.shape))  # (k, N, D)
        return (bernoulli_log_likelihood(self.decode(z), x) + gaussian_log_prob(z)
                - gaussian_log_prob(z, mu, logvar))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Decoder means sigmoid(logits) of z ~ p(z) = N(0, I): (n, C, H, W) gray images."""
        _check_count(n)
        dev = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(dev)
        return torch.sigmoid(self.decode(z))


# ---------------------------------------------------------------------------------------------- training


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, beta: float = 1.0) -> dict:
    """One step on -(recon_term - beta * kl_term), averaged over the batch x (N, C, H, W) binary.

    Returns the batch means of both terms (nats per image). beta < 1 is the KL warm-up of Sonderby et al.
    2016; beta = 1 is the ELBO."""
    model.train()
    recon, kl = model.terms(x)
    loss = -(recon - beta * kl).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"recon": recon.mean().item(), "kl": kl.mean().item(), "loss": loss.item()}


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    warmup_epochs: float = 5.0       # KL weight beta rises linearly from 0 to 1 over these epochs
    n_train: int | None = None       # None: all 60,000 training images
    n_eval: int | None = None        # test images for the reported ELBO / NLL (None: all 10,000)
    k_eval: int = 100                # importance samples of the reported NLL
    seed: int = 0


@torch.no_grad()
def binarized_test(n: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The first ``n`` Fashion-MNIST test images binarized once with ``seed``: (images (n, 1, 28, 28), labels)."""
    from course_lib.data import fashion_mnist

    test = fashion_mnist("test")
    n = len(test) if n is None else min(n, len(test))
    return binarize(test.images[:n], torch.Generator().manual_seed(seed)), test.labels[:n]


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, k: int = 100, batch_size: int = 500) -> dict:
    """Mean test terms (nats per image) of x (N, C, H, W) binary: recon, kl, -ELBO and, for latent-variable
    models, the IWAE NLL with k samples; seeded, so repeated calls agree."""
    model.eval()
    dev = next(model.parameters()).device
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):  # the caller's RNG is untouched
        torch.manual_seed(0)
        chunks = [model.terms(x[i:i + batch_size].to(dev)) for i in range(0, len(x), batch_size)]
        recon, kl = torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])
        out = {"recon": recon.mean().item()}
        if hasattr(model, "log_weights"):  # a latent-variable model (not the plain AE)
            out.update(kl=kl.mean().item(), neg_elbo=(kl - recon).mean().item())
            out[f"nll_k{k}"] = iwae_nll(model, x.to(dev), k, batch_size=max(1, 20_000 // k)).mean().item()
    return out


def train_model(model: nn.Module, cfg: TrainConfig, progress: bool = True) -> dict:
    """Train on dynamically binarized Fashion-MNIST (Adam, KL warm-up); return the test metrics and the
    per-epoch history of both terms (for the notebook's training curves)."""
    from course_lib.data import fashion_mnist

    images = fashion_mnist("train").subset(cfg.n_train, seed=cfg.seed).images
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = max(len(images) // cfg.batch_size, 1)
    warmup = max(cfg.warmup_epochs * steps_per_epoch, 1)
    history: dict[str, list] = {"recon": [], "kl": []}
    step = 0
    for _ in tqdm(range(cfg.epochs), desc=f"training {type(model).__name__}", disable=not progress):
        order = torch.randperm(len(images), generator=g)
        sums = {"recon": 0.0, "kl": 0.0}
        for i in range(steps_per_epoch):
            x = binarize(images[order[i * cfg.batch_size:(i + 1) * cfg.batch_size]], g).to(dev)
            terms = train_step(model, optimizer, x, beta=min(1.0, step / warmup))
            step += 1
            for key in sums:
                sums[key] += terms[key] / steps_per_epoch
        for key in sums:
            history[key].append(round(sums[key], 3))
    x_test, _ = binarized_test(cfg.n_eval)
    metrics = {key: round(v, 3) for key, v in evaluate(model, x_test, cfg.k_eval).items()}
    return {**metrics, "epochs": cfg.epochs, "n_train": len(images), "n_eval": len(x_test),
            "history": history}


# ---------------------------------------------------------------------------------------------- checkpoints


@dataclass
class Spec:
    """A shipped model: its constructor arguments and how it is trained."""
    kind: str                               # "ae" | "vae"
    latent_dim: int
    hidden: int = 256
    train: TrainConfig = field(default_factory=TrainConfig)


SHIPPED = {
    "ae_latent2": Spec("ae", 2, train=TrainConfig(epochs=20, warmup_epochs=0)),
    "vae_latent2": Spec("vae", 2, train=TrainConfig(epochs=20, warmup_epochs=0)),
    "vae_latent16": Spec("vae", 16, train=TrainConfig(epochs=40)),
}
FALLBACK = {"smoke": TrainConfig(epochs=1, n_train=2000, n_eval=200, k_eval=10, warmup_epochs=0),
            "cpu": TrainConfig(epochs=5, warmup_epochs=1), "gpu": TrainConfig(epochs=40)}


def build(name: str) -> nn.Module:
    """The untrained model of the shipped checkpoint ``name`` (see ``SHIPPED``)."""
    if name not in SHIPPED:
        raise ValueError(f"unknown model {name!r}: expected one of {sorted(SHIPPED)}")
    spec = SHIPPED[name]
    return (AE if spec.kind == "ae" else VAE)(spec.latent_dim, spec.hidden)


def load(name: str, device=None, profile: str = "auto") -> nn.Module:
    """A trained AE / VAE by checkpoint name, in eval mode: shipped, else cached, else trained now with the
    profile's ``FALLBACK`` sizes. ``model.checkpoint_entry`` says where it came from and its metrics."""
    model = build(name).to(device or default_device())
    cfg = pick(FALLBACK, profile)
    if SHIPPED[name].train.warmup_epochs == 0:
        cfg = TrainConfig(**{**cfg.__dict__, "warmup_epochs": 0})
    model.checkpoint_entry = checkpoints.load(name, model, lambda m: train_model(m, cfg), profile=profile)
    return model.eval().requires_grad_(False)


def load_ae(device=None, profile: str = "auto") -> AE:
    return load("ae_latent2", device, profile)


def load_vae(latent_dim: int = 16, device=None, profile: str = "auto") -> VAE:
    return load(f"vae_latent{latent_dim}", device, profile)
