"""R-CNN (Girshick, Donahue, Darrell & Malik 2014, "Rich feature hierarchies ...") on Fashion scenes.

The recipe of Sec. 2, scaled to 64x64 scenes and 28x28 crops:

1. **proposals**: selective search gives ~100 class-agnostic boxes per scene (``proposals.selective_search``);
2. **warp**: every proposal, dilated by a little context (the paper pads 16 pixels at 227 px), is warped
   anisotropically to the CNN's fixed input size -- here 28x28, the size of Fashion-MNIST (Sec. 2.1);
3. **features + classifier**: the CNN is chapter 01's ResNet, *initialised from the judge* (the paper
   fine-tunes an ImageNet CNN, Sec. 2.3) with a new (K + 1)-way softmax: 10 classes + background. A
   proposal is a positive of a class when its IoU with a ground-truth box of that class is >= 0.5, else
   background. (The paper then trains linear SVMs on the features; its Table 2 shows the fine-tuned
   softmax close behind; we keep the softmax.)
4. **box regression** (Appendix C): class-specific deltas (t_x, t_y, t_w, t_h) learned on proposals with
   IoU >= 0.6, trained here jointly with the classifier (smooth L1);
5. **per-class NMS** at IoU 0.3 (Sec. 2.2) on the regressed boxes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from course_lib import checkpoints
from course_lib.cnn.resnet import ResNet
from course_lib.data import fashion_scenes
from course_lib.detection.boxes import batched_nms, box_iou, decode, encode
from course_lib.detection.metrics import mean_average_precision
from course_lib.detection.proposals import selective_search
from course_lib.profiles import pick
from course_lib.utils import device as default_device

NUM_CLASSES = 10  # scene labels 1..10; 0 is background


def warp(image: Tensor, boxes: Tensor, size: int = 28, context: float = 0.07) -> Tensor:
    """Crop each box (K, 4) xyxy of ``image`` (C, H, W), grown by ``context`` of its side on every edge,
    and resize it to (size, size) with bilinear sampling, ignoring aspect ratio -> (K, C, size, size).
    Computed in the image's dtype (float64 stays float64; float16 / bfloat16 are sampled in float32 and cast back)."""
    if image.ndim != 3 or boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"expected image (C, H, W) and boxes (K, 4), got {tuple(image.shape)}, {tuple(boxes.shape)}")
    C, H, W = image.shape
    K = len(boxes)
    if K == 0:
        return image.new_zeros(0, C, size, size)
    dtype = torch.promote_types(image.dtype, torch.float32)              # the dtype of the crop's coordinates
    x0, y0, x1, y1 = boxes.to(dtype).unbind(1)
    dx, dy = context * (x1 - x0), context * (y1 - y0)
    x0, x1, y0, y1 = x0 - dx, x1 + dx, y0 - dy, y1 + dy
    # affine map from the output grid in [-1, 1] to the crop, in grid_sample's normalised image coordinates
    theta = torch.zeros(K, 2, 3, dtype=dtype, device=image.device)
    theta[:, 0, 0], theta[:, 0, 2] = (x1 - x0) / W, (x0 + x1) / W - 1
    theta[:, 1, 1], theta[:, 1, 2] = (y1 - y0) / H, (y0 + y1) / H - 1
    grid = F.affine_grid(theta, [K, C, size, size], align_corners=False)          # (K, size, size, 2)
    crops = F.grid_sample(image.to(dtype).expand(K, C, H, W), grid, align_corners=False)  # (K, C, size, size)
    return crops.to(image.dtype) if image.is_floating_point() else crops


