"""Notebook 14's exercises: the CFG combination and the classifier-guided prediction written by hand pass in
their textbook forms, and the plausible slips (the two predictions swapped, w used as s, a per-example scale or
abar_t not broadcast, the gradient's sign or its sqrt(1 - abar_t) weight wrong) fail with a hint."""

from __future__ import annotations

import pytest
import torch
from exercise_checks import passes

from course_lib.guidance import checks


def col(v, like):
    v = torch.as_tensor(v, dtype=like.dtype)
    return v.view(-1, *([1] * (like.ndim - 1))) if v.ndim else v


CFG_RIGHT = {
    "eps_u + s (eps_c - eps_u)": lambda u, c, s: u + col(s, u) * (c - u),
    "(1 - s) eps_u + s eps_c": lambda u, c, s: (1 - col(s, u)) * u + col(s, u) * c,
    "the paper's (1 + w) eps_c - w eps_u": lambda u, c, s: (1 + (col(s, u) - 1)) * c - (col(s, u) - 1) * u,
}
CFG_WRONG = {
    "predictions-swapped": lambda u, c, s: c + col(s, u) * (u - c),
    "w-used-as-s": lambda u, c, s: (1 + col(s, u)) * c - col(s, u) * u,
    "extrapolated-from-eps_c": lambda u, c, s: c + col(s, u) * (c - u),
    "scale-not-broadcast": lambda u, c, s: u + (s if not torch.is_tensor(s) else s.mean()) * (c - u),
}


@pytest.mark.parametrize("form", list(CFG_RIGHT))
def test_cfg_kernel_accepts_the_textbook_forms(form, capsys):
    assert passes(checks.check_cfg_kernel(CFG_RIGHT[form]))
    assert capsys.readouterr().out.startswith("Correct! my_cfg agrees with course_lib.guidance.cfg")


@pytest.mark.parametrize("wrong", list(CFG_WRONG))
def test_cfg_kernel_rejects_the_slips(wrong, capsys):
    assert not passes(checks.check_cfg_kernel(CFG_WRONG[wrong]))
    assert "Not quite" in capsys.readouterr().out


GUIDED_WRONG = {
    "sign-flipped": lambda e, g, a, s: e + s * (1 - col(a, e)).sqrt() * g,
    "no-sqrt": lambda e, g, a, s: e - s * (1 - col(a, e)) * g,
    "sqrt-abar-instead": lambda e, g, a, s: e - s * col(a, e).sqrt() * g,
    "scale-forgotten": lambda e, g, a, s: e - (1 - col(a, e)).sqrt() * g,
    "abar-not-broadcast": lambda e, g, a, s: e - s * (1 - torch.as_tensor(a, dtype=e.dtype).mean()).sqrt() * g,
}


def test_guided_eps_kernel_accepts_eq_14_and_says_when_unanswered(capsys):
    assert passes(checks.check_guided_eps_kernel(lambda e, g, a, s: e - s * (1 - col(a, e)).sqrt() * g))
    assert capsys.readouterr().out.startswith("Correct! my_guided_eps agrees with course_lib.guidance.classifier_guided_eps")
    assert not passes(checks.check_guided_eps_kernel(lambda e, g, a, s: None))
    assert "Not answered yet" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", list(GUIDED_WRONG))
def test_guided_eps_kernel_rejects_the_slips(wrong, capsys):
    assert not passes(checks.check_guided_eps_kernel(GUIDED_WRONG[wrong]))
    assert "Not quite" in capsys.readouterr().out


def test_cases_are_seeded():
    for make in (checks.cfg_cases, checks.guided_cases):
        a, b = make(), make()
        assert [d for d, _ in a] == [d for d, _ in b]
        for (_, xs), (_, ys) in zip(a, b):
            for x, y in zip(xs, ys):
                assert torch.equal(torch.as_tensor(x), torch.as_tensor(y))
