"""Notebook 12's library code: its exercise checks (the right answers pass, the plausible wrong ones fail), its
per-profile config, and course_lib.diffusion.ncsn (the noise-conditional score network: parametrization, one
training step, resumable training, the sampler, the checkpoint loader)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import nbformat
import pytest
import torch
from exercise_checks import assert_hand_check, passes

from course_lib.diffusion import dsm_loss, langevin_step, ncsn
from course_lib.diffusion import score_checks as checks
from course_lib.diffusion.score_config import SCORE_CONFIGS, score_config
from course_lib.editions import learner_notebook

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "12_score_matching.ipynb"


def tiny_ncsn() -> ncsn.NCSN:
    return ncsn.NCSN(1.0, 0.01, 10, channels=(8, 16), attention=(False, True), heads=2)


# ---------------------------------------------------------------------------------------------- the Langevin kernel


def test_langevin_check_accepts_the_reference_and_an_equivalent_form(capsys):
    assert passes(checks.check_langevin_step_kernel(langevin_step))
    assert passes(checks.check_langevin_step_kernel(
        lambda x, score, eps, z: x + eps * score / 2 + eps ** 0.5 * z))
    assert capsys.readouterr().out.count("Correct!") == 2


@pytest.mark.parametrize("wrong", [
    lambda x, score, eps, z: x + 0.5 * eps * score + eps * z,                  # eps, not sqrt(eps), on the noise
    lambda x, score, eps, z: x + eps * score + math.sqrt(eps) * z,            # the whole step on the score
    lambda x, score, eps, z: x + 0.5 * eps * score,                           # no noise: gradient ascent
    lambda x, score, eps, z: x + 0.5 * eps * score + math.sqrt(eps) * z.abs(),  # |z| (caught on a random input)
    lambda x, score, eps, z: x - 0.5 * eps * score + math.sqrt(eps) * z,      # descends the log-density
], ids=["eps-on-noise", "eps-on-score", "no-noise", "abs-noise", "wrong-sign"])
def test_langevin_check_rejects_plausible_mistakes(wrong, capsys):
    assert not passes(checks.check_langevin_step_kernel(wrong))
    assert "Not quite" in capsys.readouterr().out


def test_langevin_check_says_not_answered_for_a_stub(capsys):
    assert not passes(checks.check_langevin_step_kernel(lambda x, score, eps, z: None))
    assert "Not answered yet" in capsys.readouterr().out


def test_the_cases_include_an_edge_without_noise():
    cases = checks.langevin_step_cases()
    assert any(bool((args[3] == 0).all()) for _, args in cases)
    assert {args[0].dtype for _, args in cases} == {torch.float32, torch.float64}


def _notebook_function(name: str, learner: bool = False):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    if learner:
        nb = learner_notebook(nb, NOTEBOOK.name)
    source = next(c.source for c in nb.cells if c.cell_type == "code" and f"def {name}(" in c.source)
    scope = {"torch": torch, "math": math}
    exec(source.split("\ncheck_")[0].replace("from course_lib.diffusion.score_checks import", "# "), scope)
    return scope[name]


@pytest.mark.skipif(not NOTEBOOK.exists(), reason="notebook 12 not written yet")
def test_the_notebooks_solution_passes_and_the_learner_stub_does_not(capsys):
    assert passes(checks.check_langevin_step_kernel(_notebook_function("my_langevin_step")))
    assert not passes(checks.check_langevin_step_kernel(_notebook_function("my_langevin_step", learner=True)))
    assert "Not answered yet" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- hand computations


def test_gaussian_score(capsys):
    # (mu - x) / var = -0.5; wrong: divided by the std (-1), the sign (0.5), x - mu without the variance (2 or -2)
    assert_hand_check(checks.check_gaussian_score, -0.5, -0.500, [-1.0, 0.5, -2.0, 2.0, -0.25], capsys)


def test_perturbed_std(capsys):
    # sqrt(1 + 9); wrong: stds added (4), the variance (10), sigma alone (3)
    assert_hand_check(checks.check_perturbed_std, math.sqrt(10), 3.16, [4.0, 10.0, 3.0, 3.2], capsys)


def test_annealed_step(capsys):
    # eps * (sigma_1 / sigma_L)^2 = 0.2; wrong: the ratio not squared (2e-3), eps itself, the inverse ratio
    assert_hand_check(checks.check_annealed_step, 0.2, 0.200, [2e-3, 2e-5, 2e-9, 0.02, 2.0], capsys)


# ---------------------------------------------------------------------------------------------- the config


def test_profiles_grow_and_fit_their_budgets():
    smoke, cpu, gpu = (SCORE_CONFIGS[p] for p in ("smoke", "cpu", "gpu"))
    for field in ("toy_steps", "toy_n_train", "langevin_n", "ncsn_steps", "n_samples", "steps_per_sigma"):
        assert getattr(smoke, field) <= getattr(cpu, field) <= getattr(gpu, field), field
    assert score_config("cpu", n_samples=7).n_samples == 7 and score_config("cpu").n_samples == cpu.n_samples
    assert all(dataclasses.is_dataclass(c) for c in SCORE_CONFIGS.values())


# ---------------------------------------------------------------------------------------------- the NCSN


def test_ncsn_shapes_positions_and_the_one_over_sigma_output():
    torch.manual_seed(0)
    model = tiny_ncsn()
    x = torch.rand(3, 1, 28, 28)
    sigma = torch.tensor([1.0, 0.1, 0.01])
    out = model(x, sigma)
    assert out.shape == x.shape
    pos = model.noise_position(model.sigmas)
    torch.testing.assert_close(pos[[0, -1]], torch.tensor([0.0, 1000.0]))
    assert bool((pos.diff() > 0).all())                                          # ordered along log sigma
    with torch.no_grad():
        raw = model.unet(x, model.noise_position(sigma))
    torch.testing.assert_close(out, raw / sigma.view(-1, 1, 1, 1))
    torch.testing.assert_close(model(x, 0.1), model(x, torch.full((3,), 0.1)))  # a float sigma is broadcast
    assert model.sigmas.shape == (10,) and "sigmas" in model.state_dict()


def test_dsm_loss_of_the_ncsn_is_the_unet_regressing_minus_z():
    torch.manual_seed(0)
    model = tiny_ncsn()
    x, z = torch.rand(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    sigma = model.sigmas[torch.tensor([0, 3, 6, 9])]
    with torch.no_grad():
        expected = 0.5 * (model.unet(x + sigma.view(-1, 1, 1, 1) * z, model.noise_position(sigma)) + z
                          ).flatten(1).pow(2).sum(1).mean()
        got = dsm_loss(model, x, sigma, z=z)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * float(expected))


def test_train_step_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = tiny_ncsn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.rand(16, 1, 28, 28)
    losses = [float(ncsn.train_step(model, opt, x, torch.Generator().manual_seed(7))) for _ in range(30)]
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


@pytest.fixture
def fake_fashion(monkeypatch):
    from course_lib import data

    images = torch.rand(64, 1, 28, 28)
    monkeypatch.setattr(data, "fashion_mnist", lambda split="train": data.ImageDataset(images, torch.zeros(64)))


def test_train_ncsn_resumes_to_the_same_weights(tmp_path, monkeypatch, fake_fashion):
    cfg = ncsn.NCSNTrainConfig(steps=6, batch_size=8, n_train=64, warmup=3, state_every=3)

    def run(state):
        torch.manual_seed(0)
        model = tiny_ncsn()
        return model, ncsn.train_ncsn(model, cfg, state=state, progress=False)

    full_model, full = run(tmp_path / "full.safetensors")
    state = tmp_path / "part.safetensors"
    import course_lib.diffusion.train as loop  # the loop NCSN shares with DDPM

    calls, ema = [], loop.ema_update

    def dies_at_step_5(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        ema(*args)

    monkeypatch.setattr(loop, "ema_update", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        run(state)
    monkeypatch.setattr(loop, "ema_update", ema)
    resumed_model, resumed = run(state)
    assert resumed["loss_last"] == full["loss_last"] and resumed["steps"] == 6
    for a, b in zip(full_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


def test_sampler_returns_images_in_range_and_is_seeded():
    torch.manual_seed(0)
    model = tiny_ncsn()
    a = ncsn.sample_ncsn(model, 3, steps_per_sigma=1, seed=4, batch_size=2)
    b = ncsn.sample_ncsn(model, 3, steps_per_sigma=1, seed=4, batch_size=2)
    assert a.shape == (3, 1, 28, 28) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, b)


def test_load_ncsn_trains_the_profiles_fallback_when_nothing_is_stored(monkeypatch, tmp_path):
    from course_lib import checkpoints

    seen = {}

    def fake_load(name, model, train, profile):
        seen.update(name=name, profile=profile)
        return {"origin": "trained", "metrics": {}}

    monkeypatch.setattr(checkpoints, "load", fake_load)
    model = ncsn.load_ncsn(profile="smoke")
    assert seen == {"name": "ncsn", "profile": "smoke"} and not model.training
    assert model.checkpoint_entry["origin"] == "trained"
    with pytest.raises(ValueError, match="unknown score checkpoint"):
        ncsn.load_ncsn("nope")
    assert set(ncsn.CHECKPOINTS) == set(ncsn.SHIPPED) == {"ncsn"}
