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
    c_a, sa_own = m.encode(x_a, "a")
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
