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

Shapes: B pairs, D embedding width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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
