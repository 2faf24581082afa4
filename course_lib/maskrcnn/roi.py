"""RoIAlign and RoIPool: a fixed-size feature map for every region of interest.

He, Gkioxari, Dollar & Girshick 2017, "Mask R-CNN", Sec. 3: RoIPool (Girshick 2015, "Fast R-CNN", Sec. 2.1)
*quantizes* twice -- the box to the feature grid (round(x / stride)) and the box to its bins (floor / ceil) --
then max-pools each bin. The misalignments are harmless for classification but hurt pixel-accurate masks.
RoIAlign drops every rounding: it splits the box, in continuous coordinates x / stride, into
output_size bins, samples each bin at a regular grid of points (sampling_ratio^2 points, or
ceil(box side / output side) per side when sampling_ratio <= 0), reads each point by **bilinear
interpolation** of the four nearest feature cells, and averages the points of a bin (Fig. 3).

Bilinear interpolation of a feature map f at (y, x), with y0 = floor(y), x0 = floor(x), ly = y - y0,
lx = x - x0, hy = 1 - ly, hx = 1 - lx:

    f(y, x) = hy hx f[y0, x0] + hy lx f[y0, x0 + 1] + ly hx f[y0 + 1, x0] + ly lx f[y0 + 1, x0 + 1]

A feature cell [i, j] is centred at (i, j) in these coordinates. ``aligned=True`` shifts the box by half a
cell (x / stride - 0.5) so that pixel boundaries map to cell boundaries -- the fix of Detectron2, which
torchvision exposes as ``aligned``; ``aligned=False`` is the original Mask R-CNN code. Points more than one
cell outside the map read 0; points within that margin read the border (as torchvision's kernel does).

Boxes are given either as rois (K, 5) = [batch index, x0, y0, x1, y1] or as a list with one (K_i, 4)
tensor of xyxy boxes per image, in *image* pixels; ``spatial_scale`` = 1 / stride maps them to the map.
``roi_align`` equals ``torchvision.ops.roi_align`` and ``roi_pool`` equals ``torchvision.ops.roi_pool``,
forward and gradient (tests/test_roi.py).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor


def _pair(output_size: int | tuple[int, int]) -> tuple[int, int]:
    pair = (output_size, output_size) if isinstance(output_size, numbers.Real) else output_size
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or any(isinstance(v, bool) or not isinstance(v, numbers.Real) or int(v) != v or v < 1 for v in pair)):
        raise ValueError(f"expected output_size as an int or (PH, PW) of ints >= 1, got {output_size!r}")
    return int(pair[0]), int(pair[1])


# float16 / bfloat16 features are sampled in float32 (the result is cast back): a bfloat16 coordinate near
# 16 cells is only good to 1/8 cell, and RoIAlign's output would be visibly off.
REDUCED = (torch.float16, torch.bfloat16)


def as_rois(boxes: Tensor | list[Tensor], features: Tensor) -> Tensor:
    """boxes as (K, 5) rois or a list of (K_i, 4) xyxy tensors, one per image of features (N, C, H, W)
    -> rois (K, 5) = [batch index, x0, y0, x1, y1], in the features' dtype."""
    if (not isinstance(features, Tensor) or features.ndim != 4 or not features.is_floating_point()
            or 0 in features.shape[2:]):
        raise ValueError(f"expected features of shape (N, C, H, W) float with H, W >= 1, got "
                         f"{tuple(getattr(features, 'shape', ())) or type(features).__name__}"
                         f"{'' if not isinstance(features, Tensor) else ' ' + str(features.dtype)}")
    if isinstance(boxes, (list, tuple)):
        if any(not isinstance(b, Tensor) or b.ndim != 2 or b.shape[1] != 4 for b in boxes):
            raise ValueError(f"expected a list of (K_i, 4) box tensors, got shapes "
                             f"{[tuple(getattr(b, 'shape', ())) for b in boxes]}")
        if len(boxes) > len(features):
            raise ValueError(f"expected at most N = {len(features)} box tensors for features (N, C, H, W), "
                             f"got {len(boxes)}")
        index = [torch.full((len(b), 1), i, dtype=features.dtype, device=features.device) for i, b in enumerate(boxes)]
        return torch.cat([torch.cat([i, b.to(features)], 1) for i, b in zip(index, boxes)]
                         or [features.new_zeros(0, 5)])
    if not isinstance(boxes, Tensor) or boxes.ndim != 2 or boxes.shape[1] != 5:
        raise ValueError(f"expected boxes as rois (K, 5) = [batch index, x0, y0, x1, y1] or a list of (K_i, 4), "
                         f"got {getattr(boxes, 'shape', type(boxes).__name__)}")
    if len(boxes) and not (boxes[:, 0].isfinite().all() and boxes[:, 0].min() >= 0
                           and boxes[:, 0].max() < len(features)):
        raise ValueError(f"expected roi batch indices in [0, N) for features (N, C, H, W) with N = {len(features)}, "
                         f"got {boxes[:, 0].unique().tolist()}")
    return boxes.to(features)


