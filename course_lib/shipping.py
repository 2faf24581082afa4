"""``python -m course_lib checkpoints``: train the shipped checkpoints with one command.

Each entry says how to build and train one checkpoint; the result goes to ``data/checkpoints/`` with
its sha256, training seconds and metrics in the manifest. Chapters add their checkpoints to ``SHIPPED``.
"""

from __future__ import annotations

import time
from typing import Callable

from torch import nn

from course_lib import checkpoints
from course_lib.utils import device, seed_everything


def _fmnist_classifier() -> tuple[nn.Module, Callable[[nn.Module], dict]]:
    from course_lib.cnn.classifier import SHIPPED as cfg
    from course_lib.cnn.classifier import build_classifier, train_classifier

    return build_classifier(), lambda model: train_classifier(model, cfg)


SHIPPED: dict[str, Callable[[], tuple[nn.Module, Callable[[nn.Module], dict]]]] = {
    "fmnist_classifier": _fmnist_classifier,
}


def ship_checkpoints(names: list[str]) -> int:
    folder = checkpoints.shipped_dir()
    if folder is None:
        print("checkpoints are shipped from a course checkout (run this inside the repository)")
        return 2
    unknown = sorted(set(names) - set(SHIPPED))
    if unknown:
        print(f"unknown checkpoint(s) {unknown}; known: {sorted(SHIPPED)}")
        return 2
    for name in names or list(SHIPPED):
        seed_everything(0)
        model, train = SHIPPED[name]()
        model = model.to(device())
        start = time.perf_counter()
        metrics = train(model)
        seconds = time.perf_counter() - start
        profile = "gpu" if device().type == "cuda" else "cpu"
        path = checkpoints.save(name, model, folder, profile=profile, seconds=seconds, metrics=metrics)
        print(f"{name}: {metrics} in {seconds:.0f} s -> {path}")
    return 0
