"""Chapters 12-13: the noise schedule and the DDPM / DDIM steps, the U-Net, DSM, Langevin dynamics, the 2-D toy.

Oracles: diffusers (``DDPMScheduler.add_noise`` and ``.step``, ``DDIMScheduler.step``, ``get_timestep_embedding``),
torch.distributions (``MixtureSameFamily`` log-densities, ``Normal``), torch.autograd (scores as gradients of
log-densities), ``F.scaled_dot_product_attention``, quadrature on a grid (the perturbed density as a convolution),
and closed forms (the stationary law of Langevin dynamics on a Gaussian, the expected DSM loss on a Gaussian).
Statistical tests use tolerances of 5 standard errors computed from their sample sizes.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.models.embeddings import get_timestep_embedding
from tolerance import assert_close_scaled
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from course_lib.diffusion import (
    GaussianMixture,
    NoiseSchedule,
    UNet,
    annealed_langevin,
    attention,
    ddim_timesteps,
    ddpm_loss,
    dsm_loss,
    geometric_sigmas,
    langevin,
    mode_weights,
    sinusoidal_embedding,
    song_ermon_mixture,
)

T = 1000
KINDS = ["linear", "cosine"]
DIFFUSERS_KIND = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


def ddpm_oracle(kind: str) -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule=DIFFUSERS_KIND[kind],
                         variance_type="fixed_small", clip_sample=False)


def ddim_oracle(kind: str) -> DDIMScheduler:
    return DDIMScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule=DIFFUSERS_KIND[kind],
                         clip_sample=False, set_alpha_to_one=True)


def in_float64(sched, betas: torch.Tensor):
    """diffusers keeps its tables in float32 and forms beta_t = 1 - abar_t / abar_{t-1} and 1 - abar_t by
    subtraction, which loses log2(1 / beta_t) bits at small t (2e-4 relative error at t = 1 in float32). To test
    the step *formulas* to float64 precision, rebuild its tables in float64 exactly as its __init__ does
    (alphas = 1 - betas, alphas_cumprod = cumprod) from float64 betas; the steps are diffusers' own code."""
    sched.betas = betas.clone()
    sched.alphas = 1.0 - sched.betas
    sched.alphas_cumprod = torch.cumprod(sched.alphas, dim=0)
    sched.one = torch.tensor(1.0, dtype=torch.float64)
    sched.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    return sched


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def cancellation_scale(sched: NoiseSchedule, t, *tensors) -> float:
    """The magnitude rounding scales with in a step: the inputs' size over beta_t (see ``in_float64``)."""
    beta = float(sched.betas[torch.as_tensor(t)].min())
    return sum(float(v.abs().max()) for v in tensors) / beta


# ---------------------------------------------------------------------------------------------- schedule


@pytest.mark.parametrize("kind", KINDS)
def test_tables_match_diffusers(kind):
    """betas, alphas and abar equal diffusers' float32 tables to float32 rounding. Time index: 0-based, so
    betas[0] = beta_1 and betas[T-1] = beta_T."""
    s, d = NoiseSchedule(T, kind=kind), ddpm_oracle(kind)
    assert s.betas.dtype == s.alpha_bar.dtype == torch.float64 and s.betas.shape == (T,)
    assert_close_scaled(s.betas, d.betas, scale=s.betas.max(), ulps=8)            # float32 linspace / rounding
    assert_close_scaled(s.alphas, d.alphas, scale=1, ulps=8)
    # a float32 cumprod of T factors carries at most T roundings: compare relatively (on the log)
    assert_close_scaled(s.alpha_bar.log(), d.alphas_cumprod.double().log(), scale=1, ulps=T, dtype=torch.float32)
    if kind == "linear":
        assert float(s.betas[0]) == pytest.approx(1e-4, rel=1e-12) and float(s.betas[-1]) == pytest.approx(0.02)
    assert float(s.posterior_variance[0]) == 0.0                                    # beta~_1 = 0: no noise at t = 0
    torch.testing.assert_close(s.alpha_bar, s.alphas.cumprod(0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(6, 1, 28, 28), (5, 2)])
