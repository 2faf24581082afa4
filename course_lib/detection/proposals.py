"""Selective search: class-agnostic object proposals by hierarchical grouping of superpixels.

Uijlings, van de Sande, Gevers & Smeulders 2013, "Selective Search for Object Recognition" (IJCV), the
proposals that R-CNN (Girshick et al. 2014) classifies:

1. over-segment the image into initial regions (Felzenszwalb & Huttenlocher 2004; scikit-image's
   ``felzenszwalb``, whose ``scale`` is the paper's k);
2. for every pair of adjacent regions compute a similarity (Sec. 3.2), the sum (Eq. 6) of
   - colour, Eq. 1: s_colour = sum_k min(c_i^k, c_j^k), the intersection of L1-normalised histograms with
     25 bins per channel (the Fashion scenes have one channel: an intensity histogram);
   - texture, Eq. 3: the same intersection on histograms of Gaussian-derivative (sigma = 1) responses in 8
     orientations with 10 bins each, per channel;
   - size, Eq. 4: s_size = 1 - (size_i + size_j) / size_image, so small regions merge first;
   - fill, Eq. 5: s_fill = 1 - (size(BB_ij) - size_i - size_j) / size_image, so regions that fill each
     other's gaps merge first (BB_ij is the box around both);
3. merge the most similar pair, give the new region the size-weighted average of the two histograms
   (Eq. 2: C_t = (size_i C_i + size_j C_j) / (size_i + size_j)), compute its similarity to its neighbours,
   and repeat until one region covers the image (Sec. 3.1, Algorithm 1). Every region ever formed -- the
   initial ones and each merge -- gives a proposal: its bounding box;
4. diversify (Sec. 3.2): run several strategies -- here several k and two similarity mixes, colour + texture +
   size + fill and texture + size + fill -- and pool their boxes, ranked as in Sec. 3.3: in each hierarchy the
   region covering the image has position 1, the one merged just before it position 2, ..., and the initial
   regions come last; each position is multiplied by a random number in [0, 1) (seeded here), and all boxes
   are sorted by that value. Duplicate boxes are removed, keeping the best-ranked.

Simplification, texture: the paper takes Gaussian derivatives in 8 orientations per channel and histograms
them with 10 bins; it does not say how. Here each orientation theta_k = k * 45 deg gives the half-wave
rectified directional derivative max(0, cos(theta_k) d_x + sin(theta_k) d_y), divided by its maximum over
the image, binned into 10 bins on [0, 1]. (Opposite orientations are the two signs of one derivative.)

``grouping_hierarchy`` returns one hierarchy with its merge history (which pair merged, in which order, at what
similarity), for inspection and tests; ``hierarchical_grouping`` and ``selective_search`` return boxes only.

Boxes are xyxy on the pixel grid, half-open: a region whose pixels span columns j0..j1 and rows i0..i1 has
the box (j0, i0, j1 + 1, i1 + 1), the convention of ``course_lib.data``'s tight boxes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

COLOUR_BINS = 25
ORIENTATIONS, TEXTURE_BINS = 8, 10
STRATEGY_WEIGHTS = {"CTSF": (1.0, 1.0, 1.0, 1.0), "TSF": (0.0, 1.0, 1.0, 1.0)}  # (colour, texture, size, fill)


def _check_image(image: Tensor) -> None:
    if (not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] not in (1, 3) or 0 in image.shape
            or not image.is_floating_point() or not bool(image.isfinite().all())):
        raise ValueError(f"expected image of shape (1 or 3, H, W), H, W >= 1, float in [0, 1], "
                         f"got {getattr(image, 'shape', type(image).__name__)} {getattr(image, 'dtype', '')}")


def initial_regions(image: Tensor, scale: float = 100.0, sigma: float = 0.8, min_size: int = 10) -> Tensor:
    """Felzenszwalb & Huttenlocher's graph-based over-segmentation of image (C, H, W) -> labels (H, W)
    int64 in 0..R-1 (scikit-image's ``felzenszwalb``: larger ``scale`` = k gives larger regions)."""
    _check_image(image)
    try:
        from skimage.segmentation import felzenszwalb
    except ImportError as error:
        raise ImportError("selective search needs scikit-image for its initial regions: "
                          "pip install scikit-image") from error
    C, H, W = image.shape
    pixels = image.detach().cpu().double()
    pixels = pixels[0].numpy() if C == 1 else pixels.permute(1, 2, 0).numpy()   # (H, W) or (H, W, C)
    labels = felzenszwalb(pixels, scale=scale, sigma=sigma, min_size=min_size,
                          channel_axis=None if C == 1 else -1)
    return torch.from_numpy(labels).long().unique(return_inverse=True)[1]       # (H, W), labels 0..R-1


def _gaussian_derivatives(image: Tensor, sigma: float = 1.0) -> tuple[Tensor, Tensor]:
    """d/dx and d/dy of the image (C, H, W) smoothed by a Gaussian of std sigma -> two (C, H, W)."""
    r = math.ceil(3 * sigma)
    t = torch.arange(-r, r + 1, dtype=image.dtype)
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    g = g / g.sum()                                                    # (2r+1,) smoothing
    dg = -t / sigma ** 2 * g                                           # (2r+1,) its derivative
    x = F.pad(image[:, None], (r, r, r, r), mode="replicate")          # (C, 1, H+2r, W+2r)
    d_x = F.conv2d(F.conv2d(x, dg.flip(0).view(1, 1, 1, -1)), g.view(1, 1, -1, 1))  # (C, 1, H, W)
    d_y = F.conv2d(F.conv2d(x, g.view(1, 1, 1, -1)), dg.flip(0).view(1, 1, -1, 1))
    return d_x[:, 0], d_y[:, 0]


def region_features(image: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Per-region statistics of image (C, H, W) over labels (H, W), each of 0..R-1 used -> dict of
    size (R,) pixels, box (R, 4) xyxy, colour (R, 25 C) and texture (R, 80 C), both L1-normalised."""
    _check_image(image)
    C, H, W = image.shape
    if not isinstance(labels, Tensor) or tuple(labels.shape) != (H, W) or labels.is_floating_point():
        raise ValueError(f"expected labels of shape ({H}, {W}) int, got {getattr(labels, 'shape', labels)}")
    image, labels = image.detach().cpu().float(), labels.cpu().long()
    R = int(labels.max()) + 1
    flat = labels.flatten()                                            # (H*W,)
    size = torch.bincount(flat, minlength=R).float()                   # (R,)
    if int(labels.min()) < 0 or bool((size == 0).any()):
        raise ValueError("expected labels (H, W) using every value 0..R-1 (see initial_regions)")

    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    box = torch.stack([
        torch.full((R,), W).scatter_reduce(0, flat, xs.flatten(), "amin"),
        torch.full((R,), H).scatter_reduce(0, flat, ys.flatten(), "amin"),
        torch.zeros(R, dtype=torch.long).scatter_reduce(0, flat, xs.flatten() + 1, "amax"),
        torch.zeros(R, dtype=torch.long).scatter_reduce(0, flat, ys.flatten() + 1, "amax"),
    ], dim=1).float()                                                  # (R, 4)

    def histograms(bins: Tensor, n_bins: int) -> Tensor:
        """bins (F, H, W) bin indices of F features per pixel -> (R, F * n_bins) L1-normalised."""
        Fn = len(bins)
        index = flat[None] * (Fn * n_bins) + torch.arange(Fn)[:, None] * n_bins + bins.flatten(1)  # (F, H*W)
        counts = torch.bincount(index.flatten(), minlength=R * Fn * n_bins).view(R, Fn * n_bins).float()
        return counts / counts.sum(dim=1, keepdim=True)

    colour = (image.clamp(0, 1) * COLOUR_BINS).long().clamp(max=COLOUR_BINS - 1)        # (C, H, W)
    d_x, d_y = _gaussian_derivatives(image)                                              # (C, H, W) each
    theta = torch.arange(ORIENTATIONS) * (2 * math.pi / ORIENTATIONS)                    # (8,)
    responses = (theta.cos()[:, None, None, None] * d_x + theta.sin()[:, None, None, None] * d_y).clamp(min=0)
    responses = responses / responses.amax(dim=(2, 3), keepdim=True).clamp(min=1e-12)    # (8, C, H, W) in [0, 1]
    texture = (responses * TEXTURE_BINS).long().clamp(max=TEXTURE_BINS - 1).flatten(0, 1)  # (8 C, H, W)
    return {"size": size, "box": box, "colour": histograms(colour, COLOUR_BINS),
            "texture": histograms(texture, TEXTURE_BINS)}


def adjacent_pairs(labels: Tensor) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of regions of labels (H, W) that touch (4-neighbourhood), sorted."""
    if not isinstance(labels, Tensor) or labels.ndim != 2 or labels.is_floating_point():
        raise ValueError(f"expected labels of shape (H, W) int, got {getattr(labels, 'shape', labels)}")
    horizontal = torch.stack([labels[:, :-1].flatten(), labels[:, 1:].flatten()], dim=1)  # (H(W-1), 2)
    vertical = torch.stack([labels[:-1].flatten(), labels[1:].flatten()], dim=1)          # ((H-1)W, 2)
    pairs = torch.cat([horizontal, vertical])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]].sort(dim=1).values.unique(dim=0)            # (E, 2)
    return [tuple(p) for p in pairs.tolist()]


