"""Training and evaluating an image classifier, shared by every chapter: single steps (the notebook owns the
loop), ``predict`` and ``accuracy`` in batches, the input check, and ``fit``, which strings the same steps
together for code that needs a trained classifier without a notebook (the judge, the scene classifier, the
checkpoint fallbacks and ``python -m course_lib checkpoints``). Chapter 01 teaches them
(``course_lib.cnn.train`` re-exports them beside its FLOP counter).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from course_lib.resume import load_state, save_state
from course_lib.utils import at_least_float32 as _upcast  # float16/bfloat16 -> float32, else unchanged
from course_lib.utils import autocast, backward_step


def check_images(x: Tensor, size: int = 28) -> None:
    """Raise a ValueError unless ``x`` is a float batch (B, 1, size, size)."""
    if not isinstance(x, Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (1, size, size):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"expected images of shape (B, 1, {size}, {size}), got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"expected float images in [0, 1], got dtype {x.dtype}")


def augment(x: Tensor, generator: torch.Generator | None = None, shift: int = 2) -> Tensor:
    """Random horizontal flip and random translation by up to ``shift`` pixels: (B, C, H, W) -> same."""
    if not isinstance(x, Tensor) or x.ndim != 4 or not isinstance(shift, int) or shift < 0:
        raise ValueError(f"expected x of shape (B, C, H, W) and an int shift >= 0, "
                         f"got {tuple(getattr(x, 'shape', ()))} and shift={shift!r}")
    B, C, H, W = x.shape
    flip = torch.rand(B, generator=generator) < 0.5
    x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, (shift,) * 4)                                    # (B, C, H + 2s, W + 2s)
    dy, dx = torch.randint(0, 2 * shift + 1, (2, B), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(H, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(W, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(B, device=x.device)[:, None, None, None]
    chans = torch.arange(C, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]                            # (B, C, H, W)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter; buffers are copied. (The exponential
    moving average of the weights that the GANs of chapter 10 and the diffusion models of chapter 13 sample from.)"""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor) -> Tensor:
    """One SGD step of cross-entropy on a batch x (B, 1, 28, 28), y (B,); returns the loss (not synced)."""
    model.train()
    with autocast(x.device):
        loss = F.cross_entropy(model(x), y)
    backward_step(loss, optimizer, x.device)          # with a gradient scaler under float16 (a T4)
    return loss.detach()


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 1000) -> Tensor:
    """Logits (N, K) for images (N, 1, S, S), in batches, in eval mode, on the model's device and in its
    dtype (float16 or float64 images are cast to it), returned on the CPU in that dtype: float64 for a
    float64 model, float32 for float32 and for float16 / bfloat16 (or autocast) outputs."""
    check_images(images, size=images.shape[-1] if isinstance(images, Tensor) and images.ndim == 4 else 28)
    model.eval()
    weight = next(model.parameters())
    out = []
    for i in range(0, max(len(images), 1), batch_size):              # N = 0: one empty batch gives (0, K)
        with autocast(weight.device):
            out.append(_upcast(model(images[i:i + batch_size].to(weight.device, weight.dtype))).cpu())
    return torch.cat(out)


