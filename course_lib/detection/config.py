"""Notebook 03's sizes per profile (shown in their parameters cells)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class RCNNNotebookConfig:
    n_recall_scenes: int      # scenes for the selective-search recall curve
    n_train_scenes: int       # scenes whose proposals feed the short visible fine-tuning run
    steps: int                # steps of that run
    n_eval_scenes: int        # held-out scenes for mAP and seconds per image


RCNN_CONFIGS = {
    "smoke": RCNNNotebookConfig(n_recall_scenes=3, n_train_scenes=3, steps=2, n_eval_scenes=3),
    "cpu": RCNNNotebookConfig(n_recall_scenes=100, n_train_scenes=150, steps=120, n_eval_scenes=200),
    "gpu": RCNNNotebookConfig(n_recall_scenes=300, n_train_scenes=1500, steps=1500, n_eval_scenes=500),
}


def rcnn_config(profile: str = "auto", **overrides) -> RCNNNotebookConfig:
    return pick(RCNN_CONFIGS, profile, **overrides)
