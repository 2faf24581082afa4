"""Captioned Fashion-MNIST as token streams: the caption's word ids and the image's 49 visual tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from course_lib.text.captions import CaptionSet

TEXT_LEN = 16     # words, <start> included, padded with <pad> (= 0)


@dataclass
class TokenPairs:
    """text (N, 16) int64 word ids (<start> first, <pad>-padded), codes (N, 49) int64 visual tokens, and the
    ``course_lib.text.CaptionSet`` they come from (images, captions, labels, attributes)."""
    text: Tensor
    codes: Tensor
    captions: CaptionSet


@torch.no_grad()
def token_pairs(n: int, split: str = "train", seed: int = 0, device: torch.device | str = "cpu") -> TokenPairs:
    """``course_lib.text.caption_dataset(n, split, seed)`` tokenized: captions by ``Tokenizer.for_captions()``, images
    by chapter 08's VQ-VAE tokenizer (about 9 s per 60,000 images on one CPU thread)."""
    from course_lib.text import Tokenizer, caption_dataset
    from course_lib.vq import load_tokenizer

    data = caption_dataset(n, split, seed)
    text, _ = Tokenizer.for_captions().encode_batch(data.captions, TEXT_LEN)
    tok = load_tokenizer(device, "cpu")
    codes = torch.cat([tok.encode_tokens(data.images[i:i + 2000].to(device)).flatten(1).cpu()
                       for i in range(0, n, 2000)]) if n else torch.zeros(0, 49, dtype=torch.long)
    return TokenPairs(text, codes, data)
