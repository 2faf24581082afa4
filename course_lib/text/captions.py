"""Captioned Fashion-MNIST: one item per 28x28 image, drawn so that every word of its caption is true.

Each image renders three attributes besides the class, and its caption names all of them:

- **size**: "large" keeps the item at 28 px; "small" resizes it to 16 px (bilinear, antialiased);
- **brightness**: the item's intensities are scaled so that their intensity-weighted mean (see ``intensity``)
  is 0.85 ("light") or 0.35 ("dark"), then clipped to [0, 1];
- **position** (small items only): the 16 px item is centred against one side, 1 px from it:
  "on the left", "on the right", "at the top", "at the bottom".

Captions come from a small grammar: a template ("a", "a photo of", "a picture of", "an image of"), the size,
the brightness, a synonym of the class (``CLASS_WORDS``; plural nouns take no article) and, for small items,
the position: "a photo of a small dark jacket on the left", "large light pants".

``measure_attributes`` reads the attributes back from pixels (size from the bounding box of the pixels
above ``ITEM_THRESHOLD``, brightness from ``intensity``, position from the intensity centroid), so a
generated sample can be graded against its caption (``attribute_agreement``); on the rendered images it
agrees with the rendering (tests/test_text.py). Shapes: N images, (N, 1, 28, 28) float in [0, 1].
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from course_lib.data import fashion_mnist

CLASS_WORDS = (("t-shirt", "top", "tee"), ("trousers", "pants"), ("pullover", "sweater", "jumper"), ("dress",),
               ("coat", "jacket"), ("sandal", "sandals"), ("shirt", "blouse"), ("sneaker", "trainer"),
               ("bag", "handbag"), ("ankle boot", "boot"))
PLURAL_NOUNS = frozenset({"trousers", "pants", "sandals"})
SIZES = ("small", "large")
BRIGHTNESS = ("dark", "light")
POSITIONS = ("on the left", "on the right", "at the top", "at the bottom")
TEMPLATES = ("{a}{size} {brightness} {noun}", "a photo of {a}{size} {brightness} {noun}",
             "a picture of {a}{size} {brightness} {noun}", "an image of {a}{size} {brightness} {noun}")

CANVAS, SMALL_SIDE, MARGIN = 28, 16, 1          # pixels
LEVELS = {"dark": 0.35, "light": 0.85}          # rendered intensity-weighted mean
ITEM_THRESHOLD = 0.05     # a pixel above it belongs to the item (bounding box, centroid, intensity)
# Measured on 30,000 rendered images: small items span <= 16 px, large ones >= 25 px (all but 1 in 10^4);
# dark items have intensity <= 0.39, light ones >= 0.47 (light items of dark cloth lose some to clipping).
LARGE_EXTENT = 20         # bounding-box side (px) above which an item is measured "large"
LIGHT_INTENSITY = 0.43    # intensity above which an item is measured "light"


def vocabulary() -> list[str]:
    """Every word the grammar can produce, sorted (37 words)."""
    text = " ".join(TEMPLATES).replace("{a}", "a ") + " " + " ".join(SIZES + BRIGHTNESS + POSITIONS)
    words = set(re.findall(r"[a-z-]+", re.sub(r"\{\w+\}", " ", text)))
    return sorted(words | {w for names in CLASS_WORDS for name in names for w in name.split()})


@dataclass
class CaptionSet(Dataset):
    """images (N, 1, 28, 28) in [0, 1], captions, labels (N,) int64, and the rendered attributes: sizes
    ("small"/"large"), brightness ("dark"/"light"), positions (a phrase of ``POSITIONS``, None when large).
    ``dataset[i]`` is (image (1, 28, 28), caption)."""

    images: Tensor
    captions: list[str]
    labels: Tensor
    sizes: list[str]
    brightness: list[str]
    positions: list[str | None]

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> tuple[Tensor, str]:
        return self.images[i], self.captions[i]


def intensity(images: Tensor) -> Tensor:
    """The intensity-weighted mean intensity sum(x^2) / sum(x) over the pixels above ``ITEM_THRESHOLD``: the
    mean of the item's pixels, bright pixels counting more. (N, 1, H, W) -> (N,), 0 for an empty image."""
    x = images.flatten(1) * (images.flatten(1) > ITEM_THRESHOLD)           # (N, H*W)
    return (x * x).sum(1) / x.sum(1).clamp_min(1e-12)


