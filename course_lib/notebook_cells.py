"""The cells every notebook shares, written from one source: ``python -m course_lib sync``.

- **The setup cell** (the first code cell) installs course_lib on Colab from the course's repository. Its
  address is written in one place, pyproject.toml's ``[project.urls] Repository``; ``sync`` copies it into
  every notebook's setup cell (a test fails when one is out of date). A learner who works from a fork or a
  local copy sets ``COURSE_REPO``; when the clone fails, the cell says so in one sentence, not a traceback.
- **The committed profile note.** papermill records the profile of a run by injecting ``PROFILE = "cpu"``
  after the parameters cell. Committed as is, that line would pin a learner who opens the notebook on a GPU
  to the cpu profile. So a committed notebook's injected cell says which profile produced its outputs
  (``OUTPUTS_FROM = "cpu profile"``) and leaves ``PROFILE`` to the parameters cell (``"auto"``: gpu with CUDA,
  else cpu). The note does not contain an assignment to PROFILE, not even in a comment, so nobody (reader or
  tool) takes it for one.
  papermill still finds and replaces the cell (its tag is kept) when the runner executes the notebook again.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from course_lib.utils import repo_root

INJECTED_TAG = "injected-parameters"

SETUP_CELL = '''\
# Setup. On Colab: install course_lib from the course repository (locally, `make` has installed it).
import importlib.util, os, subprocess, sys
REPO_URL = "{repo_url}"  # from pyproject.toml [project.urls] Repository
IN_COLAB = importlib.util.find_spec("google") is not None and importlib.util.find_spec("google.colab") is not None
if IN_COLAB and importlib.util.find_spec("course_lib") is None:
    src = os.environ.get("COURSE_REPO", REPO_URL)  # a git URL or the path of a local checkout
    if not os.path.isdir(src):
        if not os.path.isdir("/content/course/.git"):
            clone = subprocess.run(["git", "clone", "--depth", "1", "--quiet", src, "/content/course"],
                                   capture_output=True, text=True)
            if clone.returncode != 0:
                raise SystemExit(f"Could not clone {{src}}: set COURSE_REPO to the course's git URL or a local "
                                 f"checkout (run `%env COURSE_REPO=<url or path>`), then run this cell again.")
        src = "/content/course"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", f"{{src}}[test]"], check=True)
    sys.path.insert(0, src)
    os.chdir(os.path.join(src, "notebooks"))

import torch
import course_lib
from course_lib import plots, record
DEVICE = course_lib.setup(seed=0)
plots.use_course_style()'''

COMMITTED_NOTE = '''\
# Parameters
# The outputs below were produced by `python -m course_lib run --profile {profile}`.
# Run by hand, the notebook keeps the choice of the cell above ("auto": gpu with CUDA, else cpu).
OUTPUTS_FROM = "{profile} profile"'''

# papermill's injected `PROFILE = "cpu"`, or the committed note's `OUTPUTS_FROM = "cpu profile"`
_PROFILE_IN_CELL = re.compile(r"""^\s*(?:PROFILE\s*=\s*["'](\w+)["']|OUTPUTS_FROM\s*=\s*["'](\w+) profile["'])""", re.M)


def repository_url(root: Path | None = None) -> str:
    """The course's repository address, from pyproject.toml ``[project.urls] Repository``."""
    root = root or repo_root()
    if root is None:
        raise FileNotFoundError("no course checkout found (pyproject.toml beside course_lib/)")
    found = re.search(r'^Repository\s*=\s*"([^"]+)"', (root / "pyproject.toml").read_text(), re.M)
    if not found:
        raise ValueError(f"{root / 'pyproject.toml'} has no [project.urls] Repository = \"...\" line")
    return found[1]


def setup_cell(repo_url: str) -> str:
    """The setup cell's source for a course hosted at ``repo_url``."""
    return SETUP_CELL.format(repo_url=repo_url)


def outputs_profile(nb: nbformat.NotebookNode) -> str | None:
    """The profile that produced a notebook's outputs (its injected cell), or None if the runner never ran it."""
    for cell in nb.cells:
        if INJECTED_TAG in cell.metadata.get("tags", []):
            found = _PROFILE_IN_CELL.search(cell.source)
            return (found[1] or found[2]) if found else None
    return None


def as_committed(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Turn papermill's ``PROFILE = "cpu"`` into the committed profile note (idempotent; in place)."""
    for cell in nb.cells:
        if INJECTED_TAG in cell.metadata.get("tags", []):
            profile = outputs_profile(nb)
            if profile is not None:
                cell.source = COMMITTED_NOTE.format(profile=profile)
    return nb


def sync_notebook(path: Path, repo_url: str) -> bool:
    """Write the shared setup cell and the committed profile note into ``path``; True if it changed."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or "course_lib.setup(" not in code[0].source:
        raise ValueError(f"{path.name}: the first code cell is not the course's setup cell")
    code[0].source = setup_cell(repo_url)
    as_committed(nb)
    after = nbformat.writes(nb)
    if after != before:
        path.write_text(after)
    return after != before


def sync(notebooks: list[Path] | None = None) -> int:
    """``python -m course_lib sync``: bring every notebook's shared cells up to date."""
    root = repo_root()
    paths = notebooks or sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    url = repository_url(root)
    changed = [p.name for p in paths if sync_notebook(Path(p), url)]
    print(f"{len(changed)} of {len(paths)} notebooks updated" + (f": {', '.join(changed)}" if changed else ""))
    return 0
