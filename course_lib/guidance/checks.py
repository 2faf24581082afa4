"""Answers to notebook 14's exercises, computed with this chapter's kernels (never stored).

Write the kernel: the classifier-free guidance combination (Ho & Salimans 2022, Eq. 6) and the
classifier-guided noise prediction (Dhariwal & Nichol 2021, Eq. 14) of notebook 14, and the masked cross-attention
of notebook 15 (Rombach et al. 2022, Sec. 3.3), each checked against ``course_lib.guidance`` on seeded random
inputs and the edge cases that tell the plausible slips apart (scale 0 and 1, a per-example scale, abar_t at
both ends of the schedule; padded captions of different lengths, one kept token).
A hand computation of notebook 15: the bits in one image's tokens (``check_latent_bits``).
"""

from __future__ import annotations

import math

import torch

from course_lib.checks import Verdict, check_kernel, report
from course_lib.guidance.cross_attention import masked_attention
from course_lib.guidance.guidance import cfg, classifier_guided_eps


def cfg_cases(seed: int = 0) -> list[tuple[str, tuple]]:
    """(eps_uncond, eps_cond, scale) triples: random (B, 1, 28, 28) predictions at several scales."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, dtype=torch.float32: torch.randn(*shape, generator=g, dtype=dtype)   # noqa: E731
    return [
        ("random (4, 1, 28, 28) predictions, scale 3 (guided beyond the conditional model)", (r(4, 1, 28, 28), r(4, 1, 28, 28), 3.0)),
        ("random (4, 1, 28, 28), scale 0.5 (between the two models)", (r(4, 1, 28, 28), r(4, 1, 28, 28), 0.5)),
        ("edge: scale 0 returns the unconditional prediction", (r(2, 1, 5, 5), r(2, 1, 5, 5), 0.0)),
        ("edge: scale 1 returns the conditional prediction", (r(2, 1, 5, 5), r(2, 1, 5, 5), 1.0)),
        ("edge: one scale per example, a (3,) tensor [0, 1, 7], float64",
         (r(3, 2, 4, 4, dtype=torch.float64), r(3, 2, 4, 4, dtype=torch.float64),
          torch.tensor([0.0, 1.0, 7.0], dtype=torch.float64))),
    ]


def guided_cases(seed: int = 1) -> list[tuple[str, tuple]]:
    """(eps, grad_log_p, alpha_bar_t, scale) tuples."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, dtype=torch.float32: torch.randn(*shape, generator=g, dtype=dtype)   # noqa: E731
    return [
        ("random (4, 1, 28, 28), abar_t = 0.3, scale 3", (r(4, 1, 28, 28), r(4, 1, 28, 28), 0.3, 3.0)),
        ("random (4, 1, 28, 28), abar_t = 0.9, scale 1 (Bayes' rule)", (r(4, 1, 28, 28), r(4, 1, 28, 28), 0.9, 1.0)),
        ("edge: abar_t = 1 (no noise: the gradient gets weight 0)", (r(2, 1, 5, 5), r(2, 1, 5, 5), 1.0, 5.0)),
        ("edge: abar_t = 0 (pure noise: weight s)", (r(2, 1, 5, 5), r(2, 1, 5, 5), 0.0, 2.0)),
        ("edge: one abar_t per example, a (3,) tensor, float64",
         (r(3, 1, 4, 4, dtype=torch.float64), r(3, 1, 4, 4, dtype=torch.float64),
          torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64), 4.0)),
    ]


def check_cfg_kernel(fn) -> Verdict:
    """``fn(eps_uncond, eps_cond, scale) -> eps_hat`` against ``course_lib.guidance.cfg``."""
    return check_kernel(fn, cfg, cfg_cases(), name="my_cfg", reference_name="course_lib.guidance.cfg",
                        hint="eps_hat = eps_u + s * (eps_c - eps_u): scale 0 gives eps_u, scale 1 eps_c. A (B,) "
                             "scale must be viewed as (B, 1, 1, 1) to broadcast over each example. (Ho & Salimans "
                             "write (1 + w) eps_c - w eps_u with w = s - 1: the same line.)")


