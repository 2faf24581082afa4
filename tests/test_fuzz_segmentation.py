"""Property-based fuzzing of chapter 05's kernels (Mask R-CNN): RoIAlign / RoIPool and their parts, mask targets,
the mask loss, pasting, the RoI sampler, the detection post-processing, flips, mask IoU and mask AP (hypothesis).

As tests/test_fuzz.py (whose helpers this file uses): for random shapes (empty ones included), dtypes, memory
layouts and degenerate or out-of-range inputs each kernel gives its oracle's answer -- torchvision.ops.roi_align /
roi_pool, torchvision's maskrcnn_loss and RoIHeads.postprocess_detections, torchvision.transforms.v2, pycocotools'
mask IoU and COCOeval, or a plain loop written out here -- or raises a ValueError that says what it expected.
torchvision's CPU RoIAlign crashes the process on an empty (H = 0) map, so the oracle never sees one.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.ops as tv_ops
from fuzz_stats import counted, record
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_fuzz import (
    FLOAT_DTYPES,
    FUZZ,
    as_layout,
    assert_oracle_or_value_error,
    assert_same,
    assert_value_error,
    fuzz,
    layouts,
    wrong_shape,
)
from torchvision.models.detection.roi_heads import maskrcnn_loss, project_masks_on_boxes

from course_lib.maskrcnn import model as mr
from course_lib.maskrcnn.train import hflip
from course_lib.maskrcnn.roi import (
    as_rois,
    bilinear,
    interpolation_matrix,
    roi_align,
    roi_align_points,
    roi_pool,
    sample_points,
)
from course_lib.maskrcnn.masks import (
    binarize,
    mask_average_precision,
    mask_iou,
    mask_precision_recall,
    match_by_iou,
)

REDUCED = [torch.float16, torch.bfloat16]
NOT_FLOAT = [torch.int64, torch.uint8, torch.bool]
BATCH_ERROR = r"expected .*batch ind.*\[0, N\)"
FEATURES_ERROR = r"expected features .*\(N, C, H, W\) float"


def randn(shape, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def wide(dtype: torch.dtype) -> torch.dtype:
    """The dtype a kernel computes in: float64 stays, everything else (float16 / bfloat16 included) is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


# ------------------------------------------------------------------------------------------ RoI inputs

# corners on a quarter-cell grid (ties with cell centres and borders) or anywhere, from well outside the map
CORNER = st.one_of(st.integers(-8, 40).map(lambda v: v / 4), st.floats(-4, 12, allow_subnormal=False, width=32))


@st.composite
def roi_case(draw, max_k: int = 6):
    """features (N, C, H, W) float64 (H, W >= 1), rois (K, 5) float64 in image pixels (corners from a few cells
    outside the map to well inside it; zero-size and inverted boxes; integer or fractional batch indices in
    [0, N)), spatial_scale, output_size, sampling_ratio, aligned."""
    N, C = draw(st.integers(1, 3)), draw(st.sampled_from([0, 1, 3]))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    scale = draw(st.sampled_from([1.0, 0.5, 0.25]))
    K = draw(st.integers(0, max_k))
    corners = np.array(draw(st.lists(st.tuples(CORNER, CORNER, CORNER, CORNER), min_size=K, max_size=K)),
                       dtype=np.float64).reshape(K, 4) / scale
    shape = draw(st.sampled_from(["sorted", "raw", "zero-size"]))
    if shape == "sorted":
        low, high = corners[:, :2], corners[:, 2:]
        corners = np.concatenate([np.minimum(low, high), np.maximum(low, high)], 1)
    elif shape == "zero-size":
        corners[:, 2:] = corners[:, :2]
    index = draw(st.lists(st.sampled_from([float(i) for i in range(N)] + [0.5]), min_size=K, max_size=K))
    rois = torch.cat([torch.tensor(index, dtype=torch.float64)[:, None], torch.from_numpy(corners)], 1)
    output_size = draw(st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4))))
    return (randn((N, C, H, W), draw(st.integers(0, 2**16))), rois, scale, output_size,
            draw(st.sampled_from([-1, 0, 1, 2, 3])), draw(st.booleans()))


@st.composite
def out_of_range(draw, rois: torch.Tensor, N: int) -> torch.Tensor:
    """rois (K >= 1, 5) with one batch index out of [0, N) (the oracle would read out of bounds)."""
    rois = rois.clone()
    rois[draw(st.integers(0, len(rois) - 1)), 0] = draw(st.sampled_from([-1.0, float(N), N + 2.0, math.nan]))
    return rois


def as_list(rois: torch.Tensor, N: int) -> list[torch.Tensor]:
    """(K, 5) rois with integer batch indices sorted -> the list form, one (K_i, 4) per image (the last ones
    may be missing)."""
    last = int(rois[:, 0].max()) + 1 if len(rois) else 0
    return [rois[rois[:, 0] == i, 1:] for i in range(last)]


def tv_roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned):
    """torchvision's RoIAlign in the dtype ours computes in (float32 for float16 / bfloat16 features, which
    torchvision's CPU kernel has no bfloat16 version for), cast back to the features' dtype.

    An inverted box (x1 < x0 with aligned=True) with adaptive sampling has ceil(side / bins) <= 0 samples per
    bin: torchvision's loops then run no sample and its output is 0 -- but where the other side has samples the
    kernel sizes a buffer by the negative product and throws, so those rows are zeroed here instead of asked."""
    dtype = wide(features.dtype)
    features, rois = features.to(dtype), rois.to(dtype)
    PH, PW = (output_size, output_size) if isinstance(output_size, int) else output_size
    out = torch.zeros(len(rois), features.shape[1], PH, PW, dtype=dtype)
    ask = torch.ones(len(rois), dtype=torch.bool)
    if aligned and sampling_ratio <= 0:
        corners = rois[:, 1:] * spatial_scale - 0.5
        ask = ((corners[:, 3] - corners[:, 1]) / PH).ceil().gt(0) & ((corners[:, 2] - corners[:, 0]) / PW).ceil().gt(0)
    out[ask] = tv_ops.roi_align(features, rois[ask], output_size, spatial_scale, sampling_ratio, aligned)
    return out.to(features.dtype if features.dtype != dtype else dtype)


