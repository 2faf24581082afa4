"""FID on the judge's features, against scipy's matrix square root and torchmetrics."""

import numpy as np
import pytest
import scipy.linalg
import torch
from tolerance import eps, scaled_atol

from course_lib import metrics
from course_lib.data import fashion_mnist


def reference_frechet(mu1, c1, mu2, c2):
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))


def frechet_atol(mu_a, c_a, mu_b, c_b, ulps: float = 64) -> float:
    """How far two float64 computations of the Frechet distance may differ: ``ulps`` rounding of its terms, whose
    sizes are the second moments ||mu||^2 + Tr C of both sets (Tr (C_a C_b)^(1/2) <= (Tr C_a + Tr C_b) / 2;
    the distance itself may be far smaller: the terms cancel), plus the square root's amplification: an
    eigenvalue m of C_a^(1/2) C_b C_a^(1/2) (m >= lambda_min(C_a) lambda_min(C_b)) rounded by
    delta = ulps eps ||C_a|| ||C_b|| moves sqrt(m) by min(delta / (2 sqrt(m)), sqrt(delta)), D times, twice."""
    mu_a, c_a, mu_b, c_b = (torch.as_tensor(t).double() for t in (mu_a, c_a, mu_b, c_b))
    ea, eb = torch.linalg.eigvalsh(c_a).clamp(min=0), torch.linalg.eigvalsh(c_b).clamp(min=0)
    terms = mu_a.square().sum() + mu_b.square().sum() + 2 * (ea.sum() + eb.sum())
    delta = ulps * eps(torch.float64) * float(ea.max() * eb.max())
    m = float(ea.min() * eb.min())
    root = min(delta / (2 * m ** 0.5), delta ** 0.5) if m > 0 else delta ** 0.5
    return scaled_atol(terms, torch.float64, ulps) + 2 * len(ea) * root


@pytest.mark.parametrize("seed,dim", [(0, 4), (1, 16), (2, 64)])
def test_frechet_distance_matches_scipy(seed, dim):
    g = np.random.default_rng(seed)
    a, b = g.normal(size=(3 * dim, dim)), g.normal(size=(3 * dim, dim)) @ g.normal(size=(dim, dim)) + 0.5
    mu1, c1, mu2, c2 = a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T)
    ours = metrics.frechet_distance(*(torch.from_numpy(t) for t in (mu1, c1, mu2, c2)))
    assert ours == pytest.approx(reference_frechet(mu1, c1, mu2, c2), rel=0, abs=frechet_atol(mu1, c1, mu2, c2))


def test_frechet_distance_of_identical_gaussians_is_zero():
    mu, c = torch.ones(5), torch.eye(5) * 2
    assert metrics.frechet_distance(mu, c, mu, c) == pytest.approx(0, abs=frechet_atol(mu, c, mu, c))


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
    result = reference.compute()
    expected = float(result)
    assert expected > 0
    # torchmetrics computes in float64 (one-pass covariances, eigenvalues of C_a C_b) and rounds the result to
    # the features' float32: half an ulp of the result, plus the float64 rounding of the terms
    atol = scaled_atol(expected, result.dtype, ulps=0.5) + frechet_atol(
        *metrics.gaussian(metrics.features(real)), *metrics.gaussian(metrics.features(noisy)))
    assert metrics.fid(real, noisy) == pytest.approx(expected, rel=0, abs=atol)


def test_fid_ranks_noise_above_real(images):
    real, noisy = images
    test = fashion_mnist("test")
    real_floor = metrics.fid(real, test.images[600:900])
    moments = metrics.gaussian(metrics.features(real))
    assert metrics.fid(real, real) == pytest.approx(0, abs=frechet_atol(*moments, *moments))
    assert metrics.fid(real, noisy) > 2 * real_floor


def test_class_histogram_counts_the_judges_predictions(images):
    from course_lib.cnn.train import predict

    x = images[0]                                             # the 300 real test images
    hist = metrics.class_histogram(x)
    expected = torch.bincount(predict(metrics.judge("cpu"), x).argmax(1), minlength=10).double() / len(x)
    assert hist.shape == (10,) and hist.dtype == torch.float64
    torch.testing.assert_close(hist, expected)
    assert float(hist.max()) < 0.3                              # real images: no class dominates
    with pytest.raises(ValueError, match="N >= 1"):
        metrics.class_histogram(x[:0])


def test_kl_to_uniform_matches_scipy():
    import scipy.stats

    g = torch.Generator().manual_seed(0)
    for k in (2, 10):
        h = torch.rand(k, generator=g, dtype=torch.float64)
        h = h / h.sum()
        assert metrics.kl_to_uniform(h) == pytest.approx(scipy.stats.entropy(h.numpy(), np.full(k, 1 / k)), rel=1e-12)
    one_class = torch.zeros(10, dtype=torch.float64)
    one_class[3] = 1
    assert metrics.kl_to_uniform(one_class) == pytest.approx(np.log(10))        # collapse: log K
    assert metrics.kl_to_uniform(torch.full((10,), 0.1)) == pytest.approx(0, abs=1e-7)
    with pytest.raises(ValueError, match="summing to 1"):
        metrics.kl_to_uniform(torch.tensor([0.5, 0.6]))


def test_confidence_from_images_or_from_their_features(images):
    """The judge's mean top-class probability, from images or from their features (no second forward pass):
    the same number; the softmax of the judge's own logits is the oracle."""
    from course_lib.metrics import confidence, features, judge

    x = images[0][:50]                                  # the fixture's real test images
    with torch.no_grad():
        expected = judge("cpu")(x).softmax(-1).amax(-1).mean().item()
    assert confidence(x) == pytest.approx(expected, rel=1e-5)
    assert confidence(feats=features(x)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="one of the two"):
        confidence()
    with pytest.raises(ValueError, match="one of the two"):
        confidence(x, feats=features(x))
