"""CLIP's contrastive loss (notebook 20; also the reranker of notebook 19).

Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision"
(https://arxiv.org/abs/2103.00020), Fig. 3: for a batch of B (image, caption) pairs, with L2-normalised embeddings
I (B, D) and T (B, D) and a learned temperature t,

    logits = I T^T * exp(t)                       (B, B): entry (i, j) scores image i against caption j
    loss   = (CE(logits, arange(B)) + CE(logits^T, arange(B))) / 2

-- a B-way classification of the right caption for each image and of the right image for each caption.

- ``clip_loss``       the symmetric loss above, from embeddings (normalised inside) and the log-temperature
- ``clip_logits``     the (B, B) similarity matrix, for drawing and retrieval
- ``recall_at_k``     image -> text (or text -> image) retrieval: the fraction whose match ranks in the top k
- ``CLIP``            a small image encoder and text encoder into one space; ``train_clip``

Shapes: B pairs, D embedding width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def clip_logits(image_emb: Tensor, text_emb: Tensor, log_scale: Tensor | float) -> Tensor:
    """image_emb (B, D), text_emb (M, D), log_scale () -> cos(I_i, T_j) * exp(log_scale), (B, M)."""
    if image_emb.ndim != 2 or text_emb.ndim != 2 or image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(f"expected image_emb (B, D) and text_emb (M, D), got {tuple(image_emb.shape)} and "
                         f"{tuple(text_emb.shape)}")
    scale = torch.as_tensor(log_scale, dtype=image_emb.dtype, device=image_emb.device).exp()
    return F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T * scale


def clip_loss(image_emb: Tensor, text_emb: Tensor, log_scale: Tensor | float) -> Tensor:
    """Fig. 3's symmetric cross-entropy: pair i's image and caption are each other's class among the batch. -> ()"""
    if image_emb.shape != text_emb.shape:
        raise ValueError(f"expected paired embeddings of the same shape (B, D), got {tuple(image_emb.shape)} and "
                         f"{tuple(text_emb.shape)}")
    logits = clip_logits(image_emb, text_emb, log_scale)                 # (B, B)
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def recall_at_k(similarity: Tensor, k: int = 1) -> float:
    """similarity (B, B) with the matches on the diagonal -> the fraction of rows whose match is among the row's
    k largest: fewer than k entries of the row score strictly higher than the match (ties go to the match)."""
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1]:
        raise ValueError(f"expected a square similarity matrix (B, B), got {tuple(similarity.shape)}")
    match = similarity.diagonal()[:, None]                               # (B, 1)
    rank = (similarity > match).sum(1)                                   # how many score strictly higher
    return float((rank < k).double().mean())


# ---------------------------------------------------------------------------------------------- the model


class CLIP(nn.Module):
    """Two encoders into one embedding space: images (B, 1, 28, 28) -> (B, D) and captions (ids, mask) -> (B, D).

    Image encoder: chapter 01's ResNet stages (one block per stage, 28 -> 7), the 7 x 7 map flattened into a linear
    projection -- not globally pooled, so where the item lies ("on the left") survives. Text encoder:
    ``course_lib.text.TextEncoder``'s mean over the caption's tokens, then a linear projection. ``log_scale`` is the
    learned log-temperature, initialised at log(1 / 0.07) as in the paper and clamped at log 100."""

    def __init__(self, text_vocab: int, dim: int = 64, width: int = 16):
        super().__init__()
        from course_lib.cnn.resnet import ResNet
        from course_lib.text import TextEncoder

        resnet = ResNet(width=width, blocks=1)
        self.image_trunk = nn.Sequential(resnet.stem, resnet.stages)              # (B, 4w, 7, 7)
        self.image_proj = nn.Linear(4 * width * 7 * 7, dim)
        self.text_encoder = TextEncoder(text_vocab, dim=64, depth=2, heads=4, max_len=16)
        self.text_proj = nn.Linear(64, dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, x: Tensor) -> Tensor:
        """(B, 1, 28, 28) -> (B, D), not normalised."""
        return self.image_proj(self.image_trunk(x).flatten(1))

    def encode_text(self, ids: Tensor, mask: Tensor) -> Tensor:
        """ids, mask (B, L) -> (B, D), not normalised."""
        return self.text_proj(self.text_encoder.pooled(ids, mask))

    def forward(self, x: Tensor, ids: Tensor, mask: Tensor) -> Tensor:
        """The contrastive loss of the batch's pairs."""
        return clip_loss(self.encode_image(x), self.encode_text(ids, mask), self.log_scale.clamp(max=math.log(100)))


def train_clip(model: CLIP, steps: int, batch_size: int = 128, lr: float = 1e-3, state=None, progress: bool = True,
               seed: int = 0) -> dict:
    """The contrastive loss on 60,000 captioned training images (random +-2-pixel shifts, no flips: "left" must stay
    left); AdamW with a one-cycle learning rate; resumable through ``state``. Metrics: image -> text and
    text -> image recall@1 among 1,000 captioned test pairs."""
    from course_lib.text import Tokenizer, caption_dataset
    from course_lib.training import mean_of, run_steps

    dev = next(model.parameters()).device
    data = caption_dataset(60_000, "train", seed=0)
    ids, mask = Tokenizer.for_captions().encode_batch(data.captions, 16)

    def batch_loss(g: torch.Generator) -> Tensor:
        idx = torch.randint(len(ids), (batch_size,), generator=g)
        return model(shift(data.images[idx], 2, g).to(dev), ids[idx].to(dev), mask[idx].to(dev))

    result = run_steps(model, steps, batch_loss, lr, weight_decay=0.01, state=state, desc="CLIP", progress=progress,
                       seed=seed, config={"batch_size": batch_size})
    test = caption_dataset(1_000, "test", seed=0)
    tids, tmask = Tokenizer.for_captions().encode_batch(test.captions, 16)
    with torch.no_grad():
        sim = clip_logits(model.encode_image(test.images.to(dev)), model.encode_text(tids.to(dev), tmask.to(dev)), 0.0)
    losses = result["losses"]
    return {"steps": steps, "batch_size": batch_size, "recall1_i2t_1000": round(recall_at_k(sim, 1), 4),
            "recall1_t2i_1000": round(recall_at_k(sim.T, 1), 4), "log_scale": round(float(model.log_scale.detach()), 3),
            "loss_first200": mean_of(losses, first=200), "loss_last200": mean_of(losses, last=200),
            "seconds": round(result["seconds"], 1)}


def shift(x: Tensor, s: int, generator: torch.Generator | None = None) -> Tensor:
    """Random translations by up to s pixels (zero-filled), no flips: (B, C, H, W) -> same."""
    B, C, H, W = x.shape
    padded = F.pad(x, (s,) * 4)
    dy, dx = torch.randint(0, 2 * s + 1, (2, B), generator=generator)
    return torch.stack([padded[b, :, dy[b]:dy[b] + H, dx[b]:dx[b] + W] for b in range(B)])
