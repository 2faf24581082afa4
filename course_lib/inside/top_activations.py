"""The images that excite a unit most, cut to its receptive field (Zeiler & Fergus 2013, Fig. 2).

For every channel of a layer, ``top_activations`` scans an image set and keeps the k images whose
strongest response in that channel (the maximum over spatial positions) is largest, and where it was.
A unit at (row, col) of a convolutional layer only sees part of the image, its *receptive field*;
Zeiler & Fergus show the image patch under it next to the deconvnet projection.

The receptive field is computed, not guessed: a unit depends on an input pixel when some path of non-zero
weights joins them. ``receptive_field`` copies the model and makes that question exact by turning every
layer into an *averaging* layer with the same connectivity -- convolutions and linear layers get equal
positive weights 1 / fan_in and no bias, max pools become average pools of the same geometry, ReLUs and
other pointwise layers (batch norm, LRN, dropout) become identities. Every path then carries a positive
weight, nothing cancels, and the gradient of the unit w.r.t. the input is non-zero exactly on its
receptive field. (On the real network the gradient may vanish at a dead ReLU or a losing max-pool input,
so the gradient support of the real network can be smaller than the receptive field.)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from course_lib.inside.deconvnet import layer_output
from course_lib.inside.saliency import check_batch, check_layer
from course_lib.utils import at_least_float32

POINTWISE = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Dropout,
             nn.BatchNorm1d, nn.BatchNorm2d, nn.LocalResponseNorm)


@dataclass
class TopActivations:
    """For each channel c of a layer, its k strongest images, best first.

    indices (C, k) int64: positions in the image set; values (C, k): max activation over positions;
    positions (C, k, 2) int64: (row, col) of that maximum in the layer's output;
    boxes (C, k, 4) int64: the unit's receptive field in the image, (y0, y1, x0, x1), half-open.
    """

    indices: Tensor
    values: Tensor
    positions: Tensor
    boxes: Tensor

    def patches(self, images: Tensor, channel: int) -> list[Tensor]:
        """The k image patches (C, y1 - y0, x1 - x0) under the top units of ``channel``, best first."""
        return [images[n, :, y0:y1, x0:x1]
                for n, (y0, y1, x0, x1) in zip(self.indices[channel].tolist(), self.boxes[channel].tolist())]


def averaging_twin(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` in eval mode with the same connectivity, every path weighted positively."""
    twin = copy.deepcopy(model).double().eval()
    for name, module in list(twin.named_modules()):
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            with torch.no_grad():
                module.weight.fill_(1 / module.weight[0].numel())   # 1 / fan_in (per group)
                if module.bias is not None:
                    module.bias.zero_()
            continue
        if isinstance(module, nn.MaxPool2d):
            if module.dilation not in (1, (1, 1)):
                raise ValueError("receptive_field: dilated max pooling is not supported")
            replacement: nn.Module = nn.AvgPool2d(module.kernel_size, module.stride, module.padding,
                                                  module.ceil_mode)
        elif isinstance(module, nn.AdaptiveMaxPool2d):
            replacement = nn.AdaptiveAvgPool2d(module.output_size)
        elif isinstance(module, POINTWISE):
            replacement = nn.Identity()
        else:
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(twin.get_submodule(parent_name), child, replacement)
    return twin


def receptive_fields(model: nn.Module, layer: nn.Module, units: Tensor,
                     input_shape: tuple[int, ...] = (1, 1, 28, 28)) -> Tensor:
    """Receptive fields (U, 4) = (y0, y1, x0, x1), half-open and clipped to the image, of units (U, 3)
    = (channel, row, col) of ``layer``'s output, for inputs of ``input_shape`` (1, C, H, W)."""
    name = check_layer(model, layer)
    if len(input_shape) != 4:
        raise ValueError(f"expected input_shape (1, C, H, W), got {input_shape}")
    if not isinstance(units, Tensor) or units.ndim != 2 or units.shape[1] != 3 or units.is_floating_point():
        raise ValueError(f"expected units an int64 tensor of shape (U, 3), got {units!r}")
    twin = averaging_twin(model)
    dev = next(twin.parameters(), torch.zeros(0)).device
    units, inverse = units.to(dev).unique(dim=0, return_inverse=True)  # each distinct unit once
    U = len(units)
    with torch.enable_grad():                                     # also when called under no_grad
        x = torch.ones(U, *input_shape[1:], dtype=torch.float64, device=dev, requires_grad=True)
        out = layer_output(twin, twin.get_submodule(name), x, stop=True)  # (U, C', h, w): one input per unit
        if out.ndim != 4 or bool((units < 0).any()) or bool((units >= torch.tensor(out.shape[1:], device=dev)).any()):
            raise ValueError(f"expected units (channel, row, col) inside the layer's output (N, C', h, w) "
                             f"= {tuple(out.shape)}")
        c, i, j = units.T
        (grad,) = torch.autograd.grad(out[torch.arange(U, device=dev), c, i, j].sum(), x)  # (U, C, H, W)
    support = grad.abs().sum(dim=1)[inverse] > 0                  # (U_asked, H, W)
    rows, cols = support.any(dim=2).cpu(), support.any(dim=1).cpu()  # (U_asked, H), (U_asked, W)
    if not bool(rows.any(dim=1).all()):
        raise ValueError("a unit depends on no input pixel")
    first = lambda m: m.int().argmax(dim=1)                       # noqa: E731  index of the first True
    last = lambda m: m.shape[1] - 1 - m.flip(1).int().argmax(dim=1)  # noqa: E731  index of the last True
    return torch.stack([first(rows), last(rows) + 1, first(cols), last(cols) + 1], dim=1)  # (U_asked, 4)


