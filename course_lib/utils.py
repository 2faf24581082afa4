"""Small shared helpers: seeding, device and mixed precision, the project's folders."""

from __future__ import annotations

import contextlib
import os
import platform
import random
import weakref
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


def values_checkable(t: torch.Tensor) -> bool:
    """Whether checking ``t``'s *values* (a range, a sign) is free: only on the CPU. On a GPU, reading a value back
    waits for every queued kernel (a host synchronisation), which inside a training or sampling loop stalls the
    GPU at every step; there the value checks are skipped (an out-of-range index still fails, as a device-side
    assert) while shapes and dtypes are checked everywhere. The tests and the cpu profile run the value checks."""
    return t.device.type == "cpu"


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch Generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def amp_dtype(dev: torch.device | str) -> torch.dtype | None:
    """The mixed-precision dtype on ``dev``: bfloat16 on GPUs that compute in it natively (compute capability
    >= 8: A100, L4, H100), float16 on older ones (T4, V100: they would only *emulate* bfloat16, slowly, which
    ``torch.cuda.is_bf16_supported()`` counts as support unless asked not to), None on the CPU."""
    dev = torch.device(dev)
    if dev.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


def autocast(dev: torch.device | str):
    """Mixed precision in ``amp_dtype(dev)`` (on CUDA); a no-op where that is None (the CPU). Inside it, matmuls
    and convolutions run in the low precision while reductions, softmax, log, exp and the losses stay in float32
    (torch's autocast op lists); parameters and their gradients stay float32."""
    dtype = amp_dtype(dev)
    return contextlib.nullcontext() if dtype is None else torch.autocast(torch.device(dev).type, dtype=dtype)


_SCALERS: "weakref.WeakKeyDictionary[torch.optim.Optimizer, torch.amp.GradScaler]" = weakref.WeakKeyDictionary()


def backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, dev: torch.device | str,
                  grad_clip: float | None = None) -> None:
    """zero_grad, backward, optionally clip the gradient norm at ``grad_clip``, and step, for a loss computed
    under ``autocast(dev)``.

    Under float16 the small gradients underflow to zero, so the loss is scaled up before backward and the
    gradients down before the clip and the step, with the scale adapted to avoid overflow (Micikevicius et al.
    2018, ``torch.amp.GradScaler``; the scaler is kept per optimizer so that its scale persists across steps, and
    its overflow check costs one host synchronisation per step). bfloat16 has float32's range and float32 needs
    no scaling: there it is a plain backward and step."""
    optimizer.zero_grad(set_to_none=True)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if amp_dtype(dev) != torch.float16:
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()
        return
    scaler = _SCALERS.get(optimizer)
    if scaler is None:
        scaler = _SCALERS[optimizer] = torch.amp.GradScaler(torch.device(dev).type)
    scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(optimizer)                   # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()


def compile_if_asked(model: torch.nn.Module, dev: torch.device | str) -> torch.nn.Module:
    """``model`` compiled in place (``nn.Module.compile``: its state_dict keys and checkpoints are unchanged) when
    the environment asks for it with ``COURSE_COMPILE=1`` and ``dev`` is a GPU; else untouched. Off by default:
    compiling takes a minute or two, which the short gpu-profile loops do not win back, while a learner's longer
    run (more steps than the profile's) does."""
    if os.environ.get("COURSE_COMPILE") == "1" and torch.device(dev).type == "cuda":
        model.compile()
    return model


def setup(seed: int = 0) -> torch.device:
    """Seed everything, pick the device and print one line about the environment."""
    seed_everything(seed)
    dev = device()
    gpu = f" ({torch.cuda.get_device_name(0)})" if dev.type == "cuda" else ""
    print(f"python {platform.python_version()} | torch {torch.__version__} | device {dev}{gpu} | "
          f"{torch.get_num_threads()} CPU threads | seed {seed}")
    return dev
