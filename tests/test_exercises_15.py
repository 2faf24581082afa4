"""Notebook 15's exercise: masked cross-attention written by hand passes (written out, or through PyTorch's fused
kernel), and the plausible slips (no 1/sqrt(d), the mask ignored or applied after the softmax, the softmax over
the pixels, an unstabilised exp) fail with a hint."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from exercise_checks import passes

from course_lib.guidance import checks


def scores(q, k, scale=True):
    return q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1)


def masked(s, m):
    return s if m is None else s.masked_fill(~m[:, None, None, :], float("-inf"))


RIGHT = {
    "written-out": lambda q, k, v, m: masked(scores(q, k), m).softmax(-1) @ v,
    "fused": lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=None if m is None else m[:, None, None, :]),
}


def after_softmax(q, k, v, m):
    w = scores(q, k).softmax(-1)
    return (w if m is None else w * m[:, None, None, :]) @ v


def unstabilised(q, k, v, m):
    e = scores(q, k).exp()
    e = e if m is None else e * m[:, None, None, :]
    return e / e.sum(-1, keepdim=True) @ v


WRONG = {
    "no-sqrt-d": lambda q, k, v, m: masked(scores(q, k, scale=False), m).softmax(-1) @ v,
    "mask-ignored": lambda q, k, v, m: scores(q, k).softmax(-1) @ v,
    "mask-after-softmax": after_softmax,
    "softmax-over-pixels": lambda q, k, v, m: masked(scores(q, k), m).softmax(-2).nan_to_num() @ v,
    "unstabilised-exp": unstabilised,
}


@pytest.mark.parametrize("form", list(RIGHT))
def test_cross_attention_kernel_accepts_the_written_out_and_fused_forms(form, capsys):
    assert passes(checks.check_cross_attention_kernel(RIGHT[form]))
    assert capsys.readouterr().out.startswith("Correct! my_cross_attention agrees with course_lib.guidance.masked_attention")


@pytest.mark.parametrize("wrong", list(WRONG))
def test_cross_attention_kernel_rejects_the_slips(wrong, capsys):
    assert not passes(checks.check_cross_attention_kernel(WRONG[wrong]))
    assert "Not quite" in capsys.readouterr().out


def test_unanswered_and_seeded():
    assert not passes(checks.check_cross_attention_kernel(lambda q, k, v, m: None))
    a, b = checks.cross_attention_cases(), checks.cross_attention_cases()
    for (_, xs), (_, ys) in zip(a, b):
        for x, y in zip(xs, ys):
            assert (x is None and y is None) or torch.equal(x, y)


@pytest.mark.parametrize("answer", [343, 343.0, 49 * math.log2(128), 7 * 7 * 7])
def test_latent_bits_accepts_the_count(answer, capsys):
    assert checks.check_latent_bits(answer)
    assert "Correct!" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [49, 6272, 784, 25088, 128, 7, 342])
def test_latent_bits_rejects_the_plausible_slips(answer, capsys):
    """The tokens, tokens x codebook entries, the latent's numbers (and their float32 bits), one token's bits."""
    assert not checks.check_latent_bits(answer)
    assert "Not quite" in capsys.readouterr().out


def test_latent_bits_unanswered(capsys):
    assert not checks.check_latent_bits(None)
    assert "Not answered yet" in capsys.readouterr().out
