"""Chapter 15's latent denoiser: shapes and errors, the caption read through cross-attention (it changes the
prediction; padding does not), attention maps that are distributions over the caption's tokens, caption dropout,
a training step that learns, the guided DDIM sampler's scale-0 identity, and the latent's PCA map (against
scikit-learn's whitened PCA)."""

from __future__ import annotations

import pytest
import torch

from course_lib.diffusion import NoiseSchedule
from course_lib.guidance.latent import LatentPCA, LatentTextDenoiser, drop_caption, latent_train_step, sample_latents
from course_lib.text import Tokenizer

TOK = Tokenizer.for_captions()
NULL = TOK.encode("")


def tiny(seed: int = 0) -> LatentTextDenoiser:
    torch.manual_seed(seed)
    return LatentTextDenoiser(len(TOK), latent_channels=4, width=32, depth=2, text_dim=32, heads=4).eval()


def captions(*texts, max_len: int = 16):
    return TOK.encode_batch(list(texts), max_len)


def test_shapes_and_clear_errors():
    model = tiny()
    ids, mask = captions("a small dark coat on the left", "large light pants")
    z = torch.randn(2, 4, 7, 7)
    assert model(z, torch.tensor([3, 500]), ids, mask).shape == (2, 4, 7, 7)
    out, maps = model(z, 10, ids, mask, return_attention=True)
    assert out.shape == (2, 4, 7, 7) and len(maps) == 2 and all(m.shape == (2, 4, 49, 16) for m in maps)
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        model(torch.randn(2, 3, 7, 7), 10, ids, mask)
    with pytest.raises(ValueError, match=r"\(2,\) or a scalar"):
        model(z, torch.tensor([1, 2, 3]), ids, mask)
    with pytest.raises(ValueError, match=r"\(2, L\)"):
        model(z, 10, ids[:1], mask[:1])


def test_the_caption_changes_the_prediction_and_padding_does_not():
    torch.set_num_threads(1)
    model = tiny()
    z = torch.randn(1, 4, 7, 7)
    with torch.no_grad():
        coat = model(z, 200, *captions("a dark coat"))
        bag = model(z, 200, *captions("a light bag"))
        coat_long = model(z, 200, *captions("a dark coat", max_len=12))        # fewer pads after the same words
    scale = float(coat.abs().max())
    assert float((coat - bag).abs().max()) > 1e-3 * scale
    torch.testing.assert_close(coat_long, coat, rtol=0, atol=1e-5 * scale)


def test_attention_maps_are_distributions_over_the_captions_tokens():
    model = tiny()
    ids, mask = captions("a photo of a small light sneaker at the top", "boot")
    with torch.no_grad():
        _, maps = model(torch.randn(2, 4, 7, 7), 100, ids, mask, return_attention=True)
    for w in maps:                                                   # (B, heads, 49, L)
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]), rtol=0, atol=1e-5)
        assert float(w.masked_select(~mask[:, None, None, :].expand_as(w)).abs().max()) == 0.0   # no weight on pads


def test_drop_caption_replaces_whole_rows_with_the_empty_caption():
    ids, mask = captions(*(["a small dark coat on the left"] * 4000))
    g = torch.Generator().manual_seed(0)
    new_ids, new_mask = drop_caption(ids, mask, 0.1, *NULL, generator=g)
    dropped = (new_ids == NULL[0]).all(1)
    assert 0.08 < float(dropped.float().mean()) < 0.12
    assert torch.equal(new_mask[dropped], NULL[1].expand(int(dropped.sum()), -1))
    assert torch.equal(new_ids[~dropped], ids[~dropped]) and torch.equal(new_mask[~dropped], mask[~dropped])
    again = drop_caption(ids, mask, 0.1, *NULL, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], new_ids)
    with pytest.raises(ValueError, match=r"null_ids, null_mask \(L,\)"):
        drop_caption(ids, mask, 0.1, NULL[0][:5], NULL[1][:5])
    with pytest.raises(ValueError, match="probability"):
        drop_caption(ids, mask, 1.5, *NULL)


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    torch.set_num_threads(1)
    model = tiny().train()
    schedule = NoiseSchedule(100)
    ids, mask = captions("a dark coat", "a light bag", "small pants on the left", "a large light dress")
    z0 = torch.randn(4, 4, 7, 7)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = [float(latent_train_step(model, opt, schedule, z0, ids, mask, NULL, torch.Generator().manual_seed(k % 3)))
              for k in range(60)]
    assert sum(losses[-6:]) < 0.7 * sum(losses[:6])


