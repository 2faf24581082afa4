"""Notebook 04's sizes per profile (shown in its parameters cell)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class YOLONotebookConfig:
    n_train_scenes: int       # scenes for the short visible training run
    steps: int                # steps of that run (batch 64)
    n_eval_scenes: int        # held-out scenes for mAP
    n_speed_images: int       # images timed for images/second (YOLO and R-CNN)
    n_compare_scenes: int = 200  # the first held-out scenes, where R-CNN is evaluated too (notebook 03's 200)
    n_crowd_scenes: int = 300    # 4-item scenes drawn with overlaps allowed, searched for objects sharing a cell


YOLO_CONFIGS = {
    "smoke": YOLONotebookConfig(n_train_scenes=32, steps=3, n_eval_scenes=20, n_speed_images=2, n_compare_scenes=3,
                                 n_crowd_scenes=40),
    "cpu": YOLONotebookConfig(n_train_scenes=3_000, steps=200, n_eval_scenes=300, n_speed_images=30),
    "gpu": YOLONotebookConfig(n_train_scenes=20_000, steps=3_000, n_eval_scenes=1_000, n_speed_images=100,
                               n_crowd_scenes=1_000),
}


def yolo_config(profile: str = "auto", **overrides) -> YOLONotebookConfig:
    return pick(YOLO_CONFIGS, profile, **overrides)
