"""Notebook 11's shipped checkpoints: pix2pix at three values of lambda, its L1-only twin, and MUNIT.

The four U-Nets are the same generator (width 32, 137k parameters) trained for the same 5,000 steps of batch 32
(2.7 epochs of the 60,000 training pairs) with the paper's Adam settings (lr 2e-4, betas (0.5, 0.999)); they
differ only in the loss: L1 alone, or Eq. 4 with lambda = 1, 10, 100 (the paper's). MUNIT (channels 32,
style_dim 8) trains for 3,500 steps of 16 edge maps and 16 *other* items (unpaired), with its paper's
lr 1e-4 and lambda_x = 10, lambda_c = lambda_s = 1. Each checkpoint holds the generator only;
:func:`load_translator` loads it by name (shipped, else cached, else trained here with the profile's
``FALLBACK`` length).

Measured on one CPU thread, the machine's other core busy (30-second benchmarks): L1-only 21.5 steps/s,
pix2pix 11.2 steps/s (batch 32); MUNIT 3.7 steps/s (batch 16, channels 32), 3.2 steps/s in a 400-step trial run of
``train_translation``. So about 4 min for the L1-only U-Net, 7.5 min for each pix2pix and 16-18 min for MUNIT.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from course_lib.profiles import resolve
from course_lib.translation.train import (
    TranslationTrainConfig,
    build_model,
    train_translation,
)

P2P_STEPS = 5_000           # pix2pix: 11.2 steps/s on one thread -> ~7.5 min; L1-only (21.5 steps/s) -> ~4 min
MUNIT_STEPS = 3_500         # 3.2-3.7 steps/s on one thread -> 16-18 min
LAMBDAS = (1, 10, 100)

SHIPPED: dict[str, TranslationTrainConfig] = {
    "p2p_l1only": TranslationTrainConfig("l1", P2P_STEPS),
    **{f"p2p_lambda{lam}": TranslationTrainConfig("pix2pix", P2P_STEPS, lam=float(lam)) for lam in LAMBDAS},
    "munit_edges2items": TranslationTrainConfig("munit", MUNIT_STEPS, batch_size=16, lr=1e-4, channels=32),
}

# Without a shipped or cached checkpoint the same model trains this long (smoke: only so that every cell runs):
# profile -> (U-Net steps, MUNIT steps, training images, test pairs for the metrics); None: the shipped spec's.
FALLBACK = {"smoke": (4, 2, 200, 200), "cpu": (500, 150, 5_000, 2_000), "gpu": (None, None, None, 2_000)}


def _metrics(model: nn.Module, cfg: TranslationTrainConfig, n: int = 2_000) -> dict:
    """Test L1 (in [0, 1] pixel units) and FID against n real test items, on the first n test pairs."""
    from course_lib import metrics
    from course_lib.data import edge_pairs
    from course_lib.translation.train import munit_translate, translate

    edges, items, _ = edge_pairs(n, "test", seed=0)
    out = munit_translate(model, edges, seed=1) if cfg.kind == "munit" else translate(model, edges)
    result = {f"fid_{n}": round(metrics.fid(out, items), 3)}
    if cfg.kind != "munit":
        result[f"test_l1_{n}"] = round(float((out - items).abs().mean()), 5)
    return result


def train_shipped(model: nn.Module, name: str, cfg: TranslationTrainConfig | None = None,
                  progress: bool = True, n_eval: int = 2_000) -> dict:
    """Train ``model`` with the spec of ``name`` (resumable: ``checkpoints.state_path(name)``), then measure it."""
    from course_lib.checkpoints import state_path

    cfg = cfg or SHIPPED[name]
    state = state_path(name) if cfg == SHIPPED[name] else None      # shorter fallback runs are not resumed
    result = train_translation(model, cfg, state=state, progress=progress)
    return result | _metrics(model, cfg, n_eval)


def build_translator(name: str) -> nn.Module:
    if name not in SHIPPED:
        raise ValueError(f"unknown translation model {name!r}: expected one of {sorted(SHIPPED)}")
    return build_model(SHIPPED[name])


def fallback_config(name: str, profile: str = "auto") -> tuple[TranslationTrainConfig, int]:
    """The spec of ``name`` shortened to the profile's fallback length, and the test pairs to measure it on."""
    steps, munit_steps, n_train, n_eval = FALLBACK[resolve(profile)]
    spec = SHIPPED[name]
    steps = munit_steps if spec.kind == "munit" else steps
    return replace(spec, steps=steps or spec.steps, n_train=n_train or spec.n_train), n_eval


def load_translator(name: str, device: torch.device | str = "cpu", profile: str = "auto") -> nn.Module:
    """The generator (U-Net or MUNIT) of checkpoint ``name`` in eval mode, its manifest entry as ``.checkpoint_entry``."""
    from course_lib import checkpoints

    model = build_translator(name).to(device)
    cfg, n_eval = fallback_config(name, profile)
    model.checkpoint_entry = checkpoints.load(
        name, model, lambda m: train_shipped(m, name, cfg, progress=False, n_eval=n_eval), profile=profile)
    return model.eval()


def _make(name: str):
    def make():
        return build_translator(name), lambda m: train_shipped(m, name)
    return make


CHECKPOINTS = {name: _make(name) for name in SHIPPED}     # for ``python -m course_lib checkpoints``