def test_sampler_shapes_and_scale_0_ignores_the_caption():
    torch.set_num_threads(1)
    model, schedule = tiny(), NoiseSchedule(20)
    ids, mask = captions("a dark coat", "a light bag", "boot")
    nulls = (NULL[0].expand(3, -1), NULL[1].expand(3, -1))
    z = sample_latents(model, schedule, ids, mask, NULL, 3.0, (4, 7, 7), steps=5, seed=1, batch_size=2)
    assert z.shape == (3, 4, 7, 7) and torch.isfinite(z).all()
    torch.testing.assert_close(sample_latents(model, schedule, ids, mask, NULL, 0.0, (4, 7, 7), steps=5, seed=1),
                               sample_latents(model, schedule, *nulls, NULL, 1.0, (4, 7, 7), steps=5, seed=1),
                               rtol=0, atol=1e-5)
    assert not torch.allclose(z, sample_latents(model, schedule, ids, mask, NULL, 0.0, (4, 7, 7), steps=5, seed=1),
                              atol=1e-3)


def test_decode_latents_snaps_to_the_codebook_like_the_tokenizer():
    from course_lib.data import fashion_mnist
    from course_lib.guidance.latent import decode_latents
    from course_lib.vq import load_tokenizer

    torch.set_num_threads(1)
    tok = load_tokenizer(device="cpu")
    x = fashion_mnist("test").images[:6]
    with torch.no_grad():
        z = tok.encode(x)
        torch.testing.assert_close(decode_latents(tok, z), tok.decode_tokens(tok.encode_tokens(x)), rtol=0, atol=1e-6)
        torch.testing.assert_close(decode_latents(tok, z, quantize=False), tok.decode(z), rtol=0, atol=1e-6)
    assert not torch.allclose(decode_latents(tok, z), decode_latents(tok, z, quantize=False), atol=1e-3)
    with pytest.raises(ValueError, match=r"\(N, 16, 7, 7\)"):
        decode_latents(tok, torch.randn(2, 4, 7, 7))


def test_ldm_text_is_registered_with_a_caption_vocabulary_denoiser():
    from course_lib import shipping

    model, train = shipping.registry()["ldm_text"]()
    assert isinstance(model, LatentTextDenoiser) and model.latent_channels == 2 and callable(train)
    assert isinstance(model.pca, LatentPCA) and model.pca.channels == 16
    assert {"pca.mean", "pca.components", "pca.variances"} <= set(model.state_dict())     # saved with the weights
    assert model.text.vocab_size == len(TOK)


def test_latent_pca_equals_sklearns_whitened_pca_and_inverts_on_its_span():
    from sklearn.decomposition import PCA

    g = torch.Generator().manual_seed(0)
    mix = torch.randn(6, 6, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1.5, 0.5, 0.1, 0.01, 0.001]).double()
    z = (torch.randn(200, 5, 5, 6, generator=g, dtype=torch.float64) @ mix + 2.0).permute(0, 3, 1, 2)   # (200, 6, 5, 5)
    pca = LatentPCA(6, 3).double().fit(z)
    flat = z.permute(0, 2, 3, 1).reshape(-1, 6).numpy()
    ref = PCA(n_components=3, whiten=True).fit(flat)
    ours = pca.encode(z).permute(0, 2, 3, 1).reshape(-1, 3)
    theirs = torch.from_numpy(ref.transform(flat))
    signs = torch.sign((ours * theirs).sum(0))                         # an axis's sign is a convention
    torch.testing.assert_close(ours, theirs * signs, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(pca.explained()[:3], torch.from_numpy(ref.explained_variance_ratio_), rtol=1e-6, atol=1e-9)
    assert torch.allclose(pca.encode(z).std((0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-3)
    back = pca.decode(pca.encode(z))                                   # the projection onto the top 3 axes
    torch.testing.assert_close(back.permute(0, 2, 3, 1).reshape(-1, 6), torch.from_numpy(ref.inverse_transform(ref.transform(flat))))
    full = LatentPCA(6, 6).double().fit(z)
    torch.testing.assert_close(full.decode(full.encode(z)), z)         # all axes kept: the identity


def test_latent_pca_rejects_bad_shapes():
    pca = LatentPCA(16, 2)
    with pytest.raises(ValueError, match=r"\(B, 16, H, W\)"):
        pca.encode(torch.randn(2, 4, 7, 7))
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        pca.decode(torch.randn(2, 16, 7, 7))
    with pytest.raises(ValueError, match="1 <= k <= channels=16"):
        LatentPCA(16, 17)
