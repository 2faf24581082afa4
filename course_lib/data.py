"""Data: real Fashion-MNIST, offline first, and the generated Fashion scenes.

Fashion-MNIST (Xiao et al. 2017) is looked for, in this order:

1. ``$COURSE_DATA`` -- a folder with the four IDX files (``.gz`` or not, or under ``FashionMNIST/raw``);
2. ``data/`` of the course checkout -- the same;
3. Debian's package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``);
4. torchvision's download (needs the network, e.g. on Colab; skipped when ``COURSE_OFFLINE=1``).

torchvision's ``FashionMNIST`` reads the uncompressed files in ``<root>/FashionMNIST/raw``; compressed
files found above are decompressed into the cache once (Debian's ``.gz`` files are recompressed, so
their checksums differ from torchvision's mirrors and ``download=True`` would reject them).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.utils.data import Dataset

from course_lib.utils import cache_dir, repo_root

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


class DataNotFoundError(FileNotFoundError):
    """Fashion-MNIST is nowhere to be found and cannot be downloaded."""


class ImageDataset(Dataset):
    """Images and labels held as tensors: ``images`` (N, C, H, W) float in [0, 1], ``labels`` (N,) int64."""

    def __init__(self, images: Tensor, labels: Tensor, classes: tuple[str, ...] = CLASSES):
        if images.ndim != 4 or labels.shape != images.shape[:1]:
            raise ValueError(f"expected images (N, C, H, W) and labels (N,), got {tuple(images.shape)} "
                             f"and {tuple(labels.shape)}")
        self.images, self.labels, self.classes = images, labels.long(), classes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.images[i], int(self.labels[i])

    def subset(self, n: int | None, seed: int = 0) -> "ImageDataset":
        """A seeded random subset of ``n`` items (all items when ``n`` is None or too large)."""
        if n is None or n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return ImageDataset(self.images[idx], self.labels[idx], self.classes)


def _has_files(folder: Path) -> bool:
    return all((folder / f).is_file() or (folder / f"{f}.gz").is_file() for f in FILES)


def candidate_folders() -> list[tuple[str, Path]]:
    """The places searched for the IDX files, in order, with a label for messages."""
    found: list[tuple[str, Path]] = []
    if os.environ.get("COURSE_DATA"):
        found.append(("$COURSE_DATA", Path(os.environ["COURSE_DATA"]).expanduser()))
    if repo_root() is not None:
        found.append(("data/", repo_root() / "data"))
    found.append(("Debian package dataset-fashion-mnist", DEBIAN_DIR))
    return found


def _find_local() -> Path | None:
    for _, base in candidate_folders():
        for folder in (base, base / "fashion-mnist", base / "FashionMNIST" / "raw"):
            if _has_files(folder):
                return folder
    return None


def _cache_root(folder: Path) -> Path:
    """The cache folder for the IDX files of ``folder``: new or changed files get a new folder."""
    stats = [(f, p.stat().st_size, p.stat().st_mtime_ns) for f in FILES
             for p in (folder / f, folder / f"{f}.gz") if p.is_file()]
    key = hashlib.sha1(repr((str(folder.resolve()), stats)).encode()).hexdigest()[:10]
    return cache_dir() / "fashion-mnist" / key


def _torchvision_root(folder: Path) -> Path:
    """A root whose ``FashionMNIST/raw`` holds the uncompressed files of ``folder``."""
    if folder.name == "raw" and folder.parent.name == "FashionMNIST" and all((folder / f).is_file() for f in FILES):
        return folder.parent.parent
    root = _cache_root(folder)
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (raw / name).is_file():
            continue
        tmp = raw / f".{name}.tmp{os.getpid()}"
        if (folder / name).is_file():
            shutil.copyfile(folder / name, tmp)
        else:
            with gzip.open(folder / f"{name}.gz", "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
        os.replace(tmp, raw / name)  # atomic: a half-written file never carries the final name
    return root


def _remedies() -> str:
    searched = "\n".join(f"  - {label}: {path}" for label, path in candidate_folders())
    return ("Fashion-MNIST was not found. Searched:\n" + searched + "\nRemedies (any one):\n"
            "  1. set COURSE_DATA to a folder holding the four IDX files (train-images-idx3-ubyte[.gz], ...);\n"
            "  2. on Debian/Ubuntu: sudo apt-get update && sudo apt-get install dataset-fashion-mnist;\n"
            "  3. allow the network (and unset COURSE_OFFLINE) so torchvision can download it.")


@functools.lru_cache(maxsize=2)
def fashion_mnist(split: str = "train") -> ImageDataset:
    """Real Fashion-MNIST: 60,000 train or 10,000 test images (1, 28, 28) in [0, 1] with int labels."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = _find_local()
    if folder is not None:
        images, labels = _read_local(folder, split)
    elif os.environ.get("COURSE_OFFLINE") == "1":
        raise DataNotFoundError(_remedies())
    else:
        from torchvision.datasets import FashionMNIST

        try:
            ds = FashionMNIST(str(cache_dir() / "fashion-mnist" / "download"),
                              train=split == "train", download=True)
        except Exception as err:  # no network, blocked mirror, ...
            raise DataNotFoundError(f"{_remedies()}\n(download failed: {err})") from err
        images, labels = ds.data, ds.targets
    return ImageDataset(images.unsqueeze(1).float().div_(255), labels)  # (N, 1, 28, 28)


