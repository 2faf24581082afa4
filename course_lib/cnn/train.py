"""Chapter 01's training tools: the classifier steps it teaches (which live in the core, ``course_lib.training``,
because every chapter uses them) and the FLOP counter of its architecture table."""

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

__all__ = ["accuracy", "augment", "check_images", "count_flops", "fit", "predict", "train_step"]


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
