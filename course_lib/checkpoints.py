"""Checkpoints by name: shipped -> cached -> trained, never loaded with pickle.

A checkpoint is a safetensors file ``<name>.safetensors`` beside a ``manifest.json`` that maps each
name to ``{"file", "sha256", "profile", "seconds", "metrics", "created"}``. Two folders hold them:

- shipped: ``data/checkpoints/`` of the course checkout (produced by ``python -m course_lib checkpoints``);
- cache:   ``$COURSE_CACHE/checkpoints`` (``~/.cache/course_lib/checkpoints``), written by earlier runs.

:func:`load` tries them in that order. A file whose sha256 differs from its manifest, that does not parse,
or whose tensors do not fit the model is reported in one sentence and skipped -- never used silently --
and the model is then trained (when a ``train`` function is given) and saved to the cache. A cached
checkpoint trained under a smaller profile than the one asked for is not reused. Files are written
atomically: to a temporary name in the same folder, flushed, then renamed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Callable

from safetensors.torch import load_file, save_file
import torch
from torch import nn

from course_lib.profiles import PROFILES, resolve
from course_lib.utils import cache_dir, repo_root

MANIFEST = "manifest.json"


class CheckpointWarning(UserWarning):
    """A checkpoint was found but not used (corrupt, mismatched or from a smaller profile)."""


def shipped_dir() -> Path | None:
    root = repo_root()
    return root / "data" / "checkpoints" if root is not None else None


def cache_checkpoint_dir() -> Path:
    return cache_dir() / "checkpoints"


def state_path(name: str) -> Path:
    """Where a run training checkpoint ``name`` keeps its resumable state (``course_lib.resume``)."""
    return cache_checkpoint_dir() / f"{name}.state.safetensors"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, flush it to disk, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        warnings.warn(f"{path} is not valid JSON ({err}); its checkpoints are ignored", CheckpointWarning)
        return {}


def save(name: str, model: nn.Module, folder: Path | None = None, *, profile: str = "auto",
         seconds: float = 0.0, metrics: dict | None = None) -> Path:
    """Write ``model``'s state dict as ``folder/name.safetensors`` and its manifest entry, atomically."""
    folder = Path(folder) if folder is not None else cache_checkpoint_dir()
    path = folder / f"{name}.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata={"name": name}))
    manifest = read_manifest(folder)
    device = next((t.device.type for t in model.state_dict().values()), "cpu")
    manifest[name] = {"file": path.name, "sha256": sha256(path), "profile": resolve(profile),
                      "seconds": round(float(seconds), 1), "metrics": metrics or {},
                      "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                      "device": device, "threads": torch.get_num_threads()}   # what "seconds" was measured on
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write(folder / MANIFEST, lambda tmp: tmp.write_text(text))
    return path


def update_metrics(name: str, metrics: dict, folder: Path | None = None) -> dict:
    """Merge ``metrics`` into the manifest entry of checkpoint ``name`` in ``folder`` (default: the shipped
    folder), atomically: for a new measurement of unchanged weights (a better sampler, a larger sample). The
    file, its sha256 and the training's numbers stay; keys in ``metrics`` replace the same keys. -> the entry."""
    folder = Path(folder) if folder is not None else shipped_dir()
    manifest = read_manifest(folder) if folder is not None else {}
    if name not in manifest:
        raise ValueError(f"no manifest entry {name!r} in {folder}: train and save the checkpoint first")
    if sha256(folder / manifest[name]["file"]) != manifest[name]["sha256"]:
        raise ValueError(f"{folder / manifest[name]['file']} does not match its manifest's sha256: not updating")
    manifest[name]["metrics"] = {**manifest[name].get("metrics", {}), **metrics}
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write(folder / MANIFEST, lambda tmp: tmp.write_text(text))
    return manifest[name]


def _mismatch(expected: dict, found: dict) -> str:
    """'' when ``found`` has exactly the keys, shapes and dtypes of ``expected``, else the first difference."""
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or extra:
        return f"missing {missing[:3]}, unexpected {extra[:3]}"
    for key, tensor in expected.items():
        if found[key].shape != tensor.shape or found[key].dtype != tensor.dtype:
            return f"{key}: {tuple(found[key].shape)} {found[key].dtype}, expected {tuple(tensor.shape)} {tensor.dtype}"
    return ""


def _try_load(name: str, folder: Path, model: nn.Module, min_profile: str) -> dict | None:
    """Load ``name`` from ``folder`` into ``model``; the manifest entry, or None (with a warning why)."""
    entry = read_manifest(folder).get(name)
    if entry is None:
        return None
    where = f"checkpoint {name!r} in {folder}"
    if not isinstance(entry, dict) or not {"file", "sha256"} <= set(entry) or entry.get("profile", "cpu") not in PROFILES:
        warnings.warn(f"{where}: its manifest entry is malformed ({entry!r:.80}); not using it", CheckpointWarning)
        return None
    path = folder / entry["file"]
    if not path.is_file():
        warnings.warn(f"{where}: the manifest lists {path.name} but the file is missing", CheckpointWarning)
        return None
    if sha256(path) != entry["sha256"]:
        warnings.warn(f"{where}: sha256 does not match the manifest (corrupt or edited file); not using it",
                      CheckpointWarning)
        return None
    if PROFILES.index(entry.get("profile", "cpu")) < PROFILES.index(min_profile):
        warnings.warn(f"{where} was trained in the {entry.get('profile')} profile, smaller than {min_profile}; "
                      "not using it", CheckpointWarning)
        return None
    try:
        state = load_file(str(path))
    except Exception as err:  # truncated or not a safetensors file
        warnings.warn(f"{where} cannot be read ({err}); not using it", CheckpointWarning)
        return None
    problem = _mismatch(model.state_dict(), state)
    if problem:  # checked before loading, so a rejected checkpoint never half-fills the model
        warnings.warn(f"{where} does not fit {type(model).__name__} ({problem}); not using it", CheckpointWarning)
        return None
    model.load_state_dict(state, strict=True)
    return dict(entry, source=str(folder), origin="shipped" if folder == shipped_dir() else "cached")


def load(name: str, model: nn.Module, train: Callable[[nn.Module], dict] | None = None,
         profile: str = "auto") -> dict:
    """Fill ``model`` from the checkpoint ``name``: shipped, else cached, else ``train(model)`` then save.

    ``train`` returns the metrics to keep in the manifest. Returns the manifest entry, with ``source``
    (the folder) and ``origin``: ``"shipped"``, ``"cached"`` or ``"trained"`` (just now).
    """
    profile = resolve(profile)
    for folder in (shipped_dir(), cache_checkpoint_dir()):
        if folder is not None:
            # shipped checkpoints were trained on purpose: use them in any profile
            entry = _try_load(name, folder, model, "smoke" if folder == shipped_dir() else profile)
            if entry is not None:
                return entry
    if train is None:
        raise FileNotFoundError(f"no usable checkpoint named {name!r} (looked in {shipped_dir()} and "
                                f"{cache_checkpoint_dir()}), and no train function was given")
    start = time.perf_counter()
    metrics = train(model)
    seconds = time.perf_counter() - start
    path = save(name, model, cache_checkpoint_dir(), profile=profile, seconds=seconds, metrics=metrics)
    state_path(name).unlink(missing_ok=True)  # the finished run's resumable state is no longer needed
    return dict(read_manifest(path.parent)[name], source=str(path.parent), origin="trained")
