"""Notebook 16's Image GPT: the k-means palette (against scikit-learn's KMeans), quantization, the causal mask
(what an AR output may and may not depend on), BERT's corruption, both losses against a direct computation,
sampling (its first token's frequencies against the softmax, greedy decoding against full-length forward passes, the key/value cache against both), notebook 16's
hand check, and "loss goes down"."""

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans

from course_lib.transformers.igpt import (
    ImageGPT,
    ar_loss,
    bert_loss,
    dequantize,
    kmeans_palette,
    layer_features,
    mask_tokens,
    quantize,
    sample,
)


pytestmark = pytest.mark.usefixtures("one_thread")   # conftest: 1 thread, restored after


def test_kmeans_palette_matches_sklearn_inertia():
    g = torch.Generator().manual_seed(0)
    pixels = torch.cat([torch.zeros(3000), 0.3 + 0.05 * torch.randn(2000, generator=g),
                        0.8 + 0.1 * torch.randn(3000, generator=g)]).clamp(0, 1)
    for k in (2, 4, 8):
        ours = kmeans_palette(pixels, k)
        assert ours.shape == (k,) and bool((ours[1:] > ours[:-1]).all())
        inertia = float(((pixels[:, None] - ours[None]) ** 2).min(1).values.sum())
        ref = KMeans(k, n_init=10, random_state=0).fit(pixels[:, None].double().numpy())
        assert inertia <= ref.inertia_ * 1.01 + 1e-9, (k, inertia, ref.inertia_)
    with pytest.raises(ValueError, match=r"\(N,\)"):
        kmeans_palette(torch.rand(4, 4), 2)


def test_quantize_round_trip_and_nearest():
    palette = torch.tensor([0.0, 0.25, 0.6, 1.0])
    idx = torch.randint(0, 4, (3, 16), generator=torch.Generator().manual_seed(1))
    images = dequantize(idx, palette, 4)
    assert images.shape == (3, 1, 4, 4)
    assert torch.equal(quantize(images, palette), idx)
    assert quantize(torch.tensor([0.1, 0.14, 0.5, 0.79, 0.81]).view(1, 1, 1, 5), palette).tolist() == [[0, 1, 2, 2, 3]]
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        quantize(torch.rand(2, 16), palette)


def test_ar_outputs_see_only_earlier_tokens():
    torch.manual_seed(0)
    model = ImageGPT(vocab=8, seq_len=12, dim=16, depth=2, heads=2).eval()
    x = torch.randint(0, 8, (2, 12), generator=torch.Generator().manual_seed(2))
    j = 5
    y = x.clone()
    y[:, j] = (y[:, j] + 3) % 8
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.equal(a[:, :j + 1], b[:, :j + 1])            # output i predicts token i from tokens < i
    assert float((a[:, j + 1:] - b[:, j + 1:]).abs().max()) > 1e-4
    with torch.no_grad():                                     # a prefix gives the same outputs as the full sequence
        assert torch.allclose(model(x[:, :7]), a[:, :7], atol=1e-5)


def test_bert_outputs_see_everything():
    torch.manual_seed(0)
    model = ImageGPT(vocab=8, seq_len=12, dim=16, depth=2, heads=2, causal=False).eval()
    x = torch.randint(0, 8, (2, 12), generator=torch.Generator().manual_seed(3))
    y = x.clone()
    y[:, 9] = (y[:, 9] + 3) % 8
    with torch.no_grad():
        assert float((model(x)[:, 0] - model(y)[:, 0]).abs().max()) > 1e-4


def test_losses_equal_the_direct_computation():
    torch.manual_seed(0)
    ar = ImageGPT(vocab=6, seq_len=10, dim=16, depth=1, heads=2)
    x = torch.randint(0, 6, (4, 10), generator=torch.Generator().manual_seed(4))
    logp = ar(x).log_softmax(-1)
    direct = -logp.gather(-1, x[..., None]).mean()
    assert torch.allclose(ar_loss(ar, x), direct, atol=1e-6)
    assert abs(float(ar_loss(ar, x).detach()) - math.log(6)) < 0.3     # near log K at initialisation
    bert = ImageGPT(vocab=6, seq_len=10, dim=16, depth=1, heads=2, causal=False)
    corrupted, M = mask_tokens(x, bert.special, 0.3, torch.Generator().manual_seed(5))
    logp = bert(corrupted).log_softmax(-1)
    direct = -logp[M].gather(-1, x[M][:, None]).mean()
    assert torch.allclose(bert_loss(bert, x, 0.3, torch.Generator().manual_seed(5)), direct, atol=1e-6)


def test_mask_tokens_hides_about_p_and_never_nothing():
    x = torch.randint(0, 5, (400, 50), generator=torch.Generator().manual_seed(6))
    corrupted, M = mask_tokens(x, 5, 0.15, torch.Generator().manual_seed(7))
    assert bool(M.any(1).all())
    assert 0.14 < float(M.float().mean()) < 0.17
    assert bool((corrupted[M] == 5).all()) and torch.equal(corrupted[~M], x[~M])


