"""R-CNN pieces: warping, proposal labels, the loss, detection output; selective search's hierarchical grouping
(merge history checked by brute force) and its recall per proposal against blind box layouts."""

import inspect

import pytest
import torch
from tolerance import scaled_atol

from course_lib.data import DataNotFoundError, ImageDataset, fashion_mnist, fashion_scenes
from course_lib.detection import box_iou, selective_search
from course_lib.detection.boxes import decode
from course_lib.detection.proposals import (
    STRATEGY_WEIGHTS,
    grouping_hierarchy,
    hierarchical_grouping,
    initial_regions,
    region_features,
)
from course_lib.detection.rcnn import RCNN, detect, label_proposals, rcnn_loss, train_step, warp
from synthetic import blob_source


def test_warp_of_the_whole_image_is_the_identity():
    image = torch.rand(1, 28, 28)
    out = warp(image, torch.tensor([[0.0, 0.0, 28.0, 28.0]]), size=28, context=0.0)
    assert torch.allclose(out[0], image, atol=1e-5)


def test_warp_crops_and_stretches():
    image = torch.zeros(1, 64, 64)
    image[:, 10:20, 30:50] = 1.0                     # a 10 x 20 bright rectangle
    out = warp(image, torch.tensor([[30.0, 10.0, 50.0, 20.0]]), size=28, context=0.0)
    assert out.shape == (1, 1, 28, 28)
    assert out[0, 0, 2:-2, 2:-2].min() > 0.99       # the crop is filled by the rectangle (warped to square)
    with pytest.raises(ValueError, match=r"\(K, 4\)"):
        warp(image, torch.zeros(3, 5))


def test_label_proposals():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0]])
    proposals = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 12.0], [20.0, 20.0, 30.0, 30.0],
                              [50.0, 50.0, 60.0, 60.0]])
    labels, deltas, reg = label_proposals(proposals, gt, torch.tensor([3, 7]))
    assert labels.tolist() == [3, 3, 0, 0]          # IoU 1, 0.83, 0.25, 0
    assert reg.tolist() == [True, True, False, False]
    assert torch.allclose(decode(proposals[:2], deltas[:2]), gt[[0, 0]], atol=1e-4)


def test_loss_goes_down_and_detect_format():
    torch.manual_seed(0)
    model = RCNN()
    crops, labels = torch.rand(32, 1, 28, 28), torch.randint(0, 11, (32,))
    deltas, reg = torch.randn(32, 4) * 0.1, torch.rand(32) > 0.5
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = [float(train_step(model, opt, crops, labels, deltas, reg)["total"]) for _ in range(12)]
    assert losses[-1] < losses[0] - 0.2
    logits, pred = model(crops)
    assert logits.shape == (32, 11) and pred.shape == (32, 10, 4)
    assert set(rcnn_loss(logits, pred, labels, deltas, reg)) == {"cls", "box", "total"}
    image = torch.rand(1, 64, 64)
    out = detect(model, image, proposals=torch.tensor([[5.0, 5.0, 30.0, 30.0], [30.0, 30.0, 60.0, 50.0]]))
    assert set(out) == {"boxes", "scores", "labels"}
    assert out["boxes"].shape[1] == 4 and len(out["scores"]) == len(out["labels"]) <= 20
    assert ((out["labels"] >= 1) & (out["labels"] <= 10)).all()
    assert (out["boxes"][:, :2] >= 0).all() and (out["boxes"][:, 2:] <= 64).all()


# ------------------------------------------------------------------------------ selective search: the hierarchy
# Uijlings et al. 2013, Sec. 3.1-3.2: from R initial regions, hierarchical grouping merges the most similar pair
# of adjacent regions R - 1 times; every region formed gives a proposal, its bounding box.


def noise_source(n: int = 40, seed: int = 0) -> ImageDataset:
    """Fashion-MNIST stand-in: noise items (n, 1, 28, 28), so these tests need no data and see textured regions."""
    g = torch.Generator().manual_seed(seed)
    return ImageDataset(torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 10)


@pytest.fixture(scope="module")
def noise_scenes():
    return fashion_scenes(3, seed=0, source=noise_source())


SCALES = inspect.signature(selective_search).parameters["scale"].default     # felzenszwalb k of the default run


def region_masks(labels: torch.Tensor, merges: list) -> torch.Tensor:
    """(2R - 1, H, W) bool: the pixels of every region of a hierarchy, from the initial labels and the merges."""
    masks = list(labels == torch.arange(int(labels.max()) + 1)[:, None, None])
    for i, j, _, _ in merges:
        masks.append(masks[i] | masks[j])
    return torch.stack(masks)


