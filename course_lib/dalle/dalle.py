"""DALL-E (notebook 19): one decoder-only transformer over a caption's tokens followed by an image's tokens.

Ramesh et al. 2021, "Zero-Shot Text-to-Image Generation" (https://arxiv.org/abs/2102.12092), Sec. 2: a discrete
VAE turns a 256 x 256 image into 32 x 32 = 1,024 tokens (here: chapter 08's VQ-VAE, 7 x 7 = 49 tokens of 128
codes); up to 256 BPE tokens of the caption (here: up to 16 words, ``course_lib.text.Tokenizer``) come first, and
the transformer models the joint distribution of the single stream autoregressively,

    p(y, z) = prod_i p(s_i | s_<i),    s = [y_1, ..., y_L, z_1, ..., z_49],

trained with the cross-entropy of every position, text and image losses weighted 1/8 and 7/8 (Sec. 2.2). A caption
shorter than L is padded with a pad token that is learned separately for each position (Appendix B.2), so the
stream needs no padding mask: the attention mask is causal, text and image alike (the paper adds sparse row, column
and convolutional patterns for image-to-image attention; not here).

- ``DALLE``          text and image token embeddings (per-position pad embeddings), one position embedding over the
                     stream, causal pre-norm blocks, a text head and an image head
- ``stream_loss``    the weighted cross-entropy of Sec. 2.2 -> (total, text part, image part)
- ``stream_mask``    the (L + 49) x (L + 49) attention mask, for drawing
- ``filter_logits``  temperature and top-k, the sampling knobs

Shapes: B batch, L caption length (with padding), N = 49 image tokens, S = L + N, D width, V_t / V_i vocabularies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.transformers.blocks import Block, causal_mask

PAD = 0   # course_lib.text.Tokenizer: <pad> = 0, <start> = 1


class DALLE(nn.Module):
    """(text ids (B, L) long, image codes (B, n <= N) long) -> (text logits (B, L-1, V_t), image logits (B, n+1, V_i)).

    Output position i predicts stream token i + 1: the text logits at position l predict text token l + 1 (the last
    text position predicts the first image token, so it belongs to the image head), and image position j predicts
    image token j + 1. Concretely the image logits returned are those predicting z_1 .. z_n from everything before
    each, so ``image_logits[:, j]`` is p(z_{j+1} | y, z_<=j) -- what sampling reads."""

    def __init__(self, text_vocab: int, text_len: int = 16, image_vocab: int = 128, image_len: int = 49,
                 dim: int = 128, depth: int = 4, heads: int = 4):
        super().__init__()
        self.text_vocab, self.text_len, self.image_vocab, self.image_len = text_vocab, text_len, image_vocab, image_len
        self.text_emb = nn.Embedding(text_vocab, dim)
        self.pad_emb = nn.Parameter(torch.randn(text_len, dim) * 0.02)      # one learned pad per text position
        self.image_emb = nn.Embedding(image_vocab, dim)
        self.pos_emb = nn.Parameter(torch.randn(text_len + image_len, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.text_head = nn.Linear(dim, text_vocab)
        self.image_head = nn.Linear(dim, image_vocab)
        self.register_buffer("mask", causal_mask(text_len + image_len), persistent=False)

    def check(self, text: Tensor, image: Tensor) -> None:
        L, N = self.text_len, self.image_len
        if not isinstance(text, Tensor) or text.dtype != torch.long or text.ndim != 2 or text.shape[1] != L:
            raise ValueError(f"expected text ids of shape (B, {L}) long (padded with 0), got "
                             f"{tuple(getattr(text, 'shape', ()))} {getattr(text, 'dtype', '')}")
        if not isinstance(image, Tensor) or image.dtype != torch.long or image.ndim != 2 \
                or image.shape[0] != text.shape[0] or image.shape[1] > N:
            raise ValueError(f"expected image codes of shape ({text.shape[0]}, n <= {N}) long, got "
                             f"{tuple(getattr(image, 'shape', ()))} {getattr(image, 'dtype', '')}")

    def forward(self, text: Tensor, image: Tensor) -> tuple[Tensor, Tensor]:
        self.check(text, image)
        B, L = text.shape
        n = image.shape[1]
        t = torch.where((text == PAD)[..., None], self.pad_emb.expand(B, -1, -1), self.text_emb(text))  # (B, L, D)
        h = torch.cat([t, self.image_emb(image)], 1) + self.pos_emb[:L + n]                             # (B, L+n, D)
        S = L + n
        for block in self.blocks:
            h = block(h, self.mask[:S, :S])
        h = self.norm(h)
        # position i predicts token i + 1: text positions 0..L-2 -> text 1..L-1; L-1..L+n-1 -> image 0..n
        return self.text_head(h[:, :L - 1]), self.image_head(h[:, L - 1:S])


def stream_loss(model: DALLE, text: Tensor, image: Tensor, text_weight: float = 1 / 8) -> tuple[Tensor, Tensor, Tensor]:
    """Sec. 2.2: text_weight * CE(text tokens 2..L) + (1 - text_weight) * CE(image tokens 1..N), in nats per token.
    text (B, L), image (B, N) -> (total, text CE, image CE)."""
    text_logits, image_logits = model(text, image)                      # (B, L-1, V_t), (B, N+1, V_i)
    ce_text = F.cross_entropy(text_logits.flatten(0, 1), text[:, 1:].flatten())
    ce_image = F.cross_entropy(image_logits[:, :-1].flatten(0, 1), image.flatten())
    return text_weight * ce_text + (1 - text_weight) * ce_image, ce_text, ce_image


def stream_mask(text_len: int, image_len: int) -> Tensor:
    """The attention mask of the stream: (S, S) bool, True where query i may attend to key j (j <= i)."""
    return causal_mask(text_len + image_len)


def filter_logits(logits: Tensor, temperature: float = 1.0, top_k: int | None = None) -> Tensor:
    """logits (B, V) -> logits / temperature with all but the top_k largest set to -inf (top_k None: all kept)."""
    if temperature <= 0:
        raise ValueError(f"expected a temperature > 0, got {temperature}")
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]               # (B, 1) the k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits


def train_dalle(model: DALLE, steps: int, batch_size: int = 64, lr: float = 1e-3, state=None,
                progress: bool = True, seed: int = 0) -> dict:
    """The stream loss on 60,000 captioned training images (``course_lib.dalle.data.token_pairs``); AdamW with a
    one-cycle learning rate; resumable through ``state``. Metrics: the text and image cross-entropies (nats per
    token) of 2,000 captioned test images."""
    from course_lib.dalle.data import token_pairs
    from course_lib.training import mean_of, run_steps

    dev = next(model.parameters()).device
    data = token_pairs(60_000, "train", seed=0)

    def batch_loss(g: torch.Generator) -> Tensor:
        idx = torch.randint(len(data.text), (batch_size,), generator=g)
        return stream_loss(model, data.text[idx].to(dev), data.codes[idx].to(dev))[0]

    result = run_steps(model, steps, batch_loss, lr, weight_decay=0.01, state=state, desc="DALL-E", progress=progress,
                       seed=seed, config={"batch_size": batch_size})
    test = token_pairs(2_000, "test", seed=0)
    with torch.no_grad():
        parts = [stream_loss(model, test.text[i:i + 500].to(dev), test.codes[i:i + 500].to(dev))
                 for i in range(0, 2_000, 500)]
    losses = result["losses"]
    return {"steps": steps, "batch_size": batch_size,
            "test_text_nats_2000": round(float(torch.stack([p[1] for p in parts]).mean()), 4),
            "test_image_nats_2000": round(float(torch.stack([p[2] for p in parts]).mean()), 4),
            "loss_first200": mean_of(losses, first=200), "loss_last200": mean_of(losses, last=200),
            "seconds": round(result["seconds"], 1)}
