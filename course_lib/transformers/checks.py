"""Answers to the exercises of notebooks 16-18, computed with this chapter's kernels (never stored).

Write the kernel: masked attention of notebook 16 (Vaswani et al. Eq. 1 with a boolean mask), checked against
``course_lib.attention`` on random inputs, a causal mask, a padding-style key mask and a query that may see one key
only -- the cases that reject the plausible slips (no 1/sqrt(d), the softmax over queries, the mask applied after the
softmax without renormalising, masked scores set to 0 instead of -inf).

Write the kernel: the patch embedding of notebook 17 (ViT Eq. 1: x_p E + b on the image cut into p x p patches),
checked against ``PatchEmbed``'s strided convolution on seeded random inputs and the cases that tell the plausible
slips apart (patches read column by column, a patch flattened as (p, p, C) instead of (C, p, p) -- only a
3-channel image shows it --, the bias forgotten, p = 1).

Hand computations (``check_patch_embed_params``, ``check_masked_bits``; notebook 16's is
``igpt.check_uniform_bits_512``): one per notebook, accepting the exact answer and rejecting the plausible slips named
in each docstring.

Write the kernel: BEiT's masked-token loss of notebook 18 (Eq. 1: the mean cross-entropy over the masked positions
only, every masked token of the batch weighing the same), checked on images with different numbers masked.

Write the kernel: BEiT's blockwise masking of notebook 18 (Algorithm 1, as the paper's code runs it), checked against
``course_lib.transformers.beit.blockwise_mask`` by giving both the same stream of uniform draws ``rand(lo, hi)``
(seeded streams on 7 x 7 and 14 x 14 grids, and one that starts with a block too large for the grid). The cases
reject the plausible slips: a block that overshoots the target accepted (the paper's pseudo-code), the aspect ratio
drawn uniformly instead of log-uniformly, rows and columns swapped, int() instead of round(), the new patches counted
without the overlap, the corner drawn before the fit test or never touching the last row or column.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.attention import attention
from course_lib.checks import Verdict, check_kernel


def attention_cases(seed: int = 0) -> list[tuple[str, tuple]]:
    """(q, k, v, mask) tuples."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, dtype=torch.float32: torch.randn(*shape, generator=g, dtype=dtype)   # noqa: E731
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    keys = torch.tensor([[True, True, True, False, False], [True, False, True, True, True]])[:, None, None, :]
    one = torch.zeros(4, 4, dtype=torch.bool)
    one[:, 0] = True
    one[3] = True
    return [
        ("random (2, 4, 6, 16) q, k, v, no mask", (r(2, 4, 6, 16), r(2, 4, 6, 16), r(2, 4, 6, 16), None)),
        ("random (2, 4, 6, 16), the causal mask (6, 6) of an autoregressive model",
         (r(2, 4, 6, 16), r(2, 4, 6, 16), r(2, 4, 6, 16), causal)),
        ("3 queries over 5 keys, a key mask (2, 1, 1, 5) (padding), v of width 7, float64",
         (r(2, 1, 3, 8, dtype=torch.float64), r(2, 1, 5, 8, dtype=torch.float64), r(2, 1, 5, 7, dtype=torch.float64), keys)),
        ("edge: queries 0-2 may see key 0 only (their output is v[0]); query 3 sees all",
         (r(1, 2, 4, 4), r(1, 2, 4, 4), r(1, 2, 4, 3), one)),
        ("edge: large scores (q, k of size 30): the 1/sqrt(d) scale and a stable softmax matter",
         (30 * r(1, 1, 5, 64), r(1, 1, 5, 64), r(1, 1, 5, 4), None)),
    ]


def check_attention_kernel(fn) -> Verdict:
    """``fn(q, k, v, mask) -> out`` against ``course_lib.attention`` (the written-out Eq. 1)."""
    return check_kernel(fn, attention, attention_cases(), name="my_attention", reference_name="course_lib.attention",
                        hint="scores = q @ k^T / sqrt(d) (d = q.shape[-1]); where mask is False set the score to "
                             "-inf *before* the softmax over the keys (the last axis), so masked keys get weight "
                             "exactly 0 and the rest still sum to 1; out = weights @ v.")


