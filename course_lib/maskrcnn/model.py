"""Mask R-CNN: Faster R-CNN plus a small FCN that predicts a binary mask inside every detected box.

He, Gkioxari, Dollar & Girshick 2017, "Mask R-CNN". Two stages on one shared feature map:

1. the **region proposal network** (Ren et al. 2015, "Faster R-CNN", Sec. 3.1) scores A anchors at every
   feature cell as object / not object and regresses each towards a box; the best, after NMS, are the proposals;
2. for each proposal (the *RoI*), **RoIAlign** (``roi.roi_align``) pools a fixed 7 x 7 feature map for the
   **box head** (class among K + 1, class-specific box deltas) and a 14 x 14 map for the **mask head**, a
   small FCN that outputs K masks of 28 x 28 logits, one per class (Sec. 3, Fig. 4 right).

The loss on each sampled RoI is L = L_cls + L_box + L_mask (Sec. 3). L_mask is the mean **per-pixel binary
cross-entropy** of the *ground-truth class's* mask only: the other K - 1 masks get no gradient, so the
classes do not compete for pixels (the paper's "decoupling" of masks and classes; a per-pixel softmax over
classes loses 5.5 AP, Table 2b). Its target is the ground-truth mask of the matched object cropped to the
RoI and resized to 28 x 28 (``mask_targets``), and only positive RoIs (IoU >= 0.5 with a ground truth) count.
At test time the mask head runs on the final detections; the mask of the predicted class is resized into
its box in the image (``paste_masks``) and thresholded at 0.5 (Sec. 3.1).

Ours vs plumbing: RoIAlign, the mask head, mask targets, the mask loss, pasting, the RoI sampling and the
detection post-processing are written here; the anchor generator, the RPN (head, loss and proposal filter),
the proposal matcher, the positive / negative sampler, the box coder and the Fast R-CNN box loss are
torchvision's building blocks (``torchvision.models.detection``). Sizes for 64 x 64 grey Fashion scenes
with 16-35 px items: a 6-layer conv backbone of stride 4 (16 x 16 cells, one level, no FPN), anchors of
16, 24 and 32 px at aspect ratios 1:2, 1:1, 2:1, a 2-layer MLP box head of width 128, a mask head of width 32;
32 RoIs sampled per training image (the paper: 512 at 800 px, of which 25 % positive).
"""

from __future__ import annotations

import numbers
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import fastrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

from course_lib.detection.boxes import batched_nms, box_iou
from course_lib.maskrcnn.roi import roi_align

NUM_CLASSES = 10            # scene labels 1..10; 0 is background
STRIDE = 4                  # image pixels per feature cell
ANCHOR_SIZES = (16, 24, 32)
ASPECT_RATIOS = (0.5, 1.0, 2.0)
MASK_SIZE = 28              # M: the mask head's output side
# shared with torchvision's reference model (course_lib.maskrcnn.train.build_torchvision_reference)
RPN = dict(pre_nms_top_n_train=600, pre_nms_top_n_test=300, post_nms_top_n_train=300, post_nms_top_n_test=100,
           nms_thresh=0.7, fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=128, positive_fraction=0.5)
ROI = dict(fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=32, positive_fraction=0.25,
           bbox_reg_weights=(10.0, 10.0, 5.0, 5.0), score_thresh=0.05, nms_thresh=0.5, detections_per_img=100)