def receptive_field(model: nn.Module, layer: nn.Module, input_shape: tuple[int, ...] = (1, 1, 28, 28),
                    unit: tuple[int, int, int] | None = None) -> tuple[int, int, int, int]:
    """Receptive field (y0, y1, x0, x1), half-open, clipped to the image, of ``unit`` = (channel, row, col)
    of ``layer``'s output for an input of ``input_shape``; the centre unit of channel 0 when None."""
    if unit is None:                                               # the output's size, from the twin:
        twin = averaging_twin(model)                               # no batch-norm statistics disturbed
        dev = next(twin.parameters(), torch.zeros(0)).device
        with torch.no_grad():
            x = torch.zeros(input_shape, dtype=torch.float64, device=dev)
            h, w = layer_output(twin, twin.get_submodule(check_layer(model, layer)), x, stop=True).shape[2:]
        unit = (0, h // 2, w // 2)
    if not (isinstance(unit, tuple) and len(unit) == 3 and all(isinstance(v, int) for v in unit)):
        raise ValueError(f"expected unit a tuple (channel, row, col) of ints, got {unit!r}")
    box = receptive_fields(model, layer, torch.tensor([unit]), input_shape)[0]
    return tuple(int(v) for v in box)


@torch.no_grad()
def top_activations(model: nn.Module, layer: nn.Module, images: Tensor, k: int = 9,
                    batch_size: int = 256) -> TopActivations:
    """For each channel of ``layer`` (output (N, C, h, w)), the k images (N, C_in, H, W) that excite it most.

    An image's response in channel c is max over (row, col) of the activation; images are scanned in
    batches and a running top-k is kept. Model in eval mode.
    """
    check_batch(images, "images", model)
    if not 1 <= k <= len(images):
        raise ValueError(f"expected 1 <= k <= N = {len(images)} images, got k={k}")
    dev = next(model.parameters()).device
    best_values = best_indices = best_flat = None
    for start in range(0, len(images), batch_size):
        out = at_least_float32(layer_output(model, layer, images[start:start + batch_size].to(dev)))  # (B, C, h, w)
        if out.ndim != 4:
            raise ValueError(f"expected the layer's output of shape (N, C, h, w), got {tuple(out.shape)}")
        B, C, h, w = out.shape
        values, flat = out.flatten(2).max(dim=2)                  # (B, C): max over positions, and where
        indices = torch.arange(start, start + B, device=dev)[None].expand(C, B)  # (C, B)
        if best_values is not None:
            values = torch.cat([best_values, values.T], dim=1)    # (C, k + B)
            flat = torch.cat([best_flat, flat.T], dim=1)
            indices = torch.cat([best_indices, indices], dim=1)
        else:
            values, flat = values.T, flat.T                       # (C, B)
        top = values.topk(min(k, values.shape[1]), dim=1)         # (C, k), sorted, best first
        best_values, best_indices = top.values, indices.gather(1, top.indices)
        best_flat = flat.gather(1, top.indices)
    positions = torch.stack([best_flat // w, best_flat % w], dim=-1).cpu()   # (C, k, 2)
    units = torch.cat([torch.arange(C)[:, None, None].expand(C, k, 1), positions], dim=-1)  # (C, k, 3)
    boxes = receptive_fields(model, layer, units.reshape(-1, 3), (1, *images.shape[1:])).view(C, k, 4)
    return TopActivations(best_indices.cpu(), best_values.cpu(), positions, boxes)
