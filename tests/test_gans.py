"""Chapter 09: D*, V, C(G), KL and JSD on a grid; the ring of Gaussians, G and D, the GAN losses.

Oracles: scipy (``spatial.distance.jensenshannon``, ``stats.entropy``, ``special.xlogy``,
``optimize.minimize_scalar``), torch.distributions (KL of Normals and of Categoricals, Bernoulli entropy) and
torch.nn.functional (``binary_cross_entropy_with_logits``, ``logsigmoid``, ``binary_cross_entropy``).
"""

import math

import numpy as np
import pytest
import scipy.optimize
import scipy.special
import scipy.stats
import torch
import torch.nn.functional as F
from scipy.spatial.distance import jensenshannon
from tolerance import assert_close_scaled
from torch.distributions import Bernoulli, Categorical, Normal, kl_divergence as torch_kl

from course_lib.gans.config import GAN_THEORY_CONFIGS, gan_theory_config
from course_lib.gans.theory import (
    binary_cross_entropy,
    binary_entropy,
    gan_value,
    grid,
    js_divergence,
    kl_divergence,
    optimal_discriminator,
    virtual_criterion,
)
from course_lib.gans.toy import (
    Discriminator,
    Generator,
    d_loss,
    g_loss_nonsaturating,
    g_loss_saturating,
    mixture_of_gaussians_2d,
    mode_coverage,
    ring_centers,
)

SHAPES = [(1,), (7,), (3, 10), (2, 4, 33)]             # (..., K): the last dimension is the support
DTYPES = [torch.float32, torch.float64]
ULPS = {torch.float32: 64, torch.float64: 1024}


def pmfs(shape, seed, dtype=torch.float64, zeros=False):
    """Random discrete distributions (..., K) (each row sums to 1), optionally with about a third of zeros."""
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(shape, generator=g, dtype=torch.float64) ** 2
    if zeros:
        w = w * (torch.rand(shape, generator=g, dtype=torch.float64) > 0.33)
        w[..., 0] += (w.sum(-1) == 0).double()                      # keep every row a distribution
    return (w / w.sum(-1, keepdim=True)).to(dtype)


def normal(mu: float, sigma: float) -> Normal:
    """A Normal with float64 parameters (Python floats would make them float32, and densities off by ~1e-8)."""
    return Normal(torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64))


def xlogx_scale(*ts) -> torch.Tensor:
    """Size of the summed terms t log t (..., K) -> (...): what the rounding of a divergence scales with."""
    return sum((t.double() * (1 + t.double().clamp_min(1e-300).log().abs())).sum(-1) for t in ts)


# ---------------------------------------------------------------------------------------------- D*


