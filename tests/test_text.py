"""Text conditioning: captioned Fashion-MNIST, the word tokenizer and the text encoder.

Oracles: the rendering itself (the attributes ``caption_dataset`` drew are read back from pixels by
``measure_attributes``, and from the words by ``parse_caption``), hand-drawn images whose attributes are known,
and for the encoder the same caption without padding (padding must change nothing) and the masked mean
written out.
"""

import pytest
import torch
import torch.nn.functional as F
from tolerance import assert_close_scaled

from course_lib.data import CLASSES
from course_lib.text import (
    CLASS_WORDS,
    POSITIONS,
    TextEncoder,
    Tokenizer,
    attribute_agreement,
    caption_dataset,
    measure_attributes,
    parse_caption,
    split_words,
    vocabulary,
)

# ---------------------------------------------------------------------------------------------- tokenizer


def test_tokenizer_round_trip_padding_and_mask():
    tok = Tokenizer.for_captions()
    assert len(tok) == len(vocabulary()) + 2 == 39 and tok.itos[:2] == ["<pad>", "<start>"]
    text = "A photo of a small dark T-shirt, on the LEFT."
    assert split_words(text) == ["a", "photo", "of", "a", "small", "dark", "t-shirt", "on", "the", "left"]
    ids, mask = tok.encode(text, max_len=16)
    assert ids.shape == mask.shape == (16,) and ids.dtype == torch.int64 and mask.dtype == torch.bool
    assert int(ids[0]) == tok.start_id and mask[:11].all() and not mask[11:].any()
    assert torch.equal(mask, ids != tok.pad_id) and bool((ids[11:] == tok.pad_id).all())
    assert tok.decode(ids) == "a photo of a small dark t-shirt on the left"
    assert [tok.itos[i] for i in ids[1:11].tolist()] == split_words(text)
    empty, empty_mask = tok.encode("", max_len=5)                     # the null caption of CFG
    assert empty.tolist() == [1, 0, 0, 0, 0] and empty_mask.tolist() == [True] + [False] * 4
    ids, mask = tok.encode_batch(["a large light coat", "tee"], max_len=8)
    assert ids.shape == mask.shape == (2, 8) and mask.sum(1).tolist() == [5, 2]
    assert [tok.decode(row) for row in ids] == ["a large light coat", "tee"]


def test_tokenizer_errors_name_the_problem():
    tok = Tokenizer.for_captions()
    with pytest.raises(ValueError) as err:
        tok.encode("a small dark sneeker on the left")
    message = str(err.value)
    assert "'sneeker'" in message and "did you mean 'sneaker'" in message and "37 words" in message
    assert "a, an, ankle" in message                                   # a few known words are listed
    with pytest.raises(ValueError, match=r"unknown words 'red'.*'hat'"):
        tok.encode("a red hat")
    with pytest.raises(ValueError, match=r"at most 3 words \(max_len = 4"):
        tok.encode("a large light coat", max_len=4)
    with pytest.raises(TypeError, match=r"list of texts"):
        tok.encode_batch("a coat")
    with pytest.raises(ValueError, match=r"ids of shape \(L,\)"):
        tok.decode(torch.zeros(2, 3, dtype=torch.long))
    for bad in [["a", "a"], ["two words"], ["Coat"], []]:
        with pytest.raises(ValueError, match=r"distinct lower-case words"):
            Tokenizer(bad)


# ---------------------------------------------------------------------------------------------- encoder


def encoder_and_batch():
    torch.manual_seed(0)
    tok = Tokenizer.for_captions()
    enc = TextEncoder(len(tok), dim=32, depth=2, heads=4, max_len=16)
    texts = ["a photo of a small dark boot at the bottom", "large light pants", "", "a small light top at the top"]
    return tok, enc, texts


