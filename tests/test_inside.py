"""Chapter 02 kernels against captum, scipy and torchvision; receptive fields against hand computation."""

import copy

import pytest
import torch
from torch import nn

from course_lib import cnn
from course_lib.data import ImageDataset, SceneConfig, fashion_scenes
from course_lib.inside import (
    BoxRegressor,
    box_from_saliency,
    checks,
    connected_components,
    deconvnet,
    occlusion,
    occlusion_maps,
    pointing_game,
    receptive_field,
    saliency,
    top_activations,
)
from course_lib.inside.deconvnet import layer_output
from course_lib.inside.localization import box_loss, train_step
from course_lib.inside.occlusion import occluded_logits, occluder_corners
from course_lib.inside.top_activations import receptive_fields
from tolerance import assert_argmax_consistent, assert_close_scaled, scaled_atol

captum_attr = pytest.importorskip("captum.attr")
pytestmark = pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU",
                                        "ignore:Input Tensor 0 did not already require gradients")


class TinyCNN(nn.Module):
    """(N, 3, H, W) -> (N, 5): two conv-ReLU-maxpool stages, any input size from 8 up."""

    def __init__(self, c_in: int = 3, num_classes: int = 5):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        self.head = nn.Linear(8 * 4, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


def seeded(model_fn, seed=0):
    torch.manual_seed(seed)
    return model_fn().eval()


@pytest.fixture(scope="module")
def alexnet():
    return seeded(lambda: cnn.AlexNet(width=8))


@pytest.fixture(scope="module")
def tiny():
    return seeded(TinyCNN)


def double(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` in eval mode: the oracle comparisons run in float64, where two kernel paths
    (captum's batch sizes and hooks against ours) differ by ~1e-16 of the values computed, not ~1e-7."""
    return copy.deepcopy(model).double().eval()


def close(a, b, ulps=1e4):
    """Equal up to float64 rounding of the computation: gradients here are sums of a few thousand products
    of the size of the result's largest entry, so 1e4 float64 ulp (~2e-12 relative) of that size is ample,
    and any real difference (a missing ReLU rule, a wrong window) is > 1e-3 relative."""
    assert a.dtype == b.dtype == torch.float64, (a.dtype, b.dtype)
    return a.shape == b.shape and float((a - b).abs().max()) <= scaled_atol(b, torch.float64, ulps)


# ----------------------------------------------------------------------------------------------
# saliency

@pytest.mark.parametrize("which", ["alexnet", "tiny"])
@pytest.mark.parametrize("per_image", [False, True])
def test_saliency_matches_captum(which, per_image, alexnet, tiny):
    model = double(alexnet if which == "alexnet" else tiny)
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=torch.float64) \
        if which == "alexnet" else torch.rand(3, 3, 12, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    target = torch.tensor([2, 0, 4]) if per_image else 3
    ours = saliency(model, x, target)
    theirs = captum_attr.Saliency(model).attribute(x, target=target, abs=True).amax(1)
    assert ours.shape == (3, *x.shape[2:])
    assert theirs.abs().max() > 0 and close(ours, theirs)


# ----------------------------------------------------------------------------------------------
# occlusion

@pytest.mark.parametrize("window,stride,baseline", [(3, 1, 0.0), (5, 3, 0.5), (4, 4, 0.0), (12, 12, 0.2), (6, 4, -1.0)])
def test_occlusion_matches_captum(window, stride, baseline, tiny):
    x = torch.rand(2, 3, 12, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    target = torch.tensor([1, 4])
    tiny = double(tiny)
    ours = occlusion(tiny, x, target, window, stride, baseline)
    assert ours.dtype == torch.float64                             # accumulated in the model's dtype
    theirs = captum_attr.Occlusion(tiny).attribute(
        x, target=target, sliding_window_shapes=(3, window, window), strides=(3, stride, stride), baselines=baseline)
    assert ours.shape == theirs.shape == x.shape
    # captum sums the attributions in float32 even for a float64 model: float32 rounding of the logits' size.
    with torch.no_grad():
        logits = torch.cat([tiny(x), occluded_logits(tiny, x, window, stride, baseline).flatten(0, 2)])
    assert theirs.abs().max() > 100 * scaled_atol(logits, theirs.dtype)  # a wrong window or baseline would fail
    assert_close_scaled(ours, theirs, scale=logits)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_occlusion_matches_captum_alexnet(dtype, alexnet):
    """Ours scores the occluded copies a row at a time (batches of 5), captum two at a time: the logits differ by
    a few ulp between the two batch sizes, so the attribution (a difference of logits, far smaller than the
    logits) is compared with a tolerance of the logits' size, in float32 as the learner runs it and in float64."""
    model = copy.deepcopy(alexnet).to(dtype)
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(3), dtype=dtype)
    ours = occlusion(model, x, 7, window=8, stride=5, baseline=0.5)
    theirs = captum_attr.Occlusion(model).attribute(x, target=7, sliding_window_shapes=(1, 8, 8),
                                                    strides=(1, 5, 5), baselines=0.5)
    assert ours.dtype == dtype                                     # (captum sums in float32 whatever the model)
    with torch.no_grad():
        logits = torch.cat([model(x), occluded_logits(model, x, 8, 5, 0.5).flatten(0, 2)])
    assert theirs.abs().max() > 100 * scaled_atol(logits, dtype)   # a wrong window or baseline would fail
    assert_close_scaled(ours, theirs, scale=logits, ulps=64)


def test_occluder_corners_reach_the_edge():
    assert occluder_corners(12, 5, 3) == [0, 3, 6, 9]      # the last window, 9..13, is cut off at 12
    assert occluder_corners(12, 4, 4) == [0, 4, 8]
    assert occluder_corners(12, 12, 12) == [0]


def test_occlusion_maps_are_zeiler_fergus_maps(tiny):
    x = torch.rand(2, 3, 12, 16, generator=torch.Generator().manual_seed(4))
    target = torch.tensor([3, 1])
    prob_true, most_probable = occlusion_maps(tiny, x, target, window=4, stride=3, baseline=0.0)
    rows, cols = occluder_corners(12, 4, 3), occluder_corners(16, 4, 3)
    assert prob_true.shape == most_probable.shape == (2, len(rows), len(cols))
    with torch.no_grad():
        for i, j in [(0, 0), (1, 2), (len(rows) - 1, len(cols) - 1)]:
            occluded = x.clone()
            occluded[:, :, rows[i]:rows[i] + 4, cols[j]:cols[j] + 4] = 0.0
            logits = tiny(occluded)                                # batch 2 here, a row of positions there
            probs = logits.softmax(1)
            # A softmax moves by at most the change of the logits: a tolerance of the logits' size.
            assert_close_scaled(prob_true[:, i, j], probs[[0, 1], target], scale=logits)
            assert_argmax_consistent(most_probable[:, i, j], logits)


# ----------------------------------------------------------------------------------------------
# deconvnet

def alexnet_units(model):
    conv = model.conv
    return [(conv[0], (1, 10, 12)), (conv[4], (1, 3, 5)), (conv[5], (2, 7, 7)), (conv[9], (0, 3, 2)),
            (conv[14], (2, 1, 2))]


@pytest.mark.parametrize("k", range(5))
def test_deconvnet_matches_captum_alexnet(k, alexnet):
    alexnet = double(alexnet)
    layer, neuron = alexnet_units(alexnet)[k]
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ours = deconvnet(alexnet, layer, x, neuron)
    theirs = captum_attr.NeuronDeconvolution(alexnet, layer).attribute(x, neuron_selector=neuron)
    assert ours.shape == x.shape
    assert theirs.abs().max() > 0 and close(ours, theirs)


def test_deconvnet_matches_captum_on_an_inactive_relu_unit(alexnet):
    """At a zero (closed) ReLU unit the deconvnet still projects: the rectification ignores the forward sign."""
    alexnet = double(alexnet)
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    layer = alexnet.conv[5]
    with torch.no_grad():
        out = layer_output(alexnet, layer, x)
    neuron = tuple((out[0] == 0).nonzero()[0].tolist())
    ours = deconvnet(alexnet, layer, x, neuron)
    theirs = captum_attr.NeuronDeconvolution(alexnet, layer).attribute(x, neuron_selector=neuron)
    assert ours[0].abs().max() > 0 and close(ours, theirs)


@pytest.mark.parametrize("arch", ["resnet", "googlenet", "tiny"])
def test_deconvnet_matches_captum_other_models(arch, tiny):
    if arch == "tiny":
        model = double(tiny)
        layer, x = model.body[4], torch.rand(2, 3, 12, 12, dtype=torch.float64)
    else:
        model = double(seeded(lambda: cnn.ResNet(width=4, blocks=1) if arch == "resnet" else cnn.GoogLeNet(width=8)))
        layer = model.stages[1] if arch == "resnet" else model.stage1[0]
        x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    ours = deconvnet(model, layer, x, (1, 2, 3))
    theirs = captum_attr.NeuronDeconvolution(model, layer).attribute(x, neuron_selector=(1, 2, 3))
    assert theirs.abs().max() > 0 and close(ours, theirs)


def test_deconvnet_is_neither_the_gradient_nor_guided_backprop(alexnet):
    alexnet = double(alexnet)
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    layer, neuron = alexnet.conv[9], (0, 3, 2)
    ours = deconvnet(alexnet, layer, x, neuron)
    grad = captum_attr.NeuronGradient(alexnet, layer).attribute(x, neuron_selector=neuron)
    guided = captum_attr.NeuronGuidedBackprop(alexnet, layer).attribute(x, neuron_selector=neuron)
    assert not close(ours, grad) and not close(ours, guided)
    # With no ReLU between the input and the unit, the three are the same gradient.
    first = alexnet.conv[0]
    assert close(deconvnet(alexnet, first, x, neuron),
                 captum_attr.NeuronGradient(alexnet, first).attribute(x, neuron_selector=neuron))


def test_deconvnet_leaves_no_hooks_behind(alexnet):
    alexnet = double(alexnet)
    x = torch.rand(1, 1, 28, 28, dtype=torch.float64)
    deconvnet(alexnet, alexnet.conv[9], x, (0, 1, 1))
    assert all(not m._forward_hooks and not m._backward_hooks for m in alexnet.modules())
    assert close(saliency(alexnet, x, 0), captum_attr.Saliency(alexnet).attribute(x, target=0, abs=True).amax(1))


# ----------------------------------------------------------------------------------------------
# receptive fields

def hand_receptive_field(layers, size, i):
    """Rows [y0, y1) of output row i, composing (kernel, stride, padding, dilation) from the last layer down."""
    a, b = i, i                                                    # inclusive interval at the current layer
    for k, s, p, d in reversed(layers):
        a, b = a * s - p, b * s - p + d * (k - 1)
    return max(a, 0), min(b, size - 1) + 1


def geometry(module):
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        first = lambda v: v[0] if isinstance(v, tuple) else v      # noqa: E731
        dilation = first(getattr(module, "dilation", 1))
        return first(module.kernel_size), first(module.stride), first(module.padding), dilation
    return None                                                    # pointwise: no change


def test_receptive_field_hand_computed():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(2, 2, 3, padding=1), nn.ReLU())  # 16 -> 16 -> 8 -> 8
    # Output row i sees pool rows i-1..i+1, i.e. conv rows 2i-2..2i+3, i.e. input rows 2i-3..2i+4.
    assert receptive_field(net, net[4], (1, 1, 16, 16), (0, 4, 4)) == (5, 13, 5, 13)
    assert receptive_field(net, net[4], (1, 1, 16, 16), (1, 0, 7)) == (0, 5, 11, 16)
    assert receptive_field(net, net[2], (1, 1, 16, 16), (1, 3, 0)) == (5, 9, 0, 3)
    strided = nn.Sequential(nn.Conv2d(1, 1, 5, stride=2, padding=2), nn.Conv2d(1, 1, 3, dilation=2))  # 20 -> 10 -> 6
    # Output i sees conv rows i, i+2, i+4, i.e. input rows 2i-2 .. 2(i+4)+2.
    assert receptive_field(strided, strided[1], (1, 1, 20, 20), (0, 2, 0)) == (2, 15, 0, 11)


def test_receptive_field_of_alexnet_composes_kernels_strides_paddings(alexnet):
    layers = []
    for index, module in enumerate(alexnet.conv):
        if geometry(module) is not None:
            layers.append(geometry(module))
        if not isinstance(module, nn.Conv2d):
            continue
        h = layer_output(alexnet, module, torch.zeros(1, 1, 28, 28)).shape[2]
        for i, j in [(0, 0), (h // 2, h - 1), (h - 1, 1)]:
            expected = hand_receptive_field(layers, 28, i) + hand_receptive_field(layers, 28, j)
            assert receptive_field(alexnet, module, (1, 1, 28, 28), (0, i, j)) == expected, (index, i, j)


def test_pixels_outside_the_receptive_field_do_not_matter(alexnet):
    layer, unit = alexnet.conv[8], (3, 2, 5)
    y0, y1, x0, x1 = receptive_field(alexnet, layer, (1, 1, 28, 28), unit)
    assert (y1 - y0, x1 - x0) != (28, 28)
    x = torch.rand(1, 1, 28, 28)
    changed = torch.rand(1, 1, 28, 28)
    changed[..., y0:y1, x0:x1] = x[..., y0:y1, x0:x1]
    with torch.no_grad():
        outs = [layer_output(alexnet, layer, v) for v in (x, changed)]
    # The same sum over the same pixels; only the kernel path's rounding (of the activations' size) may differ.
    assert_close_scaled(outs[0][0, unit[0], unit[1], unit[2]], outs[1][0, unit[0], unit[1], unit[2]], scale=outs[0])


def test_receptive_field_depends_on_the_inception_branch():
    module = seeded(lambda: cnn.InceptionModule(2, 1, 1, 1, 1, 1, 1))  # channels: 1x1 | 3x3 | 5x5 | pool+1x1
    sides = [receptive_field(module, module, (1, 2, 9, 9), (c, 4, 4)) for c in range(4)]
    assert sides == [(4, 5, 4, 5), (3, 6, 3, 6), (2, 7, 2, 7), (3, 6, 3, 6)]


def test_receptive_field_default_unit_is_the_centre(alexnet):
    assert receptive_field(alexnet, alexnet.conv[4]) == receptive_field(alexnet, alexnet.conv[4], unit=(0, 7, 7))


# ----------------------------------------------------------------------------------------------
# top activations

def test_top_activations_match_brute_force(alexnet):
    images = torch.rand(20, 1, 28, 28, generator=torch.Generator().manual_seed(8))
    layer, k = alexnet.conv[9], 4
    top = top_activations(alexnet, layer, images, k=k, batch_size=6)   # 4 batches: the running top-k merges
    with torch.no_grad():
        out = layer_output(alexnet, layer, images)                     # (N, C, h, w)
    N, C, h, w = out.shape
    best = out.flatten(2).amax(2).T                                    # (C, N)
    assert top.indices.shape == top.values.shape == (C, k) and top.positions.shape == (C, k, 2)
    # Batches of 6 there, all 20 here: the same activations up to rounding of their size; so the top k values
    # agree within that tolerance, and the chosen images and positions hold those values (near-ties may
    # pick another image or position of the same value).
    assert_close_scaled(top.values, best.sort(1, descending=True).values[:, :k], scale=out)
    c = torch.arange(C)[:, None]
    assert_close_scaled(best[c, top.indices], top.values, scale=out)
    at = out[top.indices, c, top.positions[..., 0], top.positions[..., 1]]
    assert_close_scaled(at, top.values, scale=out)
    assert len(set(top.indices[0].tolist())) == k                     # k different images
    units = torch.cat([c[..., None].expand(C, k, 1), top.positions], -1).view(-1, 3)
    assert torch.equal(top.boxes, receptive_fields(alexnet, layer, units).view(C, k, 4))
    patches = top.patches(images, 5)
    y0, y1, x0, x1 = top.boxes[5, 0].tolist()
    assert len(patches) == k and torch.equal(patches[0], images[top.indices[5, 0], :, y0:y1, x0:x1])


# ----------------------------------------------------------------------------------------------
# localization

@pytest.mark.parametrize("density,seed", [(0.3, 0), (0.5, 1), (0.6, 2), (0.0, 3), (1.0, 4)])
def test_connected_components_match_scipy(density, seed):
    ndimage = pytest.importorskip("scipy.ndimage")
    mask = torch.rand(23, 31, generator=torch.Generator().manual_seed(seed)) < density
    labels, n = connected_components(mask)
    expected, m = ndimage.label(mask.numpy())                      # 4-connectivity by default
    assert n == m and torch.equal(labels, torch.from_numpy(expected).long())


def test_box_from_saliency_takes_the_largest_component():
    ndimage = pytest.importorskip("scipy.ndimage")
    m = torch.zeros(32, 32)
    m[2:6, 3:9] = 1.0                                              # 24 pixels
    m[10:20, 12:17] = 2.0                                          # 50 pixels: the largest
    m[25:27, 25:31] = 3.0                                          # 12 pixels, the most salient
    assert box_from_saliency(m, quantile=0.95).tolist() == [12, 10, 17, 20]    # the top 5%: 2s and 3s
    assert box_from_saliency(m, quantile=0.99).tolist() == [25, 25, 31, 27]    # the top 1%: the 3s
    smooth = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(9)),
                                            5, 1, 2)[0, 0]
    labels, n = ndimage.label((smooth >= torch.quantile(smooth, 0.8)).numpy())
    sizes = [(labels == i).sum() for i in range(1, n + 1)]
    ys, xs = (labels == 1 + max(range(n), key=sizes.__getitem__)).nonzero()
    assert box_from_saliency(smooth, 0.8).tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_pointing_game():
    maps = torch.zeros(3, 10, 10)
    maps[0, 4, 6] = maps[1, 0, 0] = maps[2, 9, 9] = 1.0
    boxes = torch.tensor([[5, 3, 8, 5], [1, 1, 5, 5], [2, 2, 9, 9]], dtype=torch.float)
    assert pointing_game(maps, boxes).tolist() == [True, False, False]
    assert pointing_game(maps, boxes, tolerance=1).tolist() == [True, True, True]


def one_item_scenes(n):
    g = torch.Generator().manual_seed(11)
    items = ImageDataset((torch.rand(10, 1, 28, 28, generator=g) > 0.3).float(), torch.arange(10))
    cfg = SceneConfig(min_items=1, max_items=1, scale=(0.3, 0.6))
    scenes = fashion_scenes(n, seed=0, cfg=cfg, source=items)
    return scenes.images, torch.stack([t["boxes"][0] for t in scenes.targets])


def test_box_regressor_shape_and_loss_goes_down():
    torch.manual_seed(0)
    model = BoxRegressor(size=64, width=8)
    x, boxes = one_item_scenes(8)
    pred = model(x)
    assert pred.shape == (8, 4) and (pred >= 0).all() and (pred <= 64).all()
    assert (pred[:, 2:] >= pred[:, :2]).all()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = [train_step(model, opt, x, boxes).item() for _ in range(25)]
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3, losses


# ----------------------------------------------------------------------------------------------
# exercise checks

@pytest.mark.parametrize("index,side", [(0, 5), (4, 11), (8, 23)])
def test_check_receptive_field(index, side, capsys):
    assert checks.check_receptive_field(side, index)
    assert not checks.check_receptive_field(side + 2, index)
    assert not checks.check_receptive_field(None, index)
    assert "Not answered" in capsys.readouterr().out


def brute_force_flip_window(model, image, stride):
    """The smallest flipping window, one occluded image at a time, and the smallest gap seen between the
    predicted class's logit and the best other one (a near-tie could flip under another kernel path)."""
    margin = float("inf")
    with torch.no_grad():
        predicted = int(model(image[None]).argmax(1))
        for window in range(stride, image.shape[-1] + 1):
            for y0 in range(0, image.shape[-2] - window + stride, stride):
                for x0 in range(0, image.shape[-1] - window + stride, stride):
                    occluded = image.clone()
                    occluded[:, y0:y0 + window, x0:x0 + window] = 0
                    logits = model(occluded[None])[0]
                    others = torch.cat([logits[:predicted], logits[predicted + 1:]])
                    margin = min(margin, abs(float(logits[predicted] - others.max())))
                    if logits.argmax() != predicted:
                        return window, margin
    return None, margin


def test_check_flip_window(tiny):
    image = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(12))
    expected, margin = brute_force_flip_window(tiny, image, stride=2)
    assert expected is not None
    # The check scores the occluded copies in batches: the answer is the same because no decision on the way
    # is a near-tie (a gap of rounding size, which another batch size could flip).
    with torch.no_grad():
        assert margin > scaled_atol(tiny(image[None]), torch.float32, ulps=1e3), margin
    assert checks.smallest_flip_window(tiny, image, stride=2) == expected
    assert checks.check_flip_window(expected, tiny, image, stride=2)
    assert not checks.check_flip_window(expected + 1, tiny, image, stride=2)
    assert tiny.training is False


def test_check_saliency_argmax():
    model = seeded(TinyCNN, seed=1)
    image = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(13))
    M = captum_attr.Saliency(model).attribute(image[None], target=2, abs=True).amax(1)[0]
    row, col = divmod(int(M.argmax()), 12)
    top2 = M.flatten().topk(2).values                              # no near-tie for another path to break
    assert top2[0] - top2[1] > scaled_atol(M, torch.float32, ulps=1e3)
    model.train()                                                  # the check evaluates in eval mode ...
    assert checks.check_saliency_argmax((row, col), model, image, target=2)
    assert not checks.check_saliency_argmax((row, (col + 1) % 12), model, image, target=2)
    assert model.training                                          # ... and gives the model its mode back


def test_check_box_iou():
    assert checks.check_box_iou(150 / 650)
    assert not checks.check_box_iou(150 / 800)
    assert checks.check_box_iou(0.0, (0, 0, 1, 1), (1, 1, 2, 2))


# ----------------------------------------------------------------------------------------------
# wrong shapes fail early, naming the expected shape

def test_wrong_shapes_raise(alexnet):
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) float"):
        saliency(alexnet, x[0], 0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) float"):
        occlusion(alexnet, (x * 255).to(torch.uint8), 0, 4, 2)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        saliency(alexnet, x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        occlusion_maps(alexnet, x, torch.tensor([0.0, 1.0]), 4, 2)
    with pytest.raises(ValueError, match="stride <= window"):
        occlusion(alexnet, x, 0, window=3, stride=4)
    with pytest.raises(ValueError, match=r"\(channel, row, col\)"):
        deconvnet(alexnet, alexnet.conv[4], x, (0, 14, 0))
    with pytest.raises(ValueError, match="module of the model"):
        deconvnet(alexnet, nn.ReLU(), x, (0, 0, 0))
    with pytest.raises(ValueError, match=r"\(channel, row, col\)"):
        receptive_field(alexnet, alexnet.conv[4], (1, 1, 28, 28), (99, 0, 0))
    with pytest.raises(ValueError, match="k <= N"):
        top_activations(alexnet, alexnet.conv[4], x, k=3)
    with pytest.raises(ValueError, match=r"\(H, W\) float"):
        box_from_saliency(torch.rand(1, 8, 8))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        connected_components(torch.rand(8) > 0.5)
    with pytest.raises(ValueError, match=r"\(2, 4\) xyxy"):
        pointing_game(torch.rand(2, 8, 8), torch.rand(3, 4))
    with pytest.raises(ValueError, match=r"\(B, 4\) xyxy"):
        box_loss(torch.rand(3, 4), torch.rand(2, 4), 64)
    with pytest.raises(ValueError, match=r"\(B, 1, 64, 64\) float"):
        BoxRegressor()(torch.rand(2, 1, 28, 28))
