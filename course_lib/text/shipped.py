"""Chapter 15's judge of captioned images, a shipped checkpoint: ``caption_judge``.

The course's judge (``fmnist_classifier``, chapter 01's ResNet) was trained on Fashion-MNIST as it is: on the
captioned images, where half the items are shrunk to 16 px against one side and every item is rescaled to a
dark or light intensity, it is right on only about 64 % of the test items (36 % of the small ones). Grading a
text-to-image model's samples against their captions needs a classifier of *those* images: the same ResNet,
trained the same way (AdamW, one-cycle, flips and 2-px shifts) on 60,000 captioned training images for 5 epochs.
Its manifest keeps its accuracy on 10,000 captioned test images, overall and for small and large items.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from course_lib import checkpoints
from course_lib.cnn import build
from course_lib.profiles import pick
from course_lib.text.captions import caption_dataset
from course_lib.training import fit, predict
from course_lib.utils import device as default_device

CHECKPOINT = "caption_judge"
N_TEST = 10_000


@dataclass
class CaptionJudgeConfig:
    n_train: int = 60_000
    epochs: int = 5
    batch_size: int = 128
    lr: float = 3e-3


SHIPPED = CaptionJudgeConfig()
FALLBACK = {"smoke": CaptionJudgeConfig(n_train=2_000, epochs=1), "cpu": CaptionJudgeConfig(epochs=1),
            "gpu": CaptionJudgeConfig()}


def evaluate(model: nn.Module, n: int = N_TEST) -> dict:
    """Accuracy on n captioned test images (``caption_dataset(n, "test", seed=0)``): all, small and large items."""
    test = caption_dataset(n, "test", seed=0)
    hit = predict(model, test.images).argmax(1) == test.labels                      # (n,)
    small = torch.tensor([s == "small" for s in test.sizes])
    return {f"test_acc_{n}": round(float(hit.double().mean()), 4),
            "test_acc_small": round(float(hit[small].double().mean()), 4),
            "test_acc_large": round(float(hit[~small].double().mean()), 4)}


def train_caption_judge(model: nn.Module, cfg: CaptionJudgeConfig = SHIPPED, progress: bool = True,
                        state: Path | None = None, n_test: int = N_TEST) -> dict:
    """Train on ``caption_dataset(cfg.n_train, "train", seed=0)``; return the test accuracies and the loss."""
    train = caption_dataset(cfg.n_train, "train", seed=0)
    result = fit(model, train.images, train.labels, cfg.epochs, cfg.batch_size, cfg.lr, progress=progress,
                 state=state)
    losses = result["losses"][-50:]
    return {"epochs": cfg.epochs, "n_train": cfg.n_train, "seconds": round(result["seconds"], 1),
            "final_train_loss": round(float(sum(losses) / len(losses)), 4)} | evaluate(model, n_test)


def load_caption_judge(device=None, profile: str = "auto") -> nn.Module:
    """The caption judge in eval mode, frozen (shipped, else cached, else trained for the profile's FALLBACK
    length); its manifest entry as ``.checkpoint_entry``."""
    model = build("resnet").to(device or default_device())
    cfg = pick(FALLBACK, profile)
    model.checkpoint_entry = checkpoints.load(
        CHECKPOINT, model, lambda m: train_caption_judge(m, cfg, progress=False, n_test=min(N_TEST, 10 * cfg.n_train // 60)),
        profile=profile)
    return model.eval().requires_grad_(False)


def _make():
    return build("resnet"), lambda m: train_caption_judge(m, SHIPPED, state=checkpoints.state_path(CHECKPOINT))


CHECKPOINTS = {CHECKPOINT: _make}        # for ``python -m course_lib checkpoints caption_judge``
