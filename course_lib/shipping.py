"""``python -m course_lib checkpoints``: train the shipped checkpoints with one command.

Each chapter declares its checkpoints (``CHECKPOINTS`` in ``course_lib/<chapter>/shipped.py``): a function that
builds a model and says how to train it. ``registry`` collects them; the result of a training goes to
``data/checkpoints/`` with its sha256, training seconds and metrics in the manifest.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import time
from typing import Callable

from torch import nn

import course_lib
from course_lib import checkpoints
from course_lib.utils import device, seed_everything


def registry() -> dict[str, Callable[[], tuple[nn.Module, Callable[[nn.Module], dict]]]]:
    """Every shipped checkpoint, by name: ``make() -> (model, train)``, ``train(model) -> metrics``.

    Each chapter package declares its own in ``course_lib/<chapter>/shipped.py`` as ``CHECKPOINTS``; this
    finds them, so a new chapter adds no code here. Two chapters declaring one name is an error."""
    found: dict[str, Callable] = {}
    for info in sorted(pkgutil.iter_modules(course_lib.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        module_name = f"course_lib.{info.name}.shipped"
        if importlib.util.find_spec(module_name) is None:
            continue
        declared = getattr(importlib.import_module(module_name), "CHECKPOINTS", {})
        clash = sorted(set(found) & set(declared))
        if clash:
            raise ValueError(f"checkpoint name(s) {clash} declared twice (again in {module_name})")
        found.update(declared)
    return found


def ship_checkpoints(names: list[str]) -> int:
    folder = checkpoints.shipped_dir()
    if folder is None:
        print("checkpoints are shipped from a course checkout (run this inside the repository)")
        return 2
    shipped = registry()
    unknown = sorted(set(names) - set(shipped))
    if unknown:
        print(f"unknown checkpoint(s) {unknown}; known: {sorted(shipped)}")
        return 2
    for name in names or list(shipped):
        seed_everything(0)
        model, train = shipped[name]()
        model = model.to(device())
        start = time.perf_counter()
        metrics = train(model)
        seconds = time.perf_counter() - start
        profile = "gpu" if device().type == "cuda" else "cpu"
        path = checkpoints.save(name, model, folder, profile=profile, seconds=seconds, metrics=metrics)
        checkpoints.state_path(name).unlink(missing_ok=True)
        print(f"{name}: {metrics} in {seconds:.0f} s -> {path}")
    return 0