def _read_local(folder: Path, split: str) -> tuple[Tensor, Tensor]:
    """uint8 images (N, 28, 28) and labels (N,) of the IDX files in ``folder``, read by torchvision once.

    The decoded tensors are cached beside the decompressed files (safetensors, written atomically), so a
    later run loads them without importing torchvision (about 2 s on a small CPU); a cache file that does not
    load is decoded again.
    """
    cached = _cache_root(folder) / f"{split}.safetensors"
    if cached.is_file():
        try:
            t = load_file(cached)
            return t["images"], t["labels"]
        except Exception:  # truncated or foreign file: decode the IDX files again below
            pass
    from torchvision.datasets import FashionMNIST

    ds = FashionMNIST(str(_torchvision_root(folder)), train=split == "train", download=False)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.name}.tmp{os.getpid()}")
    save_file({"images": ds.data.contiguous(), "labels": ds.targets.contiguous()}, tmp)
    os.replace(tmp, cached)  # atomic: a half-written file never carries the final name
    return ds.data, ds.targets


# ----------------------------------------------------------------------------------------------
# Fashion scenes: 1-4 Fashion-MNIST items pasted at random scales on a textured canvas.

NAMES = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
PLURALS = ("t-shirts", "trousers", "pullovers", "dresses", "coats", "sandals", "shirts", "sneakers", "bags",
           "ankle boots")
COUNTS = ("", "a", "two", "three", "four")
SCENE_CLASSES = ("background",) + CLASSES  # scene labels: 1 + Fashion-MNIST class; 0 is background


@dataclass
class SceneConfig:
    size: int = 64                         # canvas is (1, size, size)
    min_items: int = 1
    max_items: int = 4
    scale: tuple[float, float] = (0.25, 0.55)  # item side as a fraction of the canvas side
    max_iou: float = 0.1                   # placements overlapping more than this are redrawn
    min_area: int = 20                     # an item with fewer visible pixels is dropped


class FashionScenes(Dataset):
    """``(image (1, S, S), target)`` pairs; ``target`` in torchvision's detection format:
    ``boxes`` (K, 4) float xyxy in pixels, ``labels`` (K,) int64 in 1..10 (0 is background),
    ``masks`` (K, S, S) uint8 instance masks, plus ``caption`` (str)."""

    def __init__(self, images: Tensor, targets: list[dict]):
        self.images, self.targets = images, targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, dict]:
        return self.images[i], self.targets[i]

    @property
    def captions(self) -> list[str]:
        return [t["caption"] for t in self.targets]