@counted()
@fuzz(70)
@given(case=roi_case(), dtype=st.sampled_from(FLOAT_DTYPES + REDUCED), layout=layouts, data=st.data(),
       box_dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16]), form=st.sampled_from(["rois", "list"]),
       bad=st.sampled_from(NOT_FLOAT))
def test_roi_align_matches_torchvision(case, dtype, layout, data, box_dtype, form, bad):
    features, rois, scale, output_size, sampling_ratio, aligned = case
    N = len(features)
    features = as_layout(features.to(dtype), layout)
    outside = data.draw(out_of_range(rois, N)) if len(rois) else None
    for kernel in (roi_align, roi_align_points):
        assert_value_error(kernel, features.to(bad), rois, output_size, match=FEATURES_ERROR)
        if outside is not None:                                        # the oracle would read out of bounds
            assert_value_error(kernel, features, outside.to(box_dtype), output_size, scale, sampling_ratio, aligned,
                               match=BATCH_ERROR)
        record("oracle", kernel.__name__)
        rois_ = rois.clone()                                           # (K, 5): fractional indices truncate
        if form == "list":                                             # the list form has whole indices only
            rois_[:, 0] = rois_[:, 0].floor()
            rois_ = rois_[rois_[:, 0].argsort(stable=True)]
        boxes_ = as_list(rois_, N) if form == "list" else as_layout(rois_, layout)
        boxes_ = [b.to(box_dtype) for b in boxes_] if form == "list" else boxes_.to(box_dtype)
        got = kernel(features, boxes_, output_size, scale, sampling_ratio, aligned)
        assert got.dtype == features.dtype                             # and the tolerance is that of the features
        assert_same(got, tv_roi_align(features, rois_.to(box_dtype), output_size, scale, sampling_ratio, aligned))


@counted(rejects=False)
@fuzz(40)
@given(case=roi_case(max_k=4), layout=layouts)
def test_roi_align_gradient_matches_torchvision(case, layout):
    features, rois, scale, output_size, sampling_ratio, aligned = case
    features = as_layout(features, layout).requires_grad_(True)
    theirs = tv_roi_align(features, rois, output_size, scale, sampling_ratio, aligned)
    upstream = randn(theirs.shape, 1)
    grad_theirs, = torch.autograd.grad((theirs * upstream).sum(), features)
    for kernel in (roi_align, roi_align_points):
        record("oracle", kernel.__name__)
        grad, = torch.autograd.grad((kernel(features, rois, output_size, scale, sampling_ratio, aligned)
                                     * upstream).sum(), features)
        assert_same(grad, grad_theirs)


@counted()
@fuzz(50)
@given(case=roi_case(), dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16]), layout=layouts, data=st.data(),
       form=st.sampled_from(["rois", "list"]), bad=st.sampled_from(NOT_FLOAT))
def test_roi_pool_matches_torchvision(case, dtype, layout, data, form, bad):
    features, rois, scale, output_size, _, _ = case
    N = len(features)
    features = as_layout(features.to(dtype), layout)
    assert_value_error(roi_pool, features.to(bad), rois, output_size, match=FEATURES_ERROR)
    if len(rois):
        assert_value_error(roi_pool, features, data.draw(out_of_range(rois, N)), output_size, scale, match=BATCH_ERROR)
    record("oracle", "roi_pool")
    rois = rois.to(dtype)                                              # torchvision wants the features' dtype
    if form == "list":
        rois[:, 0] = rois[:, 0].floor()
        rois = rois[rois[:, 0].argsort(stable=True)]
    boxes_ = as_list(rois, N) if form == "list" else rois
    got = roi_pool(features, boxes_, output_size, scale)
    assert got.dtype == features.dtype                                 # and the tolerance is that of the features
    assert_same(got, tv_ops.roi_pool(features, rois, output_size, scale))


@FUZZ
@given(data=st.data())
def test_roi_kernels_reject_bad_inputs(data):
    features, rois = torch.zeros(2, 3, 5, 6), torch.tensor([[1.0, 0, 0, 4, 4]])
    bad_features = torch.zeros(data.draw(wrong_shape((2, 3, 5, 6))))
    empty_map = torch.zeros(2, 3, *data.draw(st.sampled_from([(0, 6), (5, 0), (0, 0)])))
    bad_rois = torch.zeros(data.draw(wrong_shape((None, 5))))
    bad_list = [torch.zeros(data.draw(wrong_shape((None, 4))))]
    bad_size = data.draw(st.sampled_from([0, -1, 2.5, (1, 2, 3), (3,), "ab", (0, 2), None, True]))
    for kernel in (roi_align, roi_align_points, roi_pool):
        if bad_features.ndim != 4:
            assert_value_error(kernel, bad_features, rois, 2)
        assert_value_error(kernel, empty_map, torch.zeros(0, 5), 2)          # torchvision would crash here
        assert_value_error(kernel, features, bad_rois, 2)
        assert_value_error(kernel, features, bad_list, 2)
        assert_value_error(kernel, features, [torch.zeros(1, 4)] * 3, 2)    # boxes for 3 of 2 images
        assert_value_error(kernel, features, rois, bad_size, match=r"expected output_size .*\(PH, PW\)")
        assert_value_error(kernel, torch.zeros(0, 3, 5, 6), rois, 2, match=BATCH_ERROR)