def label_proposals(proposals: Tensor, gt_boxes: Tensor, gt_labels: Tensor,
                    fg_iou: float = 0.5, reg_iou: float = 0.6) -> tuple[Tensor, Tensor, Tensor]:
    """For proposals (K, 4) and ground truth (G, 4), (G,): class labels (K,) (0 = background),
    regression targets (K, 4) towards the best-overlapping box (in the wider dtype of the boxes, as ``encode``),
    and the mask (K,) of proposals to regress."""
    if len(gt_boxes) == 0:
        dtype = (torch.promote_types(proposals.dtype, gt_boxes.dtype)
                 if proposals.is_floating_point() and gt_boxes.is_floating_point() else torch.float32)
        return (torch.zeros(len(proposals), dtype=torch.long), torch.zeros(len(proposals), 4, dtype=dtype),
                torch.zeros(len(proposals), dtype=torch.bool))
    iou = box_iou(proposals, gt_boxes)                                   # (K, G)
    best, match = iou.max(1)                                             # (K,), (K,)
    labels = torch.where(best >= fg_iou, gt_labels[match], torch.zeros_like(match))
    return labels, encode(proposals, gt_boxes[match]), best >= reg_iou


class RCNN(nn.Module):
    """Warped crops (K, 1, 28, 28) -> class logits (K, 11) and class-specific box deltas (K, 10, 4)."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 16):
        super().__init__()
        self.cnn = ResNet(num_classes=10, width=width, blocks=2)   # same shape as the judge: its weights fit
        self.cls = nn.Linear(4 * width, num_classes + 1)
        self.bbox = nn.Linear(4 * width, 4 * num_classes)

    def forward(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        h = self.cnn.features(crops)                               # (K, D)
        return self.cls(h), self.bbox(h).view(len(crops), -1, 4)   # (K, 11), (K, 10, 4)


def rcnn_loss(logits: Tensor, deltas: Tensor, labels: Tensor, target_deltas: Tensor, reg_mask: Tensor) -> dict:
    """Cross-entropy over 11 classes + smooth L1 on the deltas of each regressed proposal's own class."""
    cls = F.cross_entropy(logits, labels)
    reg = reg_mask & (labels > 0)
    if reg.any():
        own = deltas[reg, labels[reg] - 1]                          # (R, 4): the ground-truth class's deltas
        box = F.smooth_l1_loss(own, target_deltas[reg], beta=1 / 9, reduction="sum") / max(len(labels), 1)
    else:
        box = deltas.sum() * 0
    return {"cls": cls, "box": box, "total": cls + box}


def train_step(model: RCNN, optimizer: torch.optim.Optimizer, crops: Tensor, labels: Tensor,
               target_deltas: Tensor, reg_mask: Tensor) -> dict:
    model.train()
    losses = rcnn_loss(*model(crops), labels, target_deltas, reg_mask)
    optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    optimizer.step()
    return {k: v.detach() for k, v in losses.items()}


@torch.no_grad()
def detect(model: RCNN, image: Tensor, proposals: Tensor | None = None, score_threshold: float = 0.05,
           nms_threshold: float = 0.3, max_detections: int = 100) -> dict:
    """Detections on one scene (1, H, W) in torchmetrics' format: boxes (D, 4), scores (D,), labels (D,)."""
    model.eval()
    if proposals is None:
        proposals = selective_search(image)
    dev = next(model.parameters()).device
    logits, deltas = model(warp(image.to(dev), proposals.to(dev)))
    probs, deltas, proposals = logits.softmax(1).cpu(), deltas.cpu(), proposals.cpu()
    K = len(proposals)
    scores = probs[:, 1:].reshape(-1)                                       # (K * 10,) class c at k * 10 + c - 1
    labels = torch.arange(1, NUM_CLASSES + 1).repeat(K)
    boxes = decode(proposals.repeat_interleave(NUM_CLASSES, 0), deltas.reshape(-1, 4))
    H, W = image.shape[-2:]
    boxes = torch.stack([boxes[:, 0].clamp(0, W), boxes[:, 1].clamp(0, H),
                         boxes[:, 2].clamp(0, W), boxes[:, 3].clamp(0, H)], 1)
    keep = (scores > score_threshold) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = batched_nms(boxes, scores, labels, nms_threshold)[:max_detections]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]}