def conv_relu(c_in: int, c_out: int, bn: bool = True) -> nn.Sequential:
    """3 x 3 'same' convolution (+ batch norm) + ReLU: (B, c_in, H, W) -> (B, c_out, H, W)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=not bn),
                         *([nn.BatchNorm2d(c_out)] if bn else []), nn.ReLU())


class Backbone(nn.Sequential):
    """images (B, 1, H, W) in [0, 1] -> features (B, D, H / 4, W / 4), D = ``out_channels`` (torchvision's
    convention). Receptive field of a cell: 38 px, more than the largest item."""

    def __init__(self, width: int = 64):
        super().__init__(conv_relu(1, width // 4), nn.MaxPool2d(2),
                         conv_relu(width // 4, width // 2), conv_relu(width // 2, width // 2), nn.MaxPool2d(2),
                         conv_relu(width // 2, width), conv_relu(width, width), conv_relu(width, width))
        self.out_channels = width


class BoxHead(nn.Module):
    """RoI features (K, D, 7, 7) -> class logits (K, C + 1) and class-specific box deltas (K, (C + 1) * 4)
    (torchvision's TwoMLPHead + FastRCNNPredictor layout: delta group 0 belongs to the background)."""

    def __init__(self, in_features: int, hidden: int = 128, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU())
        self.cls_score = nn.Linear(hidden, num_classes + 1)
        self.bbox_pred = nn.Linear(hidden, (num_classes + 1) * 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.mlp(x)                                       # (K, hidden)
        return self.cls_score(h), self.bbox_pred(h)


class MaskHead(nn.Sequential):
    """The mask branch (Fig. 4 right, at width D): RoI features (K, D, 14, 14) -> 4 x (conv 3 x 3 + ReLU)
    -> 2 x 2 transposed conv, stride 2 (28 x 28) + ReLU -> 1 x 1 conv -> mask logits (K, C, 28, 28), one
    mask per class; class c (label 1..C) is channel c - 1."""

    def __init__(self, in_channels: int, width: int = 64, num_classes: int = NUM_CLASSES):
        layers = [conv_relu(in_channels if i == 0 else width, width, bn=False) for i in range(4)]
        super().__init__(*layers, nn.ConvTranspose2d(width, width, 2, stride=2), nn.ReLU(),
                         nn.Conv2d(width, num_classes, 1))


def mask_targets(gt_masks: Tensor, rois: Tensor, matched: Tensor, size: int = MASK_SIZE) -> Tensor:
    """The mask-loss targets of one image: gt_masks (G, H, W) {0, 1}, positive RoIs (P, 4) xyxy and the index
    (P,) of the ground truth each RoI matched -> (P, size, size) in {0., 1.}: the matched object's mask cropped
    to the RoI and resized to size x size with RoIAlign (bilinear), then thresholded at 0.5 (binary, Sec. 3)."""
    if gt_masks.ndim != 3 or rois.ndim != 2 or rois.shape[1] != 4 or matched.shape != (len(rois),):
        raise ValueError(f"expected gt_masks (G, H, W), rois (P, 4) and matched (P,), got {tuple(gt_masks.shape)}, "
                         f"{tuple(rois.shape)}, {tuple(matched.shape)}")
    if 0 in gt_masks.shape[1:] or matched.is_floating_point() or matched.dtype == torch.bool:
        raise ValueError(f"expected gt_masks (G, H, W) with H, W >= 1 and matched (P,) int, got "
                         f"{tuple(gt_masks.shape)}, {matched.dtype}")
    if len(matched) and (matched.min() < 0 or matched.max() >= len(gt_masks)):
        raise ValueError(f"expected matched (P,) indices in [0, G) of gt_masks (G, H, W), G = {len(gt_masks)}, "
                         f"got {matched.unique().tolist()}")
    index = torch.cat([matched[:, None].to(rois), rois], 1)                        # (P, 5): mask index + box
    crops = roi_align(gt_masks[:, None].float(), index, size, spatial_scale=1.0, aligned=True)  # (P, 1, M, M)
    return (crops[:, 0] >= 0.5).float()


def mask_loss(mask_logits: Tensor, labels: Tensor, targets: Tensor) -> Tensor:
    """L_mask (Sec. 3): mask_logits (P, C, M, M), labels (P,) in 1..C, targets (P, M, M) -> the mean binary
    cross-entropy between sigmoid(logits of each RoI's own class) and its target; other classes' masks get
    no gradient. 0 (still differentiable) when P = 0. Labels outside 1..C raise (label 0 would otherwise read the
    last class's mask); logits and targets of different float dtypes are compared in the wider one."""
    P = len(mask_logits)
    if mask_logits.ndim != 4 or labels.shape != (P,) or targets.shape != (P, *mask_logits.shape[2:]):
        raise ValueError(f"expected mask_logits (P, C, M, M), labels (P,), targets (P, M, M), got "
                         f"{tuple(mask_logits.shape)}, {tuple(labels.shape)}, {tuple(targets.shape)}")
    if not mask_logits.is_floating_point() or not targets.is_floating_point() or labels.is_floating_point() \
            or labels.dtype == torch.bool:
        raise ValueError(f"expected float mask_logits (P, C, M, M) and targets (P, M, M), int labels (P,), got "
                         f"{mask_logits.dtype}, {targets.dtype}, {labels.dtype}")
    if P and (labels.min() < 1 or labels.max() > mask_logits.shape[1]):   # label 0 would read class C's mask
        raise ValueError(f"expected labels (P,) in 1..C for mask_logits (P, C, M, M), C = {mask_logits.shape[1]}, "
                         f"got {labels.unique().tolist()}")
    if P == 0:
        return (mask_logits.sum() * 0).to(torch.promote_types(mask_logits.dtype, targets.dtype))
    own = mask_logits[torch.arange(P, device=labels.device), labels - 1]               # (P, M, M)
    dtype = torch.promote_types(own.dtype, targets.dtype)                 # mixed: the wider (not the targets')
    return F.binary_cross_entropy_with_logits(own.to(dtype), targets.to(dtype))


def paste_masks(masks: Tensor, boxes: Tensor, height: int, width: int) -> Tensor:
    """Resize each mask (D, M, M) into its box (D, 4) xyxy on a height x width image -> (D, height, width).

    The inverse of RoIAlign's sampling: image pixel (x, y), centre (x + 0.5, y + 0.5), reads the mask at
    u = (x + 0.5 - x0) / (x1 - x0) * M - 0.5 (and v likewise), bilinearly, with 0 beyond the mask's border."""
    if masks.ndim != 3 or boxes.shape != (len(masks), 4) or not masks.is_floating_point() or 0 in masks.shape[1:]:
        raise ValueError(f"expected masks (D, M, M) float with M >= 1 and boxes (D, 4), got {tuple(masks.shape)} "
                         f"{masks.dtype}, {tuple(boxes.shape)}")
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0 for v in (height, width)):
        raise ValueError(f"expected an image size (height, width) of ints >= 0, got ({height!r}, {width!r})")
    if masks.dtype in (torch.float16, torch.bfloat16):                  # grid_sample wants one dtype: sample in float32
        return paste_masks(masks.float(), boxes, height, width).to(masks.dtype)
    D = len(masks)
    x0, y0, x1, y1 = boxes.to(masks).unbind(1)                                     # (D,) each
    xs = torch.arange(width, device=masks.device) + 0.5                            # (W,) pixel centres
    ys = torch.arange(height, device=masks.device) + 0.5                           # (H,)
    gx = 2 * (xs[None] - x0[:, None]) / (x1 - x0).clamp(min=1e-6)[:, None] - 1     # (D, W) in grid_sample's [-1, 1]
    gy = 2 * (ys[None] - y0[:, None]) / (y1 - y0).clamp(min=1e-6)[:, None] - 1     # (D, H)
    grid = torch.stack([gx[:, None, :].expand(D, height, width), gy[:, :, None].expand(D, height, width)], -1)
    return F.grid_sample(masks[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


class MaskRCNN(nn.Module):
    """images (B, 1, H, W) (or a list of (1, H, W)) -> train: dict of the five losses given ``targets`` (a list
    of dicts with boxes (G, 4), labels (G,), masks (G, H, W)); eval: one dict per image with boxes (D, 4),
    labels (D,), scores (D,), masks (D, 1, H, W) probabilities -- torchvision's MaskRCNN interface.

    The stages can be called one by one: ``backbone``, ``anchors``, ``propose``, ``detect_boxes``, ``predict_masks``."""

    def __init__(self, width: int = 64, num_classes: int = NUM_CLASSES, pooler: str = "align"):
        super().__init__()
        if pooler not in ("align", "pool"):
            raise ValueError(f"expected pooler 'align' (RoIAlign) or 'pool' (RoIPool), got {pooler!r}")
        self.num_classes, self.pooler = num_classes, pooler
        self.backbone = Backbone(width)
        generator = AnchorGenerator((ANCHOR_SIZES,), (ASPECT_RATIOS,))
        self.rpn = RegionProposalNetwork(
            generator, RPNHead(width, generator.num_anchors_per_location()[0]),
            RPN["fg_iou_thresh"], RPN["bg_iou_thresh"], RPN["batch_size_per_image"], RPN["positive_fraction"],
            dict(training=RPN["pre_nms_top_n_train"], testing=RPN["pre_nms_top_n_test"]),
            dict(training=RPN["post_nms_top_n_train"], testing=RPN["post_nms_top_n_test"]), RPN["nms_thresh"])
        self.box_head = BoxHead(width * 7 * 7, 128, num_classes)
        self.mask_head = MaskHead(width, 32, num_classes)
        self.matcher = Matcher(ROI["fg_iou_thresh"], ROI["bg_iou_thresh"], allow_low_quality_matches=False)
        self.sampler = BalancedPositiveNegativeSampler(ROI["batch_size_per_image"], ROI["positive_fraction"])
        self.box_coder = BoxCoder(ROI["bbox_reg_weights"])

    # ------------------------------------------------------------------ stages
    def pool(self, features: Tensor, boxes: list[Tensor], size: int) -> Tensor:
        """(K, C, size, size) features of the boxes (list of (K_i, 4) image pixels): RoIAlign, or RoIPool for
        the paper's ablation (Table 2c; torchvision's kernel, the same numbers as ``roi.roi_pool``, faster)."""
        if self.pooler == "pool":
            from torchvision.ops import roi_pool as tv_roi_pool

            return tv_roi_pool(features, boxes, size, 1 / STRIDE)
        return roi_align(features, boxes, size, 1 / STRIDE, sampling_ratio=2)

    def anchors(self, images: Tensor, features: Tensor) -> list[Tensor]:
        """Every anchor of every image: (H/4 * W/4 * A, 4) xyxy each, A = 9 per cell."""
        return self.rpn.anchor_generator(ImageList(images, [tuple(images.shape[-2:])] * len(images)), [features])

    def propose(self, images: Tensor, features: Tensor, targets: list[dict] | None = None) -> tuple[list[Tensor], dict]:
        """RPN: proposals, one (P, 4) per image sorted by objectness after NMS, and (training) its two losses."""
        image_list = ImageList(images, [tuple(images.shape[-2:])] * len(images))
        return self.rpn(image_list, OrderedDict([("0", features)]), targets)

    def sample_rois(self, proposals: Tensor, target: dict) -> tuple[Tensor, Tensor, Tensor]:
        """Training RoIs of one image (Fast R-CNN Sec. 2.3): proposals + ground-truth boxes, labelled by the best
        ground truth (IoU >= 0.5: its class; else background), sampled up to 32 with <= 25 % positives
        -> rois (R, 4), labels (R,), matched ground-truth index (R,)."""
        gt_boxes, gt_labels = target["boxes"].to(proposals), target["labels"]
        if (proposals.ndim != 2 or proposals.shape[1] != 4 or gt_boxes.ndim != 2 or gt_boxes.shape[1] != 4
                or gt_labels.shape != (len(gt_boxes),) or gt_labels.is_floating_point()):
            raise ValueError(f"expected proposals (P, 4), target boxes (G, 4) and labels (G,) int, got "
                             f"{tuple(proposals.shape)}, {tuple(gt_boxes.shape)}, {tuple(gt_labels.shape)} "
                             f"{gt_labels.dtype}")
        rois = torch.cat([proposals, gt_boxes])
        if len(gt_boxes) == 0:
            matched = torch.zeros(len(rois), dtype=torch.long, device=rois.device)
            labels = torch.zeros_like(matched)
        else:
            # two zero-area boxes have IoU 0 / 0 = NaN, which the Matcher would take for a match: count it as 0
            iou = box_iou(gt_boxes, rois).nan_to_num(0.0)                         # (G, R)
            matched = self.matcher(iou)                                           # (R,) -1: background
            labels = gt_labels[matched.clamp(min=0)].clone()
            labels[matched < 0] = 0
            matched = matched.clamp(min=0)
        pos, neg = self.sampler([labels])
        keep = torch.where(pos[0] | neg[0])[0]
        return rois[keep], labels[keep], matched[keep]

    def detect_boxes(self, features: Tensor, proposals: list[Tensor], image_size: tuple[int, int]) -> list[dict]:
        """Box head on the proposals, then per class: decode, clip, score > 0.05, NMS at 0.5, best 100
        -> one dict per image with boxes (D, 4), scores (D,), labels (D,)."""
        logits, deltas = self.box_head(self.pool(features, proposals, 7))
        boxes = self.box_coder.decode(deltas, proposals)                          # (K, C + 1, 4)
        scores = logits.softmax(-1)                                               # (K, C + 1)
        H, W = image_size
        out = []
        for b, s in zip(boxes.split([len(p) for p in proposals]), scores.split([len(p) for p in proposals])):
            b = torch.stack([b[..., 0].clamp(0, W), b[..., 1].clamp(0, H), b[..., 2].clamp(0, W),
                             b[..., 3].clamp(0, H)], -1)[:, 1:].reshape(-1, 4)     # (K * C, 4), background dropped
            labels = torch.arange(1, self.num_classes + 1, device=b.device).repeat(len(s))
            s = s[:, 1:].reshape(-1)
            keep = (s > ROI["score_thresh"]) & (b[:, 2] - b[:, 0] > 1e-2) & (b[:, 3] - b[:, 1] > 1e-2)
            b, s, labels = b[keep], s[keep], labels[keep]
            keep = batched_nms(b, s, labels, ROI["nms_thresh"])[:ROI["detections_per_img"]]
            out.append({"boxes": b[keep], "scores": s[keep], "labels": labels[keep]})
        return out

    def predict_masks(self, features: Tensor, boxes: list[Tensor], labels: list[Tensor]) -> list[Tensor]:
        """Mask head on boxes (D_i, 4) -> per image the sigmoid of the labelled class's mask, (D_i, 28, 28)."""
        logits = self.mask_head(self.pool(features, boxes, 14))  # (D, C, M, M)
        label = torch.cat(labels)
        own = logits[torch.arange(len(label), device=label.device), label - 1].sigmoid()        # (D, M, M)
        return list(own.split([len(b) for b in boxes]))

    # ------------------------------------------------------------------ both passes
    def forward(self, images: Tensor | list[Tensor], targets: list[dict] | None = None):
        if isinstance(images, (list, tuple)):
            images = torch.stack(list(images))
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"expected images (B, 1, H, W), got {tuple(images.shape)}")
        features = self.backbone(images)                                          # (B, D, H/4, W/4)
        proposals, losses = self.propose(images, features, targets if self.training else None)
        if not self.training:
            detections = self.detect_boxes(features, proposals, tuple(images.shape[-2:]))
            masks = self.predict_masks(features, [d["boxes"] for d in detections], [d["labels"] for d in detections])
            for d, m in zip(detections, masks):
                d["masks"] = paste_masks(m, d["boxes"], *images.shape[-2:])[:, None]   # (D, 1, H, W)
            return detections
        if targets is None:
            raise ValueError("training needs targets: a list of dicts with boxes, labels, masks")
        rois, labels, matched = zip(*(self.sample_rois(p.detach(), t) for p, t in zip(proposals, targets)))
        logits, deltas = self.box_head(self.pool(features, list(rois), 7))
        gt = [t["boxes"].to(r)[m] if len(t["boxes"]) else torch.zeros_like(r) for r, t, m in zip(rois, targets, matched)]
        losses["loss_classifier"], losses["loss_box_reg"] = fastrcnn_loss(
            logits, deltas, list(labels), list(self.box_coder.encode(gt, list(rois))))
        pos = [lab > 0 for lab in labels]                                          # the mask loss's RoIs
        mask_logits = self.mask_head(self.pool(features, [r[p] for r, p in zip(rois, pos)], 14))  # (P, C, M, M)
        target_masks = [mask_targets(t["masks"], r[p], m[p]) for t, r, m, p in zip(targets, rois, matched, pos)]
        losses["loss_mask"] = mask_loss(mask_logits, torch.cat([lab[p] for lab, p in zip(labels, pos)]),
                                        torch.cat(target_masks))
        return losses
