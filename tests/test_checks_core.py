"""The one way checks report: precision as asked, verdicts that echo nothing, kernel and prediction checks."""

from __future__ import annotations

import torch

from course_lib.checks import NOT_ANSWERED, Verdict, check_kernel, check_prediction, report, same_number


def test_report_accepts_correct_rounding_and_rejects_near_misses(capsys):
    iou = 150 / 650                                                # 0.230769...
    assert report(0.2308, iou, sig=3) and report(0.231, iou, sig=3) and report(iou, iou)
    assert not report(0.23, iou, sig=3) and not report(0.232, iou, sig=3)
    assert report(0.2308, iou, decimals=4) and not report(0.231, iou, decimals=4)
    assert report(0.143, 1 / 7, sig=3) and not report(0.14, 1 / 7, sig=3)
    assert report(23, 23) and not report(24, 23) and report((3, 4), (3, 4)) and not report((4, 3), (3, 4))
    assert report([0.2308, 2.0], [iou, 2.0]) and not report([0.25, 2.0], [iou, 2.0])
    assert not report("abc", 0.5)
    out = capsys.readouterr().out
    assert out.count("Correct!") == 8 and out.count("Not quite") == 8
    assert not report(None, 1.0) and NOT_ANSWERED in capsys.readouterr().out


def test_same_number_at_zero_and_large_values():
    assert same_number(0.0, 0.0) and not same_number(0.01, 0.0)
    assert same_number(12300, 12345, sig=3) and not same_number(12400, 12345, sig=3)


def test_verdict_is_a_bool_that_displays_nothing():
    yes, no = Verdict(True), Verdict(False)
    assert yes and not no and yes == True and no == False and yes != no  # noqa: E712
    assert yes._ipython_display_() is None and repr(no) == "Verdict(False)"


def relu_ref(x):
    return torch.clamp(x, min=0)


CASES = [("random (4, 5)", (torch.randn(4, 5, generator=torch.Generator().manual_seed(0)),)),
         ("random float64", (torch.randn(3, generator=torch.Generator().manual_seed(1), dtype=torch.float64),)),
         ("edge: all negative", (-torch.ones(2, 2),))]


def test_check_kernel_passes_a_right_kernel(capsys):
    assert check_kernel(lambda x: x * (x > 0), relu_ref, CASES, name="relu", reference_name="relu_ref")
    out = capsys.readouterr().out
    assert out.startswith("Correct! relu agrees with relu_ref on all 3 inputs") and "course_lib's `relu_ref`" in out


def test_check_kernel_names_the_first_input_that_disagrees(capsys):
    assert not check_kernel(lambda x: x.abs(), relu_ref, CASES, name="relu", reference_name="relu_ref", hint="h")
    out = capsys.readouterr().out
    assert "input 1 (random (4, 5))" in out and "max relative error" in out and "Hint: h" in out
    # right on random inputs, wrong on the edge case only
    assert not check_kernel(lambda x: relu_ref(x) + (x.max() < 0), relu_ref, CASES, name="relu",
                            reference_name="relu_ref")
    assert "input 3 (edge: all negative)" in capsys.readouterr().out


def test_check_kernel_stub_error_and_shape(capsys):
    assert not check_kernel(lambda x: None, relu_ref, CASES, name="relu", reference_name="relu_ref")
    assert capsys.readouterr().out.startswith("Not answered yet: write the body of relu")
    assert not check_kernel(lambda x: x.foo(), relu_ref, CASES, name="relu", reference_name="relu_ref")
    assert "raised AttributeError" in capsys.readouterr().out
    assert not check_kernel(lambda x: x.sum(), relu_ref, CASES, name="relu", reference_name="relu_ref")
    assert "expected shapes [(4, 5)]" in capsys.readouterr().out
    assert not check_kernel(lambda x: relu_ref(x) * float("nan"), relu_ref, CASES, name="relu",
                            reference_name="relu_ref")
    assert "disagrees" in capsys.readouterr().out


def test_check_prediction(capsys):
    assert check_prediction("b", "b", ["a", "b"], why="because")
    assert not check_prediction("a", "b", ["a", "b"]) and not check_prediction("c", "b", ["a", "b"])
    assert not check_prediction(None, "b")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Right: measured 'b'. because" and out[1].startswith("Measured 'b', not 'a'")
    assert "not one of" in out[2] and out[3].startswith("No prediction made")
