"""Answers to the exercises of notebooks 19-20, computed with this chapter's kernels (never stored).

Write the kernel: temperature and top-k filtering of notebook 19 (the sampling knobs of DALL-E's loop), checked
against ``filter_logits`` on random logits and the cases that reject the plausible slips (temperature multiplied,
k + 1 kept, the filter applied after the softmax); CLIP's symmetric contrastive loss of notebook 20 (Radford et al.
Fig. 3), checked against ``clip_loss`` on random embeddings, rejecting one-directional losses, missing
normalisation and a temperature applied the wrong way.
"""

from __future__ import annotations

import math

import torch

from course_lib.checks import Verdict, check_kernel
from course_lib.dalle.clip import clip_loss
from course_lib.dalle.dalle import filter_logits


def filter_cases(seed: int = 0) -> list[tuple[str, tuple]]:
    """(logits, temperature, top_k) tuples."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, dtype=torch.float32: torch.randn(*shape, generator=g, dtype=dtype)   # noqa: E731
    return [
        ("random (4, 128) logits, temperature 1, top-32", (3 * r(4, 128), 1.0, 32)),
        ("random (4, 128), temperature 0.7, all kept (top_k None)", (3 * r(4, 128), 0.7, None)),
        ("random (2, 10), temperature 2, top-1 (greedy)", (r(2, 10), 2.0, 1)),
        ("float64 (3, 16), temperature 0.5, top-5", (r(3, 16, dtype=torch.float64), 0.5, 5)),
        ("edge: top_k = the vocabulary size keeps everything", (r(2, 8), 1.0, 8)),
    ]


def check_filter_kernel(fn) -> Verdict:
    """``fn(logits, temperature, top_k) -> filtered logits`` against ``filter_logits``, compared through the softmax
    (the distribution sampled from; -inf minus -inf has no relative error)."""
    def probs(f):
        def run(*args):
            out = f(*args)
            return out.softmax(-1) if isinstance(out, torch.Tensor) else out
        return run
    return check_kernel(probs(fn), probs(filter_logits), filter_cases(), name="my_filter_logits",
                        reference_name="course_lib.dalle.filter_logits",
                        hint="divide the logits by the temperature (T < 1 sharpens); then set every logit below "
                             "the k-th largest of its row (logits.topk(k).values[..., -1:]) to -inf, so the softmax "
                             "gives them probability 0. top_k None keeps all.")


def clip_cases(seed: int = 1) -> list[tuple[str, tuple]]:
    """(image_emb, text_emb, log_scale) tuples."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, dtype=torch.float32: torch.randn(*shape, generator=g, dtype=dtype)   # noqa: E731
    return [
        ("random (8, 64) embeddings, log_scale = log(1/0.07)", (r(8, 64), r(8, 64), math.log(1 / 0.07))),
        ("embeddings of different lengths (normalise first), log_scale 1", (5 * r(6, 16), 0.2 * r(6, 16), 1.0)),
        ("float64, a (3, 4) batch, log_scale 0 (scale 1)", (r(3, 4, dtype=torch.float64), r(3, 4, dtype=torch.float64), 0.0)),
        ("edge: an asymmetric batch: images 0 and 1 alike, captions unlike", (
            torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]]),
            torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), 2.0)),
    ]


def check_clip_loss_kernel(fn) -> Verdict:
    """``fn(image_emb, text_emb, log_scale) -> ()`` against ``clip_loss``."""
    return check_kernel(fn, clip_loss, clip_cases(), name="my_clip_loss", reference_name="course_lib.dalle.clip_loss",
                        hint="normalise both embeddings to unit length; logits = I @ T.T * exp(log_scale) (B, B); the "
                             "loss is the mean of the cross-entropy of the rows (image -> caption) and of the columns "
                             "(caption -> image, i.e. of logits.T), both with targets arange(B).")


# ---------------------------------------------------------------------------------------------- hand computations


def check_mask_pairs(answer) -> Verdict:
    """Notebook 19: how many (query, key) pairs does the causal mask of the 65-token stream allow? Each position i
    attends to i + 1 keys: 65 x 66 / 2 = 2,145. All pairs (4,225), the strict lower triangle (2,080) or the image
    block alone fail."""
    from course_lib.checks import report

    n = 16 + 49
    return report(answer, n * (n + 1) // 2, "query i may attend to keys 0..i (itself included): sum i + 1 over the "
                                            "65 positions", sig=None)


def check_chance_clip_loss(answer) -> Verdict:
    """Notebook 20: CLIP's loss on a batch of 128 pairs when every similarity is equal (an untrained model):
    each cross-entropy is log 128 = 4.852 nats, and so is their mean. log2 128 = 7, log 2, or half of log 128 fail;
    3 significant digits."""
    from course_lib.checks import report

    return report(answer, math.log(128), "equal logits make each row's softmax uniform over the 128 candidates; "
                                         "the cross-entropy is then -ln(1/128) in nats, in both directions", sig=3)