def patch_embed_reference(x: Tensor, weight: Tensor, bias: Tensor, p: int) -> Tensor:
    """The strided convolution PatchEmbed runs: x (B, C, H, W), weight (D, C, p, p), bias (D,) -> (B, N, D)."""
    return F.conv2d(x, weight, bias, stride=p).flatten(2).transpose(1, 2)


def patch_embed_cases(seed: int = 0) -> list[tuple[str, tuple]]:
    """(x, weight, bias, p) tuples."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, dtype=torch.float32: torch.randn(*shape, generator=g, dtype=dtype)   # noqa: E731
    return [
        ("random (4, 1, 28, 28) images, p = 4, D = 64 (the notebook's ViT)", (r(4, 1, 28, 28), r(64, 1, 4, 4), r(64), 4)),
        ("random (2, 1, 28, 28), p = 7, D = 8", (r(2, 1, 28, 28), r(8, 1, 7, 7), r(8), 7)),
        ("a non-square grid: (1, 1, 8, 12), p = 4 (2 rows of 3 patches)", (r(1, 1, 8, 12), r(5, 1, 4, 4), r(5), 4)),
        ("3 channels (2, 3, 8, 8), p = 4, float64: a patch flattens channel by channel, (C, p, p)",
         (r(2, 3, 8, 8, dtype=torch.float64), r(6, 3, 4, 4, dtype=torch.float64), r(6, dtype=torch.float64), 4)),
        ("edge: p = 1 (every pixel a token), bias only (weight 0)", (r(1, 2, 3, 3), torch.zeros(4, 2, 1, 1), r(4), 1)),
    ]


def check_patch_embed_kernel(fn) -> Verdict:
    """``fn(x, weight, bias, p) -> tokens (B, N, D)`` against PatchEmbed's convolution."""
    return check_kernel(fn, patch_embed_reference, patch_embed_cases(), name="my_patch_embed",
                        reference_name="course_lib.transformers.PatchEmbed",
                        hint="cut x into p x p patches row by row (patch n = row n // (W/p), column n % (W/p)), "
                             "flatten each as (C, p, p) -- `patchify` does both --, then multiply by "
                             "weight.flatten(1).T (D columns) and add the bias.")


def mim_loss_reference(logits: Tensor, codes: Tensor, mask: Tensor) -> Tensor:
    """BEiT Eq. 1 as a loss: the mean over all masked positions of the batch of -log softmax(logits)[code]."""
    return F.cross_entropy(logits[mask], codes[mask])


def mim_loss_cases(seed: int = 0) -> list[tuple[str, tuple]]:
    """(logits, codes, mask) tuples."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, dtype=torch.float32: torch.randn(*shape, generator=g, dtype=dtype)   # noqa: E731

    def mask(B, N, counts):
        m = torch.zeros(B, N, dtype=torch.bool)
        for b, c in enumerate(counts):
            m[b, torch.randperm(N, generator=g)[:c]] = True
        return m
    return [
        ("random (4, 49, 128) logits, 20 of 49 masked per image", (r(4, 49, 128), torch.randint(0, 128, (4, 49), generator=g),
                                                                  mask(4, 49, [20] * 4))),
        ("images with different numbers masked (1, 5, 30): every masked token weighs the same",
         (r(3, 49, 16), torch.randint(0, 16, (3, 49), generator=g), mask(3, 49, [1, 5, 30]))),
        ("float64, confident logits (size 20)", (20 * r(2, 9, 8, dtype=torch.float64), torch.randint(0, 8, (2, 9), generator=g),
                                                 mask(2, 9, [4, 4]))),
        ("edge: one masked token in the batch", (r(2, 4, 5), torch.randint(0, 5, (2, 4), generator=g), mask(2, 4, [0, 1]))),
    ]


def check_mim_loss_kernel(fn) -> Verdict:
    """``fn(logits, codes, mask) -> scalar`` against BEiT's Eq. 1 (cross-entropy on the masked positions)."""
    return check_kernel(fn, mim_loss_reference, mim_loss_cases(), name="my_mim_loss",
                        reference_name="course_lib.transformers.beit.mim_loss",
                        hint="select the masked positions first (logits[mask] is (|M|, V), codes[mask] is (|M|,)), "
                             "then take the mean of -log softmax(logits)[code] over them: unmasked positions are not "
                             "predicted, and every masked token of the batch weighs the same.")


