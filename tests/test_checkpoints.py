"""course_lib.checkpoints: shipped -> cached -> trained, sha256-checked, written atomically."""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file as real_save_file
from torch import nn

import course_lib.checkpoints as ckpt
from course_lib.checkpoints import CheckpointWarning, load, read_manifest, save, update_metrics


@pytest.fixture(autouse=True)
def shipped(tmp_path, monkeypatch) -> Path:
    """A private, empty shipped folder (never the checkout's data/checkpoints)."""
    folder = tmp_path / "shipped"
    monkeypatch.setattr(ckpt, "shipped_dir", lambda: folder)
    return folder


@pytest.fixture
def cache() -> Path:
    return ckpt.cache_checkpoint_dir()


def linear(fill: float | None = None, out: int = 3) -> nn.Linear:
    model = nn.Linear(4, out)
    if fill is not None:
        with torch.no_grad():
            model.weight.fill_(fill)
            model.bias.fill_(-fill)
    return model


class Trainer:
    """A stand-in for training: sets every weight to ``value`` and reports a metric."""

    def __init__(self, value: float = 7.0):
        self.value, self.calls = value, 0

    def __call__(self, model: nn.Module) -> dict:
        self.calls += 1
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(self.value)
        return {"loss": 0.5}


def assert_weights(model: nn.Module, value: float, bias: float | None = None):
    assert torch.all(model.weight == value)
    assert torch.all(model.bias == (value if bias is None else bias))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def no_warnings():
    """Fail on any CheckpointWarning inside the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        yield


def test_save_load_roundtrip_from_cache(cache):
    model = linear()
    path = save("tiny", model, profile="smoke", seconds=12.345, metrics={"acc": 0.9})
    assert path == cache / "tiny.safetensors" and path.is_file()
    entry = json.loads((cache / "manifest.json").read_text())["tiny"]
    assert entry["file"] == "tiny.safetensors"
    assert entry["sha256"] == sha(path)
    assert entry["profile"] == "smoke"
    assert entry["seconds"] == 12.3
    assert entry["metrics"] == {"acc": 0.9}
    assert entry["device"] == "cpu" and entry["threads"] == torch.get_num_threads()   # what the seconds were on

    other = linear()
    assert not torch.equal(other.weight, model.weight)
    got = load("tiny", other, profile="smoke")
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    assert got["source"] == str(cache) and got["sha256"] == entry["sha256"]
    assert got["metrics"] == {"acc": 0.9}


def test_update_metrics_merges_into_the_entry_and_keeps_the_weights(cache):
    path = save("tiny", linear(1.0), profile="cpu", seconds=5, metrics={"fid": 11.4, "steps": 10})
    before = read_manifest(cache)["tiny"]
    entry = update_metrics("tiny", {"fid": 8.6, "fid_noclip": 11.4}, folder=cache)
    after = read_manifest(cache)["tiny"]
    assert entry == after and after["metrics"] == {"fid": 8.6, "fid_noclip": 11.4, "steps": 10}
    assert {k: v for k, v in after.items() if k != "metrics"} == {k: v for k, v in before.items() if k != "metrics"}
    assert after["sha256"] == sha(path)
    with pytest.raises(ValueError, match="no manifest entry 'other'"):
        update_metrics("other", {"fid": 1.0}, folder=cache)
    path.write_bytes(path.read_bytes()[:-1])                           # weights that are not the measured ones
    with pytest.raises(ValueError, match="sha256"):
        update_metrics("tiny", {"fid": 1.0}, folder=cache)
    assert read_manifest(cache)["tiny"] == after


def test_manifest_keeps_other_entries(cache):
    save("a", linear(1.0), profile="cpu")
    save("b", linear(2.0), profile="cpu")
    assert set(read_manifest(cache)) == {"a", "b"}
    model = linear()
    load("a", model, profile="cpu")
    assert_weights(model, 1.0, -1.0)


def test_save_resolves_auto_profile(cache, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    save("tiny", linear())
    assert read_manifest(cache)["tiny"]["profile"] == "smoke"


def test_shipped_is_preferred_over_cache(shipped, cache):
    save("tiny", linear(1.0), shipped, profile="gpu")
    save("tiny", linear(2.0), profile="gpu")
    model, train = linear(), Trainer()
    got = load("tiny", model, train, profile="gpu")
    assert_weights(model, 1.0, -1.0)
    assert got["source"] == str(shipped) and train.calls == 0


def test_shipped_smoke_checkpoint_is_used_in_any_profile(shipped):
    save("tiny", linear(1.0), shipped, profile="smoke")
    model, train = linear(), Trainer()
    load("tiny", model, train, profile="gpu")
    assert_weights(model, 1.0, -1.0)
    assert train.calls == 0


def test_nothing_found_trains_and_saves(cache):
    model, train = linear(), Trainer(3.0)
    got = load("tiny", model, train, profile="smoke")
    assert train.calls == 1
    assert_weights(model, 3.0)
    assert got["source"] == str(cache) and got["metrics"] == {"loss": 0.5} and got["profile"] == "smoke"
    assert got["seconds"] >= 0
    # the next load uses the cache and does not train
    again, train2 = linear(), Trainer(9.0)
    load("tiny", again, train2, profile="smoke")
    assert train2.calls == 0
    assert_weights(again, 3.0)


def test_train_none_and_nothing_found():
    with pytest.raises(FileNotFoundError, match="tiny"):
        load("tiny", linear(), None, profile="smoke")


@pytest.mark.parametrize("where", ["cache", "shipped"])
def test_sha256_mismatch_warns_and_retrains(where, shipped, cache):
    folder = shipped if where == "shipped" else cache
    path = save("tiny", linear(1.0), folder, profile="gpu")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip the bits of one byte of tensor data
    path.write_bytes(bytes(data))
    model, train = linear(), Trainer(5.0)
    with pytest.warns(CheckpointWarning, match="sha256"):
        got = load("tiny", model, train, profile="gpu")
    assert train.calls == 1
    assert_weights(model, 5.0)
    # the retrained weights were saved, with a matching sha256, in the cache
    assert got["source"] == str(cache)
    saved = cache / "tiny.safetensors"
    assert read_manifest(cache)["tiny"]["sha256"] == sha(saved)
    check = linear()
    with pytest.warns(CheckpointWarning) if where == "shipped" else no_warnings():
        load("tiny", check, None, profile="gpu")
    assert_weights(check, 5.0)


def test_truncated_file_with_matching_sha256_warns_and_retrains(cache):
    path = save("tiny", linear(1.0), profile="cpu")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    manifest = read_manifest(cache)
    manifest["tiny"]["sha256"] = sha(path)
    (cache / "manifest.json").write_text(json.dumps(manifest))
    model, train = linear(), Trainer(4.0)
    with pytest.warns(CheckpointWarning, match="cannot be read|does not fit"):
        load("tiny", model, train, profile="cpu")
    assert train.calls == 1
    assert_weights(model, 4.0)


@pytest.mark.parametrize("other", [lambda: nn.Linear(4, 2), lambda: nn.Sequential(nn.Linear(4, 3))],
                         ids=["other-shapes", "other-names"])
def test_checkpoint_of_another_model_is_never_loaded(cache, other):
    save("tiny", other(), profile="cpu")
    model, train = linear(), Trainer(6.0)
    with pytest.warns(CheckpointWarning, match="does not fit Linear"):
        load("tiny", model, train, profile="cpu")
    assert train.calls == 1
    assert_weights(model, 6.0)


def test_rejected_checkpoint_leaves_the_model_untouched(cache):
    smaller = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        smaller[0].weight.fill_(1.0)
    save("tiny", smaller, profile="cpu")
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))  # same first layer, one more layer
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = {}

    def train(m: nn.Module) -> dict:
        seen.update({k: v.clone() for k, v in m.state_dict().items()})
        return {}

    with pytest.warns(CheckpointWarning, match="cannot be read|does not fit"):
        load("tiny", model, train, profile="cpu")
    for k, v in before.items():
        assert torch.equal(seen[k], v), f"{k} was overwritten by the rejected checkpoint"


def test_smaller_profile_cache_is_not_reused(cache):
    save("tiny", linear(1.0), profile="smoke")
    model, train = linear(), Trainer(8.0)
    with pytest.warns(CheckpointWarning, match="smoke"):
        got = load("tiny", model, train, profile="cpu")
    assert train.calls == 1
    assert_weights(model, 8.0)
    assert got["profile"] == "cpu"
    assert read_manifest(cache)["tiny"]["profile"] == "cpu"


def test_same_or_larger_profile_cache_is_reused(cache):
    save("tiny", linear(1.0), profile="smoke")
    model, train = linear(), Trainer(8.0)
    with no_warnings():
        load("tiny", model, train, profile="smoke")
    assert train.calls == 0
    assert_weights(model, 1.0, -1.0)

    save("big", linear(2.0), profile="gpu")
    model = linear()
    load("big", model, train, profile="cpu")
    assert train.calls == 0
    assert_weights(model, 2.0, -2.0)


def test_missing_file_listed_in_manifest_warns(cache):
    path = save("tiny", linear(1.0), profile="cpu")
    path.unlink()
    with pytest.warns(CheckpointWarning, match="missing"):
        with pytest.raises(FileNotFoundError):
            load("tiny", linear(), None, profile="cpu")


def test_failed_write_leaves_no_file(cache, monkeypatch):
    def half_then_fail(state, filename, metadata=None):
        real_save_file(state, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save("tiny", linear(), profile="cpu")
    assert not (cache / "tiny.safetensors").exists()
    assert sorted(p.name for p in cache.iterdir()) == []  # no temporary file, no manifest entry


def test_failed_write_keeps_the_previous_checkpoint(cache, monkeypatch):
    path = save("tiny", linear(1.0), profile="cpu")
    before, manifest_before = path.read_bytes(), (cache / "manifest.json").read_text()

    def fail(state, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 10)
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", fail)
    with pytest.raises(OSError):
        save("tiny", linear(2.0), profile="cpu")
    assert path.read_bytes() == before
    assert (cache / "manifest.json").read_text() == manifest_before
    assert sorted(p.name for p in cache.iterdir()) == ["manifest.json", "tiny.safetensors"]
    model = linear()
    load("tiny", model, None, profile="cpu")
    assert_weights(model, 1.0, -1.0)


def test_corrupt_manifest_warns_and_is_treated_as_empty(cache):
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "manifest.json").write_text('{"tiny": {"file": ')
    with pytest.warns(CheckpointWarning, match="not valid JSON"):
        assert read_manifest(cache) == {}
    model, train = linear(), Trainer(2.0)
    with pytest.warns(CheckpointWarning, match="not valid JSON"):
        load("tiny", model, train, profile="cpu")
    assert train.calls == 1
    # saving after training replaced the corrupt manifest with a valid one
    assert set(json.loads((cache / "manifest.json").read_text())) == {"tiny"}


def test_checkpoints_are_safetensors_not_pickle(cache):
    path = save("tiny", linear(), profile="cpu")
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8:8 + header_len])
    assert set(header) == {"__metadata__", "weight", "bias"}
    assert header["__metadata__"] == {"name": "tiny"}
    assert header["weight"]["shape"] == [3, 4]


@pytest.mark.parametrize("entry", [{"file": "tiny.safetensors", "sha256": "x", "profile": "laptop"},
                                   {"file": "tiny.safetensors"}, "just a string"])
def test_malformed_manifest_entry_warns_and_retrains(cache, entry):
    save("tiny", linear(1.0), profile="cpu")
    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["tiny"] = entry
    (cache / "manifest.json").write_text(json.dumps(manifest))
    model, train = linear(), Trainer(2.0)
    with pytest.warns(CheckpointWarning, match="malformed"):
        load("tiny", model, train, profile="cpu")
    assert train.calls == 1


def test_chapters_declare_their_checkpoints_and_the_core_imports_none():
    """``python -m course_lib checkpoints`` finds every shipped checkpoint through the chapters' own
    ``shipped.CHECKPOINTS``: each file in data/checkpoints has a declaration that builds a model, and the core's
    shipping module names no chapter (a new chapter adds nothing there)."""
    import ast

    import course_lib.shipping as shipping

    found = shipping.registry()
    folder = Path(shipping.__file__).parents[1] / "data" / "checkpoints"
    files = {p.stem for p in folder.glob("*.safetensors")}
    assert files and files <= set(found), f"shipped without a declaration: {sorted(files - set(found))}"
    assert set(read_manifest(folder)) <= set(found)
    model, train = found["fmnist_classifier"]()
    assert isinstance(model, nn.Module) and callable(train)
    tree = ast.parse(Path(shipping.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    chapters = {p.parent.name for p in Path(shipping.__file__).parent.glob("*/__init__.py")}
    assert not {m for m in imported if m.split(".")[1:2] and m.split(".")[1] in chapters}, imported
