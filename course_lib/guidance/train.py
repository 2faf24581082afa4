"""Training chapter 14's models for their shipped checkpoints, and sampling with guidance.

Notebook 14 writes its training steps and sampling loops itself; this module strings the same steps together
for code that needs trained models without a notebook (``python -m course_lib checkpoints ddpm_cond``):

- ``cond_train_step``: Ho & Salimans 2022, Algorithm 1 once: the label replaced by the null token with
  probability p_uncond (``drop_condition``), t ~ U{0..T-1}, eps ~ N(0, I), a gradient step on L_simple;
- ``classifier_train_step``: the noisy classifier p(y | x_t, t) (Dhariwal & Nichol Sec. 4.2): cross-entropy on
  x_t = q_sample(x0, t, eps) at a random t;
- ``train_cond_ddpm`` / ``train_noisy_classifier``: chapter 13's ``train_loop`` (warm-up, clipping, EMA,
  resumable) over (images, labels);
- ``sample_cfg``: DDIM (eta = 0, x0 clipped) with ``eps_cfg``, one guidance scale for the batch.

Images live in [-1, 1] inside the models, as in chapter 13; the sampler returns [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.diffusion.schedule import NoiseSchedule, ddim_timesteps
from course_lib.diffusion.train import DDPMTrainConfig, gradient_step, to_model, to_unit, train_loop
from course_lib.utils import autocast
from course_lib.guidance.guidance import ClassConditionalUNet, drop_condition, eps_cfg


@dataclass
class CondDDPMTrainConfig(DDPMTrainConfig):
    p_uncond: float = 0.1         # Ho & Salimans: 0.1 or 0.2 of the batch trains the unconditional model


@dataclass
class ClassifierTrainConfig(DDPMTrainConfig):
    steps: int = 3_000
    batch_size: int = 128
    lr: float = 1e-3
    ema_decay: float = 0.99


def cond_train_step(model: ClassConditionalUNet, optimizer: torch.optim.Optimizer, schedule: NoiseSchedule,
                    x0: Tensor, y: Tensor, generator: torch.Generator | None = None, p_uncond: float = 0.1,
                    grad_clip: float | None = 1.0) -> Tensor:
    """One step of CFG training on x0 (B, C, H, W) in [-1, 1] with labels y (B,): returns L_simple () before the
    update. One draw from ``generator`` for the dropped labels, then t, then eps (so a run is reproducible)."""
    y = drop_condition(y, p_uncond, model.null_label, generator)                          # (B,)
    t = torch.randint(0, schedule.T, (len(x0),), generator=generator).to(x0.device)      # (B,)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)                       # (B, C, H, W)
    with autocast(x0.device):                                                            # mixed precision on a GPU
        loss = (eps - model(schedule.q_sample(x0, t, eps), t, y)).pow(2).mean()
    return gradient_step(model, optimizer, loss, grad_clip)


def classifier_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, schedule: NoiseSchedule, x0: Tensor,
                          y: Tensor, generator: torch.Generator | None = None, grad_clip: float | None = 1.0) -> Tensor:
    """Cross-entropy of ``model(x_t, t)`` (B, K) against y (B,) on x_t = q_sample(x0, t, eps), t ~ U{0..T-1}."""
    t = torch.randint(0, schedule.T, (len(x0),), generator=generator).to(x0.device)      # (B,)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    with autocast(x0.device):
        loss = F.cross_entropy(model(schedule.q_sample(x0, t, eps), t), y)
    return gradient_step(model, optimizer, loss, grad_clip)


def _train_data(n: int, seed: int, dev: torch.device) -> tuple[Tensor, Tensor]:
    from course_lib.data import fashion_mnist

    train = fashion_mnist("train").subset(n, seed=seed)
    return to_model(train.images).to(dev), train.labels.to(dev)                          # (N, 1, 28, 28), (N,)


def train_cond_ddpm(model: ClassConditionalUNet, cfg: CondDDPMTrainConfig, state: Path | None = None,
                    progress: bool = True) -> dict:
    """Train the class-conditional eps_theta(x_t, t, y) with label dropout; it ends holding the EMA weights.
    Returns {'seconds', 'steps', 'loss_first500', 'loss_last500'} (resumable with ``state``)."""
    dev = next(model.parameters()).device
    schedule = NoiseSchedule(cfg.T).to(dev)
    losses, seconds = train_loop(
        model, cfg, _train_data(cfg.n_train, cfg.seed, dev),
        lambda m, opt, x, y, g: cond_train_step(m, opt, schedule, x, y, g, cfg.p_uncond, cfg.grad_clip),
        state=state, progress=progress, desc="conditional DDPM")
    k = min(500, max(1, cfg.steps // 10))
    return {"seconds": seconds, "steps": cfg.steps,
            f"loss_first{k}": float(losses[:k].mean()), f"loss_last{k}": float(losses[-k:].mean())}


def train_noisy_classifier(model: nn.Module, cfg: ClassifierTrainConfig, state: Path | None = None,
                           progress: bool = True) -> dict:
    """Train p(y | x_t, t) on noisy training images; it ends holding the EMA weights. Returns the seconds and
    the mean loss of the first and last 10 % of the steps."""
    dev = next(model.parameters()).device
    schedule = NoiseSchedule(cfg.T).to(dev)
    losses, seconds = train_loop(
        model, cfg, _train_data(cfg.n_train, cfg.seed, dev),
        lambda m, opt, x, y, g: classifier_train_step(m, opt, schedule, x, y, g, cfg.grad_clip),
        state=state, progress=progress, desc="noisy classifier")
    k = max(1, cfg.steps // 10)
    return {"seconds": seconds, "steps": cfg.steps, "loss_first": float(losses[:k].mean()),
            "loss_last": float(losses[-k:].mean())}


@torch.no_grad()
def sample_cfg(model: ClassConditionalUNet, schedule: NoiseSchedule, labels: Tensor, scale: float,
               steps: int = 50, seed: int = 0, batch_size: int = 250, clip_x0: float | None = 1.0) -> Tensor:
    """One image per label (N,) in [0, 1], (N, 1, 28, 28): DDIM over ``steps`` of the T with the CFG prediction
    eps_u + scale (eps_c - eps_u) (scale 0: the unconditional model; a label equal to ``model.null_label``:
    unconditional at any scale). At scale 0 or 1 the combination is one of the two predictions, so only that one
    is computed: a single pass instead of two."""
    model.eval()
    dev = next(model.parameters()).device
    gen, out, k = torch.Generator().manual_seed(seed), [], schedule.T // steps
    for i in range(0, len(labels), batch_size):
        y = labels[i:i + batch_size].to(dev)
        x = torch.randn((len(y), 1, 28, 28), generator=gen).to(dev)
        for t in ddim_timesteps(schedule.T, steps):
            tt = torch.full((len(y),), t, device=dev)
            if scale in (0, 1):                    # cfg(eps_u, eps_c, 0) = eps_u, cfg(eps_u, eps_c, 1) = eps_c
                eps = model(x, tt, y if scale == 1 else torch.full_like(y, model.null_label))
            else:
                eps = eps_cfg(model, x, tt, y, scale)
            x = schedule.ddim_step(eps, t, t - k, x, clip_x0=clip_x0)
        out.append(to_unit(x).cpu())
    return torch.cat(out)
