"""Chapter 06's autoencoders: each kernel against its oracle (scipy, torch.distributions, torch.func, sklearn),
the models' shapes, and one step of each loss going down."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from tolerance import scaled_atol
from torch.distributions import Bernoulli, kl_divergence

from course_lib.autoencoders import checks
from course_lib.autoencoders.config import ae_config
from course_lib.autoencoders.kernels import (
    contractive_penalty,
    fraction_active,
    gaussian_noise,
    jacobian_sq_norms,
    k_sparse,
    kl_sparsity,
    mask_noise,
    principal_angles,
    sigmoid_contractive_penalty,
)
from course_lib.autoencoders.models import Autoencoder, encode_all, loss_terms, reconstruction_mse, train_step

# ---------------------------------------------------------------------------------------------- principal angles


@pytest.mark.parametrize("D, p, q", [(10, 3, 3), (50, 8, 5), (50, 4, 9), (784, 16, 16), (6, 1, 1)])
@pytest.mark.parametrize("seed", [0, 1])
def test_principal_angles_equal_scipy(D, p, q, seed):
    g = torch.Generator().manual_seed(seed)
    U, V = torch.randn(D, p, generator=g, dtype=torch.float64), torch.randn(D, q, generator=g, dtype=torch.float64)
    ours = principal_angles(U, V)
    theirs = scipy.linalg.subspace_angles(U.numpy(), V.numpy())        # descending
    assert ours.shape == (min(p, q),)
    np.testing.assert_allclose(ours.numpy(), theirs[::-1], atol=1e-10)
    assert (ours.diff() >= 0).all()                                    # ascending, as documented


@pytest.mark.parametrize("eps", [1e-9, 1e-5, 1e-2])
def test_principal_angles_small_angles_are_accurate(eps):
    """A subspace rotated by eps radians: arccos alone would give ~1e-8 error; the sine branch does not."""
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(30, 6, generator=g, dtype=torch.float64))
    U = Q[:, :3]
    V = U.clone()
    V[:, 0] = math.cos(eps) * Q[:, 0] + math.sin(eps) * Q[:, 5]
    ours = principal_angles(U, V)
    np.testing.assert_allclose(ours.numpy(), [0, 0, eps], atol=1e-13, rtol=1e-8)
    np.testing.assert_allclose(ours.numpy(), scipy.linalg.subspace_angles(U.numpy(), V.numpy())[::-1], atol=1e-13)


def test_principal_angles_ignore_the_basis_and_float32():
    g = torch.Generator().manual_seed(3)
    U = torch.randn(20, 4, generator=g)
    mixed = U @ torch.randn(4, 4, generator=g)                        # same column space, another basis
    assert principal_angles(U, mixed).max() < 1e-3
    assert principal_angles(U, mixed).dtype == torch.float32


def test_principal_angles_bad_shapes():
    with pytest.raises(ValueError, match=r"U \(D, p\) and V \(D, q\)"):
        principal_angles(torch.randn(5, 2), torch.randn(6, 2))
    with pytest.raises(ValueError, match=r"\(D, p\)"):
        principal_angles(torch.randn(5), torch.randn(5, 2))


# ---------------------------------------------------------------------------------------------- KL sparsity


@pytest.mark.parametrize("rho", [0.01, 0.05, 0.3])
@pytest.mark.parametrize("B, D", [(1, 4), (32, 64), (7, 300)])
def test_kl_sparsity_equals_torch_distributions(rho, B, D):
    g = torch.Generator().manual_seed(B * D)
    h = torch.sigmoid(3 * torch.randn(B, D, generator=g, dtype=torch.float64))
    expected = kl_divergence(Bernoulli(probs=torch.full((D,), rho, dtype=torch.float64)), Bernoulli(probs=h.mean(0))).sum()
    torch.testing.assert_close(kl_sparsity(h, rho), expected)


def test_kl_sparsity_is_zero_at_rho_and_pushes_mean_activation_to_rho():
    h = torch.full((8, 5), 0.05)
    # each unit's rho log(rho / rho_hat) + (1 - rho) log(...) reads two ratios ~1, rounded to 1 ulp: 2 ulp of
    # rho + (1 - rho) = 1 per unit, 5 units
    assert kl_sparsity(h, 0.05).abs() <= scaled_atol(5.0, torch.float32, ulps=2)
    h = torch.full((8, 5), 0.5, requires_grad=True)
    kl_sparsity(h, 0.05).backward()
    assert (h.grad > 0).all()                                          # gradient descent lowers the activations


def test_kl_sparsity_bad_input():
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        kl_sparsity(torch.rand(4), 0.05)
    with pytest.raises(ValueError, match="rho"):
        kl_sparsity(torch.rand(4, 3), 1.0)


# ---------------------------------------------------------------------------------------------- k-sparse


@pytest.mark.parametrize("B, D, k", [(1, 10, 1), (16, 64, 5), (8, 100, 100), (3, 7, 6)])
def test_k_sparse_keeps_the_k_largest_and_masks_the_gradient(B, D, k):
    g = torch.Generator().manual_seed(k)
    h = torch.randn(B, D, generator=g, dtype=torch.float64, requires_grad=True)
    z = k_sparse(h, k)
    kept = np.argsort(-h.detach().numpy(), axis=1)[:, :k]              # numpy oracle: the k largest per row
    mask = np.zeros((B, D))
    np.put_along_axis(mask, kept, 1.0, axis=1)
    np.testing.assert_array_equal(z.detach().numpy(), h.detach().numpy() * mask)
    upstream = torch.randn(B, D, generator=g, dtype=torch.float64)
    z.backward(upstream)
    np.testing.assert_array_equal(h.grad.numpy(), upstream.numpy() * mask)  # only the kept units get gradient
    assert int((h.grad != 0).sum()) == B * k


def test_k_sparse_bad_k():
    with pytest.raises(ValueError, match="k must be in 1..4"):
        k_sparse(torch.randn(2, 4), 5)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        k_sparse(torch.randn(2, 4, 1), 1)


# ---------------------------------------------------------------------------------------------- contractive


def jacrev_sq_norms(encoder, x):
    """Oracle: the full Jacobian of each example from torch.func.jacrev, squared and summed."""
    J = torch.func.vmap(torch.func.jacrev(lambda xi: encoder(xi[None])[0]))(x)   # (B, D, *x.shape[1:])
    return J.pow(2).flatten(1).sum(1)


def mlp_encoder(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 9), torch.nn.Tanh(), torch.nn.Linear(9, 70),
                               torch.nn.Softplus()).double()


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("chunk", [64, 5])
def test_contractive_penalty_equals_jacrev(seed, chunk):
    encoder = mlp_encoder(seed)
    x = torch.randn(6, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    expected = jacrev_sq_norms(encoder, x)
    torch.testing.assert_close(jacobian_sq_norms(encoder, x, chunk=chunk), expected)
    torch.testing.assert_close(contractive_penalty(encoder, x), expected.mean())


@pytest.mark.parametrize("activation, k", [("sigmoid", None), ("relu", None), ("linear", 3)])
def test_contractive_penalty_of_the_course_autoencoder_equals_jacrev(activation, k):
    torch.manual_seed(0)
    model = Autoencoder(10, hidden=(16,), activation=activation, k=k, d_in=36).double()
    x = torch.rand(5, 1, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(contractive_penalty(model.encode, x), jacrev_sq_norms(model.encode, x).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigmoid_closed_form_equals_autograd_and_jacrev(seed):
    torch.manual_seed(seed)
    model = Autoencoder(20, activation="sigmoid", d_in=49).double()
    x = torch.rand(8, 1, 7, 7, dtype=torch.float64)
    closed = sigmoid_contractive_penalty(model.encode(x), model.W)
    torch.testing.assert_close(closed, contractive_penalty(model.encode, x))
    torch.testing.assert_close(closed, jacrev_sq_norms(model.encode, x).mean())


def test_contractive_penalty_is_differentiable_in_the_parameters():
    encoder = mlp_encoder(0)
    x = torch.randn(4, 12, dtype=torch.float64)
    contractive_penalty(encoder, x).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_contractive_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        contractive_penalty(lambda x: x.sum(1), torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"h \(B, D\) and W \(D, D_in\)"):
        sigmoid_contractive_penalty(torch.rand(3, 4), torch.randn(5, 7))


# ---------------------------------------------------------------------------------------------- corruptions


@pytest.mark.parametrize("p", [0.0, 0.25, 0.75, 1.0])
def test_mask_noise_zeroes_a_fraction_p(p):
    x = torch.rand(200, 1, 28, 28) + 0.1                               # no zeros before corruption
    out = mask_noise(x, p, torch.Generator().manual_seed(0))
    dropped = out == 0
    assert abs(dropped.float().mean().item() - p) < 0.01
    torch.testing.assert_close(out[~dropped], x[~dropped])
    assert torch.equal(out, mask_noise(x, p, torch.Generator().manual_seed(0)))  # seeded


@pytest.mark.parametrize("sigma", [0.0, 0.1, 0.5])
def test_gaussian_noise_has_the_right_scale(sigma):
    x = torch.rand(500, 1, 28, 28)
    diff = gaussian_noise(x, sigma, torch.Generator().manual_seed(1)) - x
    assert abs(diff.mean().item()) < 0.01 and abs(diff.std().item() - sigma) < 0.01


def test_corruption_bad_levels():
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        mask_noise(torch.rand(2, 3), 1.5)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_noise(torch.rand(2, 3), -0.1)


def test_fraction_active():
    h = torch.tensor([[0.0, 0.5, 0.05, 1.0], [0.2, 0.0, 0.0, 0.0]])
    assert fraction_active(h) == 3 / 8
    assert fraction_active(torch.tensor([[0.5, 0.0, 0.0]], dtype=torch.float64)) == 1 / 3   # exact, not a float32 mean
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        fraction_active(torch.rand(3))


# ---------------------------------------------------------------------------------------------- models


@pytest.mark.parametrize("kwargs", [dict(d_code=8, activation="linear", output="linear"),
                                    dict(d_code=32, hidden=(64,), activation="relu"),
                                    dict(d_code=1024, activation="relu"),
                                    dict(d_code=50, activation="linear", k=5),
                                    dict(d_code=2, hidden=(32, 32, 32), activation="linear")])
def test_autoencoder_shapes(kwargs):
    torch.manual_seed(0)
    model = Autoencoder(**kwargs)
    x = torch.rand(3, 1, 28, 28)
    h = model.encode(x)
    assert h.shape == (3, kwargs["d_code"]) and model(x).shape == (3, 1, 28, 28)
    assert model.W.shape == (kwargs["d_code"], kwargs.get("hidden", (784,))[-1])
    if kwargs.get("k"):
        assert ((h != 0).sum(1) <= kwargs["k"]).all()
    if kwargs.get("output", "sigmoid") == "sigmoid":
        assert ((model(x) > 0) & (model(x) < 1)).all()
    assert encode_all(model, x, batch_size=2).shape == (3, kwargs["d_code"])


def test_autoencoder_bad_input():
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        Autoencoder(8).encode(torch.rand(2, 1, 14, 14))
    with pytest.raises(ValueError, match="activation"):
        Autoencoder(8, activation="tanh")
    with pytest.raises(ValueError, match="k must be"):
        Autoencoder(8, k=9)


PENALTIES = {
    "plain": (dict(d_code=64), {}),
    "denoising": (dict(d_code=64), {}),
    "sparse": (dict(d_code=64), dict(beta=0.1, rho=0.05)),
    "k-sparse": (dict(d_code=64, activation="linear", k=8), {}),
    "contractive": (dict(d_code=64), dict(lam=0.01)),
    "contractive-mlp": (dict(d_code=16, hidden=(32,), activation="relu"), dict(lam=0.01)),
    "linear": (dict(d_code=8, activation="linear", output="linear"), {}),
}


@pytest.mark.parametrize("name", PENALTIES)
def test_one_step_lowers_the_loss(name):
    kwargs, penalties = PENALTIES[name]
    torch.manual_seed(0)
    model = Autoencoder(**kwargs)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 1, 28, 28, generator=g)
    x_in = mask_noise(x, 0.3, g) if name == "denoising" else None
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = loss_terms(model, x, x_in, **penalties)
    assert set(before) == {"mse", "loss"} | ({"sparsity"} if "beta" in penalties else set()) \
        | ({"contractive"} if "lam" in penalties else set())
    terms = train_step(model, optimizer, x, x_in, **penalties)
    torch.testing.assert_close(terms["loss"], before["loss"].detach())
    after = loss_terms(model, x, x_in, **penalties)["loss"]
    assert after < 0.99 * before["loss"]


def test_a_deep_autoencoder_with_a_two_number_code_memorizes_a_few_images():
    """The notes' "map every input to 1, 2, 3 ...": three hidden layers and a 2-D code reconstruct 8 white-noise
    images almost exactly, which no linear 2-D code can (PCA(2) keeps 2 of their 7 directions of variance),
    and fail on 8 new ones, worse than that PCA does."""
    from sklearn.decomposition import PCA

    g = torch.Generator().manual_seed(0)
    x, x_new = torch.rand(8, 1, 28, 28, generator=g), torch.rand(8, 1, 28, 28, generator=g)
    torch.manual_seed(0)
    model = Autoencoder(2, hidden=(32, 32, 32), activation="linear")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        train_step(model, optimizer, x)
    pca = PCA(2).fit(x.flatten(1).numpy())

    def pca_mse(images):
        flat = images.flatten(1).numpy()
        return float(((pca.inverse_transform(pca.transform(flat)) - flat) ** 2).mean())

    assert reconstruction_mse(model, x) < 0.05 * pca_mse(x)             # measured: 2.6e-4 against 0.048
    assert reconstruction_mse(model, x_new) > pca_mse(x_new) > 0.5 * pca_mse(x)   # 0.14 > 0.095


def test_contractive_term_uses_the_closed_form_only_where_it_holds():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    for model in (Autoencoder(12).double(), Autoencoder(12, hidden=(20,)).double()):
        torch.testing.assert_close(loss_terms(model, x, lam=1.0)["contractive"], jacrev_sq_norms(model.encode, x).mean())


def linear_terms_scale(model: torch.nn.Module, x: torch.Tensor) -> float:
    """The largest sum |W| |input| + |b| any Linear layer of ``model`` computes on x: the size of the terms
    whose rounding two kernel paths (batch sizes, BLAS blockings) may differ in."""
    sizes = []

    def hook(m, inputs, out):
        sizes.append(float(F.linear(inputs[0].abs(), m.weight.abs(), m.bias.abs()).max()))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return max(sizes)


def test_reconstruction_mse_is_the_mean_over_pixels():
    # batches of 2 against one batch of 5 take other matmul paths: compared in float64, where the rounding of
    # x_hat (a few ulp of the layers' summed terms, through sigmoids of slope <= 1/4) moves each squared error
    # (x_hat - x)^2, |x_hat - x| <= 1, by at most twice that
    torch.manual_seed(0)
    model = Autoencoder(8).double()
    x, x_in = torch.rand(5, 1, 28, 28, dtype=torch.float64), torch.rand(5, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        expected = ((model(x_in) - x) ** 2).mean().item()
    tolerance = scaled_atol(2 * linear_terms_scale(model, x_in), torch.float64, ulps=4096)
    assert reconstruction_mse(model, x, x_in, batch_size=2) == pytest.approx(expected, rel=0, abs=tolerance)


# ---------------------------------------------------------------------------------------------- linear AE = PCA


def test_linear_autoencoder_finds_pca_subspace():
    """Baldi & Hornik 1989 on a small problem with well separated eigenvalues: the trained linear AE's
    decoder spans scikit-learn's PCA(k) subspace, and its error equals PCA's."""
    from sklearn.decomposition import PCA

    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([3.0, 2.5, 2.0, 1.5] + [0.3] * 32)
    x = (torch.randn(2000, 36, generator=g) * scales) @ torch.linalg.qr(torch.randn(36, 36, generator=g))[0]
    x = x - x.mean(0)
    pca = PCA(4).fit(x.numpy())
    torch.manual_seed(0)
    model = Autoencoder(4, activation="linear", output="linear", d_in=36)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(600):
        train_step(model, optimizer, x[torch.randint(2000, (256,), generator=g)])
    angles = principal_angles(model.decoder[0].weight.detach(), torch.tensor(pca.components_.T))
    assert math.degrees(angles.max()) < 2
    pca_mse = float(((pca.inverse_transform(pca.transform(x.numpy())) - x.numpy()) ** 2).mean())
    assert reconstruction_mse(model, x) == pytest.approx(pca_mse, rel=0.02)


# ---------------------------------------------------------------------------------------------- config, checks


def test_configs_for_every_profile():
    for profile in ("smoke", "cpu", "gpu"):
        cfg = ae_config(profile)
        assert cfg.k_pca < cfg.d_hidden and cfg.d_overcomplete > 784 and 1 <= cfg.k_sparse < cfg.d_hidden
        assert cfg.d_memorize in (1, 2) and cfg.n_memorize <= 200 and len(cfg.memorize_hidden) >= 2
    assert ae_config("smoke").steps < ae_config("cpu").steps
    assert ae_config("smoke").steps_memorize < ae_config("cpu").steps_memorize
    assert ae_config("cpu", steps=7).steps == 7


def test_checks_accept_the_right_answers_and_reject_wrong_ones(capsys):
    assert not checks.check_principal_angle(None)
    assert checks.check_principal_angle(35.3) and not checks.check_principal_angle(45.0)
    assert checks.check_kl_sparsity(round(100 * (0.05 * math.log(0.05 / 0.5) + 0.95 * math.log(0.95 / 0.5)), 2))
    assert not checks.check_kl_sparsity(0.0)
    assert checks.check_k_sparse([0.0, 0.0, 2.0, 0.7, 0.0]) and not checks.check_k_sparse([0.3, 0.0, 2.0, 0.0, 0.0])
    assert checks.check_contractive_unit(round((0.2 * 0.8) ** 2 * 4, 3)) and not checks.check_contractive_unit(1.0)
    assert checks.check_ae_parameters(784 * 32 + 32 + 32 * 784 + 784) and not checks.check_ae_parameters(2 * 784 * 32)
    assert "Not quite" in capsys.readouterr().out
