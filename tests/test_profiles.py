"""course_lib.profiles: which profile is active, and the per-profile size dataclasses."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from course_lib.profiles import PROFILES, pick, resolve


@dataclasses.dataclass(frozen=True)
class Sizes:
    epochs: int
    batch: int = 32


TABLE = {"smoke": Sizes(1, 8), "cpu": Sizes(3, 64), "gpu": Sizes(20, 256)}


@pytest.fixture
def no_env_profile(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)


def cuda(monkeypatch, available: bool):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)


def test_profiles_are_ordered_small_to_large():
    assert PROFILES == ("smoke", "cpu", "gpu")


@pytest.mark.parametrize("name", PROFILES)
def test_explicit_argument_beats_environment(monkeypatch, name):
    other = "gpu" if name != "gpu" else "smoke"
    monkeypatch.setenv("COURSE_PROFILE", other)
    assert resolve(name) == name


@pytest.mark.parametrize("arg", ["auto", None, "", "AUTO", " auto "])
def test_environment_beats_auto(monkeypatch, arg):
    cuda(monkeypatch, True)
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert resolve(arg) == "smoke"


def test_environment_auto_falls_through_to_detection(monkeypatch):
    cuda(monkeypatch, False)
    monkeypatch.setenv("COURSE_PROFILE", "auto")
    assert resolve("auto") == "cpu"
    monkeypatch.setenv("COURSE_PROFILE", "")
    assert resolve("auto") == "cpu"


@pytest.mark.parametrize("available, expected", [(True, "gpu"), (False, "cpu")])
def test_auto_detects_cuda(monkeypatch, no_env_profile, available, expected):
    cuda(monkeypatch, available)
    assert resolve("auto") == expected
    assert resolve() == expected
    assert resolve(None) == expected


def test_names_are_case_and_space_insensitive(no_env_profile):
    assert resolve(" Smoke ") == "smoke"
    assert resolve("GPU") == "gpu"


@pytest.mark.parametrize("bad", ["fast", "cuda", "smoke2"])
def test_unknown_argument_names_the_valid_ones(no_env_profile, bad):
    with pytest.raises(ValueError) as err:
        resolve(bad)
    message = str(err.value)
    assert repr(bad) in message
    for valid in (*PROFILES, "auto"):
        assert valid in message


def test_unknown_environment_value_is_rejected(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "laptop")
    with pytest.raises(ValueError, match="laptop"):
        resolve("auto")


@pytest.mark.parametrize("name", PROFILES)
def test_pick_returns_the_profile_row(no_env_profile, name):
    assert pick(TABLE, name) is TABLE[name]


def test_pick_follows_environment(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    assert pick(TABLE) == Sizes(3, 64)


def test_pick_applies_overrides_without_touching_the_table(no_env_profile):
    before = dict(TABLE)
    cfg = pick(TABLE, "cpu", batch=5)
    assert cfg == Sizes(epochs=3, batch=5)
    assert TABLE == before and TABLE["cpu"].batch == 64


def test_pick_rejects_unknown_override_field(no_env_profile):
    with pytest.raises(TypeError):
        pick(TABLE, "cpu", learning_rate=0.1)


@pytest.mark.parametrize("missing", PROFILES)
def test_pick_rejects_table_missing_a_profile(no_env_profile, missing):
    table = {k: v for k, v in TABLE.items() if k != missing}
    # the table is incomplete even when the active profile is present
    active = "smoke" if missing != "smoke" else "cpu"
    with pytest.raises(ValueError, match=missing):
        pick(table, active)


@pytest.mark.parametrize("value", [{"epochs": 1}, 1, (1, 8), None])
def test_pick_rejects_non_dataclass_values(no_env_profile, value):
    table = dict(TABLE, smoke=value)
    with pytest.raises(TypeError, match="dataclass"):
        pick(table, "smoke")


def test_pick_rejects_dataclass_class_instead_of_instance(no_env_profile):
    table = dict(TABLE, smoke=Sizes)  # forgot the parentheses
    with pytest.raises(TypeError, match="dataclass"):
        pick(table, "smoke")