@pytest.mark.parametrize("shape, seed", [((1,), 0), ((50,), 1), ((4, 6), 2)])
def test_optimal_discriminator_maximizes_the_integrand_pointwise(shape, seed):
    """Proposition 1: at each x, D* = argmax_y p_data log y + p_g log(1 - y), found here by scipy's optimizer."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.rand(shape, generator=g, dtype=torch.float64), torch.rand(shape, generator=g, dtype=torch.float64)
    d = optimal_discriminator(a, b)
    assert d.shape == shape
    for ai, bi, di in zip(a.flatten().tolist(), b.flatten().tolist(), d.flatten().tolist()):
        best = scipy.optimize.minimize_scalar(lambda y: -(ai * math.log(y) + bi * math.log(1 - y)),
                                              bounds=(1e-12, 1 - 1e-12), method="bounded", options={"xatol": 1e-10})
        assert di == pytest.approx(best.x, abs=1e-6)
        assert di == pytest.approx(ai / (ai + bi), rel=1e-15)


def test_optimal_discriminator_edge_values():
    p = torch.tensor([0.0, 0.0, 2.0, 1.0, 1e-300], dtype=torch.float64)
    q = torch.tensor([0.0, 3.0, 0.0, 1.0, 1e-300], dtype=torch.float64)
    d = optimal_discriminator(p, q)
    assert d.tolist() == [0.5, 0.0, 1.0, 0.5, 0.5]                   # 0/0 -> 1/2 (documented), no NaN


def test_optimal_discriminator_beats_every_other_d_on_the_value():
    x, dx = grid(-8, 8, 801)
    p, q = normal(-1.0, 1.0).log_prob(x).exp(), normal(1.0, 1.5).log_prob(x).exp()
    best = gan_value(optimal_discriminator(p, q), p, q, dx)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        other = (optimal_discriminator(p, q) + 0.05 * torch.randn(len(x), generator=g, dtype=torch.float64)).clamp(1e-6, 1 - 1e-6)
        assert gan_value(other, p, q, dx) < best
    assert gan_value(torch.full_like(p, 0.5), p, q, dx) < best


@pytest.mark.parametrize("p, q, match", [
    (torch.ones(3), torch.ones(4), r"same shape.*\(3,\).*\(4,\)"),
    (torch.tensor([1.0, -0.5]), torch.ones(2), "densities"),
    (torch.ones(3, dtype=torch.int64), torch.ones(3), "float tensor"),
])
def test_optimal_discriminator_errors(p, q, match):
    with pytest.raises(ValueError, match=match):
        optimal_discriminator(p, q)


# ---------------------------------------------------------------------------------------------- KL and JSD


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("zeros", [False, True])
def test_js_divergence_equals_scipy_jensenshannon_squared(shape, dtype, zeros):
    p, q = pmfs(shape, 0, dtype, zeros), pmfs(shape, 1, dtype, zeros)
    got = js_divergence(p, q)
    assert got.shape == shape[:-1] and got.dtype == dtype
    expected = torch.from_numpy(np.asarray(jensenshannon(p.double().numpy(), q.double().numpy(), axis=-1) ** 2))
    assert_close_scaled(got.double(), expected.reshape(shape[:-1]), xlogx_scale(p, q), ulps=ULPS[dtype], dtype=dtype)
    # scipy's default base is e: JSD <= log 2 nats
    assert float(got.max()) <= math.log(2) + 1e-6


def test_js_divergence_extremes_and_symmetry():
    p = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    q = torch.tensor([[0.0, 0.0, 0.25, 0.75], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    jsd = js_divergence(p, q)
    assert jsd[0] == pytest.approx(math.log(2), rel=1e-15) and jsd[1] == 0.0
    a, b = pmfs((5, 9), 2), pmfs((5, 9), 3)
    assert torch.allclose(js_divergence(a, b), js_divergence(b, a), rtol=1e-14, atol=0)
    assert (js_divergence(a, b) > 0).all()


@pytest.mark.parametrize("uniform", [True, False])
def test_js_divergence_on_a_grid_uses_the_cell_widths(uniform):
    """Densities on a grid: JSD of the densities with dx = scipy's JSD of the cell masses p * dx."""
    if uniform:
        x, dx = grid(-10, 10, 2001)
    else:
        edges = torch.sinh(torch.linspace(-3.5, 3.5, 1201, dtype=torch.float64))
        x, dx = 0.5 * (edges[1:] + edges[:-1]), edges.diff()        # (K,), (K,)
    p, q = normal(-0.5, 1.0).log_prob(x).exp(), normal(1.0, 0.8).log_prob(x).exp()
    p, q = p / (p * dx).sum(), q / (q * dx).sum()
    got = js_divergence(p, q, dx)
    expected = jensenshannon((p * dx).numpy(), (q * dx).numpy()) ** 2
    assert_close_scaled(got, torch.tensor(expected, dtype=torch.float64), xlogx_scale(p * dx, q * dx))
    with pytest.raises(ValueError, match="integrate to 1"):            # the widths forgotten: caught, not summed
        js_divergence(p, q)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_divergence_equals_scipy_entropy_and_torch_categorical(shape, dtype):
    p, q = pmfs(shape, 4, dtype), pmfs(shape, 5, dtype)
    got = kl_divergence(p, q)
    assert got.shape == shape[:-1] and got.dtype == dtype
    expected = torch.from_numpy(np.asarray(scipy.stats.entropy(p.double().numpy(), q.double().numpy(), axis=-1)))
    scale = xlogx_scale(p) + (p.double() * q.double().log().abs()).sum(-1)
    assert_close_scaled(got.double(), expected.reshape(shape[:-1]), scale, ulps=ULPS[dtype], dtype=dtype)
    assert_close_scaled(got.double(), torch_kl(Categorical(probs=p.double()), Categorical(probs=q.double())),
                        scale, ulps=ULPS[dtype], dtype=dtype)


def test_kl_divergence_of_gaussians_on_a_grid_equals_the_closed_form():
    x, dx = grid(-20, 20, 8001)
    for (m1, s1), (m2, s2) in [((0.0, 1.0), (1.0, 2.0)), ((-2.0, 0.6), (0.5, 1.3)), ((0.0, 1.0), (0.0, 1.0))]:
        p, q = normal(m1, s1).log_prob(x).exp(), normal(m2, s2).log_prob(x).exp()
        expected = float(torch_kl(normal(m1, s1), normal(m2, s2)))
        assert float(kl_divergence(p, q, dx)) == pytest.approx(expected, abs=1e-9)


