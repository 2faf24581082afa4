"""RoIAlign and RoIPool (chapter 05) against torchvision.ops, forward and gradient, and against hand-computed values."""

import pytest
import torch
import torchvision.ops as tv_ops
from tolerance import assert_close_scaled

from course_lib.maskrcnn.roi import interpolation_matrix, roi_align, roi_align_points, roi_pool, sample_points


def random_rois(g: torch.Generator, n: int, N: int, extent: float, dtype=torch.float64) -> torch.Tensor:
    """(n, 5) rois over images 0..N-1 with corners in [-0.3, 1.1) * extent (so some stick out of the map,
    some lie wholly outside it) and sides up to 0.6 * extent, plus a sub-cell box and a zero-size box."""
    xy = (torch.rand(n, 2, generator=g, dtype=dtype) * 1.4 - 0.3) * extent
    wh = torch.rand(n, 2, generator=g, dtype=dtype) * 0.6 * extent
    boxes = torch.cat([xy, xy + wh], 1)
    boxes[0] = torch.tensor([3.3, 2.7, 3.9, 3.1], dtype=dtype)        # smaller than a cell
    boxes[1] = torch.tensor([5.0, 5.0, 5.0, 5.0], dtype=dtype)        # a point
    index = torch.randint(0, N, (n, 1), generator=g).to(dtype)
    return torch.cat([index, boxes], 1)


IMPLEMENTATIONS = {"separable": roi_align, "points": roi_align_points}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [-1, 1, 2])
@pytest.mark.parametrize("spatial_scale", [1.0, 0.5, 0.25])
@pytest.mark.parametrize("output_size", [7, (3, 5)])
def test_roi_align_matches_torchvision_forward_and_gradient(impl, aligned, sampling_ratio, spatial_scale, output_size):
    g = torch.Generator().manual_seed(int(100 * spatial_scale) + sampling_ratio)
    features = torch.randn(2, 3, 11, 13, generator=g, dtype=torch.float64, requires_grad=True)
    rois = random_rois(g, 12, 2, extent=13 / spatial_scale)
    mine = IMPLEMENTATIONS[impl](features, rois, output_size, spatial_scale, sampling_ratio, aligned)
    theirs = tv_ops.roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned)
    torch.testing.assert_close(mine, theirs)
    upstream = torch.randn(theirs.shape, generator=g, dtype=torch.float64)
    grad_mine, = torch.autograd.grad((mine * upstream).sum(), features)
    grad_theirs, = torch.autograd.grad((theirs * upstream).sum(), features)
    torch.testing.assert_close(grad_mine, grad_theirs)
    assert grad_mine.abs().sum() > 0                                   # the boxes do read the map


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_roi_align_float32_and_list_of_boxes(impl):
    g = torch.Generator().manual_seed(0)
    features = torch.randn(3, 4, 16, 16, generator=g)
    boxes = [torch.tensor([[4.0, 6.0, 40.0, 30.0], [-8.0, 50.0, 20.0, 70.0]]), torch.zeros(0, 4),
             torch.tensor([[10.5, 12.25, 33.0, 60.0]])]
    out = IMPLEMENTATIONS[impl](features, boxes, 7, 0.25, 2)
    assert out.shape == (3, 4, 7, 7) and out.dtype == torch.float32
    # each bin is a weighted mean (weights summing to <= 1, at most 16 cells) of the features, computed as two
    # matrix products here and point by point in torchvision: a few ulp of the features' size, not the bin's
    assert_close_scaled(out, tv_ops.roi_align(features, boxes, 7, 0.25, 2, aligned=True), features.abs().max(), ulps=32)
    rois = torch.tensor([[0.0, 4, 6, 40, 30], [0, -8, 50, 20, 70], [2, 10.5, 12.25, 33, 60]])
    torch.testing.assert_close(out, IMPLEMENTATIONS[impl](features, rois, 7, 0.25, 2))
    assert IMPLEMENTATIONS[impl](features, torch.zeros(0, 5), (2, 3)).shape == (0, 4, 2, 3)


