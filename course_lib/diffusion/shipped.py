"""Notebook 13's shipped checkpoint ``ddpm``: the course U-Net trained as a DDPM on Fashion-MNIST.

The U-Net has channels (16, 32, 64) at 28 -> 14 -> 7 with attention at 7x7 and in the middle (0.77M parameters):
narrow where the image is large, because the convolutions at 28x28 cost most of the time. Measured on one CPU
thread with the machine's other core busy (batch 64, 4-step benchmark): channels (16, 32, 64) 1.03 steps/s,
(32, 64, 64) 0.46, (24, 48, 96) 0.51. On both cores of an idle machine the (16, 32, 64) U-Net does 4.8 training
steps/s (forward, backward and Adam on batch 64; diffusers' UNet2DModel of the same layout, 0.99M parameters: 3.8),
so 20,000 steps of batch 64 (21 epochs) fit chapter 13's 90-minute budget. (The first shipped run, 5,000 steps on
one busy thread in 101 minutes, reached FID 8.94 on 3,000 samples.) Ho et al.'s linear schedule (T = 1,000, beta
1e-4 .. 0.02), Adam lr 5e-4 after 200 warm-up steps, gradient clipping at 1, EMA of the weights with decay 0.999; the checkpoint
holds the EMA weights. The manifest keeps FID and the judge's class KL on 3,000 DDIM-50 samples, x0's estimate
clipped to [-1, 1] at each step (``fid_3000``; the same samples' seed without clipping: ``fid_3000_noclip``).
``remeasure`` measures the shipped weights again and merges the numbers into the manifest; ``compare_samplers``
adds FID and seconds per image of Algorithm 2 over all 1,000 steps, DDIM-50 and DDIM-10 on 1,000 samples each.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from course_lib.diffusion.schedule import NoiseSchedule
from course_lib.diffusion.train import DDPMTrainConfig, sample_ddim, sample_ddpm, train_ddpm
from course_lib.diffusion.unet import UNet
from course_lib.profiles import resolve

CHANNELS = (16, 32, 64)
ATTENTION = (False, False, True)
SHIPPED = {"ddpm": DDPMTrainConfig(steps=20_000)}
N_EVAL = 3_000

# Without a shipped or cached checkpoint the same model trains this long (smoke: only so that every cell runs):
# profile -> (steps, samples for the metrics); None: the shipped spec's.
FALLBACK = {"smoke": (3, 50), "cpu": (300, 500), "gpu": (None, N_EVAL)}


def build_unet() -> UNet:
    return UNet(channels=CHANNELS, attention=ATTENTION)


def _metrics(model: nn.Module, cfg: DDPMTrainConfig, n: int, clip_x0: float | None = 1.0) -> dict:
    """FID (judge features) against n real test images and the judge's class KL to uniform, on n DDIM-50 samples
    (keys end in ``_noclip`` when x0's estimate is not clipped)."""
    import time

    from course_lib import metrics
    from course_lib.data import fashion_mnist

    start = time.perf_counter()
    samples = sample_ddim(model, NoiseSchedule(cfg.T), n, steps=50, seed=1, clip_x0=clip_x0)
    seconds = time.perf_counter() - start
    real = fashion_mnist("test").subset(n, seed=0).images
    tag = "" if clip_x0 else "_noclip"
    return {f"fid_{n}{tag}": round(metrics.fid(samples, real), 3),
            f"class_kl_{n}{tag}": round(metrics.kl_to_uniform(metrics.class_histogram(samples)), 4),
            f"ddim50_seconds_{n}{tag}": round(seconds, 1)}


def _shipped(name: str) -> UNet:
    """The shipped EMA U-Net ``name`` in eval mode; an error if data/checkpoints does not hold it."""
    from course_lib import checkpoints

    model = build_unet()
    entry = checkpoints.load(name, model, train=None, profile="cpu")
    if entry.get("origin") != "shipped":
        raise ValueError(f"{name!r} is not shipped in data/checkpoints: nothing to re-measure")
    return model.eval()


def remeasure(name: str = "ddpm", n: int = N_EVAL, clip_x0: float | None = 1.0) -> dict:
    """Measure the shipped checkpoint ``name`` again (n DDIM-50 samples) and merge the numbers into its manifest
    entry (``checkpoints.update_metrics``); the weights are not touched. -> the new metrics."""
    from course_lib import checkpoints

    new = _metrics(_shipped(name), SHIPPED[name], n, clip_x0)
    checkpoints.update_metrics(name, new)
    return new


SAMPLERS = {"ddpm1000": None, "ddim50": 50, "ddim10": 10}     # None: Algorithm 2 over all T steps


def compare_samplers(name: str = "ddpm", n: int = 1_000) -> dict:
    """Algorithm 2 over all 1,000 steps against DDIM-50 and DDIM-10 (x0 clipped, batches of 500): FID of n samples
    against n test images and seconds per image of each, merged into the manifest (``fid_{n}_ddpm1000``,
    ``ddpm1000_seconds_per_image``, ...). -> the new metrics."""
    import time

    from course_lib import checkpoints, metrics
    from course_lib.data import fashion_mnist

    model, schedule = _shipped(name), NoiseSchedule(SHIPPED[name].T)
    real = fashion_mnist("test").subset(n, seed=0).images
    new = {}
    for key, steps in SAMPLERS.items():
        start = time.perf_counter()
        samples = (sample_ddpm(model, schedule, n, seed=1) if steps is None
                   else sample_ddim(model, schedule, n, steps=steps, seed=1))
        new[f"{key}_seconds_per_image"] = round((time.perf_counter() - start) / n, 4)
        new[f"fid_{n}_{key}"] = round(metrics.fid(samples, real), 3)
    checkpoints.update_metrics(name, new)
    return new


def train_shipped(model: nn.Module, name: str = "ddpm", cfg: DDPMTrainConfig | None = None,
                  progress: bool = True, n_eval: int = N_EVAL) -> dict:
    """Train ``model`` with the spec of ``name`` (resumable: ``checkpoints.state_path(name)``), then measure it."""
    from course_lib.checkpoints import state_path

    cfg = cfg or SHIPPED[name]
    state = state_path(name) if cfg == SHIPPED[name] else None      # shorter fallback runs are not resumed
    torch.manual_seed(cfg.seed)
    return train_ddpm(model, cfg, state=state, progress=progress) | _metrics(model, cfg, n_eval)


def load_ddpm(name: str = "ddpm", device: torch.device | str = "cpu", profile: str = "auto") -> UNet:
    """The EMA U-Net of checkpoint ``name`` in eval mode, its manifest entry as ``.checkpoint_entry``
    (shipped, else cached, else trained here for the profile's ``FALLBACK`` length)."""
    from course_lib import checkpoints

    if name not in SHIPPED:
        raise ValueError(f"unknown diffusion checkpoint {name!r}: expected one of {sorted(SHIPPED)}")
    model = build_unet().to(device)
    steps, n_eval = FALLBACK[resolve(profile)]
    cfg = replace(SHIPPED[name], steps=steps or SHIPPED[name].steps)
    model.checkpoint_entry = checkpoints.load(
        name, model, lambda m: train_shipped(m, name, cfg, progress=False, n_eval=n_eval), profile=profile)
    return model.eval()


def _make(name: str):
    def make():
        return build_unet(), lambda m: train_shipped(m, name)
    return make


CHECKPOINTS = {name: _make(name) for name in SHIPPED}     # for ``python -m course_lib checkpoints``

from course_lib.diffusion import ncsn

CHECKPOINTS.update(ncsn.CHECKPOINTS)   # "ncsn": 5,000 steps of batch 64, ~80 min on one thread (resumable)
