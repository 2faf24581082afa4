"""Training, scoring and loading chapter 05's Mask R-CNN, and torchvision's reference built alike.

``maskrcnn`` is a checkpoint by name (shipped, else cached, else trained with the active profile's
``FALLBACK`` sizes); ``python -m course_lib checkpoints maskrcnn`` trains it with ``SHIPPED``. The reference,
``maskrcnn_torchvision_ref``, is ``torchvision.models.detection.MaskRCNN`` (no pretrained weights) with the
*same* backbone, anchors, RoI sizes, sampling and head widths, trained by the same ``train_maskrcnn`` with
the same data, steps and optimiser: only the implementation differs. Both are scored on ``N_TEST`` held-out
scenes, ``fashion_scenes(300, seed=1, split="test")``: mask AP@0.5 (``masks``) and box AP@0.5 (``metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from course_lib import checkpoints
from course_lib.data import fashion_scenes
from course_lib.maskrcnn import model as mr
from course_lib.detection.metrics import mean_average_precision
from course_lib.maskrcnn.masks import mask_average_precision
from course_lib.profiles import pick
from course_lib.utils import device as default_device

CHECKPOINT, REFERENCE, ROIPOOL = "maskrcnn", "maskrcnn_torchvision_ref", "maskrcnn_roipool"
N_TEST = 300


@dataclass
class MaskRCNNTrainConfig:
    n_scenes: int = 8_000
    steps: int = 3_000
    batch_size: int = 8
    lr: float = 2e-3


# SHIPPED: 3,000 steps of 8 scenes, AdamW + one-cycle. Calibration on 2 shared CPU cores: ~0.15 s per step
# with one thread (two threads are many times slower while other jobs share the cores); seconds and scores
# are in the manifest.
SHIPPED = MaskRCNNTrainConfig()
FALLBACK = {"smoke": MaskRCNNTrainConfig(n_scenes=64, steps=10),
            "cpu": MaskRCNNTrainConfig(n_scenes=3_000, steps=800),
            "gpu": MaskRCNNTrainConfig(n_scenes=20_000, steps=6_000, batch_size=16)}


def build_torchvision_reference() -> nn.Module:
    """torchvision's ``MaskRCNN`` (weights=None: nothing pretrained) with our ``Backbone`` and our sizes: one
    16 x 16 feature level, the same anchors, RPN and RoI settings, a 2-layer MLP box head of width 128 and a
    4-conv mask head of width 32 (torchvision's mask predictor has one more channel, for the background)."""
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.ops import MultiScaleRoIAlign

    backbone = mr.Backbone(64)
    D, K = backbone.out_channels, mr.NUM_CLASSES + 1
    rpn = {f"rpn_{k}": v for k, v in mr.RPN.items()}
    roi = {f"box_{k}": v for k, v in mr.ROI.items() if k != "bbox_reg_weights"}
    return MaskRCNN(
        backbone, min_size=64, max_size=64, image_mean=[0.0], image_std=[1.0],
        rpn_anchor_generator=AnchorGenerator((mr.ANCHOR_SIZES,), (mr.ASPECT_RATIOS,)), **rpn,
        box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), box_head=TwoMLPHead(D * 7 * 7, 128),
        box_predictor=FastRCNNPredictor(128, K), bbox_reg_weights=mr.ROI["bbox_reg_weights"], **roi,
        mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2), mask_head=MaskRCNNHeads(D, (32,) * 4, 1),
        mask_predictor=MaskRCNNPredictor(32, 32, K))


