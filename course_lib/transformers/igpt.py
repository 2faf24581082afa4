"""Image GPT (notebook 16): a transformer on a sequence of pixels, trained autoregressively or BERT-style.

Chen et al. 2020, "Generative Pretraining from Pixels" (https://cdn.openai.com/papers/Generative_Pretraining_from_Pixels_V2.pdf):
images are downsampled, each pixel is replaced by the index of its nearest colour in a palette found by k-means
(Sec. 3.1: the sequence is made of palette indices, not intensities), and the sequence x_1 .. x_n is modelled by

    L_AR   = E[ -log p(x_i | x_1, ..., x_{i-1}) ]         (Eq. 1: the next pixel, behind a causal mask)
    L_BERT = E[ -log p(x_i | x_[not M]) ], i in M         (Eq. 2: the masked pixels M, ~15 % of them, from the rest)

with the same network (GPT-2's pre-norm blocks) and only the mask differing. Features for a linear probe are the
average over positions of a layer's LayerNorm-ed states (Sec. 3.4); the paper finds the best in the middle layers.

- ``kmeans_palette``  k-means (k-means++ seeds, Lloyd's iterations) on pixel intensities -> the palette (k,), sorted
- ``quantize``        images -> palette indices (B, S); ``dequantize`` back
- ``ImageGPT``        token + position embeddings, ``Block`` x L (causal or not), LayerNorm, a head over the palette
- ``ar_loss``         Eq. 1 in nats per token; ``bert_loss`` Eq. 2; ``mask_tokens`` draws M and replaces it
- ``layer_features``  the probe features of every layer, (B, D) each
- ``sample``          ancestral sampling, one token at a time (a completion of a prefix, or an image from nothing),
                    with a key/value cache (each step runs the network on the one new position) or without
- ``sample_images``   n unconditional samples as 28 x 28 images (the judge's size), drawn in batches
- ``check_uniform_bits_512``  notebook 16's hand computation: bits per 14 x 14 image, uniform over 512 colours

Shapes: B batch, S = side * side sequence length, K palette size (the vocabulary), D width, L layers.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.checks import Verdict, report
from course_lib.transformers.blocks import Block, causal_mask


def kmeans_palette(pixels: Tensor, k: int, iters: int = 30, n_init: int = 4, seed: int = 0) -> Tensor:
    """Lloyd's algorithm on intensities: pixels (N,) in [0, 1] -> k centres (k,), ascending.

    Each of ``n_init`` runs starts from k-means++ seeds (Arthur & Vassilvitskii 2007: each new centre drawn with
    probability proportional to its squared distance from the nearest centre so far), then alternates: assign every
    pixel to its nearest centre, move every centre to its cluster's mean (an empty cluster keeps its centre). The
    run with the smallest sum of squared distances (inertia) wins, as in scikit-learn's ``KMeans``."""
    if pixels.ndim != 1 or len(pixels) < k:
        raise ValueError(f"expected pixels of shape (N,) with N >= k={k}, got {tuple(pixels.shape)}")
    x, g = pixels.double(), torch.Generator().manual_seed(seed)
    best, best_inertia = None, float("inf")
    for _ in range(n_init):
        sample = x[torch.randint(len(x), (min(len(x), 20_000),), generator=g)]
        centres = sample[torch.randint(len(sample), (1,), generator=g)]
        while len(centres) < k:                                                   # k-means++ seeding
            d2 = (sample[:, None] - centres[None]).pow(2).min(1).values
            pick = torch.multinomial(d2 / d2.sum(), 1, generator=g) if d2.sum() > 0 else torch.randint(len(sample), (1,), generator=g)
            centres = torch.cat([centres, sample[pick]])
        centres = centres.sort().values
        for _ in range(iters):                                                    # in 1-D the nearest of sorted
            assign = torch.bucketize(x, (centres[1:] + centres[:-1]) / 2)         # centres lies between midpoints
            sums = torch.zeros(k, dtype=x.dtype).index_add_(0, assign, x)
            counts = torch.bincount(assign, minlength=k).to(x.dtype)
            centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres).sort().values
        inertia = float((x - centres[torch.bucketize(x, (centres[1:] + centres[:-1]) / 2)]).pow(2).sum())
        if inertia < best_inertia:
            best, best_inertia = centres, inertia
    return best.sort().values.to(pixels.dtype)


