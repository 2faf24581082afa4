"""YOLO v1: one network, one pass, a grid of boxes.

Redmon, Divvala, Girshick & Farhadi 2016, "You Only Look Once: Unified, Real-Time Object Detection".
The image is divided into an S x S grid; the cell that contains an object's centre is responsible for it
(Sec. 2). Each cell predicts B boxes -- (x, y) the box centre relative to the cell, (w, h) relative to the
image, and a confidence Pr(Object) * IoU(pred, truth) -- and one set of C class probabilities
Pr(Class_c | Object). The network's output is an S x S x (B * 5 + C) tensor (Fig. 2). Training minimises the
sum-squared error of Eq. 3 (``yolo_loss``); at test time each box gets the class-specific scores
Pr(Class_c | Object) * confidence (the equation at the end of Sec. 2), pruned by non-maximum suppression.

Layouts (the glossary of ``course_lib``, with S the grid side):

- pred (N, S, S, B * 5 + C): cell (row i, column j) holds [x, y, w, h, conf] for each of its B boxes, then
  p_1 .. p_C. Here x, y, conf are sigmoids, w = sigmoid(t_w)^2 and h = sigmoid(t_h)^2, so sqrt(w), sqrt(h) --
  what Eq. 3 regresses -- are the sigmoids themselves, and the class probabilities are a softmax.
- target (N, S, S, 5 + C): per cell [has_object, x, y, w, h, one-hot class] (``encode_targets``).
- labels are 1..C as in the Fashion scenes (0 is background): class index c of the grid is label c + 1.

Deviations from the paper, so that a few minutes of CPU training suffice on 64 x 64 scenes: a 10-layer
conv-BN-ReLU backbone trained from scratch (the paper: 24 leaky-ReLU conv layers pretrained on ImageNet, with
the same alternating 1 x 1 reduction and 3 x 3 layers, Fig. 3); a 1 x 1 convolution reading each cell's
features (YOLOv2's choice) in place of the two fully connected layers; sigmoid / softmax on the outputs in
place of a linear last layer; AdamW with a one-cycle schedule (``course_lib.yolo.train``) in place of SGD with momentum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.detection.boxes import _upcast, batched_nms, paired_iou
from course_lib.utils import autocast, backward_step

EPS = 1e-12  # keeps sqrt(w) differentiable when a predicted width underflows to 0


def conv_bn_relu(c_in: int, c_out: int, k: int) -> nn.Sequential:
    """A k x k 'same' convolution, batch norm, ReLU: (N, c_in, H, W) -> (N, c_out, H, W)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class YOLOv1(nn.Module):
    """A small YOLO v1: images (N, 1, size, size) -> pred (N, S, S, B * 5 + C), laid out as in the module
    docstring. The backbone halves the resolution with max pooling until it is S x S (size / S must be a
    power of two), doubling the channels from ``width`` / 2; at 64 px, S = 8, width = 32 it costs about
    51 MFLOPs per image; each cell's receptive field is 62 px wide, most of the 64 px canvas."""

    def __init__(self, num_classes: int = 10, S: int = 8, B: int = 2, size: int = 64, width: int = 32):
        super().__init__()
        n_pool = (size // S).bit_length() - 1
        if size % S or size // S != 2 ** n_pool or n_pool < 1 or width < 2:
            raise ValueError(f"expected size / S a power of two >= 2 and width >= 2, got size={size}, S={S}, "
                             f"width={width}")
        self.num_classes, self.S, self.B, self.size = num_classes, S, B, size
        layers, c = [conv_bn_relu(1, width // 2, 3)], width // 2
        for i in range(n_pool):
            out = width * 2 ** i
            layers += [nn.MaxPool2d(2), conv_bn_relu(c, out, 3)]
            if i > 0:  # the paper's 1 x 1 reduction followed by a 3 x 3 convolution (Fig. 3)
                layers += [conv_bn_relu(out, out // 2, 1), conv_bn_relu(out // 2, out, 3)]
            c = out
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, B * 5 + num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x (N, 1, size, size) in [0, 1] -> pred (N, S, S, B * 5 + C)."""
        if not isinstance(x, Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (1, self.size, self.size):
            raise ValueError(f"expected images of shape (N, 1, {self.size}, {self.size}), "
                             f"got {tuple(getattr(x, 'shape', ()))}")
        N, S, B = len(x), self.S, self.B
        t = self.head(self.backbone(x)).permute(0, 2, 3, 1)         # (N, S, S, B*5 + C) raw outputs
        boxes = t[..., :B * 5].reshape(N, S, S, B, 5)                 # (N, S, S, B, 5)
        xy, sqrt_wh, conf = boxes[..., :2].sigmoid(), boxes[..., 2:4].sigmoid(), boxes[..., 4:].sigmoid()
        boxes = torch.cat([xy, sqrt_wh.square(), conf], dim=-1)       # (N, S, S, B, 5): x, y, w, h, conf
        probs = t[..., B * 5:].softmax(dim=-1)                        # (N, S, S, C) Pr(Class_c | Object)
        return torch.cat([boxes.flatten(3), probs], dim=-1)           # (N, S, S, B*5 + C)


def encode_targets(targets: list[dict], S: int = 8, size: int = 64, num_classes: int = 10) -> Tensor:
    """Ground truth on the grid (Sec. 2): N dicts with boxes (K, 4) xyxy pixels and labels (K,) in 1..C
    -> (N, S, S, 5 + C), per cell [has_object, x, y, w, h, one-hot class].

    The cell (row i, column j) containing a box's centre (cx, cy) is responsible for it:
    j = floor(cx / cell), x = cx / cell - j (likewise i, y), w = width / size, h = height / size, with
    cell = size / S. A cell holds one object: when two centres fall into one cell the larger box is kept
    (equal areas: the later one), the other is lost -- YOLO v1's known weakness with crowded objects.
    Centres are computed in float64, so a centre on a cell border goes to the cell it is exactly in. The grid
    is float32, or float64 when some boxes are float64.
    """
    if not isinstance(targets, (list, tuple)) or not S >= 1 or not size > 0 or not num_classes >= 1:
        raise ValueError(f"expected targets a list of N dicts with boxes (K, 4) and labels (K,), S >= 1, size > 0 "
                         f"and num_classes >= 1, got {type(targets).__name__}, S={S}, size={size}, "
                         f"num_classes={num_classes}")
    dtype = torch.float32
    for t in targets:
        boxes = t.get("boxes") if isinstance(t, dict) else None
        if isinstance(boxes, Tensor) and boxes.is_floating_point():
            dtype = torch.promote_types(dtype, boxes.dtype)             # float64 boxes: a float64 grid
    out = torch.zeros(len(targets), S, S, 5 + num_classes, dtype=dtype)
    cell = size / S
    for n, t in enumerate(targets):
        t = t if isinstance(t, dict) else {}
        boxes, labels = t.get("boxes"), t.get("labels")
        if (not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != 4 or not isinstance(labels, Tensor)
                or tuple(labels.shape) != (len(boxes),) or labels.is_floating_point() or labels.dtype == torch.bool):
            raise ValueError(f"expected target {n} with boxes of shape (K, 4) and labels of shape (K,) int, got "
                             f"{tuple(getattr(boxes, 'shape', ()))} and {tuple(getattr(labels, 'shape', ()))}")
        if len(labels) and (labels.min() < 1 or labels.max() > num_classes):
            raise ValueError(f"expected labels in 1..{num_classes}, got {labels.tolist()}")
        boxes = boxes.double().cpu()
        wh = boxes[:, 2:] - boxes[:, :2]                              # (K, 2) pixels
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2 / cell             # (K, 2) in cell units
        ji = centre.floor().long().clamp(0, S - 1)                    # (K, 2) column j, row i
        for k in (wh[:, 0] * wh[:, 1]).argsort(stable=True).tolist():  # small to large: the larger overwrites
            j, i = ji[k].tolist()
            out[n, i, j, :5] = torch.cat([torch.ones(1, dtype=torch.float64), centre[k] - ji[k], wh[k] / size])
            out[n, i, j, 5:] = F.one_hot(labels[k].long().cpu() - 1, num_classes).to(dtype)
    return out


def cell_to_xyxy(xywh: Tensor) -> Tensor:
    """xywh (N, S, S, B, 4): centres relative to their cell (row i, column j), sizes relative to the image
    -> (N, S, S, B, 4) xyxy relative to the image, with centre ((j + x) / S, (i + y) / S)."""
    if (not isinstance(xywh, Tensor) or xywh.ndim != 5 or xywh.shape[1] != xywh.shape[2] or xywh.shape[4] != 4
            or not xywh.is_floating_point()):
        raise ValueError(f"expected xywh of shape (N, S, S, B, 4) float, got {tuple(getattr(xywh, 'shape', ()))} "
                         f"{getattr(xywh, 'dtype', type(xywh).__name__)}")
    N, S, _, B, _ = xywh.shape
    j = torch.arange(S, device=xywh.device, dtype=xywh.dtype).view(1, 1, S, 1)
    i = torch.arange(S, device=xywh.device, dtype=xywh.dtype).view(1, S, 1, 1)
    cx, cy = (j + xywh[..., 0]) / S, (i + xywh[..., 1]) / S         # (N, S, S, B) each
    w, h = xywh[..., 2], xywh[..., 3]
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def _wider(pred: Tensor, target: Tensor) -> torch.dtype:
    """The dtype the loss computes in: the wider of pred's and target's, float16 / bfloat16 as float32."""
    return torch.promote_types(_upcast(pred).dtype, _upcast(target).dtype if target.is_floating_point()
                               else torch.float32)


def _split(pred: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """pred (N, S, S, B*5 + C) -> boxes (N, S, S, B, 5) [x, y, w, h, conf], probs (N, S, S, C)."""
    N, S, _, D = pred.shape
    return pred[..., :D - num_classes].reshape(N, S, S, (D - num_classes) // 5, 5), pred[..., D - num_classes:]


def _check_pred(pred: Tensor, num_classes: int, target: Tensor | None = None) -> None:
    N, S = (target.shape[0], target.shape[1]) if target is not None else ("N", "S")
    ok = (isinstance(pred, Tensor) and pred.ndim == 4 and pred.shape[1] == pred.shape[2]
          and pred.shape[3] > num_classes and (pred.shape[3] - num_classes) % 5 == 0
          and (target is None or tuple(pred.shape[:3]) == tuple(target.shape[:3])))
    if not ok:
        raise ValueError(f"expected pred of shape ({N}, {S}, {S}, B * 5 + {num_classes}), "
                         f"got {tuple(getattr(pred, 'shape', ()))}")


def responsible_predictor(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """pred (N, S, S, B*5 + C), target (N, S, S, 5 + C) -> iou (N, S, S, B) of each predicted box with its
    cell's ground truth (0 in empty cells), and best (N, S, S): the predictor with the highest IoU, the one
    "responsible" for the object (Sec. 2.2; equal IoUs: the first). Not differentiated. Computed in the wider
    dtype of pred and target (float64 stays float64; float16 / bfloat16 in float32)."""
    dtype = _wider(pred, target)
    boxes, _ = _split(pred.detach().to(dtype), target.shape[-1] - 5)
    gt = target[..., None, 1:5].to(dtype)                              # (N, S, S, 1, 4)
    iou = paired_iou(cell_to_xyxy(boxes[..., :4]), cell_to_xyxy(gt)).nan_to_num(0.0)  # (N, S, S, B)
    return iou, iou.argmax(dim=-1)


def yolo_loss(pred: Tensor, target: Tensor, lambda_coord: float = 5.0, lambda_noobj: float = 0.5) -> dict[str, Tensor]:
    """The multi-part loss of Eq. 3, each term its own entry (weights included) and their sum "total":

        coord_xy  lambda_coord sum_i sum_j 1_ij^obj [(x_i - x^_i)^2 + (y_i - y^_i)^2]
        coord_wh  lambda_coord sum_i sum_j 1_ij^obj [(sqrt w_i - sqrt w^_i)^2 + (sqrt h_i - sqrt h^_i)^2]
        obj       sum_i sum_j 1_ij^obj (C_i - C^_i)^2,       C^_i = IoU(predicted box, truth), detached
        noobj     lambda_noobj sum_i sum_j 1_ij^noobj C_i^2  (every predictor not responsible for an object)
        class     sum_i 1_i^obj sum_c (p_i(c) - p^_i(c))^2

    i runs over the S^2 cells, j over the B predictors; 1_ij^obj marks the responsible predictor
    (``responsible_predictor``) of a cell with an object. Summed over cells, averaged over the N images.
    pred (N, S, S, B*5 + C), target (N, S, S, 5 + C) from ``encode_targets`` -> dict of scalars, in the wider
    dtype of pred and target (float64 stays float64; float16 / bfloat16 are computed in float32).
    """
    if not isinstance(target, Tensor) or target.ndim != 4 or target.shape[1] != target.shape[2] or target.shape[3] < 6:
        raise ValueError(f"expected target of shape (N, S, S, 5 + C), got {tuple(getattr(target, 'shape', ()))}")
    C = target.shape[-1] - 5
    _check_pred(pred, C, target)
    N = len(pred)
    if N == 0:
        raise ValueError(f"expected at least one image: pred of shape (N, S, S, B * 5 + {C}) with N >= 1, got N = 0")
    dtype = _wider(pred, target)
    boxes, probs = _split(pred.to(dtype), C)                           # (N, S, S, B, 5), (N, S, S, C)
    target = target.to(dtype)
    obj, gt = target[..., 0], target[..., None, 1:5]                   # (N, S, S), (N, S, S, 1, 4)
    iou, best = responsible_predictor(pred, target)                    # (N, S, S, B), (N, S, S)
    resp = F.one_hot(best, boxes.shape[3]).to(dtype) * obj[..., None]  # (N, S, S, B) 1_ij^obj
    xy_err = (boxes[..., :2] - gt[..., :2]).square().sum(-1)           # (N, S, S, B)
    wh_err = (boxes[..., 2:4].clamp(min=EPS).sqrt() - gt[..., 2:4].sqrt()).square().sum(-1)
    conf = boxes[..., 4]                                               # (N, S, S, B)
    terms = {
        "coord_xy": lambda_coord * (resp * xy_err).sum() / N,
        "coord_wh": lambda_coord * (resp * wh_err).sum() / N,
        "obj": (resp * (conf - iou).square()).sum() / N,
        "noobj": lambda_noobj * ((1 - resp) * conf.square()).sum() / N,
        "class": (obj * (probs - target[..., 5:]).square().sum(-1)).sum() / N,
    }
    terms["total"] = sum(terms.values())
    return terms


@torch.no_grad()
def decode(pred: Tensor, conf_threshold: float = 0.05, iou_threshold: float = 0.5, size: int = 64,
           num_classes: int = 10, max_detections: int = 100) -> list[dict]:
    """Detections from pred (N, S, S, B*5 + C) -> N dicts in torchmetrics' format: boxes (K, 4) xyxy pixels
    clamped to [0, size], scores (K,), labels (K,) in 1..C, by decreasing score.

    Every box j of every cell i gets C class-specific scores Pr(Class_c | Object) * C_ij (Sec. 2); the
    (box, class) pairs scoring above ``conf_threshold`` are pruned per class by ``batched_nms`` and the best
    ``max_detections`` kept (COCO's cap). Boxes and scores are computed and returned in float32 whatever pred's
    dtype (float64 too): the NMS decisions are those of float32 boxes, as tests/test_fuzz.py's oracle pins.
    """
    _check_pred(pred, num_classes)
    boxes, probs = _split(pred.float(), num_classes)                   # (N, S, S, B, 5), (N, S, S, C)
    xyxy = (cell_to_xyxy(boxes[..., :4]) * size).clamp(0, size)        # (N, S, S, B, 4) pixels
    scores = boxes[..., 4:] * probs[..., None, :]                      # (N, S, S, B, C)
    out = []
    for n in range(len(pred)):
        s, b = scores[n].reshape(-1, num_classes), xyxy[n].reshape(-1, 4)  # (S*S*B, C), (S*S*B, 4)
        box, cls = (s.double() > conf_threshold).nonzero(as_tuple=True)  # (M,) each; float64, like NMS
        keep = batched_nms(b[box], s[box, cls], cls, iou_threshold)[:max_detections]
        out.append({"boxes": b[box][keep], "scores": s[box, cls][keep], "labels": cls[keep] + 1})
    return out


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor, target: Tensor) -> dict[str, Tensor]:
    """One optimiser step of ``yolo_loss`` on images (N, 1, size, size) and target (N, S, S, 5 + C); returns
    the loss terms, detached (not synced). Mixed precision on CUDA; the loss is computed in float32 (float64 for
    a float64 model and target)."""
    model.train()
    with autocast(images.device):
        pred = model(images)
    terms = yolo_loss(_upcast(pred), target)
    backward_step(terms["total"], optimizer, images.device)     # with a gradient scaler under float16 (a T4)
    return {k: v.detach() for k, v in terms.items()}