def similarity(regions: dict[str, Tensor], i: int, js: list[int], image_size: int,
               weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """Sec. 3.2, Eq. 1, 3, 4, 5 and their weighted sum, Eq. 6: similarity of region i to each of js -> (len(js),)."""
    j = torch.tensor(js, dtype=torch.long)
    a_colour, a_texture, a_size, a_fill = weights
    s_colour = torch.minimum(regions["colour"][i], regions["colour"][j]).sum(dim=1)      # Eq. 1
    s_texture = torch.minimum(regions["texture"][i], regions["texture"][j]).sum(dim=1)   # Eq. 3
    both = regions["size"][i] + regions["size"][j]
    s_size = 1 - both / image_size                                                       # Eq. 4
    bb = torch.cat([torch.minimum(regions["box"][i, :2], regions["box"][j, :2]),
                    torch.maximum(regions["box"][i, 2:], regions["box"][j, 2:])], dim=1)  # (len(js), 4)
    s_fill = 1 - ((bb[:, 2] - bb[:, 0]) * (bb[:, 3] - bb[:, 1]) - both) / image_size     # Eq. 5
    return a_colour * s_colour + a_texture * s_texture + a_size * s_size + a_fill * s_fill


def merge_regions(regions: dict[str, Tensor], i: int, j: int, t: int) -> None:
    """Write region t = region i + region j into row t of every tensor of ``regions`` (in place): sizes add,
    boxes join, histograms are size-weighted averages (Eq. 2) -- exactly the histograms of the union's pixels."""
    n_i, n_j = regions["size"][i], regions["size"][j]
    regions["size"][t] = n_i + n_j
    regions["box"][t] = torch.cat([torch.minimum(regions["box"][i, :2], regions["box"][j, :2]),
                                   torch.maximum(regions["box"][i, 2:], regions["box"][j, 2:])])
    for key in ("colour", "texture"):
        regions[key][t] = (n_i * regions[key][i] + n_j * regions[key][j]) / (n_i + n_j)


def grouping_hierarchy(image: Tensor, labels: Tensor,
                       weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> dict:
    """Sec. 3.1, Algorithm 1, with its history: merge the most similar adjacent pair until one region is left.

    image (C, H, W), labels (H, W) in 0..R-1 (the initial regions, region r = the pixels labelled r) ->
    a dict of

    - ``box`` (2R - 1, 4) xyxy and ``size`` (2R - 1,) pixels of every region in order of creation: the R
      initial regions, then one per merge (the last covers the whole image);
    - ``merges``: R - 1 tuples (i, j, t, s), in order: step t - R merged regions i < j, adjacent and alive
      (neither merged before), into the new region t; s is their similarity (Eq. 6 with ``weights``), the
      largest among the adjacent pairs alive at that step (the first such pair in the order of creation of
      the pairs when several tie exactly).

    ``hierarchical_grouping`` returns ``box``; this exposes the merge history for inspection and tests.
    """
    C, H, W = image.shape
    initial = region_features(image, labels)
    R = len(initial["size"])
    regions = {k: torch.cat([v, v.new_zeros(R - 1, *v.shape[1:])]) for k, v in initial.items()}  # room for 2R-1
    neighbours: dict[int, set[int]] = {r: set() for r in range(R)}
    for i, j in adjacent_pairs(labels):
        neighbours[i].add(j)
        neighbours[j].add(i)
    S = {}                                                             # (i, j) with i < j -> similarity
    for i in range(R):
        later = sorted(j for j in neighbours[i] if j > i)
        if later:
            S.update(zip(((i, j) for j in later), similarity(regions, i, later, H * W, weights).tolist()))
    merges = []
    for t in range(R, 2 * R - 1):
        i, j = max(S, key=S.get)                                       # the most similar pair
        merges.append((i, j, t, S[(i, j)]))
        merge_regions(regions, i, j, t)
        touching = (neighbours.pop(i) | neighbours.pop(j)) - {i, j}   # t's neighbours
        for k in touching:                                             # i and j are gone: so are their pairs
            S.pop((min(i, k), max(i, k)), None)
            S.pop((min(j, k), max(j, k)), None)
            neighbours[k] -= {i, j}
            neighbours[k].add(t)
        S.pop((i, j), None)
        neighbours[t] = touching
        if touching:
            ks = sorted(touching)
            S.update(zip(((k, t) for k in ks), similarity(regions, t, ks, H * W, weights).tolist()))
    return {"box": regions["box"], "size": regions["size"], "merges": merges}


def hierarchical_grouping(image: Tensor, labels: Tensor,
                          weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> Tensor:
    """Sec. 3.1, Algorithm 1: merge the most similar adjacent pair until one region is left.
    image (C, H, W), labels (H, W) in 0..R-1 -> boxes (2R - 1, 4) xyxy of every region in order of
    creation: the R initial regions, then one per merge (the last covers the whole image).
    (``grouping_hierarchy`` gives the same boxes with the merge history.)"""
    return grouping_hierarchy(image, labels, weights)["box"]


def selective_search(image: Tensor, scale: float | tuple[float, ...] = (50.0, 100.0, 150.0, 300.0),
                     sigma: float = 0.8, min_size: int = 10,
                     strategies: tuple[str, ...] = ("CTSF", "TSF"), seed: int = 0) -> Tensor:
    """Selective search proposals for image (1 or 3, H, W) float in [0, 1] -> boxes (K, 4) float xyxy.

    One hierarchy per felzenszwalb k in ``scale`` and per similarity mix in ``strategies`` (keys of
    ``STRATEGY_WEIGHTS``: "CTSF" = colour + texture + size + fill, "TSF" = texture + size + fill); the boxes
    of all hierarchies are ranked as in Sec. 3.3 (position in its hierarchy, 1 = whole image, times a random
    number from a generator seeded with ``seed``) and duplicates are removed, keeping the best-ranked.
    The same image and arguments always give the same boxes.
    """
    _check_image(image)
    scales = (scale,) if isinstance(scale, (int, float)) else tuple(scale)
    unknown = [s for s in strategies if s not in STRATEGY_WEIGHTS]
    if not scales or not strategies or unknown:
        raise ValueError(f"expected at least one scale and strategies among {tuple(STRATEGY_WEIGHTS)}, "
                         f"got scale={scale}, strategies={strategies}")
    g = torch.Generator().manual_seed(seed)
    boxes, rank = [], []
    for k in scales:
        labels = initial_regions(image, scale=k, sigma=sigma, min_size=min_size)    # (H, W)
        for name in strategies:
            hierarchy = hierarchical_grouping(image, labels, STRATEGY_WEIGHTS[name])   # (2R-1, 4)
            position = torch.arange(len(hierarchy), 0, -1, dtype=torch.float)          # last merge -> 1
            boxes.append(hierarchy)
            rank.append(position * torch.rand(len(hierarchy), generator=g))
    boxes, rank = torch.cat(boxes), torch.cat(rank)                   # (N, 4), (N,)
    boxes = boxes[rank.argsort(stable=True)]                          # best-ranked first
    _, inverse = boxes.unique(dim=0, return_inverse=True)             # (N,) id of each distinct box
    first = torch.full((int(inverse.max()) + 1,), len(boxes)).scatter_reduce(
        0, inverse, torch.arange(len(boxes)), "amin")                 # first occurrence of each distinct box
    return boxes[first.sort().values]
