"""A small transformer text encoder tau(y): token ids -> one feature vector per token.

The role the text encoder plays in latent diffusion (Rombach et al. 2022, Sec. 3.3: "a domain specific
encoder tau_theta that projects y to an intermediate representation", a transformer for text), at the
scale of the course's captions: token embeddings plus learned positions, then ``depth`` pre-norm transformer
encoder blocks (Vaswani et al. 2017; pre-norm as in GPT-2: x + MHA(LN(x)), x + MLP(LN(x))), then a LayerNorm.
Attention ignores padding (``src_key_padding_mask``), so a token's features do not depend on how many pads
follow. The U-Net's cross-attention reads the token features; ``pooled`` gives one vector per caption.

Shapes: B batch, L sequence length (<= max_len), D = dim.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_lib.utils import values_checkable


class TextEncoder(nn.Module):
    """ids (B, L) int64, mask (B, L) bool (True = a token, each row has one or more) -> features (B, L, dim)."""

    def __init__(self, vocab_size: int, dim: int = 64, depth: int = 2, heads: int = 4, max_len: int = 16):
        super().__init__()
        if dim % heads:
            raise ValueError(f"expected dim divisible by heads, got {dim} and {heads}")
        self.vocab_size, self.dim, self.max_len = vocab_size, dim, max_len
        self.tok_emb = nn.Embedding(vocab_size, dim)
        self.pos_emb = nn.Parameter(torch.randn(max_len, dim) * 0.02)                     # (L_max, D)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def check(self, ids: Tensor, mask: Tensor) -> None:
        """Raise a ValueError naming the expected shapes."""
        if not isinstance(ids, Tensor) or ids.ndim != 2 or ids.dtype != torch.int64 \
                or not 1 <= ids.shape[1] <= self.max_len:
            raise ValueError(f"expected ids of shape (B, L) int64 with 1 <= L <= {self.max_len}, got "
                             f"{tuple(getattr(ids, 'shape', ())) or ids!r} {getattr(ids, 'dtype', '')}")
        if not isinstance(mask, Tensor) or mask.shape != ids.shape or mask.dtype != torch.bool:
            raise ValueError(f"expected mask of shape {tuple(ids.shape)} bool (True = a token), got "
                             f"{tuple(getattr(mask, 'shape', ())) or mask!r} {getattr(mask, 'dtype', '')}")
        if values_checkable(mask) and not bool(mask.any(1).all()):
            raise ValueError("expected every row of mask to have at least one True (the start token)")
        if ids.numel() and values_checkable(ids) and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ValueError(f"expected ids in [0, {self.vocab_size - 1}], got [{int(ids.min())}, {int(ids.max())}]")

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        self.check(ids, mask)
        L = ids.shape[1]
        h = self.tok_emb(ids) + self.pos_emb[:L]                                         # (B, L, D)
        for block in self.blocks:
            h = block(h, src_key_padding_mask=~mask)                                      # (B, L, D), pads ignored
        return self.norm(h)                                                               # (B, L, D)

    def pooled(self, ids: Tensor, mask: Tensor) -> Tensor:
        """The mean of the kept tokens' features: (B, L), (B, L) -> (B, D)."""
        return masked_mean(self.forward(ids, mask), mask)                                 # (B, D)


def masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    """The mean of each row's kept tokens: features h (B, L, D), mask (B, L) bool -> (B, D)."""
    m = mask[..., None].to(h.dtype)                                                       # (B, L, 1)
    return (h * m).sum(1) / m.sum(1)
