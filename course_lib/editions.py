"""Two editions from one source: ``python -m course_lib learner``.

The committed notebooks in ``notebooks/`` are the *complete* edition, executed in the cpu profile. The parts a
learner writes are marked there with nbgrader's convention, inside code cells::

    def saliency(model, x, target):
        ### BEGIN SOLUTION
        x = x.clone().requires_grad_(True)
        ...
        return x.grad.abs().amax(dim=1)
        ### END SOLUTION

The *learner* edition (``learner/``, same file names) is generated from them: outputs and execution counts
cleared, each solution region replaced by a stub, Colab badges pointing at ``learner/``, and the solution
itself moved into a collapsed "Solution" block right after its cell, for the learner to reveal. A stub keeps
the notebook running from top to bottom before anything is filled in:

- a region made only of assignments (``answer = 23``, ``my_prediction = "contractive"``) becomes the same
  names set to ``None`` (the check then says "not answered yet");
- any other region (a function's body) becomes ``pass`` (the function returns None, which the check reads as
  "not answered yet"); the cells after a check use course_lib's implementation and say so.

``tests/test_editions.py`` fails when ``learner/`` is out of date; ``tests/test_notebooks.py`` runs both editions of
every notebook in the smoke profile, in one kernel (``both_editions`` below).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

from course_lib.utils import repo_root

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB_COMMENT = "# YOUR CODE HERE"
LEARNER_DIR = "learner"
HEADER = ("> **Learner edition.** The cells marked `# YOUR CODE HERE` are yours to write; each check says whether "
          "your code or answer is right, and until it is, the notebook goes on with course_lib's implementation. "
          "The complete, executed edition is [`notebooks/{name}`](../notebooks/{name}).")

_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_][A-Za-z_0-9]*(?:\s*,\s*[A-Za-z_][A-Za-z_0-9]*)*)\s*=(?!=)")


def solution_regions(source: str) -> list[tuple[int, int]]:
    """(begin, end) line indices of each ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region of a cell."""
    lines, regions, start = source.split("\n"), [], None
    for i, line in enumerate(lines):
        if line.strip() == BEGIN:
            if start is not None:
                raise ValueError(f"line {i + 1}: {BEGIN} inside another solution region")
            start = i
        elif line.strip() == END:
            if start is None:
                raise ValueError(f"line {i + 1}: {END} without {BEGIN}")
            regions.append((start, i))
            start = None
    if start is not None:
        raise ValueError(f"line {start + 1}: {BEGIN} is never closed by {END}")
    return regions


def stub(body: list[str], indent: str) -> list[str]:
    """The stub lines for a solution ``body``: its assigned names set to None, else ``pass``."""
    code = [line for line in body if line.strip() and not line.strip().startswith("#")]
    top = [line for line in code if len(line) - len(line.lstrip()) == len(indent)]
    names = []
    for line in top:
        found = _ASSIGNMENT.match(line)
        if not found:
            names = []
            break
        names += [n.strip() for n in found[1].split(",") if n.strip() not in names]
    if names and all(len(line) - len(line.lstrip()) >= len(indent) for line in code):
        return [f"{indent}{STUB_COMMENT}", *(f"{indent}{name} = None" for name in names)]
    return [f"{indent}{STUB_COMMENT}", f"{indent}pass"]


def strip_solutions(source: str) -> tuple[str, list[str]]:
    """The learner's version of a cell's source, and the solutions taken out of it (dedented)."""
    regions = solution_regions(source)
    if not regions:
        return source, []
    lines, out, solutions, last = source.split("\n"), [], [], 0
    for start, end in regions:
        indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
        body = lines[start + 1:end]
        out += lines[last:start] + stub(body, indent)
        solutions.append("\n".join(line[len(indent):] if line.startswith(indent) else line for line in body))
        last = end + 1
    out += lines[last:]
    return "\n".join(out), solutions


def learner_notebook(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The learner edition of a complete notebook ``nb`` (file name ``name``)."""
    out = copy.deepcopy(nb)
    cells = []
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
            cell.metadata.pop("papermill", None)
            if "injected-parameters" in cell.metadata.get("tags", []):
                continue  # the complete edition's note on its committed run
            cell.source, solutions = strip_solutions(cell.source)
            cells.append(cell)
            for solution in solutions:
                cells.append(nbformat.v4.new_markdown_cell(
                    "<details><summary>Solution (try first, then click)</summary>\n\n```python\n"
                    f"{solution}\n```\n\n</details>"))
        else:
            cell.metadata.pop("papermill", None)
            if cell is out.cells[0]:
                cell.source = cell.source.replace(f"/blob/main/notebooks/{name}", f"/blob/main/{LEARNER_DIR}/{name}")
                cell.source += "\n\n" + HEADER.format(name=name)
            cells.append(cell)
    for i, cell in enumerate(cells):
        cell.id = f"learner-{i:03d}"
    out.cells = cells
    out.metadata.pop("papermill", None)
    return out


