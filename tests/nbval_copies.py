"""Copy the committed notebooks for nbval, with the injected PROFILE set to "smoke".

The committed notebooks carry papermill's injected-parameters cell from their cpu run; nbval cannot pass
parameters, so `make test` runs nbval on these copies. Only that cell's source changes: the cells and
their committed outputs stay as they are, and nbval compares the cells marked `# NBVAL_CHECK_OUTPUT`.
Each copy ends at its last marked cell, and a notebook with no marked cell gets no copy: every notebook is
executed to the end in the smoke test (tests/test_notebooks.py), so what nbval adds is the comparison of the
marked outputs, and executing the cells after them again would only cost time.
Usage: python tests/nbval_copies.py OUT_DIR
"""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
MARK = "NBVAL_CHECK_OUTPUT"


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.ipynb"):
        old.unlink()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        marked = [i for i, cell in enumerate(nb.cells) if MARK in cell.source]
        if not marked:
            continue
        nb.cells = nb.cells[: marked[-1] + 1]
        for cell in nb.cells:
            if "injected-parameters" in cell.metadata.get("tags", []):
                cell.source = 'PROFILE = "smoke"  # nbval copy (the committed run used the cpu profile)'
        nbformat.write(nb, out / path.name)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
