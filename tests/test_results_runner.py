"""course_lib.results (record, metrics read back) and course_lib.runner (papermill, results.json, README)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import course_lib
from course_lib import results
from course_lib.notebook_cells import COMMITTED_NOTE, outputs_profile
from course_lib.results import MIME, metrics_from_notebook, record
from course_lib.runner import END, START, results_table, run_notebooks, update_readme

pytestmark = pytest.mark.xdist_group("runner")  # one worker executes the runner's notebooks once for the file

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------
# record()


@pytest.mark.parametrize("name", ["", "test acc", "1st", "val-loss", "a.b", None, 3])
def test_record_rejects_non_identifier_names(name):
    with pytest.raises(ValueError, match="identifier"):
        record(name, 1.0)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, torch.tensor(float("nan")),
                                   True, False, torch.tensor(True), np.bool_(True),
                                   "0.9", None, 1 + 2j, [1.0], {"a": 1}])
def test_record_rejects_non_finite_bools_and_non_numbers(value):
    with pytest.raises(ValueError, match="finite real number"):
        record("metric", value)


@pytest.mark.parametrize("value, expected", [(0.93, 0.93), (42, 42.0), (np.float32(0.5), 0.5),
                                             (torch.tensor(0.25), 0.25), (torch.tensor(3), 3.0),
                                             (np.int64(-2), -2.0)])
def test_record_accepts_real_numbers_and_0d_tensors(monkeypatch, capsys, value, expected):
    monkeypatch.setattr(results, "RECORDED", {})
    got = record("test_acc", value)
    assert got == expected and type(got) is float
    assert results.RECORDED == {"test_acc": expected}
    assert f"recorded test_acc = {expected:.4g}" in capsys.readouterr().out


def test_record_is_exported_and_keeps_order(monkeypatch, capsys):
    monkeypatch.setattr(results, "RECORDED", {})
    assert course_lib.record is record
    course_lib.record("b", 2)
    course_lib.record("a", 1)
    course_lib.record("b", 3)
    assert list(results.RECORDED.items()) == [("b", 3.0), ("a", 1.0)]


def test_metrics_from_notebook_reads_the_mime_outputs():
    def shown(name, value):
        return {"output_type": "display_data", "metadata": {},
                "data": {MIME: {"name": name, "value": value}, "text/plain": f"recorded {name}"}}

    nb = {"cells": [
        {"cell_type": "markdown", "source": "# title"},
        {"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stdout", "text": "hi"},
                                          shown("loss", 1)]},
        {"cell_type": "code", "outputs": []},
        {"cell_type": "code", "outputs": [
            {"output_type": "execute_result", "data": {"text/plain": "0.5"}, "metadata": {}},
            shown("acc", 0.75)]},
        {"cell_type": "raw", "source": "x", "outputs": [shown("ignored", 9)]},
    ]}
    found = metrics_from_notebook(nb)
    assert found == {"loss": 1.0, "acc": 0.75}
    assert list(found) == ["loss", "acc"] and type(found["loss"]) is float
    assert metrics_from_notebook({"cells": []}) == {}
    assert metrics_from_notebook(nbformat.from_dict(nb)) == found


# ---------------------------------------------------------------------------------------------
# update_readme() and results_table()


def test_results_table():
    table = results_table({"profile": "cpu", "notebooks": {
        "01_a": {"seconds": 12.4, "metrics": {"acc": 0.91234, "loss": 2}},
        "02_b": {"seconds": 3.0, "metrics": {}},
        "03_c": {"seconds": 7.6, "error": "cell 4 (execution count 3): ValueError: boom"}}})
    lines = table.splitlines()
    assert "`cpu`" in lines[0]
    assert "| 01_a | 12 | acc = 0.9123, loss = 2 |" in lines
    assert "| 02_b | 3 | (none) |" in lines
    assert "| 03_c | 8 | **failed**: cell 4 (execution count 3): ValueError: boom |" in lines
    assert table.endswith("\n")


def test_results_table_rows_survive_multiline_errors():
    error = ("cell 3 (execution count 3): DataNotFoundError: Fashion-MNIST was not found. Searched:\n"
             "  - data/: /repo/data\nRemedies (any one):\n  1. set COURSE_DATA ...")
    table = results_table({"profile": "cpu", "notebooks": {
        "01_a": {"seconds": 1.0, "error": error}, "02_b": {"seconds": 2.0, "metrics": {"acc": 0.5}}}})
    rows = table.splitlines()[2:]  # after the caption and the blank line
    assert len(rows) == 2 + 2  # header, separator, one row per notebook
    assert all(row.startswith("|") and row.endswith("|") for row in rows)
    assert "Remedies" in rows[2] and rows[3].startswith("| 02_b |")


def test_update_readme_replaces_only_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    head = "# Course\n\nIntro.\n\n"
    tail = "\n\n## Later\nkeep me\n"
    readme.write_text(f"{head}{START}\nold table\n{END}{tail}")
    update_readme(readme, "| new | table |\n")
    text = readme.read_text()
    assert text == f"{head}{START}\n| new | table |\n{END}{tail}"
    update_readme(readme, "| new | table |\n")
    assert readme.read_text() == text  # idempotent


@pytest.mark.parametrize("body", ["# no markers\n", f"only {START}\n", f"only {END}\n"])
def test_update_readme_without_markers(tmp_path, body):
    readme = tmp_path / "README.md"
    readme.write_text(body)
    with pytest.raises(ValueError, match="markers"):
        update_readme(readme, "table\n")
    assert readme.read_text() == body


# ---------------------------------------------------------------------------------------------
# run_notebooks(): two tiny notebooks, executed once for the whole module


def notebook(*cells: str, parameters_at: int = 1) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.cells[parameters_at].metadata["tags"] = ["parameters"]
    return nb


GOOD = notebook(
    "import os\nimport course_lib",
    'PROFILE = "auto"',
    'course_lib.record("answer", 42)',
    'course_lib.record("got_smoke", float(PROFILE == "smoke"))\n'
    'course_lib.record("headless", float(os.environ.get("COURSE_HEADLESS") == "1"))',
)
BAD = notebook(
    "import course_lib",
    'PROFILE = "auto"',
    'raise ValueError("boom")',
    'course_lib.record("never", 1)',
)


@contextlib.contextmanager
def kernel_env(mp: pytest.MonkeyPatch, cache: Path):
    """The kernel imports course_lib from this checkout, and caches nothing outside ``cache``."""
    mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    mp.setenv("COURSE_CACHE", str(cache))
    mp.setenv("COURSE_HEADLESS", "0")  # the runner must set it to 1 for the kernel
    mp.delenv("COURSE_PROFILE", raising=False)  # the profile must come from the runner's parameter
    yield


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebooks")
    good, bad = folder / "good.ipynb", folder / "bad.ipynb"
    nbformat.write(GOOD, good)
    nbformat.write(BAD, bad)
    originals = {good: good.read_bytes(), bad: bad.read_bytes()}
    out = tmp_path_factory.mktemp("out")
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, kernel_env(mp, tmp_path_factory.mktemp("cache")):
        with contextlib.redirect_stdout(stdout):
            code = run_notebooks([good, bad], profile="smoke", out=out, inplace=True)
    return {"code": code, "out": out, "good": good, "bad": bad, "originals": originals,
            "stdout": stdout.getvalue()}


def test_run_returns_1_when_a_notebook_fails(run):
    assert run["code"] == 1
    assert "bad" in run["stdout"].splitlines()[-1]  # the last line names the failures


def test_results_json_schema(run):
    res = json.loads((run["out"] / "results.json").read_text())
    assert set(res) == {"profile", "notebooks"} and res["profile"] == "smoke"
    assert list(res["notebooks"]) == ["good", "bad"]
    good = res["notebooks"]["good"]
    assert set(good) == {"seconds", "metrics"}
    assert isinstance(good["seconds"], float) and good["seconds"] > 0
    # the kernel got PROFILE="smoke" from papermill and COURSE_HEADLESS=1 from the runner
    assert good["metrics"] == {"answer": 42.0, "got_smoke": 1.0, "headless": 1.0}


def test_failing_notebook_names_its_cell_and_error(run):
    bad = json.loads((run["out"] / "results.json").read_text())["notebooks"]["bad"]
    assert set(bad) == {"seconds", "error"}
    assert "ValueError" in bad["error"] and "boom" in bad["error"]
    # the executed copy in --out, without the red banner cells papermill adds around the error
    executed = [c for c in nbformat.read(run["out"] / "bad.ipynb", as_version=4).cells
                if "papermill-error-cell-tag" not in c.metadata.get("tags", [])]
    failing = [i for i, c in enumerate(executed) if c.cell_type == "code"
               and any(o.output_type == "error" for o in c.get("outputs", []))]
    assert len(failing) == 1 and "boom" in executed[failing[0]].source
    where = re.match(r"cell (\d+) \(execution count (\d+): .*boom.*\): ", bad["error"])
    assert where, bad["error"]
    assert int(where[1]) == failing[0]  # index in the notebook as run (with the injected parameters)
    assert int(where[2]) == executed[failing[0]].execution_count  # its In [n] in the executed copy
    assert "FAILED" in run["stdout"] and "bad.ipynb" in run["stdout"]


def test_results_md_has_both(run):
    table = (run["out"] / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| good |") or line.startswith("| bad |")]
    assert len(rows) == 2
    assert "answer = 42" in rows[0] and "**failed**" in rows[1] and "boom" in rows[1]


def test_inplace_replaces_only_the_clean_notebook(run):
    good, bad = run["good"], run["bad"]
    assert good.read_bytes() != run["originals"][good]
    committed, executed = (nbformat.read(p, as_version=4) for p in (good, run["out"] / "good.ipynb"))
    # The executed copy, outputs and all, except papermill's injected PROFILE: committed, it says which profile
    # produced the outputs and no longer pins PROFILE for a learner who runs the notebook.
    (i,) = [i for i, c in enumerate(executed.cells) if "injected-parameters" in c.metadata.get("tags", [])]
    assert committed.cells[i].source == COMMITTED_NOTE.format(profile=outputs_profile(executed))
    assert "\nPROFILE" not in committed.cells[i].source and outputs_profile(committed) == outputs_profile(executed)
    executed.cells[i].source = committed.cells[i].source
    assert committed.cells == executed.cells
    assert committed.metadata.papermill["input_path"] == "good.ipynb"  # no machine paths left behind
    assert metrics_from_notebook(nbformat.read(good, as_version=4))["answer"] == 42.0
    assert bad.read_bytes() == run["originals"][bad]


def test_cli_exit_code_and_message(tmp_path, monkeypatch):
    nb = tmp_path / "broken_one.ipynb"
    nbformat.write(BAD, nb)
    with kernel_env(monkeypatch, tmp_path / "cache"):
        proc = subprocess.run([sys.executable, "-m", "course_lib", "run", "--profile", "smoke", str(nb),
                               "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "broken_one" in proc.stdout and "boom" in proc.stdout
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert list(res["notebooks"]) == ["broken_one"] and "error" in res["notebooks"]["broken_one"]


def test_cli_rejects_unknown_profile(tmp_path):
    from course_lib.__main__ import main

    with pytest.raises(ValueError, match="unknown profile"):
        main(["run", "--profile", "huge", str(tmp_path / "x.ipynb"), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", [torch.tensor([0.5, 0.6]), np.array([1.0, 2.0])])
def test_record_rejects_arrays(value):
    with pytest.raises(ValueError, match="one number"):
        record("x", value)