def caption(labels: list[int]) -> str:
    """'a bag and two sneakers' for Fashion-MNIST labels [8, 7, 7] (counted in order of first mention)."""
    parts = []
    for c in dict.fromkeys(labels):
        count = labels.count(c)
        if NAMES[c] == "trousers":
            parts.append("a pair of trousers" if count == 1 else f"{COUNTS[count]} pairs of trousers")
        else:
            article = "an" if count == 1 and NAMES[c][0] in "aeiou" else COUNTS[count]
            parts.append(f"{article} {NAMES[c] if count == 1 else PLURALS[c]}")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _background(size: int, g: torch.Generator) -> Tensor:
    """Smooth noise plus faint stripes, values in [0, 0.35]: (1, size, size)."""
    coarse = torch.rand(1, 1, max(size // 8, 2), max(size // 8, 2), generator=g)
    noise = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0]
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    theta, freq = torch.rand(2, generator=g) * torch.tensor([3.1416, 0.5]) + torch.tensor([0.0, 0.2])
    stripes = torch.sin(freq * (xx * torch.cos(theta) + yy * torch.sin(theta)))
    return (0.2 * noise + 0.05 * (stripes + 1) + 0.02 * torch.rand(1, size, size, generator=g)).clamp(0, 0.35)


def fashion_scenes(n: int, seed: int = 0, split: str = "train", cfg: SceneConfig | None = None,
                   source: ImageDataset | None = None) -> FashionScenes:
    """``n`` seeded scenes built from the Fashion-MNIST ``split`` (or from ``source``)."""
    from course_lib.detection.boxes import box_iou     # notebook 03's kernel (lazy: detection imports data)
    cfg = cfg or SceneConfig()
    if n < 0 or cfg.size < 28 or not 1 <= cfg.min_items <= cfg.max_items <= 4:
        raise ValueError(f"need n >= 0, size >= 28 and 1 <= min_items <= max_items <= 4, got n={n}, {cfg}")
    items = source if source is not None else fashion_mnist(split)
    g = torch.Generator().manual_seed(seed)
    S = cfg.size
    images, targets = torch.empty(n, 1, S, S), []
    for i in range(n):
        canvas = _background(S, g)
        k = int(torch.randint(cfg.min_items, cfg.max_items + 1, (1,), generator=g))
        boxes, labels, masks = torch.empty(0, 4), [], []
        for _ in range(k):
            for _attempt in range(20):
                side = int(S * (cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * torch.rand(1, generator=g)))
                x0, y0 = (int(v) for v in torch.randint(0, S - side + 1, (2,), generator=g))
                box = torch.tensor([[x0, y0, x0 + side, y0 + side]], dtype=torch.float)
                if len(boxes) == 0 or box_iou(box, boxes).max() <= cfg.max_iou:
                    break
            else:
                continue  # no room left on this canvas
            j = int(torch.randint(len(items), (1,), generator=g))
            item = F.interpolate(items.images[j][None], size=(side, side), mode="bilinear",
                                 antialias=True, align_corners=False)[0].clamp(0, 1)
            mask = torch.zeros(S, S, dtype=torch.bool)
            mask[y0:y0 + side, x0:x0 + side] = item[0] > 0.08
            canvas[:, y0:y0 + side, x0:x0 + side] = torch.where(
                mask[y0:y0 + side, x0:x0 + side], item, canvas[:, y0:y0 + side, x0:x0 + side])
            masks = [m & ~mask for m in masks] + [mask]  # later items occlude earlier ones
            boxes = torch.cat([boxes, box])
            labels.append(int(items.labels[j]))
        keep = [m.sum() >= cfg.min_area for m in masks]
        masks = [m for m, kp in zip(masks, keep) if kp]
        labels = [c for c, kp in zip(labels, keep) if kp]
        tight = [torch.stack([m.any(0).nonzero().min(), m.any(1).nonzero().min(),
                              m.any(0).nonzero().max() + 1, m.any(1).nonzero().max() + 1]) for m in masks]
        images[i] = canvas
        targets.append({
            "boxes": torch.stack(tight).float() if tight else torch.zeros(0, 4),
            "labels": torch.tensor([c + 1 for c in labels], dtype=torch.int64),
            "masks": torch.stack(masks).to(torch.uint8) if masks else torch.zeros(0, S, S, dtype=torch.uint8),
            "caption": caption(labels) if labels else "an empty canvas",
        })
    return FashionScenes(images, targets)


# ----------------------------------------------------------------------------------------------
# Pairs and domains for image-to-image translation (notebook 11), derived from Fashion-MNIST.

def edge_maps(images: Tensor, sigma: float = 1.0) -> Tensor:
    """Canny edges (scikit-image's ``feature.canny``, Gaussian smoothing ``sigma``) of images (N, 1, H, W) in
    [0, 1] -> (N, 1, H, W) float32 in {0, 1}: the line drawings that pix2pix and MUNIT translate into items."""
    from skimage.feature import canny

    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 1 or not images.is_floating_point():
        raise ValueError(f"expected images of shape (N, 1, H, W) float in [0, 1], got "
                         f"{tuple(getattr(images, 'shape', ()))}")
    arrays = images[:, 0].detach().cpu().double().numpy()
    edges = [torch.from_numpy(canny(a, sigma=sigma)) for a in arrays]
    return torch.stack(edges).unsqueeze(1).float() if edges else torch.zeros_like(images, dtype=torch.float32)


def edge_pairs(n: int | None, split: str = "train", seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Paired data for pix2pix: (edge maps, images, labels) of a seeded subset of ``n`` images of ``split``."""
    ds = fashion_mnist(split).subset(n, seed=seed)
    return edge_maps(ds.images), ds.images, ds.labels


def unpaired_domains(n: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Two unpaired domains for MUNIT from the training split: edge maps of n images and n *other* images
    (disjoint index sets, so no pair is ever seen). Returns (edges, edge_labels, images, image_labels)."""
    train = fashion_mnist("train")
    if not 1 <= n <= len(train) // 2:
        raise ValueError(f"expected 1 <= n <= {len(train) // 2} images per domain, got {n}")
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    a, b = idx[:n], idx[n:2 * n]                                        # disjoint
    return edge_maps(train.images[a]), train.labels[a], train.images[b], train.labels[b]
