"""The Fashion-MNIST judge: the classifier every generative chapter is measured with.

It is chapter 01's ResNet, trained by ``python -m course_lib checkpoints fmnist_classifier`` and shipped
as the checkpoint ``fmnist_classifier``. :func:`load_classifier` loads it by name; where no usable
checkpoint exists it trains one (sizes from the active profile) and caches it.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from course_lib import checkpoints
from course_lib.cnn.resnet import ResNet
from course_lib.cnn.train import accuracy, fit
from course_lib.data import fashion_mnist
from course_lib.profiles import pick
from course_lib.utils import device as default_device

CHECKPOINT = "fmnist_classifier"


@dataclass
class JudgeConfig:
    n_train: int | None = None  # None: all 60,000 training images
    epochs: int = 15
    batch_size: int = 128
    lr: float = 3e-3


JUDGE = {"smoke": JudgeConfig(n_train=2000, epochs=1), "cpu": JudgeConfig(epochs=3),
         "gpu": JudgeConfig(epochs=15)}
SHIPPED = JudgeConfig(epochs=15)  # what `python -m course_lib checkpoints fmnist_classifier` trains


def build_classifier() -> ResNet:
    return ResNet(num_classes=10, width=16, blocks=2)


def train_classifier(model: nn.Module, cfg: JudgeConfig, progress: bool = True) -> dict:
    """Train ``model`` on Fashion-MNIST train with ``cfg``; return its test accuracy and training loss."""
    train = fashion_mnist("train").subset(cfg.n_train)
    result = fit(model, train.images, train.labels, cfg.epochs, cfg.batch_size, cfg.lr, progress=progress)
    test = fashion_mnist("test")
    return {"test_acc": round(accuracy(model, test.images, test.labels), 4),
            "final_train_loss": round(sum(result["losses"][-50:]) / len(result["losses"][-50:]), 4),
            "epochs": cfg.epochs, "n_train": len(train)}


def load_classifier(device=None, profile: str = "auto") -> nn.Module:
    """The judge in eval mode on ``device``: shipped, else cached, else trained now (with a progress bar)."""
    model = build_classifier().to(device or default_device())
    cfg = pick(JUDGE, profile)
    entry = checkpoints.load(CHECKPOINT, model, lambda m: train_classifier(m, cfg), profile=profile)
    model.judge_entry = entry  # where it came from and its metrics, for captions
    return model.eval().requires_grad_(False)
