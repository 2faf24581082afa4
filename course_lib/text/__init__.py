"""Text for conditioning (chapter 15, and later chapters that read captions): captioned Fashion-MNIST, a
word-level tokenizer and a small transformer text encoder.

- ``captions``   ``caption_dataset`` (one item per image; size, brightness and position rendered and named in
                 the caption from a small grammar), ``measure_attributes`` (read them back from pixels),
                 ``parse_caption``, ``attribute_agreement`` (grade samples against their captions)
- ``tokenizer``  ``Tokenizer`` (<pad> = 0, <start> = 1, then the words; unknown words raise a ValueError that
                 names them), ``Tokenizer.for_captions()``
- ``encoder``    ``TextEncoder`` (token + position embeddings, pre-norm transformer blocks honouring the padding
                 mask): ids (B, L), mask (B, L) -> (B, L, D); ``pooled`` -> (B, D)

The cross-attention that reads the encoder's features is ``course_lib.guidance.CrossAttention``.
"""

from course_lib.text.captions import (
    CLASS_WORDS,
    POSITIONS,
    CaptionSet,
    attribute_agreement,
    caption_dataset,
    intensity,
    measure_attributes,
    parse_caption,
    vocabulary,
)
from course_lib.text.encoder import TextEncoder
from course_lib.text.tokenizer import Tokenizer, split_words

__all__ = [
    "CLASS_WORDS", "POSITIONS", "CaptionSet", "TextEncoder", "Tokenizer", "attribute_agreement", "caption_dataset",
    "intensity", "measure_attributes", "parse_caption", "split_words", "vocabulary",
]
