"""Notebook 14's shipped checkpoints: a class-conditional DDPM trained for classifier-free guidance, and the
noisy classifier p(y | x_t, t) for classifier guidance of chapter 13's unconditional ``ddpm``.

``ddpm_cond`` is chapter 13's U-Net (channels 16, 32, 64; attention at 7x7; 0.77M parameters) with a class
embedding added to the time embedding, trained like ``ddpm`` (5,000 steps of batch 64, Adam 5e-4 after 200
warm-up steps, clipping at 1, EMA 0.999) with the label dropped to the null token for 10 % of the examples
(Ho & Salimans 2022). Its manifest keeps, for guidance scales 0, 1 and 3, the FID of 1,000 DDIM-50 samples
(100 of each class; x0 clipped) against 1,000 test images and the judge's accuracy (sample class = condition).
``noisy_classifier`` is ``NoisyClassifier`` (0.1M parameters), 3,000 steps of batch 128; its manifest keeps
its accuracy on noisy test images at a few t.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from course_lib.diffusion.schedule import NoiseSchedule
from course_lib.diffusion.train import to_model
from course_lib.guidance.guidance import ClassConditionalUNet, NoisyClassifier
from course_lib.guidance.train import (
    ClassifierTrainConfig,
    CondDDPMTrainConfig,
    sample_cfg,
    train_cond_ddpm,
    train_noisy_classifier,
)
from course_lib.profiles import resolve

CHANNELS = (16, 32, 64)
ATTENTION = (False, False, True)
SHIPPED = {"ddpm_cond": CondDDPMTrainConfig(steps=5_000), "noisy_classifier": ClassifierTrainConfig()}
N_EVAL = 1_000
SCALES = (0.0, 1.0, 3.0)
CLASSIFIER_T = (0, 250, 500, 750, 999)

# Without a shipped or cached checkpoint the same models train this long (smoke: only so that every cell runs):
# profile -> (steps, samples for the metrics); None: the shipped spec's.
FALLBACK = {"smoke": (3, 10), "cpu": (300, 200), "gpu": (None, N_EVAL)}


def build(name: str) -> nn.Module:
    if name == "ddpm_cond":
        return ClassConditionalUNet(10, channels=CHANNELS, attention=ATTENTION)
    if name == "noisy_classifier":
        return NoisyClassifier(10)
    raise ValueError(f"unknown guidance checkpoint {name!r}: expected one of {sorted(SHIPPED)}")


def _cond_metrics(model: ClassConditionalUNet, n: int) -> dict:
    """FID against n test images and the judge's accuracy, for n samples (n / 10 per class) at each of SCALES."""
    from course_lib import metrics
    from course_lib.data import fashion_mnist

    labels = torch.arange(n) % 10
    real = metrics.gaussian(metrics.features(fashion_mnist("test").subset(n, seed=0).images))
    out = {}
    for s in SCALES:
        feats = metrics.features(sample_cfg(model, NoiseSchedule(), labels, s, steps=50, seed=1))
        out[f"fid_{n}_scale{s:g}"] = round(metrics.frechet_distance(*metrics.gaussian(feats), *real), 3)
        out[f"judge_acc_{n}_scale{s:g}"] = round(float((metrics.judge_labels(feats=feats) == labels).float().mean()), 4)
    return out


@torch.no_grad()
def _classifier_metrics(model: nn.Module, n: int) -> dict:
    """Accuracy of p(y | x_t, t) on n noisy test images at each t of CLASSIFIER_T (fixed noise, seed 0)."""
    from course_lib.data import fashion_mnist

    test = fashion_mnist("test").subset(n, seed=0)
    x0, schedule = to_model(test.images), NoiseSchedule()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    model.eval()
    return {f"acc_{n}_t{t}": round(float((model(schedule.q_sample(x0, t, eps), t).argmax(1) == test.labels)
                                         .float().mean()), 4) for t in CLASSIFIER_T}


def train_shipped(model: nn.Module, name: str, cfg=None, progress: bool = True, n_eval: int = N_EVAL) -> dict:
    """Train ``model`` with the spec of ``name`` (resumable: ``checkpoints.state_path(name)``), then measure it."""
    from course_lib.checkpoints import state_path

    cfg = cfg or SHIPPED[name]
    state = state_path(name) if cfg == SHIPPED[name] else None      # shorter fallback runs are not resumed
    torch.manual_seed(cfg.seed)
    if name == "ddpm_cond":
        return train_cond_ddpm(model, cfg, state=state, progress=progress) | _cond_metrics(model, n_eval)
    return train_noisy_classifier(model, cfg, state=state, progress=progress) | _classifier_metrics(model, n_eval)


def load_guidance_model(name: str, device: torch.device | str = "cpu", profile: str = "auto") -> nn.Module:
    """``ddpm_cond`` or ``noisy_classifier`` in eval mode (EMA weights), its manifest entry as
    ``.checkpoint_entry`` (shipped, else cached, else trained here for the profile's ``FALLBACK`` length)."""
    from course_lib import checkpoints

    model = build(name).to(device)
    steps, n_eval = FALLBACK[resolve(profile)]
    spec = SHIPPED[name]
    cfg = replace(spec, steps=steps or spec.steps, warmup=min(spec.warmup, max(1, (steps or spec.steps) // 5)))
    model.checkpoint_entry = checkpoints.load(
        name, model, lambda m: train_shipped(m, name, cfg, progress=False, n_eval=n_eval), profile=profile)
    return model.eval()


def _make(name: str):
    def make():
        return build(name), lambda m: train_shipped(m, name)
    return make


CHECKPOINTS = {name: _make(name) for name in SHIPPED}     # for ``python -m course_lib checkpoints``
