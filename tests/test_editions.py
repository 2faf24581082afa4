"""The learner edition: generated from the complete notebooks, up to date, and stubs that keep it running."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from course_lib import editions

from course_lib.editions import (BEGIN, END, LEARNER_DIR, STUB_COMMENT, learner_notebook, learner_path,
                                 solution_regions, strip_solutions)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_a_function_body_becomes_pass_and_its_solution_is_kept():
    source = "\n".join(["def f(x):", '    """Doc."""', f"    {BEGIN}", "    y = x + 1", "    return y * 2",
                        f"    {END}", "", "check(f)"])
    learner, solutions = strip_solutions(source)
    assert learner == "\n".join(["def f(x):", '    """Doc."""', f"    {STUB_COMMENT}", "    pass", "", "check(f)"])
    assert solutions == ["y = x + 1\nreturn y * 2"]
    scope = {}
    exec(learner.replace("check(f)", ""), scope)
    assert scope["f"](3) is None                                   # "not answered yet" for the check


def test_assignments_become_none():
    source = f'{BEGIN}\nanswer = 23\nmy_prediction, second = "contractive", 2  # a comment\n{END}\ncheck(answer)'
    learner, solutions = strip_solutions(source)
    assert learner == f"{STUB_COMMENT}\nanswer = None\nmy_prediction = None\nsecond = None\ncheck(answer)"
    assert solutions == ['answer = 23\nmy_prediction, second = "contractive", 2  # a comment']


def test_a_region_with_more_than_assignments_becomes_pass():
    learner, _ = strip_solutions(f"{BEGIN}\nanswer = 2\nfor i in range(3):\n    answer += i\n{END}")
    assert learner == f"{STUB_COMMENT}\npass"
    learner, _ = strip_solutions(f"{BEGIN}\nanswer = 2\nanswer == 3\n{END}")   # a comparison is not an assignment
    assert learner == f"{STUB_COMMENT}\npass"


def test_malformed_regions_are_reported():
    with pytest.raises(ValueError, match="never closed"):
        solution_regions(f"{BEGIN}\nx = 1")
    with pytest.raises(ValueError, match="without"):
        solution_regions(f"x = 1\n{END}")
    with pytest.raises(ValueError, match="inside another"):
        solution_regions(f"{BEGIN}\n{BEGIN}\n{END}\n{END}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_learner_edition_is_up_to_date(path):
    expected = nbformat.writes(learner_notebook(nbformat.read(path, as_version=4), path.name)) + "\n"
    target = learner_path(path)
    assert target.is_file() and target.read_text() == expected, \
        f"{LEARNER_DIR}/{path.name} is out of date: run `python -m course_lib learner`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_learner_edition_has_no_outputs_no_solutions_and_its_own_badge(path):
    nb = nbformat.read(learner_path(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert not any(BEGIN in c.source or END in c.source for c in code)
    assert f"/blob/main/{LEARNER_DIR}/{path.name}" in nb.cells[0].source
    complete = nbformat.read(path, as_version=4)
    regions = sum(len(solution_regions(c.source)) for c in complete.cells if c.cell_type == "code")
    assert sum(STUB_COMMENT in c.source for c in code) == regions
    assert sum("<summary>Solution" in c.source for c in nb.cells if c.cell_type == "markdown") == regions


def test_learner_folder_holds_exactly_the_notebooks():
    assert sorted(p.name for p in (ROOT / LEARNER_DIR).glob("*.ipynb")) == [p.name for p in NOTEBOOKS]


def _nb(*sources):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


SOLVED = ("def my_f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n\ncheck_f(my_f)",
          "### BEGIN SOLUTION\nmy_prediction = 'up'\n### END SOLUTION")


def test_both_editions_runs_each_solution_cell_as_the_learner_has_it_then_complete():
    nb = _nb("x = 1", *SOLVED, "check_prediction(my_prediction, 'up')")
    both = editions.both_editions(nb)
    sources = [c.source for c in both.cells]
    assert len(both.cells) == 6 and sources[0] == "x = 1" and sources[-1] == nb.cells[-1].source
    assert sources[2] == SOLVED[0] and sources[4] == SOLVED[1]                   # the complete cells, unchanged
    assert "pass" in sources[1] and "return 2 * x" not in sources[1] and "check_f(my_f)" in sources[1]
    assert "my_prediction = None" in sources[3]
    assert [editions.LEARNER_TAG in c.metadata.get("tags", []) for c in both.cells] == [False, True, False, True, False, False]
    assert [editions.COMPLETE_TAG in c.metadata.get("tags", []) for c in both.cells] == [False, False, True, False, True, False]
    assert len({c.id for c in both.cells}) == 6 and len(nb.cells) == 4          # ids unique, the input untouched


def test_answers_outside_checks_flags_every_other_use_of_a_solution_binding():
    assert editions.answers_outside_checks(_nb(*SOLVED, "check_prediction(my_prediction, 'up')\ncheck_f(my_f)")) == []
    found = editions.answers_outside_checks(_nb(*SOLVED, "y = my_f(3)", "print(my_prediction)", "checks.check_g(my_f)"))
    assert found == ["cell 2: my_f (bound by the solution in cell 0)", "cell 3: my_prediction (bound by the solution in cell 1)"]
    # a name assigned again no longer holds the answer; a function's own locals are not the notebook's names
    rebound = _nb("### BEGIN SOLUTION\nanswer = 3\n### END SOLUTION", "answer = 4", "print(answer)")
    assert editions.answers_outside_checks(rebound) == []
    assert editions.answers_outside_checks(_nb(SOLVED[0], "x = 2 * x")) == []
    # magics do not break the parse
    assert editions.answers_outside_checks(_nb("%matplotlib inline\n" + SOLVED[1], "!ls\nprint(my_prediction)")) == [
        "cell 1: my_prediction (bound by the solution in cell 0)"]