def caption_dataset(n: int, split: str = "train", seed: int = 0) -> CaptionSet:
    """``n`` captioned images from distinct Fashion-MNIST items of ``split``; deterministic given the seed."""
    items = fashion_mnist(split)
    if not 0 <= n <= len(items):
        raise ValueError(f"expected 0 <= n <= {len(items)} (the {split} split's size), got {n}")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(items), generator=g)[:n]                       # (n,)
    x, labels = items.images[idx], items.labels[idx]                        # (n, 1, 28, 28), (n,)
    small = torch.rand(n, generator=g) < 0.5
    light = torch.rand(n, generator=g) < 0.5
    where = torch.randint(len(POSITIONS), (n,), generator=g)
    template = torch.randint(len(TEMPLATES), (n,), generator=g)
    synonym = torch.rand(n, generator=g)                                    # index = floor(u * #synonyms)

    resized = F.interpolate(x, size=(SMALL_SIDE, SMALL_SIDE), mode="bilinear", antialias=True,
                            align_corners=False).clamp(0, 1)                 # (n, 1, 16, 16)
    mid, far = (CANVAS - SMALL_SIDE) // 2, CANVAS - SMALL_SIDE - MARGIN
    corners = ((MARGIN, mid), (far, mid), (mid, MARGIN), (mid, far))         # (x0, y0) per position
    images = x.clone()
    for i in torch.nonzero(small)[:, 0].tolist():
        x0, y0 = corners[int(where[i])]
        images[i] = 0
        images[i, :, y0:y0 + SMALL_SIDE, x0:x0 + SMALL_SIDE] = resized[i]
    level = torch.where(light, LEVELS["light"], LEVELS["dark"])             # (n,)
    images = (images * (level / intensity(images).clamp_min(1e-6))[:, None, None, None]).clamp(0, 1)

    captions, sizes, brightness, positions = [], [], [], []
    for i in range(n):
        names = CLASS_WORDS[int(labels[i])]
        noun = names[min(int(synonym[i] * len(names)), len(names) - 1)]
        sizes.append(SIZES[int(not small[i])])
        brightness.append(BRIGHTNESS[int(light[i])])
        positions.append(POSITIONS[int(where[i])] if small[i] else None)
        text = TEMPLATES[int(template[i])].format(a="" if noun in PLURAL_NOUNS else "a ", size=sizes[-1],
                                                  brightness=brightness[-1], noun=noun)
        captions.append(text if positions[-1] is None else f"{text} {positions[-1]}")
    return CaptionSet(images, captions, labels, sizes, brightness, positions)


def measure_attributes(images: Tensor) -> dict:
    """Read size, brightness and position back from pixels. images (N, 1, H, W) in [0, 1] ->

    - ``extent`` (N,): the longer side (px) of the bounding box of the pixels above ``ITEM_THRESHOLD``;
      ``size``: "large" if extent > ``LARGE_EXTENT`` else "small";
    - ``intensity`` (N,): see ``intensity``; ``brightness``: "light" if above ``LIGHT_INTENSITY`` else "dark";
    - ``centroid`` (N, 2): the (x, y) intensity centroid of the item's pixels; ``position``: the phrase of the
      side it leans to most (|dx| vs |dy| from the canvas centre), measured for every image (None if empty)."""
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 1 or not images.is_floating_point():
        raise ValueError(f"expected images of shape (N, 1, H, W) float in [0, 1], got "
                         f"{tuple(getattr(images, 'shape', ())) or type(images).__name__}")
    N, _, H, W = images.shape
    x = images[:, 0].detach().float().cpu()                                 # (N, H, W)
    item = x > ITEM_THRESHOLD                                               # (N, H, W)

    def span(occupied: Tensor) -> Tensor:                                   # (N, L) bool -> (N,) first..last
        ar = torch.arange(occupied.shape[1])
        lo = torch.where(occupied, ar, occupied.shape[1]).amin(1)
        hi = torch.where(occupied, ar, -1).amax(1)
        return (hi - lo + 1).clamp(min=0)

    extent = torch.maximum(span(item.any(1)), span(item.any(2)))            # columns, rows -> (N,)
    w = x * item                                                            # (N, H, W)
    mass = w.sum((1, 2)).clamp_min(1e-12)
    cx = (w.sum(1) * torch.arange(W)).sum(1) / mass                         # (N,)
    cy = (w.sum(2) * torch.arange(H)).sum(1) / mass
    dx, dy = cx - (W - 1) / 2, cy - (H - 1) / 2
    level = intensity(x[:, None])
    positions = [None if not item[i].any() else
                 (POSITIONS[0] if dx[i] < 0 else POSITIONS[1]) if dx[i].abs() > dy[i].abs() else
                 (POSITIONS[2] if dy[i] < 0 else POSITIONS[3]) for i in range(N)]
    return {"size": [SIZES[int(e > LARGE_EXTENT)] for e in extent],
            "brightness": [BRIGHTNESS[int(v > LIGHT_INTENSITY)] for v in level],
            "position": positions,
            "extent": extent, "intensity": level, "centroid": torch.stack([cx, cy], 1)}


def parse_caption(caption: str) -> dict:
    """The attributes a caption names: {"label": int, "size", "brightness", "position": str}, None where it names
    none (or, for the label, more than one class). "a small dark top at the top" -> label 0, position "at the top"."""
    text = " " + " ".join(re.findall(r"[\w-]+", caption.lower())) + " "
    position = next((p for p in POSITIONS if f" {p} " in text), None)
    if position is not None:
        text = text.replace(f" {position} ", " ", 1)                        # "top" left in text is a noun
    found = {k for k, names in enumerate(CLASS_WORDS) for name in names if f" {name} " in text}
    words = text.split()
    return {"label": found.pop() if len(found) == 1 else None,
            "size": next((s for s in SIZES if s in words), None),
            "brightness": next((b for b in BRIGHTNESS if b in words), None),
            "position": position}


def attribute_agreement(measured: dict, captions: list[str]) -> dict[str, float]:
    """For size, brightness and position: the fraction of images whose measured attribute (``measure_attributes``)
    is the one their caption names, over the captions that name one (nan if none does)."""
    wanted = [parse_caption(c) for c in captions]
    if len(wanted) != len(measured["size"]):
        raise ValueError(f"expected one caption per measured image ({len(measured['size'])}), got {len(wanted)}")
    out = {}
    for key in ("size", "brightness", "position"):
        pairs = [(m, w[key]) for m, w in zip(measured[key], wanted) if w[key] is not None]
        out[key] = sum(m == w for m, w in pairs) / len(pairs) if pairs else float("nan")
    return out