def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Fraction of images (N, 1, S, S), N >= 1, whose arg-max logit equals the label (N,)."""
    if not isinstance(labels, Tensor) or labels.shape != (len(images),) or len(images) == 0:
        raise ValueError(f"expected at least one image and labels of shape ({len(images)},), "
                         f"got {getattr(labels, 'shape', labels)}")
    hits = int((predict(model, images, batch_size).argmax(1) == labels.cpu()).sum())
    return hits / len(labels)                                          # an exact count, not a float32 mean


def fit(model: nn.Module, images: Tensor, labels: Tensor, epochs: int, batch_size: int = 128,
        lr: float = 2e-3, use_augment: bool = True, seed: int = 0, progress: bool = True,
        state: Path | None = None, state_every: int = 200) -> dict:
    """Train with AdamW + one-cycle LR on images (N, 1, S, S); returns {'seconds', 'losses'}.

    With ``state`` (a file path) the run saves its training state every ``state_every`` steps and at the
    end (``course_lib.resume``); started again with the same arguments after being killed, it resumes
    from the last saved step and finishes with the same weights as an uninterrupted run.
    """
    check_images(images, size=images.shape[-1] if isinstance(images, Tensor) and images.ndim == 4 else 28)
    if len(images) < batch_size or labels.shape != (len(images),):
        raise ValueError(f"expected at least batch_size={batch_size} images (N, 1, S, S) and labels (N,), got "
                         f"{tuple(images.shape)} and {tuple(labels.shape)}")
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    per_epoch = len(images) // batch_size
    steps = epochs * per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1))
    losses, start, step, order = [], time.perf_counter(), 0, None
    run = {"n": len(images), "epochs": epochs, "batch_size": batch_size, "lr": lr, "augment": use_augment, "seed": seed}
    if state is not None and (resumed := load_state(state, model, optimizer, schedule, g, config=run)) is not None:
        step, extra = resumed
        losses, order = list(extra["losses"].to(dev).unbind()), extra["order"]
        print(f"resuming from step {step} of {steps} ({state})")
    bar = tqdm(total=steps, initial=step, desc=f"training {type(model).__name__}", disable=not progress)
    while step < steps:
        if step % per_epoch == 0 or order is None:
            order = torch.randperm(len(images), generator=g)
        i = step % per_epoch
        idx = order[i * batch_size:(i + 1) * batch_size]
        x, y = images[idx].to(dev), labels[idx].to(dev)
        if use_augment:
            x = augment(x, g)
        losses.append(train_step(model, optimizer, x, y))
        schedule.step()
        step += 1
        bar.update()
        if state is not None and (step % state_every == 0 or step == steps):
            save_state(state, step, model, optimizer, schedule, g, config=run,
                       extra={"losses": torch.stack(losses), "order": order})
    bar.close()
    return {"seconds": time.perf_counter() - start, "losses": torch.stack(losses).tolist() if losses else []}


def run_steps(model: nn.Module, steps: int, batch_loss, lr: float, *, weight_decay: float = 0.0,
              clip_grad: float | None = None, state: Path | None = None, config: dict | None = None,
              desc: str = "training", progress: bool = True, seed: int = 0, state_every: int = 200) -> dict:
    """AdamW with a one-cycle learning rate over ``steps`` calls of ``batch_loss(generator) -> loss`` (the batch
    drawn with that generator), for the generative models' shipped runs. With ``state`` (and the run's ``config``)
    it saves the training state every ``state_every`` steps and resumes from it when started again.

    Returns {"losses": per-step losses (list), "seconds"}; the model is left in eval mode."""
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    run = {"steps": steps, "lr": lr, "weight_decay": weight_decay, "seed": seed, **(config or {})}
    step, losses, start = 0, [], time.perf_counter()
    if state is not None and (resumed := load_state(state, model, opt, sched, g, config=run)) is not None:
        step, extra = resumed
        losses = list(extra["losses"].to(dev).unbind())
    model.train()
    for step in tqdm(range(step, steps), initial=step, total=steps, desc=desc, disable=not progress):
        with autocast(dev):                                  # mixed precision on a GPU, a no-op on the CPU
            loss = batch_loss(g)
        backward_step(loss, opt, dev, clip_grad)             # float16 gradients scaled (a T4), clipped unscaled
        sched.step()
        losses.append(loss.detach())                         # stays on the device: no host sync per step
        if state is not None and ((step + 1) % state_every == 0 or step + 1 == steps):
            save_state(state, step + 1, model, opt, sched, g, config=run, extra={"losses": torch.stack(losses)})
    model.eval()
    return {"losses": torch.stack(losses).cpu().tolist() if losses else [], "seconds": time.perf_counter() - start}


def mean_of(values: list[float], first: int | None = None, last: int | None = None) -> float:
    """The mean of the first or last n values (all if neither), rounded to 4 decimals: a loss summary."""
    part = values[:first] if first is not None else values[-last:] if last is not None else values
    return round(sum(part) / max(len(part), 1), 4)
