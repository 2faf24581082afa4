"""Small shared helpers: seeding, device and mixed precision, the project's folders."""

from __future__ import annotations

import contextlib
import os
import platform
import random
from pathlib import Path

import numpy as np
import torch

PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path | None:
    """The checkout that holds course_lib (with ``data/`` and ``notebooks/``), or None when installed."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else None


def cache_dir() -> Path:
    """Where generated data and trained checkpoints are cached: ``$COURSE_CACHE`` or ``~/.cache/course_lib``."""
    path = Path(os.environ.get("COURSE_CACHE", Path.home() / ".cache" / "course_lib"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 when it is float16/bfloat16 (sums and softmaxes lose too much there), else unchanged:
    a float64 computation stays float64."""
    return t.float() if t.is_floating_point() and torch.finfo(t.dtype).bits < 32 else t


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(dev: torch.device | str):
    """Mixed precision on CUDA (bfloat16 where supported, else float16); a no-op on CPU."""
    dev = torch.device(dev)
    if dev.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def setup(seed: int = 0) -> torch.device:
    """Seed everything, pick the device and print one line about the environment."""
    seed_everything(seed)
    dev = device()
    gpu = f" ({torch.cuda.get_device_name(0)})" if dev.type == "cuda" else ""
    print(f"python {platform.python_version()} | torch {torch.__version__} | device {dev}{gpu} | "
          f"{torch.get_num_threads()} CPU threads | seed {seed}")
    return dev
