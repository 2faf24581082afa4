"""Scaled dot-product attention, written out: the kernel that chapters 13 (the U-Net's self-attention),
15 (cross-attention to a caption) and 16-20 (transformers) share.

Vaswani et al. 2017, "Attention Is All You Need" (https://arxiv.org/abs/1706.03762), Eq. 1:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V,

with an optional boolean mask (a causal mask for autoregressive models, a key mask for padded captions).
Each chapter's models use ``F.scaled_dot_product_attention`` as the fast path; the tests hold the two equal.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None,
              return_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Vaswani et al. Eq. 1: softmax(q k^T / sqrt(d)) v, the softmax over keys.

    q (..., N, d), k (..., M, d), v (..., M, e); mask bool broadcastable to (..., N, M), True where query i may
    attend to key j (each query keeps at least one key) -> (..., N, e); with ``return_weights`` also the
    weights (..., N, M), whose rows sum to 1 and are exactly 0 where the mask is False."""
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"expected q (..., N, d), k (..., M, d), v (..., M, e); got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])           # (..., N, M)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError(f"expected a bool mask (True = may attend), got {mask.dtype}")
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(-1)                                          # (..., N, M)
    out = weights @ v                                                     # (..., N, e)
    return (out, weights) if return_weights else out
