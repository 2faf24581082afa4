"""Plot helpers: image grids, heat-map overlays, boxes. Small figures, so notebooks stay light."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from torch import Tensor

COLORS = plt.get_cmap("tab10").colors


def use_course_style() -> None:
    """Small, light figures (72 dpi, compact fonts)."""
    plt.rcParams.update({"figure.dpi": 72, "savefig.dpi": 72, "font.size": 9, "axes.titlesize": 9,
                         "image.cmap": "gray", "figure.max_open_warning": 0})


def _as_hw(img: Tensor) -> Tensor:
    """(1, H, W), (H, W) or (3, H, W) -> something imshow takes."""
    img = img.detach().float().cpu()
    if img.ndim == 3 and img.shape[0] == 1:
        return img[0]
    if img.ndim == 3 and img.shape[0] == 3:
        return img.permute(1, 2, 0)
    return img


def image_grid(images: Tensor, titles: list[str] | None = None, ncols: int = 8, scale: float = 1.1,
               suptitle: str | None = None, vmin: float = 0.0, vmax: float = 1.0) -> plt.Figure:
    """A grid of images (N, C, H, W) or (N, H, W), C in {1, 3}, with optional per-image titles."""
    if images.ndim not in (3, 4):
        raise ValueError(f"expected images (N, C, H, W) or (N, H, W), got {tuple(images.shape)}")
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    # room for each row's tallest title (8-point lines) and the suptitle, so titles never overlap the row above
    lines = [max((str(t).count("\n") + 1 for t in titles[r * ncols:(r + 1) * ncols] if t), default=0)
             for r in range(nrows)] if titles else [0]
    height = scale * nrows + 0.16 * sum(lines) + (0.3 if titles else 0) + (0.35 if suptitle else 0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, height), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_as_hw(images[i]), vmin=vmin, vmax=vmax, cmap="gray")
            if titles:
                ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def overlay_heatmap(ax: plt.Axes, image: Tensor, heat: Tensor, alpha: float = 0.5, cmap: str = "jet") -> None:
    """Draw ``image`` (1, H, W) in grey and ``heat`` (H, W) on top of it, normalised to [0, 1]."""
    heat = heat.detach().float().cpu()
    heat = (heat - heat.min()) / (heat.max() - heat.min() + 1e-12)
    ax.imshow(_as_hw(image), cmap="gray", vmin=0, vmax=1)
    ax.imshow(heat, cmap=cmap, alpha=alpha)
    ax.axis("off")


def draw_boxes(ax: plt.Axes, boxes: Tensor, labels: Tensor | None = None, scores: Tensor | None = None,
               class_names: tuple[str, ...] | None = None, color=None, linestyle: str = "-",
               fontsize: float = 8, linewidth: float = 1.2) -> None:
    """Draw boxes (K, 4) xyxy in pixel units, with optional labels (K,) and scores (K,)."""
    boxes = torch.as_tensor(boxes).detach().cpu().reshape(-1, 4)
    for k, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        c = color or COLORS[int(labels[k]) % 10 if labels is not None else 0]
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=c,
                                   linewidth=linewidth, linestyle=linestyle))
        text = []
        if labels is not None:
            text.append(class_names[int(labels[k])] if class_names else str(int(labels[k])))
        if scores is not None:
            text.append(f"{float(scores[k]):.2f}")
        if text:
            ax.text(x0, y0 - 1, " ".join(text), color=c, fontsize=fontsize, va="bottom")


def show_scene(ax: plt.Axes, image: Tensor, target: dict, class_names: tuple[str, ...] | None = None,
               masks: bool = True) -> None:
    """A Fashion scene with its instance masks tinted and boxes drawn."""
    ax.imshow(_as_hw(image), cmap="gray", vmin=0, vmax=1)
    if masks and len(target.get("masks", [])):
        tint = torch.zeros(*target["masks"].shape[1:], 4)
        for k, m in enumerate(target["masks"].bool()):
            tint[m] = torch.tensor([*COLORS[int(target["labels"][k]) % 10], 0.35])
        ax.imshow(tint)
    draw_boxes(ax, target["boxes"], target["labels"], class_names=class_names)
    ax.set_title(target.get("caption", ""), fontsize=8)
    ax.axis("off")