def pixel_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(K, 4) half-open xyxy boxes of the pixels of masks (K, H, W), each non-empty."""
    cols, rows = masks.any(1), masks.any(2)                          # (K, W), (K, H)
    first = lambda m: m.float().argmax(1)                            # noqa: E731
    last = lambda m: m.shape[1] - m.flip(1).float().argmax(1)        # noqa: E731
    return torch.stack([first(cols), first(rows), last(cols), last(rows)], 1).float()


def touch(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Do the pixel sets a, b (H, W) share a 4-neighbourhood edge?"""
    return bool(((a[:, :-1] & b[:, 1:]) | (a[:, 1:] & b[:, :-1])).any() or ((a[:-1] & b[1:]) | (a[1:] & b[:-1])).any())


def test_grouping_merges_r_minus_1_adjacent_live_pairs_into_their_union(noise_scenes):
    for image in noise_scenes.images:
        _, H, W = image.shape
        for k in SCALES:
            labels = initial_regions(image, scale=k)
            R = int(labels.max()) + 1
            assert R >= 5, "the test needs a few regions to group"
            for name, weights in STRATEGY_WEIGHTS.items():
                h = grouping_hierarchy(image, labels, weights)
                merges, box = h["merges"], h["box"]
                assert len(merges) == R - 1 and box.shape == (2 * R - 1, 4) and h["size"].shape == (2 * R - 1,)
                assert [t for _, _, t, _ in merges] == list(range(R, 2 * R - 1)), (k, name)
                assert all(i < j < t for i, j, t, _ in merges), (k, name)          # both exist when t is made
                children = sorted(c for i, j, _, _ in merges for c in (i, j))
                assert children == list(range(2 * R - 2)), (k, name)   # each region but the last merged exactly once
                masks = region_masks(labels, merges)
                assert all(touch(masks[i], masks[j]) for i, j, _, _ in merges), (k, name)   # only neighbours merge
                assert torch.equal(box, pixel_boxes(masks)), (k, name)         # every box is its pixels' box
                assert torch.equal(h["size"], masks.sum((1, 2)).float()), (k, name)
                i, j = (torch.tensor([m[c] for m in merges]) for c in (0, 1))
                union = torch.cat([torch.minimum(box[i, :2], box[j, :2]), torch.maximum(box[i, 2:], box[j, 2:])], 1)
                assert torch.equal(box[R:], union), (k, name)                  # a merge's box joins its children's
                assert box[-1].tolist() == [0, 0, W, H] and h["size"][-1] == H * W
                assert torch.equal(hierarchical_grouping(image, labels, weights), box)


def brute_force_similarities(image: torch.Tensor, part: torch.Tensor, weights) -> dict:
    """Eq. 1-6 for every adjacent pair of the partition part (H, W) in 0..K-1, from its pixels, in float64:
    {(a, b): similarity} with a < b. The histograms come from ``region_features`` of the current partition
    (counted from the pixels), never from the merged rows that the grouping keeps (Eq. 2)."""
    H, W = part.shape
    f = {key: v.double() for key, v in region_features(image, part).items()}
    pairs = torch.cat([torch.stack([part[:, :-1].flatten(), part[:, 1:].flatten()], 1),
                       torch.stack([part[:-1].flatten(), part[1:].flatten()], 1)])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]].sort(1).values.unique(dim=0)
    a, b = pairs[:, 0], pairs[:, 1]
    w_colour, w_texture, w_size, w_fill = weights
    both = f["size"][a] + f["size"][b]
    lo, hi = torch.minimum(f["box"][a, :2], f["box"][b, :2]), torch.maximum(f["box"][a, 2:], f["box"][b, 2:])
    s = (w_colour * torch.minimum(f["colour"][a], f["colour"][b]).sum(1)
         + w_texture * torch.minimum(f["texture"][a], f["texture"][b]).sum(1)
         + w_size * (1 - both / (H * W)) + w_fill * (1 - ((hi - lo).prod(1) - both) / (H * W)))
    return dict(zip(map(tuple, pairs.tolist()), s.tolist()))


def colour_image() -> torch.Tensor:
    """(3, 48, 48): three overlapping coloured rectangles on a noisy background."""
    g = torch.Generator().manual_seed(1)
    image = 0.3 * torch.rand(3, 48, 48, generator=g)
    for (y0, x0, y1, x1), rgb in (((5, 5, 25, 30), (0.9, 0.1, 0.1)), ((15, 20, 40, 44), (0.1, 0.8, 0.2)),
                                  ((30, 2, 46, 18), (0.2, 0.3, 0.9))):
        image[:, y0:y1, x0:x1] = torch.tensor(rgb)[:, None, None] + 0.1 * torch.rand(3, y1 - y0, x1 - x0, generator=g)
    return image.clamp(0, 1)


