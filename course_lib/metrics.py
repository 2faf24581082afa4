"""Metrics for generated images, judged by the Fashion-MNIST classifier of chapter 01.

``features(images)`` are the judge's penultimate activations; ``fid(a, b)`` is the Frechet distance
between Gaussians fitted to the features of two image sets (Heusel et al. 2017, "GANs Trained by a Two
Time-Scale Update Rule", Eq. 6 -- the FID, here with the judge in place of Inception-v3):

    d^2 = ||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^{1/2})
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from course_lib.training import check_images


@functools.lru_cache(maxsize=2)
def judge(device: str = "cpu"):
    from course_lib.cnn.classifier import load_classifier

    return load_classifier(torch.device(device))


@torch.no_grad()
def features(images: Tensor, batch_size: int = 1000) -> Tensor:
    """(N, 1, 28, 28) float in [0, 1] -> (N, D) penultimate features of the judge (float32, CPU)."""
    check_images(images)
    model = judge("cpu")
    return torch.cat([model.features(images[i:i + batch_size].float().cpu())
                      for i in range(0, len(images), batch_size)]) if len(images) else torch.zeros(0, 64)


@torch.no_grad()
def confidence(images: Tensor | None = None, *, feats: Tensor | None = None) -> float:
    """Mean over images (N, 1, 28, 28) of the judge's top-class probability; or from their ``features``
    (N, D) already computed (``feats=``), which saves the judge's forward pass."""
    if (images is None) == (feats is None):
        raise ValueError("expected images (N, 1, 28, 28) or feats= (N, D), one of the two")
    if feats is None:
        check_images(images)
        feats = features(images)
    logits = judge("cpu").head(feats)
    return logits.softmax(-1).amax(-1).mean().item()


def _check_gaussian(mu: Tensor, cov: Tensor, D: int, name: str) -> None:
    """Raise a ValueError unless mu is (D,) and cov a (D, D) symmetric positive semi-definite matrix."""
    ok = isinstance(mu, Tensor) and isinstance(cov, Tensor) and mu.shape == (D,) and cov.shape == (D, D)
    if ok and D:
        cov = cov.double()
        scale = float(cov.abs().max()) + 1e-300
        ok = bool((cov - cov.T).abs().max() <= 1e-6 * scale) and float(torch.linalg.eigvalsh(cov)[0]) >= -1e-6 * scale
    if not ok:
        D = D if D >= 0 else "D"
        raise ValueError(f"expected mu_{name} of shape ({D},) and cov_{name} of shape (D, D) = ({D}, {D}), "
                         f"symmetric positive semi-definite, got {tuple(getattr(mu, 'shape', ()))} and "
                         f"{tuple(getattr(cov, 'shape', ()))}")


def frechet_distance(mu_a: Tensor, cov_a: Tensor, mu_b: Tensor, cov_b: Tensor) -> float:
    """Eq. 6 for Gaussians (D,), (D, D). Tr (C_a C_b)^{1/2} = sum sqrt(eig(C_a^{1/2} C_b C_a^{1/2})).
    The covariances must be symmetric positive semi-definite (up to rounding), as covariances are."""
    D = mu_a.shape[0] if isinstance(mu_a, Tensor) and mu_a.ndim == 1 else -1
    _check_gaussian(mu_a, cov_a, D, "a")
    _check_gaussian(mu_b, cov_b, D, "b")
    mu_a, cov_a, mu_b, cov_b = (t.double() for t in (mu_a, cov_a, mu_b, cov_b))
    evals, evecs = torch.linalg.eigh(cov_a)
    sqrt_a = evecs @ torch.diag(evals.clamp(min=0).sqrt()) @ evecs.T       # C_a^{1/2}
    middle = torch.linalg.eigvalsh(sqrt_a @ cov_b @ sqrt_a).clamp(min=0)  # eigenvalues of a PSD matrix
    return float((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * middle.sqrt().sum())


def gaussian(feats: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), N >= 2."""
    if not isinstance(feats, Tensor) or feats.ndim != 2 or len(feats) < 2:
        raise ValueError(f"expected features (N, D) with N >= 2, got {tuple(getattr(feats, 'shape', ()))} "
                         f"{type(feats).__name__}")
    feats = feats.double()
    D = feats.shape[1]
    return feats.mean(0), torch.cov(feats.T).reshape(D, D)           # torch.cov gives a scalar when D = 1


def fid(a: Tensor, b: Tensor) -> float:
    """FID between two image sets (N, 1, 28, 28) and (M, 1, 28, 28) on the judge's features."""
    return frechet_distance(*gaussian(features(a)), *gaussian(features(b)))


@torch.no_grad()
def judge_labels(images: Tensor | None = None, *, feats: Tensor | None = None) -> Tensor:
    """The judge's predicted class (N,) int64 of each image (N, 1, 28, 28) in [0, 1], or from their ``features``
    (N, D) already computed (``feats=``): how a conditional sample's class is graded against its condition."""
    if (images is None) == (feats is None):
        raise ValueError("expected images (N, 1, 28, 28) or feats= (N, D), one of the two")
    if feats is None:
        check_images(images)
        feats = features(images)
    return judge("cpu").head(feats).argmax(dim=1)                            # (N,)


@torch.no_grad()
def class_histogram(images: Tensor) -> Tensor:
    """The judge's predicted class of each image (N, 1, 28, 28) in [0, 1], as fractions (10,) float64 summing to 1."""
    check_images(images)
    if not len(images):
        raise ValueError("expected at least one image (N >= 1), got N = 0")
    pred = judge_labels(images)                                              # (N,)
    return torch.bincount(pred, minlength=10).double() / len(pred)


def kl_to_uniform(hist: Tensor) -> float:
    """KL(hist || uniform) in nats of a histogram (K,) of fractions: 0 when every class is equally frequent,
    log K when all images fall in one class (a collapsed generator)."""
    if not isinstance(hist, Tensor) or hist.ndim != 1 or not len(hist) or bool((hist < 0).any()) \
            or abs(float(hist.sum()) - 1) > 1e-6:
        raise ValueError(f"expected a histogram (K,) of non-negative fractions summing to 1, got {hist!r}")
    hist = hist.double()
    return float(torch.xlogy(hist, hist * len(hist)).sum())
