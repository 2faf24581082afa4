"""Notebook 02's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class InsideConfig:
    n_scan: int | None        # test images scanned for each unit's top activations (None: all 10,000)
    n_val_scenes: int         # train-split scenes used to pick the saliency threshold
    n_eval_scenes: int        # held-out test-split scenes for the localisation comparison
    regressor_steps: int      # a short visible training run of the box regressor...
    n_train_scenes: int       # ...on this many train-split scenes
    regressor_batch: int = 64  # ...in batches of this many
    k: int = 9                # top images per unit
    window: int = 8           # occluder side (pixels)
    stride: int = 2           # occluder step (pixels)
    n_occlusion_pool: int = 32  # test images searched for the ones an occluder hurts most
    units_per_layer: int = 2    # deconvnet figures: the most excited channels shown per layer


CONFIGS = {
    "smoke": InsideConfig(n_scan=64, n_val_scenes=16, n_eval_scenes=16, regressor_steps=3, n_train_scenes=32,
                          regressor_batch=16, k=4, n_occlusion_pool=4, units_per_layer=1),
    "cpu": InsideConfig(n_scan=None, n_val_scenes=200, n_eval_scenes=500, regressor_steps=100, n_train_scenes=2000),
    "gpu": InsideConfig(n_scan=None, n_val_scenes=500, n_eval_scenes=2000, regressor_steps=1500,
                        n_train_scenes=20_000),
}


def config(profile: str = "auto", **overrides) -> InsideConfig:
    return pick(CONFIGS, profile, **overrides)
