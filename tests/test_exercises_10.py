"""Notebook 10's exercises: AdaIN written by hand passes, its plausible wrong versions (batch statistics, layer
statistics, the unbiased variance without eps, swapped styles) fail; He's constant passes correctly rounded and
rejects fan_out, a missing square root and a forgotten window."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.gans import image_checks
from exercise_checks import passes


def good_adain(x, y_s, y_b, eps=1e-5):
    mu = x.mean(dim=(2, 3), keepdim=True)
    sigma = (x.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return y_s[:, :, None, None] * (x - mu) / sigma + y_b[:, :, None, None]


def styled(normalized, y_s, y_b):
    return y_s[:, :, None, None] * normalized + y_b[:, :, None, None]


@pytest.mark.parametrize("wrong", [
    lambda x, y_s, y_b: styled(F.batch_norm(x, None, None, training=True, eps=1e-5), y_s, y_b),   # batch statistics
    lambda x, y_s, y_b: styled(F.layer_norm(x, x.shape[1:], eps=1e-5), y_s, y_b),                 # over C, H, W
    lambda x, y_s, y_b: styled((x - x.mean((2, 3), keepdim=True)) / x.std((2, 3), keepdim=True), y_s, y_b),  # unbiased, no eps
    lambda x, y_s, y_b: styled(F.instance_norm(x, eps=1e-5), y_b, y_s),                           # styles swapped
    lambda x, y_s, y_b: F.instance_norm(x, eps=1e-5) * y_s.mean() + y_b.mean(),                   # one style for all
], ids=["batch-norm", "layer-norm", "unbiased-no-eps", "swapped", "global-style"])
def test_adain_kernel_rejects_wrong_kernels(wrong, capsys):
    assert not passes(image_checks.check_adain_kernel(wrong))
    assert "Not quite" in capsys.readouterr().out


def test_adain_kernel_accepts_the_solution_and_instance_norm(capsys):
    assert passes(image_checks.check_adain_kernel(good_adain))
    assert capsys.readouterr().out.startswith("Correct! my_adain agrees with course_lib.gans.stylegan.adain")
    assert passes(image_checks.check_adain_kernel(lambda x, y_s, y_b: styled(F.instance_norm(x, eps=1e-5), y_s, y_b)))
    assert not passes(image_checks.check_adain_kernel(lambda x, y_s, y_b: None))
    assert "Not answered yet" in capsys.readouterr().out


def test_adain_cases_are_seeded_and_have_the_edge_cases():
    cases, again = image_checks.adain_cases(), image_checks.adain_cases()
    assert all(torch.equal(a, b) for (_, xs), (_, ys) in zip(cases, again) for a, b in zip(xs, ys))
    descriptions = " ".join(d for d, _ in cases)
    assert "one image, one channel" in descriptions and "constant" in descriptions
    assert {args[0].dtype for _, args in cases} == {torch.float32, torch.float64}


@pytest.mark.parametrize("answer, ok", [
    (math.sqrt(2 / 288), True), (0.0833, True), (0.08333, True),
    (math.sqrt(2 / (16 * 9)), False),     # fan_out
    (2 / 288, False),                     # no square root
    (math.sqrt(2 / 32), False),           # the 3x3 window forgotten
    (math.sqrt(1 / 288), False),          # LeCun's constant, not He's
    (0.083, False),                       # two significant digits only
])
def test_he_constant(answer, ok, capsys):
    assert passes(image_checks.check_he_constant(answer)) is ok
    assert not passes(image_checks.check_he_constant(None))
