"""ResNet (He, Zhang, Ren & Sun 2015, "Deep Residual Learning for Image Recognition"), scaled to 28x28x1.

The idea of 2015 is the residual block (Sec. 3.2, Eq. 1): y = F(x, {W_i}) + x. The stacked layers
learn the residual F(x) = H(x) - x instead of H(x) itself, so an identity mapping is as easy as driving
F to zero, and gradients reach early layers through the identity shortcuts. Where the shape changes, the
shortcut is a 1x1 projection W_s x (Eq. 2). Batch norm after each convolution, global average pooling.
"""

from __future__ import annotations

from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """Basic block: (B, C_in, H, W) -> (B, C_out, H / stride, W / stride), y = relu(F(x) + shortcut(x))."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.residual = nn.Sequential(                                   # F(x, {W_i})
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.shortcut: nn.Module = nn.Identity()                         # Eq. 1: identity
        if stride != 1 or c_in != c_out:                                 # Eq. 2: projection W_s x
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.residual(x) + self.shortcut(x))



class PlainBlock(ResidualBlock):
    """The same layers as ``ResidualBlock`` without the shortcut: y = relu(F(x)) -- He et al.'s "plain" net."""

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.residual(x))


def stack(block: type[ResidualBlock], blocks: int, width: int = 16, num_classes: int = 10) -> nn.Sequential:
    """(B, 1, H, W) -> logits (B, K): a 3x3 stem conv (BN, ReLU), ``blocks`` blocks of ``block`` (2 convs each,
    ``width`` channels, stride 1), global average pooling and a linear layer; 2 * blocks + 2 weight layers.
    ``block`` is ``ResidualBlock`` or ``PlainBlock``: the two stacks of the degradation experiment (Sec. 4.1)."""
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                         *[block(width, width) for _ in range(blocks)],
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

class ResNet(nn.Module):
    """(B, 1, 28, 28) -> logits (B, K). Three stages of ``blocks`` residual blocks (w, 2w, 4w channels)."""

    def __init__(self, num_classes: int = 10, width: int = 16, blocks: int = 2):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        stages, c_in = [], w
        for i, c_out in enumerate((w, 2 * w, 4 * w)):                  # 28 -> 28 -> 14 -> 7
            for j in range(blocks):
                stages.append(ResidualBlock(c_in, c_out, stride=2 if i > 0 and j == 0 else 1))
                c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4 * w, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """(B, 1, 28, 28) -> (B, 4w): globally pooled output of the last stage."""
        return self.pool(self.stages(self.stem(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
