"""Cross-attention: how a latent diffusion U-Net reads a caption.

Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models"
(https://arxiv.org/abs/2112.10752), Sec. 3.3, the conditioning mechanism: the U-Net's features phi(z_t) at one
resolution attend to the text encoder's token features tau(y),

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V,   Q = phi(z_t) W_Q,   K = tau(y) W_K,   V = tau(y) W_V,

so the image asks (queries, one per pixel) and the caption answers (keys and values, one per token).
Softmax is over the caption's tokens: each pixel's weights over the words sum to 1, which is what the
cross-attention maps of the notebook draw. Padding tokens are masked out (weight exactly 0).

- ``masked_attention``       Vaswani et al. 2017, Eq. 1, written out, with a key mask; returns the weights too
- ``CrossAttention``         multi-head, as diffusers' ``Attention(query_dim, cross_attention_dim=...)``:
                             q, k, v projections without bias, an output projection with bias
- ``SpatialCrossAttention``  GroupNorm, (B, C, H, W) -> (B, HW, C), cross-attention, residual, back

Shapes: B batch, N queries (pixels, H*W), M context tokens (words), D widths, h heads of width d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import attention
from course_lib.utils import values_checkable


def masked_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Vaswani et al. Eq. 1, written out: w = softmax(q k^T / sqrt(d)) over the kept keys, out = w v.

    q (B, h, N, d), k (B, h, M, d), v (B, h, M, e), mask (B, M) bool (True = keep; each row keeps one or more)
    -> out (B, h, N, e), weights (B, h, N, M). ``out`` equals
    ``F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])``: the core kernel
    ``course_lib.attention.attention`` with a key mask, the same for every query and head."""
    return attention(q, k, v, None if mask is None else mask[:, None, None, :], return_weights=True)


def _check_mask(mask: Tensor | None, B: int, M: int) -> None:
    if mask is None:
        return
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.shape != (B, M):
        raise ValueError(f"expected mask of shape ({B}, {M}) bool (True = keep the token), got "
                         f"{tuple(getattr(mask, 'shape', ())) or mask!r} {getattr(mask, 'dtype', '')}")
    if values_checkable(mask) and not bool(mask.any(1).all()):
        raise ValueError("expected every row of mask to keep at least one token (an empty caption still has "
                         "its start token)")


class CrossAttention(nn.Module):
    """Multi-head attention of x's tokens (queries) over context tokens (keys, values).

    x (B, N, query_dim), context (B, M, context_dim), mask (B, M) bool or None -> (B, N, query_dim);
    with ``return_attention=True`` also the weights (B, heads, N, M). The inner width is heads * dim_head."""

    def __init__(self, query_dim: int, context_dim: int, heads: int = 4, dim_head: int = 16):
        super().__init__()
        self.query_dim, self.context_dim, self.heads, self.dim_head = query_dim, context_dim, heads, dim_head
        inner = heads * dim_head
        self.to_q = nn.Linear(query_dim, inner, bias=False)      # W_Q
        self.to_k = nn.Linear(context_dim, inner, bias=False)    # W_K
        self.to_v = nn.Linear(context_dim, inner, bias=False)    # W_V
        self.to_out = nn.Linear(inner, query_dim)                # W_O, with bias

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None = None,
                return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        if not isinstance(x, Tensor) or x.ndim != 3 or x.shape[2] != self.query_dim:
            raise ValueError(f"expected x of shape (B, N, {self.query_dim}), got {tuple(getattr(x, 'shape', ()))}")
        B, N, _ = x.shape
        if not isinstance(context, Tensor) or context.ndim != 3 or context.shape[0] != B \
                or context.shape[2] != self.context_dim:
            raise ValueError(f"expected context of shape ({B}, M, {self.context_dim}), got "
                             f"{tuple(getattr(context, 'shape', ()))}")
        M, h, d = context.shape[1], self.heads, self.dim_head
        _check_mask(mask, B, M)
        q = self.to_q(x).view(B, N, h, d).transpose(1, 2)                # (B, h, N, d)
        k = self.to_k(context).view(B, M, h, d).transpose(1, 2)          # (B, h, M, d)
        v = self.to_v(context).view(B, M, h, d).transpose(1, 2)          # (B, h, M, d)
        if return_attention:
            y, weights = masked_attention(q, k, v, mask)                  # (B, h, N, d), (B, h, N, M)
        else:                                                             # the fast path, same numbers
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else mask[:, None, None, :])
        y = self.to_out(y.transpose(1, 2).reshape(B, N, h * d))           # (B, N, query_dim)
        return (y, weights) if return_attention else y


class SpatialCrossAttention(nn.Module):
    """Rombach et al. Sec. 3.3 in a U-Net: x + CrossAttention(GN(x) as H*W tokens, context), as diffusers'
    ``Attention(..., norm_num_groups=groups, residual_connection=True)`` on a (B, C, H, W) input.

    x (B, C, H, W), context (B, M, context_dim), mask (B, M) bool or None -> (B, C, H, W); with
    ``return_attention=True`` also the weights (B, heads, H*W, M) (view them as (B, heads, H, W, M))."""

    def __init__(self, channels: int, context_dim: int, heads: int = 4, dim_head: int = 16, groups: int = 8):
        super().__init__()
        self.channels = channels
        self.norm = nn.GroupNorm(groups, channels)
        self.attn = CrossAttention(channels, context_dim, heads, dim_head)

    def forward(self, x: Tensor, context: Tensor, mask: Tensor | None = None,
                return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected x of shape (B, {self.channels}, H, W), got {tuple(getattr(x, 'shape', ()))}")
        B, C, H, W = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)                   # (B, H*W, C)
        out = self.attn(tokens, context, mask, return_attention)
        y, weights = out if return_attention else (out, None)             # (B, H*W, C)
        y = x + y.transpose(1, 2).reshape(B, C, H, W)                     # (B, C, H, W)
        return (y, weights) if return_attention else y
