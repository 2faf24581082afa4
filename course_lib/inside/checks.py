"""Answers to notebook 02's exercises, checked by computing them with this chapter's kernels (never stored)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from course_lib.checks import report
from course_lib.inside.localization import box_iou_single
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


def check_receptive_field(answer, index: int = 4, size: int = 28) -> bool:
    """Height in pixels of the receptive field of the centre unit of ``AlexNet().conv[index]``, for a
    size x size input (clipped to the image)."""
    from course_lib.cnn import AlexNet

    model = AlexNet()
    y0, y1, x0, x1 = receptive_field(model, model.conv[index], (1, 1, size, size))
    return report(answer, y1 - y0, "compose the layers from the input up: a k x k conv adds (k - 1) x jump "
                                   "pixels, and a stride-s layer multiplies the jump by s")


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


def check_flip_window(answer, model: nn.Module, image: Tensor, stride: int = 2, baseline: float = 0.0) -> bool:
    """Smallest occluder side (stride ``stride``, value ``baseline``) at which the model's prediction for
    ``image`` (C, H, W) changes at some occluder position (None if it never does)."""
    expected = smallest_flip_window(model, image, stride, baseline)
    if answer is None and expected is None:
        print("Correct! No occluder changes this prediction.")
        return True
    return report(answer, expected, "loop over window sizes from small to large and look at occlusion_maps' "
                                    "most probable class")


def check_saliency_argmax(answer, model: nn.Module, image: Tensor, target: int | None = None) -> bool:
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
                  "the arg-max of the (H, W) map, as (row, col): divmod of the flat index by W")


def check_box_iou(answer, a=(10.0, 10.0, 30.0, 30.0), b=(20.0, 15.0, 40.0, 35.0)) -> bool:
    """IoU of two xyxy boxes ``a`` and ``b``."""
    expected = float(box_iou_single(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)))
    return report(None if answer is None else float(answer), expected,
                  "intersection area / (area a + area b - intersection area)")
