"""Mixed precision in the generative models' training steps, run on the CPU.

On a GPU ``utils.autocast`` runs the forward pass in ``utils.amp_dtype`` (bfloat16 from an A100 on, float16 with a
gradient scaler on a T4); on the CPU it is a no-op, so the gpu-profile path would go untested here. These tests
make ``amp_dtype`` answer bfloat16 or float16 for the CPU too (CPU autocast supports both), and run each training
step the gpu profile uses: it must run (no dtype mismatch in a kernel, an in-place update or a buffer), keep the
parameters float32, change them, and give the loss of the float32 step within the low precision's error.
"""

from __future__ import annotations

import pytest
import torch

from course_lib import utils

LOW = [torch.bfloat16, torch.float16]
# Relative error of a whole forward pass in the low precision: bfloat16 keeps 8 significant bits (2^-8 = 0.4 %
# per rounding, which a few dozen layers compound to a few per cent), float16 keeps 11 (0.05 % per rounding).
LOSS_RTOL = {torch.bfloat16: 0.05, torch.float16: 0.01}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _ddpm():
    from course_lib.diffusion import NoiseSchedule
    from course_lib.diffusion.train import train_step
    from course_lib.diffusion.unet import UNet

    model, schedule = UNet(channels=(8, 16), attention=(False, True)), NoiseSchedule(100)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    return model, lambda opt, g: train_step(model, opt, schedule, x, g)


def _ncsn():
    from course_lib.diffusion.ncsn import NCSN, train_step

    model = NCSN(1.0, 0.01, 5, channels=(8, 16), attention=(False, True))
    x = torch.rand(4, 1, 28, 28)
    return model, lambda opt, g: train_step(model, opt, x, g)


def _cfg():
    from course_lib.diffusion import NoiseSchedule
    from course_lib.guidance import ClassConditionalUNet
    from course_lib.guidance.train import cond_train_step

    model, schedule = ClassConditionalUNet(10, channels=(8, 16), attention=(False, True)), NoiseSchedule(100)
    x, y = torch.rand(4, 1, 28, 28) * 2 - 1, torch.arange(4)
    return model, lambda opt, g: cond_train_step(model, opt, schedule, x, y, g)


def _vae():
    from course_lib.vae.models import VAE
    from course_lib.vae.train import train_step

    model = VAE(latent_dim=4, hidden=32)
    x = (torch.rand(8, 1, 28, 28) > 0.5).float()

    def step(opt, g):
        torch.manual_seed(int(torch.randint(1000, (1,), generator=g)))      # the reparameterisation's noise
        return train_step(model, opt, x)["loss"]

    return model, step


def _vq():
    from course_lib.vq import VQVAE, train_step

    model = VQVAE(num_codes=16, dim=4, width=8)
    x = torch.rand(4, 1, 28, 28)
    return model, lambda opt, g: (lambda t: t["recon"] + t["vq"])(train_step(model, opt, x))


def _prior():
    from course_lib.vq.prior import PriorConfig, TokenPrior, train_step

    model = TokenPrior(PriorConfig(num_codes=16, dim=16, layers=1, heads=2))
    tokens = torch.randint(16, (4, 49), generator=torch.Generator().manual_seed(0))
    return model, lambda opt, g: train_step(model, opt, tokens)


def _run_steps():
    """The shared loop of iGPT, BEiT, DALL-E, CLIP and unCLIP (one call: a step with clipping)."""
    from course_lib.training import run_steps
    from course_lib.vq.prior import PriorConfig, TokenPrior, nll

    model = TokenPrior(PriorConfig(num_codes=16, dim=16, layers=1, heads=2))
    tokens = torch.randint(16, (4, 49), generator=torch.Generator().manual_seed(0))

    def step(opt, g):                                   # opt unused: run_steps makes its own AdamW
        return torch.tensor(run_steps(model, 1, lambda gen: nll(model, tokens), 1e-3, clip_grad=1.0,
                                      progress=False)["losses"][0])

    return model, step


# float16's gradient scaler starts at 2^16 and skips each step whose scaled gradients overflow, halving the scale:
# the NCSN's loss (summed over 784 pixels, about 470 at first) overflows until the scale is down to 256, 8 skipped
# steps. Later steps must then update the weights.
STEPS_AFTER = {torch.bfloat16: 0, torch.float16: 12, None: 0}
STEPS = {"ddpm": _ddpm, "ncsn": _ncsn, "cfg": _cfg, "vae": _vae, "vq": _vq, "prior": _prior, "run_steps": _run_steps}


