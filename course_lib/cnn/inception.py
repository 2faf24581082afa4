"""Inception / GoogLeNet (Szegedy et al. 2014, "Going Deeper with Convolutions"), scaled to 28x28x1.

The idea of 2014 is the Inception module (Fig. 2b of the paper): 1x1, 3x3 and 5x5 convolutions and a
3x3 max pool run side by side on the same input and their outputs are concatenated along channels, so the
network picks its own receptive field per unit. The 1x1 "reduce" convolutions before the 3x3 and 5x5 cut
the channel count (and the FLOPs) first. Global average pooling replaces the big fully connected layers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv_relu(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class InceptionModule(nn.Module):
    """(B, C_in, H, W) -> (B, c1 + c3 + c5 + pool_proj, H, W): four branches, concatenated."""

    def __init__(self, c_in: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool_proj: int):
        super().__init__()
        self.branch1 = conv_relu(c_in, c1, 1)
        self.branch3 = nn.Sequential(conv_relu(c_in, c3_reduce, 1), conv_relu(c3_reduce, c3, 3))
        self.branch5 = nn.Sequential(conv_relu(c_in, c5_reduce, 1), conv_relu(c5_reduce, c5, 5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_relu(c_in, pool_proj, 1))

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)]
        return torch.cat(branches, dim=1)  # (B, c1 + c3 + c5 + pool_proj, H, W)


class GoogLeNet(nn.Module):
    """(B, 1, 28, 28) -> logits (B, K). ``features(x)`` gives the pooled (B, 8w) = (B, 192) at w = 24."""

    def __init__(self, num_classes: int = 10, width: int = 24, dropout: float = 0.2):
        super().__init__()
        w = width
        self.stem = nn.Sequential(conv_relu(1, 2 * w, 3), nn.MaxPool2d(3, stride=2, padding=1))  # (B, 2w, 14, 14)
        self.stage1 = nn.Sequential(
            InceptionModule(2 * w, w, w, 2 * w, w // 4, w // 2, w // 2),      # -> 4w channels
            InceptionModule(4 * w, w, w, 2 * w, w // 4, w // 2, w // 2),
            nn.MaxPool2d(3, stride=2, padding=1),                             # 14 -> 7
        )
        self.stage2 = nn.Sequential(
            InceptionModule(4 * w, 2 * w, 2 * w, 4 * w, w // 2, w, w),       # -> 8w channels
            InceptionModule(8 * w, 2 * w, 2 * w, 4 * w, w // 2, w, w),
        )
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())   # global average pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(8 * w, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """(B, 1, 28, 28) -> (B, 8w): globally pooled output of the last Inception module."""
        return self.pool(self.stage2(self.stage1(self.stem(x))))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))