def test_layer_features_and_shapes():
    model = ImageGPT(vocab=8, seq_len=16, dim=24, depth=3, heads=4)
    feats = layer_features(model, torch.randint(0, 8, (5, 16)))
    assert len(feats) == 4 and all(f.shape == (5, 24) for f in feats)
    with pytest.raises(ValueError, match=r"\(B, S<=16\) long"):
        model(torch.randint(0, 8, (2, 17)))
    with pytest.raises(ValueError, match="long"):
        model(torch.rand(2, 16))


@pytest.mark.parametrize("causal", [True, False])
def test_igpt_loss_goes_down(causal):
    torch.manual_seed(0)
    model = ImageGPT(vocab=4, seq_len=16, dim=32, depth=2, heads=2, causal=causal)
    x = (torch.arange(16) // 4 % 4).repeat(16, 1)            # a fixed, predictable pattern
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(8)
    loss_fn = (lambda: ar_loss(model, x)) if causal else (lambda: bert_loss(model, x, 0.3, g))
    first = float(loss_fn().detach())
    for _ in range(40):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.3 * first


def test_sample_draws_from_the_models_next_token_distribution():
    torch.manual_seed(0)
    model = ImageGPT(vocab=5, seq_len=12, dim=16, depth=2, heads=2).eval()
    prefix = torch.tensor([[3, 1, 4]]).repeat(4000, 1)
    out = sample(model, prefix, 1, generator=torch.Generator().manual_seed(1))
    assert out.shape == (4000, 4) and torch.equal(out[:, :3], prefix)
    with torch.no_grad():      # output 3 of any full sequence is p(x_3 | x_0..2): the causal shift, tested above
        p = model(torch.tensor([[3, 1, 4, 0, 0, 0]]))[0, 3].softmax(-1)
    freq = torch.bincount(out[:, 3], minlength=5).double() / 4000
    sigma = (p * (1 - p) / 4000).sqrt().double()
    assert bool(((freq - p.double()).abs() <= 4 * sigma + 1e-3).all()), (freq, p)


def test_sample_at_low_temperature_is_greedy_decoding():
    torch.manual_seed(1)
    model = ImageGPT(vocab=6, seq_len=10, dim=16, depth=2, heads=2).eval()
    out = sample(model, torch.zeros(3, 0, dtype=torch.long), 10, temperature=1e-4,
                 generator=torch.Generator().manual_seed(0))
    greedy = torch.zeros(3, 10, dtype=torch.long)       # decoded on full-length inputs, later positions zero
    with torch.no_grad():
        for i in range(10):
            greedy[:, i] = model(greedy)[:, i].argmax(-1)
    assert torch.equal(out, greedy)


def test_sample_is_reproducible_and_rejects_bad_input():
    model = ImageGPT(vocab=6, seq_len=10, dim=16, depth=1, heads=2).eval()
    a, b = (sample(model, torch.zeros(2, 4, dtype=torch.long), 6, generator=torch.Generator().manual_seed(5))
            for _ in range(2))
    assert torch.equal(a, b) and int(a.max()) < 6
    with pytest.raises(ValueError, match=r"P \+ n_new <= 10"):
        sample(model, torch.zeros(2, 5, dtype=torch.long), 6)
    with pytest.raises(ValueError, match="autoregressive"):
        sample(ImageGPT(vocab=6, seq_len=10, dim=16, depth=1, heads=2, causal=False), torch.zeros(2, 0, dtype=torch.long), 3)


@pytest.mark.parametrize("P", [0, 1, 5])
def test_cached_sampler_equals_the_full_forward_pass(P):
    from course_lib.transformers.igpt import _cached_logits

    torch.manual_seed(2)
    model = ImageGPT(vocab=6, seq_len=12, dim=16, depth=2, heads=2).eval()
    prefix = torch.randint(0, 6, (30, P), generator=torch.Generator().manual_seed(P))
    a, b = (sample(model, prefix, 12 - P, generator=torch.Generator().manual_seed(3), cache=c) for c in (True, False))
    assert torch.equal(a, b)                                  # the same draws from the same generator
    steps = _cached_logits(model, a[:, :P])                    # and the logits of every new position
    cached = torch.stack([next(steps)] + [steps.send(a[:, i:i + 1]) for i in range(P, 11)], 1)
    with torch.no_grad():
        assert torch.allclose(cached, model(a)[:, P:], atol=1e-5)


def test_check_uniform_bits_512_rejects_the_slips(capsys):
    from course_lib.transformers.igpt import check_uniform_bits_512

    assert check_uniform_bits_512(1764) and check_uniform_bits_512(1764.0)
    for wrong in (784, 9, 196, 7056, 100_352, 196 * math.log(512), None):
        assert not check_uniform_bits_512(wrong), wrong
