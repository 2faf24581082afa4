"""Answers to notebook 01's exercises, checked by computing them (never stored)."""

from __future__ import annotations

import torch

from course_lib.checks import report
from course_lib.cnn.densenet import DenseBlock
from course_lib.cnn.inception import InceptionModule
from course_lib.cnn.resnet import ResidualBlock
from course_lib.cnn.train import count_flops


def check_conv_flops(answer, c_in: int = 16, c_out: int = 32, k: int = 3, size: int = 14) -> bool:
    """FLOPs of one k x k convolution (stride 1, 'same' padding, no bias) on a (1, c_in, size, size) input."""
    conv = torch.nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
    return report(answer, count_flops(conv, (1, c_in, size, size)),
                  "each output value costs c_in * k * k multiply-adds, and a multiply-add is 2 FLOPs")


def check_inception_channels(answer, c_in: int = 64, sizes=(16, 16, 32, 4, 8, 8)) -> bool:
    """Output channels of InceptionModule(c_in, c1, c3_reduce, c3, c5_reduce, c5, pool_proj)."""
    out = InceptionModule(c_in, *sizes)(torch.zeros(1, c_in, 7, 7))
    return report(answer, out.shape[1], "the four branches are concatenated; the reduce layers feed branches")


def check_residual_shape(answer, c_in: int = 16, c_out: int = 32, stride: int = 2, size: int = 28) -> bool:
    """Output shape (as a tuple) of ResidualBlock(c_in, c_out, stride) on a (2, c_in, size, size) batch."""
    out = ResidualBlock(c_in, c_out, stride)(torch.zeros(2, c_in, size, size))
    return report(None if answer is None else tuple(answer), tuple(out.shape),
                  "a 3x3 conv with padding 1 and stride s maps H to ceil(H / s)")


def check_dense_inputs(answer, c_in: int = 24, growth: int = 12, layer: int = 4) -> bool:
    """Input channels of the ``layer``-th layer (1-based) of DenseBlock(c_in, layers=layer, growth)."""
    block = DenseBlock(c_in, layers=layer, growth=growth)
    first_conv = block.layers[layer - 1].h[2]
    return report(answer, first_conv.in_channels, "layer l sees x_0 and the outputs of the l - 1 layers before")
