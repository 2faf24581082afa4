"""Chapters 19-20's shipped checkpoints (``python -m course_lib checkpoints``).

- ``dalle``           notebook 19's DALL-E: dim 128, 4 causal blocks of 4 heads over 16 caption words + 49 visual
                      tokens, 6,000 steps of batch 64 on the 60,000 captioned training images (``train_dalle``)
- ``clip``            notebook 20's CLIP (also notebook 19's reranker): 3,000 steps of batch 128 (``train_clip``)
- ``unclip_prior``    DALL-E 2's diffusion prior on ``clip``'s embeddings: 4,000 steps of batch 256 (``train_prior``)
- ``unclip_decoder``  DALL-E 2's decoder, the course U-Net conditioned on ``clip``'s image embedding: 5,000 steps of
                      batch 64 with the embedding dropped 10 % of the time, as chapter 14's ``ddpm_cond``, but with
                      the one-cycle AdamW of ``run_steps`` and no EMA of the weights (``train_decoder``)
"""

from __future__ import annotations

import torch
from torch import nn

from course_lib import checkpoints

DALLE_STEPS = 6_000
CLIP_STEPS = 3_000
PRIOR_STEPS = 4_000
DECODER_STEPS = 5_000


def build_dalle() -> nn.Module:
    from course_lib.dalle.dalle import DALLE
    from course_lib.dalle.data import TEXT_LEN
    from course_lib.text import Tokenizer

    return DALLE(len(Tokenizer.for_captions()), TEXT_LEN, image_vocab=128, image_len=49, dim=128, depth=4, heads=4)


def build(name: str) -> nn.Module:
    from course_lib.dalle.clip import CLIP
    from course_lib.dalle.unclip import EmbeddingConditionalUNet, PriorMLP
    from course_lib.text import Tokenizer

    builders = {"dalle": build_dalle, "clip": lambda: CLIP(len(Tokenizer.for_captions())),
                "unclip_prior": PriorMLP, "unclip_decoder": EmbeddingConditionalUNet}
    if name not in builders:
        raise ValueError(f"unknown checkpoint {name!r}: expected one of {sorted(builders)}")
    return builders[name]()


def _train_fn(name: str, smoke: bool = False):
    """train(model) -> metrics for ``name`` (20 steps and no resumable state for a smoke stand-in)."""
    from course_lib.dalle.clip import train_clip
    from course_lib.dalle.dalle import train_dalle
    from course_lib.dalle.unclip import train_decoder, train_prior

    steps = {"dalle": DALLE_STEPS, "clip": CLIP_STEPS, "unclip_prior": PRIOR_STEPS, "unclip_decoder": DECODER_STEPS}
    n = 20 if smoke else steps[name]
    state = None if smoke else checkpoints.state_path(name)
    profile = "smoke" if smoke else "cpu"
    if name == "dalle":
        return lambda m: train_dalle(m, n, state=state)
    if name == "clip":
        return lambda m: train_clip(m, n, state=state)
    train = train_prior if name == "unclip_prior" else train_decoder
    return lambda m: train(m, load("clip", next(m.parameters()).device, profile), n, state=state)


def load(name: str, device: torch.device | str = "cpu", profile: str = "auto") -> nn.Module:
    """The trained model ``name`` in eval mode (shipped, else cached, else trained now; in smoke a 20-step stand-in),
    its manifest entry as ``model.checkpoint_entry``."""
    from course_lib.profiles import resolve

    model = build(name).to(device)
    model.checkpoint_entry = checkpoints.load(name, model, _train_fn(name, resolve(profile) == "smoke"), profile=profile)
    return model.eval().requires_grad_(False)


CHECKPOINTS = {name: (lambda name=name: (build(name), _train_fn(name)))
               for name in ("dalle", "clip", "unclip_prior", "unclip_decoder")}