@counted()
@FUZZ
@given(case=roi_case(), box_dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16, torch.int64]),
       dtype=st.sampled_from(FLOAT_DTYPES + REDUCED), data=st.data(), bad=st.sampled_from(NOT_FLOAT))
def test_as_rois_forms_agree(case, box_dtype, dtype, data, bad):
    features, rois, *_ = case
    features = features.to(dtype)
    assert_value_error(as_rois, rois, features.to(bad))
    if len(rois):
        assert_value_error(as_rois, data.draw(out_of_range(rois, len(features))), features, match=BATCH_ERROR)
    record("oracle", "as_rois")
    rois[:, 0] = rois[:, 0].floor()
    rois = rois[rois[:, 0].argsort(stable=True)].to(box_dtype)
    expected = rois.to(dtype)
    assert_same(as_rois(rois, features), expected)
    got = as_rois(as_list(rois, len(features)), features)
    assert got.dtype == dtype and got.shape == (len(rois), 5)
    assert_same(got, expected)


# ------------------------------------------------------------------------------- RoIAlign's parts


@counted()
@fuzz(80)
@given(N=st.integers(1, 3), C=st.integers(0, 3), H=st.integers(1, 6), W=st.integers(1, 6), K=st.integers(0, 4),
       P=st.integers(0, 5), data=st.data(), dtype=st.sampled_from(FLOAT_DTYPES), layout=layouts,
       point_dtype=st.sampled_from(FLOAT_DTYPES))
def test_bilinear_matches_torchvision_at_single_points(N, C, H, W, K, P, data, dtype, layout, point_dtype):
    """torchvision's RoIAlign of a zero-size box, aligned, one sample, reads exactly its bilinear_interpolate at
    the box's corner (points on an eighth-cell grid, so that x + 0.5 - 0.5 is x)."""
    features = as_layout(randn((N, C, H, W), data.draw(st.integers(0, 2**16)), dtype), layout)
    index = torch.tensor(data.draw(st.lists(st.integers(0, N - 1), min_size=K, max_size=K)), dtype=torch.int64)
    grid = lambda side: arrays(np.int64, (K, P), elements=st.integers(-20, 8 * side + 12))  # noqa: E731
    y = torch.from_numpy(data.draw(grid(H)) / 8).to(point_dtype)
    x = torch.from_numpy(data.draw(grid(W)) / 8).to(point_dtype)

    def oracle(features, index, y, x):
        rows = torch.stack([index[:, None].expand(K, P).double(), x.double() + 0.5, y.double() + 0.5,
                            x.double() + 0.5, y.double() + 0.5], -1).reshape(-1, 5)
        out = tv_ops.roi_align(features.double(), rows, 1, 1.0, 1, aligned=True)   # (K * P, C, 1, 1)
        return out.reshape(K, P, C).permute(0, 2, 1)

    got = assert_oracle_or_value_error(bilinear, oracle, features, index, y, x, valid=True)
    assert got.shape == (K, C, P)
    if K:
        assert_value_error(bilinear, features, index + N, y, x, match=r"expected batch_index .*\[0, N\)")
        assert_value_error(bilinear, features, index.double(), y, x)
    assert_value_error(bilinear, features, index, y[:, :-1] if P else y[:, None], x)
    assert_value_error(bilinear, features[:, :, :0], index, y, x)


@counted()
@FUZZ
@given(K=st.integers(0, 4), bins=st.integers(1, 4), data=st.data(), dtype=st.sampled_from(FLOAT_DTYPES))
def test_sample_points_and_interpolation_matrix_match_loops(K, bins, data, dtype):
    start = torch.tensor(data.draw(st.lists(CORNER, min_size=K, max_size=K)), dtype=dtype)
    length = torch.tensor(data.draw(st.lists(st.floats(-2, 10, width=32), min_size=K, max_size=K)), dtype=dtype)
    grid = torch.tensor(data.draw(st.lists(st.integers(0, 3), min_size=K, max_size=K)), dtype=torch.int64)
    size = data.draw(st.integers(1, 8))

    def points_oracle(start, length, bins, grid):
        G = max([1] + grid.tolist())
        coords = torch.zeros(K, bins, G, dtype=dtype)
        for k in range(K):
            step = length[k].item() / bins
            for p in range(bins):
                for i in range(G):
                    coords[k, p, i] = start[k].item() + p * step + (i + 0.5) * step / max(int(grid[k]), 1)
        return coords, torch.arange(G)[None, None, :] < grid[:, None, None]

    coords, used = assert_oracle_or_value_error(sample_points, points_oracle, start, length, bins, grid, valid=True)

    def matrix_oracle(coords, used, size):
        A = torch.zeros(K, bins, size, dtype=torch.float64)
        for k, p, i in np.ndindex(K, bins, coords.shape[2]):
            c = coords[k, p, i].item()
            if not used[k, 0, i] or c < -1 or c > size:
                continue
            c = max(c, 0.0)
            c0 = min(math.floor(c), size - 1)
            frac = 0.0 if c0 >= size - 1 else c - c0
            A[k, p, c0] += 1 - frac
            A[k, p, min(c0 + 1, size - 1)] += frac
        return A / used.sum(2, keepdim=True).clamp(min=1)

    assert_oracle_or_value_error(interpolation_matrix, matrix_oracle, coords, used, size, valid=True)
    assert_value_error(sample_points, start, length[:-1] if K else length[None], bins, grid)
    assert_value_error(sample_points, start, length, bins, grid.double())
    assert_value_error(sample_points, start, length, 0, grid)
    assert_value_error(interpolation_matrix, coords[..., 0], used, size)
    assert_value_error(interpolation_matrix, coords, used[:, 0], size)
    assert_value_error(interpolation_matrix, coords, used, 0)


