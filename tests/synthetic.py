"""Small synthetic image sources for tests that must run without the real Fashion-MNIST."""

from __future__ import annotations

import torch

from course_lib.data import ImageDataset


def blob_source(n: int = 40, seed: int = 0) -> ImageDataset:
    """n 28x28 images of a bright ellipse with random radii (uniform inside): objects with clear edges,
    enough to build scenes without the real data."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    radii = 4 + 8 * torch.rand(n, 2, generator=g)
    inside = ((xx - 14) / radii[:, :1, None]) ** 2 + ((yy - 14) / radii[:, 1:, None]) ** 2 <= 1
    images = (inside * (0.5 + 0.5 * torch.rand(n, 1, 1, generator=g))).float()[:, None]
    return ImageDataset(images, torch.randint(0, 10, (n,), generator=g))
