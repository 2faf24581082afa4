"""Single-item Fashion scenes and the two models of the saliency-versus-localisation experiment.

The notes claim "saliency map is not as good in object localization as specialized algorithms". To
measure it, both approaches see the same 64x64 single-item scenes (``course_lib.data.fashion_scenes``):

- ``scene_classifier``: chapter 01's ResNet (fully convolutional + global pooling, so it takes 64x64),
  trained only to name the item; a box is then read off its saliency map (threshold + largest component);
- ``scene_box_regressor``: a :class:`~course_lib.inside.localization.BoxRegressor` trained on the boxes.

Both are checkpoints by name: shipped, else cached, else trained with the active profile's sizes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from course_lib import checkpoints
from course_lib.cnn.resnet import ResNet
from course_lib.data import SceneConfig, fashion_scenes
from course_lib.detection.boxes import paired_iou
from course_lib.inside.localization import BoxRegressor, train_step
from course_lib.profiles import pick
from course_lib.training import accuracy, fit
from course_lib.utils import device as default_device

SIZE = 64
SINGLE = SceneConfig(size=SIZE, min_items=1, max_items=1)


@functools.lru_cache(maxsize=4)
def single_item_scenes(n: int, seed: int, split: str = "train") -> tuple[Tensor, Tensor, Tensor]:
    """``n`` seeded one-item scenes: images (n, 1, 64, 64), labels (n,) in 0..9, boxes (n, 4) xyxy."""
    scenes = fashion_scenes(n, seed=seed, split=split, cfg=SINGLE)
    keep = [i for i, t in enumerate(scenes.targets) if len(t["labels"]) == 1]  # an item is never dropped alone
    labels = torch.stack([scenes.targets[i]["labels"][0] - 1 for i in keep])
    boxes = torch.stack([scenes.targets[i]["boxes"][0] for i in keep])
    return scenes.images[keep], labels, boxes


@dataclass
class SceneTrainConfig:
    n_scenes: int = 20_000
    classifier_epochs: int = 4
    regressor_epochs: int = 8
    batch_size: int = 128
    lr: float = 3e-3


SHIPPED = SceneTrainConfig()
FALLBACK = {"smoke": SceneTrainConfig(n_scenes=512, classifier_epochs=1, regressor_epochs=1),
            "cpu": SceneTrainConfig(n_scenes=8_000, classifier_epochs=2, regressor_epochs=4),
            "gpu": SceneTrainConfig()}


def build_scene_classifier() -> ResNet:
    return ResNet(num_classes=10, width=16, blocks=1)


def train_scene_classifier(model: nn.Module, cfg: SceneTrainConfig, progress: bool = True) -> dict:
    images, labels, _ = single_item_scenes(cfg.n_scenes, seed=0, split="train")
    fit(model, images, labels, cfg.classifier_epochs, cfg.batch_size, cfg.lr, use_augment=False,
        progress=progress)
    test_images, test_labels, _ = single_item_scenes(1000, seed=1, split="test")
    return {"test_acc": round(accuracy(model, test_images, test_labels), 4), "n_scenes": len(images),
            "epochs": cfg.classifier_epochs}


def train_box_regressor(model: BoxRegressor, cfg: SceneTrainConfig, progress: bool = True) -> dict:
    images, _, boxes = single_item_scenes(cfg.n_scenes, seed=0, split="train")
    dev = next(model.parameters()).device
    steps = cfg.regressor_epochs * (len(images) // cfg.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(steps, 1))
    g = torch.Generator().manual_seed(0)
    for _ in tqdm(range(steps), desc="training BoxRegressor", disable=not progress):
        idx = torch.randint(len(images), (cfg.batch_size,), generator=g)
        train_step(model, optimizer, images[idx].to(dev), boxes[idx].to(dev))
        schedule.step()
    test_images, _, test_boxes = single_item_scenes(1000, seed=1, split="test")
    model.eval()
    with torch.no_grad():
        iou = paired_iou(model(test_images.to(dev)).cpu(), test_boxes).mean().item()
    return {"test_mean_iou": round(iou, 4), "n_scenes": len(images), "epochs": cfg.regressor_epochs}


def _load(name: str, model: nn.Module, train, profile: str) -> nn.Module:
    cfg = pick(FALLBACK, profile)
    model.checkpoint_entry = checkpoints.load(name, model, lambda m: train(m, cfg), profile=profile)
    return model.eval().requires_grad_(False)


def load_scene_classifier(device=None, profile: str = "auto") -> nn.Module:
    model = build_scene_classifier().to(device or default_device())
    return _load("scene_classifier", model, train_scene_classifier, profile)


def load_box_regressor(device=None, profile: str = "auto") -> BoxRegressor:
    model = BoxRegressor(size=SIZE).to(device or default_device())
    return _load("scene_box_regressor", model, train_box_regressor, profile)
