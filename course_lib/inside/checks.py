"""Notebook 02's exercises: answers checked by computing them with this chapter's kernels (never stored), and
the seeded inputs of the two "write the kernel" exercises (the deconvnet's ReLU rule and the saliency map)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from course_lib.checks import NOT_ANSWERED, Verdict, report
from course_lib.inside.deconvnet import DeconvReLU
from course_lib.detection.boxes import paired_iou
from course_lib.inside.occlusion import occlusion_maps
from course_lib.inside.saliency import check_batch, saliency
from course_lib.inside.top_activations import receptive_field


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode inside the block, its own mode restored after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _one_image(image: Tensor) -> Tensor:
    """(C, H, W) or (1, C, H, W) -> (1, C, H, W)."""
    x = image[None] if isinstance(image, Tensor) and image.ndim == 3 else image
    check_batch(x, "image")
    if len(x) != 1:
        raise ValueError(f"expected one image (C, H, W), got a batch {tuple(x.shape)}")
    return x


def check_receptive_field(answer, index: int = 8, size: int = 28) -> Verdict:
    """Height in pixels (exact) of the receptive field of the centre unit of ``AlexNet().conv[index]``, for a
    size x size input (clipped to the image). The default, the third convolution, is not printed in the
    notebook; its field is 23 pixels, and composing without the pools' strides (13) or without the pools
    (9) gives another number."""
    from course_lib.cnn import AlexNet

    model = AlexNet()
    y0, y1, x0, x1 = receptive_field(model, model.conv[index], (1, 1, size, size))
    return report(answer, y1 - y0, "compose the layers from the input up: a k x k conv or pool adds "
                                   "(k - 1) x jump pixels, and a stride-s layer then multiplies the jump by s",
                  sig=None)


def smallest_flip_window(model: nn.Module, image: Tensor, stride: int = 2, baseline: float = 0.0) -> int | None:
    """The smallest occluder side w (tried from ``stride`` up to the image's side) such that some occluder
    position (corners every ``stride`` pixels) changes the model's arg-max class; None if none does."""
    x = _one_image(image)
    side = min(x.shape[2:])
    with _eval_mode(model), torch.no_grad():
        predicted = int(model(x).argmax(dim=1))
        for window in range(stride, side + 1):
            _, most_probable = occlusion_maps(model, x, predicted, window, stride, baseline)
            if bool((most_probable != predicted).any()):
                return window
    return None


def check_flip_window(answer, model: nn.Module, image: Tensor, stride: int = 2, baseline: float = 0.0) -> Verdict:
    """Smallest occluder side (stride ``stride``, value ``baseline``) at which the model's prediction for
    ``image`` (C, H, W) changes at some occluder position; ``"never"`` if no occluder changes it (None means
    not answered yet)."""
    if answer is None:
        print(NOT_ANSWERED)
        return Verdict(False)
    expected = smallest_flip_window(model, image, stride, baseline)
    return report(answer, "never" if expected is None else expected,
                  "loop over window sizes from small to large and look at occlusion_maps' most probable class",
                  sig=None)


def check_saliency_argmax(answer, model: nn.Module, image: Tensor, target: int | None = None) -> Verdict:
    """(row, col) of the most salient pixel of ``image`` (C, H, W) for class ``target`` (default: the
    predicted class)."""
    x = _one_image(image)
    with _eval_mode(model):
        if target is None:
            with torch.no_grad():
                target = int(model(x).argmax(dim=1))
        M = saliency(model, x, target)[0]                          # (H, W)
    best = int(M.flatten().argmax())
    expected = (best // M.shape[1], best % M.shape[1])
    return report(None if answer is None else tuple(int(v) for v in answer), expected,
                  "the arg-max of the (H, W) map, as (row, col): divmod of the flat index by W", sig=None)


def check_box_iou(answer, a=(10.0, 10.0, 30.0, 30.0), b=(20.0, 15.0, 40.0, 35.0)) -> Verdict:
    """IoU of two xyxy boxes ``a`` and ``b``, to 3 significant digits (notebook 03's exercise)."""
    expected = float(paired_iou(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)))
    return report(None if answer is None else float(answer), expected,
                  "intersection area / (area a + area b - intersection area)")


# ------------------------------------------------------------------------------------------------------------
# Write the kernel (1): the deconvnet's rule at a ReLU on the way down (Zeiler & Fergus 2013, Sec. 2.1).

def deconv_relu_reference(x: Tensor, g_out: Tensor) -> Tensor:
    """The signal a deconvnet sends below a ReLU whose forward input was ``x``, given ``g_out`` from above:
    course_lib's :class:`~course_lib.inside.deconvnet.DeconvReLU` run through autograd. Same shape as x."""
    x = x.detach().clone().requires_grad_(True)
    (g_in,) = torch.autograd.grad(DeconvReLU.apply(x), x, g_out)
    return g_in


def deconv_relu_cases(seed: int = 0) -> list[tuple[str, tuple[Tensor, Tensor]]]:
    """Seeded (description, (x, g_out)) inputs for ``my_deconv_relu_backward(x, g_out)``, float64. Random
    signs disagree between x and g_out, so the plain gradient rule g_out * [x > 0] and guided
    back-propagation fail on the first input; the edge cases open or close every ReLU and hold exact zeros."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    ternary = torch.randint(-1, 2, (2, 3, 4, 4), generator=g).double()        # values in {-1, 0, 1}
    return [("random x and g_out (2, 3, 5, 5)", (randn(2, 3, 5, 5), randn(2, 3, 5, 5))),
            ("edge: every ReLU open (x > 0), g_out of both signs, (1, 4, 3, 3)",
             (randn(1, 4, 3, 3).abs() + 0.1, randn(1, 4, 3, 3))),
            ("edge: every ReLU closed (x < 0), (2, 8)", (-randn(2, 8).abs() - 0.1, randn(2, 8))),
            ("edge: exact zeros in x and in g_out, (2, 3, 4, 4)", (ternary, torch.roll(ternary, 1, dims=-1)))]


# ------------------------------------------------------------------------------------------------------------
# Write the kernel (2): the saliency map (Simonyan et al. 2013, Sec. 3.1, Eq. 3).

def _tiny_cnn(c_in: int, seed: int, num_classes: int = 5) -> nn.Module:
    """A seeded float64 CNN in eval mode, (N, c_in, H, W) -> (N, num_classes) for any H, W >= 2: conv-ReLU-
    maxpool-conv-ReLU, global average pooling, a linear layer (ReLUs and max-pool switches, as in AlexNet)."""
    with torch.random.fork_rng(devices=[]):                     # the caller's global RNG is left as it was
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(c_in, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(8, num_classes)).double().eval()


def saliency_cases(seed: int = 0) -> list[tuple[str, tuple[nn.Module, Tensor, Tensor]]]:
    """Seeded (description, (model, x, target)) inputs for ``my_saliency(model, x, target)``: small float64
    CNNs, x (N, C, H, W), target (N,) int64 -- three colour channels (so the max over channels matters), a
    batch of one on a non-square grey image, and targets that are not the predicted classes."""
    g = torch.Generator().manual_seed(seed)
    rgb, grey = _tiny_cnn(3, seed), _tiny_cnn(1, seed + 1)
    x1 = torch.rand(4, 3, 12, 12, generator=g, dtype=torch.float64)
    x2 = torch.rand(1, 1, 9, 7, generator=g, dtype=torch.float64)
    x3 = torch.rand(3, 3, 10, 10, generator=g, dtype=torch.float64)
    with torch.no_grad():
        least_likely = rgb(x3).argmin(dim=1)
    return [("3 channels, x (4, 3, 12, 12), a different class per image", (rgb, x1, torch.tensor([0, 1, 2, 4]))),
            ("edge: batch of one, grey, non-square x (1, 1, 9, 7), class 0", (grey, x2, torch.tensor([0]))),
            ("targets = the least likely classes, x (3, 3, 10, 10)", (rgb, x3, least_likely))]


def saliency_reference(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """course_lib's :func:`~course_lib.inside.saliency.saliency` (N, H, W), with the model in eval mode."""
    with _eval_mode(model):
        return saliency(model, x, target)
