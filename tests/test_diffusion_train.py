"""course_lib.diffusion.train and .shipped: Algorithm 1's loop (resumable), the two samplers, the checkpoint."""

import pytest
import torch

import course_lib.diffusion.train as dtrain
from course_lib.diffusion import NoiseSchedule, UNet


def tiny_unet() -> UNet:
    return UNet(channels=(8, 16), attention=(False, True), heads=2)


@pytest.fixture
def fake_fashion(monkeypatch):
    from course_lib import data

    images = torch.rand(64, 1, 28, 28)
    monkeypatch.setattr(data, "fashion_mnist", lambda split="train": data.ImageDataset(images, torch.zeros(64)))


def test_train_step_is_algorithm_1_and_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model, schedule = tiny_unet(), NoiseSchedule(50)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x0 = torch.rand(16, 1, 28, 28) * 2 - 1
    # the returned loss is L_simple at the drawn t and eps, before the update
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    t = torch.randint(0, 50, (16,), generator=g2)
    eps = torch.randn(x0.shape, generator=g2)
    with torch.no_grad():
        expected = (model(schedule.q_sample(x0, t, eps), t) - eps).pow(2).mean()
    first = dtrain.train_step(model, opt, schedule, x0, g1)
    torch.testing.assert_close(first, expected)
    # the same t and eps every step (one seed): the loss on that fixed problem must fall
    losses = [float(dtrain.train_step(model, opt, schedule, x0, torch.Generator().manual_seed(7))) for _ in range(40)]
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])


def test_train_ddpm_resumes_to_the_same_weights(tmp_path, monkeypatch, fake_fashion):
    cfg = dtrain.DDPMTrainConfig(steps=6, batch_size=8, T=50, n_train=64, warmup=3, state_every=3)

    def run(state):
        torch.manual_seed(0)
        model = tiny_unet()
        return model, dtrain.train_ddpm(model, cfg, state=state, progress=False)

    full_model, full = run(tmp_path / "full.safetensors")
    state = tmp_path / "part.safetensors"
    calls, ema = [], dtrain.ema_update

    def dies_at_step_5(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        ema(*args)

    monkeypatch.setattr(dtrain, "ema_update", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        run(state)
    monkeypatch.setattr(dtrain, "ema_update", ema)
    resumed_model, resumed = run(state)
    assert resumed["loss_last500"] == full["loss_last500"] and resumed["steps"] == 6
    for a, b in zip(full_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


def test_the_model_ends_holding_the_ema_weights(fake_fashion):
    cfg = dtrain.DDPMTrainConfig(steps=4, batch_size=8, T=50, n_train=64, warmup=1, ema_decay=0.5)
    torch.manual_seed(0)
    model = tiny_unet()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    real_update = dtrain.ema_update

    def spy(ema, m, decay):
        real_update(ema, m, decay)
        seen.append({k: v.clone() for k, v in ema.state_dict().items()})

    dtrain.ema_update = spy
    try:
        dtrain.train_ddpm(model, cfg, progress=False)
    finally:
        dtrain.ema_update = real_update
    assert len(seen) == 4
    for k, v in model.state_dict().items():
        assert torch.equal(v, seen[-1][k])
    assert any(not torch.equal(start[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("clip_x0", [None, 1.0])
def test_ddim_with_eta_1_and_every_step_is_ddpm_ancestral_sampling(clip_x0):
    """Song et al. 2021: eta = 1 over all T steps gives the DDPM posterior's mean and variance; with the same
    noise draws the two samplers agree up to rounding -- also with x0's estimate clipped, because DDIM re-derives
    eps from the clipped x0 and so takes the posterior q(x_{t-1} | x_t, x0_hat) that DDPM's clipped step takes."""
    torch.manual_seed(0)
    model, schedule = tiny_unet().eval(), NoiseSchedule(20)
    ddpm = dtrain.sample_ddpm(model, schedule, 6, seed=3, clip_x0=clip_x0)
    ddim = dtrain.sample_ddim(model, schedule, 6, steps=20, eta=1.0, seed=3, clip_x0=clip_x0)
    assert ddpm.shape == ddim.shape == (6, 1, 28, 28)
    torch.testing.assert_close(ddim, ddpm, atol=1e-4, rtol=0)
    if clip_x0:                                                   # the clipping did act on this model
        assert (ddpm - dtrain.sample_ddpm(model, schedule, 6, seed=3, clip_x0=None)).abs().max() > 1e-2
    # deterministic DDIM differs from it, and is reproducible from the seed, in [0, 1]
    a, b = (dtrain.sample_ddim(model, schedule, 6, steps=5, seed=3, clip_x0=clip_x0) for _ in range(2))
    assert torch.equal(a, b) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert not torch.allclose(a, ddpm, atol=1e-3)


def test_samplers_batch_like_one_batch_for_ddim():
    torch.manual_seed(0)
    model, schedule = tiny_unet().eval(), NoiseSchedule(20)
    one = dtrain.sample_ddim(model, schedule, 5, steps=4, seed=2, batch_size=5)
    assert dtrain.sample_ddim(model, schedule, 5, steps=4, seed=2, batch_size=2).shape == one.shape == (5, 1, 28, 28)


def test_shipped_ddpm_is_registered_and_loads_without_training():
    from course_lib import shipping
    from course_lib.diffusion import shipped

    assert "ddpm" in shipping.registry()
    model = shipped.build_unet()
    assert 0.7e6 < sum(p.numel() for p in model.parameters()) < 0.85e6
    with pytest.raises(ValueError, match="unknown diffusion checkpoint"):
        shipped.load_ddpm("nope")


def test_notebook_13_checks_accept_the_right_answers_and_reject_plausible_wrong_ones(capsys):
    from course_lib.diffusion import ddpm_checks as checks

    def col(table, t, x):
        return table[t].to(x.dtype).view(-1, *([1] * (x.ndim - 1)))

    def q_sample(s, x0, t, eps):
        return col(s.alpha_bar.sqrt(), t, x0) * x0 + col((1 - s.alpha_bar).sqrt(), t, x0) * eps

    def q_sample_variance(s, x0, t, eps):           # the variance used as the standard deviation
        return col(s.alpha_bar.sqrt(), t, x0) * x0 + col(1 - s.alpha_bar, t, x0) * eps

    def ddpm_step(s, eps, t, xt, z):
        mean = (xt - col(s.betas / (1 - s.alpha_bar).sqrt(), t, xt) * eps) / col(s.alphas.sqrt(), t, xt)
        return mean + col(s.posterior_variance.sqrt(), t, xt) * z

    def ddpm_step_beta(s, eps, t, xt, z):          # sigma_t^2 = beta_t: Ho et al.'s other choice, not the contract's
        mean = (xt - col(s.betas / (1 - s.alpha_bar).sqrt(), t, xt) * eps) / col(s.alphas.sqrt(), t, xt)
        return mean + col(s.betas.sqrt(), t, xt) * z

    assert checks.check_q_sample_kernel(q_sample) and not checks.check_q_sample_kernel(q_sample_variance)
    assert checks.check_ddpm_step_kernel(ddpm_step) and not checks.check_ddpm_step_kernel(ddpm_step_beta)
    assert not checks.check_q_sample_kernel(lambda *a: None)
    import math

    abar = math.exp(sum(math.log(1 - (1e-4 + s * (0.02 - 1e-4) / 999)) for s in range(501)))
    assert checks.check_snr(round(abar / (1 - abar), 3)) and not checks.check_snr(abar)
    assert "Not answered yet" in capsys.readouterr().out
