"""Trained Fashion-MNIST classifiers, loaded by checkpoint name.

- ``fmnist_classifier`` -- the **judge**: chapter 01's ResNet trained for 15 epochs. Every generative
  chapter measures its samples with its features (``course_lib.metrics``).
- ``fmnist_alexnet`` -- chapter 01's AlexNet, whose max-pooling switches chapter 02's deconvnet unpools.
- ``fmnist_alexnet15``, ``fmnist_googlenet``, ``fmnist_densenet`` -- chapter 01's other architectures trained
  exactly as the judge (15 epochs, the same recipe), so that the four can be ranked near convergence rather than
  after the notebook's short equal-time runs.

``python -m course_lib checkpoints`` trains them (``SHIPPED`` sizes) into ``data/checkpoints``.
:func:`load_classifier` loads one by name; where no usable checkpoint exists it trains one with the
active profile's sizes (``FALLBACK``) and caches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from course_lib import checkpoints
from course_lib.cnn import build
from course_lib.data import fashion_mnist
from course_lib.profiles import pick
from course_lib.training import accuracy, fit
from course_lib.utils import device as default_device

CHECKPOINT = "fmnist_classifier"
ARCH = {"fmnist_classifier": "resnet", "fmnist_alexnet": "alexnet", "fmnist_alexnet15": "alexnet",
        "fmnist_googlenet": "googlenet", "fmnist_densenet": "densenet"}


@dataclass
class TrainConfig:
    n_train: int | None = None  # None: all 60,000 training images
    epochs: int = 15
    batch_size: int = 128
    lr: float = 3e-3


SHIPPED = {"fmnist_classifier": TrainConfig(epochs=15), "fmnist_alexnet": TrainConfig(epochs=6),
           **{name: TrainConfig(epochs=15) for name in ("fmnist_alexnet15", "fmnist_googlenet", "fmnist_densenet")}}
FALLBACK = {"smoke": TrainConfig(n_train=2000, epochs=1), "cpu": TrainConfig(epochs=3),
            "gpu": TrainConfig(epochs=15)}


def build_classifier(name: str = CHECKPOINT) -> nn.Module:
    if name not in ARCH:
        raise ValueError(f"unknown classifier {name!r}: expected one of {sorted(ARCH)}")
    return build(ARCH[name])


def train_classifier(model: nn.Module, cfg: TrainConfig, progress: bool = True, state: Path | None = None) -> dict:
    """Train ``model`` on Fashion-MNIST train with ``cfg``; return its test accuracy and training loss.

    ``state``: a file for the resumable training state (killed runs resume from it; see ``fit``)."""
    train = fashion_mnist("train").subset(cfg.n_train)
    result = fit(model, train.images, train.labels, cfg.epochs, cfg.batch_size, cfg.lr, progress=progress, state=state)
    test = fashion_mnist("test")
    return {"test_acc": round(accuracy(model, test.images, test.labels), 4),
            "final_train_loss": round(sum(result["losses"][-50:]) / len(result["losses"][-50:]), 4),
            "epochs": cfg.epochs, "n_train": len(train)}


def load_classifier(device=None, profile: str = "auto", name: str = CHECKPOINT) -> nn.Module:
    """A trained classifier in eval mode on ``device``: shipped, else cached, else trained now."""
    model = build_classifier(name).to(device or default_device())
    cfg = pick(FALLBACK, profile)
    entry = checkpoints.load(name, model, lambda m: train_classifier(m, cfg, state=checkpoints.state_path(name)),
                             profile=profile)
    model.checkpoint_entry = entry  # where it came from and its metrics, for captions
    return model.eval().requires_grad_(False)
