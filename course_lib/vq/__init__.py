"""Chapter 08: the VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017), the course's image tokenizer, and an
autoregressive prior over its tokens.

Modules: ``quantizer`` (Eq. 1-3: nearest code, straight-through, the codebook and commitment loss, codebook
usage, k-means; the ``VectorQuantizer`` layer with dead-code restarts), ``vqvae`` (the model), ``train`` (its
training step, the collapse fix, ``load_vqvae`` and ``load_tokenizer``), ``prior`` (a small causal transformer over the 7x7 token grid in raster order: attention,
blocks, the model, one sampling step), ``config`` (notebook 08's sizes per profile), ``checks`` (notebook 08's
exercises), ``shipped`` (the checkpoints ``vq_tokenizer`` and ``vq_tokenizer_nofix``).

Later chapters take the tokenizer from here: ``from course_lib.vq import load_tokenizer``.
"""

from course_lib.vq.quantizer import (
    VectorQuantizer,
    code_counts,
    dead_codes,
    kmeans,
    nearest_code,
    perplexity,
    squared_distances,
    straight_through,
    vq_loss,
)
from course_lib.vq.train import evaluate, load_tokenizer, load_vqvae, train_step
from course_lib.vq.vqvae import VQVAE

__all__ = [
    "VQVAE", "VectorQuantizer", "code_counts", "dead_codes", "evaluate", "kmeans", "load_tokenizer", "load_vqvae",
    "nearest_code", "perplexity", "squared_distances", "straight_through", "train_step", "vq_loss",
]
