"""Notebook 05's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class MaskRCNNNotebookConfig:
    n_train_scenes: int       # scenes for the short visible training run
    steps: int                # steps of that run (8 scenes each)
    n_eval_scenes: int        # held-out scenes for mask AP@0.5 and box AP@0.5 (ours and torchvision's)


MASKRCNN_CONFIGS = {
    "smoke": MaskRCNNNotebookConfig(n_train_scenes=64, steps=3, n_eval_scenes=10),
    "cpu": MaskRCNNNotebookConfig(n_train_scenes=2_000, steps=400, n_eval_scenes=300),
    "gpu": MaskRCNNNotebookConfig(n_train_scenes=6_000, steps=1_500, n_eval_scenes=1_000),
}


def maskrcnn_config(profile: str = "auto", **overrides) -> MaskRCNNNotebookConfig:
    return pick(MASKRCNN_CONFIGS, profile, **overrides)
