"""course_lib.translation (notebook 11) and its data: pix2pix and MUNIT against their definitions and oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib import data
from course_lib.translation import munit, pix2pix


@pytest.fixture(autouse=True)
def _deterministic(one_thread):
    torch.manual_seed(0)


# ------------------------------------------------------------------------------------------ data

def test_edge_maps_are_scikit_images_canny():
    from skimage.feature import canny

    g = torch.Generator().manual_seed(0)
    images = torch.zeros(3, 1, 28, 28)
    images[:, :, 8:20, 6:22] = torch.rand(3, 1, 1, 1, generator=g) * 0.5 + 0.5     # bright rectangles
    images += 0.05 * torch.rand(3, 1, 28, 28, generator=g)
    edges = data.edge_maps(images)
    assert edges.shape == (3, 1, 28, 28) and edges.dtype == torch.float32
    for i in range(3):
        expected = canny(images[i, 0].double().numpy(), sigma=1.0)
        np.testing.assert_array_equal(edges[i, 0].numpy().astype(bool), expected)
    assert 0 < float(edges.mean()) < 0.3                           # thin lines, not filled shapes
    assert float(edges[:, :, 12:16, 12:16].sum()) == 0             # nothing inside the flat rectangle
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        data.edge_maps(images[:, 0])
    assert data.edge_maps(images[:0]).shape == (0, 1, 28, 28)


def test_unpaired_domains_never_share_an_image(monkeypatch):
    images = torch.rand(40, 1, 28, 28)
    images[:, 0, 0, 0] = torch.arange(40) / 40                      # a tag per image (edges lose it)
    labels = torch.randperm(40, generator=torch.Generator().manual_seed(5)) % 10
    monkeypatch.setattr(data, "fashion_mnist", lambda split="train": data.ImageDataset(images, labels))
    edges, edge_labels, items, item_labels = data.unpaired_domains(20, seed=1)
    assert edges.shape == items.shape == (20, 1, 28, 28)
    item_idx = (items[:, 0, 0, 0] * 40).round().long()
    assert len(set(item_idx.tolist())) == 20 and torch.equal(item_labels, labels[item_idx])
    others = torch.tensor(sorted(set(range(40)) - set(item_idx.tolist())))
    # the edge domain is made of exactly the 20 other images: its labels are theirs
    assert sorted(edge_labels.tolist()) == sorted(labels[others].tolist())
    assert not torch.equal(data.unpaired_domains(20, seed=2)[3], item_labels)          # seeded
    with pytest.raises(ValueError, match="images per domain"):
        data.unpaired_domains(21)


# ------------------------------------------------------------------------------------------ pix2pix

def test_unet_shapes_and_its_skips_carry_the_input():
    for skips in (True, False):
        G = pix2pix.UNet(width=8, skips=skips).eval()
        x = torch.rand(2, 1, 28, 28) * 2 - 1
        assert G(x).shape == (2, 1, 28, 28)
    G = pix2pix.UNet(width=8).eval()
    x = torch.zeros(1, 1, 28, 28, requires_grad=True)
    G(x)[0, 0, 3, 3].backward()
    # with skips an output pixel near the corner depends on input pixels through e1 -> d1 directly
    assert float(x.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        G(torch.zeros(2, 28, 28))


def test_patchgan_receptive_field_matches_the_gradient_support():
    from course_lib.inside.top_activations import receptive_field

    D = pix2pix.PatchDiscriminator(width=8, in_channels=1).eval()
    assert D(torch.zeros(2, 1, 28, 28)).shape == (2, 6, 6)
    r = pix2pix.patch_receptive_field(pix2pix.conv_layers(D))
    assert r == 22
    y0, y1, x0, x1 = receptive_field(D, D.net[5], (1, 1, 28, 28), unit=(0, 3, 3))  # an interior unit
    assert (y1 - y0, x1 - x0) == (r, r)
    assert pix2pix.patch_receptive_field([(3, 1)] * 3) == 7                          # three 3x3 convs: 7x7
    assert pix2pix.patch_receptive_field([(2, 2)] * 3) == 8                          # three 2x2 pools: 8x8
    with pytest.raises(ValueError, match="positive"):
        pix2pix.patch_receptive_field([(0, 1)])


def test_pix2pix_losses_are_eq_4():
    G, D = pix2pix.UNet(width=8), pix2pix.PatchDiscriminator(width=8)
    x, y = torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1
    y_fake = G(x)
    terms = pix2pix.pix2pix_g_loss(D, x, y_fake, y, lam=100.0)
    logits = D(x, y_fake)
    torch.testing.assert_close(terms["adv"], F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)))
    torch.testing.assert_close(terms["l1"], (y - y_fake).abs().mean())
    torch.testing.assert_close(terms["total"], terms["adv"] + 100.0 * terms["l1"])
    real, fake = D(x, y), D(x, y_fake.detach())
    expected = 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                      + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    torch.testing.assert_close(pix2pix.pix2pix_d_loss(D, x, y_fake, y), expected)


def test_l1_only_training_step_reduces_the_l1_loss():
    G = pix2pix.UNet(width=8)
    opt = torch.optim.Adam(G.parameters(), lr=2e-3)
    x, y = torch.rand(8, 1, 28, 28) * 2 - 1, torch.rand(8, 1, 28, 28).round() * 2 - 1
    losses = []
    for _ in range(30):
        loss = F.l1_loss(G(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


# ------------------------------------------------------------------------------------------ MUNIT

def small_munit() -> munit.MUNIT:
    return munit.MUNIT(style_dim=4, channels=16)


def test_munit_shapes_and_style_changes_the_output():
    m = small_munit().eval()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    c, s = m.encode(x, "a")
    assert c.shape == (3, 16, 7, 7) and s.shape == (3, 4)
    g = torch.Generator().manual_seed(0)
    y1, y2 = m.translate(x, "a", "b", generator=g), m.translate(x, "a", "b", generator=g)
    assert y1.shape == (3, 1, 28, 28)
    assert not torch.allclose(y1, y2)                               # two sampled styles, two outputs
    s_fixed = torch.randn(3, 4)
    torch.testing.assert_close(m.translate(x, "a", "b", s=s_fixed), m.dec["b"](c, s_fixed))
    with pytest.raises(ValueError, match=r"content \(B, 16, h, w\)"):
        m.dec["b"](c[:, :8], s_fixed)


def test_adain_resblock_is_instance_norm_scaled_and_shifted():
    block = munit.ResBlock(6).double()
    x = torch.randn(2, 6, 7, 7, dtype=torch.float64)
    ones, zeros = torch.ones(2, 6, dtype=torch.float64), torch.zeros(2, 6, dtype=torch.float64)
    # scale 1, bias 0: AdaIN is instance norm (with the same eps)
    torch.testing.assert_close(block(x, (ones, zeros, ones, zeros)), block(x))
    s, b = torch.randn(2, 6, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    h = F.relu(F.instance_norm(block.conv1(x)) * s[:, :, None, None] + b[:, :, None, None])
    expected = x + F.instance_norm(block.conv2(h)) * s[:, :, None, None] + b[:, :, None, None]
    torch.testing.assert_close(block(x, (s, b, s, b)), expected)


def test_content_code_ignores_a_global_contrast_change():
    # instance norm after the first conv: an affine change of the whole image (a "style") leaves the
    # normalized first-layer features, and so the content code, nearly unchanged; the style code moves
    m = small_munit().eval()
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    c1, s1 = m.encode(x, "a")
    c2, s2 = m.encode(0.5 * x, "a")
    assert float((c1 - c2).abs().max()) < 1e-3 * float(c1.abs().max()) + 1e-4
    assert float((s1 - s2).abs().max()) > 1e-3


def test_munit_losses_are_the_papers_terms_and_training_lowers_them():
    m = small_munit()
    discs = torch.nn.ModuleDict({d: pix2pix.PatchDiscriminator(width=8, in_channels=1) for d in "ab"})
    x_a, x_b = torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1
    s_a, s_b = torch.randn(4, 4), torch.randn(4, 4)
    terms = munit.munit_losses(m, discs, x_a, x_b, s_a, s_b)
    c_a, _ = m.encode(x_a, "a")
    torch.testing.assert_close(terms["x_ab"], m.dec["b"](c_a, s_b).detach())
    expected_total = terms["adv"] + 10 * terms["recon_x"] + terms["recon_c"] + terms["recon_s"]
    torch.testing.assert_close(terms["total"], expected_total)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    first = float(terms["recon_x"])
    for _ in range(15):
        t = munit.munit_losses(m, discs, x_a, x_b, s_a, s_b)
        opt.zero_grad(); (10 * t["recon_x"] + t["recon_c"] + t["recon_s"]).backward(); opt.step()
    assert float(munit.munit_losses(m, discs, x_a, x_b, s_a, s_b)["recon_x"]) < 0.8 * first
    d = munit.munit_d_loss(discs, x_a, x_b, terms["x_ba"], terms["x_ab"])
    assert d.shape == () and float(d) > 0


# ------------------------------------------------------------------------------------------ training (notebook 11)

from dataclasses import replace

from course_lib.translation import shipped, train


def test_pix2pix_step_is_a_d_step_then_a_g_step_against_the_updated_d():
    torch.manual_seed(0)
    G, D = pix2pix.UNet(width=8), pix2pix.PatchDiscriminator(width=8)
    G2, D2 = pix2pix.UNet(width=8), pix2pix.PatchDiscriminator(width=8)
    G2.load_state_dict(G.state_dict()); D2.load_state_dict(D.state_dict())
    sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.1)
    x, y = torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1
    out = train.pix2pix_step(G, D, sgd(G), sgd(D), x, y, lam=10.0)
    # by hand: D's loss on G's output, D's step; then G's loss against the *updated* D, G's step
    y_fake = G2(x)
    loss_d = pix2pix.pix2pix_d_loss(D2, x, y_fake, y)
    opt_d2, opt_g2 = sgd(D2), sgd(G2)
    opt_d2.zero_grad(); loss_d.backward(); opt_d2.step()
    terms = pix2pix.pix2pix_g_loss(D2, x, y_fake, y, 10.0)
    opt_g2.zero_grad(); terms["total"].backward(); opt_g2.step()
    torch.testing.assert_close(out["d"], loss_d.detach())
    torch.testing.assert_close(out["l1"], terms["l1"].detach())
    for a, b in zip(list(G.parameters()) + list(D.parameters()), list(G2.parameters()) + list(D2.parameters())):
        torch.testing.assert_close(a, b)
    assert all(p.requires_grad for p in D.parameters())               # D is trainable again after G's step


def test_l1_step_is_one_step_on_the_l1_loss():
    G = pix2pix.UNet(width=8)
    x, y = torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1
    before = F.l1_loss(G(x), y).detach()
    out = train.l1_step(G, torch.optim.Adam(G.parameters(), lr=1e-3), x, y)
    torch.testing.assert_close(out["l1"], before)
    assert float(F.l1_loss(G(x), y)) < float(before)


def test_munit_step_uses_fresh_prior_styles_and_updates_g_and_both_discriminators():
    m = small_munit()
    discs = torch.nn.ModuleDict({d: pix2pix.PatchDiscriminator(width=8, in_channels=1) for d in "ab"})
    x_a, x_b = torch.rand(4, 1, 28, 28) * 2 - 1, torch.rand(4, 1, 28, 28) * 2 - 1
    s_a, s_b = torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(3))
    expected = munit.munit_losses(m, discs, x_a, x_b, s_a, s_b)
    g0 = [p.detach().clone() for p in m.parameters()]
    d0 = {d: [p.detach().clone() for p in discs[d].parameters()] for d in "ab"}
    out = train.munit_step(m, discs, torch.optim.Adam(m.parameters(), 1e-3), torch.optim.Adam(discs.parameters(), 1e-3),
                           x_a, x_b, generator=torch.Generator().manual_seed(3))
    for k in ("recon_x", "recon_c", "recon_s", "adv"):
        torch.testing.assert_close(out[k], expected[k].detach())
    assert float(out["d"]) > 0
    assert any(not torch.equal(a, b) for a, b in zip(g0, m.parameters()))
    for d in "ab":
        assert any(not torch.equal(a, b) for a, b in zip(d0[d], discs[d].parameters()))


def test_translate_gives_unit_range_images_in_eval_mode_and_restores_the_mode():
    G = pix2pix.UNet(width=8).train()
    edges = (torch.rand(7, 1, 28, 28) > 0.8).float()
    y1, y2 = train.translate(G, edges, batch_size=3), train.translate(G, edges, batch_size=7)
    assert y1.shape == (7, 1, 28, 28) and 0 <= float(y1.min()) and float(y1.max()) <= 1
    torch.testing.assert_close(y1, y2)                               # eval mode: batch norm does not see the batch
    assert G.training
    m = small_munit()
    s = torch.randn(7, 4)
    out = train.munit_translate(m, edges, s=s, batch_size=3)
    from course_lib.gans.dcgan import to_gan, to_unit
    torch.testing.assert_close(out, to_unit(m.eval().translate(to_gan(edges), "a", "b", s=s)))
    assert not torch.equal(train.munit_translate(m, edges, seed=0), train.munit_translate(m, edges, seed=1))


def _tiny_cfg(kind: str) -> train.TranslationTrainConfig:
    return train.TranslationTrainConfig(kind, steps=6, batch_size=4, width=8, channels=8, style_dim=4, state_every=3)


@pytest.mark.parametrize("kind", ["pix2pix", "l1", "munit"])
def test_train_translation_resumes_to_the_same_weights(kind, tmp_path, monkeypatch):
    a, b = torch.rand(32, 1, 28, 28) * 2 - 1, torch.rand(32, 1, 28, 28) * 2 - 1
    monkeypatch.setattr(train, "training_data", lambda cfg: (a, b))
    cfg = _tiny_cfg(kind)
    step_name = {"pix2pix": "pix2pix_step", "l1": "l1_step", "munit": "munit_step"}[kind]

    def run(state):
        torch.manual_seed(0)
        model = train.build_model(cfg)
        return model, train.train_translation(model, cfg, state=state, progress=False)

    full_model, full = run(tmp_path / "full.safetensors")
    state = tmp_path / "part.safetensors"
    calls, step = [], getattr(train, step_name)

    def dies_at_step_5(*args, **kw):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return step(*args, **kw)

    monkeypatch.setattr(train, step_name, dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        run(state)                                                  # saved after step 3, killed in step 5
    monkeypatch.setattr(train, step_name, step)
    resumed_model, resumed = run(state)
    assert resumed["steps"] == 6 and resumed[f"loss_{'l1' if kind != 'munit' else 'recon_x'}"] == \
        full[f"loss_{'l1' if kind != 'munit' else 'recon_x'}"]
    for x, y in zip(full_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(x, y)


def test_train_translation_seconds_count_the_interrupted_run_too(tmp_path, monkeypatch):
    import types

    a = torch.rand(32, 1, 28, 28) * 2 - 1
    monkeypatch.setattr(train, "training_data", lambda cfg: (a, a))
    clock = iter(range(1000))                     # a fake clock: each reading is one second after the last
    monkeypatch.setattr(train, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))
    cfg = _tiny_cfg("l1")

    def run(state):
        return train.train_translation(train.build_model(cfg), cfg, state=state, progress=False)["seconds"]

    uninterrupted = run(tmp_path / "full.safetensors")          # readings: start, save 3, save 6, end
    calls, step = [], train.l1_step

    def dies_at_step_5(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return step(*args)

    monkeypatch.setattr(train, "l1_step", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "part.safetensors")                      # start, save 3 (1 s), killed
    monkeypatch.setattr(train, "l1_step", step)
    assert run(tmp_path / "part.safetensors") == uninterrupted == 3.0


def test_shipped_unets_differ_only_in_the_loss_and_fallbacks_are_shorter():
    from course_lib import shipping

    unets = {n: c for n, c in shipped.SHIPPED.items() if c.kind != "munit"}
    assert set(unets) == {"p2p_l1only", "p2p_lambda1", "p2p_lambda10", "p2p_lambda100"}
    base = replace(unets["p2p_lambda100"], kind="pix2pix", lam=0.0)
    assert all(replace(c, kind="pix2pix", lam=0.0) == base for c in unets.values())          # same run but the loss
    assert sorted(c.lam for n, c in unets.items() if c.kind == "pix2pix") == [1.0, 10.0, 100.0]
    assert set(shipped.SHIPPED) <= set(shipping.registry())
    for name, spec in shipped.SHIPPED.items():
        smoke, n_eval = shipped.fallback_config(name, "smoke")
        assert smoke.steps < spec.steps and smoke.n_train <= 200 and n_eval <= 200
        assert replace(smoke, steps=spec.steps, n_train=spec.n_train) == spec
        assert shipped.fallback_config(name, "gpu")[0] == spec
        assert isinstance(shipped.build_translator(name), munit.MUNIT if spec.kind == "munit" else pix2pix.UNet)
    with pytest.raises(ValueError, match="unknown translation model"):
        shipped.build_translator("p2p_lambda1000")
    with pytest.raises(ValueError, match="unknown kind"):
        train.build_model(replace(base, kind="cyclegan"))


def test_notebook_config_profiles_grow():
    from course_lib.translation.config import translation_config

    smoke, cpu, gpu = (translation_config(p) for p in ("smoke", "cpu", "gpu"))
    for field in ("steps", "munit_steps", "n_train", "n_test", "n_div"):
        assert getattr(smoke, field) < getattr(cpu, field) <= getattr(gpu, field), field
    assert min(c.n_styles for c in (smoke, cpu, gpu)) >= 2              # pairwise distances need two outputs
    assert translation_config("smoke", steps=3).steps == 3