def learner_path(path: Path) -> Path:
    return path.parent.parent / LEARNER_DIR / path.name


def write_learner_editions(notebooks: list[Path] | None = None) -> list[Path]:
    """Regenerate ``learner/`` from ``notebooks/``; return the files written."""
    root = repo_root()
    paths = notebooks or sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    written = []
    for path in paths:
        target = learner_path(Path(path))
        target.parent.mkdir(exist_ok=True)
        text = nbformat.writes(learner_notebook(nbformat.read(path, as_version=4), Path(path).name)) + "\n"
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            written.append(target)
    if notebooks is None:  # a notebook removed from notebooks/ leaves the learner edition too
        for stale in set((root / LEARNER_DIR).glob("*.ipynb")) - {learner_path(Path(p)) for p in paths}:
            stale.unlink()
            written.append(stale)
    print(f"learner edition: {len(written)} of {len(paths)} notebooks rewritten in {LEARNER_DIR}/")
    return written


# ------------------------------------------------------------------------------------------------------------------
# Both editions in one run. The two editions differ only inside the solution regions, and what a region binds (the
# learner's function, answer or prediction) may be used afterwards only as an argument of a ``check_*`` call
# (``answers_outside_checks`` finds any other use). Every other cell then computes the same thing in both editions,
# so one kernel can run both: each cell with a solution runs twice, its learner version (the stub) first and then
# its complete version, whose names the later cells see. ``tests/test_notebooks.py`` runs that notebook in the smoke
# profile instead of running each edition from the top.

LEARNER_TAG, COMPLETE_TAG = "learner-edition", "complete-edition"


def both_editions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the complete notebook ``nb`` in which each code cell with a solution region is preceded by its
    learner version (tagged ``LEARNER_TAG``; the complete one is tagged ``COMPLETE_TAG``)."""
    out = copy.deepcopy(nb)
    cells = []
    for cell in out.cells:
        if cell.cell_type == "code" and solution_regions(cell.source):
            learner = copy.deepcopy(cell)
            learner.source = strip_solutions(cell.source)[0]
            learner.outputs, learner.execution_count = [], None
            learner.id = f"{cell.get('id', 'cell')}-learner"[:64]
            learner.metadata["tags"] = [*cell.metadata.get("tags", []), LEARNER_TAG]
            cell.metadata["tags"] = [*cell.metadata.get("tags", []), COMPLETE_TAG]
            cells.append(learner)
        cells.append(cell)
    out.cells = cells
    return out


def _parse(source: str):
    import ast

    # IPython lines (%magic, !shell) are not Python: parse them as `pass`
    lines = [("pass" if line.lstrip().startswith(("%", "!")) else line) for line in source.split("\n")]
    return ast.parse("\n".join(lines))


def _bound_in_regions(source: str) -> set[str]:
    """The names whose value differs between the editions after this cell: those assigned inside a solution
    region at the top level, and every function or class whose body holds a region."""
    import ast

    regions = solution_regions(source)
    inside = lambda node: any(a + 1 <= node.lineno - 1 <= b for a, b in regions)    # noqa: E731  (0-based lines)
    names, todo = set(), list(_parse(source).body)
    while todo:                                       # the module's statements, not the functions' own locals
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if any(node.lineno - 1 <= a <= node.end_lineno - 1 for a, _ in regions):
                names.add(node.name)
            continue
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.With)) and inside(node):
            names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        todo += [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)]
    return names


def answers_outside_checks(nb: nbformat.NotebookNode) -> list[str]:
    """Every use, after its cell, of a name a solution region binds, other than as a direct argument of a call to a
    function named ``check_*`` (which reads None as "not answered yet"): "cell i: name" for each. A later
    top-level assignment of the name ends its tracking (the name then holds something else)."""
    import ast

    answers: dict[str, int] = {}
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tree = _parse(cell.source)
        for stmt in tree.body:
            if not answers:
                break
            parents = {child: node for node in ast.walk(stmt) for child in ast.iter_child_nodes(node)}
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in answers:
                    call = parents.get(node)
                    fn = getattr(call, "func", None)
                    fn_name = getattr(fn, "id", None) or getattr(fn, "attr", "")
                    if not (isinstance(call, ast.Call) and node in call.args and fn_name.startswith("check_")):
                        found.append(f"cell {i}: {node.id} (bound by the solution in cell {answers[node.id]})")
            for node in ast.walk(stmt):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    answers.pop(node.id, None)
        if solution_regions(cell.source):
            answers.update({name: i for name in _bound_in_regions(cell.source)})
    return found