# ---------------------------------------------------------------------------------------- mask targets


@st.composite
def gt_masks(draw, max_g: int = 3):
    """(G, H, W) {0, 1} masks, rectangles with holes or random pixels, in a mask dtype and layout."""
    G, H, W = draw(st.integers(0, max_g)), draw(st.integers(1, 12)), draw(st.integers(1, 12))
    masks = torch.from_numpy(draw(arrays(np.bool_, (G, H, W), elements=st.booleans())))
    for g in range(G):
        if draw(st.booleans()):
            y0, x0 = draw(st.integers(0, H - 1)), draw(st.integers(0, W - 1))
            masks[g] = False
            masks[g, y0:draw(st.integers(y0 + 1, H)), x0:draw(st.integers(x0 + 1, W))] = True
    dtype = draw(st.sampled_from([torch.bool, torch.uint8, torch.int64, torch.float32, torch.float64]))
    return as_layout(masks.to(dtype), draw(layouts))


def indices(G: int, P: int):
    """P indices into G ground truths (all 0 when G = 0, which must then be rejected)."""
    return st.lists(st.integers(0, max(G - 1, 0)), min_size=P, max_size=P)


def box_on(data, K: int, H: int, W: int) -> torch.Tensor:
    """(K, 4) xyxy boxes on an H x W image: corners from 2 px outside to 2 px beyond it, on a quarter-pixel grid
    or anywhere, zero-size ones included."""
    corner = lambda side: st.one_of(st.integers(-8, 4 * side + 8).map(lambda v: v / 4),  # noqa: E731
                                    st.floats(-2, side + 2, width=32))
    rows = data.draw(st.lists(st.tuples(corner(W), corner(H), corner(W), corner(H)), min_size=K, max_size=K))
    b = torch.tensor(rows, dtype=torch.float64).reshape(K, 4)
    return torch.cat([b[:, :2].minimum(b[:, 2:]), b[:, :2].maximum(b[:, 2:])], 1)


@counted()
@fuzz(50)
@given(masks=gt_masks(), data=st.data(), size=st.integers(1, 28), box_dtype=st.sampled_from(
       FLOAT_DTYPES + [torch.float16, torch.int64]), layout=layouts)
def test_mask_targets_are_thresholded_torchvision_roi_align(masks, data, size, box_dtype, layout):
    G, H, W = masks.shape
    P = data.draw(st.integers(0, 5) if G else st.just(0))              # no ground truth: no RoI can match one
    rois = as_layout(box_on(data, P, H, W).to(box_dtype), layout)
    matched = torch.tensor(data.draw(indices(G, P)), dtype=torch.int64)
    if P:
        assert_value_error(mr.mask_targets, masks[:0], rois, matched, size, match=r"expected matched .*\[0, G\)")
    got = mr.mask_targets(masks, rois, matched, size)
    record("oracle", "mask_targets")
    assert got.shape == (P, size, size) and got.dtype == torch.float32
    # the oracle in float64: a pixel whose RoIAlign value is 0.5 up to float32 rounding may fall either side
    rows = torch.cat([matched[:, None].double(), rois.to(torch.float32).double()], 1)
    value = tv_ops.roi_align(masks[:, None].double(), rows, size, 1.0, -1, aligned=True)[:, 0]   # (P, size, size)
    tie = (value - 0.5).abs() < 1e-5
    assert torch.equal(got.bool()[~tie], (value >= 0.5)[~tie])
    if P:
        assert_value_error(mr.mask_targets, masks, rois, matched + G, size, match=r"expected matched .*\[0, G\)")
        assert_value_error(mr.mask_targets, masks, rois, matched.double(), size)
    assert_value_error(mr.mask_targets, masks, rois, matched[:, None], size)
    assert_value_error(mr.mask_targets, masks[:, :0], rois, matched, size)
    assert_value_error(mr.mask_targets, masks, rois, matched, 0, match=r"expected output_size")


# ------------------------------------------------------------------------------------------- mask loss


@counted()
@fuzz(80)
@given(masks=gt_masks(), data=st.data(), C=st.integers(1, 4), M=st.integers(1, 14),
       dtype=st.sampled_from(FLOAT_DTYPES + REDUCED), target_dtype=st.sampled_from(FLOAT_DTYPES + [torch.float16]),
       layout=layouts)
def test_mask_loss_matches_torchvision_maskrcnn_loss(masks, data, C, M, dtype, target_dtype, layout):
    """torchvision's maskrcnn_loss on proposals, gt masks, labels and matches (logits with a background channel 0)
    = ours on the logits of channels 1..C and torchvision's own (soft, unaligned) targets."""
    G, H, W = masks.shape
    P = data.draw(st.integers(0, 5)) if G else 0
    proposals = box_on(data, P, H, W).float()
    matched = torch.tensor(data.draw(indices(G, P)), dtype=torch.int64)
    gt_labels = torch.tensor(data.draw(st.lists(st.integers(1, C), min_size=G, max_size=G)), dtype=torch.int64)
    logits = as_layout(randn((P, C + 1, M, M), data.draw(st.integers(0, 2**16)), dtype), layout)
    targets = project_masks_on_boxes(masks.float(), proposals, matched, M).to(target_dtype)   # (P, M, M) soft
    labels = gt_labels[matched]
    result = torch.promote_types(dtype, target_dtype)               # mixed dtypes: computed in the wider one

    def oracle():
        if target_dtype == torch.float16:                           # not torchvision's float32 targets: by hand
            own = logits.double()[torch.arange(P), labels]
            loss = F.binary_cross_entropy_with_logits(own, targets.double()) if P else torch.zeros(())
            return loss.to(result)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return maskrcnn_loss(logits.double(), [proposals], [masks.double()], [gt_labels], [matched]).to(result)

    got = assert_oracle_or_value_error(lambda: mr.mask_loss(logits[:, 1:], labels, targets), oracle, valid=True,
                                       dtype=result)
    assert got.ndim == 0
    if P:                                                           # label 0 = background: ours has no mask for it
        background = labels.clone()
        background[data.draw(st.integers(0, P - 1))] = 0
        assert_value_error(mr.mask_loss, logits[:, 1:], background, targets, match=r"expected labels \(P,\) in 1\.\.C")


