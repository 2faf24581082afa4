"""course_lib.gans image GANs (notebook 10): DCGAN, Progressive GAN and StyleGAN kernels against oracles."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.gans import dcgan, progan, stylegan, train
from tests.tolerance import assert_close_scaled


@pytest.fixture(autouse=True)
def _deterministic(one_thread):
    torch.manual_seed(0)


# ------------------------------------------------------------------------------------------ kernels vs oracles

@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (5, 16, 7, 7), (1, 1, 3, 3)])
def test_pixel_norm_is_normalize_times_sqrt_c(shape):
    x = torch.randn(shape, dtype=torch.float64)
    C = shape[1]
    expected = F.normalize(x, dim=1) * math.sqrt(C)             # x / ||x|| * sqrt(C) = x / rms(x)
    torch.testing.assert_close(progan.pixel_norm(x, eps=0.0), expected)
    rms = progan.pixel_norm(x).square().mean(dim=1)
    torch.testing.assert_close(rms, torch.ones_like(rms), rtol=1e-6, atol=0)


@pytest.mark.parametrize("B", [2, 5, 8])
def test_minibatch_stddev_appends_the_mean_std(B):
    x = torch.randn(B, 3, 4, 4, dtype=torch.float64) * torch.arange(1, 4, dtype=torch.float64)[None, :, None, None]
    out = progan.minibatch_stddev(x, eps=0.0)
    expected = float(x.numpy().std(axis=0).mean())              # numpy: population std over the batch
    assert out.shape == (B, 4, 4, 4)
    torch.testing.assert_close(out[:, :3], x)
    torch.testing.assert_close(out[:, 3], torch.full((B, 4, 4), expected, dtype=torch.float64))


@pytest.mark.parametrize("shape", [(2, 3, 5, 5), (4, 8, 7, 7)])
def test_adain_is_instance_norm_with_styles(shape):
    x = torch.randn(shape, dtype=torch.float64) * 3 + 1
    B, C = shape[:2]
    y_s, y_b = torch.randn(B, C, dtype=torch.float64), torch.randn(B, C, dtype=torch.float64)
    expected = F.instance_norm(x, eps=1e-5) * y_s[:, :, None, None] + y_b[:, :, None, None]
    torch.testing.assert_close(stylegan.adain(x, y_s, y_b), expected)
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        stylegan.adain(x, y_s[:, :-1], y_b)


def test_equalized_layers_equal_plain_layers_with_scaled_weights():
    conv = progan.EqualizedConv2d(3, 5, 3)
    ref = torch.nn.Conv2d(3, 5, 3, padding=1)
    with torch.no_grad():
        ref.weight.copy_(conv.weight * math.sqrt(2) / math.sqrt(3 * 9))
        ref.bias.copy_(conv.bias)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        assert_close_scaled(conv(x), ref(x), F.conv2d(x.abs(), ref.weight.abs(), ref.bias.abs(), padding=1))  # sum |terms|
    lin = progan.EqualizedLinear(7, 4, lr_mul=0.01, bias_init=1.0)
    ref_lin = torch.nn.Linear(7, 4)
    with torch.no_grad():
        ref_lin.weight.copy_(lin.weight * math.sqrt(2) / math.sqrt(7) * 0.01)
        ref_lin.bias.copy_(lin.bias * 0.01)
    v = torch.randn(3, 7)
    with torch.no_grad():
        assert_close_scaled(lin(v), ref_lin(v), F.linear(v.abs(), ref_lin.weight.abs(), ref_lin.bias.abs()))
    torch.testing.assert_close(ref_lin.bias, torch.ones(4))     # the bias starts at bias_init, whatever lr_mul
    assert float(conv.weight.detach().std()) == pytest.approx(1.0, abs=0.3)  # stored weights are N(0, 1)


# ------------------------------------------------------------------------------------------ Progressive GAN

def test_progan_shapes_at_every_resolution():
    G, D = progan.ProGenerator(z_dim=16, channels=(16, 8, 4)), progan.ProDiscriminator(channels=(16, 8, 4))
    z = torch.randn(3, 16)
    for res in progan.RESOLUTIONS:
        for alpha in (0.0, 0.5, 1.0):
            x = G(z, res=res, alpha=alpha)
            assert x.shape == (3, 1, res, res)
            assert D(x, res=res, alpha=alpha).shape == (3,)
    with pytest.raises(ValueError, match="res must be one of"):
        G(z, res=21)
    with pytest.raises(ValueError, match=r"\(B, 1, 14, 14\)"):
        D(torch.zeros(3, 1, 28, 28), res=14)


def test_fade_in_ends_are_the_old_and_the_new_network():
    G = progan.ProGenerator(z_dim=16, channels=(16, 8, 4)).double()
    z = torch.randn(4, 16, dtype=torch.float64)
    old = G(z, res=14, alpha=1.0)
    torch.testing.assert_close(G(z, res=28, alpha=0.0), progan.upsample(old))   # alpha = 0: the 14-px net, upsampled
    new = G(z, res=28, alpha=1.0)
    torch.testing.assert_close(G(z, res=28, alpha=0.25), 0.75 * progan.upsample(old) + 0.25 * new)
    D = progan.ProDiscriminator(channels=(16, 8, 4)).double()
    x = torch.randn(4, 1, 28, 28, dtype=torch.float64)
    # alpha = 0: D at 28 px only sees the image through the 14-px path
    torch.testing.assert_close(D(x, res=28, alpha=0.0), D(progan.downsample(x), res=14, alpha=1.0))


def test_real_images_are_faded_like_the_generator():
    x = torch.rand(2, 1, 28, 28)
    assert progan.real_at(x, 7).shape == (2, 1, 7, 7)
    torch.testing.assert_close(progan.real_at(x, 28, alpha=1.0), x)
    torch.testing.assert_close(progan.real_at(x, 28, alpha=0.0), progan.upsample(progan.downsample(x)))


def test_growth_schedule():
    cfg = train.GANTrainConfig(steps=50, grow=(10, 10, 10, 10, 10))
    assert train.growth(cfg, 0) == {"res": 7, "alpha": 1.0}
    assert train.growth(cfg, 10) == {"res": 14, "alpha": pytest.approx(0.1)}
    assert train.growth(cfg, 19) == {"res": 14, "alpha": 1.0}
    assert train.growth(cfg, 25) == {"res": 14, "alpha": 1.0}
    assert train.growth(cfg, 34) == {"res": 28, "alpha": pytest.approx(0.5)}
    assert train.growth(cfg, 49) == {"res": 28, "alpha": 1.0}
    assert train.growth(cfg, 99) == {"res": 28, "alpha": 1.0}       # past the end: the last stage
    assert train.growth(train.GANTrainConfig(steps=5), 3) == {}
    with pytest.raises(ValueError, match="5 step counts"):
        train.growth(dataclasses.replace(cfg, grow=(1, 2)), 0)


# ------------------------------------------------------------------------------------------ StyleGAN

def small_style() -> stylegan.StyleGenerator:
    return stylegan.StyleGenerator(z_dim=16, w_dim=16, channels=(16, 8, 4), mapping_layers=2).double()


def fixed_noise(B: int) -> list[torch.Tensor]:
    return [torch.randn(B, 1, s, s, dtype=torch.float64) for s in (7, 7, 14, 14, 28, 28)]


def test_style_mixing_ends_and_truncation():
    G = small_style().eval()
    z, z2, noise = torch.randn(3, 16, dtype=torch.float64), torch.randn(3, 16, dtype=torch.float64), fixed_noise(3)
    plain = G(z, noise=noise)
    assert plain.shape == (3, 1, 28, 28)
    torch.testing.assert_close(G(z, z2=z2, crossover=G.num_layers, noise=noise), plain)   # no layer takes w2
    torch.testing.assert_close(G(z, z2=z2, crossover=0, noise=noise), G(z2, noise=noise))  # every layer takes w2
    mixed = G(z, z2=z2, crossover=3, noise=noise)
    assert not torch.allclose(mixed, plain) and not torch.allclose(mixed, G(z2, noise=noise))
    with torch.no_grad():
        G.w_avg.normal_()
    truncated = G(z, psi=0.0, noise=[n[:1].expand_as(n) for n in noise])      # psi = 0: every sample is w_avg's
    torch.testing.assert_close(truncated, truncated[:1].expand_as(truncated))
    with pytest.raises(ValueError, match="crossover"):
        G(z, z2=z2)


def test_noise_changes_only_the_details_it_is_scaled_by():
    G = small_style().eval()
    z = torch.randn(2, 16, dtype=torch.float64)
    torch.testing.assert_close(G(z, noise=fixed_noise(2)), G(z, noise=fixed_noise(2)))  # B starts at 0
    with torch.no_grad():
        G.layers[4].noise_strength.fill_(0.5)
    assert not torch.allclose(G(z, noise=fixed_noise(2)), G(z, noise=fixed_noise(2)))


def test_w_avg_is_tracked_in_training_only():
    G = small_style()
    z = torch.randn(64, 16, dtype=torch.float64)
    G.eval()
    G.map(z)
    assert float(G.w_avg.abs().max()) == 0
    G.train()
    w = G.map(z)
    torch.testing.assert_close(G.w_avg, (1 - G.w_avg_beta) * w.mean(0))


# ------------------------------------------------------------------------------------------ DCGAN and training

def test_dcgan_shapes_and_bad_input():
    G, D = dcgan.DCGANGenerator(z_dim=8, width=8), dcgan.DCGANDiscriminator(width=8)
    x = G(torch.randn(4, 8))
    assert x.shape == (4, 1, 28, 28) and float(x.abs().max()) <= 1
    assert D(x).shape == (4,)
    with pytest.raises(ValueError, match=r"\(B, 8\)"):
        G(torch.randn(4, 9))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        D(torch.zeros(4, 28, 28))
    u = torch.rand(10)
    torch.testing.assert_close(dcgan.to_unit(dcgan.to_gan(u)), u)


def test_r1_term_matches_its_definition():
    G, D = dcgan.DCGANGenerator(z_dim=8, width=8).double(), progan.ProDiscriminator(channels=(8, 4, 4)).double()
    real, z = torch.rand(4, 1, 28, 28, dtype=torch.float64) * 2 - 1, torch.randn(4, 8, dtype=torch.float64)
    G.eval()
    with torch.no_grad():
        fake = G(z)
    x = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x)
    from course_lib.gans.toy import d_loss
    expected = d_loss(D(real), D(fake)) + 5.0 * grad.square().sum(dim=(1, 2, 3)).mean()   # gamma / 2 = 5
    opt = torch.optim.SGD(D.parameters(), lr=0.0)
    assert_close_scaled(train.d_step(G, D, opt, real, z, r1_gamma=10.0), expected, expected, ulps=256)  # terms >= 0


def test_steps_update_only_their_network_and_d_learns():
    G, D = dcgan.DCGANGenerator(z_dim=8, width=8), dcgan.DCGANDiscriminator(width=8)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), 1e-3), torch.optim.Adam(D.parameters(), 1e-3)
    real, z = torch.rand(16, 1, 28, 28) * 2 - 1, torch.randn(16, 8)
    d_before = [p.detach().clone() for p in D.parameters()]
    train.g_step(G, D, opt_g, z)
    assert all(torch.equal(a, b) for a, b in zip(d_before, D.parameters()))
    assert all(p.requires_grad for p in D.parameters())
    g_before = [p.detach().clone() for p in G.parameters()]
    losses = [float(train.d_step(G, D, opt_d, real, z)) for _ in range(20)]
    assert all(torch.equal(a, b) for a, b in zip(g_before, G.parameters()))
    assert losses[-1] < 0.5 * losses[0]                        # D learns to tell this batch from G's


def test_ema_update():
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    expected = [0.9 * p.detach() + 0.1 * q.detach() for p, q in zip(a.parameters(), b.parameters())]
    train.ema_update(a, b, decay=0.9)
    for p, e in zip(a.parameters(), expected):
        torch.testing.assert_close(p.detach(), e)


def killed_during_step_5(monkeypatch, start_run) -> None:
    """Run ``start_run()`` with the EMA update raising KeyboardInterrupt at its 5th call, as a kill would."""
    calls, ema = [], train.ema_update

    def dies_at_step_5(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        ema(*args)

    monkeypatch.setattr(train, "ema_update", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        start_run()
    monkeypatch.setattr(train, "ema_update", ema)


def test_train_gan_resumes_to_the_same_weights(tmp_path, monkeypatch):
    import course_lib.data as data

    images = torch.rand(64, 1, 28, 28)
    monkeypatch.setattr(data, "fashion_mnist", lambda split="train": data.ImageDataset(images, torch.zeros(64)))
    cfg = train.GANTrainConfig(steps=6, batch_size=8, r1_gamma=1.0, r1_every=2, state_every=3, grow=(1, 1, 1, 1, 2))

    def run(state):
        torch.manual_seed(0)
        G, D = progan.ProGenerator(z_dim=8, channels=(8, 4, 4)), progan.ProDiscriminator(channels=(8, 4, 4))
        out = train.train_gan(G, D, cfg, state=state, progress=False)
        return G, out

    G_full, full = run(tmp_path / "full.safetensors")
    state = tmp_path / "part.safetensors"
    killed_during_step_5(monkeypatch, lambda: run(state))     # after its save at step 3
    G_resumed, resumed = run(state)
    assert resumed["loss_d"] == full["loss_d"]
    for a, b in zip(G_full.state_dict().values(), G_resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_train_gan_seconds_count_the_interrupted_run_too(tmp_path, monkeypatch):
    import types

    import course_lib.data as data

    images = torch.rand(64, 1, 28, 28)
    monkeypatch.setattr(data, "fashion_mnist", lambda split="train": data.ImageDataset(images, torch.zeros(64)))
    cfg = train.GANTrainConfig(steps=6, batch_size=8, state_every=3)
    clock = iter(range(1000))                     # a fake clock: each reading is one second after the last
    monkeypatch.setattr(train, "time", types.SimpleNamespace(perf_counter=lambda: float(next(clock))))

    def run(state):
        G, D = dcgan.DCGANGenerator(z_dim=8, width=8), dcgan.DCGANDiscriminator(width=8)
        return train.train_gan(G, D, cfg, state=state, progress=False)["seconds"]

    uninterrupted = run(tmp_path / "full.safetensors")          # readings: start, save 3, save 6, end
    killed_during_step_5(monkeypatch, lambda: run(tmp_path / "part.safetensors"))  # start, save 3 (1 s), killed
    assert run(tmp_path / "part.safetensors") == uninterrupted == 3.0   # 1 s before the kill + 2 s after
