"""Chapters 16-18's shipped checkpoints (``python -m course_lib checkpoints``).

Notebook 16: ``igpt_ar`` and ``igpt_bert``, Image GPT (dim 64, 4 blocks of 4 heads) on Fashion-MNIST at 14 x 14 with
a 16-grey palette, trained autoregressively and BERT-style (15 % masked): 4,000 steps of batch 64 each, AdamW with a
one-cycle learning rate peaking at 1e-3 (``course_lib.transformers.igpt.train_igpt``). ``igpt_ar``'s manifest also
keeps the scores of 1,000 unconditional samples (``igpt.sample_metrics``: FID, class KL, the pipeline's floor).

Notebook 17's classifiers are all trained by ``course_lib.training.fit`` (AdamW, one-cycle learning rate, random
flips and +-2-pixel shifts, batch 128), the recipe of chapter 01's ResNet judge ``fmnist_classifier`` (15 epochs of
all 60,000 images, lr 3e-3):

- ``vit_fmnist``           ViT(dim 64, depth 4, 4 heads, 4x4 patches), all 60,000 images, 15 epochs (7,020 steps)
- ``vit_fmnist_long``      the same, 90 epochs (42,120 steps): 15 epochs left it at 86.7 % with a training loss of
                           0.36 (underfitting), where the ResNet reached 93.9 %; 45 epochs reached 90.4 % (training
                           loss 0.25, still falling), these 90 reach 92.1 % (0.18)
- ``vit_fmnist_10pct``     the same ViT on a fixed 10 % (6,000 images), 150 epochs: about the same number of steps
                           (6,900), so the two runs differ in data, not in compute
- ``resnet_fmnist_10pct``  chapter 01's ResNet on the same 6,000 images, 150 epochs (its 100 % twin is the judge)

Notebook 18: ``beit_pretrain``, the same ViT pre-trained as BEiT (masked image modelling of chapter 08's visual
tokens, 40 % blockwise masks, 5,000 steps of batch 128 on the 60,000 training images without labels), and
``beit_finetune_10pct``, that ViT fine-tuned exactly as ``vit_fmnist_10pct`` is trained from scratch.

The ViT uses lr 1e-3 (a common Adam rate for small ViTs, not tuned here), the ResNet its judge's 3e-3; everything
else is shared.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from course_lib import checkpoints

SMALL = 6_000     # 10 % of Fashion-MNIST's training set


@dataclass
class ShippedRun:
    arch: str           # "vit" or "resnet"
    n_train: int | None  # None: all 60,000
    epochs: int
    lr: float
    batch_size: int = 128
    init: str | None = None   # a BEiT checkpoint whose ViT the run starts from (None: random initialisation)


SHIPPED = {
    "vit_fmnist": ShippedRun("vit", None, 15, 1e-3),
    "vit_fmnist_long": ShippedRun("vit", None, 90, 1e-3),
    "vit_fmnist_10pct": ShippedRun("vit", SMALL, 150, 1e-3),
    "resnet_fmnist_10pct": ShippedRun("resnet", SMALL, 150, 3e-3),
    "beit_finetune_10pct": ShippedRun("vit", SMALL, 150, 1e-3, init="beit_pretrain"),
}


def build(name: str) -> nn.Module:
    """A fresh model for the checkpoint ``name``."""
    from course_lib.cnn import build as build_cnn
    from course_lib.transformers.vit import ViT

    if name not in SHIPPED:
        raise ValueError(f"unknown checkpoint {name!r}: expected one of {sorted(SHIPPED)}")
    return ViT() if SHIPPED[name].arch == "vit" else build_cnn("resnet")


def train(model: nn.Module, name: str, progress: bool = True, run: ShippedRun | None = None) -> dict:
    """Train ``model`` with the run ``name`` (or ``run``); metrics: test accuracy on all 10,000 test images."""
    from course_lib.data import fashion_mnist
    from course_lib.training import accuracy, fit

    run = run or SHIPPED[name]
    torch.manual_seed(0)
    if run.init is not None:                     # start from the pre-trained BEiT's ViT (its head stays fresh)
        beit = load_beit(run.init, next(model.parameters()).device)
        model.load_state_dict({**model.state_dict(), **{k: v for k, v in beit.vit.state_dict().items()
                                                        if not k.startswith("head.")}})
    data = fashion_mnist("train").subset(run.n_train, seed=0)
    result = fit(model, data.images, data.labels, run.epochs, run.batch_size, run.lr, progress=progress,
                 state=checkpoints.state_path(name) if run == SHIPPED[name] else None)
    test = fashion_mnist("test")
    losses = result["losses"]
    return {"test_acc": round(accuracy(model, test.images, test.labels), 4), "n_train": len(data),
            "epochs": run.epochs, "steps": len(losses), "lr": run.lr,
            "final_train_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4), "seconds": round(result["seconds"], 1)}


def load_model(name: str, device: torch.device | str = "cpu", profile: str = "auto") -> nn.Module:
    """The trained model ``name`` in eval mode (shipped, else cached, else trained now), its manifest entry as
    ``model.checkpoint_entry``."""
    from course_lib.profiles import resolve

    model = build(name).to(device)
    run = SHIPPED[name]
    if resolve(profile) == "smoke":    # no usable checkpoint in smoke: a stand-in of 2,000 images and 1 epoch
        run = replace(run, n_train=2_000, epochs=1)
    model.checkpoint_entry = checkpoints.load(name, model, lambda m: train(m, name, run=run), profile=profile)
    return model.eval().requires_grad_(False)


IGPT_STEPS = 4_000
BEIT_STEPS = 5_000


def build_beit() -> nn.Module:
    from course_lib.transformers.beit import BEiT
    from course_lib.transformers.vit import ViT

    return BEiT(ViT(), vocab=128)      # chapter 08's tokenizer: 128 codes on a 7 x 7 grid


def load_beit(name: str = "beit_pretrain", device: torch.device | str = "cpu", profile: str = "auto") -> nn.Module:
    """The pre-trained BEiT in eval mode; in smoke without a checkpoint, a stand-in trained for 20 steps."""
    from course_lib.profiles import resolve
    from course_lib.transformers.beit import train_beit

    model = build_beit().to(device)
    smoke = resolve(profile) == "smoke"
    model.checkpoint_entry = checkpoints.load(
        name, model, lambda m: train_beit(m, 20 if smoke else BEIT_STEPS,
                                          state=None if smoke else checkpoints.state_path(name)), profile=profile)
    return model.eval().requires_grad_(False)


def build_igpt(name: str) -> nn.Module:
    from course_lib.transformers.igpt import PALETTE, SIDE, ImageGPT

    if name not in ("igpt_ar", "igpt_bert"):
        raise ValueError(f"unknown Image GPT {name!r}: expected igpt_ar or igpt_bert")
    return ImageGPT(PALETTE, SIDE * SIDE, dim=64, depth=4, heads=4, causal=name == "igpt_ar")


def load_igpt(name: str, device: torch.device | str = "cpu", profile: str = "auto") -> nn.Module:
    """The trained Image GPT ``name`` (palette included) in eval mode; in smoke without a checkpoint, a stand-in
    trained for 20 steps."""
    from course_lib.profiles import resolve
    from course_lib.transformers.igpt import train_igpt

    model = build_igpt(name).to(device)
    smoke = resolve(profile) == "smoke"
    model.checkpoint_entry = checkpoints.load(
        name, model, lambda m: train_igpt(m, 20 if smoke else IGPT_STEPS, n_samples=0 if smoke else 1_000,
                                          state=None if smoke else checkpoints.state_path(name)), profile=profile)
    return model.eval().requires_grad_(False)


def _make(name: str):
    def make():
        return build(name), lambda m: train(m, name)
    return make


def _make_igpt(name: str):
    def make():
        from course_lib.transformers.igpt import train_igpt

        return build_igpt(name), lambda m: train_igpt(m, IGPT_STEPS, state=checkpoints.state_path(name))
    return make


def _make_beit():
    from course_lib.transformers.beit import train_beit

    return build_beit(), lambda m: train_beit(m, BEIT_STEPS, state=checkpoints.state_path("beit_pretrain"))


CHECKPOINTS = {**{name: _make(name) for name in SHIPPED}, **{name: _make_igpt(name) for name in ("igpt_ar", "igpt_bert")},
               "beit_pretrain": _make_beit}
