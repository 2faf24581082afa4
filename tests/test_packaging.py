"""Packaging facts: one dependency list in two files, CI runs `make test`, the documented commands exist."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def normalize(requirement: str) -> str:
    """PEP 503 name of a requirement string: 'Scikit_Learn[x]>=1; python_version>"3"' -> 'scikit-learn'."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert name, f"not a requirement: {requirement!r}"
    return re.sub(r"[-_.]+", "-", name[1]).lower()


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_normalize():
    assert normalize("Scikit_Learn[extra]>=1.0; python_version > '3'") == "scikit-learn"
    assert normalize("torch==2.14.1") == "torch"
    assert normalize("ruamel.yaml") == "ruamel-yaml"


def test_environment_yml_mirrors_pyproject(pyproject):
    project = pyproject["project"]
    declared = [normalize(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    assert len(declared) == len(set(declared)), "a dependency is listed twice in pyproject.toml"

    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1
    mirrored = [normalize(r) for r in pip_lists[0]]
    assert len(mirrored) == len(set(mirrored)), "a dependency is listed twice in environment.yml"
    assert set(mirrored) == set(declared), (
        f"only in environment.yml: {sorted(set(mirrored) - set(declared))}; "
        f"only in pyproject.toml: {sorted(set(declared) - set(mirrored))}")
    assert "pip" in env["dependencies"]


def test_python_versions_agree(pyproject):
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda_python = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    required = pyproject["project"]["requires-python"].replace(" ", "")
    assert conda_python == [f"python{required}"]


def test_repository_url_is_https(pyproject):
    url = pyproject["project"]["urls"]["Repository"]
    assert url.startswith("https://")
    assert " " not in url and not url.endswith((".git", "/"))


def test_ci_runs_make_test():
    script = REPO / ".ci" / "run"
    commands = [line.strip() for line in script.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert "make test" in commands
    assert os.access(script, os.X_OK), ".ci/run is not executable"


def test_makefile_has_the_documented_targets():
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile, flags=re.M))
    assert {"course", "test", "setup"} <= targets
    test_recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "COURSE_PROFILE=smoke" in test_recipe and "pytest" in test_recipe


def test_readme_names_the_two_commands():
    readme = REPO / "README.md"
    if not readme.is_file():
        pytest.skip("README not written yet")
    text = readme.read_text()
    assert "make course" in text
    assert "make test" in text
