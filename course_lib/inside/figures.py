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
              title: str = "", labels: list[str] | None = None) -> plt.Figure:
    """Two rows for one channel: deconvnet projections (top) and the image patches under them (bottom).

    Each projection is scaled to its own largest magnitude (the colour bar: -1 to 1, red positive, blue
    negative); above it, the unit's activation; under each patch,
    ``labels[i]`` (e.g. the image's class) when given."""
    projections, patches = unit_projections(model, layer, top, images, channel), top.patches(images, channel)
    k = len(patches)
    fig, axes = plt.subplots(2, k, figsize=(0.95 * k + 0.9, 2.5), squeeze=False)
    for col in range(k):
        p = projections[col][0]
        lim = float(p.abs().max()) or 1.0
        im = axes[0, col].imshow(p / lim, cmap="RdBu_r", vmin=-1, vmax=1)
        axes[1, col].imshow(patches[col][0], cmap="gray", vmin=0, vmax=1)
        axes[0, col].set_title(f"act {float(top.values[channel, col]):.1f}", fontsize=8)
        if labels is not None:
            axes[1, col].set_xlabel(labels[col], fontsize=8)
        for ax in axes[:, col]:
            ax.set_xticks([]); ax.set_yticks([])
    axes[0, 0].set_ylabel("deconvnet", fontsize=8)
    axes[1, 0].set_ylabel("patch", fontsize=8)
    fig.subplots_adjust(left=0.05, right=0.88, top=0.8, bottom=0.1, wspace=0.1, hspace=0.3)
    cbar = fig.colorbar(im, cax=fig.add_axes([0.9, 0.5, 0.012, 0.3]), ticks=[-1, 0, 1])
    cbar.set_label("projection\n÷ its max |.|", fontsize=7)
    cbar.ax.tick_params(labelsize=7)
    fig.suptitle(title or f"channel {channel}", fontsize=9)
    return fig


def class_map_colors() -> "plt.Colormap":
    """A 10-colour map for images of class indices (occlusion's most probable class)."""
    return plt.get_cmap("tab10", 10)