@pytest.mark.parametrize("train", [False, True])
def test_text_encoder_ignores_padding(train):
    """A kept token's features are the same with 4 or 12 pads after the caption, whatever ids sit at the padded
    positions, and equal the features of the caption encoded alone without padding. Checked in eval mode (torch's
    fused path) and training mode."""
    tok, enc, texts = encoder_and_batch()
    enc.train(train)
    ids, mask = tok.encode_batch(texts, max_len=12)
    long_ids, long_mask = tok.encode_batch(texts, max_len=16)
    junk = torch.where(long_mask, long_ids, torch.randint(len(tok), long_ids.shape,
                                                          generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        short, long, noisy = enc(ids, mask), enc(long_ids, long_mask), enc(junk, long_mask)
        alone = [enc(i[None, :int(m.sum())], m[None, :int(m.sum())])[0] for i, m in zip(ids, mask)]
    assert short.shape == (4, 12, 32) and long.shape == (4, 16, 32)
    scale = long.abs().max()
    for b in range(4):
        n = int(mask[b].sum())
        assert_close_scaled(short[b, :n], long[b, :n], scale=scale, ulps=256)
        assert_close_scaled(noisy[b, :n], long[b, :n], scale=scale, ulps=256)
        assert_close_scaled(alone[b], long[b, :n], scale=scale, ulps=256)
    assert float((long[0, 0] - long[1, 0]).abs().max()) > 1e-2 * float(scale), "the start token sees the words"


def test_text_encoder_pooled_shapes_and_bad_inputs():
    tok, enc, texts = encoder_and_batch()
    enc.eval()
    ids, mask = tok.encode_batch(texts)
    with torch.no_grad():
        h, pooled = enc(ids, mask), enc.pooled(ids, mask)
    assert pooled.shape == (4, 32)
    m = mask[..., None].float()
    assert_close_scaled(pooled, (h * m).sum(1) / m.sum(1), scale=h.abs().max())
    with pytest.raises(ValueError, match=r"ids of shape \(B, L\) int64 with 1 <= L <= 16"):
        enc(torch.zeros(2, 17, dtype=torch.long), torch.ones(2, 17, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"ids of shape \(B, L\) int64"):
        enc(ids.float(), mask)
    with pytest.raises(ValueError, match=r"mask of shape \(4, 16\) bool"):
        enc(ids, mask[:, :8])
    with pytest.raises(ValueError, match=r"at least one True"):
        enc(ids, torch.zeros_like(mask))
    with pytest.raises(ValueError, match=r"ids in \[0, 38\]"):
        enc(ids + 100, mask)


def test_text_encoder_training_step_lowers_the_loss():
    """Three Adam steps of a linear probe on the pooled features (predicting the class) lower the loss."""
    tok, enc, _ = encoder_and_batch()
    texts = ["a small dark coat on the left", "large light pants", "a photo of a large dark bag",
             "a small light tee at the top"]
    ids, mask = tok.encode_batch(texts)
    y = torch.tensor([4, 1, 8, 0])
    head = torch.nn.Linear(32, 10)
    opt = torch.optim.Adam(list(enc.parameters()) + list(head.parameters()), lr=3e-3)
    losses = []
    for _ in range(4):
        loss = F.cross_entropy(head(enc.pooled(ids, mask)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


# ---------------------------------------------------------------------------------------------- captions


def test_captions_are_true_of_their_images(one_thread):
    """On 400 rendered images: the words name the rendered attributes and the label (``parse_caption``, exact),
    the pixels show them (``measure_attributes`` agrees on >= 98 % of each attribute: the notebooks' "attribute
    accuracy" of real images), every word is in the tokenizer, small items stay inside their 16 px box, and the
    set is deterministic given the seed."""
    data = caption_dataset(400, split="train", seed=0)
    assert data.images.shape == (400, 1, 28, 28) and data.labels.shape == (400,) and len(data) == 400
    assert float(data.images.min()) >= 0 and float(data.images.max()) <= 1
    image, text = data[3]
    assert image.shape == (1, 28, 28) and text == data.captions[3]
    for i, text in enumerate(data.captions):
        parsed = parse_caption(text)
        assert parsed == {"label": int(data.labels[i]), "size": data.sizes[i], "brightness": data.brightness[i],
                          "position": data.positions[i]}, text
        assert (data.positions[i] is None) == (data.sizes[i] == "large")
    measured = measure_attributes(data.images)
    for key, rendered in [("size", data.sizes), ("brightness", data.brightness), ("position", data.positions)]:
        pairs = [(m, r) for m, r in zip(measured[key], rendered) if r is not None]
        assert sum(m == r for m, r in pairs) >= 0.98 * len(pairs), key
    agreement = attribute_agreement(measured, data.captions)
    assert min(agreement.values()) >= 0.98, agreement
    assert {"small", "large"} == set(data.sizes) and {"dark", "light"} == set(data.brightness)
    assert set(POSITIONS) == {p for p in data.positions if p is not None}
    Tokenizer.for_captions().encode_batch(data.captions)               # raises on any unknown word
    boxes = {"on the left": (6, 1), "on the right": (6, 11), "at the top": (1, 6), "at the bottom": (11, 6)}
    for i, p in enumerate(data.positions):
        if p is not None:
            y0, x0 = boxes[p]
            outside = data.images[i, 0].clone()
            outside[y0:y0 + 16, x0:x0 + 16] = 0
            assert float(outside.abs().max()) == 0.0, (i, p)
    again, other = caption_dataset(400, split="train", seed=0), caption_dataset(400, split="train", seed=1)
    assert torch.equal(again.images, data.images) and again.captions == data.captions
    assert other.captions != data.captions


def test_measure_attributes_on_drawn_images():
    """Hand-drawn squares: a 10 px bright square on each side, a 24 px dim one in the middle, an empty image."""
    images = torch.zeros(6, 1, 28, 28)
    images[0, 0, 9:19, 1:11] = 0.9                                     # small, light, on the left
    images[1, 0, 9:19, 17:27] = 0.9                                    # on the right
    images[2, 0, 1:11, 9:19] = 0.3                                     # small, dark, at the top
    images[3, 0, 17:27, 9:19] = 0.3                                    # at the bottom
    images[4, 0, 2:26, 2:26] = 0.3                                     # large, dark, centred
    m = measure_attributes(images)
    assert m["size"] == ["small"] * 4 + ["large", "small"]
    assert m["brightness"] == ["light", "light", "dark", "dark", "dark", "dark"]
    assert m["position"][:4] == list(POSITIONS) and m["position"][5] is None
    assert m["extent"].tolist() == [10, 10, 10, 10, 24, 0]
    assert m["centroid"][0].tolist() == pytest.approx([5.5, 13.5]) and m["intensity"][0] == pytest.approx(0.9)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        measure_attributes(torch.zeros(2, 28, 28))


def test_parse_caption_and_agreement():
    assert parse_caption("a small dark top at the top") == {"label": 0, "size": "small", "brightness": "dark",
                                                            "position": "at the top"}
    assert parse_caption("A photo of a small light ankle boot, on the right.")["label"] == 9
    assert parse_caption("large light pants") == {"label": 1, "size": "large", "brightness": "light",
                                                  "position": None}
    assert parse_caption("a coat and a bag")["label"] is None                       # two classes: no single label
    assert len(CLASS_WORDS) == len(CLASSES)
    images = torch.zeros(2, 1, 28, 28)
    images[0, 0, 9:19, 1:11] = 0.9
    images[1, 0, 2:26, 2:26] = 0.9
    measured = measure_attributes(images)
    assert attribute_agreement(measured, ["a small light bag on the left", "a large light coat"]) == \
        {"size": 1.0, "brightness": 1.0, "position": 1.0}
    wrong = attribute_agreement(measured, ["a large dark bag on the right", "a small dark coat"])
    assert wrong["size"] == wrong["brightness"] == 0.0 and wrong["position"] == 0.0
    with pytest.raises(ValueError, match=r"one caption per measured image \(2\)"):
        attribute_agreement(measured, ["a coat"])
