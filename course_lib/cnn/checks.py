"""Notebook 01's exercises: answers checked by computing them (never stored), and the seeded inputs of the
"write the residual block" exercise.

Each hand-computation check is built so that the plausible wrong answers give a different number than the
right one (an Inception module whose output width differs from its input width, an odd input size where
floor and ceil of H / stride differ).
"""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib.checks import Verdict, report
from course_lib.cnn.densenet import DenseBlock
from course_lib.cnn.inception import InceptionModule
from course_lib.cnn.resnet import ResidualBlock
from course_lib.cnn.train import count_flops


def check_conv_flops(answer, c_in: int = 16, c_out: int = 32, k: int = 3, size: int = 14) -> Verdict:
    """FLOPs (exact) of one k x k convolution (stride 1, 'same' padding, no bias) on a (1, c_in, size, size)
    input; a multiply-add counts as 2 FLOPs."""
    conv = torch.nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False)
    return report(answer, count_flops(conv, (1, c_in, size, size)),
                  "each output value costs c_in * k * k multiply-adds, and a multiply-add is 2 FLOPs", sig=None)


def check_inception_channels(answer, c_in: int = 64, sizes=(16, 24, 32, 8, 12, 20)) -> Verdict:
    """Output channels (exact) of InceptionModule(c_in, c1, c3_reduce, c3, c5_reduce, c5, pool_proj).

    The default module maps 64 channels to 80, so "the width is unchanged" (64), "every conv's width
    summed" (112), "the pool branch keeps its c_in channels" (124) and "three conv branches only" (60) fail.
    """
    out = InceptionModule(c_in, *sizes)(torch.zeros(1, c_in, 7, 7))
    return report(answer, out.shape[1], "the four branches are concatenated along channels; the reduce layers "
                                        "only feed the 3x3 and 5x5 branches, and the pool branch ends in a 1x1 "
                                        "projection to pool_proj channels", sig=None)


def check_residual_shape(answer, c_in: int = 16, c_out: int = 32, stride: int = 2, size: int = 15) -> Verdict:
    """Output shape (a tuple) of ResidualBlock(c_in, c_out, stride) on a (2, c_in, size, size) batch.

    The default size is odd, so ceil(15 / 2) = 8 and the floor, 7, give different answers.
    """
    out = ResidualBlock(c_in, c_out, stride)(torch.zeros(2, c_in, size, size))
    return report(None if answer is None else tuple(answer), tuple(out.shape),
                  "a 3x3 conv with padding 1 and stride s maps H to floor((H + 2 - 3) / s) + 1 = ceil(H / s), "
                  "and the 1x1 projection shortcut must give the same size", sig=None)


def check_dense_inputs(answer, c_in: int = 24, growth: int = 12, layer: int = 4) -> Verdict:
    """Input channels (exact) of the ``layer``-th layer (1-based) of DenseBlock(c_in, layers=layer, growth)."""
    block = DenseBlock(c_in, layers=layer, growth=growth)
    first_conv = block.layers[layer - 1].h[2]
    return report(answer, first_conv.in_channels, "layer l sees x_0 and the outputs of the l - 1 layers before",
                  sig=None)


# ------------------------------------------------------------------------------------------------------------
# Write the kernel: the residual block's forward pass (He et al. 2015, Eq. 1 and 2), batch norm in eval mode.

def _seeded_block(c_in: int, c_out: int, stride: int, seed: int) -> ResidualBlock:
    """A float64 ResidualBlock in eval mode whose batch norms are not the identity: seeded random running
    statistics and affine parameters, so a kernel that skips or misplaces a batch norm disagrees."""
    with torch.random.fork_rng(devices=[]):                     # the caller's global RNG is left as it was
        torch.manual_seed(seed)
        block = ResidualBlock(c_in, c_out, stride).double().eval()
    g = torch.Generator().manual_seed(seed)
    for m in block.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.5 * torch.randn(n, generator=g, dtype=torch.float64))
            m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g, dtype=torch.float64))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=g, dtype=torch.float64))
            m.bias.data.copy_(0.5 * torch.randn(n, generator=g, dtype=torch.float64))
    return block


def residual_cases(seed: int = 0) -> list[tuple[str, tuple[ResidualBlock, Tensor]]]:
    """Seeded (description, (block, x)) inputs for ``my_residual_forward(block, x)``: an identity block, a
    projection that halves an odd size and doubles the channels on a batch of one, a stride-2 block that keeps
    its channels on a non-square input, and a channel change at stride 1. float64, blocks in eval mode."""
    g = torch.Generator().manual_seed(seed)
    specs = [("identity shortcut: ResidualBlock(8, 8), x (2, 8, 10, 10)", (8, 8, 1), (2, 8, 10, 10)),
             ("edge: projection, stride 2 on an odd size, batch of one: ResidualBlock(8, 16, stride=2), "
              "x (1, 8, 9, 9)", (8, 16, 2), (1, 8, 9, 9)),
             ("stride 2, channels kept, non-square: ResidualBlock(4, 4, stride=2), x (3, 4, 7, 12)",
              (4, 4, 2), (3, 4, 7, 12)),
             ("projection at stride 1: ResidualBlock(6, 10), x (2, 6, 5, 5)", (6, 10, 1), (2, 6, 5, 5))]
    return [(description, (_seeded_block(*block, seed=seed + i), torch.randn(*shape, generator=g, dtype=torch.float64)))
            for i, (description, block, shape) in enumerate(specs)]


def residual_reference(block: ResidualBlock, x: Tensor) -> Tensor:
    """course_lib's forward of ``block`` (in eval mode) on x: the reference of the exercise."""
    with torch.no_grad():
        return block(x)
