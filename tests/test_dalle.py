"""Chapters 19-20: DALL-E's stream model and CLIP's loss.

Oracles: a direct cross-entropy formulation of CLIP's loss (a double loop over the batch, float64), the causal
structure of the stream (what an output may depend on), per-position padding, a direct computation of the
weighted stream loss, and hand-made similarity matrices for recall@k."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.dalle import DALLE, clip_logits, clip_loss, filter_logits, recall_at_k, stream_loss, stream_mask


pytestmark = pytest.mark.usefixtures("one_thread")   # conftest: 1 thread, restored after


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ------------------------------------------------------------------------------------------------ CLIP


@pytest.mark.parametrize("B,D,t", [(2, 3, 0.0), (8, 16, math.log(1 / 0.07)), (5, 4, 2.5)])
def test_clip_loss_equals_the_direct_cross_entropy(B, D, t):
    I, T = randn(B, D, seed=1), randn(B, D, seed=2)
    i_n, t_n = I / I.norm(dim=1, keepdim=True), T / T.norm(dim=1, keepdim=True)
    scale = math.exp(t)
    s = [[float(i_n[a] @ t_n[b]) * scale for b in range(B)] for a in range(B)]
    img = sum(-s[a][a] + math.log(sum(math.exp(s[a][b]) for b in range(B))) for a in range(B)) / B
    txt = sum(-s[b][b] + math.log(sum(math.exp(s[a][b]) for a in range(B))) for b in range(B)) / B
    assert abs(float(clip_loss(I, T, t)) - (img + txt) / 2) < 1e-10
    assert clip_logits(I, T, t).shape == (B, B)


def test_clip_loss_limits_and_errors():
    E = randn(6, 8, seed=3)
    assert float(clip_loss(E, E, 5.0)) < 0.05                     # perfectly aligned pairs, a high scale: ~0
    assert abs(float(clip_loss(E, E, -30.0)) - math.log(6)) < 1e-6  # scale ~0: chance, log B
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        clip_loss(E, E[:5], 0.0)
    with pytest.raises(ValueError, match=r"\(M, D\)"):
        clip_logits(E, randn(6, 7), 0.0)


def test_recall_at_k_by_hand():
    s = torch.tensor([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.2, 0.3, 0.1]])
    assert recall_at_k(s, 1) == pytest.approx(1 / 3)               # row 0 only
    assert recall_at_k(s, 2) == pytest.approx(2 / 3)               # row 1's match is second
    assert recall_at_k(s, 3) == 1.0
    assert recall_at_k(torch.ones(4, 4), 1) == 1.0                 # ties go to the match
    with pytest.raises(ValueError, match="square"):
        recall_at_k(torch.ones(2, 3))


# ------------------------------------------------------------------------------------------------ DALL-E


def small_model(**kw):
    torch.manual_seed(0)
    return DALLE(text_vocab=20, text_len=6, image_vocab=12, image_len=9, dim=32, depth=2, heads=2, **kw).eval()


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(1, 20, (3, 6), generator=g)
    text[0, 4:] = 0                                                # padded captions
    text[1, 2:] = 0
    return text, torch.randint(0, 12, (3, 9), generator=g)


def test_stream_is_causal_text_then_image():
    model = small_model()
    text, image = batch()
    with torch.no_grad():
        t0, i0 = model(text, image)
        assert t0.shape == (3, 5, 20) and i0.shape == (3, 10, 12)
        j = 4
        image2 = image.clone()
        image2[:, j] = (image2[:, j] + 1) % 12
        t1, i1 = model(text, image2)
        assert torch.equal(t0, t1)                                 # the text never sees the image
        assert torch.equal(i0[:, :j + 1], i1[:, :j + 1])           # logits for z_1..z_{j+1} do not see z_{j+1}
        assert float((i0[:, j + 1:] - i1[:, j + 1:]).abs().max()) > 1e-5
        text2 = text.clone()
        text2[2, 1] = (text2[2, 1] % 19) + 1                       # change a caption word
        _, i2 = model(text2, image)
        assert float((i2[2] - i0[2]).abs().max()) > 1e-5           # the image depends on the caption
        _, ip = model(text, image[:, :3])                          # a prefix of the image: the same logits
        assert torch.allclose(ip, i0[:, :4], atol=1e-5)
    m = stream_mask(6, 9)
    assert m.shape == (15, 15) and bool(m[14].all()) and not bool(m[0, 1:].any())


def test_padding_uses_the_per_position_pad_embedding():
    model = small_model()
    text, image = batch()
    with torch.no_grad():
        before = model(text, image)[1]
        model.text_emb.weight[0] += 5.0                            # the pad id's row is never used
        assert torch.equal(model(text, image)[1], before)
        model.pad_emb[5] += randn(32, seed=9).float()              # position 5's pad is used by rows 0 and 1 (not a
        # constant shift: every LayerNorm would remove it)
        after = model(text, image)[1]
    assert float((after[:2] - before[:2]).abs().max()) > 1e-5 and torch.equal(after[2], before[2])


def test_stream_loss_equals_the_direct_computation():
    model = small_model()
    text, image = batch(1)
    total, ce_t, ce_i = stream_loss(model, text, image)
    tl, il = model(text, image)
    direct_t = -tl.log_softmax(-1).gather(-1, text[:, 1:, None]).mean()
    direct_i = -il[:, :9].log_softmax(-1).gather(-1, image[..., None]).mean()
    assert torch.allclose(ce_t, direct_t, atol=1e-6) and torch.allclose(ce_i, direct_i, atol=1e-6)
    assert torch.allclose(total, ce_t / 8 + 7 * ce_i / 8, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, 6\) long"):
        model(text[:, :5], image)
    with pytest.raises(ValueError, match=r"n <= 9"):
        model(text, torch.zeros(3, 10, dtype=torch.long))


def test_filter_logits():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert torch.equal(filter_logits(logits, 2.0), logits / 2)
    top2 = filter_logits(logits, 1.0, top_k=2)
    assert torch.isinf(top2[0, [0, 3]]).all() and torch.equal(top2[0, [1, 2]], logits[0, [1, 2]])
    with pytest.raises(ValueError, match="temperature"):
        filter_logits(logits, 0.0)


def test_dalle_loss_goes_down():
    torch.manual_seed(0)
    model = DALLE(text_vocab=20, text_len=6, image_vocab=12, image_len=9, dim=32, depth=2, heads=2)
    text, image = batch(2)
    image = (text[:, 1:2] % 12).repeat(1, 9)                      # the image token is set by the caption
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = float(stream_loss(model, text, image)[2].detach())
    for _ in range(40):
        loss = stream_loss(model, text, image)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(stream_loss(model, text, image)[2].detach()) < 0.2 * first


# ------------------------------------------------------------------------------------------------ DALL-E 2

from course_lib.dalle.unclip import (  # noqa: E402
    EmbeddingConditionalUNet,
    PriorMLP,
    eps_from_x0,
    prior_loss,
    sample_prior,
    scaled,
)
from course_lib.diffusion import NoiseSchedule  # noqa: E402


def test_scaled_and_eps_from_x0_invert_q_sample():
    z = scaled(randn(5, 64, seed=11))
    assert torch.allclose(z.norm(dim=1), torch.full((5,), 8.0, dtype=z.dtype))
    s = NoiseSchedule(1000).double()
    eps = randn(5, 64, seed=12)
    for t in (0, 500, 999):
        xt = s.q_sample(z, t, eps)
        assert torch.allclose(eps_from_x0(s, z, t, xt), eps, atol=1e-8)


def test_prior_shapes_errors_and_sampling():
    torch.manual_seed(0)
    prior = PriorMLP(dim=16, hidden=32, depth=2)
    z, t = torch.randn(4, 16), torch.randint(0, 1000, (4,))
    assert prior(z, t, torch.randn(4, 16)).shape == (4, 16)
    with pytest.raises(ValueError, match=r"z_text \(B, 16\)"):
        prior(z, t, torch.randn(4, 8))
    out = sample_prior(prior.eval(), NoiseSchedule(1000), torch.randn(3, 16), steps=5, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 16) and torch.allclose(out.norm(dim=1), torch.full((3,), 4.0), atol=1e-5)


def test_prior_learns_a_deterministic_map():
    torch.manual_seed(0)
    prior, s = PriorMLP(dim=8, hidden=64, depth=2), NoiseSchedule(1000)
    W = torch.randn(8, 8, generator=torch.Generator().manual_seed(1))
    zt = scaled(torch.randn(256, 8, generator=torch.Generator().manual_seed(2)))
    zi = scaled(zt @ W)                                            # the image embedding is a function of the text's
    opt = torch.optim.AdamW(prior.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(3)
    first = float(prior_loss(prior, s, zi, zt, g).detach())
    for _ in range(300):
        loss = prior_loss(prior, s, zi, zt, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(prior_loss(prior, s, zi, zt, torch.Generator().manual_seed(4)).detach()) < 0.5 * first


def test_decoder_null_embedding_replaces_the_dropped_rows():
    torch.manual_seed(0)
    model = EmbeddingConditionalUNet(emb_dim=8, channels=(8, 16, 16)).eval()
    with torch.no_grad():
        model.null.normal_()
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([10, 500, 900])
    z1, z2 = torch.randn(3, 8), torch.randn(3, 8)
    keep = torch.tensor([True, False, True])
    with torch.no_grad():
        a, b = model(x, t, z1, keep), model(x, t, z2, keep)
        assert torch.equal(a[1], b[1])                              # dropped: z is not read
        assert float((a[0] - b[0]).abs().max()) > 1e-5             # kept: z matters
        assert torch.equal(model(x, t, z1), model(x, t, z1, torch.ones(3, dtype=torch.bool)))
    with pytest.raises(ValueError, match=r"\(3, 8\)"):
        model(x, t, torch.randn(3, 4))
