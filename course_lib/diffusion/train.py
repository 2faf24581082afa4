"""Training a DDPM (Ho et al. 2020, Algorithm 1) and sampling from it, for the shipped checkpoint.

Notebook 13 writes the training step and both sampling loops itself; this module strings the same steps
together for code that needs a trained model without a notebook (``python -m course_lib checkpoints ddpm``):

- ``train_step``: Algorithm 1 once: t ~ U{0..T-1}, eps ~ N(0, I), a gradient step on L_simple (Eq. 14);
- ``train_ddpm``: the loop, with linear warm-up, gradient clipping at norm 1 (Ho et al. Appendix B), an EMA
  of the weights (decay ``ema_decay``) and the resumable state; the model ends holding the EMA weights;
- ``sample_ddpm`` (Algorithm 2, T steps) and ``sample_ddim`` (Song et al. 2021, Eq. 12, fewer steps).

Images live in [-1, 1] inside the model (Ho et al. scale the data so); the samplers return [0, 1].
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from course_lib.diffusion.schedule import NoiseSchedule, ddim_timesteps, ddpm_loss
from course_lib.training import ema_update
from course_lib.utils import autocast, backward_step


@dataclass
class DDPMTrainConfig:
    steps: int = 5_000
    batch_size: int = 64
    lr: float = 5e-4
    warmup: int = 200             # steps of linear learning-rate warm-up (Ho et al.: 5,000 of 800,000)
    grad_clip: float = 1.0
    ema_decay: float = 0.999      # Ho et al. use 0.9999 over 800k steps; a 5k-step run needs a shorter memory
    T: int = 1_000
    n_train: int = 60_000
    seed: int = 0
    state_every: int = 200


def to_model(x: Tensor) -> Tensor:
    """Images in [0, 1] -> the model's [-1, 1]."""
    return x * 2 - 1


