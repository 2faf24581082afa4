"""An autoregressive prior over the VQ-VAE's tokens: a small causal transformer (GPT-style).

The VQ-VAE paper (van den Oord et al. 2017, Sec. 3.1 and 4) trains the autoencoder with a uniform prior over
the K codes, then fits an autoregressive prior over the token grid and samples images by sampling tokens from
it and decoding them. The paper uses a PixelCNN; here it is a causal transformer (Vaswani et al. 2017, in the
pre-norm form of GPT-2, Radford et al. 2019), because chapters 16 and 19 build bigger ones from the same
blocks. The 7x7 grid is read in raster order as a sequence of T = 49 tokens, and

    p(k_0, ..., k_{T-1}) = prod_t p(k_t | k_0, ..., k_{t-1})

Each factor is a softmax over K codes; the model is trained by maximum likelihood (cross-entropy, in nats).

Blocks, each reusable: ``causal_mask``, ``attention`` (Vaswani et al., Eq. 1, written out, with the mask that
makes it causal; tested against ``F.scaled_dot_product_attention``), ``CausalSelfAttention`` (multi-head),
``Block`` (pre-norm: x + attn(LN(x)), then x + MLP(LN(x))), ``TokenPrior`` (embedding of a start token and the
shifted tokens, learned positions, blocks, a linear head). Steps for the notebook's loops: ``train_step``,
``nll`` and ``sample_next`` (one token from logits at a temperature).

Shapes: B batch, T sequence length (<= 49), D model width, H heads, K codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.utils import autocast, backward_step


@dataclass
class PriorConfig:
    num_codes: int = 128   # K: the tokenizer's codebook size
    length: int = 49       # T: tokens per image (7 x 7, raster order)
    dim: int = 64          # D
    heads: int = 4         # H (D must be a multiple of H)
    layers: int = 2
    mlp_ratio: int = 4     # hidden width of each block's MLP: mlp_ratio * D


# ---------------------------------------------------------------------------------------------- kernels

def causal_mask(T: int, device: torch.device | None = None) -> Tensor:
    """(T, T) bool, True where query i may attend to key j, i.e. j <= i (lower triangle with the diagonal)."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    """Vaswani et al. 2017, Eq. 1: softmax(q k^T / sqrt(d) masked) v.

    q (..., T, d), k (..., S, d), v (..., S, e), mask (T, S) bool (True = may attend; every row needs one True)
    -> (..., T, e). Equals ``F.scaled_dot_product_attention(q, k, v, attn_mask=mask)``."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])            # (..., T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v                                          # (..., T, e)


# ---------------------------------------------------------------------------------------------- blocks

class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: x (B, T, D) -> (B, T, D); output t depends on x[:, :t+1] only."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"expected dim divisible by heads, got {dim} and {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)                                  # 3 x (B, T, D)
        q, k, v = (t.view(B, T, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D/H)
        y = attention(q, k, v, causal_mask(T, x.device))                       # (B, H, T, D/H)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))                   # (B, T, D)


class Block(nn.Module):
    """Pre-norm transformer block (GPT-2): x + attn(LN(x)), then x + MLP(LN(x)). (B, T, D) -> (B, T, D)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TokenPrior(nn.Module):
    """p(k_t | k_<t) over token sequences: tokens (B, T) int64 in [0, K), T <= length -> logits (B, T, K).

    ``logits[:, t]`` is the distribution of token t given tokens[:, :t] (t = 0: given nothing). The input is
    shifted right behind a learned start embedding, so token t itself is never seen by its own logits."""

    def __init__(self, cfg: PriorConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or PriorConfig()
        self.tok_emb = nn.Embedding(cfg.num_codes, cfg.dim)
        self.start = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_emb = nn.Parameter(torch.zeros(1, cfg.length, cfg.dim))
        self.blocks = nn.Sequential(*[Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.layers)])
        self.ln_f = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, cfg.num_codes)
        nn.init.normal_(self.pos_emb, std=0.02)
        nn.init.normal_(self.start, std=0.02)

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.ndim != 2 or tokens.dtype != torch.int64 or not 1 <= tokens.shape[1] <= self.cfg.length:
            raise ValueError(f"expected int64 tokens (B, T), 1 <= T <= {self.cfg.length}, got "
                             f"{tuple(tokens.shape)} {tokens.dtype}")
        B, T = tokens.shape
        x = torch.cat([self.start.expand(B, 1, -1), self.tok_emb(tokens[:, :-1])], 1)   # (B, T, D) shifted right
        x = self.blocks(x + self.pos_emb[:, :T])                                        # (B, T, D)
        return self.head(self.ln_f(x))                                                  # (B, T, K)


# ---------------------------------------------------------------------------------------------- steps

def nll(prior: TokenPrior, tokens: Tensor) -> Tensor:
    """Mean negative log-likelihood in nats per token of tokens (B, T) under the prior -> scalar."""
    logits = prior(tokens)                                                  # (B, T, K)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))


def train_step(prior: TokenPrior, optimizer: torch.optim.Optimizer, tokens: Tensor) -> Tensor:
    """One maximum-likelihood step on a batch of token sequences (B, T) -> the batch's NLL (nats per token), a 0-d
    tensor detached on the tokens' device (not read back: a GPU loop does not wait at every step)."""
    prior.train()
    with autocast(tokens.device):                                           # mixed precision on a GPU
        loss = nll(prior, tokens)
    backward_step(loss, optimizer, tokens.device)
    return loss.detach()


def sample_next(logits: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """One token per row from logits (B, K): a draw from softmax(logits / temperature), the argmax at
    temperature 0 -> (B,) int64."""
    if logits.ndim != 2 or temperature < 0:
        raise ValueError(f"expected logits (B, K) and temperature >= 0, got {tuple(logits.shape)}, {temperature}")
    if temperature == 0:
        return logits.argmax(1)
    probs = (logits.double() / temperature).softmax(1)                       # (B, K)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(logits.device)
