"""The deconvnet (Zeiler & Fergus 2013, "Visualizing and Understanding Convolutional Networks", Sec. 2.1).

To see what one unit of a layer responds to, Zeiler & Fergus set every other activation of that layer to
zero and run the layers below *in reverse*, back to pixels. Each forward layer has a reverse:

- max pooling  -> unpooling: put each value back where the maximum came from (the "switches");
- ReLU         -> ReLU again: rectify the reconstruction, so only positive signals go down;
- convolution  -> the same filters, transposed ("flipped vertically and horizontally").

Unpooling by switches is exactly max-pool's backward pass, and transposed filters are exactly
convolution's backward pass, so the deconvnet is back-propagation with one change at each ReLU:

    saliency (plain gradient)  g_in = g_out * [x > 0]             (the sign of the forward input)
    deconvnet                  g_in = relu(g_out) = g_out * [g_out > 0]   (the sign of the signal coming down)
    guided backprop            g_in = g_out * [x > 0] * [g_out > 0]       (both; Springenberg et al. 2014)

The deconvnet ignores which ReLUs were open in the forward pass; only the pooling switches tie the
reconstruction to this image. ``deconv_relus`` makes that change for the duration of a ``with`` block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from course_lib.inside.saliency import check_batch, check_layer


class DeconvReLU(torch.autograd.Function):
    """relu(x) forward; relu(g_out) backward -- the deconvnet's rectification on the way down."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g_out: Tensor) -> Tensor:
        return g_out.clamp(min=0)


@contextmanager
def deconv_relus(model: nn.Module) -> Iterator[None]:
    """Inside the block every ``nn.ReLU`` of ``model`` computes the same values but back-propagates relu(g_out).

    A forward hook replaces each ReLU's output by ``DeconvReLU`` of its input (functional ``F.relu`` calls
    are not seen: the course's models use ``nn.ReLU`` modules, one per use).
    """
    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        return DeconvReLU.apply(inputs[0])

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class _Stop(Exception):
    """Raised by ``layer_output(..., stop=True)`` to end the forward pass after the layer."""


def layer_output(model: nn.Module, layer: nn.Module, x: Tensor, stop: bool = False) -> Tensor:
    """Run ``model`` on x and return the output of its submodule ``layer``, autograd graph attached.

    With ``stop`` the forward pass ends at the layer (the modules after it are not run): for callers that need
    nothing else, such as the receptive-field computation.
    """
    check_layer(model, layer)
    kept: list[Tensor] = []

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        kept.append(output)
        if stop:
            raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        model(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if len(kept) != 1 or not isinstance(kept[0], Tensor):
        raise ValueError(f"expected layer to run once and return one tensor, it ran {len(kept)} time(s)")
    return kept[0]


def deconvnet(model: nn.Module, layer: nn.Module, x: Tensor, neuron: tuple[int, int, int]) -> Tensor:
    """Deconvnet projection (N, C, H, W) of unit ``neuron`` = (channel, row, col) of ``layer``'s output
    (N, C', h, w) back to pixel space, for images x (N, C, H, W). Model in eval mode.

    The unit's value is back-propagated with gradient 1 (Zeiler & Fergus pass the activation itself, which
    only rescales the picture); equal to captum's ``NeuronDeconvolution(model, layer)``.
    """
    check_batch(x, model=model)
    if not (isinstance(neuron, tuple) and len(neuron) == 3 and all(isinstance(v, int) for v in neuron)):
        raise ValueError(f"expected neuron a tuple (channel, row, col) of ints, got {neuron!r}")
    x = x.detach().clone().requires_grad_(True)
    with deconv_relus(model):
        out = layer_output(model, layer, x)                        # (N, C', h, w)
        if out.ndim != 4 or not all(0 <= v < s for v, s in zip(neuron, out.shape[1:])):
            raise ValueError(f"expected neuron (channel, row, col) inside the layer's output (N, C', h, w) = "
                             f"{tuple(out.shape)}, got {neuron}")
        c, i, j = neuron
        (projection,) = torch.autograd.grad(out[:, c, i, j].sum(), x)  # images are independent
    return projection                                              # (N, C, H, W)
