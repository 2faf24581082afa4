"""A noise-conditional score network (NCSN) on Fashion-MNIST: Song & Ermon 2019, trained and sampled.

Song & Ermon 2019, "Generative Modeling by Estimating Gradients of the Data Distribution"
(https://arxiv.org/abs/1907.05600), with two of Song & Ermon 2020's ("Improved Techniques for Training
Score-Based Generative Models", NCSNv2) techniques:

- the noise levels: a geometric sequence sigma_1 = 1 > ... > sigma_L = 0.01, L = 10 (Sec. 4.2, images in [0, 1]);
- training (Eq. 5-6): sigma drawn uniformly from the L levels, the DSM loss weighted by lambda(sigma) = sigma^2,
  ``course_lib.diffusion.score.dsm_loss``;
- the network: the course U-Net, given the noise level as a position 0 .. 1000 along the log-sigma scale
  (``noise_position``) and its output divided by sigma, s(x, sigma) = UNet(x, sigma) / sigma (NCSNv2 Technique 3:
  the true score of q_sigma has norm ~ sqrt(D) / sigma, so the U-Net's output stays O(1) at every level);
  then sigma^2 DSM = 1/2 ||UNet(x~, sigma) + z||^2, the U-Net predicts -z, as DDPM's eps_theta does;
- sampling (Algorithm 1): annealed Langevin dynamics from uniform noise, alpha_i = eps sigma_i^2 / sigma_L^2,
  then one denoising step x + sigma_L^2 s(x, sigma_L) (Tweedie's formula; NCSNv2 Appendix C.2), which removes
  the sigma_L noise the last Langevin steps leave;
- an EMA of the weights (NCSNv2 Technique 5), with the usual warm-up min(decay, (1 + k) / (10 + k)), so that a
  short run's average is not dominated by the initial weights.

``train_ncsn`` is resumable like ``course_lib.diffusion.train.train_ddpm``; ``load_ncsn(profile)`` gives the
shipped checkpoint ``ncsn`` (else cached, else a short training run sized by the profile).
Shapes: x (B, 1, 28, 28) in [0, 1] (plus noise); sigma (B,).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from course_lib.diffusion.score import dsm_loss, geometric_sigmas, langevin_step
from course_lib.diffusion.train import gradient_step
from course_lib.diffusion.unet import UNet
from course_lib.profiles import resolve
from course_lib.utils import autocast

CHANNELS = (16, 32, 64)               # the DDPM U-Net of chapter 13: 0.77M parameters, ~0.9 s per step of 64 on one thread
ATTENTION = (False, False, True)


@dataclass
class NCSNTrainConfig:
    steps: int = 5_000
    batch_size: int = 64
    lr: float = 5e-4
    warmup: int = 200             # steps of linear learning-rate warm-up
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    sigma_1: float = 1.0
    sigma_L: float = 0.01
    L: int = 10
    n_train: int = 60_000
    seed: int = 0
    state_every: int = 200


class NCSN(nn.Module):
    """s_theta(x, sigma) = UNet(x, noise_position(sigma)) / sigma for sigma in [sigma_L, sigma_1].
    x (B, 1, H, W), sigma a float or (B,) -> (B, 1, H, W). ``sigmas`` (L,) is a buffer (the training levels)."""

    def __init__(self, sigma_1: float = 1.0, sigma_L: float = 0.01, L: int = 10,
                 channels: tuple[int, ...] = CHANNELS, attention: tuple[bool, ...] = ATTENTION, heads: int = 4):
        super().__init__()
        self.unet = UNet(channels=channels, attention=attention, heads=heads)
        self.register_buffer("sigmas", geometric_sigmas(sigma_1, sigma_L, L).float())

    def noise_position(self, sigma: Tensor) -> Tensor:
        """sigma (B,) -> (B,) its place on the log scale: 0 at sigma_1, 1000 at sigma_L (the range of DDPM's steps,
        for which the U-Net's sinusoidal embedding is made)."""
        s1, sL = self.sigmas[0].double(), self.sigmas[-1].double()
        return (1000 * torch.log(s1 / sigma.double()) / torch.log(s1 / sL)).float()

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        out = self.unet(x, self.noise_position(sigma))                       # (B, 1, H, W), ~ -z
        return out / sigma.to(out.dtype).view(-1, *([1] * (x.ndim - 1)))


def build_ncsn(cfg: NCSNTrainConfig | None = None) -> NCSN:
    cfg = cfg or NCSNTrainConfig()
    return NCSN(cfg.sigma_1, cfg.sigma_L, cfg.L)


def train_step(model: NCSN, optimizer: torch.optim.Optimizer, x: Tensor, generator: torch.Generator | None = None,
               grad_clip: float | None = 1.0) -> Tensor:
    """Song & Ermon Eq. 6 once on x (B, 1, 28, 28) in [0, 1]: a level sigma_i ~ U{1..L} per image, z ~ N(0, I),
    a gradient step on the sigma^2-weighted DSM loss; returns the loss () before the update."""
    i = torch.randint(0, len(model.sigmas), (len(x),), generator=generator).to(x.device)   # (B,)
    z = torch.randn(x.shape, generator=generator).to(x.device)                             # (B, 1, 28, 28)
    with autocast(x.device):                                                                # mixed precision on a GPU
        loss = dsm_loss(model, x, model.sigmas[i], z=z)
    return gradient_step(model, optimizer, loss, grad_clip)


def train_ncsn(model: NCSN, cfg: NCSNTrainConfig, state: Path | None = None, progress: bool = True) -> dict:
    """Train ``model`` on Fashion-MNIST's training images in [0, 1] with chapter 13's ``train_loop`` (Adam after a
    warm-up, gradient clipping, EMA with the warm-up min(decay, (1 + k) / (10 + k)); resumable with ``state``); it
    ends holding the EMA weights. Returns {'seconds', 'steps', 'loss_first', 'loss_last'} (the mean loss of the
    first and last 10 % of the steps, at most 500), 'seconds' counting every run that led here."""
    from course_lib.data import fashion_mnist
    from course_lib.diffusion import train as loop

    dev = next(model.parameters()).device
    images = fashion_mnist("train").subset(cfg.n_train, seed=cfg.seed).images.to(dev)   # (N, 1, 28, 28) in [0, 1]
    losses, seconds = loop.train_loop(model, cfg, images, lambda m, opt, x, g: train_step(m, opt, x, g, cfg.grad_clip),
                                      state=state, progress=progress, desc="NCSN",
                                      ema_decay=lambda k: min(cfg.ema_decay, (1 + k) / (10 + k)))
    k = max(1, min(500, cfg.steps // 10))
    return {"seconds": seconds, "steps": cfg.steps,
            "loss_first": float(losses[:k].mean()), "loss_last": float(losses[-k:].mean())}


@torch.no_grad()
def sample_ncsn(model: NCSN, n: int, steps_per_sigma: int = 100, eps: float = 2e-5, seed: int = 0,
                batch_size: int = 500, denoise: bool = True) -> Tensor:
    """n images (n, 1, 28, 28) in [0, 1]: Song & Ermon's Algorithm 1 from x ~ U[0, 1] over the model's levels
    (alpha_i = eps sigma_i^2 / sigma_L^2), then (``denoise``) x + sigma_L^2 s(x, sigma_L); clamped to [0, 1]."""
    model.eval()
    dev = next(model.parameters()).device
    sigmas = model.sigmas.tolist()
    gen, out = torch.Generator().manual_seed(seed), []
    for i in range(0, n, batch_size):
        b = min(batch_size, n - i)
        x = torch.rand((b, 1, 28, 28), generator=gen).to(dev)
        for sigma in sigmas:
            alpha = eps * sigma**2 / sigmas[-1] ** 2
            for _ in range(steps_per_sigma):
                z = torch.randn(x.shape, generator=gen).to(dev)
                x = langevin_step(x, model(x, sigma), alpha, z)
        if denoise:
            x = x + sigmas[-1] ** 2 * model(x, sigmas[-1])
        out.append(x.clamp(0, 1).cpu())
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------- the checkpoint

SHIPPED = {"ncsn": NCSNTrainConfig(steps=5_000)}
N_EVAL = 1_000                    # samples for the manifest's FID
# Song & Ermon take 100 steps per level (1,000 U-Net passes per sample): 1,000 samples would take hours on one CPU
# thread (~10 ms per image and pass), so the manifest's samples take 20 per level with a larger eps, the best of
# benchmarks/ncsn_sampler_sweep.py on 200 samples of the shipped model (FID@200: 5 steps, eps 5e-5: 51.1; 10, 5e-5:
# 39.4; 20, 2e-5: 39.2; 20, 5e-5: 28.6; 20, 1e-4: 22.2; 20, 2e-4: 29.3).
SAMPLER = {"steps_per_sigma": 20, "eps": 1e-4}

# Without a shipped or cached checkpoint the same model trains this long (smoke: only so that every cell runs):
# profile -> (steps, samples for the metrics, Langevin steps per level); None: the shipped spec's.
FALLBACK = {"smoke": (3, 20, 1), "cpu": (80, 50, 2), "gpu": (None, N_EVAL, SAMPLER["steps_per_sigma"])}


def _metrics(model: NCSN, n: int, steps_per_sigma: int) -> dict:
    """FID (judge features) of n annealed-Langevin samples against n real test images, and the judge's class KL."""
    from course_lib import metrics
    from course_lib.data import fashion_mnist

    start = time.perf_counter()
    samples = sample_ncsn(model, n, steps_per_sigma=steps_per_sigma, eps=SAMPLER["eps"], seed=1)
    seconds = time.perf_counter() - start
    real = fashion_mnist("test").subset(n, seed=0).images
    return {f"fid_{n}": round(metrics.fid(samples, real), 3),
            f"class_kl_{n}": round(metrics.kl_to_uniform(metrics.class_histogram(samples)), 4),
            "steps_per_sigma": steps_per_sigma, f"sample_seconds_{n}": round(seconds, 1)}


def train_shipped(model: NCSN, name: str = "ncsn", cfg: NCSNTrainConfig | None = None, progress: bool = True,
                  n_eval: int = N_EVAL, steps_per_sigma: int = SAMPLER["steps_per_sigma"]) -> dict:
    """Train ``model`` with the spec of ``name`` (resumable: ``checkpoints.state_path(name)``), then measure it."""
    from course_lib.checkpoints import state_path

    cfg = cfg or SHIPPED[name]
    state = state_path(name) if cfg == SHIPPED[name] else None      # shorter fallback runs are not resumed
    torch.manual_seed(cfg.seed)
    return train_ncsn(model, cfg, state=state, progress=progress) | _metrics(model, n_eval, steps_per_sigma)


def load_ncsn(name: str = "ncsn", device: torch.device | str = "cpu", profile: str = "auto") -> NCSN:
    """The EMA NCSN of checkpoint ``name`` in eval mode, its manifest entry as ``.checkpoint_entry``
    (shipped, else cached, else trained here for the profile's ``FALLBACK`` length)."""
    from course_lib import checkpoints

    if name not in SHIPPED:
        raise ValueError(f"unknown score checkpoint {name!r}: expected one of {sorted(SHIPPED)}")
    cfg = SHIPPED[name]
    model = build_ncsn(cfg).to(device)
    steps, n_eval, per_sigma = FALLBACK[resolve(profile)]
    short = replace(cfg, steps=steps or cfg.steps, warmup=min(cfg.warmup, max(1, (steps or cfg.steps) // 5)))
    model.checkpoint_entry = checkpoints.load(
        name, model, lambda m: train_shipped(m, name, short, progress=False, n_eval=n_eval, steps_per_sigma=per_sigma),
        profile=profile)
    return model.eval()


def _make(name: str):
    def make():
        return build_ncsn(SHIPPED[name]), lambda m: train_shipped(m, name)
    return make


CHECKPOINTS = {name: _make(name) for name in SHIPPED}     # for ``python -m course_lib checkpoints``