def test_kl_divergence_is_infinite_where_q_misses_mass_and_ignores_zero_p():
    p = torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64)
    q = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    assert kl_divergence(p, q) == math.inf                            # p > 0 where q = 0
    assert kl_divergence(q, p) == pytest.approx(math.log(2), rel=1e-15)  # 0 log 0 = 0 at the last point


@pytest.mark.parametrize("fn", [kl_divergence, js_divergence])
def test_divergence_errors_name_the_expected_shape(fn):
    good = torch.tensor([0.25, 0.75])
    with pytest.raises(ValueError, match=r"same shape \(\.\.\., K\).*\(2,\).*\(3,\)"):
        fn(good, torch.tensor([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match=r"density \(>= 0\)"):
        fn(good, torch.tensor([1.5, -0.5]))
    with pytest.raises(ValueError, match="integrate to 1"):
        fn(good, torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match="integrate to 1"):          # densities on a grid, dx forgotten
        x, dx = grid(-5, 5, 100, dtype=torch.float32)
        fn(Normal(0.0, 1.0).log_prob(x).exp(), Normal(0.5, 1.0).log_prob(x).exp())
    with pytest.raises(ValueError, match="finite"):
        fn(good, torch.tensor([float("nan"), 1.0]))
    with pytest.raises(ValueError, match=r"\(\.\.\., K\) with K >= 1"):
        fn(torch.tensor(1.0), torch.tensor(1.0))
    with pytest.raises(ValueError, match="float tensor"):
        fn(torch.tensor([0, 1]), torch.tensor([1, 0]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        fn([0.5, 0.5], good)


# ---------------------------------------------------------------------------------------------- V and C(G)


@pytest.mark.parametrize("shape, seed", [((5,), 0), ((3, 40), 1), ((2, 2, 9), 2)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gan_value_equals_scipy_xlogy(shape, seed, dtype):
    p, q = pmfs(shape, seed, dtype, zeros=True), pmfs(shape, seed + 10, dtype, zeros=True)
    g = torch.Generator().manual_seed(seed)
    d = torch.rand(shape, generator=g, dtype=torch.float64).clamp(1e-3, 1 - 1e-3).to(dtype)
    dx = 0.5
    p, q = p / dx, q / dx                                              # densities on cells of width 0.5
    got = gan_value(d, p, q, dx)
    pn, qn, dn = (t.double().numpy() for t in (p, q, d))
    expected = ((scipy.special.xlogy(pn, dn) + scipy.special.xlogy(qn, 1 - dn)) * dx).sum(-1)
    scale = ((p.double() * d.double().log().abs() + q.double() * (1 - d.double()).log().abs()) * dx).sum(-1)
    assert_close_scaled(got.double(), torch.from_numpy(np.asarray(expected)), scale, ulps=ULPS[dtype], dtype=dtype)


def test_gan_value_zero_density_allows_d_at_the_boundary_and_checks_d():
    p, q = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert gan_value(torch.tensor([1.0, 0.0], dtype=torch.float64), p, q) == 0.0   # the perfect discriminator
    assert gan_value(torch.tensor([0.0, 0.0], dtype=torch.float64), p, q) == -math.inf
    with pytest.raises(ValueError, match=r"D\(x\) in \[0, 1\]"):
        gan_value(torch.tensor([1.5, 0.0], dtype=torch.float64), p, q)
    with pytest.raises(ValueError, match=r"densities' shape \(2,\)"):
        gan_value(torch.tensor([0.5], dtype=torch.float64), p, q)


@pytest.mark.parametrize("shape, seed", [((6,), 0), ((4, 30), 1)])
def test_theorem_1_value_at_d_star_is_minus_log_4_plus_twice_jsd(shape, seed):
    p, q = pmfs(shape, seed, zeros=True), pmfs(shape, seed + 1, zeros=True)
    c = virtual_criterion(p, q)
    assert_close_scaled(c, -math.log(4) + 2 * js_divergence(p, q), xlogx_scale(p, q) + math.log(4))
    assert_close_scaled(c, gan_value(optimal_discriminator(p, q), p, q), xlogx_scale(p, q) + math.log(4))
    assert (c >= -math.log(4) - 1e-12).all() and (c <= 1e-12).all()
    assert virtual_criterion(p, p).sub(-math.log(4)).abs().max() < 1e-14


def test_virtual_criterion_is_finite_where_d_star_rounds_to_one():
    x, dx = grid(-15, 15, 3001)
    p, q = normal(0.0, 0.5).log_prob(x).exp(), normal(6.0, 0.5).log_prob(x).exp()
    d_star = optimal_discriminator(p, q)
    assert ((d_star == 1) & (q > 0)).any()                            # so gan_value(D*) is -inf
    assert gan_value(d_star, p, q, dx) == -math.inf
    c = virtual_criterion(p, q, dx)
    assert math.isfinite(float(c))
    assert float(c) == pytest.approx(-math.log(4) + 2 * float(js_divergence(p, q, dx)), abs=1e-12)


def test_binary_entropy_and_cross_entropy_equal_torch():
    g = torch.Generator().manual_seed(0)
    target, d = torch.rand(100, generator=g, dtype=torch.float64), torch.rand(100, generator=g, dtype=torch.float64)
    d = d.clamp(0.01, 0.99)
    assert torch.allclose(binary_cross_entropy(target, d), F.binary_cross_entropy(d, target, reduction="none"),
                          rtol=1e-13, atol=0)
    assert torch.allclose(binary_entropy(target), Bernoulli(probs=target).entropy(), rtol=1e-12, atol=1e-15)
    assert torch.allclose(binary_cross_entropy(target, target), binary_entropy(target), rtol=1e-14, atol=0)
    assert binary_entropy(torch.tensor([0.0, 1.0, 0.5])).tolist() == [0.0, 0.0, pytest.approx(math.log(2))]


def test_grid_cell_centres_and_width():
    x, dx = grid(-1.0, 1.0, 4)
    assert dx == 0.5 and x.tolist() == [-0.75, -0.25, 0.25, 0.75] and x.dtype == torch.float64
    with pytest.raises(ValueError, match="hi > lo"):
        grid(1.0, -1.0, 10)


# ---------------------------------------------------------------------------------------------- losses


@pytest.mark.parametrize("B", [1, 7, 256])
@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_equal_torch_bce_with_logits(B, dtype):
    g = torch.Generator().manual_seed(B)
    real, fake = (4 * torch.randn(B, generator=g, dtype=torch.float64)).to(dtype), (4 * torch.randn(B + 3, generator=g)).to(dtype)
    ones, zeros = torch.ones_like(fake), torch.zeros_like(fake)
    scale = 8.0                                                       # the size of the softplus terms summed
    assert_close_scaled(g_loss_nonsaturating(fake), F.binary_cross_entropy_with_logits(fake, ones), scale)
    assert_close_scaled(g_loss_nonsaturating(fake), -F.logsigmoid(fake).mean(), scale)
    assert_close_scaled(g_loss_saturating(fake), -F.binary_cross_entropy_with_logits(fake, zeros), scale)
    assert_close_scaled(g_loss_saturating(fake), F.logsigmoid(-fake).mean(), scale)
    expected = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                + F.binary_cross_entropy_with_logits(fake, zeros))
    assert_close_scaled(d_loss(real, fake), expected, 2 * scale)
    assert g_loss_nonsaturating(fake).shape == g_loss_saturating(fake).shape == d_loss(real, fake).shape == ()


def test_losses_are_finite_for_confident_discriminators_and_their_gradients_are_d_and_1_minus_d():
    logits = torch.tensor([-200.0, -90.0, -20.0, 0.0, 20.0, 90.0], requires_grad=True)
    for loss in (g_loss_nonsaturating, g_loss_saturating):
        assert torch.isfinite(loss(logits))
    assert float(g_loss_nonsaturating(logits[:1].detach())) == pytest.approx(200.0)
    assert torch.isinf(-torch.log(torch.sigmoid(logits[:1].detach()))).all()   # what the naive form gives
    d = torch.sigmoid(logits.detach().double())
    (g_loss_saturating(logits) * len(logits)).backward()
    assert torch.allclose(logits.grad.double(), -d, rtol=1e-6, atol=1e-30)            # d/dl log(1 - D) = -D
    logits.grad = None
    (g_loss_nonsaturating(logits) * len(logits)).backward()
    assert torch.allclose(logits.grad.double(), -(1 - d), rtol=1e-6, atol=1e-30)      # d/dl -log D = -(1 - D)


# ---------------------------------------------------------------------------------------------- data and metric


def test_ring_centers():
    c = ring_centers(8, 2.0)
    assert c.shape == (8, 2)
    assert torch.allclose(c.norm(dim=1), torch.full((8,), 2.0))
    angles = torch.atan2(c[:, 1], c[:, 0]) % (2 * math.pi)
    assert torch.allclose(angles, torch.arange(8) * math.pi / 4, atol=1e-6)
    with pytest.raises(ValueError, match="k >= 1"):
        ring_centers(0)


@pytest.mark.parametrize("k, radius, std", [(8, 2.0, 0.05), (5, 1.0, 0.02), (3, 4.0, 0.1)])
def test_mixture_of_gaussians_statistics(k, radius, std):
    n = 40_000
    x = mixture_of_gaussians_2d(n, k=k, radius=radius, std=std, generator=torch.Generator().manual_seed(0))
    assert x.shape == (n, 2) and x.dtype == torch.float32
    dist, which = torch.cdist(x, ring_centers(k, radius)).min(1)
    counts = torch.bincount(which, minlength=k).double()
    # each mode gets n/k samples: binomial standard deviation sqrt(n p (1 - p))
    assert ((counts - n / k).abs() < 5 * math.sqrt(n / k * (1 - 1 / k))).all()
    # the squared distance to the centre is std^2 times a chi-square with 2 degrees of freedom: mean 2 std^2
    msd = float(dist.square().mean())
    assert msd == pytest.approx(2 * std**2, rel=5 * 2 / math.sqrt(n))   # chi2_2 has relative std 1: 5 sigma
    assert float(x.mean(0).norm()) < 5 * radius / math.sqrt(n)


def test_mixture_of_gaussians_is_seeded():
    a = mixture_of_gaussians_2d(100, generator=torch.Generator().manual_seed(1))
    b = mixture_of_gaussians_2d(100, generator=torch.Generator().manual_seed(1))
    c = mixture_of_gaussians_2d(100, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="n >= 0"):
        mixture_of_gaussians_2d(-1)


def test_mode_coverage():
    centers, std = ring_centers(8, 2.0), 0.05
    real = mixture_of_gaussians_2d(8000, std=std, generator=torch.Generator().manual_seed(0))
    cov = mode_coverage(real, centers, std)
    assert cov["modes_hit"] == 8 and int(cov["counts"].sum()) == round(cov["high_quality"] * 8000)
    assert cov["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)   # P(chi2_2 <= 9)
    one_mode = centers[3] + std * torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))
    cov = mode_coverage(one_mode, centers, std)
    assert cov["modes_hit"] == 1 and cov["counts"].argmax() == 3
    at_centre = mode_coverage(torch.zeros(100, 2), centers, std)               # the centre guess
    assert at_centre["modes_hit"] == 0 and at_centre["high_quality"] == 0.0 and not at_centre["counts"].any()
    with pytest.raises(ValueError, match=r"samples \(N, 2\)"):
        mode_coverage(torch.zeros(10, 3), centers, std)


# ---------------------------------------------------------------------------------------------- models


@pytest.mark.parametrize("B, z_dim, x_dim", [(1, 8, 2), (5, 2, 2), (3, 4, 1)])
def test_generator_and_discriminator_shapes(B, z_dim, x_dim):
    G, D = Generator(z_dim=z_dim, x_dim=x_dim, hidden=16), Discriminator(x_dim=x_dim, hidden=16)
    x = G(torch.randn(B, z_dim))
    assert x.shape == (B, x_dim) and D(x).shape == (B,)
    assert G.sample(B, torch.Generator().manual_seed(0)).shape == (B, x_dim)
    assert torch.equal(G.sample(4, torch.Generator().manual_seed(0)), G.sample(4, torch.Generator().manual_seed(0)))


def test_one_step_lowers_the_d_and_the_g_loss():
    torch.manual_seed(0)
    G, D = Generator(hidden=32), Discriminator(hidden=32)
    g = torch.Generator().manual_seed(0)
    x_real, z = mixture_of_gaussians_2d(256, generator=g), torch.randn(256, 8, generator=g)
    opt_d = torch.optim.SGD(D.parameters(), lr=0.05)
    before = d_loss(D(x_real), D(G(z).detach()))
    opt_d.zero_grad(); before.backward(); opt_d.step()
    after = d_loss(D(x_real), D(G(z).detach()))
    assert after < before - 1e-4
    opt_g = torch.optim.SGD(G.parameters(), lr=0.05)
    for loss in (g_loss_nonsaturating, g_loss_saturating):
        before = loss(D(G(z)))
        opt_g.zero_grad(); before.backward(); opt_g.step()
        assert loss(D(G(z))) < before - 1e-5


def test_profiles():
    assert set(GAN_THEORY_CONFIGS) == {"smoke", "cpu", "gpu"}
    smoke, cpu = gan_theory_config("smoke"), gan_theory_config("cpu")
    assert smoke.gan_steps < cpu.gan_steps and smoke.d_steps < cpu.d_steps and smoke.gan_seeds <= cpu.gan_seeds
    for cfg in GAN_THEORY_CONFIGS.values():
        assert 0 in cfg.snapshots and max(cfg.snapshots) <= cfg.gan_steps
    assert gan_theory_config("smoke", gan_steps=7).gan_steps == 7
