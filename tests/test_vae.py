"""Chapter 07: Gaussian KL, the ELBO, the IWAE bound, the VAE, the plain AE and the hierarchical VAE.

Oracles: torch.distributions (KL, Normal and Bernoulli log-probabilities) and, for the bounds, the exact
log-likelihood of tiny models computed by quadrature over a 1-D or 2-D latent.
"""

import json
import math

import pytest
import torch
from tolerance import assert_close_scaled
from torch.distributions import Bernoulli, Normal, kl_divergence

from course_lib import checkpoints
from course_lib.data import ImageDataset
from course_lib.vae import checks, hierarchical, vae
from course_lib.vae.config import vae_config
from course_lib.vae.hierarchical import HierarchicalVAE, build_hvae
from course_lib.vae.vae import (
    AE,
    VAE,
    active_units,
    bernoulli_log_likelihood,
    binarize,
    elbo,
    gaussian_kl,
    gaussian_log_prob,
    iwae_nll,
    reparameterize,
    train_step,
)

SMALL = (1, 3, 3)  # 9-pixel images: small enough for exact log-likelihoods by quadrature
ULPS = {torch.float32: 64, torch.float64: 4096}  # rounding allowed per dtype, in units of the summed terms' size


def binary_images(n: int, shape=(1, 28, 28), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.rand(n, *shape, generator=g), generator=g)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("N, D, seed", [(1, 1, 0), (5, 2, 1), (64, 16, 2), (7, 33, 3)])
def test_gaussian_kl_equals_torch_distributions(N, D, seed):
    g = torch.Generator().manual_seed(seed)
    mu, logvar = torch.randn(N, D, generator=g) * 2, torch.randn(N, D, generator=g) * 1.5
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    got = gaussian_kl(mu, logvar)
    assert got.shape == (N,)
    # sigma^2 - 1 - log sigma^2 cancels: the rounding scales with the terms summed, not with the KL
    terms = 0.5 * (mu.square() + logvar.exp() + 1 + logvar.abs()).sum(-1)          # (N,)
    for i in range(N):
        assert_close_scaled(got[i], expected[i], terms[i])


def test_gaussian_kl_is_zero_only_at_the_prior():
    assert gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() < 1e-7
    assert (gaussian_kl(torch.full((3, 4), 0.1), torch.zeros(3, 4)) > 0).all()


@pytest.mark.parametrize("shape, seed", [((4, 3), 0), ((2, 5, 8), 1), ((1, 1), 2)])
@pytest.mark.parametrize("standard", [True, False])
def test_gaussian_log_prob_equals_normal_log_prob(shape, seed, standard):
    g = torch.Generator().manual_seed(seed)
    z, mu, logvar = (torch.randn(shape, generator=g) for _ in range(3))
    if standard:
        mu, logvar = torch.zeros_like(z), torch.zeros_like(z)
        expected, got = Normal(0.0, 1.0).log_prob(z).sum(-1), gaussian_log_prob(z)
    else:
        expected = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
        got = gaussian_log_prob(z, mu, logvar)
    assert got.shape == expected.shape == shape[:-1]
    # log 2 pi + log sigma^2 + (z - mu)^2 / sigma^2 may cancel: the tolerance follows the terms summed
    terms = 0.5 * (math.log(2 * math.pi) + logvar.abs() + (z - mu).square() * torch.exp(-logvar)).sum(-1)
    for i in range(got.numel()):
        assert_close_scaled(got.flatten()[i], expected.flatten()[i], terms.flatten()[i])


@pytest.mark.parametrize("lead, seed", [((4,), 0), ((3, 4), 1)])
def test_bernoulli_log_likelihood_equals_bernoulli_log_prob(lead, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*lead, 1, 5, 6, generator=g) * 3
    x = binary_images(4, (1, 5, 6), seed)                               # broadcast over the leading k
    expected = Bernoulli(logits=logits).log_prob(x.expand_as(logits)).flatten(-3).sum(-1)
    got = bernoulli_log_likelihood(logits, x)
    assert got.shape == lead
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_bernoulli_on_gray_images_is_the_expected_log_likelihood_of_their_binarizations():
    g = torch.Generator().manual_seed(0)
    logits, x = torch.randn(1, 1, 2, 2, generator=g), torch.rand(1, 1, 2, 2, generator=g)
    # all 16 binary images b, weighted by prod Bern(b; x)
    bits = torch.tensor([[(i >> j) & 1 for j in range(4)] for i in range(16)], dtype=torch.float).view(16, 1, 2, 2)
    weights = Bernoulli(probs=x).log_prob(bits).flatten(1).sum(1).exp()
    expected = (weights * Bernoulli(logits=logits).log_prob(bits).flatten(1).sum(1)).sum()
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x)[0], expected, rtol=1e-5, atol=1e-5)


