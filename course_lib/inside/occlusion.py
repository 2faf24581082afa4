"""Occlusion sensitivity (Zeiler & Fergus 2013, "Visualizing and Understanding Convolutional Networks",
Sec. 4.2 and Fig. 7).

Slide a grey square (the *occluder*, value ``baseline``) over the image and re-classify each occluded copy.
If the model really looks at the object, the correct class's probability drops when the object is covered,
and not when the background is. Two views of the same forward passes:

- ``occlusion_maps``: Zeiler & Fergus's view, one number per occluder position -- the correct class's
  softmax probability (Fig. 7, column c) and the most probable class (Fig. 7, column e).
- ``occlusion``: the attribution view, one number per pixel -- the drop of the target score
  S(x) - S(x occluded), averaged over every occluder position that covers the pixel. This is captum's
  ``Occlusion`` with ``sliding_window_shapes=(C, window, window)`` and ``strides=(C, stride, stride)``.

Occluder corners along a side of length H are 0, s, 2s, ..., ceil((H - window) / s) * s: the windows reach
the far edge, and the last one may stick out (it is cut off at the edge), as in captum.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from course_lib.inside.saliency import check_batch, check_target
from course_lib.utils import at_least_float32


def occluder_corners(size: int, window: int, stride: int) -> list[int]:
    """Top (or left) corners of the occluder along one side of ``size`` pixels."""
    if not 1 <= window <= size or not 1 <= stride or (stride > window and window < size):
        raise ValueError(f"expected 1 <= window <= {size} and 1 <= stride <= window, "
                         f"got window={window}, stride={stride}")
    return [i * stride for i in range(math.ceil((size - window) / stride) + 1)]


@torch.no_grad()
def occluded_logits(model: nn.Module, x: Tensor, window: int, stride: int, baseline: float = 0.0) -> Tensor:
    """Logits (N, h, w, K) of x (N, C, H, W) with a window x window square set to ``baseline``,
    its top-left corner at (occluder_corners(H)[i], occluder_corners(W)[j]) for entry [:, i, j]."""
    check_batch(x, model=model)
    N, C, H, W = x.shape
    rows, cols = occluder_corners(H, window, stride), occluder_corners(W, window, stride)
    out = []
    for y0 in rows:                                                # one forward pass per row of positions
        occluded = x[:, None].repeat(1, len(cols), 1, 1, 1)        # (N, w, C, H, W)
        for j, x0 in enumerate(cols):
            occluded[:, j, :, y0:y0 + window, x0:x0 + window] = baseline
        logits = model(occluded.flatten(0, 1))                     # (N * w, K)
        out.append(logits.view(N, len(cols), logits.shape[-1]))    # (N, w, K)
    return torch.stack(out, dim=1)                                 # (N, h, w, K)


@torch.no_grad()
def occlusion(model: nn.Module, x: Tensor, target: int | Tensor, window: int, stride: int,
              baseline: float = 0.0) -> Tensor:
    """Occlusion attribution (N, C, H, W) of images x (N, C, H, W) for class ``target`` (int or (N,)).

    A[n, :, i, j] = mean over the occluder positions p covering (i, j) of S_t(x_n) - S_t(x_n occluded at p),
    S = the logit. The occluder covers all channels, so A is the same in every channel.
    """
    check_batch(x, model=model)
    N, C, H, W = x.shape
    check_target(target, N)
    scores = model(x)                                              # (N, K)
    target = check_target(target, N, x.device, num_classes=scores.shape[1])
    score = scores.gather(1, target[:, None])                      # (N, 1)
    logits = occluded_logits(model, x, window, stride, baseline)   # (N, h, w, K)
    h, w, K = logits.shape[1:]
    occluded_score = logits.gather(3, target.view(N, 1, 1, 1).expand(N, h, w, 1))[..., 0]  # (N, h, w)
    drop = score[:, :, None] - occluded_score                      # (N, h, w)
    total = torch.zeros(N, H, W, device=x.device, dtype=drop.dtype)  # accumulate in the model's dtype
    count = torch.zeros(H, W, device=x.device, dtype=drop.dtype)
    for i, y0 in enumerate(occluder_corners(H, window, stride)):
        for j, x0 in enumerate(occluder_corners(W, window, stride)):
            total[:, y0:y0 + window, x0:x0 + window] += drop[:, i, j, None, None]
            count[y0:y0 + window, x0:x0 + window] += 1
    return (total / count)[:, None].expand(N, C, H, W).contiguous()  # (N, C, H, W)


@torch.no_grad()
def occlusion_maps(model: nn.Module, x: Tensor, target: int | Tensor, window: int, stride: int,
                   baseline: float = 0.0) -> tuple[Tensor, Tensor]:
    """Zeiler & Fergus's occlusion maps over occluder positions, for images x (N, C, H, W):

    prob_true (N, h, w): softmax probability of the correct class ``target`` (int or (N,)) (Fig. 7c);
    most_probable (N, h, w) int64: the arg-max class (Fig. 7e). Entry [:, i, j] has the occluder's
    top-left corner at (occluder_corners(H)[i], occluder_corners(W)[j]).
    """
    check_batch(x, model=model)
    N = x.shape[0]
    check_target(target, N)
    logits = occluded_logits(model, x, window, stride, baseline)   # (N, h, w, K)
    target = check_target(target, N, x.device, num_classes=logits.shape[-1])
    h, w = logits.shape[1:3]
    probs = at_least_float32(logits).softmax(dim=-1)               # (N, h, w, K)
    prob_true = probs.gather(3, target.view(N, 1, 1, 1).expand(N, h, w, 1))[..., 0]
    return prob_true, logits.argmax(dim=-1)
