"""The transformer block shared by chapters 16-18 (Image GPT, ViT, BEiT).

Vaswani et al. 2017, "Attention Is All You Need" (https://arxiv.org/abs/1706.03762), Eq. 1:

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V

and the pre-norm block of GPT-2 and ViT (Dosovitskiy et al. 2021, https://arxiv.org/abs/2010.11929, Eqs. 2-3):

    x = x + MSA(LN(x)),    x = x + MLP(LN(x)).

- ``attention``      Eq. 1 written out, with an optional boolean mask (True = may attend); equals
                     ``F.scaled_dot_product_attention(q, k, v, attn_mask=mask)`` (``course_lib.attention``, shared
                     with chapters 13 and 15)
- ``causal_mask``    the lower-triangular mask of an autoregressive model (token i sees tokens <= i)
- ``SelfAttention``  multi-head self-attention with one fused q/k/v projection, laid out as timm's ``Attention``
                     (``qkv``, ``proj``) so a timm checkpoint copies over name by name
- ``MLP``            Linear -> GELU -> Linear (``fc1``, ``fc2``), width ``mlp_ratio * dim``
- ``Block``          the pre-norm block above (``norm1``, ``attn``, ``norm2``, ``mlp``)

Shapes: B batch, N tokens, D model width, h heads of width d = D / h.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import attention


def causal_mask(n: int, device: torch.device | str | None = None) -> Tensor:
    """(n, n) bool, True on and below the diagonal: token i attends to tokens 0..i (GPT's mask)."""
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


class SelfAttention(nn.Module):
    """Multi-head self-attention: x (B, N, D), mask bool broadcastable to (B, h, N, N) or None -> (B, N, D).

    With ``return_attention=True`` the written-out kernel runs and the weights (B, h, N, N) come back too;
    otherwise ``F.scaled_dot_product_attention`` (the same numbers, the fast path)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)       # W_Q, W_K, W_V stacked (timm's layout, with bias)
        self.proj = nn.Linear(dim, dim)          # W_O

    def forward(self, x: Tensor, mask: Tensor | None = None,
                return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        B, N, D = x.shape
        h = self.heads
        q, k, v = self.qkv(x).view(B, N, 3, h, D // h).permute(2, 0, 3, 1, 4)   # each (B, h, N, d)
        if return_attention:
            y, weights = attention(q, k, v, mask, return_weights=True)          # (B, h, N, d), (B, h, N, N)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = self.proj(y.transpose(1, 2).reshape(B, N, D))                       # (B, N, D)
        return (y, weights) if return_attention else y


class MLP(nn.Module):
    """x (..., D) -> fc2(GELU(fc1(x))) (..., D), hidden width ``hidden``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (ViT Eqs. 2-3): x + MSA(LN(x)), then x + MLP(LN(x)). x (B, N, D) -> (B, N, D).

    LayerNorm eps 1e-6 as timm's ViT; with ``return_attention=True`` also the weights (B, h, N, N)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, mask: Tensor | None = None,
                return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        out = self.attn(self.norm1(x), mask, return_attention)
        a, weights = out if return_attention else (out, None)
        x = x + a
        x = x + self.mlp(self.norm2(x))
        return (x, weights) if return_attention else x
