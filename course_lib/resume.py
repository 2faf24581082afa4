"""Resumable training: everything a run needs to continue exactly where it stopped, in one safetensors file.

A training state holds the model's and optimizer's (and LR scheduler's) state dicts, the step reached, the
global and the data generator's random states, and any extra tensors (the losses so far). Tensors go in
the safetensors body; the nested structure around them (Python numbers, strings, tuples, dicts with int
keys) is JSON in the file's metadata -- nothing is ever unpickled. Each save is atomic, so a run killed at
any moment (SIGKILL included) leaves either the previous state or the new one under the final name.

``fit`` in ``course_lib.training`` uses it: killed and started again with the same ``state`` path and the
same arguments, it resumes from the last saved step and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from course_lib.checkpoints import CheckpointWarning, atomic_write


def _flatten(obj: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    """A JSON-able copy of ``obj`` with each tensor moved into ``tensors`` (replaced by its key)."""
    if isinstance(obj, Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(obj, dict):  # keys keep their type: optimizer states are keyed by int
        return {"__items__": [[k, _flatten(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} at {prefix!r} in a training state")


def _unflatten(obj: Any, tensors: dict[str, Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        return {k: _unflatten(v, tensors) for k, v in obj["__items__"]}
    return obj


def save_state(path: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: Any = None, generator: torch.Generator | None = None,
               extra: dict[str, Tensor] | None = None, config: dict | None = None) -> None:
    """Write the training state after ``step`` optimizer steps to ``path`` (atomically)."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.tmp*"):  # left by a run killed while writing
        stale.unlink(missing_ok=True)
    tree = {"step": int(step), "config": config or {},
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": torch.get_rng_state(), "generator": generator.get_state() if generator is not None else None,
            "extra": extra or {}}
    tensors: dict[str, Tensor] = {}
    structure = _flatten(tree, "s", tensors)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"structure": json.dumps(structure)}))


def load_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any = None,
               generator: torch.Generator | None = None, config: dict | None = None) -> tuple[int, dict[str, Tensor]] | None:
    """Restore the state saved at ``path``; ``(step, extra)``, or None when there is none to resume.

    A state that cannot be read, or that was written for another ``config`` (other data, epochs or learning
    rate), is not resumed: a CheckpointWarning says why, and the run starts from step 0 (and overwrites it).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            structure = json.loads(f.metadata()["structure"])
        tree = _unflatten(structure, tensors)
    except (SafetensorError, KeyError, TypeError, ValueError, OSError) as err:
        warnings.warn(f"training state {path} cannot be read ({err}); starting from step 0", CheckpointWarning)
        return None
    if tree["config"] != (config or {}):
        warnings.warn(f"training state {path} belongs to another run (config {tree['config']}, this run "
                      f"{config or {}}); starting from step 0", CheckpointWarning)
        return None
    device = next(model.parameters()).device
    model.load_state_dict(tree["model"])
    optimizer.load_state_dict(tree["optimizer"])
    for group_state in optimizer.state.values():  # optimizer tensors follow the model's device
        for k, v in group_state.items():
            if isinstance(v, Tensor) and k != "step":
                group_state[k] = v.to(device)
    if scheduler is not None and tree["scheduler"] is not None:
        scheduler.load_state_dict(tree["scheduler"])
    torch.set_rng_state(tree["rng"])
    if generator is not None and tree["generator"] is not None:
        generator.set_state(tree["generator"])
    return tree["step"], tree["extra"]