def blockwise_mask_cases() -> list[tuple[str, tuple]]:
    """(grid, ratio, min_block, seed) tuples; seed -1: a stream whose first block (s = 20, r = 1/0.3) is 8 x 2 on a
    7 x 7 grid, too tall to fit, then seeded draws."""
    return [
        ("7 x 7 grid, ratio 0.4, blocks of >= 4 patches (the notebook's), draws seeded 0", (7, 0.4, 4, 0)),
        ("7 x 7, ratio 0.4, min_block 4, seed 1", (7, 0.4, 4, 1)),
        ("7 x 7, ratio 0.4, min_block 4, seed 2", (7, 0.4, 4, 2)),
        ("14 x 14 grid, ratio 0.4, min_block 16 (the paper's setting), seed 3", (14, 0.4, 16, 3)),
        ("7 x 7, ratio 0.2, min_block 4, seed 4", (7, 0.2, 4, 4)),
        ("5 x 5, ratio 0.5, min_block 1, seed 5", (5, 0.5, 1, 5)),
        ("edge: the first block (s = 20, r = 1/0.3: 8 x 2) does not fit the 7 x 7 grid: no corner is drawn for it",
         (7, 0.4, 4, -1)),
    ]


def _draws(seed: int):
    """The stream of uniform draws of a case: seeded, or for seed -1 scripted first (u = 1 for s and log r: the
    largest block, too tall) and then seeded."""
    from course_lib.transformers.beit import uniform_draws

    seeded = uniform_draws(torch.Generator().manual_seed(max(seed, 0) + 100))
    scripted = [1.0, 1.0] if seed == -1 else []

    def rand(lo: float, hi: float) -> float:
        return lo + scripted.pop(0) * (hi - lo) if scripted else seeded(lo, hi)
    return rand


def check_blockwise_mask_kernel(fn) -> Verdict:
    """``fn(grid, ratio, min_block, rand) -> (grid * grid,) bool`` against ``blockwise_mask`` given the same draws."""
    from course_lib.transformers.beit import blockwise_mask

    def reference(grid, ratio, min_block, seed):
        return blockwise_mask(grid, ratio, min_block, attempts=10, rand=_draws(seed))

    def learner(grid, ratio, min_block, seed):
        out = fn(grid, ratio, min_block, _draws(seed))
        return out if out is None or not isinstance(out, Tensor) else out.to(torch.bool).double()

    return check_kernel(learner, lambda *a: reference(*a).double(), blockwise_mask_cases(), name="my_blockwise_mask",
                        reference_name="course_lib.transformers.beit.blockwise_mask",
                        hint="draw in this order: s = rand(min_block, remaining), log r = rand(log 0.3, log(1/0.3)); "
                             "a = round(sqrt(s r)) rows, b = round(sqrt(s / r)) columns; skip the block (no more "
                             "draws) unless 1 <= a < grid and 1 <= b < grid; top = int(rand(0, grid - a + 1)), "
                             "left = int(rand(0, grid - b + 1)); accept only if the patches it adds (not already "
                             "masked) number between 1 and remaining; 10 rejections in a row end the loop. Return "
                             "the (grid, grid) mask flattened row by row.")


# ---------------------------------------------------------------------------------------------- hand computations


def check_patch_embed_params(answer) -> Verdict:
    """Notebook 17: parameters of the patch embedding E (and its bias) for 4 x 4 patches of a 1-channel image and
    width D = 64: 64 x 16 + 64 = 1,088. Without the bias (1,024), per image (49 x 1,088), or with the position
    embeddings (1,088 + 50 x 64) fail."""
    from course_lib.checks import report

    return report(answer, 64 * 4 * 4 * 1 + 64, "E maps one flattened patch (p x p x C numbers) to D numbers, plus one "
                                              "bias per output; it is shared by all 49 patches", sig=None)


def check_masked_bits(answer) -> Verdict:
    """Notebook 18: under the uniform prior of the tokenizer's stage 1 (128 equally likely codes), how many bits do
    the masked tokens of one image cost, with 20 of its 49 tokens masked? 20 log2(128) = 140. All 49 tokens (343),
    20 x 128 (2,560) or nats (20 ln 128 = 97.0) fail."""
    from course_lib.checks import report

    return report(answer, 20 * math.log2(128), "each masked token is one of 128 codes: log2(128) = 7 bits; only the "
                                               "masked ones are predicted", sig=None)

