"""Notebook 03's and 04's sizes per profile (shown in their parameters cells)."""

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
