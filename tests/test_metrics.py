"""FID on the judge's features, against scipy's matrix square root and torchmetrics."""

import numpy as np
import pytest
import scipy.linalg
import torch

from course_lib import metrics
from course_lib.data import fashion_mnist


def reference_frechet(mu1, c1, mu2, c2):
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))


@pytest.mark.parametrize("seed,dim", [(0, 4), (1, 16), (2, 64)])
def test_frechet_distance_matches_scipy(seed, dim):
    g = np.random.default_rng(seed)
    a, b = g.normal(size=(3 * dim, dim)), g.normal(size=(3 * dim, dim)) @ g.normal(size=(dim, dim)) + 0.5
    mu1, c1, mu2, c2 = a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T)
    ours = metrics.frechet_distance(*(torch.from_numpy(t) for t in (mu1, c1, mu2, c2)))
    assert ours == pytest.approx(reference_frechet(mu1, c1, mu2, c2), rel=1e-6)


def test_frechet_distance_of_identical_gaussians_is_zero():
    c = torch.eye(5) * 2
    assert metrics.frechet_distance(torch.ones(5), c, torch.ones(5), c) == pytest.approx(0, abs=1e-9)


@pytest.fixture(scope="module")
def images():
    test = fashion_mnist("test")
    g = torch.Generator().manual_seed(0)
    real = test.images[:300]
    noisy = (test.images[300:600] + 0.2 * torch.randn(300, 1, 28, 28, generator=g)).clamp(0, 1)
    return real, noisy


def test_features_shape_and_errors(images):
    real, _ = images
    feats = metrics.features(real[:10])
    assert feats.shape == (10, 64) and feats.dtype == torch.float32
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        metrics.features(real[:10, 0])


def test_fid_matches_torchmetrics(images):
    from torchmetrics.image.fid import FrechetInceptionDistance

    class JudgeFeatures(torch.nn.Module):
        def forward(self, x):
            return metrics.features(x)

    real, noisy = images
    reference = FrechetInceptionDistance(feature=JudgeFeatures(), input_img_size=(1, 28, 28), normalize=True)
    reference.update(real, real=True)
    reference.update(noisy, real=False)
    expected = float(reference.compute())
    assert expected > 0
    assert metrics.fid(real, noisy) == pytest.approx(expected, rel=1e-3)


def test_fid_ranks_noise_above_real(images):
    real, noisy = images
    test = fashion_mnist("test")
    real_floor = metrics.fid(real, test.images[600:900])
    assert metrics.fid(real, real) == pytest.approx(0, abs=1e-6)
    assert metrics.fid(real, noisy) > 2 * real_floor