def hflip(images: Tensor, targets: list[dict], generator: torch.Generator, p: float = 0.5) -> tuple[Tensor, list[dict]]:
    """Mirror a random fraction p of images (B, 1, H, W) left-right with their boxes (G, 4) and masks (G, H, W)."""
    if images.ndim != 4 or len(targets) != len(images) or any(
            t["boxes"].ndim != 2 or t["boxes"].shape[1] != 4 or t["masks"].ndim != 3
            or t["masks"].shape[0] != len(t["boxes"]) or t["masks"].shape[-1] != images.shape[-1] for t in targets):
        raise ValueError(f"expected images (B, C, H, W) and B targets with boxes (G, 4) and masks (G, H, W), got "
                         f"{tuple(images.shape)} and {len(targets)} targets with boxes "
                         f"{[tuple(t['boxes'].shape) for t in targets]}, "
                         f"masks {[tuple(t['masks'].shape) for t in targets]}")
    W = images.shape[-1]
    flip = (torch.rand(len(images), generator=generator) < p).tolist()
    out_images, out_targets = images.clone(), []
    for i, (f, t) in enumerate(zip(flip, targets)):
        t = {k: t[k] for k in ("boxes", "labels", "masks")}
        if f:
            out_images[i] = images[i].flip(-1)
            t["boxes"] = torch.stack([W - t["boxes"][:, 2], t["boxes"][:, 1], W - t["boxes"][:, 0], t["boxes"][:, 3]], 1)
            t["masks"] = t["masks"].flip(-1)
        out_targets.append(t)
    return out_images, out_targets


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor, targets: list[dict]) -> dict:
    """One step on the sum of the losses of ours or torchvision's model -> the losses (detached), with 'total'."""
    model.train()
    losses = model(list(images), targets)
    total = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    optimizer.step()
    return {**{k.removeprefix("loss_"): v.detach() for k, v in losses.items()}, "total": total.detach()}


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 32) -> list[dict]:
    """Detections of ours or torchvision's model on images (N, 1, H, W), on the CPU: boxes (D, 4), scores (D,),
    labels (D,), masks (D, H, W) probabilities."""
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        for d in model(list(images[i:i + batch_size].to(dev))):
            out.append({"boxes": d["boxes"].cpu(), "scores": d["scores"].cpu(), "labels": d["labels"].cpu(),
                        "masks": d["masks"][:, 0].cpu()})
    return out


def evaluate(model: nn.Module, n: int = N_TEST) -> dict:
    """mask AP@0.5 and box AP@0.5 on ``n`` held-out scenes, ``fashion_scenes(n, seed=1, split="test")``."""
    test = fashion_scenes(n, seed=1, split="test")
    preds = predict(model, test.images)
    return {"mask_map50": mask_average_precision(preds, test.targets, 0.5),
            "box_map50": mean_average_precision(preds, [{"boxes": t["boxes"], "labels": t["labels"]}
                                                        for t in test.targets], 0.5)}


def train_maskrcnn(model: nn.Module, cfg: MaskRCNNTrainConfig, progress: bool = True) -> dict:
    """Train ours or the reference on ``fashion_scenes(cfg.n_scenes, seed=0, split="train")`` with random flips,
    AdamW + one-cycle; -> {"mask_map50", "box_map50" on the held-out scenes, "n_scenes", "steps"}."""
    scenes = fashion_scenes(cfg.n_scenes, seed=0, split="train")
    dev = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    g = torch.Generator().manual_seed(0)
    bar = tqdm(range(cfg.steps), desc=f"training {type(model).__name__}", disable=not progress)
    for step in bar:
        idx = torch.randint(len(scenes), (cfg.batch_size,), generator=g).tolist()
        images, targets = hflip(scenes.images[idx], [scenes.targets[i] for i in idx], g)
        targets = [{k: v.to(dev) for k, v in t.items()} for t in targets]
        losses = train_step(model, optimizer, images.to(dev), targets)
        schedule.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{losses['total'].item():.3f}")
    scores = evaluate(model)
    return {**{k: round(v, 4) for k, v in scores.items()}, "n_scenes": cfg.n_scenes, "steps": cfg.steps}


def _load(name: str, model: nn.Module, device, profile: str) -> nn.Module:
    model = model.to(device or default_device())
    cfg = pick(FALLBACK, profile)
    model.checkpoint_entry = checkpoints.load(name, model, lambda m: train_maskrcnn(m, cfg), profile=profile)
    return model.eval().requires_grad_(False)


def load_maskrcnn(device=None, profile: str = "auto") -> mr.MaskRCNN:
    """The trained ``maskrcnn`` in eval mode on ``device``: shipped, else cached, else trained now."""
    return _load(CHECKPOINT, mr.MaskRCNN(), device, profile)


def load_maskrcnn_roipool(device=None, profile: str = "auto") -> mr.MaskRCNN:
    """The ablation ``maskrcnn_roipool``: ``maskrcnn`` with RoIPool in place of RoIAlign in both heads, trained
    the same way (``SHIPPED``), like ``load_maskrcnn``."""
    return _load(ROIPOOL, mr.MaskRCNN(pooler="pool"), device, profile)


def load_torchvision_reference(device=None, profile: str = "auto") -> nn.Module:
    """The trained ``maskrcnn_torchvision_ref`` (``build_torchvision_reference``), like ``load_maskrcnn``."""
    return _load(REFERENCE, build_torchvision_reference(), device, profile)
