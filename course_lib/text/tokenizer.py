"""A word-level tokenizer for the course's captions: lower-case, split into words, look each one up.

Id 0 is ``<pad>`` (fills the sequence to ``max_len``; the mask marks it False) and id 1 is ``<start>``, which
begins every sequence, so that even the empty caption "" has one token to attend to: its encoding is the
unconditional input of classifier-free guidance, as CLIP's empty prompt is in Stable Diffusion. The words
follow, ids 2.. in the order given.

There is no ``<unk>``: a word outside the vocabulary raises a ValueError that names it, suggests close
known words and lists a few (what the notebooks' caption box shows). Shapes: L = max_len, B batch.
"""

from __future__ import annotations

import difflib
import re

import torch
from torch import Tensor

WORD = re.compile(r"\w+(?:[-']\w+)*")        # "t-shirt" is one word; other punctuation separates words


def split_words(text: str) -> list[str]:
    """'A photo of a T-shirt, on the left.' -> ['a', 'photo', 'of', 'a', 't-shirt', 'on', 'the', 'left']."""
    return WORD.findall(text.lower())


class Tokenizer:
    """Word -> id lookup over ``vocab`` (words, without the special tokens)."""

    PAD, START = "<pad>", "<start>"
    pad_id, start_id = 0, 1

    def __init__(self, vocab: list[str]):
        bad = [w for w in vocab if split_words(w) != [w]]
        if bad or len(set(vocab)) != len(vocab) or not vocab:
            raise ValueError(f"expected a non-empty list of distinct lower-case words, got bad words {bad} and "
                             f"{len(vocab) - len(set(vocab))} duplicates")
        self.words = list(vocab)
        self.itos = [self.PAD, self.START] + self.words                    # id -> token
        self.stoi = {w: i for i, w in enumerate(self.itos)}                # token -> id

    @classmethod
    def for_captions(cls) -> Tokenizer:
        """The vocabulary of ``course_lib.text.captions``' grammar (37 words, 39 ids with the specials)."""
        from course_lib.text.captions import vocabulary

        return cls(vocabulary())

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str, max_len: int = 16) -> tuple[Tensor, Tensor]:
        """text -> ids (max_len,) int64 = [<start>, words..., <pad>...], mask (max_len,) bool (True = a token)."""
        words = split_words(text)
        unknown = list(dict.fromkeys(w for w in words if w not in self.stoi))
        if unknown:
            hints = [f"{w!r} (did you mean {', '.join(map(repr, close))}?)" if close else repr(w)
                     for w in unknown for close in [difflib.get_close_matches(w, self.words, n=3)]]
            raise ValueError(f"unknown word{'s' if len(unknown) > 1 else ''} {', '.join(hints)} in {text!r}; "
                             f"the vocabulary has {len(self.words)} words, e.g. {', '.join(self.words[:12])}")
        if len(words) + 1 > max_len:
            raise ValueError(f"expected at most {max_len - 1} words (max_len = {max_len} with the start token), "
                             f"got {len(words)} in {text!r}")
        ids = torch.full((max_len,), self.pad_id, dtype=torch.int64)
        ids[0] = self.start_id
        ids[1:len(words) + 1] = torch.tensor([self.stoi[w] for w in words], dtype=torch.int64)
        return ids, ids != self.pad_id

    def encode_batch(self, texts: list[str], max_len: int = 16) -> tuple[Tensor, Tensor]:
        """B texts -> ids (B, max_len) int64, mask (B, max_len) bool."""
        if isinstance(texts, str):
            raise TypeError("expected a list of texts, got one string (use encode)")
        pairs = [self.encode(t, max_len) for t in texts]
        if not pairs:
            return torch.zeros(0, max_len, dtype=torch.int64), torch.zeros(0, max_len, dtype=torch.bool)
        ids, mask = zip(*pairs)
        return torch.stack(ids), torch.stack(mask)

    def decode(self, ids: Tensor) -> str:
        """ids (L,) -> the words joined by spaces, without <start> and <pad>."""
        if not isinstance(ids, Tensor) or ids.ndim != 1:
            raise ValueError(f"expected ids of shape (L,), got {tuple(getattr(ids, 'shape', ())) or ids!r}")
        return " ".join(self.itos[i] for i in ids.tolist() if i not in (self.pad_id, self.start_id))