def bilinear(features: Tensor, batch_index: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """Read features (N, C, H, W) at the points (y, x), each (K, P), of image batch_index (K,) by bilinear
    interpolation (module docstring) -> (K, C, P). A point with y < -1, y > H, x < -1 or x > W reads 0;
    closer points are clamped into the map (torchvision's ``bilinear_interpolate``)."""
    if not isinstance(features, Tensor) or features.ndim != 4 or 0 in features.shape[2:]:
        raise ValueError(f"expected features (N, C, H, W) with H, W >= 1, got {tuple(getattr(features, 'shape', ()))}")
    if (batch_index.ndim != 1 or y.ndim != 2 or y.shape != x.shape or len(y) != len(batch_index)
            or batch_index.is_floating_point() or y.dtype == torch.bool or x.dtype == torch.bool):
        raise ValueError(f"expected batch_index (K,) int and points y, x (K, P), got {tuple(batch_index.shape)} "
                         f"{batch_index.dtype}, {tuple(y.shape)}, {tuple(x.shape)}")
    if len(batch_index) and (batch_index.min() < 0 or batch_index.max() >= len(features)):
        raise ValueError(f"expected batch_index in [0, N) for features (N, C, H, W) with N = {len(features)}, "
                         f"got {batch_index.unique().tolist()}")
    N, C, H, W = features.shape
    outside = (y < -1) | (y > H) | (x < -1) | (x > W)                 # (K, P)
    y, x = y.clamp(min=0), x.clamp(min=0)
    y0, x0 = y.floor().long(), x.floor().long()                         # (K, P) top-left neighbour
    last_row, last_col = y0 >= H - 1, x0 >= W - 1                       # on the last row / column: no neighbour below
    y0, x0 = y0.clamp(max=H - 1), x0.clamp(max=W - 1)
    y1, x1 = (y0 + 1).clamp(max=H - 1), (x0 + 1).clamp(max=W - 1)
    ly = torch.where(last_row, 0.0, y - y0)                             # (K, P) weight of the row below
    lx = torch.where(last_col, 0.0, x - x0)                             # (K, P) weight of the column right
    hy, hx = 1 - ly, 1 - lx
    flat = features.flatten(2)                                          # (N, C, H * W)
    b = batch_index[:, None]                                            # (K, 1)

    def at(yi: Tensor, xi: Tensor) -> Tensor:                           # (K, P) cells -> (K, C, P)
        return flat[b, :, yi * W + xi].permute(0, 2, 1)

    value = ((hy * hx)[:, None] * at(y0, x0) + (hy * lx)[:, None] * at(y0, x1)
             + (ly * hx)[:, None] * at(y1, x0) + (ly * lx)[:, None] * at(y1, x1))   # (K, C, P)
    return value.masked_fill(outside[:, None], 0.0)


def _box_and_grid(rois: Tensor, PH: int, PW: int, spatial_scale: float, sampling_ratio: int,
                  aligned: bool) -> tuple[Tensor, ...]:
    """Each RoI (K, 5) in feature cells -> y0, h, x0, w (K,) and the samples per bin side gh, gw (K,) long."""
    offset = 0.5 if aligned else 0.0
    x0, y0, x1, y1 = (rois[:, 1:] * spatial_scale - offset).unbind(1)   # (K,) each, in feature cells
    w, h = x1 - x0, y1 - y0
    if not aligned:                                                     # the original code forces boxes >= 1 cell
        w, h = w.clamp(min=1.0), h.clamp(min=1.0)
    if sampling_ratio > 0:
        gh = gw = torch.full((len(rois),), sampling_ratio, device=rois.device)
    else:                                                               # adaptive: ~1 sample per cell
        gh, gw = torch.ceil(h / PH).clamp(min=0).long(), torch.ceil(w / PW).clamp(min=0).long()
    return y0, h, x0, w, gh, gw


def sample_points(start: Tensor, length: Tensor, bins: int, grid: Tensor) -> tuple[Tensor, Tensor]:
    """Along one axis: RoIs starting at start (K,) of length (K,), cut into ``bins`` bins of ``grid`` (K,)
    samples each -> coordinates (K, bins, G) and which of them are used (K, 1, G), G = max(grid):
    bin p's sample i sits at start + p * length / bins + (i + 0.5) * (length / bins) / grid."""
    if (start.ndim != 1 or length.shape != start.shape or grid.shape != start.shape or grid.is_floating_point()
            or isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 1):
        raise ValueError(f"expected start, length (K,), grid (K,) int and bins an int >= 1, got {tuple(start.shape)}, "
                         f"{tuple(length.shape)}, {tuple(grid.shape)} {grid.dtype}, bins={bins!r}")
    G = max(int(grid.max()), 1) if len(grid) else 1
    i = torch.arange(G, device=start.device)                            # (G,)
    p = torch.arange(bins, device=start.device)                         # (bins,)
    bin_size = (length / bins)[:, None, None]                           # (K, 1, 1)
    coords = (start[:, None, None] + p[None, :, None] * bin_size
              + (i[None, None, :] + 0.5) * bin_size / grid.clamp(min=1)[:, None, None])   # (K, bins, G)
    return coords, (i[None, :] < grid[:, None])[:, None, :]


def roi_align_points(features: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
                     spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = True) -> Tensor:
    """RoIAlign (Mask R-CNN Sec. 3) point by point, as Fig. 3 draws it: features (N, C, H, W), boxes (K, 5) rois
    or a list of (K_i, 4) xyxy in image pixels -> (K, C, PH, PW), each bin the mean of the bilinear
    ``sample_points`` inside it. Clear, memory-hungry; ``roi_align`` computes the same as two small matrix products.

    Box in map coordinates: x0' = x0 * spatial_scale - 0.5 (aligned) or x0 * spatial_scale; ``sampling_ratio``
    samples per bin side, or ceil(w / PW) when sampling_ratio <= 0 (adaptive, so it varies between boxes).
    """
    if isinstance(features, Tensor) and features.dtype in REDUCED:
        return roi_align_points(features.float(), boxes, output_size, spatial_scale, sampling_ratio,
                                aligned).to(features.dtype)
    rois = as_rois(boxes, features)                                     # (K, 5)
    PH, PW = _pair(output_size)
    K = len(rois)
    if K == 0:                                                          # still part of the graph: zero gradient
        return features.new_zeros(0, features.shape[1], PH, PW) + features[:0].sum()
    y0, h, x0, w, gh, gw = _box_and_grid(rois, PH, PW, spatial_scale, sampling_ratio, aligned)
    ys, used_y = sample_points(y0, h, PH, gh)                            # (K, PH, Gh), (K, 1, Gh)
    xs, used_x = sample_points(x0, w, PW, gw)                            # (K, PW, Gw), (K, 1, Gw)
    Gh, Gw = ys.shape[2], xs.shape[2]
    Y = ys[:, :, :, None, None].expand(K, PH, Gh, PW, Gw).reshape(K, -1)  # (K, PH * Gh * PW * Gw): every point
    X = xs[:, None, None, :, :].expand(K, PH, Gh, PW, Gw).reshape(K, -1)
    samples = bilinear(features, rois[:, 0].long(), Y, X).view(K, -1, PH, Gh, PW, Gw)
    used = used_y[:, :, None, :, None, None] & used_x[:, :, None, None, None, :]   # (K, 1, 1, Gh, 1, Gw)
    count = (gh * gw).clamp(min=1).to(features.dtype)[:, None, None, None]  # (K, 1, 1, 1) points per bin
    return (samples * used).sum((3, 5)) / count                          # (K, C, PH, PW)


def interpolation_matrix(coords: Tensor, used: Tensor, size: int) -> Tensor:
    """Along one axis: sample coordinates (K, P, G) (``used`` (K, 1, G) marks the real ones) on a map of ``size``
    cells -> (K, P, size), row p = the mean over bin p's samples of their bilinear weights on the cells: a sample
    at c gets 1 - (c - floor c) on cell floor c and c - floor c on the next; 0 when c < -1 or c > size, clamped
    into the map within one cell of it (as ``bilinear``)."""
    if (coords.ndim != 3 or used.shape != (len(coords), 1, coords.shape[2]) or used.dtype != torch.bool
            or isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1):
        raise ValueError(f"expected coords (K, P, G), used (K, 1, G) bool and size an int >= 1, got "
                         f"{tuple(coords.shape)}, {tuple(used.shape)} {used.dtype}, size={size!r}")
    inside = (coords >= -1) & (coords <= size) & used                   # (K, P, G)
    c = coords.clamp(min=0)
    c0 = c.floor().long()
    last = c0 >= size - 1                                               # no next cell: all weight on the last one
    c0 = c0.clamp(max=size - 1)
    c1 = (c0 + 1).clamp(max=size - 1)
    frac = torch.where(last, 0.0, c - c0)                               # (K, P, G)
    cells = torch.arange(size, device=coords.device)                    # (size,)
    weights = ((1 - frac)[..., None] * (cells == c0[..., None]) + frac[..., None] * (cells == c1[..., None]))
    weights = weights * inside[..., None]                               # (K, P, G, size)
    return weights.sum(2) / used.sum(2, keepdim=True).clamp(min=1)      # (K, P, size)


def roi_align(features: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = True) -> Tensor:
    """RoIAlign (Mask R-CNN Sec. 3): features (N, C, H, W), boxes (K, 5) rois or a list of (K_i, 4) xyxy in
    image pixels -> (K, C, PH, PW); the same numbers as ``roi_align_points`` (and torchvision.ops.roi_align).

    Bilinear interpolation is separable -- a weight on rows times a weight on columns -- and so is the mean
    over a bin's sample grid. So every RoI's output is a matrix product: out_k = A_y[k] f[b_k] A_x[k]^T, with
    A_y (PH, H) and A_x (PW, W) from ``interpolation_matrix``: row p averages the bilinear weights of bin p's
    samples. The sampling points, their clamping and the zero outside the map are those of ``roi_align_points``.
    """
    if isinstance(features, Tensor) and features.dtype in REDUCED:
        return roi_align(features.float(), boxes, output_size, spatial_scale, sampling_ratio,
                         aligned).to(features.dtype)
    rois = as_rois(boxes, features)                                     # (K, 5)
    PH, PW = _pair(output_size)
    N, C, H, W = features.shape
    if len(rois) == 0:                                                  # still part of the graph: zero gradient
        return features.new_zeros(0, C, PH, PW) + features[:0].sum()
    y0, h, x0, w, gh, gw = _box_and_grid(rois, PH, PW, spatial_scale, sampling_ratio, aligned)
    Ay = interpolation_matrix(*sample_points(y0, h, PH, gh), H).to(features.dtype)   # (K, PH, H)
    Ax = interpolation_matrix(*sample_points(x0, w, PW, gw), W).to(features.dtype)   # (K, PW, W)
    batch = rois[:, 0].long()
    order = batch.argsort(stable=True)                                  # RoIs grouped by image
    parts = []
    for b, k in zip(*torch.unique_consecutive(batch[order], return_counts=True)):  # one image at a time
        k, order = order[:k], order[k:]
        rows = torch.einsum("kph,chw->kcpw", Ay[k], features[b])        # (K_b, C, PH, W)
        parts.append(torch.einsum("kcpw,kqw->kcpq", rows, Ax[k]))       # (K_b, C, PH, PW)
    return torch.cat(parts)[batch.argsort(stable=True).argsort()]       # back to the RoIs' order


def _round_half_away(v: float) -> int:
    """C's round(): halves away from zero (torch.round rounds halves to even)."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def roi_pool(features: Tensor, boxes: Tensor | list[Tensor], output_size: int | tuple[int, int],
             spatial_scale: float = 1.0) -> Tensor:
    """RoIPool (Fast R-CNN Sec. 2.1): features (N, C, H, W), boxes (K, 5) or a list of (K_i, 4) -> (K, C, PH, PW).

    Two quantizations: the box corners are rounded to whole cells, round(x * spatial_scale), and bin p
    covers the cells floor(p * side / PW) .. ceil((p + 1) * side / PW) - 1 of the rounded box (side counts
    both end cells); each bin is the max of its cells, 0 for a bin outside the map. A loop: for comparison
    with ``roi_align``, not for speed.
    """
    rois = as_rois(boxes, features)
    PH, PW = _pair(output_size)
    N, C, H, W = features.shape
    out = features.new_zeros(len(rois), C, PH, PW) + features[:0].sum()  # in the graph even if no bin reads the map
    corners = rois[:, 1:] * spatial_scale                               # (K, 4), in the features' dtype, as the kernel
    for k in range(len(rois)):
        b = int(rois[k, 0])
        cx0, cy0, cx1, cy1 = (_round_half_away(float(v)) for v in corners[k])        # quantization 1
        side_h, side_w = max(cy1 - cy0 + 1, 1), max(cx1 - cx0 + 1, 1)
        bin_h = features.new_tensor(side_h) / PH                        # bin sides, in the features' dtype
        bin_w = features.new_tensor(side_w) / PW
        for p in range(PH):
            r0 = min(max(math.floor(p * bin_h) + cy0, 0), H)                        # quantization 2
            r1 = min(max(math.ceil((p + 1) * bin_h) + cy0, 0), H)
            for q in range(PW):
                c0 = min(max(math.floor(q * bin_w) + cx0, 0), W)
                c1 = min(max(math.ceil((q + 1) * bin_w) + cx0, 0), W)
                if r1 > r0 and c1 > c0:
                    out[k, :, p, q] = features[b, :, r0:r1, c0:c1].amax((1, 2))
    return out
