"""Figures of chapter 02: one unit's top images as deconvnet projections beside their patches."""

from __future__ import annotations

import matplotlib.pyplot as plt
from torch import Tensor, nn

from course_lib.inside.deconvnet import deconvnet
from course_lib.inside.top_activations import TopActivations


def unit_projections(model: nn.Module, layer: nn.Module, top: TopActivations, images: Tensor,
                     channel: int) -> list[Tensor]:
    """Deconvnet projections (C, h, w) of ``channel``'s top units, cropped to their receptive fields."""
    crops = []
    for n, (i, j), (y0, y1, x0, x1) in zip(top.indices[channel].tolist(), top.positions[channel].tolist(),
                                          top.boxes[channel].tolist()):
        projection = deconvnet(model, layer, images[n:n + 1], (channel, i, j))[0]  # (C, H, W)
        crops.append(projection[:, y0:y1, x0:x1])
    return crops


def show_unit(model: nn.Module, layer: nn.Module, top: TopActivations, images: Tensor, channel: int,
              title: str = "") -> plt.Figure:
    """Two rows for one channel: deconvnet projections (top) and the image patches under them (bottom)."""
    projections, patches = unit_projections(model, layer, top, images, channel), top.patches(images, channel)
    k = len(patches)
    fig, axes = plt.subplots(2, k, figsize=(0.9 * k, 2.1), squeeze=False)
    for col in range(k):
        p = projections[col][0]
        lim = float(p.abs().max()) or 1.0
        axes[0, col].imshow(p, cmap="RdBu_r", vmin=-lim, vmax=lim)      # signed: red excites, blue inhibits
        axes[1, col].imshow(patches[col][0], cmap="gray", vmin=0, vmax=1)
        axes[0, col].set_title(f"{float(top.values[channel, col]):.1f}", fontsize=6)
        for ax in axes[:, col]:
            ax.axis("off")
    fig.suptitle(title or f"channel {channel}", fontsize=8)
    fig.tight_layout()
    return fig


def class_map_colors() -> "plt.Colormap":
    """A 10-colour map for images of class indices (occlusion's most probable class)."""
    return plt.get_cmap("tab10", 10)



