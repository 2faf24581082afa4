"""DenseNet (Huang, Liu, van der Maaten & Weinberger 2016, "Densely Connected Convolutional Networks"),
scaled to 28x28x1.

The idea of 2016 is dense connectivity (Sec. 3, Eq. 2): x_l = H_l([x_0, x_1, ..., x_{l-1}]). Each layer
receives the concatenation of the feature maps of *all* preceding layers in its block and adds only
``growth`` new channels (the growth rate k), so features are reused instead of relearned. H_l is
BN-ReLU-Conv(1x1)-BN-ReLU-Conv(3x3) (the "B" bottleneck); transition layers (BN-ReLU-Conv1x1-AvgPool)
halve the channels ("C", compression 0.5) and the resolution between blocks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DenseLayer(nn.Module):
    """H_l: (B, C_in, H, W) -> (B, growth, H, W)."""

    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.h = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(), nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.h(x)


class DenseBlock(nn.Module):
    """(B, C_in, H, W) -> (B, C_in + layers * growth, H, W): each layer sees all earlier maps (Eq. 2)."""

    def __init__(self, c_in: int, layers: int, growth: int):
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(c_in + i * growth, growth) for i in range(layers))

    def forward(self, x: Tensor) -> Tensor:
        maps = [x]
        for layer in self.layers:
            maps.append(layer(torch.cat(maps, dim=1)))  # x_l = H_l([x_0, ..., x_{l-1}])
        return torch.cat(maps, dim=1)


def transition(c_in: int, c_out: int) -> nn.Sequential:
    """(B, C_in, H, W) -> (B, C_out, H/2, W/2)."""
    return nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.AvgPool2d(2))


class DenseNet(nn.Module):
    """(B, 1, 28, 28) -> logits (B, K). Three dense blocks at 14, 7 and 3 pixels."""

    def __init__(self, num_classes: int = 10, growth: int = 12, layers: int = 4):
        super().__init__()
        c = 2 * growth
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False), nn.AvgPool2d(2))  # 28 -> 14
        blocks: list[nn.Module] = []
        for i in range(3):
            blocks.append(DenseBlock(c, layers, growth))
            c += layers * growth
            if i < 2:
                blocks.append(transition(c, c // 2))
                c //= 2
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """(B, 1, 28, 28) -> (B, C): globally pooled output of the last dense block."""
        return self.pool(self.blocks(self.stem(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
