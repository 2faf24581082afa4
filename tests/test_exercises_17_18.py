"""Notebooks 17 and 18's exercises. 17: the patch embedding written by hand passes in its textbook forms (patchify then a
matrix product; unfold then a matrix product), and the plausible slips (patches read column by column, a patch
flattened as (p, p, C), the bias forgotten, the weight not transposed) fail with a hint. 18: BEiT's masked-token loss
passes as cross-entropy on the masked positions; the mean over all positions, the inverted mask, a per-image mean
and the sum fail. 18: blockwise masking (Algorithm 1) passes when written as the paper's code runs it, given the
same draws; the plausible slips (overshooting the target, a uniform aspect ratio, rows and columns swapped, truncating,
no overlap, the corner drawn too early or never reaching the last row) fail."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from exercise_checks import passes

from course_lib.transformers import checks, patchify


def by_patches(x, w, b, p):
    return patchify(x, p) @ w.flatten(1).T + b


def by_unfold(x, w, b, p):
    return F.unfold(x, p, stride=p).transpose(1, 2) @ w.flatten(1).T + b


def column_major(x, w, b, p):
    return patchify(x.transpose(2, 3), p) @ w.transpose(2, 3).flatten(1).T + b


def channels_last(x, w, b, p):
    B, C, H, W = x.shape
    patches = x.view(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1).reshape(B, -1, p * p * C)
    return patches @ w.flatten(1).T + b


WRONG = {
    "column-major patch order": column_major,
    "patch flattened (p, p, C)": channels_last,
    "bias forgotten": lambda x, w, b, p: patchify(x, p) @ w.flatten(1).T,
    "weight not transposed (square only)": lambda x, w, b, p: patchify(x, p) @ w.flatten(1)[:, : w.shape[0]] + b,
}


@pytest.mark.parametrize("right", [by_patches, by_unfold])
def test_patch_embed_accepts_the_textbook_forms(right, capsys):
    assert passes(checks.check_patch_embed_kernel(right))
    assert capsys.readouterr().out.startswith("Correct! my_patch_embed agrees with course_lib.transformers.PatchEmbed")


@pytest.mark.parametrize("wrong", list(WRONG))
def test_patch_embed_rejects_the_slips(wrong, capsys):
    assert not passes(checks.check_patch_embed_kernel(WRONG[wrong]))
    assert "Not quite" in capsys.readouterr().out


def test_patch_embed_unanswered(capsys):
    assert not passes(checks.check_patch_embed_kernel(lambda x, w, b, p: None))
    assert "Not answered yet" in capsys.readouterr().out


# --------------------------------------------------------------------------- notebook 18: the MIM loss

MIM_RIGHT = {
    "cross_entropy on logits[mask]": lambda lg, c, m: F.cross_entropy(lg[m], c[m]),
    "log_softmax, gathered, masked mean": lambda lg, c, m: -(lg.log_softmax(-1).gather(-1, c[..., None])[..., 0] * m).sum() / m.sum(),
}
MIM_WRONG = {
    "mean over all positions": lambda lg, c, m: F.cross_entropy(lg.flatten(0, 1), c.flatten()),
    "mask inverted": lambda lg, c, m: F.cross_entropy(lg[~m], c[~m]) if (~m).any() else lg.sum() * 0,
    "per-image mean, then mean": lambda lg, c, m: torch.stack([F.cross_entropy(lg[b][m[b]], c[b][m[b]])
                                                               for b in range(len(m)) if m[b].any()]).mean(),
    "sum, not mean": lambda lg, c, m: F.cross_entropy(lg[m], c[m], reduction="sum"),
}


@pytest.mark.parametrize("right", list(MIM_RIGHT))
def test_mim_loss_accepts_the_textbook_forms(right, capsys):
    assert passes(checks.check_mim_loss_kernel(MIM_RIGHT[right]))
    assert capsys.readouterr().out.startswith("Correct! my_mim_loss agrees")


@pytest.mark.parametrize("wrong", list(MIM_WRONG))
def test_mim_loss_rejects_the_slips(wrong, capsys):
    assert not passes(checks.check_mim_loss_kernel(MIM_WRONG[wrong]))
    assert "Not quite" in capsys.readouterr().out


# --------------------------------------------------------------------------- notebook 18: blockwise masking


def algorithm1(grid, ratio, min_block, rand, *, overshoot=False, uniform_r=False, swap=False, trunc=False,
               no_overlap=False, corner_first=False, last_row_never=False):
    """Algorithm 1 as notebook 18's solution writes it; each keyword makes one plausible slip."""
    target = round(ratio * grid * grid)
    M = torch.zeros(grid, grid, dtype=torch.bool)
    rnd = int if trunc else round
    while (remaining := target - int(M.sum())) > 0:
        for _ in range(10):
            s = rand(min_block, remaining)
            r = rand(0.3, 1 / 0.3) if uniform_r else math.exp(rand(math.log(0.3), math.log(1 / 0.3)))
            a, b = rnd(math.sqrt(s * r)), rnd(math.sqrt(s / r))
            if swap:
                a, b = b, a
            if corner_first:
                top, left = int(rand(0, max(grid - a + 1, 0))), int(rand(0, max(grid - b + 1, 0)))
            if not (1 <= a < grid and 1 <= b < grid):
                continue
            if not corner_first:
                k = 0 if last_row_never else 1
                top, left = int(rand(0, grid - a + k)), int(rand(0, grid - b + k))
            new = a * b if no_overlap else a * b - int(M[top:top + a, left:left + b].sum())
            if 0 < new and (overshoot or new <= remaining):
                M[top:top + a, left:left + b] = True
                break
        else:
            break
    return M.flatten()


SLIPS = ["overshoot", "uniform_r", "swap", "trunc", "no_overlap", "corner_first", "last_row_never"]


def test_blockwise_mask_accepts_algorithm1(capsys):
    assert passes(checks.check_blockwise_mask_kernel(algorithm1))
    assert capsys.readouterr().out.startswith("Correct! my_blockwise_mask agrees with course_lib.transformers.beit")
    assert passes(checks.check_blockwise_mask_kernel(lambda *a: algorithm1(*a).view(-1).long()))   # 0/1 ints


@pytest.mark.parametrize("slip", SLIPS)
def test_blockwise_mask_rejects_the_slips(slip, capsys):
    assert not passes(checks.check_blockwise_mask_kernel(lambda *a: algorithm1(*a, **{slip: True})))
    assert "Not quite" in capsys.readouterr().out


def test_blockwise_mask_unanswered_and_wrong_shape(capsys):
    assert not passes(checks.check_blockwise_mask_kernel(lambda *a: None))
    assert "Not answered yet" in capsys.readouterr().out
    assert not passes(checks.check_blockwise_mask_kernel(lambda g, *a: algorithm1(g, *a).view(g, g)))
    assert "Not quite" in capsys.readouterr().out