def check_guided_eps_kernel(fn) -> Verdict:
    """``fn(eps, grad_log_p, alpha_bar_t, scale) -> eps_hat`` against ``course_lib.guidance.classifier_guided_eps``."""
    return check_kernel(fn, classifier_guided_eps, guided_cases(), name="my_guided_eps",
                        reference_name="course_lib.guidance.classifier_guided_eps",
                        hint="eps_hat = eps - s * sqrt(1 - abar_t) * grad_log_p (eps = -sqrt(1 - abar_t) * score, "
                             "so adding s * grad log p(y | x_t) to the score subtracts it, scaled, from eps). A (B,) "
                             "abar_t must be viewed as (B, 1, 1, 1); keep x's dtype.")


def cross_attention_cases(seed: int = 2) -> list[tuple[str, tuple]]:
    """(q, k, v, mask) tuples: image queries against caption tokens with padding."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, dtype=torch.float32: torch.randn(*shape, generator=g, dtype=dtype)   # noqa: E731
    lengths = torch.tensor([16, 9, 3])
    mask = torch.arange(16)[None, :] < lengths[:, None]                                      # (3, 16)
    return [
        ("49 pixels x 16 tokens, 4 heads of width 16, captions of 16, 9 and 3 tokens",
         (r(3, 4, 49, 16), r(3, 4, 16, 16), r(3, 4, 16, 16), mask)),
        ("no mask (every token kept), width 8", (r(2, 2, 10, 8), r(2, 2, 5, 8), r(2, 2, 5, 8), None)),
        ("edge: one kept token (the empty caption's start token): every pixel takes its value, float64",
         (r(1, 2, 6, 4, dtype=torch.float64), r(1, 2, 7, 4, dtype=torch.float64), r(1, 2, 7, 4, dtype=torch.float64),
          torch.tensor([[True] + [False] * 6]))),
        ("edge: large scores (a softmax that is not stabilised overflows)",
         (30 * r(1, 1, 4, 16), 30 * r(1, 1, 6, 16), r(1, 1, 6, 16), torch.tensor([[True] * 4 + [False] * 2]))),
    ]


def check_cross_attention_kernel(fn) -> Verdict:
    """``fn(q, k, v, mask) -> out`` (B, h, N, d) against ``course_lib.guidance.masked_attention``."""
    return check_kernel(fn, lambda q, k, v, mask: masked_attention(q, k, v, mask)[0], cross_attention_cases(),
                        name="my_cross_attention", reference_name="course_lib.guidance.masked_attention",
                        hint="scores = q @ k.transpose(-2, -1) / sqrt(d) (B, h, N, M); set the scores of padded "
                             "tokens to -inf (mask[:, None, None, :] broadcasts over heads and pixels) before the "
                             "softmax over the last axis (the tokens), then weights @ v. Masking after the softmax "
                             "leaves weights that no longer sum to 1; without the 1/sqrt(d) the softmax is too sharp; "
                             "exp of the raw scores overflows where .softmax(-1), which subtracts each row's maximum "
                             "first, does not.")


def check_latent_bits(answer) -> Verdict:
    """How many bits does the tokenizer's code of one image hold? A 7 x 7 grid of tokens, each one of
    ``num_codes`` = 128 codebook entries: 49 log2(128) = 343. The number of tokens (49), of codebook entries times
    tokens (6,272), or of the continuous latent's numbers (784) fail."""
    from course_lib.vq.vqvae import VQVAE

    tokenizer = VQVAE()                           # the shipped tokenizer's sizes (no weights needed)
    expected = float(tokenizer.grid ** 2 * math.log2(tokenizer.num_codes))
    return report(answer, expected, "each token names one of the codebook's entries, which takes log2(entries) "
                                    "bits; an image has 7 x 7 tokens", sig=None)