def test_q_sample_matches_add_noise(dtype, shape):
    """Eq. 4 equals ``DDPMScheduler.add_noise``: float32 against the stock oracle, float64 with its tables in
    float64. t covers both ends, 0 and T-1."""
    s, d = NoiseSchedule(T), ddpm_oracle("linear")
    if dtype == torch.float64:
        in_float64(d, s.betas)
    x0, eps = randn(*shape, seed=1, dtype=dtype), randn(*shape, seed=2, dtype=dtype)
    t = torch.tensor([0, T - 1, 1, 500, 999, 250][: shape[0]])
    xt = s.q_sample(x0, t, eps)
    assert xt.dtype == dtype and xt.shape == x0.shape
    # 1 - abar_0 = 1e-4 is a cancellation in diffusers' float32 (relative error eps / 1e-4 on sqrt(1 - abar))
    scale = (x0.abs().max() + eps.abs().max()) * (1 if dtype == torch.float64 else 1 / math.sqrt(1e-4))
    assert_close_scaled(xt, d.add_noise(x0, eps, t), scale=scale)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("t", [0, 1, 2, 10, 500, 998, 999])
def test_ddpm_step_matches_diffusers(kind, t):
    """Algorithm 2 (sigma_t^2 = beta~_t) equals ``DDPMScheduler(variance_type="fixed_small").step`` given the same
    noise: diffusers draws it with ``torch.randn(shape, generator=g, dtype=...)``, so an identically seeded
    generator gives ours the same z."""
    s = NoiseSchedule(T, kind=kind)
    d = in_float64(ddpm_oracle(kind), s.betas)
    xt, eps = randn(4, 1, 8, 8, seed=3), randn(4, 1, 8, 8, seed=4)
    expected = d.step(eps, t, xt, generator=torch.Generator().manual_seed(7)).prev_sample
    noise = torch.randn(xt.shape, generator=torch.Generator().manual_seed(7), dtype=xt.dtype)
    actual = s.ddpm_step(eps, t, xt, noise)
    assert_close_scaled(actual, expected, scale=cancellation_scale(s, t, xt, eps, noise))


def test_ddpm_step_ends_and_per_example_t():
    """t = 0 adds no noise (the result is x0's estimate, Eq. 15); a (B,) t equals B scalar-t steps."""
    s = NoiseSchedule(T)
    xt, eps, noise = randn(3, 2, 5, 5, seed=5), randn(3, 2, 5, 5, seed=6), randn(3, 2, 5, 5, seed=7)
    at0 = s.ddpm_step(eps, 0, xt, noise)
    assert torch.equal(at0, s.ddpm_step(eps, 0, xt, 100 * noise))
    assert torch.equal(at0, s.ddpm_step(eps, 0, xt, None))
    assert_close_scaled(at0, s.predict_x0(eps, 0, xt), scale=cancellation_scale(s, 0, xt, eps))
    assert not torch.allclose(s.ddpm_step(eps, 1, xt, noise), s.ddpm_step(eps, 1, xt, 100 * noise))
    t = torch.tensor([0, 999, 37])
    rows = torch.cat([s.ddpm_step(eps[i:i + 1], int(t[i]), xt[i:i + 1], noise[i:i + 1]) for i in range(3)])
    assert torch.equal(s.ddpm_step(eps, t, xt, noise), rows)


