"""Notebook 09's exercises: the notebook's own solutions pass, correctly rounded answers pass, the learner's stubs
and the plausible wrong answers fail (a JSD without the 1/2, in bits, without the cell widths, NaN at zeros; the
saturating loss for the non-saturating one, a naive log(sigmoid) that overflows, ...)."""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from course_lib.editions import learner_notebook
from course_lib.gans import checks
from course_lib.gans.theory import js_divergence
from exercise_checks import assert_hand_check, passes

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "09_gan_theory.ipynb"


def notebook_function(name: str, learner: bool = False):
    """The function ``name`` as the complete (or the learner) edition of notebook 09 defines it."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    if learner:
        nb = learner_notebook(nb, NOTEBOOK.name)
    source = next(c.source for c in nb.cells if c.cell_type == "code" and f"def {name}(" in c.source)
    scope = {"torch": torch, "F": F}
    exec(source.split("\ncheck_")[0].replace("from course_lib.gans.checks import", "# "), scope)
    return scope[name]


# ---------------------------------------------------------------------------------------------- the JSD kernel


def entropy_form(p, q, dx):        # H(m) - (H(p) + H(q)) / 2, another right way
    m = 0.5 * (p + q)
    h = lambda t: -(torch.xlogy(t, t) * dx).sum(-1)  # noqa: E731
    return h(m) - 0.5 * (h(p) + h(q))


def where_form(p, q, dx):          # 0 log 0 = 0 with torch.where
    m = 0.5 * (p + q)
    term = lambda a: torch.where(a > 0, a * torch.log(torch.where(a > 0, a, 1.0) / torch.where(a > 0, m, 1.0)), 0.0)  # noqa: E731
    return 0.5 * ((term(p) + term(q)) * dx).sum(-1)


def test_the_notebooks_jsd_solution_passes_and_its_stub_does_not(capsys):
    assert passes(checks.check_js_divergence_kernel(notebook_function("my_js_divergence")))
    assert capsys.readouterr().out.startswith("Correct! my_js_divergence agrees with course_lib.gans.theory.js_div")
    assert not passes(checks.check_js_divergence_kernel(notebook_function("my_js_divergence", learner=True)))
    assert "Not answered yet" in capsys.readouterr().out


@pytest.mark.parametrize("right", [js_divergence, entropy_form, where_form], ids=["course_lib", "entropies", "where"])
def test_jsd_kernel_accepts_right_kernels(right, capsys):
    assert passes(checks.check_js_divergence_kernel(right))
    assert "Correct!" in capsys.readouterr().out


def _kl(a, b, dx):
    return ((torch.xlogy(a, a) - torch.xlogy(a, b)) * dx).sum(-1)


WRONG_JSD = {
    "no 1/2": lambda p, q, dx: _kl(p, 0.5 * (p + q), dx) + _kl(q, 0.5 * (p + q), dx),
    "bits": lambda p, q, dx: js_divergence(p, q, dx) / math.log(2),
    "KL(p || q) symmetrized": lambda p, q, dx: 0.5 * (_kl(p, q + 1e-300, dx) + _kl(q, p + 1e-300, dx)),
    "m = p + q": lambda p, q, dx: 0.5 * (_kl(p, p + q, dx) + _kl(q, p + q, dx)),
    "only KL(p || m)": lambda p, q, dx: 0.5 * _kl(p, 0.5 * (p + q), dx),
    "no dx": lambda p, q, dx: 0.5 * (_kl(p, 0.5 * (p + q), 1.0) + _kl(q, 0.5 * (p + q), 1.0)),
    "dx after the sum": lambda p, q, dx: 0.5 * (_kl(p, 0.5 * (p + q), 1.0) + _kl(q, 0.5 * (p + q), 1.0)) * dx,
    "NaN at zeros": lambda p, q, dx: 0.5 * ((p * torch.log(2 * p / (p + q)) + q * torch.log(2 * q / (p + q))) * dx).sum(-1),
    "xlogy(p, p / m)": lambda p, q, dx: 0.5 * ((torch.xlogy(p, 2 * p / (p + q)) + torch.xlogy(q, 2 * q / (p + q))) * dx).sum(-1),
    "scipy's distance (the square root)": lambda p, q, dx: js_divergence(p, q, dx).sqrt(),
    "mean over the support": lambda p, q, dx: 0.5 * ((torch.xlogy(p, p) - torch.xlogy(p, 0.5 * (p + q))
                                                       + torch.xlogy(q, q) - torch.xlogy(q, 0.5 * (p + q))) * dx).mean(-1),
    "summed over the batch": lambda p, q, dx: js_divergence(p, q, dx).sum(),
}


@pytest.mark.parametrize("name", list(WRONG_JSD))
def test_jsd_kernel_rejects_wrong_kernels(name, capsys):
    assert not passes(checks.check_js_divergence_kernel(WRONG_JSD[name]))
    assert "Not quite" in capsys.readouterr().out


def test_jsd_cases_are_valid_and_have_the_edge_cases():
    cases = checks.js_divergence_cases()
    assert all(torch.equal(a, b) for (_, xs), (_, ys) in zip(cases, checks.js_divergence_cases())
               for a, b in zip(xs[:2], ys[:2]))
    for description, (p, q, dx) in cases:
        assert p.dtype == q.dtype == torch.float64
        assert torch.allclose((p * dx).sum(-1), torch.ones(p.shape[:-1], dtype=torch.float64), atol=1e-6), description
    edge = next(args for d, args in cases if d.startswith("edge"))
    jsd = js_divergence(*edge)
    assert jsd[0] == pytest.approx(math.log(2)) and jsd[-1] == 0
    assert ((edge[0] == 0) & (edge[1] == 0)).any()                      # a point outside both supports
    assert any(isinstance(dx, torch.Tensor) for _, (_, _, dx) in cases)  # a non-uniform grid


# ---------------------------------------------------------------------------------------------- the NS loss


def test_the_notebooks_loss_solution_passes_and_its_stub_does_not(capsys):
    assert passes(checks.check_nonsaturating_kernel(notebook_function("my_g_loss_nonsaturating")))
    assert capsys.readouterr().out.startswith("Correct! my_g_loss_nonsaturating agrees")
    assert not passes(checks.check_nonsaturating_kernel(notebook_function("my_g_loss_nonsaturating", learner=True)))
    assert "Not answered yet" in capsys.readouterr().out


@pytest.mark.parametrize("right", [
    lambda l: F.softplus(-l).mean(),
    lambda l: -F.logsigmoid(l).mean(),
    lambda l: F.binary_cross_entropy_with_logits(l, torch.ones_like(l)),
], ids=["softplus", "logsigmoid", "bce-with-logits"])
def test_loss_kernel_accepts_right_kernels(right, capsys):
    assert passes(checks.check_nonsaturating_kernel(right))


@pytest.mark.parametrize("wrong", [
    lambda l: -torch.log(torch.sigmoid(l)).mean(),                      # overflows where D rejects the fakes
    lambda l: -F.softplus(l).mean(),                                    # the saturating loss
    lambda l: F.softplus(l).mean(),                                     # D's fake term, BCE with label 0
    lambda l: -F.softplus(-l).mean(),                                   # sign flip
    lambda l: F.softplus(-l).sum(),                                     # sum over the batch
    lambda l: F.softplus(-l),                                           # per sample
    lambda l: -torch.sigmoid(l).log().mean().clamp(max=100.0),          # clamped: wrong where D is confident
    lambda l: (-torch.log(torch.sigmoid(l).clamp_min(1e-7))).mean(),    # epsilon-clamped log
], ids=["naive-log-sigmoid", "saturating", "label-0", "sign", "sum", "per-sample", "clamped", "eps"])
def test_loss_kernel_rejects_wrong_kernels(wrong, capsys):
    assert not passes(checks.check_nonsaturating_kernel(wrong))
    assert "Not quite" in capsys.readouterr().out


def test_loss_kernel_names_the_confident_input(capsys):
    assert not passes(checks.check_nonsaturating_kernel(lambda l: -torch.log(torch.sigmoid(l)).mean()))
    assert "input 3 (edge: D confidently rejects the fakes" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- hand computations


@pytest.mark.parametrize("check, right, rounded, wrongs", [
    (checks.check_jsd_disjoint, math.log(2), 0.693, [1.0, 0.0, math.log(4), 0.5 * math.log(2), 0.69, 0.694, math.inf]),
    # (in bits; "no overlap, no divergence"; without the 1/2; one half only; under-precise; wrong 3rd decimal; KL's inf)
    (checks.check_value_at_equilibrium, -math.log(4), -1.386, [math.log(4), -math.log(2), 0.0, -2.0, -1.39, -1.387, -0.5]),
    # (sign; one term only; "the game is even"; in bits; under-precise; wrong 3rd decimal; D* read as V)
    (checks.check_loss_gradients, (0.01, 0.99), (0.010, 0.990),
     [(0.99, 0.01), (1 / 0.99, 100.0), (0.01 * 0.99, 0.01 * 0.99), (0.01, 0.01), (0.99, 0.99), 0.01, (0.01,)]),
    # (swapped; derivatives with respect to D; sigmoid'(l) for both; the same value twice; one number; a 1-tuple)
], ids=["jsd_disjoint", "value_at_equilibrium", "loss_gradients"])
def test_09_hand_checks(check, right, rounded, wrongs, capsys):
    assert_hand_check(check, right, rounded, wrongs, capsys)


def test_the_notebooks_hand_answers_pass(capsys):
    """The complete edition's answers (exec'd from the notebook) pass; the learner edition's are None."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "answer = " in c.source]
    assert len(cells) == 3
    for source in cells:
        scope = {"math": math, **{n: getattr(checks, n) for n in dir(checks) if n.startswith("check_")}}
        exec(source.replace("from course_lib.gans.checks import", "# "), scope)
    assert capsys.readouterr().out.count("Correct!") == 3
    learner = [c.source for c in learner_notebook(nb, NOTEBOOK.name).cells if c.cell_type == "code" and "answer = " in c.source]
    assert all("answer = None" in s for s in learner)