def _one_step(name: str, dtype: torch.dtype | None, monkeypatch) -> tuple[float, dict, dict, set]:
    """The first step's loss, the state before and after 1 + STEPS_AFTER steps, and the dtypes the model's
    linear and convolution layers computed in."""
    monkeypatch.setattr(utils, "amp_dtype", lambda dev: dtype)
    torch.manual_seed(0)
    model, step = STEPS[name]()
    computed_in = set()
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            m.register_forward_hook(lambda mod, args, out: computed_in.add(out.dtype))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt, g = torch.optim.Adam(model.parameters(), lr=1e-3), torch.Generator().manual_seed(0)
    loss = float(step(opt, g))
    for _ in range(STEPS_AFTER[dtype]):
        step(opt, g)
    return loss, before, {k: v.detach().clone() for k, v in model.state_dict().items()}, computed_in


@pytest.mark.parametrize("name", list(STEPS))
@pytest.mark.parametrize("dtype", LOW, ids=str)
def test_training_step_runs_under_autocast(name, dtype, monkeypatch):
    ref_loss, _, _, ref_dtypes = _one_step(name, None, monkeypatch)         # float32, as on the CPU
    loss, before, after, dtypes = _one_step(name, dtype, monkeypatch)
    assert ref_dtypes == {torch.float32} and dtype in dtypes, f"the forward ran in {dtypes}, not under autocast"
    assert all(p.dtype == before[k].dtype for k, p in after.items()), "parameters and buffers keep their dtypes"
    assert any(not torch.equal(after[k], before[k]) for k in after if after[k].is_floating_point()), "no update"
    assert all(torch.isfinite(p).all() for p in after.values() if p.is_floating_point())
    assert loss == pytest.approx(ref_loss, rel=LOSS_RTOL[dtype]), f"{dtype} loss {loss} vs float32 {ref_loss}"


def test_autocast_lowers_matmuls_where_amp_dtype_says(monkeypatch):
    # The premise of the tests above: with amp_dtype answering for the CPU, utils.autocast really casts.
    monkeypatch.setattr(utils, "amp_dtype", lambda dev: torch.bfloat16)
    with utils.autocast("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_backward_step_clips_the_unscaled_gradient(monkeypatch):
    # Under float16 the gradients are scaled by 2^16 during backward; the clip must see the true norm.
    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.randn(16, 1) * 100
    plain, scaled = torch.nn.Linear(5, 1), torch.nn.Linear(5, 1)
    scaled.load_state_dict(plain.state_dict())
    opt_plain, opt_scaled = torch.optim.SGD(plain.parameters(), lr=0.1), torch.optim.SGD(scaled.parameters(), lr=0.1)
    utils.backward_step((plain(x) - y).pow(2).mean(), opt_plain, "cpu", grad_clip=1.0)
    monkeypatch.setattr(utils, "amp_dtype", lambda dev: torch.float16)
    utils.backward_step((scaled(x) - y).pow(2).mean(), opt_scaled, "cpu", grad_clip=1.0)
    moved = torch.cat([(p - q).flatten() for p, q in zip(plain.parameters(), scaled.parameters())])
    torch.testing.assert_close(moved, torch.zeros_like(moved), rtol=0, atol=1e-6)
    step = torch.cat([(q.grad).flatten() for q in plain.parameters()]).norm()
    assert float(step) == pytest.approx(1.0, rel=1e-5)                     # clipped to norm 1, not 2^16


def test_compile_if_asked_only_on_a_gpu_and_only_when_asked(monkeypatch):
    calls = []
    model = torch.nn.Linear(2, 2)
    monkeypatch.setattr(model, "compile", lambda *a, **k: calls.append(1))
    monkeypatch.delenv("COURSE_COMPILE", raising=False)
    assert utils.compile_if_asked(model, "cuda") is model and calls == []
    monkeypatch.setenv("COURSE_COMPILE", "1")
    assert utils.compile_if_asked(model, "cpu") is model and calls == []
    assert utils.compile_if_asked(model, "cuda") is model and calls == [1]
