"""BEiT (notebook 18): pre-train a ViT without labels by predicting the visual tokens of masked patches.

Bao et al. 2022, "BEiT: BERT Pre-Training of Image Transformers" (https://arxiv.org/abs/2106.08254):

- an image x has two views: its N patches (the ViT's input) and N discrete visual tokens z = tokenizer(x) from a
  discrete VAE (here chapter 08's VQ-VAE: a 7 x 7 grid of 128 codes, one per 4 x 4 patch);
- about 40 % of the patches, chosen by **blockwise masking** (Algorithm 1), are replaced by a learned [M] embedding;
- the ViT's outputs at the masked positions predict the masked tokens (Eq. 1):

      max  sum_{x} E_M [ sum_{i in M} log p(z_i | x^M) ].

Sec. 2.5 reads this as the second stage of a VAE's training: the tokenizer is q(z | x) and the decoder p(x | z)
(stage 1), and BEiT learns a prior-like p(z | x~) of the tokens from the corrupted image (stage 2).

- ``blockwise_mask``  Algorithm 1: random blocks (area >= ``min_block`` patches, aspect ratio in [0.3, 1/0.3])
                      until ``ratio`` of the grid is masked (exactly, as the paper's code); its random draws
                      can be supplied (``rand``), which is how notebook 18's exercise is checked
- ``BEiT``            a ``ViT`` with a mask token and a head over the visual tokens
- ``mim_loss``        Eq. 1's cross-entropy on the masked positions (and its accuracy)

Shapes: B batch, N = g * g patches (g the grid side), D width, V visual-token vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.transformers.vit import ViT


def uniform_draws(generator: torch.Generator | None = None) -> Callable[[float, float], float]:
    """``rand(lo, hi)``: one uniform float in [lo, hi) per call, from ``generator`` (torch's global one if None)."""
    return lambda lo, hi: lo + float(torch.rand((), generator=generator)) * (hi - lo)


def blockwise_mask(grid: int, ratio: float = 0.4, min_block: int = 4, attempts: int = 10,
                   generator: torch.Generator | None = None,
                   rand: Callable[[float, float], float] | None = None) -> Tensor:
    """BEiT Algorithm 1 on a grid x grid patch grid -> (grid * grid,) bool, True = masked.

    Until round(ratio N) patches are masked: draw a block area s uniform in [min_block, remaining] (remaining =
    patches still to mask), an aspect ratio r log-uniform in [0.3, 1/0.3], a = round(sqrt(s r)) rows and
    b = round(sqrt(s / r)) columns (a block that does not fit inside the grid is rejected before its corner is
    drawn), a random top-left corner; mask the block if it adds at least one patch and no more than remain (as the
    paper's code, so the count is exact). After ``attempts`` rejected blocks in a row it stops (a little short of
    the target: rare). The draws come from ``rand(lo, hi)`` in that order (s, log r, top, left), by default
    ``uniform_draws(generator)``; notebook 18's exercise is checked by giving both the same ``rand``."""
    N = grid * grid
    target = round(ratio * N)
    M = torch.zeros(grid, grid, dtype=torch.bool)
    u = rand or uniform_draws(generator)
    while (remaining := target - int(M.sum())) > 0:
        for _ in range(attempts):
            s = u(min_block, remaining)
            r = math.exp(u(math.log(0.3), math.log(1 / 0.3)))
            a, b = round(math.sqrt(s * r)), round(math.sqrt(s / r))
            if not (1 <= a < grid and 1 <= b < grid):
                continue
            top, left = int(u(0, grid - a + 1)), int(u(0, grid - b + 1))
            new = a * b - int(M[top:top + a, left:left + b].sum())
            if 0 < new <= remaining:
                M[top:top + a, left:left + b] = True
                break
        else:
            break
    return M.flatten()


class BEiT(nn.Module):
    """x (B, C, H, W), mask (B, N) bool -> logits (B, N, V) over the visual tokens at every patch position.

    The masked patches' embeddings x_p E are replaced by the learned ``mask_token`` before the position
    embeddings are added (``ViT.encode``); the class token is encoded too but not used by the head."""

    def __init__(self, vit: ViT, vocab: int):
        super().__init__()
        dim = vit.cls_token.shape[-1]
        self.vit = vit
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.lm_head = nn.Linear(dim, vocab)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.lm_head.weight, std=0.02)
        nn.init.zeros_(self.lm_head.bias)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        tokens = self.vit.embed(x)                                                 # (B, N, D)
        B, N, _ = tokens.shape
        if mask.shape != (B, N) or mask.dtype != torch.bool:
            raise ValueError(f"expected mask of shape ({B}, {N}) bool (True = masked), got {tuple(mask.shape)} {mask.dtype}")
        tokens = torch.where(mask[..., None], self.mask_token.to(tokens.dtype), tokens)
        return self.lm_head(self.vit.encode(tokens)[:, 1:])                        # (B, N, V): patches only