def test_roi_align_reads_a_linear_map_exactly_without_quantization():
    """Bilinear interpolation of f[y, x] = x is exact, so each bin holds the mean x of its samples: the bin's
    centre in map coordinates. RoIPool on the same box is off by the rounding of the box to whole cells."""
    features = torch.arange(16.0).repeat(16, 1)[None, None]            # (1, 1, 16, 16), f[y, x] = x
    box = torch.tensor([[0.0, 5.3, 2.0, 9.9, 6.0]])                    # sub-cell corners, in map units (scale 1)
    out = roi_align(features, box, (1, 4), aligned=True, sampling_ratio=2)[0, 0, 0]
    centres = (5.3 - 0.5) + (torch.arange(4) + 0.5) * (9.9 - 5.3) / 4
    assert_close_scaled(out, centres, features.abs().max(), ulps=16)   # weighted means of values up to 15
    pooled = roi_pool(features, box, (1, 4))[0, 0, 0]                   # the max cell index of each quantized bin
    assert pooled.tolist() == [6.0, 7.0, 9.0, 10.0]                    # box rounded to cells 5..10, 6 cells / 4 bins


def test_interpolation_matrix_rows_are_averages_of_bilinear_weights():
    start, length, grid = torch.tensor([0.2, -3.0]), torch.tensor([5.0, 2.0]), torch.tensor([2, 3])
    coords, used = sample_points(start, length, 3, grid)                # (2, 3, 3), (2, 1, 3)
    assert coords.shape == (2, 3, 3) and used.tolist() == [[[True, True, False]], [[True, True, True]]]
    A = interpolation_matrix(coords, used, 6)                          # (2, 3, 6)
    torch.testing.assert_close(A[0].sum(1), torch.ones(3))             # inside the map: weights sum to 1
    torch.testing.assert_close(A[0] @ torch.arange(6.0), coords[0, :, :2].mean(1))   # and reproduce the coordinate
    assert A[1, 0].sum() == 0                                          # samples below -1 read nothing


@pytest.mark.parametrize("spatial_scale", [1.0, 0.5, 0.25])
@pytest.mark.parametrize("output_size", [1, 4, (2, 5)])
def test_roi_pool_matches_torchvision_forward_and_gradient(spatial_scale, output_size):
    g = torch.Generator().manual_seed(7)
    features = torch.randn(2, 3, 9, 10, generator=g, dtype=torch.float64, requires_grad=True)
    rois = random_rois(g, 10, 2, extent=10 / spatial_scale)
    mine = roi_pool(features, rois, output_size, spatial_scale)
    theirs = tv_ops.roi_pool(features, rois, output_size, spatial_scale)
    torch.testing.assert_close(mine, theirs)
    grad_mine, = torch.autograd.grad(mine.sum(), features)
    grad_theirs, = torch.autograd.grad(theirs.sum(), features)
    torch.testing.assert_close(grad_mine, grad_theirs)


@pytest.mark.parametrize("call", [
    lambda f: roi_align(f[0], torch.zeros(1, 5), 7),                      # features (C, H, W)
    lambda f: roi_align(f, torch.zeros(3, 4), 7),                         # a (K, 4) tensor without batch index
    lambda f: roi_align(f, [torch.zeros(2, 5)], 7),                       # a list of (K, 5)
    lambda f: roi_align(f, torch.tensor([[2.0, 0, 0, 4, 4]]), 7),         # batch index 2 of 2 images
    lambda f: roi_align(f, torch.zeros(1, 5), 0),                         # output size 0
    lambda f: roi_pool(f, torch.zeros(3, 4), 7),
])
def test_bad_shapes_raise_value_error_naming_the_shape(call):
    with pytest.raises(ValueError, match=r"\(K, 5\)|\(N, C, H, W\)|\(K_i, 4\)|batch ind|output_size"):
        call(torch.zeros(2, 3, 8, 8))
