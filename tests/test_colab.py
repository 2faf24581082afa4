"""The Colab path, as a learner meets it: a Python where ``google.colab`` is importable and course_lib is not.

A fresh virtual environment is made that sees the course's dependencies (torch, ...) but not course_lib.
Each notebook's setup cell must then install course_lib from the repository -- here the local checkout,
through the one environment variable ``COURSE_REPO`` -- pick the device, and let the next cells run.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.xdist_group("colab")  # one worker builds the Colab venv once for the whole file

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def first_cells(path: Path) -> list[str]:
    """The setup cell, the parameters cell and the first cell after them (papermill's injected cell skipped)."""
    cells = [c for c in nbformat.read(path, as_version=4).cells
             if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
    return [c.source for c in cells[:3]]


def test_every_notebook_has_the_same_setup_cell():
    setups = {first_cells(p)[0] for p in NOTEBOOKS}
    assert len(setups) == 1, "the setup cells differ; the Colab test below runs only notebook 00's"


RUNNER = textwrap.dedent("""
    import json, sys, torch
    cells = json.load(open(sys.argv[1]))
    if sys.argv[2] == "cuda":  # pretend Colab gave us a GPU: the setup cell must pick it
        torch.cuda.is_available = lambda: True
        torch.cuda.get_device_name = lambda index=0: "Tesla T4 (pretend)"
        cells = cells[:1]
    scope = {}
    for source in cells:
        exec(compile(source, "<cell>", "exec"), scope)
    import course_lib
    print(json.dumps({"in_colab": scope["IN_COLAB"], "device": str(scope["DEVICE"]), "course_lib": course_lib.__file__,
                      "profile": scope.get("PROFILE")}))
""")


@pytest.fixture(scope="module")
def colab_python(tmp_path_factory):
    """A new venv with a fake ``google.colab``, the project's dependencies visible, course_lib not installed."""
    where = tmp_path_factory.mktemp("colab")
    venv = where / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    # Colab comes with torch & co preinstalled: a .pth line puts our site-packages on the path. Its own .pth
    # files (the editable install of course_lib among them) are not processed, so course_lib stays missing.
    (purelib / "course_deps.pth").write_text(site.getsitepackages()[0] + "\n")
    fake = where / "fake_colab" / "google" / "colab"  # a namespace package 'google' with 'google.colab' in it
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('"""Stands in for Colab\'s module in tests."""\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(PYTHONPATH=str(where / "fake_colab"), COURSE_REPO=str(ROOT), COURSE_PROFILE="smoke",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    check = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('course_lib'), "
                            "u.find_spec('google.colab') is not None, u.find_spec('torch') is not None)"],
                           capture_output=True, text=True, env=env, cwd=where, check=True)
    assert check.stdout.split() == ["None", "True", "True"], check.stdout
    return python, env, where


def run_cells(colab_python, notebook: Path, device: str) -> dict:
    python, env, where = colab_python
    cells = where / f"{notebook.stem}.json"
    cells.write_text(json.dumps(first_cells(notebook)))
    (where / "runner.py").write_text(RUNNER)
    done = subprocess.run([str(python), str(where / "runner.py"), str(cells), device], capture_output=True,
                          text=True, env=env, cwd=where, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_colab_setup_cell_installs_course_lib_and_the_next_cells_run(colab_python):
    found = run_cells(colab_python, NOTEBOOKS[0], "cpu")
    assert found["in_colab"] is True
    assert Path(found["course_lib"]).resolve().is_relative_to(ROOT), found  # installed from COURSE_REPO
    assert found["device"] == "cpu" and found["profile"] == "auto"
    python, env, where = colab_python
    shown = subprocess.run([str(python), "-m", "pip", "show", "course_lib"], capture_output=True, text=True, env=env)
    assert "Editable project location: " + str(ROOT) in shown.stdout, shown.stdout


@pytest.mark.slow
def test_colab_setup_cell_picks_the_gpu(colab_python):
    run_cells(colab_python, NOTEBOOKS[0], "cpu")  # installs course_lib if the test above did not run
    assert run_cells(colab_python, NOTEBOOKS[0], "cuda")["device"] == "cuda"


def committed_first_cells(path: Path) -> list[str]:
    """The setup cell, the parameters cell and the committed injected cell, as a learner runs them."""
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert "injected-parameters" in cells[2].metadata.get("tags", []), path.name
    return [c.source for c in cells[:3]]


BY_HAND = textwrap.dedent("""
    import json, sys, torch
    torch.cuda.is_available = lambda: True          # a learner's GPU (Colab, or CUDA locally)
    torch.cuda.get_device_name = lambda index=0: "Tesla T4 (pretend)"
    found = {}
    for name, cells in json.load(open(sys.argv[1])).items():
        scope = {}
        for source in cells:
            exec(compile(source, "<cell>", "exec"), scope)
        from course_lib.profiles import resolve
        found[name] = {"profile": resolve(scope["PROFILE"]), "outputs_from": scope.get("OUTPUTS_FROM"),
                       "device": str(scope["DEVICE"])}
    print(json.dumps(found))
""")


@pytest.mark.slow
def test_a_committed_notebook_run_by_hand_on_a_gpu_uses_the_gpu_profile(tmp_path):
    """Every committed notebook's first cells, run as a person runs them (no papermill, no $COURSE_PROFILE)
    with CUDA available, choose the gpu profile, while the committed cell still says its outputs are cpu's."""
    cells = tmp_path / "cells.json"
    cells.write_text(json.dumps({p.stem: committed_first_cells(p) for p in NOTEBOOKS}))
    (tmp_path / "by_hand.py").write_text(BY_HAND)
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_PROFILE", "PAPERMILL_INPUT_PATH")}
    done = subprocess.run([sys.executable, str(tmp_path / "by_hand.py"), str(cells)], capture_output=True,
                          text=True, env=env, cwd=ROOT / "notebooks", timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {p.stem: {"profile": "gpu", "outputs_from": "cpu profile", "device": "cuda"} for p in NOTEBOOKS}


@pytest.mark.slow
def test_colab_setup_cell_says_how_to_fix_a_failed_clone(colab_python):
    """When the repository cannot be cloned, the setup cell ends with one sentence naming COURSE_REPO."""
    python, env, where = colab_python
    script = where / "setup_only.py"
    script.write_text(first_cells(NOTEBOOKS[0])[0])
    bad = dict(env, COURSE_REPO=str(where / "no-such-repository"))
    # -S: no site-packages, so course_lib is missing even after the tests above installed it here (the cell
    # stops before it imports anything else).
    done = subprocess.run([str(python), "-S", str(script)], capture_output=True, text=True, env=bad, cwd=where,
                          timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    message = done.stderr.strip()
    assert "Traceback" not in message and len(message.splitlines()) == 1, message
    assert message.startswith(f"Could not clone {where / 'no-such-repository'}") and "set COURSE_REPO" in message