def test_reparameterize_with_given_noise_and_its_moments():
    mu, logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[math.log(4.0), 0.0]])
    torch.testing.assert_close(reparameterize(mu, logvar, torch.tensor([[-0.5, 1.0]])), torch.tensor([[0.0, -1.0]]))
    torch.manual_seed(0)
    z = reparameterize(mu.expand(200_000, 2), logvar.expand(200_000, 2))
    torch.testing.assert_close(z.mean(0), mu[0], atol=0.02, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([2.0, 1.0]), atol=0.02, rtol=0)


def test_binarize_is_seeded_and_unbiased():
    x = torch.rand(2000, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    b = binarize(x, torch.Generator().manual_seed(1))
    assert torch.equal(b, binarize(x, torch.Generator().manual_seed(1)))
    assert set(b.unique().tolist()) == {0.0, 1.0}
    assert abs(b.mean().item() - x.mean().item()) < 2e-3
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        binarize(x[0])


def test_active_units_threshold_on_the_variance_of_posterior_means():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(500, 4, generator=g) * torch.tensor([1.0, 0.05, 0.5, 0.0])
    assert active_units(mu).tolist() == [True, False, True, False]
    torch.testing.assert_close(active_units(mu, 0.3), mu.var(0) > 0.3)


def test_wrong_shapes_raise():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        gaussian_kl(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        gaussian_kl(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"\(\.\.\., C, H, W\)"):
        bernoulli_log_likelihood(torch.zeros(3, 784), torch.zeros(3, 784))
    for model in (AE(), VAE(), build_hvae()):
        with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
            model.terms(torch.zeros(2, 784))
    with pytest.raises(ValueError, match="k must be"):
        iwae_nll(VAE(), binary_images(2), 0)
    with pytest.raises(ValueError, match=r"z_t \(\.\.\., 8\) at level 2"):
        build_hvae().p_step(2, torch.zeros(3, 16))
    with pytest.raises(ValueError, match=r"t in 2\.\.2"):
        build_hvae().p_step(1, torch.zeros(3, 16))
    with pytest.raises(ValueError, match=">= 2 latent layers"):
        HierarchicalVAE((16,))
    with pytest.raises(TypeError, match="not a latent-variable model"):
        elbo(AE(), binary_images(2))


# ---------------------------------------------------------------------------------------------- models


@pytest.mark.parametrize("model, latent", [(AE(latent_dim=2, hidden=32), (2,)), (VAE(latent_dim=5, hidden=32), (5,)),
                                           (HierarchicalVAE((6, 3), hidden=32, top_hidden=8), (6, 3))])
def test_shapes(model, latent):
    x = binary_images(4)
    if isinstance(model, AE):
        assert model.encode(x).shape == (4, 2)
    elif isinstance(model, VAE):
        assert all(t.shape == (4, 5) for t in model.encode(x))
        assert model.log_weights(x, 3).shape == (3, 4)
    else:
        chain = model.infer(x, k=3)
        assert [tuple(z.shape) for z, _, _ in chain] == [(3, 4, d) for d in latent]
        assert model.p_step(2, chain[1][0])[0].shape == (3, 4, 6)
        assert model.log_weights(x, 3).shape == (3, 4)
    assert model.decode(torch.zeros(7, latent[0])).shape == (7, 1, 28, 28)
    recon, kl = model.terms(x)
    assert recon.shape == kl.shape == (4,) and (recon < 0).all()
    if not isinstance(model, AE):
        samples = model.sample(6, torch.Generator().manual_seed(0))
        assert samples.shape == (6, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1
        assert torch.equal(samples, model.sample(6, torch.Generator().manual_seed(0)))  # seeded


def test_hierarchical_vae_has_the_single_level_vaes_parameter_budget():
    single, hier = n_params(vae.build("vae_latent16")), n_params(build_hvae())
    assert abs(hier - single) / single < 0.01
    assert build_hvae().latent_dims[0] == vae.build("vae_latent16").latent_dim


@pytest.mark.parametrize("make", [lambda: AE(2, 64), lambda: VAE(8, 64), lambda: HierarchicalVAE((8, 4), 64, 16)])
def test_one_step_lowers_the_loss(make):
    torch.manual_seed(0)
    model, x = make(), binary_images(64)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss() -> float:
        torch.manual_seed(1)                                            # the same eps before and after
        recon, kl = model.terms(x)
        return -(recon - kl).mean().item()

    before = loss()
    torch.manual_seed(1)
    step = train_step(model, optimizer, x)
    assert step["loss"] == pytest.approx(before, rel=1e-6)
    assert loss() < before - 0.05                                       # nats per image, same eps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vae_log_weights_equal_torch_distributions_on_the_same_noise(dtype):
    torch.manual_seed(0)
    model, x, k = VAE(4, 32).to(dtype), binary_images(5).to(dtype), 3
    torch.manual_seed(7)
    got = model.log_weights(x, k)
    assert got.dtype == dtype
    torch.manual_seed(7)
    mu, logvar = model.encode(x)
    q = Normal(mu, torch.exp(0.5 * logvar))
    z = mu + q.stddev * torch.randn(k, *mu.shape, dtype=dtype)          # the draws log_weights made
    log_px = Bernoulli(logits=model.decode(z)).log_prob(x.expand(k, *x.shape)).flatten(2)   # (k, N, 784)
    log_pz, log_qz = Normal(0.0, 1.0).log_prob(z), q.log_prob(z)        # (k, N, D) each
    expected = log_px.sum(-1) + log_pz.sum(-1) - log_qz.sum(-1)
    # a sum of 784 + 2 D terms of both signs: rounding scales with the sum of their sizes (~550 nats)
    terms = log_px.abs().sum(-1) + log_pz.abs().sum(-1) + log_qz.abs().sum(-1)
    assert_close_scaled(got.detach(), expected.detach(), terms.detach(), ulps=ULPS[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hierarchical_log_weights_equal_torch_distributions_on_the_same_noise(dtype):
    torch.manual_seed(0)
    model, x, k = HierarchicalVAE((4, 3, 2), hidden=32, top_hidden=8).to(dtype), binary_images(5).to(dtype), 2
    torch.manual_seed(7)
    got = model.log_weights(x, k)
    assert got.dtype == dtype
    torch.manual_seed(7)
    mu, logvar = model.encoder(x.flatten(1)).chunk(2, -1)
    zs, log_q, terms = [], 0, 0
    for t in range(3):                                                  # q(z_1 | x), q(z_2 | z_1), q(z_3 | z_2)
        if t > 0:
            mu, logvar = model.up[t - 1](zs[-1]).chunk(2, -1)
        q = Normal(mu.expand(k, 5, -1), torch.exp(0.5 * logvar).expand(k, 5, -1))
        zs.append(q.mean + q.stddev * torch.randn(q.mean.shape, dtype=dtype))
        log_q = log_q + q.log_prob(zs[-1]).sum(-1)
        terms = terms + q.log_prob(zs[-1]).abs().sum(-1)
    log_p = Normal(0.0, 1.0).log_prob(zs[2]).sum(-1)                    # p(z_3)
    terms = terms + Normal(0.0, 1.0).log_prob(zs[2]).abs().sum(-1)
    for t in (1, 0):                                                    # p(z_2 | z_3), p(z_1 | z_2)
        mu, logvar = model.down[t](zs[t + 1]).chunk(2, -1)
        log_p_t = Normal(mu, torch.exp(0.5 * logvar)).log_prob(zs[t])
        log_p, terms = log_p + log_p_t.sum(-1), terms + log_p_t.abs().sum(-1)
    log_px = Bernoulli(logits=model.decode(zs[0])).log_prob(x.expand(k, *x.shape)).flatten(2)
    log_p, terms = log_p + log_px.sum(-1), terms + log_px.abs().sum(-1)
    assert_close_scaled(got.detach(), (log_p - log_q).detach(), terms.detach(), ulps=ULPS[dtype])


# ---------------------------------------------------------------------------------------------- bounds


def exact_nll_vae(model: VAE, x: torch.Tensor, grid: int = 4001, lim: float = 8.0) -> torch.Tensor:
    """-log p(x) = -log int p(x|z) p(z) dz by the trapezoid rule over a 1-D latent: x (N, ...) -> (N,)."""
    z = torch.linspace(-lim, lim, grid, dtype=torch.float64)[:, None]                 # (G, 1)
    log_joint = bernoulli_log_likelihood(model.decode(z)[:, None], x) + gaussian_log_prob(z)[:, None]  # (G, N)
    return -(torch.logsumexp(log_joint, 0) + math.log(2 * lim / (grid - 1)))


def exact_nll_hvae(model: HierarchicalVAE, x: torch.Tensor, grid: int = 801, lim: float = 8.0) -> torch.Tensor:
    """-log p(x) = -log int int p(x|z_1) p(z_1|z_2) p(z_2) dz_1 dz_2 on a 2-D grid (1-D latents)."""
    g = torch.linspace(-lim, lim, grid, dtype=torch.float64)[:, None]                 # (G, 1)
    mu, logvar = model.p_step(2, g)                                                   # p(z_1 | z_2): (G2, 1)
    log_p_z1_given_z2 = gaussian_log_prob(g[:, None], mu[None], logvar[None])         # (G1, G2)
    log_p_z1 = torch.logsumexp(log_p_z1_given_z2 + gaussian_log_prob(g)[None], 1)     # (G1,)
    log_joint = bernoulli_log_likelihood(model.decode(g)[:, None], x) + log_p_z1[:, None]  # (G1, N)
    return -(torch.logsumexp(log_joint, 0) + 2 * math.log(2 * lim / (grid - 1)))


def tiny(kind: str, seed: int):
    torch.manual_seed(seed)
    model = VAE(1, 16, SMALL) if kind == "vae" else HierarchicalVAE((1, 1), 16, 8, SMALL)
    with torch.no_grad():                                               # a sharper decoder: a real posterior gap
        for p in model.decoder.parameters():
            p.mul_(3)
    return model.double().requires_grad_(False)


@pytest.mark.parametrize("kind", ["vae", "hvae"])
@pytest.mark.parametrize("seed", [0, 1])
def test_bounds_against_the_exact_log_likelihood(kind, seed):
    model, x = tiny(kind, seed), binary_images(6, SMALL, seed).double()
    exact = exact_nll_vae(model, x) if kind == "vae" else exact_nll_hvae(model, x)       # (6,)
    R = 400                                                             # repetitions of each estimate
    xs = x.repeat(R, 1, 1, 1)
    torch.manual_seed(0)
    recon, kl = elbo(model, xs)
    draws = {"elbo": -(recon - kl).view(R, 6)} | {k: iwae_nll(model, xs, k).view(R, 6) for k in (1, 10, 100)}
    neg_elbo, nll = draws["elbo"].mean(0), {k: draws[k].mean(0) for k in (1, 10, 100)}
    assert (neg_elbo > exact + 0.5).all()                               # a real gap: q is not the posterior
    se = ((draws["elbo"].var() + draws[1].var()) / draws[1].numel()).sqrt()
    assert (nll[1].mean() - neg_elbo.mean()).abs() < 4 * se             # k = 1 is the ELBO (in expectation)
    m = {k: draws[k].mean() for k in (1, 10, 100)}                     # means over images and repetitions
    s = {k: (draws[k].var(0).sum() / R).sqrt() / 6 for k in (1, 10, 100)}  # their standard errors
    assert m[1] - m[10] > 4 * (s[1] ** 2 + s[10] ** 2).sqrt()           # tightening, beyond the noise
    assert m[10] - m[100] > 4 * (s[10] ** 2 + s[100] ** 2).sqrt()
    assert m[100] > exact.mean() - 3 * s[100]                           # ... and never below -log p(x)
    # ... towards log p(x): one estimate with k = 20,000 per image
    close = iwae_nll(model, x.repeat(3, 1, 1, 1), 20_000).view(3, 6) - exact
    assert close.mean().abs() < 0.02 and close.abs().max() < 0.1


@pytest.mark.parametrize("make", [lambda: VAE(8, 64), lambda: HierarchicalVAE((8, 4), 64, 16)])
def test_iwae_with_k1_is_minus_the_elbo_in_expectation(make):
    torch.manual_seed(0)
    model, S = make().requires_grad_(False), 4000
    x = binary_images(2).repeat(S, 1, 1, 1)                             # S draws for each of 2 images
    torch.manual_seed(1)
    recon, kl = elbo(model, x)
    neg_elbo = -(recon - kl).view(S, 2)
    nll_1 = iwae_nll(model, x, 1).view(S, 2)
    se = (neg_elbo.var(0) / S + nll_1.var(0) / S).sqrt()
    assert ((neg_elbo.mean(0) - nll_1.mean(0)).abs() < 4 * se).all()
    # and a real difference would be seen: the bound with k = 10 is below by many standard errors
    nll_10 = iwae_nll(model, x[: 2 * 500], 10).view(500, 2)
    assert (nll_10.mean(0) < nll_1.mean(0) - 10 * se).all()


@pytest.mark.parametrize("make", [lambda: VAE(8, 64), lambda: HierarchicalVAE((8, 4), 64, 16)])
def test_iwae_tightens_as_k_grows(make):
    """Full-size models (784 pixels): the mean bound over 50 images x 20 repetitions drops with k, beyond its noise."""
    torch.manual_seed(0)
    R, model = 20, make().requires_grad_(False)
    x = binary_images(50).repeat(R, 1, 1, 1)
    torch.manual_seed(1)
    draws = {k: iwae_nll(model, x, k, batch_size=500).view(R, 50) for k in (1, 5, 50)}
    m = {k: d.mean() for k, d in draws.items()}
    s = {k: (d.var(0).sum() / R).sqrt() / 50 for k, d in draws.items()}  # standard errors of the means
    assert m[1] - m[5] > 4 * (s[1] ** 2 + s[5] ** 2).sqrt()
    assert m[5] - m[50] > 4 * (s[5] ** 2 + s[50] ** 2).sqrt()


# ---------------------------------------------------------------------------------------------- training, checkpoints


def fake_fashion_mnist(split: str = "train") -> ImageDataset:
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    images = (torch.rand(256, 1, 28, 28, generator=g) < 0.3).float() * torch.rand(256, 1, 28, 28, generator=g)
    return ImageDataset(images, torch.arange(256) % 10)


def test_train_model_reports_bounds_and_history(monkeypatch):
    import course_lib.data

    monkeypatch.setattr(course_lib.data, "fashion_mnist", fake_fashion_mnist)
    torch.manual_seed(0)
    cfg = vae.TrainConfig(epochs=3, batch_size=32, warmup_epochs=1, n_eval=64, k_eval=20)
    metrics = vae.train_model(VAE(4, 32), cfg, progress=False)
    assert len(metrics["history"]["recon"]) == 3 and metrics["history"]["recon"][-1] > metrics["history"]["recon"][0]
    assert metrics["nll_k20"] < metrics["neg_elbo"] == pytest.approx(metrics["kl"] - metrics["recon"], abs=2e-3)
    ae_metrics = vae.train_model(AE(2, 32), cfg, progress=False)
    assert "kl" not in ae_metrics and ae_metrics["recon"] < 0


def test_load_trains_and_caches_without_a_shipped_checkpoint(monkeypatch, tmp_path):
    import course_lib.data

    monkeypatch.setattr(course_lib.data, "fashion_mnist", fake_fashion_mnist)
    monkeypatch.setattr(checkpoints, "shipped_dir", lambda: tmp_path / "none")
    model = vae.load("vae_latent2", "cpu", "smoke")
    assert model.checkpoint_entry["origin"] == "trained" and not model.training
    assert vae.load("vae_latent2", "cpu", "smoke").checkpoint_entry["origin"] == "cached"


SHIPPED_NAMES = list(vae.SHIPPED) + [hierarchical.NAME]


@pytest.mark.parametrize("name", SHIPPED_NAMES)
def test_shipped_checkpoints_fit_and_their_bounds_are_ordered(name):
    folder = checkpoints.shipped_dir()
    if name not in checkpoints.read_manifest(folder):
        pytest.skip(f"{name} is not shipped")
    model = build_hvae() if name == hierarchical.NAME else vae.build(name)
    entry = checkpoints.load(name, model, train=None)
    m = entry["metrics"]
    assert entry["origin"] == "shipped" and m["n_eval"] == 10_000
    if name.startswith(("vae", "hvae")):
        assert 0 < m["nll_k100"] < m["neg_elbo"] and m["kl"] > 0
        assert len(m["history"]["kl"]) == m["epochs"]


def test_notebook_config_profiles_grow():
    smoke, cpu = vae_config("smoke"), vae_config("cpu")
    assert smoke.steps < cpu.steps and smoke.n_fid < cpu.n_fid and smoke.k_nll == cpu.k_nll == 100


# ---------------------------------------------------------------------------------------------- exercises


def test_checks_accept_the_right_answers_and_reject_others(capsys):
    assert checks.check_gaussian_kl(round(0.5 + 0.5 * (3 - math.log(4)), 3))
    assert not checks.check_gaussian_kl(0.5)
    assert checks.check_reparameterization(0.0) and not checks.check_reparameterization(1.0)
    assert checks.check_iwae_estimate(round(-100 + math.log((1 + math.exp(-1) + math.exp(-3)) / 3), 3))
    assert not checks.check_iwae_estimate(round(-304 / 3, 3))           # the mean of the log weights: the ELBO-like one
    nats = -784 * math.log(0.9)                                         # (nats, bits per pixel), 3 digits each
    assert checks.check_bernoulli_nll((round(nats, 1), round(nats / (784 * math.log(2)), 3)))
    assert not checks.check_bernoulli_nll(0.1)
    assert not checks.check_gaussian_kl(None)
    assert "Not answered yet" in capsys.readouterr().out


@pytest.mark.parametrize("levels", [(8, 4), (6, 4, 2)])
def test_hierarchical_kl_per_level_adds_up_to_the_kl_term(levels):
    """Each level's KL of one sampled chain; their sum is ``terms``' KL on the same noise, and the top level's
    equals torch.distributions' closed-form KL of q(z_T | z_{T-1}) against N(0, I)."""
    from torch.distributions import Normal, kl_divergence

    torch.manual_seed(0)
    model, x = HierarchicalVAE(levels, 32, 16).to(torch.float64), binary_images(6).to(torch.float64)
    torch.manual_seed(3)
    per_level = model.kl_per_level(x)
    torch.manual_seed(3)
    _, kl = model.terms(x)
    torch.manual_seed(3)
    chain = model.infer(x)
    assert len(per_level) == len(levels) and all(t.shape == (6,) for t in per_level)
    torch.testing.assert_close(sum(per_level), kl, rtol=1e-12, atol=1e-9)
    _, mu, logvar = chain[-1]
    top = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(per_level[-1], top, rtol=1e-10, atol=1e-10)


def test_seed_spread_keeps_each_finished_run_and_resumes_with_the_missing_ones(tmp_path, monkeypatch):
    from course_lib.vae import seeds
    from course_lib.vae.train import TrainConfig

    tiny = TrainConfig(epochs=1, n_train=256, n_eval=50, k_eval=3, warmup_epochs=0)
    path = tmp_path / "spread.json"
    first = seeds.run((1,), path=path, cfg_override=tiny, progress=False)
    assert set(first) == {"vae_latent16_seed1", "hvae_2level_seed1"}
    assert all(r["seed"] == 1 and r["n_eval"] == 50 and "nll_k3" in r and "history" not in r for r in first.values())
    assert seeds.read(path) == first                       # on disk, as JSON numbers only
    calls = []
    monkeypatch.setattr(seeds, "train_model", lambda *a, **k: calls.append(a) or {"history": {}})
    del first["hvae_2level_seed1"]
    path.write_text(json.dumps(first))                     # as if the job had been killed after one run
    again = seeds.run((1,), path=path, cfg_override=tiny, progress=False)
    assert len(calls) == 1 and set(again) == {"vae_latent16_seed1", "hvae_2level_seed1"}