@pytest.mark.parametrize("t", [0, 1, 999])
def test_ddpm_step_float32_keeps_float32_accuracy(t):
    """Our coefficients are formed in float64 and rounded once, so a float32 step is as accurate as float32
    arithmetic on its inputs allows (diffusers' float32 tables are not, at small t: see ``in_float64``)."""
    s = NoiseSchedule(T)
    xt, eps, noise = randn(4, 1, 8, 8, seed=8), randn(4, 1, 8, 8, seed=9), randn(4, 1, 8, 8, seed=10)
    x32 = s.ddpm_step(eps.float(), t, xt.float(), noise.float())
    assert x32.dtype == torch.float32
    scale = 2 * (xt.abs().max() + eps.abs().max() + noise.abs().max())            # 1/sqrt(alpha) <= 1.02
    assert_close_scaled(x32, s.ddpm_step(eps, t, xt, noise), scale=scale, dtype=torch.float32)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("steps", [50, 10])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step_matches_diffusers(kind, steps, eta):
    """Eq. 12 with Eq. 16's sigma(eta) equals ``DDIMScheduler.step`` at every timestep pair after
    ``set_timesteps`` (the last pair goes to t_prev < 0, i.e. to x0 with abar = 1)."""
    s = NoiseSchedule(T, kind=kind)
    d = in_float64(ddim_oracle(kind), s.betas)
    d.set_timesteps(steps)
    assert d.timesteps.tolist() == ddim_timesteps(T, steps)
    xt, eps = randn(2, 1, 6, 6, seed=11), randn(2, 1, 6, 6, seed=12)
    for i, t in enumerate(d.timesteps.tolist()):
        noise = randn(2, 1, 6, 6, seed=100 + i) if eta else None
        expected = d.step(eps, t, xt, eta=eta, variance_noise=noise).prev_sample
        actual = s.ddim_step(eps, t, t - T // steps, xt, eta=eta, noise=noise)
        extra = () if noise is None else (noise,)
        assert_close_scaled(actual, expected, scale=cancellation_scale(s, t, xt, eps, *extra))


def test_ddim_with_eta_1_on_consecutive_steps_is_ddpm():
    """DDIM Sec. 4.1: with eta = 1 and t_prev = t - 1, sigma_t^2 is DDPM's beta~_t and the step is DDPM's."""
    s = NoiseSchedule(T)
    xt, eps, noise = randn(3, 4, seed=13), randn(3, 4, seed=14), randn(3, 4, seed=15)
    for t in [0, 1, 500, 999]:
        assert_close_scaled(s.ddim_step(eps, t, t - 1, xt, eta=1.0, noise=noise), s.ddpm_step(eps, t, xt, noise),
                            scale=cancellation_scale(s, t, xt, eps, noise))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("t", [0, 1, 10, 500, 999])
def test_ddpm_step_with_clipped_x0_matches_diffusers(kind, t):
    """With ``clip_x0=1`` the step clips x0's estimate to [-1, 1] and takes Eq. 7's posterior mean from it, as
    ``DDPMScheduler(clip_sample=True)`` does; on these inputs some pixels are clipped and some are not."""
    s = NoiseSchedule(T, kind=kind)
    d = in_float64(ddpm_oracle(kind), s.betas)
    d.register_to_config(clip_sample=True, clip_sample_range=1.0)
    eps = randn(4, 1, 8, 8, seed=4)
    xt = s.q_sample(0.8 * randn(4, 1, 8, 8, seed=3), t, eps)                       # x0_hat = that x0
    clipped = float((s.predict_x0(eps, t, xt).abs() > 1).double().mean())   # x0 ~ N(0, 0.64): ~21 % beyond 1
    assert 0.05 < clipped < 0.95, clipped
    expected = d.step(eps, t, xt, generator=torch.Generator().manual_seed(7)).prev_sample
    noise = torch.randn(xt.shape, generator=torch.Generator().manual_seed(7), dtype=xt.dtype)
    actual = s.ddpm_step(eps, t, xt, noise, clip_x0=1.0)
    assert_close_scaled(actual, expected, scale=cancellation_scale(s, t, xt, eps, noise))
    assert (actual - s.ddpm_step(eps, t, xt, noise)).abs().max() > 1e-5   # clipping changed it (x0 weighs 1e-4 at 999)
    unclipped = s.ddpm_step(eps, t, xt, noise, clip_x0=1e6)                          # Eq. 7 == Eq. 11 unclipped
    assert_close_scaled(unclipped, s.ddpm_step(eps, t, xt, noise), scale=cancellation_scale(s, t, xt, eps, noise))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step_with_clipped_x0_matches_diffusers(kind, eta):
    """``clip_x0=1`` equals ``DDIMScheduler(clip_sample=True).step(..., use_clipped_model_output=True)``: x0_hat
    clipped to [-1, 1] and eps re-derived from it, at every timestep pair of a 20-step sequence."""
    s = NoiseSchedule(T, kind=kind)
    d = in_float64(ddim_oracle(kind), s.betas)
    d.register_to_config(clip_sample=True, clip_sample_range=1.0)
    d.set_timesteps(20)
    xt, eps = randn(2, 1, 6, 6, seed=11), 0.5 * randn(2, 1, 6, 6, seed=12)
    changed = 0
    for i, t in enumerate(d.timesteps.tolist()):
        noise = randn(2, 1, 6, 6, seed=100 + i) if eta else None
        expected = d.step(eps, t, xt, eta=eta, use_clipped_model_output=True, variance_noise=noise).prev_sample
        actual = s.ddim_step(eps, t, t - T // 20, xt, eta=eta, noise=noise, clip_x0=1.0)
        extra = () if noise is None else (noise,)
        assert_close_scaled(actual, expected, scale=cancellation_scale(s, t, xt, eps, *extra))
        changed += bool((actual - s.ddim_step(eps, t, t - T // 20, xt, eta=eta, noise=noise)).abs().max() > 1e-3)
    assert changed == 20


def test_clip_x0_must_be_positive():
    s, x = NoiseSchedule(T), randn(2, 3)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="clip_x0 > 0"):
            s.ddpm_step(x, 5, x, x, clip_x0=bad)
        with pytest.raises(ValueError, match="clip_x0 > 0"):
            s.ddim_step(x, 5, 0, x, clip_x0=bad)


@pytest.mark.parametrize("t", [0, 1, 300, 999])
def test_score_from_eps_is_the_gradient_of_log_q(t):
    """The DSM link: grad_{x_t} log N(x_t; sqrt(abar_t) x0, (1 - abar_t) I) = -eps / sqrt(1 - abar_t)."""
    s = NoiseSchedule(T)
    x0, eps = randn(3, 1, 4, 4, seed=16), randn(3, 1, 4, 4, seed=17)
    xt = s.q_sample(x0, t, eps).requires_grad_(True)
    ab = s.alpha_bar[t]
    log_q = Normal(ab.sqrt() * x0, (1 - ab).sqrt()).log_prob(xt).sum()
    (grad,) = torch.autograd.grad(log_q, xt)
    score = s.score_from_eps(eps, t)
    assert_close_scaled(score, grad, scale=score.abs().max())


def test_ddpm_loss_is_zero_for_the_exact_denoiser_of_one_point():
    """L_simple (Eq. 14): on data that is one point c, eps = (x_t - sqrt(abar_t) c) / sqrt(1 - abar_t) exactly,
    so that predictor has loss 0 (to rounding) and predicting 0 has loss E eps^2 ~ 1."""
    s = NoiseSchedule(T)
    c = randn(1, 1, 4, 4, seed=18)
    x0, t, eps = c.expand(64, 1, 4, 4), torch.randint(0, T, (64,), generator=torch.Generator().manual_seed(0)), \
        randn(64, 1, 4, 4, seed=19)

    def exact(xt, t):
        ab = s.alpha_bar[t].view(-1, 1, 1, 1)
        return (xt - ab.sqrt() * c) / (1 - ab).sqrt()

    assert float(ddpm_loss(exact, s, x0, t, eps)) < 1e-20                       # float64 rounding: ~1e-26
    assert float(ddpm_loss(lambda xt, t: torch.zeros_like(xt), s, x0, t, eps)) == pytest.approx(1, abs=0.2)


def test_schedule_bad_inputs():
    s = NoiseSchedule(T)
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        s.q_sample(x, T, x)
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        s.q_sample(x, torch.tensor([-1, 3]), x)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        s.q_sample(x, torch.tensor([1, 2, 3]), x)
    with pytest.raises(ValueError, match=r"eps of shape \(2, 1, 4, 4\)"):
        s.q_sample(x, 3, torch.zeros(2, 16))
    with pytest.raises(ValueError, match=r"noise of shape \(2, 1, 4, 4\)"):
        s.ddpm_step(x, 5, x, None)
    with pytest.raises(ValueError, match="t_prev < t"):
        s.ddim_step(x, 5, 5, x)
    with pytest.raises(ValueError, match=r"noise of shape \(2, 1, 4, 4\)"):
        s.ddim_step(x, 5, 3, x, eta=0.5)
    with pytest.raises(ValueError, match="linear' or 'cosine"):
        NoiseSchedule(T, kind="quadratic")
    with pytest.raises(ValueError, match="steps <= T"):
        ddim_timesteps(T, T + 1)


# ---------------------------------------------------------------------------------------------- U-Net


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sinusoidal_embedding_formula_and_diffusers(dtype):
    """emb[b, i] = sin(t_b 10000^(-i/(D/2-1))), emb[b, D/2+i] = cos(...), as a direct formula (math.sin in float64)
    and as diffusers' ``get_timestep_embedding(flip_sin_to_cos=False, downscale_freq_shift=1)``."""
    t = torch.tensor([0, 1, 17, 500, 999], dtype=dtype)
    D = 32
    emb = sinusoidal_embedding(t, D)
    assert emb.shape == (5, D) and emb.dtype == dtype
    half = D // 2
    direct = torch.tensor([[math.sin(tb * 10000 ** (-i / (half - 1))) for i in range(half)]
                           + [math.cos(tb * 10000 ** (-i / (half - 1))) for i in range(half)] for tb in t.tolist()],
                          dtype=torch.float64)
    assert_close_scaled(emb, direct, scale=t.max())                                # angles up to 999 rad
    if dtype == torch.float32:
        oracle = get_timestep_embedding(t, D, flip_sin_to_cos=False, downscale_freq_shift=1)
        assert_close_scaled(emb, oracle, scale=t.max())
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(t, 7)


def test_attention_written_out_equals_sdpa():
    q, k, v = randn(2, 4, 49, 16, seed=20, dtype=torch.float32), randn(2, 4, 49, 16, seed=21, dtype=torch.float32), \
        randn(2, 4, 49, 16, seed=22, dtype=torch.float32)
    scores = (q @ k.transpose(-2, -1)).abs().max() / 4                             # softmax rounds relative to these
    assert_close_scaled(attention(q, k, v), F.scaled_dot_product_attention(q, k, v),
                        scale=v.abs().max() * (1 + scores))


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return UNet().eval()


def test_unet_shapes_and_size(unet):
    n = sum(p.numel() for p in unet.parameters())
    assert 0.9e6 < n < 1.5e6, n
    x = randn(3, 1, 28, 28, seed=23, dtype=torch.float32)
    with torch.no_grad():
        assert unet(x, torch.tensor([0, 500, 999])).shape == (3, 1, 28, 28)
        assert unet(x, 7).shape == (3, 1, 28, 28)                                        # a scalar t
        assert unet(x, torch.tensor([0.1, 1.0, 20.0])).shape == (3, 1, 28, 28)          # float noise levels
    small = UNet(in_channels=3, channels=(16, 32), attention=(False, True), heads=2, groups=4)
    assert small(randn(2, 3, 16, 12, seed=24, dtype=torch.float32), torch.tensor([3, 4])).shape == (2, 3, 16, 12)


def test_unet_output_depends_on_t_and_not_on_the_batch(unet):
    """The time embedding changes the output (by far more than rounding); each example is computed on its own
    (GroupNorm and attention are per example), so a batch gives each row's single-example output."""
    x = randn(4, 1, 28, 28, seed=25, dtype=torch.float32)
    t = torch.tensor([0, 250, 500, 999])
    with torch.no_grad():
        out = unet(x, t)
        other = unet(x, t.flip(0))
        rows = torch.cat([unet(x[i:i + 1], t[i:i + 1]) for i in range(4)])
    assert float((out - other).abs().mean()) > 1e-3 * float(out.abs().mean()) + 1e-5
    assert_close_scaled(out, rows, scale=out.abs().max(), ulps=256)


def test_unet_bad_inputs(unet):
    for bad in [torch.zeros(2, 3, 28, 28), torch.zeros(2, 28, 28), torch.zeros(2, 1, 30, 30),
                torch.zeros(2, 1, 28, 28, dtype=torch.long)]:
        with pytest.raises(ValueError, match=r"\(B, 1, H, W\).*\(B, 1, 28, 28\)"):
            unet(bad, torch.zeros(len(bad), dtype=torch.long))
    with pytest.raises(ValueError, match=r"t of shape \(2,\)"):
        unet(torch.zeros(2, 1, 28, 28), torch.zeros(3))
    with pytest.raises(ValueError, match="one attention flag per level"):
        UNet(channels=(32, 64), attention=(True,))


def test_unet_training_steps_lower_the_ddpm_loss():
    """Three Adam steps of L_simple on one fixed batch (fixed t and eps) lower the loss."""
    torch.manual_seed(0)
    model, s = UNet(), NoiseSchedule(T)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x0 = randn(4, 1, 28, 28, seed=26, dtype=torch.float32).clamp(-1, 1)
    t, eps = torch.tensor([10, 200, 600, 900]), randn(4, 1, 28, 28, seed=27, dtype=torch.float32)
    losses = []
    for _ in range(4):
        loss = ddpm_loss(model, s, x0, t, eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


# ---------------------------------------------------------------------------------------------- the 2-D toy


def random_mixture(K: int, D: int, seed: int) -> GaussianMixture:
    g = torch.Generator().manual_seed(seed)
    means = 3 * torch.randn(K, D, generator=g, dtype=torch.float64)
    stds = 0.3 + torch.rand(K, generator=g, dtype=torch.float64)
    weights = torch.rand(K, generator=g, dtype=torch.float64) + 0.1
    return GaussianMixture(means, stds, weights / weights.sum())


def torch_mixture(p: GaussianMixture, sigma: float = 0.0) -> MixtureSameFamily:
    stds = (p.stds**2 + sigma**2).sqrt()
    comp = Independent(Normal(p.means, stds[:, None].expand_as(p.means)), 1)
    return MixtureSameFamily(Categorical(probs=p.weights), comp)


@pytest.mark.parametrize("K, D, seed", [(1, 2, 0), (3, 2, 1), (4, 5, 2)])
def test_mixture_log_prob_and_scores(K, D, seed):
    """log p equals torch.distributions' mixture; the score and the perturbed scores equal autograd of the
    log-densities of the mixtures with variances s_k^2 + sigma^2; one sigma per row equals row-by-row sigmas."""
    p = random_mixture(K, D, seed)
    x = 4 * randn(50, D, seed=seed + 10)
    lp = torch_mixture(p).log_prob(x)
    assert_close_scaled(p.log_prob(x), lp, scale=lp.abs().max() + D)
    for sigma in [0.0, 0.5, 3.0]:
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(torch_mixture(p, sigma).log_prob(xr).sum(), xr)
        ours = p.score(x) if sigma == 0 else p.perturbed_score(x, sigma)
        scale = (x.abs().max() + p.means.abs().max()) / (p.stds.min() ** 2 + sigma**2)
        assert_close_scaled(ours, grad, scale=scale)
    sigmas = torch.linspace(0.1, 2.0, 50, dtype=torch.float64)
    rows = torch.cat([p.perturbed_score(x[i:i + 1], float(sigmas[i])) for i in range(50)])
    assert_close_scaled(p.perturbed_score(x, sigmas), rows, scale=(x.abs().max() + 3) / 0.09)


def test_perturbed_density_is_the_convolution():
    """q_sigma(x) = int p(y) N(x; y, sigma^2 I) dy, by quadrature on a 2-D grid (spacing 0.05 over [-12, 12]^2:
    the trapezoid rule on Gaussians this smooth is exact to ~1e-12), equals the mixture with s^2 + sigma^2."""
    p, sigma = random_mixture(3, 2, seed=3), 0.7
    ax = torch.linspace(-12, 12, 481, dtype=torch.float64)
    y = torch.cartesian_prod(ax, ax)                                                    # (G, 2) grid points
    py = p.log_prob(y).exp() * (ax[1] - ax[0]) ** 2                                     # (G,) p(y) dy
    x = randn(5, 2, seed=4)
    kernel = Normal(torch.zeros((), dtype=torch.float64), sigma).log_prob(x[:, None, :] - y[None]).sum(-1).exp()
    numeric = (kernel * py[None]).sum(1)                                                # (5,)
    torch.testing.assert_close(p.perturbed(sigma).log_prob(x).exp(), numeric, rtol=1e-8, atol=0)


def test_langevin_on_a_gaussian_reaches_its_stationary_law():
    """With the exact score of N(mu, s^2 I), x' - mu = a (x - mu) + sqrt(eps) z, a = 1 - eps / (2 s^2): the chain's
    stationary law is N(mu, s^2 / (1 - eps / (4 s^2)) I) (-> N(mu, s^2 I) as eps -> 0), reached up to a^n."""
    mu, s, eps, n, N = torch.tensor([1.0, -2.0], dtype=torch.float64), 0.7, 0.05, 300, 20000
    x = langevin(lambda x: -(x - mu) / s**2, torch.zeros(N, 2, dtype=torch.float64), eps, n,
                 generator=torch.Generator().manual_seed(0))
    var = s**2 / (1 - eps / (4 * s**2))
    assert (1 - eps / (2 * s**2)) ** n * 3 < 1e-5                                     # the start is forgotten
    assert (x.mean(0) - mu).abs().max() < 5 * math.sqrt(var / N)
    assert (x.var(0) - var).abs().max() < 5 * var * math.sqrt(2 / (N - 1))
    assert abs(var - s**2) < 0.03 * s**2                                                # eps is small


def test_annealed_langevin_gets_the_mode_weights_right():
    """Song & Ermon Sec. 3.2 / Fig. 3: on 1/5 N((-5,-5), I) + 4/5 N((5,5), I) from uniform noise, Langevin with the
    exact score keeps the start's split (about 1/2 - 1/2), annealed Langevin (sigma 20 -> 1, L = 10, eps = 0.1,
    100 steps each, the paper's setting) recovers 1/5 - 4/5."""
    p, N = song_ermon_mixture(), 2000
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, 2, generator=g, dtype=torch.float64) * 16 - 8
    se = 5 * math.sqrt(0.2 * 0.8 / N)
    annealed = annealed_langevin(lambda x, s: p.perturbed_score(x, s), x, geometric_sigmas(20, 1, 10), 0.1, 100,
                                 generator=g)
    assert abs(float(mode_weights(annealed, p.means)[0]) - 0.2) < se
    plain = langevin(p.score, x, 0.1, 200, generator=g)
    start = float(((x[:, 0] + x[:, 1]) < 0).double().mean())                            # nearest to (-5, -5)
    assert abs(float(mode_weights(plain, p.means)[0]) - start) < se
    assert abs(float(mode_weights(plain, p.means)[0]) - 0.2) > 0.2


def test_dsm_loss_is_vincents_objective_weighted_by_sigma_squared():
    """dsm_loss = mean_b sigma_b^2 * 1/2 ||s(x~) + (x~ - x) / sigma_b^2||^2, one sigma per example."""
    p = random_mixture(3, 2, seed=5)
    x, z = p.sample(64, torch.Generator().manual_seed(0)), randn(64, 2, seed=6)
    sigma = torch.linspace(0.1, 5, 64, dtype=torch.float64)
    xt = x + sigma[:, None] * z
    direct = (sigma**2 * 0.5 * (p.perturbed_score(xt, sigma) + (xt - x) / sigma[:, None] ** 2).pow(2).sum(1)).mean()
    loss = dsm_loss(p.perturbed_score, x, sigma, z=z)
    assert_close_scaled(loss, direct, scale=direct / sigma.min() ** 2)


@pytest.mark.parametrize("c", [0.0, 0.5, 1.0, 1.5])
def test_dsm_loss_expectation_on_a_gaussian(c):
    """Data N(0, s^2 I) in D dims, s_c(x~) = -c x~ / (s^2 + sigma^2) (c = 1: the perturbed score). Then
    E loss(c) = D/2 [(c^2 - 2c) sigma^2 / (s^2 + sigma^2) + 1], minimized at c = 1 (Vincent: the minimizer of DSM
    is the perturbed score). Monte Carlo within 5 standard errors."""
    D, s, sigma, N = 3, 0.8, 0.6, 20000
    x = s * randn(N, D, seed=7)
    z = randn(N, D, seed=8)
    per_example = torch.stack([dsm_loss(lambda xt, sg: -c * xt / (s**2 + sg[:, None] ** 2), x[i::1000], sigma,
                                        z=z[i::1000]) for i in range(1000)])             # 1000 means of 20
    expected = D / 2 * ((c**2 - 2 * c) * sigma**2 / (s**2 + sigma**2) + 1)
    se = float(per_example.std()) / math.sqrt(len(per_example))
    assert abs(float(per_example.mean()) - expected) < 5 * se


def test_dsm_prefers_the_perturbed_score_to_the_clean_one():
    """On noisy data the clean data's score is the wrong target: its DSM loss exceeds the perturbed score's by
    sigma^2/2 E||s_p(x~) - s_q(x~)||^2 > 0 (paired samples, 5 standard errors)."""
    p, sigma, N = song_ermon_mixture(), 2.0, 4000
    x, z = p.sample(N, torch.Generator().manual_seed(1)), randn(N, 2, seed=9)
    xt = x + sigma * z

    def per_example(score):
        return 0.5 * (sigma * score(xt) + z).pow(2).sum(1)

    diff = per_example(p.score) - per_example(lambda v: p.perturbed_score(v, sigma))
    assert float(diff.mean()) > 5 * float(diff.std()) / math.sqrt(N)
    assert float(dsm_loss(lambda v, sg: p.perturbed_score(v, sg), x, sigma, z=z)) == pytest.approx(
        float(per_example(lambda v: p.perturbed_score(v, sigma)).mean()), rel=1e-12)


def test_toy_and_score_bad_inputs():
    p = song_ermon_mixture()
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        p.score(torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"sigma a float or of shape \(4,\)"):
        p.perturbed_score(torch.zeros(4, 2, dtype=torch.float64), torch.ones(3))
    with pytest.raises(ValueError, match="summing to 1"):
        GaussianMixture(torch.zeros(2, 2), torch.ones(2), torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match=r"z of shape \(4, 2\)"):
        dsm_loss(p.perturbed_score, torch.zeros(4, 2, dtype=torch.float64), 1.0, z=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="sigma > 0"):
        dsm_loss(p.perturbed_score, torch.zeros(4, 2, dtype=torch.float64), 0.0)
    with pytest.raises(ValueError, match="strictly decreasing"):
        annealed_langevin(p.perturbed_score, torch.zeros(4, 2), [1.0, 2.0], 0.1, 1)


def test_geometric_sigmas_and_mode_weights():
    sig = geometric_sigmas(20, 1, 10)
    assert float(sig[0]) == pytest.approx(20) and float(sig[-1]) == pytest.approx(1)
    ratios = sig[:-1] / sig[1:]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 20 ** (1 / 9)))
    w = mode_weights(torch.tensor([[-4.0, -6.0], [5.0, 4.0], [6.0, 6.0], [0.1, 0.0]]), song_ermon_mixture().means)
    assert w.tolist() == [0.25, 0.75]
