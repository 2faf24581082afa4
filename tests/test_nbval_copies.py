"""tests/nbval_copies.py: the copies nbval runs end at their last marked cell and run in the smoke profile."""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import nbval_copies


def test_copies_end_at_the_last_marked_cell_and_run_in_smoke(tmp_path):
    nbval_copies.main(tmp_path)
    committed = {p.name: nbformat.read(p, as_version=4) for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    with_marks = {name for name, nb in committed.items() if any(nbval_copies.MARK in c.source for c in nb.cells)}
    copies = {p.name: nbformat.read(p, as_version=4) for p in tmp_path.glob("*.ipynb")}
    assert set(copies) == with_marks and with_marks
    for name, nb in copies.items():
        assert nbval_copies.MARK in nb.cells[-1].source
        assert [c.source for c in nb.cells[1:]] != [] and len(nb.cells) <= len(committed[name].cells)
        params = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and 'PROFILE = "smoke"' in params[0].source
        # the marked cells keep their committed outputs, which nbval compares against
        kept = [c for c in nb.cells if nbval_copies.MARK in c.source]
        assert all(c.outputs for c in kept)