def test_each_merge_is_the_most_similar_adjacent_pair_by_brute_force(noise_scenes, one_thread):
    """Replay every hierarchy: at each step relabel the image into the regions alive, recompute the similarity
    of every adjacent pair from the pixels, and check the grouping merged a most similar pair (up to rounding)
    and recorded its similarity."""
    cases = [(image, k) for image in noise_scenes.images[:2] for k in (SCALES[0], SCALES[-1])]
    cases.append((colour_image(), 50.0))
    for image, k in cases:
        labels = initial_regions(image, scale=k)
        R = int(labels.max()) + 1
        for name, weights in STRATEGY_WEIGHTS.items():
            # the similarities are sums of 4 weighted terms in [0, 1]: rounding is relative to their total weight
            atol = scaled_atol(sum(weights), torch.float32)
            alive = {r: [r] for r in range(R)}                           # region -> its initial regions
            for step, (i, j, t, s) in enumerate(grouping_hierarchy(image, labels, weights)["merges"]):
                ids = sorted(alive)                                      # dense ids 0..K-1 of the regions alive
                dense = torch.empty(2 * R - 1, dtype=torch.long)
                for d, r in enumerate(ids):
                    dense[alive[r]] = d
                S = brute_force_similarities(image, dense[labels], weights)
                pair = (ids.index(i), ids.index(j))
                assert pair in S, f"{name} k={k} step {step}: merged {i}, {j}, which do not touch"
                best = max(S.values())
                assert S[pair] >= best - atol, f"{name} k={k} step {step}: merged a pair of similarity " \
                                               f"{S[pair]:.6f} while the best adjacent pair has {best:.6f}"
                assert abs(S[pair] - s) <= atol, (name, k, step, S[pair], s)
                alive[t] = alive.pop(i) + alive.pop(j)
            assert list(alive) == [2 * R - 2]


def test_selective_search_pools_exactly_the_boxes_of_its_hierarchies(noise_scenes):
    image = noise_scenes.images[0]
    boxes = selective_search(image)
    pooled = torch.cat([grouping_hierarchy(image, initial_regions(image, scale=k), weights)["box"]
                        for k in SCALES for weights in STRATEGY_WEIGHTS.values()])
    assert len(boxes) == len(boxes.unique(dim=0))
    assert torch.equal(boxes.unique(dim=0), pooled.unique(dim=0))


# ---------------------------------------------------------------------------- selective search: recall per proposal


def lattice(step: int, size: int = 64) -> torch.Tensor:
    """Every box whose corners lie on a step-px lattice of the size x size canvas -> (K, 4) xyxy."""
    c = torch.arange(0, size + 1, step).float()
    lo, hi = torch.triu_indices(len(c), len(c), offset=1)           # all pairs lo < hi of lattice lines
    x0, x1 = c[lo].repeat_interleave(len(lo)), c[hi].repeat_interleave(len(lo))
    y0, y1 = c[lo].repeat(len(lo)), c[hi].repeat(len(lo))
    return torch.stack([x0, y0, x1, y1], 1)


def recall_at(proposals: list[torch.Tensor], targets: list[dict], iou_threshold: float = 0.5) -> float:
    """Fraction of ground-truth boxes with a proposal of IoU >= iou_threshold in their image."""
    hits = [box_iou(t["boxes"], p).max(1).values >= iou_threshold
            for p, t in zip(proposals, targets) if len(t["boxes"])]
    return float(torch.cat(hits).float().mean())


N_PROPOSALS = 50


@pytest.mark.parametrize("source", ["fashion", "blobs"])
def test_selective_search_recall_at_50_proposals_beats_grids_and_random_boxes(source, one_thread):
    """recall@0.5 of the first 50 proposals (selective search ranks them) on the same scenes as 50 boxes drawn
    from the 8-px lattice (which, all 1296 of them, reach recall ~0.9), the whole 16-px lattice (100 boxes) and
    50 random boxes. Grouping finds the objects' own regions: with so few boxes, no blind layout does."""
    if source == "fashion":
        try:
            fashion_mnist("test")
        except DataNotFoundError:
            pytest.skip("real Fashion-MNIST absent")
        scenes = fashion_scenes(16, seed=0, split="test")
    else:
        scenes = fashion_scenes(16, seed=0, source=blob_source())
    N, g = N_PROPOSALS, torch.Generator().manual_seed(0)
    grid8, grid16 = lattice(8), lattice(16)
    assert len(grid8) == 1296 and len(grid16) == 100
    proposals = [selective_search(image)[:N] for image in scenes.images]
    xy = [torch.rand(N, 2, 2, generator=g) * 64 for _ in scenes.images]
    recall = {
        "selective search": recall_at(proposals, scenes.targets),
        "50 of the 8-px lattice": recall_at([grid8[torch.randperm(len(grid8), generator=g)[:N]] for _ in scenes.images],
                                            scenes.targets),
        "16-px lattice (100)": recall_at([grid16] * len(scenes), scenes.targets),
        "50 random boxes": recall_at([torch.cat([p.min(1).values, p.max(1).values + 1], 1).clamp(max=64) for p in xy],
                                     scenes.targets),
    }
    print(source, {k: round(v, 3) for k, v in recall.items()})
    baseline = max(v for k, v in recall.items() if k != "selective search")
    assert recall["selective search"] >= 0.85, recall
    assert recall["selective search"] >= baseline + 0.3, recall
