"""Chapter 01's training tools: the classifier steps it teaches (which live in the core, ``course_lib.training``,
because every chapter uses them), the FLOP counter of its architecture table, and the step timer that gives
each architecture the same wall-clock training time."""

from __future__ import annotations

import torch
from torch import nn

from course_lib.training import (
    accuracy,
    augment,
    check_images,
    fit,
    predict,
    train_step,
)

__all__ = ["accuracy", "augment", "check_images", "count_flops", "fit", "predict", "seconds_per_step", "train_step"]


def count_flops(model: nn.Module, shape: tuple[int, ...] = (1, 1, 28, 28)) -> int:
    """Forward FLOPs for one input of ``shape`` (in the model's dtype), counted by ``torch.utils.flop_counter``
    (a MAC = 2 FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    weight = next(model.parameters())
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(shape, dtype=weight.dtype, device=weight.device))
    model.train(was_training)
    return counter.get_total_flops()


def seconds_per_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float = 1e-3, steps: int = 3) -> float:
    """Wall-clock seconds of one ``train_step`` of ``model`` on the batch x (B, 1, H, W), y (B,), measured on a
    copy (one warm-up step, then the mean of ``steps`` timed ones), so ``model`` itself is left untouched.
    Used to give every architecture the same training time as a fixed number of steps."""
    import copy
    import time

    clone = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(clone.parameters(), lr=lr)
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    train_step(clone, optimizer, x, y)                                 # warm-up: allocations, kernel choice
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        train_step(clone, optimizer, x, y)
    sync()
    return (time.perf_counter() - start) / steps
