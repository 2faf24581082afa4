"""Profiles: one switch for how big every notebook runs.

    smoke  CI and tests       <= 30 s per notebook on 2 CPU cores: every cell runs, loss goes down
    cpu    laptops            <= 5 min per notebook on 2 cores: meaningful results
    gpu    Colab (CUDA)       <= 15 min per notebook on a T4-class GPU: full-size training

The switch is read, in order, from the papermill parameter ``PROFILE`` (when it is not ``"auto"``),
the environment variable ``COURSE_PROFILE``, else ``auto``: ``gpu`` when CUDA is available, else ``cpu``.
Each notebook's sizes are a small dataclass per profile, picked with :func:`pick`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, TypeVar

import torch

PROFILES = ("smoke", "cpu", "gpu")
T = TypeVar("T")


def resolve(profile: str | None = "auto") -> str:
    """Return the active profile name: explicit argument, else ``$COURSE_PROFILE``, else auto."""
    name = (profile or "auto").strip().lower()
    if name == "auto":
        name = os.environ.get("COURSE_PROFILE", "auto").strip().lower() or "auto"
    if name == "auto":
        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: expected one of {', '.join(PROFILES)} or 'auto'")
    return name


def pick(table: Mapping[str, T], profile: str | None = "auto", **overrides) -> T:
    """The dataclass for the active profile, with ``overrides`` applied in plain sight.

    ``table`` maps each of ``smoke``, ``cpu``, ``gpu`` to a dataclass instance.
    """
    name = resolve(profile)
    missing = [p for p in PROFILES if p not in table]
    if missing:
        raise ValueError(f"profile table lacks {missing}: it needs smoke, cpu and gpu")
    cfg = table[name]
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"profile table values must be dataclass instances, got {type(cfg).__name__}")
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
