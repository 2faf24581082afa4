"""Shared assertions of the exercise tests (tests/test_exercises_*.py): a check's verdict, and the pattern of a
hand-computation check -- the exact and the correctly rounded answers pass, each plausible wrong one fails."""

from __future__ import annotations

from course_lib.checks import Verdict


def passes(verdict) -> bool:
    """The check returned a Verdict (not a bare bool), and it says the answer passed."""
    assert isinstance(verdict, Verdict)
    return bool(verdict)


def assert_hand_check(check, right, rounded, wrongs, capsys) -> None:
    """``check(right)`` and ``check(rounded)`` pass and say so; every answer in ``wrongs`` fails with a hint;
    ``check(None)`` says the question is not answered yet."""
    assert passes(check(right)) and passes(check(rounded))
    assert capsys.readouterr().out.count("Correct!") == 2
    for wrong in wrongs:
        assert not passes(check(wrong)), wrong
    assert capsys.readouterr().out.count("Not quite") == len(wrongs)
    assert not passes(check(None)) and "Not answered yet" in capsys.readouterr().out