@FUZZ
@given(data=st.data(), P=st.integers(0, 3), C=st.integers(0, 3))
def test_mask_loss_rejects_bad_inputs(data, P, C):
    logits, labels, targets = torch.zeros(P, C, 4, 4), torch.ones(P, dtype=torch.int64), torch.zeros(P, 4, 4)
    if P and C:
        assert_value_error(mr.mask_loss, logits, labels * (C + 1), targets, match=r"expected labels \(P,\) in 1\.\.C")
        assert_value_error(mr.mask_loss, logits, labels * 0, targets, match=r"expected labels \(P,\) in 1\.\.C")
    assert_value_error(mr.mask_loss, logits, labels.float(), targets)
    assert_value_error(mr.mask_loss, logits.long(), labels, targets)
    assert_value_error(mr.mask_loss, logits, labels, targets.bool())
    assert_value_error(mr.mask_loss, torch.zeros(data.draw(wrong_shape((P, None, 4, 4)))), labels, targets)
    assert_value_error(mr.mask_loss, logits, torch.ones(data.draw(wrong_shape((P,))), dtype=torch.int64), targets)
    assert_value_error(mr.mask_loss, logits, labels, torch.zeros(data.draw(wrong_shape((P, 4, 4)))))


# ---------------------------------------------------------------------------------------------- pasting


def reference_paste(masks, boxes_, height, width):
    """paste_masks' docstring as loops in float64: pixel (x, y) reads the mask at u = (x + 0.5 - x0) / w * Mw - 0.5
    (w clamped at 1e-6) and v likewise, bilinearly, with 0 beyond the mask's border."""
    D, Mh, Mw = masks.shape
    m, b = masks.double().numpy(), boxes_.to(wide(masks.dtype)).double().numpy()
    out = np.zeros((D, height, width))
    for d in range(D):
        x0, y0, x1, y1 = b[d]
        w, h = max(x1 - x0, float(np.float32(1e-6))), max(y1 - y0, float(np.float32(1e-6)))
        for i, j in np.ndindex(height, width):
            u, v = (j + 0.5 - x0) / w * Mw - 0.5, (i + 0.5 - y0) / h * Mh - 0.5
            for r, wr in ((math.floor(v), 1 - (v - math.floor(v))), (math.floor(v) + 1, v - math.floor(v))):
                for c, wc in ((math.floor(u), 1 - (u - math.floor(u))), (math.floor(u) + 1, u - math.floor(u))):
                    if 0 <= r < Mh and 0 <= c < Mw:
                        out[d, i, j] += wr * wc * m[d, r, c]
    return torch.from_numpy(out).to(masks.dtype)


@counted()
@fuzz(50)
@given(data=st.data(), D=st.integers(0, 3), Mh=st.integers(1, 6), Mw=st.integers(1, 6), height=st.integers(0, 9),
       width=st.integers(0, 9), dtype=st.sampled_from(FLOAT_DTYPES + REDUCED), layout=layouts,
       box_dtype=st.sampled_from(FLOAT_DTYPES + [torch.int64]), not_float=st.sampled_from(NOT_FLOAT))
def test_paste_masks_matches_its_bilinear_loop(data, D, Mh, Mw, height, width, dtype, layout, box_dtype, not_float):
    masks = as_layout(torch.rand(D, Mh, Mw, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 99))),
                                 dtype=torch.float64).to(dtype), layout)
    boxes_ = box_on(data, D, max(height, 1), max(width, 1)).to(box_dtype)
    if data.draw(st.booleans()):                          # degenerate: zero-size boxes on the half-pixel grid
        boxes_[:, 2:] = boxes_[:, :2] = boxes_[:, :2].mul(2).round().div(2)
    got = assert_oracle_or_value_error(mr.paste_masks, reference_paste, masks, boxes_, height, width, valid=True,
                                       dtype=dtype)
    assert got.shape == (D, height, width)
    assert_value_error(mr.paste_masks, masks.to(not_float), boxes_, height, width,
                       match=r"expected masks \(D, M, M\) float")
    assert_value_error(mr.paste_masks, torch.zeros(D, 0, Mw), boxes_, height, width)
    bad_boxes = torch.zeros(data.draw(wrong_shape((D, 4))))
    assert_value_error(mr.paste_masks, torch.zeros(D, Mh, Mw), bad_boxes, height, width)
    bad = data.draw(st.sampled_from([-1, 2.5, None, "9"]))
    assert_value_error(mr.paste_masks, torch.zeros(D, Mh, Mw), boxes_, bad, width,
                       match=r"expected .*\(height, width\)")


# ------------------------------------------------------------------------------------------ the model's steps


MODEL = None


