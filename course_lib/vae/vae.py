"""Notebook 07's AE and VAEs, by checkpoint: the shipped models (``SHIPPED``), ``build`` and ``load``.

The code lives in three modules, re-exported here so that ``course_lib.vae.vae`` is the one place to import from:
``kernels`` (reparameterisation, Gaussian KL and log-density, the Bernoulli likelihood, binarization, the ELBO and
the IWAE bound, Kingma & Welling 2014 and Burda et al. 2016), ``models`` (the AE and the VAE) and ``train``
(a training step, ``train_model`` and ``evaluate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from course_lib import checkpoints
from course_lib.profiles import pick
from course_lib.utils import device as default_device
from course_lib.vae.kernels import (  # noqa: F401  (re-exported)
    IMAGE_SHAPE,
    _check_count,
    _check_gaussian,
    _check_images,
    _check_latent,
    _describe,
    _dtype,
    active_units,
    bernoulli_log_likelihood,
    binarize,
    elbo,
    gaussian_kl,
    gaussian_log_prob,
    iwae_nll,
    reparameterize,
)
from course_lib.vae.models import AE, VAE, mlp  # noqa: F401
from course_lib.vae.train import (  # noqa: F401
    TrainConfig,
    binarized_test,
    evaluate,
    train_model,
    train_step,
)


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
