"""Notebooks 16-18's sizes per profile (shown in their parameters cells)."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.profiles import pick


@dataclass
class ViTNotebookConfig:
    train_steps: int      # steps of the notebook's own visible training loop (a fresh ViT, batch 128)
    n_eval: int           # test images for every accuracy of the notebook (all 10,000 in cpu and gpu)
    n_maps: int           # test images whose attention maps and rollout are drawn
    shifts: tuple[int, ...]   # pixel shifts of the translation probe


VIT_CONFIGS = {
    "smoke": ViTNotebookConfig(train_steps=3, n_eval=200, n_maps=4, shifts=(0, 2, 4)),
    "cpu": ViTNotebookConfig(train_steps=200, n_eval=10_000, n_maps=6, shifts=(0, 1, 2, 3, 4, 6)),
    "gpu": ViTNotebookConfig(train_steps=7_020, n_eval=10_000, n_maps=6, shifts=(0, 1, 2, 3, 4, 6)),
}


def vit_notebook_config(profile: str = "auto", **overrides) -> ViTNotebookConfig:
    return pick(VIT_CONFIGS, profile, **overrides)


@dataclass
class IGPTNotebookConfig:
    train_steps: int      # steps of the notebook's visible AR training loop (a fresh model, batch 64)
    n_eval: int           # test images for the NLLs and the baselines
    n_complete: int       # test images whose bottom halves are completed and judged
    n_probe_train: int    # training images of the linear probes (features of every layer)
    n_probe_test: int     # test images of the linear probes
    n_fid: int            # images per model and seed (3 seeds) in the FID table


IGPT_CONFIGS = {
    "smoke": IGPTNotebookConfig(train_steps=3, n_eval=100, n_complete=20, n_probe_train=200, n_probe_test=100,
                                n_fid=20),
    "cpu": IGPTNotebookConfig(train_steps=100, n_eval=2_000, n_complete=300, n_probe_train=5_000, n_probe_test=10_000,
                              n_fid=1_000),
    "gpu": IGPTNotebookConfig(train_steps=4_000, n_eval=10_000, n_complete=1_000, n_probe_train=20_000,
                              n_probe_test=10_000, n_fid=1_000),
}


def igpt_notebook_config(profile: str = "auto", **overrides) -> IGPTNotebookConfig:
    return pick(IGPT_CONFIGS, profile, **overrides)


@dataclass
class BEiTNotebookConfig:
    train_steps: int      # steps of the notebook's visible pre-training loop (a fresh BEiT, batch 128)
    n_eval: int           # test images for the masked-token accuracy and its baselines
    n_acc: int            # test images for the fine-tuned classifiers' accuracies (all 10,000 in cpu and gpu)
    n_probe_train: int    # labelled training images of the linear probes (taken from the 10 % subset)


BEIT_CONFIGS = {
    "smoke": BEiTNotebookConfig(train_steps=3, n_eval=100, n_acc=200, n_probe_train=300),
    "cpu": BEiTNotebookConfig(train_steps=100, n_eval=2_000, n_acc=10_000, n_probe_train=6_000),
    "gpu": BEiTNotebookConfig(train_steps=5_000, n_eval=10_000, n_acc=10_000, n_probe_train=6_000),
}


def beit_notebook_config(profile: str = "auto", **overrides) -> BEiTNotebookConfig:
    return pick(BEIT_CONFIGS, profile, **overrides)
