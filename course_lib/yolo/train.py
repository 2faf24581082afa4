"""Training and loading the chapter's YOLO v1 (``course_lib.yolo.model``) on the Fashion scenes.

``yolo_v1`` is a checkpoint by name: shipped, else cached, else trained with the active profile's sizes
(``FALLBACK``); ``python -m course_lib checkpoints`` trains it with ``SHIPPED``. ``train_yolo`` strings
``yolo.train_step`` together with random horizontal flips and an AdamW + one-cycle schedule, then scores
mAP@0.5 on 300 held-out test scenes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm.auto import tqdm

from course_lib import checkpoints
from course_lib.data import fashion_scenes
from course_lib.detection.metrics import mean_average_precision
from course_lib.yolo.model import YOLOv1, decode, encode_targets, train_step
from course_lib.profiles import pick
from course_lib.utils import autocast
from course_lib.utils import device as default_device

CHECKPOINT = "yolo_v1"
N_TEST = 300  # held-out scenes: fashion_scenes(300, seed=1, split="test")


@dataclass
class YOLOTrainConfig:
    n_scenes: int = 12_000
    epochs: int = 12
    batch_size: int = 64
    lr: float = 3e-3


# SHIPPED: 2,250 steps of 64 scenes. Calibration on 2 shared CPU cores: 0.11-0.12 s per step when the cores
# are free (1.3 s under heavy contention) and 5-6 ms per generated scene, so ~6 min in all when free;
# 72 steps alone reached mAP@0.5 = 0.44.
SHIPPED = YOLOTrainConfig()
FALLBACK = {"smoke": YOLOTrainConfig(n_scenes=256, epochs=1),
            "cpu": YOLOTrainConfig(n_scenes=4_000, epochs=6),
            "gpu": YOLOTrainConfig(n_scenes=20_000, epochs=30, batch_size=128)}


def hflip(images: Tensor, target: Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> tuple[Tensor, Tensor]:
    """Mirror a random fraction ``p`` of images (N, 1, H, W) left-right together with their grid targets
    (N, S, S, 5 + C): the columns of the grid reverse and a centre at x in its cell moves to 1 - x
    (a centre on a cell border moves to the cell ``encode_targets`` would give it)."""
    flip = torch.rand(len(images), generator=generator).to(images.device) < p  # (N,)
    mirrored = target.flip(2)                                           # (N, S, S, 5 + C), columns reversed
    has = mirrored[..., 0] > 0
    mirrored[..., 1] = torch.where(has, 1 - mirrored[..., 1], mirrored[..., 1])
    # a centre on a cell's left edge (x = 0) lands on the right edge of the mirrored cell (x = 1), which
    # encode_targets gives to the next cell with x = 0: move it there (it replaces a rare occupant)
    n, r, c = (has & (mirrored[..., 1] >= 1)).nonzero(as_tuple=True)
    moved = mirrored[n, r, c].clone()
    moved[:, 1] = 0
    mirrored[n, r, c] = 0
    mirrored[n, r, (c + 1).clamp(max=target.shape[2] - 1)] = moved
    return (torch.where(flip[:, None, None, None], images.flip(-1), images),
            torch.where(flip[:, None, None, None], mirrored, target))


@torch.no_grad()
def detect(model: YOLOv1, images: Tensor, batch_size: int = 256, **decode_kwargs) -> list[dict]:
    """Run ``model`` in eval mode on images (N, 1, size, size), in batches, and ``decode`` on the CPU
    -> N dicts of boxes, scores, labels."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        with autocast(dev):
            pred = model(images[i:i + batch_size].to(dev)).float().cpu()
        out += decode(pred, size=model.size, num_classes=model.num_classes, **decode_kwargs)
    return out


def evaluate(model: YOLOv1, n: int = N_TEST) -> float:
    """mAP@0.5 (COCO-style, ``mean_average_precision``) on ``n`` held-out test scenes."""
    test = fashion_scenes(n, seed=1, split="test")
    targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in test.targets]
    return mean_average_precision(detect(model, test.images), targets, iou_threshold=0.5)


def train_yolo(model: YOLOv1, cfg: YOLOTrainConfig, progress: bool = True) -> dict:
    """Train on ``fashion_scenes(cfg.n_scenes, seed=0, split="train")`` with AdamW + one-cycle and random
    horizontal flips -> {"map50": mAP@0.5 on the held-out scenes, "n_scenes", "epochs"}."""
    scenes = fashion_scenes(cfg.n_scenes, seed=0, split="train")
    dev = next(model.parameters()).device
    images = scenes.images.to(dev)                                      # (N, 1, size, size)
    target = encode_targets(scenes.targets, model.S, model.size, model.num_classes).to(dev)  # (N, S, S, 5 + C)
    steps_per_epoch = max(len(images) // cfg.batch_size, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    g = torch.Generator().manual_seed(0)
    bar = tqdm(total=cfg.epochs * steps_per_epoch, desc="training YOLOv1", disable=not progress)
    for _ in range(cfg.epochs):
        order = torch.randperm(len(images), generator=g)
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size].to(dev)
            x, t = hflip(images[idx], target[idx], g)
            terms = train_step(model, optimizer, x, t)
            schedule.step()
            bar.update()
            if i % 50 == 0:
                bar.set_postfix(loss=f"{terms['total'].item():.3f}")
    bar.close()
    return {"map50": round(evaluate(model), 4), "n_scenes": cfg.n_scenes, "epochs": cfg.epochs}


def load_yolo(device=None, profile: str = "auto") -> YOLOv1:
    """The trained ``yolo_v1`` in eval mode on ``device``: shipped, else cached, else trained now."""
    model = YOLOv1().to(device or default_device())
    cfg = pick(FALLBACK, profile)
    model.checkpoint_entry = checkpoints.load(CHECKPOINT, model, lambda m: train_yolo(m, cfg), profile=profile)
    return model.eval().requires_grad_(False)