def quantize(images: Tensor, palette: Tensor) -> Tensor:
    """images (B, 1, H, W) -> (B, H*W) long: each pixel's nearest palette index, row by row."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected images of shape (B, 1, H, W), got {tuple(images.shape)}")
    return (images.flatten(1)[..., None] - palette.to(images)).abs().argmin(-1)


def dequantize(tokens: Tensor, palette: Tensor, side: int) -> Tensor:
    """tokens (B, side*side) -> images (B, 1, side, side): each index replaced by its palette intensity."""
    return palette[tokens].view(-1, 1, side, side)


class ImageGPT(nn.Module):
    """tokens (B, S) -> logits (B, S, K) over the palette.

    ``causal=True`` (the AR model): the input is shifted right behind a start token, so output i predicts token i
    from tokens < i. ``causal=False`` (BERT): no mask, and the learned [MASK] token stands in for hidden pixels."""

    def __init__(self, vocab: int, seq_len: int, dim: int = 64, depth: int = 4, heads: int = 4, causal: bool = True):
        super().__init__()
        self.vocab, self.seq_len, self.causal = vocab, seq_len, causal
        self.tok_emb = nn.Embedding(vocab + 1, dim)           # row `vocab`: the start token (AR) or [MASK] (BERT)
        self.pos_emb = nn.Parameter(torch.randn(1, seq_len, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, vocab)
        self.register_buffer("mask", causal_mask(seq_len) if causal else None, persistent=False)
        self.register_buffer("palette", torch.linspace(0, 1, vocab))   # the intensities of the K tokens (set from data)

    @property
    def special(self) -> int:
        """The index of the start token (AR) or the [MASK] token (BERT)."""
        return self.vocab

    def _check(self, tokens: Tensor) -> None:
        if not isinstance(tokens, Tensor) or tokens.dtype != torch.long or tokens.ndim != 2 \
                or not 1 <= tokens.shape[1] <= self.seq_len:
            raise ValueError(f"expected tokens of shape (B, S<={self.seq_len}) long, got "
                             f"{tuple(getattr(tokens, 'shape', ()))} {getattr(tokens, 'dtype', '')}")

    def states(self, tokens: Tensor) -> list[Tensor]:
        """The residual stream after the embedding and after each block: L + 1 tensors (B, S, D)."""
        self._check(tokens)
        B, S = tokens.shape
        if self.causal:                                        # shift right: position i sees tokens < i
            tokens = torch.cat([torch.full((B, 1), self.special, device=tokens.device), tokens[:, :-1]], 1)
        h = self.tok_emb(tokens) + self.pos_emb[:, :S]         # (B, S, D)
        mask = self.mask[:S, :S] if self.causal else None
        out = [h]
        for block in self.blocks:
            h = block(h, mask)
            out.append(h)
        return out

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.norm(self.states(tokens)[-1]))   # (B, S, K)


def ar_loss(model: ImageGPT, tokens: Tensor) -> Tensor:
    """Eq. 1: mean over positions of -log p(x_i | x_<i), in nats per token. tokens (B, S) -> scalar."""
    logits = model(tokens)                                     # (B, S, K)
    return F.cross_entropy(logits.flatten(0, 1), tokens.flatten())


def mask_tokens(tokens: Tensor, special: int, p: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """BERT's corruption: each position hidden with probability p (at least one per row) -> (input with the
    hidden positions set to ``special``, the bool mask M (B, S))."""
    B, S = tokens.shape
    M = torch.rand(B, S, generator=generator).to(tokens.device) < p
    M[torch.arange(B), torch.randint(S, (B,), generator=generator).to(tokens.device)] = True   # M never empty
    return tokens.masked_fill(M, special), M


def bert_loss(model: ImageGPT, tokens: Tensor, p: float = 0.15, generator: torch.Generator | None = None) -> Tensor:
    """Eq. 2: mean over the masked positions of -log p(x_i | the unmasked tokens), nats per token."""
    corrupted, M = mask_tokens(tokens, model.special, p, generator)
    logits = model(corrupted)                                  # (B, S, K)
    return F.cross_entropy(logits[M], tokens[M])


@torch.no_grad()
def layer_features(model: ImageGPT, tokens: Tensor) -> list[Tensor]:
    """Sec. 3.4's probe features: each layer's states, LayerNorm-ed (no affine) and averaged over positions.
    tokens (B, S) -> L + 1 tensors (B, D) (index 0: the embedding)."""
    return [F.layer_norm(h, h.shape[-1:]).mean(1) for h in model.states(tokens)]


@torch.no_grad()
def sample(model: ImageGPT, prefix: Tensor, n_new: int, temperature: float = 1.0,
           generator: torch.Generator | None = None, cache: bool = True) -> Tensor:
    """Draw n_new tokens after prefix (B, P) long (P may be 0), each from p(x_i | x_<i) ** (1 / temperature)
    -> (B, P + n_new). ``cache=False``: every step runs the model on the whole sequence so far (about S^2 / 2
    token passes per image); ``cache=True``: the same logits from a key/value cache (``_cached_logits``), S token
    passes. Both make the same draws from the same generator (up to float rounding of the probabilities)."""
    if not model.causal:
        raise ValueError("sampling left to right needs the autoregressive model (causal=True)")
    if prefix.ndim != 2 or prefix.dtype != torch.long or prefix.shape[1] + n_new > model.seq_len:
        raise ValueError(f"expected a prefix (B, P) long with P + n_new <= {model.seq_len}, got "
                         f"{tuple(prefix.shape)} {prefix.dtype} and n_new={n_new}")
    seq = prefix.to(model.palette.device)
    steps = _cached_logits(model, seq) if cache else None
    for i in range(n_new):
        if steps is not None:
            logits = next(steps) if i == 0 else steps.send(seq[:, -1:])                # (B, K)
        else:   # one placeholder after the sequence: the causal shift makes its output the next token's distribution
            logits = model(torch.cat([seq, seq.new_zeros(len(seq), 1)], 1))[:, -1]    # (B, K)
        probs = (logits.float() / temperature).softmax(-1).cpu()
        seq = torch.cat([seq, torch.multinomial(probs, 1, generator=generator).to(seq.device)], 1)
    return seq


def _cached_logits(model: ImageGPT, prefix: Tensor):
    """A generator of next-token logits (B, K) with a key/value cache: first those of the token after prefix (B, P);
    then, sent each new token (B, 1), those of the token after it. Position i's input is token i - 1 (the start
    token at 0), so a step runs the blocks on the new position only, its query attending to the keys and values kept
    from positions <= i (the causal mask, implicit); the logits equal ``model(tokens)[:, i]``."""
    B, P = prefix.shape
    D, h = model.pos_emb.shape[-1], model.blocks[0].attn.heads
    kv = model.pos_emb.new_zeros(len(model.blocks), 2, B, h, model.seq_len, D // h)     # (L, 2, B, h, S, d)
    x_in = torch.cat([torch.full((B, 1), model.special, device=prefix.device), prefix], 1)   # (B, P + 1)
    start = 0
    while True:
        n = x_in.shape[1]
        with torch.no_grad():                  # per step: grad mode is not held across a yield
            x = model.tok_emb(x_in) + model.pos_emb[:, start:start + n]                # (B, n, D)
            mask = causal_mask(start + n, x.device)[start:] if n > 1 else None         # (n, start + n)
            for cache, block in zip(kv, model.blocks):
                q, k, v = block.attn.qkv(block.norm1(x)).view(B, n, 3, h, D // h).permute(2, 0, 3, 1, 4)  # (B, h, n, d)
                cache[0, :, :, start:start + n], cache[1, :, :, start:start + n] = k, v
                y = F.scaled_dot_product_attention(q, cache[0, :, :, :start + n], cache[1, :, :, :start + n],
                                                   attn_mask=mask)                      # (B, h, n, d)
                x = x + block.attn.proj(y.transpose(1, 2).reshape(B, n, D))
                x = x + block.mlp(block.norm2(x))
            logits = model.head(model.norm(x[:, -1]))                                   # (B, K)
        start += n
        x_in = yield logits


def sample_images(model: ImageGPT, n: int, seed: int = 1, batch_size: int = 500) -> Tensor:
    """n images drawn from nothing (cached sampler, one seeded generator over the batches) -> (n, 1, 28, 28)."""
    g, dev = torch.Generator().manual_seed(seed), model.palette.device
    out = [sample(model, torch.zeros(min(batch_size, n - i), 0, dtype=torch.long, device=dev), model.seq_len,
                  generator=g).cpu() for i in range(0, n, batch_size)]
    return upsample(torch.cat(out), model.palette.cpu())


def check_uniform_bits_512(answer) -> Verdict:
    """Notebook 16's hand computation: bits per 14 x 14 image of a model that finds each of the paper's 512 palette
    colours equally likely at every position: 196 log2(512) = 1,764. The slips fail: 784 (16 greys, or 28 x 28 x 1
    bit), 9 (one token), 196 (the tokens), 7,056 (28 x 28 tokens), 100,352 (196 x 512), 1,222.7 (nats)."""
    return report(answer, float(SIDE * SIDE * math.log2(512)),
                  "each token is one of 512 equally likely colours: log2(512) bits; an image has 14 x 14 tokens",
                  sig=None)


# ---------------------------------------------------------------------------------------------- training

SIDE = 14      # Fashion-MNIST average-pooled 2x2: 196 tokens per image (iGPT too trains on downsampled images)
PALETTE = 16   # k-means colours (iGPT: 512 for RGB; 16 grey levels here)


def to_sequence_images(images: Tensor) -> Tensor:
    """Fashion-MNIST (B, 1, 28, 28) -> (B, 1, 14, 14), each pixel the mean of a 2x2 block."""
    return F.avg_pool2d(images, 2)


def fit_palette(images: Tensor, k: int = PALETTE, n: int = 2_000) -> Tensor:
    """The palette of the shipped models: k-means on the downsampled pixels of the first n images."""
    return kmeans_palette(to_sequence_images(images[:n]).flatten(), k)


def train_igpt(model: ImageGPT, steps: int, batch_size: int = 64, lr: float = 1e-3, mask_p: float = 0.15,
               state: Path | None = None, progress: bool = True, seed: int = 0, n_samples: int = 1_000) -> dict:
    """AdamW with a one-cycle learning rate on Fashion-MNIST train, Eq. 1 (causal) or Eq. 2 (BERT); the palette
    fitted first and stored in ``model.palette``. Resumable through ``state``. Metrics: test NLL in bits per token
    (AR: of every token; BERT: of the masked ones) on 2,000 test images; for the AR model ``sample_metrics`` of
    n_samples images (0: none)."""
    from course_lib.data import fashion_mnist
    from course_lib.training import mean_of, run_steps

    train = fashion_mnist("train")
    with torch.no_grad():
        model.palette.copy_(fit_palette(train.images))
    tokens = quantize(to_sequence_images(train.images), model.palette)          # (60000, 196)
    dev = next(model.parameters()).device

    def batch_loss(g: torch.Generator) -> Tensor:
        x = tokens[torch.randint(len(tokens), (batch_size,), generator=g)].to(dev)
        return ar_loss(model, x) if model.causal else bert_loss(model, x, mask_p, g)

    result = run_steps(model, steps, batch_loss, lr, weight_decay=0.01, state=state, desc="iGPT", progress=progress,
                       seed=seed, config={"batch_size": batch_size, "causal": model.causal, "mask_p": mask_p})
    test = quantize(to_sequence_images(fashion_mnist("test").images[:2_000]), model.palette).to(dev)
    with torch.no_grad():
        g_eval = torch.Generator().manual_seed(1)
        nll = float(torch.stack([ar_loss(model, test[i:i + 500]) if model.causal else
                                 bert_loss(model, test[i:i + 500], mask_p, g_eval) for i in range(0, len(test), 500)]).mean())
    losses = result["losses"]
    out = {"steps": steps, "batch_size": batch_size, "test_bits_per_token_2000": round(nll / math.log(2), 4),
           "loss_first200": mean_of(losses, first=200), "loss_last200": mean_of(losses, last=200),
           "seconds": round(result["seconds"], 1)}
    return out | (sample_metrics(model.eval(), n_samples) if model.causal and n_samples else {})


def upsample(tokens: Tensor, palette: Tensor) -> Tensor:
    """tokens (B, SIDE*SIDE) -> images (B, 1, 28, 28): each token's grey, each pixel repeated 2 x 2 (the judge's size)."""
    return F.interpolate(dequantize(tokens, palette, SIDE), scale_factor=2, mode="nearest")


def sample_metrics(model: ImageGPT, n: int = 1_000, seed: int = 1, batch_size: int = 500) -> dict:
    """Score n unconditional samples as the course scores generators: FID (judge features) against n test images
    (``subset(n, seed=0)``) and the judge's class KL to uniform; beside them the floors, n training images as they
    are and through the same 14 x 14, 16-grey pipeline (what a perfect model of the tokens would score)."""
    import time

    from course_lib import metrics
    from course_lib.data import fashion_mnist

    start = time.perf_counter()
    images = sample_images(model, n, seed, batch_size)
    seconds = time.perf_counter() - start
    palette = model.palette.cpu()
    real = fashion_mnist("test").subset(n, seed=0).images
    other = fashion_mnist("train").subset(n, seed=1).images
    piped = upsample(quantize(to_sequence_images(other), palette), palette)
    return {f"fid_{n}": round(metrics.fid(images, real), 3),
            f"class_kl_{n}": round(metrics.kl_to_uniform(metrics.class_histogram(images)), 4),
            f"fid_{n}_floor_pipeline": round(metrics.fid(piped, real), 3),
            f"fid_{n}_floor_raw": round(metrics.fid(other, real), 3),
            f"sample_seconds_{n}": round(seconds, 1)}
