"""Chapters 19-20: DALL-E and DALL-E 2 on captioned Fashion-MNIST.

- ``dalle``  Ramesh et al. 2021: ``DALLE`` (one causal transformer over caption tokens then chapter 08's image
             tokens), ``stream_loss`` (text 1/8, image 7/8), ``stream_mask``, ``filter_logits`` (temperature, top-k)
- ``clip``   Radford et al. 2021: ``clip_loss`` (the symmetric contrastive loss), ``clip_logits``, ``recall_at_k``

The captions, tokenizer and text encoder are in ``course_lib.text``; the image tokenizer in ``course_lib.vq``; the
transformer block in ``course_lib.transformers``. The notebooks own the sampling loops.
"""

from course_lib.dalle.clip import clip_logits, clip_loss, recall_at_k
from course_lib.dalle.dalle import DALLE, filter_logits, stream_loss, stream_mask

__all__ = ["DALLE", "clip_logits", "clip_loss", "filter_logits", "recall_at_k", "stream_loss", "stream_mask"]
