"""Notebook 16's exercise: masked attention written by hand passes in its textbook forms, and the plausible slips
(no 1/sqrt(d), softmax over the queries, the mask applied after the softmax, masked scores set to 0, the mask
ignored) fail with a hint."""

from __future__ import annotations

import math

import pytest
import torch
from exercise_checks import passes

from course_lib.transformers import checks


def scores(q, k):
    return q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])


def right_fill(q, k, v, mask):
    s = scores(q, k)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return s.softmax(-1) @ v


def right_additive(q, k, v, mask):
    s = scores(q, k)
    if mask is not None:
        s = s + torch.zeros_like(s).masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def after_softmax(q, k, v, mask):
    w = scores(q, k).softmax(-1)
    return (w * mask if mask is not None else w) @ v


def zero_fill(q, k, v, mask):
    s = scores(q, k)
    return (s.masked_fill(~mask, 0.0) if mask is not None else s).softmax(-1) @ v


WRONG = {
    "no 1/sqrt(d)": lambda q, k, v, m: right_fill(q * math.sqrt(q.shape[-1]), k, v, m),
    "softmax over queries": lambda q, k, v, m: (scores(q, k).masked_fill(~m, -1e9) if m is not None else scores(q, k)).softmax(-2) @ v,
    "mask after softmax": after_softmax,
    "masked scores set to 0": zero_fill,
    "mask ignored": lambda q, k, v, m: right_fill(q, k, v, None),
}


@pytest.mark.parametrize("right", [right_fill, right_additive])
def test_attention_accepts_the_textbook_forms(right, capsys):
    assert passes(checks.check_attention_kernel(right))
    assert capsys.readouterr().out.startswith("Correct! my_attention agrees with course_lib.attention")


@pytest.mark.parametrize("wrong", list(WRONG))
def test_attention_rejects_the_slips(wrong, capsys):
    assert not passes(checks.check_attention_kernel(WRONG[wrong]))
    assert "Not quite" in capsys.readouterr().out