def to_unit(x: Tensor) -> Tensor:
    """The model's [-1, 1] -> images in [0, 1] (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def gradient_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss: Tensor,
                  grad_clip: float | None = 1.0) -> Tensor:
    """Backpropagate ``loss`` (), clip the gradient norm of ``optimizer``'s parameters (``model``'s) at
    ``grad_clip`` (None: no clipping), step; return the loss detached. The update DDPM's, the NCSN's and chapter
    14-15's training steps share; for a loss computed under ``autocast`` it scales float16 gradients
    (``utils.backward_step``)."""
    backward_step(loss, optimizer, loss.device, grad_clip)
    return loss.detach()


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, schedule: NoiseSchedule, x0: Tensor,
               generator: torch.Generator | None = None, grad_clip: float | None = 1.0) -> Tensor:
    """Ho et al. Algorithm 1, one step on x0 (B, C, H, W) in [-1, 1]: returns L_simple () before the update."""
    t = torch.randint(0, schedule.T, (len(x0),), generator=generator).to(x0.device)      # (B,)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)                       # (B, C, H, W)
    with autocast(x0.device):                                                            # mixed precision on a GPU
        loss = ddpm_loss(model, schedule, x0, t, eps)
    return gradient_step(model, optimizer, loss, grad_clip)


def train_loop(model: nn.Module, cfg, images: Tensor | tuple[Tensor, ...], step: Callable, state: Path | None = None,
               progress: bool = True, desc: str = "", ema_decay: Callable[[int], float] | None = None) -> tuple[Tensor, float]:
    """The training loop DDPM, the NCSN and chapter 14's models share: ``cfg.steps`` calls of
    ``step(model, optimizer, x, generator)`` (one gradient step on a batch x of ``cfg.batch_size`` images drawn
    from ``images`` (N, C, H, W); returns the loss) -- or, when ``images`` is a tuple of tensors of N rows (images
    and labels), ``step(model, optimizer, x, y, ..., generator)`` on the same rows of each
    with Adam at ``cfg.lr`` after ``cfg.warmup`` steps of linear warm-up, and an EMA of the weights (decay
    ``ema_decay(step)``, default ``cfg.ema_decay``). ``model`` ends holding the EMA weights, in eval mode.
    Returns the losses (steps,) and the seconds of every run that led here (a resumed run adds the earlier ones').

    With ``state`` it saves everything every ``cfg.state_every`` steps (``course_lib.resume``) and resumes from
    there when started again with the same config, finishing with the same weights as an uninterrupted run."""
    from tqdm.auto import tqdm

    from course_lib.resume import load_state, save_state

    dev = next(model.parameters()).device
    data = images if isinstance(images, tuple) else (images,)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(cfg.warmup, 1)))
    pair = nn.ModuleDict({"model": model, "ema": ema})
    gen = torch.Generator().manual_seed(cfg.seed)
    config = {k: v for k, v in asdict(cfg).items() if k != "state_every"}
    first, losses, before = 0, torch.zeros(cfg.steps), 0.0          # before: seconds of earlier, interrupted runs
    resumed = load_state(state, pair, optimizer, warmup, gen, config=config) if state is not None else None
    if resumed is not None:
        first, extra = resumed
        losses, before = extra["losses"], float(extra["seconds"])
    model.train()
    t0 = time.perf_counter()
    for k in tqdm(range(first, cfg.steps), initial=first, total=cfg.steps, disable=not progress, desc=desc):
        idx = torch.randint(len(data[0]), (cfg.batch_size,), generator=gen).to(dev)
        losses[k] = step(model, optimizer, *(d[idx] for d in data), gen)
        warmup.step()
        ema_update(ema, model, ema_decay(k) if ema_decay else cfg.ema_decay)
        if state is not None and ((k + 1) % cfg.state_every == 0 or k + 1 == cfg.steps):
            seconds = torch.tensor(before + time.perf_counter() - t0, dtype=torch.float64)
            save_state(state, k + 1, pair, optimizer, warmup, gen, extra={"losses": losses, "seconds": seconds},
                       config=config)
    model.load_state_dict(ema.state_dict())
    model.eval()
    return losses, round(before + time.perf_counter() - t0, 1)


def train_ddpm(model: nn.Module, cfg: DDPMTrainConfig, state: Path | None = None, progress: bool = True) -> dict:
    """Train ``model`` (eps_theta) on Fashion-MNIST's training images with ``train_loop``; it ends holding the EMA
    weights. Returns {'seconds', 'steps', 'loss_first500', 'loss_last500'} (resumable with ``state``)."""
    from course_lib.data import fashion_mnist

    dev = next(model.parameters()).device
    images = to_model(fashion_mnist("train").subset(cfg.n_train, seed=cfg.seed).images).to(dev)   # (N, 1, 28, 28)
    schedule = NoiseSchedule(cfg.T).to(dev)
    losses, seconds = train_loop(model, cfg, images,
                                 lambda m, opt, x, g: train_step(m, opt, schedule, x, g, cfg.grad_clip),
                                 state=state, progress=progress, desc="DDPM")
    return {"seconds": seconds, "steps": cfg.steps,
            "loss_first500": float(losses[:500].mean()), "loss_last500": float(losses[-500:].mean())}


def _batches(n: int, batch_size: int):
    for i in range(0, n, batch_size):
        yield min(batch_size, n - i)


@torch.no_grad()
def sample_ddim(model: nn.Module, schedule: NoiseSchedule, n: int, steps: int = 50, eta: float = 0.0,
                seed: int = 0, batch_size: int = 500, shape: tuple[int, ...] = (1, 28, 28),
                clip_x0: float | None = 1.0) -> Tensor:
    """n images (n, *shape) in [0, 1] by DDIM (Song et al. Eq. 12) over ``steps`` of the T steps, from
    x_T ~ N(0, I) drawn from a seeded generator (eta > 0 adds the noise of Eq. 16); x0's estimate clipped to
    [-clip_x0, clip_x0] at every step (the data's range; None: not clipped)."""
    model.eval()
    dev = next(model.parameters()).device
    gen, out = torch.Generator().manual_seed(seed), []
    taus = ddim_timesteps(schedule.T, steps)
    k = schedule.T // steps
    for b in _batches(n, batch_size):
        x = torch.randn((b, *shape), generator=gen).to(dev)
        for t in taus:
            noise = torch.randn(x.shape, generator=gen).to(dev) if eta > 0 else None
            x = schedule.ddim_step(model(x, torch.full((b,), t, device=dev)), t, t - k, x, eta=eta, noise=noise,
                                   clip_x0=clip_x0)
        out.append(to_unit(x).cpu())
    return torch.cat(out)


@torch.no_grad()
def sample_ddpm(model: nn.Module, schedule: NoiseSchedule, n: int, seed: int = 0, batch_size: int = 500,
                shape: tuple[int, ...] = (1, 28, 28), clip_x0: float | None = 1.0) -> Tensor:
    """n images (n, *shape) in [0, 1] by ancestral sampling (Ho et al. Algorithm 2), all T steps; x0's
    estimate clipped to [-clip_x0, clip_x0] at every step (as Ho et al.'s sampler; None: not clipped)."""
    model.eval()
    dev = next(model.parameters()).device
    gen, out = torch.Generator().manual_seed(seed), []
    for b in _batches(n, batch_size):
        x = torch.randn((b, *shape), generator=gen).to(dev)
        for t in reversed(range(schedule.T)):
            noise = torch.randn(x.shape, generator=gen).to(dev) if t > 0 else None
            x = schedule.ddpm_step(model(x, torch.full((b,), t, device=dev)), t, x, noise, clip_x0=clip_x0)
        out.append(to_unit(x).cpu())
    return torch.cat(out)