def mim_loss(model: BEiT, x: Tensor, codes: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. 1: cross-entropy of the masked positions' visual tokens. x (B, C, H, W), codes (B, N) long,
    mask (B, N) bool -> (mean nats per masked token, accuracy of the argmax there)."""
    logits = model(x, mask)[mask]                                                  # (|M|, V)
    target = codes[mask]
    return F.cross_entropy(logits, target), (logits.argmax(-1) == target).float().mean()


def masks(batch: int, grid: int, ratio: float = 0.4, generator: torch.Generator | None = None, **kw) -> Tensor:
    """One blockwise mask per example: (batch, grid * grid) bool."""
    return torch.stack([blockwise_mask(grid, ratio, generator=generator, **kw) for _ in range(batch)])


# ---------------------------------------------------------------------------------------------- training


def train_beit(model: BEiT, steps: int, batch_size: int = 128, lr: float = 1e-3, ratio: float = 0.4,
               state=None, progress: bool = True, seed: int = 0) -> dict:
    """Masked image modelling on Fashion-MNIST train (no labels): random flips and +-2-pixel shifts, the visual
    tokens of the shifted image from chapter 08's tokenizer, blockwise masks of ``ratio``; AdamW with a one-cycle
    learning rate. Resumable through ``state``. Metrics: masked-token accuracy and NLL on 2,000 test images."""
    from course_lib.data import fashion_mnist
    from course_lib.training import augment, mean_of, run_steps
    from course_lib.vq import load_tokenizer

    dev = next(model.parameters()).device
    tokenizer = load_tokenizer(dev, "cpu").requires_grad_(False)
    images = fashion_mnist("train").images
    grid = model.vit.patch_embed.img_size // model.vit.patch_embed.patch_size

    def batch_loss(g: torch.Generator) -> Tensor:
        x = augment(images[torch.randint(len(images), (batch_size,), generator=g)], g).to(dev)
        with torch.no_grad():
            codes = tokenizer.encode_tokens(x).flatten(1)                          # (B, 49)
        return mim_loss(model, x, codes, masks(batch_size, grid, ratio, g).to(dev))[0]

    result = run_steps(model, steps, batch_loss, lr, weight_decay=0.05, state=state, desc="BEiT pre-training",
                       progress=progress, seed=seed, config={"batch_size": batch_size, "ratio": ratio})
    test = fashion_mnist("test").images[:2_000].to(dev)
    with torch.no_grad():
        codes = tokenizer.encode_tokens(test).flatten(1)
        nll, acc = mim_loss(model, test, codes, masks(len(test), grid, ratio, torch.Generator().manual_seed(1)).to(dev))
    losses = result["losses"]
    return {"steps": steps, "batch_size": batch_size, "mim_acc_2000": round(float(acc), 4),
            "mim_nll_2000": round(float(nll), 4), "loss_first200": mean_of(losses, first=200),
            "loss_last200": mean_of(losses, last=200), "seconds": round(result["seconds"], 1)}