def small_model() -> mr.MaskRCNN:
    global MODEL
    if MODEL is None:
        torch.manual_seed(0)
        MODEL = mr.MaskRCNN(width=8, num_classes=3).eval()
    return MODEL


@counted()
@fuzz(50)
@given(data=st.data(), P=st.integers(0, 40), G=st.integers(0, 4), seed=st.integers(0, 99))
def test_sample_rois_labels_by_the_best_iou_and_keeps_the_sampling_budget(data, P, G, seed):
    model = small_model()
    gt = box_on(data, G, 64, 64).float()
    near = gt[torch.randint(0, max(G, 1), (P,), generator=torch.Generator().manual_seed(seed))] if G else \
        torch.zeros(P, 4)
    proposals = torch.cat([box_on(data, P // 2, 64, 64).float(), near[P // 2:] + torch.randn(P - P // 2, 4) * 2])
    proposals = torch.cat([proposals[:, :2].minimum(proposals[:, 2:]), proposals[:, :2].maximum(proposals[:, 2:])], 1)
    target = {"boxes": gt, "labels": torch.tensor(data.draw(st.lists(st.integers(1, 3), min_size=G, max_size=G)),
                                                  dtype=torch.int64)}
    torch.manual_seed(seed)
    rois, labels, matched = model.sample_rois(proposals, target)
    record("oracle", "sample_rois")
    R = len(rois)
    assert labels.shape == matched.shape == (R,) and rois.shape == (R, 4)
    assert R <= mr.ROI["batch_size_per_image"]
    assert int((labels > 0).sum()) <= int(mr.ROI["batch_size_per_image"] * mr.ROI["positive_fraction"])
    candidates = torch.cat([proposals, gt])
    assert all((candidates == r).all(1).any() for r in rois)         # every RoI is a proposal or a ground truth
    if G:
        iou = tv_ops.box_iou(rois.double(), gt.double()).nan_to_num(0.0)   # (R, G)
        best = iou.max(1).values if R else torch.zeros(0, dtype=torch.float64)
        positive = best >= mr.ROI["fg_iou_thresh"]
        assert torch.equal(labels > 0, positive)
        assert torch.equal(labels[positive], target["labels"][matched[positive]])
        assert torch.equal(iou[torch.arange(R), matched][positive], best[positive])
    else:
        assert (labels == 0).all()
    assert_value_error(model.sample_rois, proposals, dict(target, labels=target["labels"][:-1] if G else
                                                          torch.zeros(1, dtype=torch.int64)))
    assert_value_error(model.sample_rois, proposals, dict(target, boxes=torch.zeros(data.draw(wrong_shape((G, 4))))))


@counted(rejects=False)
@fuzz(50)
@given(data=st.data(), counts=st.lists(st.integers(0, 12), min_size=1, max_size=3), seed=st.integers(0, 99))
def test_detect_boxes_and_predict_masks_match_torchvisions_postprocessing(data, counts, seed):
    """Ours after the box head = torchvision's RoIHeads.postprocess_detections on the same logits and deltas
    (softmax, decode, clip, score > 0.05, small boxes out, class-wise NMS at 0.5, best 100)."""
    from torchvision.models.detection.roi_heads import RoIHeads

    model = small_model()
    features = randn((len(counts), 8, 16, 16), seed, torch.float32)
    proposals = [box_on(data, k, 64, 64).float() for k in counts]
    with torch.no_grad():
        got = model.detect_boxes(features, proposals, (64, 64))
        logits, deltas = model.box_head(roi_align(features, proposals, 7, 1 / mr.STRIDE, sampling_ratio=2))
        heads = RoIHeads(None, None, None, 0.5, 0.5, 32, 0.25, mr.ROI["bbox_reg_weights"], mr.ROI["score_thresh"],
                         mr.ROI["nms_thresh"], mr.ROI["detections_per_img"])
        theirs = heads.postprocess_detections(logits, deltas, proposals, [(64, 64)] * len(counts))
    record("oracle", "detect_boxes")
    for d, boxes_, scores, labels in zip(got, *theirs):
        assert_same(d["boxes"], boxes_)
        assert_same(d["scores"], scores)
        assert torch.equal(d["labels"], labels)
    with torch.no_grad():
        masks = model.predict_masks(features, [d["boxes"] for d in got], [d["labels"] for d in got])
    for d, m in zip(got, masks):
        assert m.shape == (len(d["boxes"]), mr.MASK_SIZE, mr.MASK_SIZE) and ((0 <= m) & (m <= 1)).all()


@counted()
@FUZZ
@given(data=st.data(), B=st.integers(0, 3), H=st.integers(1, 9), W=st.integers(1, 9),
       p=st.sampled_from([0.0, 0.5, 1.0]), seed=st.integers(0, 99))
def test_hflip_matches_torchvision_v2(data, B, H, W, p, seed):
    from torchvision import tv_tensors
    from torchvision.transforms.v2 import functional as TF

    images = randn((B, 1, H, W), seed, torch.float32)
    targets = []
    for _ in range(B):
        G = data.draw(st.integers(0, 3))
        targets.append({"boxes": box_on(data, G, H, W).float(), "labels": torch.ones(G, dtype=torch.int64),
                        "masks": torch.from_numpy(data.draw(arrays(np.uint8, (G, H, W), elements=st.integers(0, 1))))})
    g = torch.Generator().manual_seed(seed)
    flips = (torch.rand(B, generator=torch.Generator().manual_seed(seed)) < p).tolist()   # hflip's draw
    out_images, out_targets = hflip(images, targets, g, p)
    record("oracle", "hflip")
    for i, (flip, t, o) in enumerate(zip(flips, targets, out_targets)):
        box = tv_tensors.BoundingBoxes(t["boxes"], format="XYXY", canvas_size=(H, W))
        assert_same(out_images[i], TF.horizontal_flip(images[i]) if flip else images[i])
        assert_same(o["boxes"], TF.horizontal_flip(box) if flip else t["boxes"])
        assert torch.equal(o["masks"], TF.horizontal_flip(tv_tensors.Mask(t["masks"])) if flip else t["masks"])
        assert torch.equal(o["labels"], t["labels"])
    if B:
        assert_value_error(hflip, images, targets[:-1], g, p)
        assert_value_error(hflip, images[0], targets, g, p)


# ------------------------------------------------------------------------------------------ mask IoU and AP


def rle(masks: torch.Tensor) -> list:
    from pycocotools import mask as mask_utils

    m = (masks != 0).numpy().astype(np.uint8).transpose(1, 2, 0)     # (H, W, N), nonzero = inside
    return mask_utils.encode(np.asfortranarray(m))


def coco_mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from pycocotools import mask as mask_utils

    if 0 in a.shape[1:]:                                             # pycocotools cannot encode an empty image
        return torch.zeros(len(a), len(b), dtype=torch.float64)
    iou = mask_utils.iou(rle(a), rle(b), [0] * len(b))
    return torch.from_numpy(np.asarray(iou, dtype=np.float64).reshape(len(a), len(b)))


MASK_DTYPES = [torch.bool, torch.uint8, torch.int64, torch.float32, torch.float64, torch.float16]


@counted()
@fuzz(60)
@given(data=st.data(), N=st.integers(0, 4), M=st.integers(0, 4), H=st.integers(0, 7), W=st.integers(0, 7),
       dtypes=st.tuples(st.sampled_from(MASK_DTYPES), st.sampled_from(MASK_DTYPES)), layout=layouts,
       on=st.sampled_from([1, 255, -1]), soft=st.sampled_from([0.5, 255.0, -1.0]))
def test_mask_iou_matches_pycocotools(data, N, M, H, W, dtypes, layout, on, soft):
    """Masks in any dtype with 'inside' stored as 1, or in an integer dtype as 255 or -1; a float mask that is not
    0 / 1 (a probability, 255) is rejected."""
    a = torch.from_numpy(data.draw(arrays(np.bool_, (N, H, W), elements=st.booleans())))
    b = torch.from_numpy(data.draw(arrays(np.bool_, (M, H, W), elements=st.booleans())))
    if N and M and data.draw(st.booleans()):
        b[0] = a[-1]                                                 # an exact match
    values = [(m.double() * (1 if dtype.is_floating_point else on)).to(dtype) for m, dtype in zip((a, b), dtypes)]
    a_, b_ = as_layout(values[0], layout), values[1]
    got = assert_oracle_or_value_error(mask_iou, coco_mask_iou, a_, b_, valid=True, rtol=1e-12, atol=1e-12)
    assert got.dtype == torch.float64 and ((0 <= got) & (got <= 1)).all()
    if H and W:                                                      # a float mask with a value not 0 or 1
        probs = (a if a.any() else torch.ones(1, H, W, dtype=torch.bool)).double() * soft
        probs = probs.to(data.draw(st.sampled_from([d for d in MASK_DTYPES if d.is_floating_point])))
        assert_value_error(mask_iou, *((probs, b_) if data.draw(st.booleans()) else (a_, probs)),
                           match=r"expected binary masks \(N, H, W\)")
    assert_value_error(mask_iou, a, torch.zeros(data.draw(wrong_shape((None, H, W)))))


def reference_match_by_iou(iou: torch.Tensor, threshold: float) -> torch.Tensor:
    """COCOeval.evaluateImg's loop: detection d takes the unmatched ground truth of highest IoU >= threshold
    (capped at 1 - 1e-10); on equal IoUs the later one."""
    is_tp, matched = [], set()
    for d in range(iou.shape[0]):
        best, best_iou = None, min(threshold, 1 - 1e-10)
        for g in range(iou.shape[1]):
            if g not in matched and iou[d, g] >= best_iou:
                best, best_iou = g, float(iou[d, g])
        is_tp.append(best is not None)
        matched |= {best} - {None}
    return torch.tensor(is_tp, dtype=torch.bool)


@counted()
@FUZZ
@given(iou=st.integers(0, 5).flatmap(lambda d: st.integers(0, 5).flatmap(lambda g: arrays(
       np.float64, (d, g), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(0, 1)))),
       threshold=st.sampled_from([0.0, 0.5, 0.75, 1.0]), layout=layouts)
def test_match_by_iou_matches_cocoeval_loop(iou, threshold, layout):
    iou = as_layout(torch.from_numpy(iou), layout)
    assert_oracle_or_value_error(match_by_iou, reference_match_by_iou, iou, threshold, valid=True)
    assert_value_error(match_by_iou, iou.flatten(), threshold)


@st.composite
def instances(draw, max_images: int = 3, classes: int = 3):
    """preds and targets for mask AP: 0-3 ground-truth masks and 0-5 detections per image (most a noisy copy of
    a ground truth, as probabilities), scores with ties, labels 0..classes-1, images of different sizes."""
    preds, targets = [], []
    for _ in range(draw(st.integers(0, max_images))):
        H, W, G, D = draw(st.integers(1, 8)), draw(st.integers(1, 8)), draw(st.integers(0, 3)), draw(st.integers(0, 5))
        gt = torch.from_numpy(draw(arrays(np.bool_, (G, H, W), elements=st.booleans())))
        source = gt[torch.tensor(draw(st.lists(st.integers(0, G - 1), min_size=D, max_size=D)), dtype=torch.long)] \
            if G else torch.zeros(D, H, W, dtype=torch.bool)
        flip = torch.from_numpy(draw(arrays(np.bool_, (D, H, W), elements=st.sampled_from([False] * 6 + [True]))))
        probs = (source ^ flip).double() * 0.8 + 0.1
        scores = draw(st.lists(st.sampled_from([0.25, 0.5, 0.75]) | st.floats(0, 1), min_size=D, max_size=D))
        label = st.lists(st.integers(0, classes - 1), min_size=D, max_size=D)
        preds.append({"masks": probs.to(draw(st.sampled_from([torch.float32, torch.float64]))),
                      "scores": torch.tensor(scores, dtype=torch.float32),
                      "labels": torch.tensor(draw(label), dtype=torch.int64)})
        targets.append({"masks": gt.to(draw(st.sampled_from([torch.bool, torch.uint8]))), "labels": torch.tensor(
            draw(st.lists(st.integers(0, classes - 1), min_size=G, max_size=G)), dtype=torch.int64)})
    return preds, targets


def cocoeval_map(preds, targets, iou_threshold):
    """pycocotools' COCOeval, segm, one IoU threshold, area "all", 100 detections: the mean over the classes with
    ground truth of the 101-point AP; -1 when no class has any."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def encode(m):
        r = mask_utils.encode(np.asfortranarray(m.numpy().astype(np.uint8)))
        return {"size": r["size"], "counts": r["counts"].decode()}

    images = [{"id": i, "height": t["masks"].shape[1], "width": t["masks"].shape[2]} for i, t in enumerate(targets)]
    categories = [{"id": int(c)} for c in sorted({int(c) for d in preds + targets for c in d["labels"]})]
    gts = [{"image_id": i, "category_id": int(c), "segmentation": encode(m), "iscrowd": 0, "area": float(m.sum()),
            "id": 0} for i, t in enumerate(targets) for m, c in zip(binarize(t["masks"], 0.0), t["labels"])]
    dts = [{"image_id": i, "category_id": int(c), "segmentation": encode(m), "score": float(s), "iscrowd": 0,
            "area": float(m.sum()), "id": 0} for i, p in enumerate(preds)
           for m, c, s in zip(binarize(p["masks"]), p["labels"], p["scores"])]
    if not gts:
        return -1.0
    for k, annotation in enumerate(gts + dts):
        annotation["id"] = k + 1                                    # COCO ids start at 1
    coco_gt, coco_dt = COCO(), COCO()
    coco_gt.dataset = {"images": images, "annotations": gts, "categories": categories}
    coco_dt.dataset = {"images": images, "annotations": dts, "categories": categories}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt.createIndex()
            coco_dt.createIndex()
            evaluator = COCOeval(coco_gt, coco_dt, "segm")
            evaluator.params.iouThrs = np.array([iou_threshold])
            evaluator.evaluate()
            evaluator.accumulate()
    precision = evaluator.eval["precision"][0, :, :, 0, -1]         # (101 recall levels, classes), maxDets 100
    aps = [precision[:, k].mean() for k in range(precision.shape[1]) if (precision[:, k] > -1).all()]
    return float(np.mean(aps)) if aps else -1.0


@counted(rejects=False)
@fuzz(50)
@given(pair=instances(), iou_threshold=st.sampled_from([0.3, 0.5, 0.75]))
def test_mask_average_precision_matches_cocoeval(pair, iou_threshold):
    preds, targets = pair
    got = assert_oracle_or_value_error(mask_average_precision, cocoeval_map, preds, targets, iou_threshold,
                                       valid=True, atol=1e-6)
    assert got == -1.0 or 0 <= got <= 1
    for label in range(3):
        precision, recall, n_gt = mask_precision_recall(preds, targets, label, iou_threshold)
        assert precision.shape == recall.shape and n_gt == sum(int((t["labels"] == label).sum()) for t in targets)
        assert ((0 <= precision) & (precision <= 1) & (0 <= recall) & (recall <= 1)).all()
        assert (recall.diff() >= 0).all()                           # recall never falls along the pooled ranking


def test_mask_metrics_of_no_images_and_no_masks():
    assert mask_average_precision([], []) == -1.0
    precision, recall, n_gt = mask_precision_recall([], [], 1)
    assert precision.shape == recall.shape == (0,) and n_gt == 0
    none = {"masks": torch.zeros(0, 4, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
    no_gt = {"masks": torch.zeros(0, 4, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    assert mask_average_precision([none], [no_gt]) == -1.0
    assert mask_iou(torch.zeros(0, 4, 4), torch.zeros(2, 4, 4)).shape == (0, 2)


@FUZZ
@given(data=st.data())
def test_mask_metrics_reject_malformed_images(data):
    pred = {"masks": torch.zeros(2, 4, 4), "scores": torch.zeros(2), "labels": torch.zeros(2, dtype=torch.int64)}
    target = {"masks": torch.zeros(1, 4, 4), "labels": torch.zeros(1, dtype=torch.int64)}
    key = data.draw(st.sampled_from(["masks", "scores", "labels"]))
    template = {"masks": (2, 4, 4), "scores": (2,), "labels": (2,)}[key]
    bad = dict(pred, **{key: torch.zeros(data.draw(wrong_shape(template)))})
    for fn in (mask_average_precision, lambda p, t: mask_precision_recall(p, t, 0)):
        if key != "masks" or bad["masks"].ndim != 3:
            assert_value_error(fn, [bad], [target])
        assert_value_error(fn, [pred, pred], [target], match=r"expected .*same length")
        assert_value_error(fn, [pred], [dict(target, masks=torch.zeros(1, 5, 4))])     # sizes differ: mask_iou