# ----------------------------------------------------------------------------------------------
# Training data: proposals of training scenes, labelled, warped once.

@dataclass
class RCNNTrainConfig:
    n_scenes: int = 1500
    crops_per_scene: int = 48     # up to a quarter positives (ground truth counts, as in the paper), the rest background
    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3


SHIPPED = RCNNTrainConfig()
FALLBACK = {"smoke": RCNNTrainConfig(n_scenes=16, crops_per_scene=16, epochs=1, batch_size=64),
            "cpu": RCNNTrainConfig(n_scenes=400, epochs=2), "gpu": RCNNTrainConfig(n_scenes=3000, epochs=4)}


def training_crops(n_scenes: int, crops_per_scene: int, seed: int = 0,
                   progress: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Warped crops (M, 1, 28, 28), labels (M,), regression targets (M, 4) and masks (M,) from scenes."""
    scenes = fashion_scenes(n_scenes, seed=seed, split="train")
    g = torch.Generator().manual_seed(seed)
    out = [[], [], [], []]
    for image, target in tqdm(scenes, desc="selective search + warping", disable=not progress):
        proposals = torch.cat([target["boxes"], selective_search(image)])
        labels, deltas, reg = label_proposals(proposals, target["boxes"], target["labels"])
        pos, neg = (labels > 0).nonzero()[:, 0], (labels == 0).nonzero()[:, 0]
        neg = neg[torch.randperm(len(neg), generator=g)]
        pos = pos[torch.randperm(len(pos), generator=g)[:crops_per_scene // 4]]  # a quarter positives (Sec. 2.3)
        neg = neg[:crops_per_scene - len(pos)]
        idx = torch.cat([pos, neg])
        for bucket, value in zip(out, (warp(image, proposals[idx]), labels[idx], deltas[idx], reg[idx])):
            bucket.append(value)
    return tuple(torch.cat(b) for b in out)


def train_rcnn(model: RCNN, cfg: RCNNTrainConfig, progress: bool = True) -> dict:
    """Initialise from the judge, fine-tune on warped proposals, report mAP@0.5 on 200 held-out scenes."""
    from course_lib.cnn.classifier import load_classifier

    judge = load_classifier("cpu")
    model.cnn.load_state_dict(judge.state_dict())
    crops, labels, deltas, reg = training_crops(cfg.n_scenes, cfg.crops_per_scene, progress=progress)
    dev = next(model.parameters()).device
    steps = cfg.epochs * (len(crops) // cfg.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(steps, 1))
    g = torch.Generator().manual_seed(0)
    for _ in tqdm(range(steps), desc="fine-tuning R-CNN", disable=not progress):
        idx = torch.randint(len(crops), (cfg.batch_size,), generator=g)
        train_step(model, optimizer, crops[idx].to(dev), labels[idx].to(dev), deltas[idx].to(dev), reg[idx].to(dev))
        schedule.step()
    return {"map50": round(evaluate(model, 200)["map50"], 4), "n_scenes": cfg.n_scenes,
            "n_crops": len(crops), "epochs": cfg.epochs}


def evaluate(model: RCNN, n_scenes: int, seed: int = 1) -> dict:
    """mAP@0.5 and seconds per image on ``n_scenes`` held-out test scenes (proposals included in the time)."""
    scenes = fashion_scenes(n_scenes, seed=seed, split="test")
    start = time.perf_counter()
    preds = [detect(model, image) for image, _ in scenes]
    seconds = (time.perf_counter() - start) / max(n_scenes, 1)
    targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in scenes.targets]
    return {"map50": mean_average_precision(preds, targets, 0.5), "seconds_per_image": seconds, "preds": preds}


def load_rcnn(device=None, profile: str = "auto") -> RCNN:
    model = RCNN().to(device or default_device())
    cfg = pick(FALLBACK, profile)
    model.checkpoint_entry = checkpoints.load("rcnn", model, lambda m: train_rcnn(m, cfg), profile=profile)
    return model.eval().requires_grad_(False)
