"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet Classification with Deep CNNs"), scaled to 28x28x1.

The ideas of 2012, each visible below: a deep stack of convolutions (5 conv layers) then large fully
connected layers; ReLU instead of tanh (Sec. 3.1); local response normalisation (Sec. 3.3, Eq. 1);
overlapping max pooling, kernel 3 stride 2 (Sec. 3.4); dropout in the classifier (Sec. 4.2).
"""

from __future__ import annotations

from torch import Tensor, nn


class AlexNet(nn.Module):
    """(B, 1, 28, 28) -> logits (B, K). ``features(x)`` gives the penultimate (B, 256)."""

    def __init__(self, num_classes: int = 10, width: int = 32, dropout: float = 0.5):
        super().__init__()
        w = width
        self.conv = nn.Sequential(
            nn.Conv2d(1, w, 5, padding=2), nn.ReLU(),                   # large first filters (11x11 in 2012)
            nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0),  # Eq. 1 of the paper
            nn.MaxPool2d(3, stride=2, padding=1),                       # overlapping pooling: 28 -> 14
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.MaxPool2d(3, stride=2, padding=1),                       # 14 -> 7
            nn.Conv2d(2 * w, 3 * w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(3 * w, 3 * w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(3 * w, 2 * w, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),                       # 7 -> 4
        )
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * w * 4 * 4, 256), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(256, 256), nn.ReLU(),
        )
        self.head = nn.Linear(256, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """(B, 1, 28, 28) -> (B, 256): the last hidden layer."""
        return self.fc(self.conv(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
