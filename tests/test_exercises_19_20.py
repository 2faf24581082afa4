"""Notebooks 19 and 20's exercises. 19: temperature and top-k filtering passes in its textbook forms (topk's k-th
value as the threshold; sort), and the slips (temperature multiplied, k + 1 kept, probabilities instead of
logits) fail. 20: CLIP's symmetric loss passes written with cross_entropy or with log_softmax; one direction only,
no normalisation, and the temperature divided instead of multiplied fail."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from exercise_checks import passes

from course_lib.dalle import checks


def by_topk(lg, T, k):
    lg = lg / T
    if k is None:
        return lg
    return lg.masked_fill(lg < lg.topk(k, -1).values[..., -1:], float("-inf"))


def by_sort(lg, T, k):
    lg = lg / T
    if k is None:
        return lg
    kth = lg.sort(-1, descending=True).values[..., k - 1:k]
    return torch.where(lg >= kth, lg, torch.full_like(lg, float("-inf")))


FILTER_WRONG = {
    "temperature multiplied": lambda lg, T, k: by_topk(lg * T * T, T, k),
    "k + 1 kept": lambda lg, T, k: by_topk(lg, T, None if k is None else min(k + 1, lg.shape[-1])),
    "probabilities returned": lambda lg, T, k: by_topk(lg, T, k).softmax(-1),
}


@pytest.mark.parametrize("right", [by_topk, by_sort])
def test_filter_accepts_the_textbook_forms(right, capsys):
    assert passes(checks.check_filter_kernel(right))
    assert capsys.readouterr().out.startswith("Correct! my_filter_logits agrees")


@pytest.mark.parametrize("wrong", list(FILTER_WRONG))
def test_filter_rejects_the_slips(wrong, capsys):
    assert not passes(checks.check_filter_kernel(FILTER_WRONG[wrong]))
    assert "Not quite" in capsys.readouterr().out


def clip_ce(I, T, s):
    I, T = F.normalize(I, dim=-1), F.normalize(T, dim=-1)
    logits = I @ T.T * math.exp(s)
    y = torch.arange(len(I))
    return (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y)) / 2


def clip_logsoftmax(I, T, s):
    I, T = I / I.norm(dim=1, keepdim=True), T / T.norm(dim=1, keepdim=True)
    logits = math.exp(s) * I @ T.T
    return -(logits.log_softmax(1).diagonal().mean() + logits.log_softmax(0).diagonal().mean()) / 2


CLIP_WRONG = {
    "image -> caption only": lambda I, T, s: F.cross_entropy(F.normalize(I, dim=-1) @ F.normalize(T, dim=-1).T * math.exp(s),
                                                               torch.arange(len(I))),
    "no normalisation": lambda I, T, s: (F.cross_entropy(I @ T.T * math.exp(s), torch.arange(len(I)))
                                         + F.cross_entropy(T @ I.T * math.exp(s), torch.arange(len(I)))) / 2,
    "temperature divided": lambda I, T, s: clip_ce(I, T, -s),
}


@pytest.mark.parametrize("right", [clip_ce, clip_logsoftmax])
def test_clip_loss_accepts_the_textbook_forms(right, capsys):
    assert passes(checks.check_clip_loss_kernel(right))
    assert capsys.readouterr().out.startswith("Correct! my_clip_loss agrees")


@pytest.mark.parametrize("wrong", list(CLIP_WRONG))
def test_clip_loss_rejects_the_slips(wrong, capsys):
    assert not passes(checks.check_clip_loss_kernel(CLIP_WRONG[wrong]))
    assert "Not quite" in capsys.readouterr().out


# --------------------------------------------------------------------------- hand computations of 16-20

from exercise_checks import assert_hand_check  # noqa: E402

from course_lib.transformers import checks as tchecks  # noqa: E402


def test_hand_computations_of_chapters_16_to_20(capsys):
    assert_hand_check(tchecks.check_patch_embed_params, 1088, 1088.0, [1024, 49 * 1088, 1088 + 50 * 64], capsys)
    assert_hand_check(tchecks.check_masked_bits, 140, 140.0, [343, 2560, 20 * math.log(128)], capsys)
    assert_hand_check(checks.check_mask_pairs, 2145, 2145.0, [4225, 2080, 49 * 50 // 2], capsys)
    assert_hand_check(checks.check_chance_clip_loss, math.log(128), 4.85, [7, math.log(2), math.log(128) / 2], capsys)
