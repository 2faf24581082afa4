"""Chapter 08's VQ-VAE: the quantizer against brute-force oracles, straight-through, the fix, the tokenizer."""

import math

import pytest
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from tolerance import assert_argmax_consistent, assert_close_scaled

from course_lib import checkpoints
from course_lib import data as course_data
from course_lib.data import ImageDataset
from course_lib.vq import checks as vq_checks
from course_lib.vq import train as vq
from course_lib.vq import (
    VQVAE,
    VectorQuantizer,
    code_counts,
    dead_codes,
    kmeans,
    perplexity,
    squared_distances,
    straight_through,
    train_step,
    vq_loss,
)


def random_quantizer(K: int, D: int, seed: int, beta: float = 0.25) -> VectorQuantizer:
    torch.manual_seed(seed)
    q = VectorQuantizer(K, D, beta)
    with torch.no_grad():
        q.codebook.normal_()  # spread out, so that every code can win
    return q


def terms_scale(net: torch.nn.Module, x: torch.Tensor) -> float:
    """The largest sum of |weight| * |input| + |bias| that a convolution of ``net`` computes on x: the size of
    the terms whose rounding two evaluations of ``net`` on nearly equal inputs may differ in."""
    sizes = []

    def hook(m, inputs, out):
        a, w, b = inputs[0].abs(), m.weight.abs(), None if m.bias is None else m.bias.abs()
        if isinstance(m, torch.nn.ConvTranspose2d):
            s = F.conv_transpose2d(a, w, b, m.stride, m.padding, m.output_padding, m.groups, m.dilation)
        else:
            s = F.conv2d(a, w, b, m.stride, m.padding, m.dilation, m.groups)
        sizes.append(float(s.max()))

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return max(sizes)


def blobs(n: int = 40, seed: int = 0) -> torch.Tensor:
    """Structured stand-in for Fashion-MNIST (n, 1, 28, 28): bright rectangles of random size on black."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        r0, c0 = torch.randint(2, 10, (2,), generator=g).tolist()
        r1, c1 = torch.randint(16, 26, (2,), generator=g).tolist()
        x[i, 0, r0:r1, c0:c1] = 0.3 + 0.7 * torch.rand(1, generator=g)
    return x


def expansion_scale(z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """The size of the terms of ||z||^2 - 2 z.e + ||e||^2: (max ||z|| + max ||e||)^2. The expansion cancels
    (a small distance is a difference of large terms), so its rounding scales with this, not with the distance."""
    return (z.detach().double().norm(dim=1).max() + e.detach().double().norm(dim=1).max()) ** 2


# ---------------------------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("M, K, D, seed", [(50, 8, 3, 0), (200, 64, 16, 1), (7, 130, 5, 2)])
def test_squared_distances_equal_cdist_squared(M, K, D, seed):
    g = torch.Generator().manual_seed(seed)
    z, e = torch.randn(M, D, generator=g, dtype=torch.float64), torch.randn(K, D, generator=g, dtype=torch.float64)
    expected = torch.cdist(z, e, compute_mode="donot_use_mm_for_euclid_dist").square()
    got = squared_distances(z, e)
    assert got.dtype == torch.float64
    # a dot product of D terms plus two norms: <= (D + 2) ulp of the expansion's scale, with room
    assert_close_scaled(got, expected, expansion_scale(z, e), ulps=256)


@pytest.mark.parametrize("N, D, H, W, K, seed", [(2, 4, 5, 5, 16, 0), (3, 16, 7, 7, 128, 1), (1, 2, 3, 6, 5, 2)])
def test_codes_are_the_brute_force_argmin_and_z_q_the_lookup(N, D, H, W, K, seed):
    q = random_quantizer(K, D, seed)
    z_e = torch.randn(N, D, H, W)
    z_q, _, codes = q(z_e)
    assert z_q.shape == (N, D, H, W) and codes.shape == (N, H, W) and codes.dtype == torch.int64
    z = z_e.permute(0, 2, 3, 1).reshape(-1, D).double()
    brute = torch.cdist(z, q.codebook.detach().double(), compute_mode="donot_use_mm_for_euclid_dist")  # (M, K)
    # the float32 expansion and the float64 brute force may break a near-tie differently: the chosen code must
    # be nearest up to the expansion's rounding (argmax of the negated squared distances)
    assert_argmax_consistent(codes.flatten(), -brute.square().float(), scale=expansion_scale(z, q.codebook))
    # z_q at (n, :, i, j) is the codebook row of codes[n, i, j]: z_e + (z_q - z_e) rounds within 2 ulp of the
    # larger of |z_e| and |z_q|
    scale = z_e.abs().max() + q.codebook.detach().abs().max()
    assert_close_scaled(z_q.detach().permute(0, 2, 3, 1), q.codebook.detach()[codes], scale, ulps=4)
    assert_close_scaled(q.embed(codes).detach(), z_q.detach(), scale, ulps=4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_straight_through_gradient_wrt_z_e_equals_gradient_wrt_z_q(seed):
    # float64: the forward value z_e + (z_q - z_e) is z_q only up to rounding, which the decoder would amplify
    q = random_quantizer(32, 8, seed).double()
    torch.manual_seed(seed)
    head = torch.nn.Sequential(torch.nn.Conv2d(8, 4, 3, padding=1), torch.nn.Tanh()).double()  # a nonlinear "decoder"
    z_e = torch.randn(2, 8, 5, 5, dtype=torch.float64, requires_grad=True)
    z_q, _, _ = q(z_e)
    head(z_q).square().sum().backward()
    z_q_leaf = z_q.detach().clone().requires_grad_(True)
    (grad_q,) = torch.autograd.grad(head(z_q_leaf).square().sum(), z_q_leaf)
    assert grad_q.abs().sum() > 0
    # the gradient is a transposed convolution of dL/d(conv output) = 2 t (1 - t^2) with the weights:
    # its rounding scales with the sum of |upstream| * |weight| over the terms
    with torch.no_grad():
        t = head(z_q_leaf)
        terms = F.conv_transpose2d((2 * t * (1 - t.square())).abs(), head[0].weight.abs(), padding=1)
    assert_close_scaled(z_e.grad, grad_q, terms, ulps=4096)
    assert q.codebook.grad is None  # the decoder's gradient never reaches the codebook


def test_straight_through_kernel_has_the_value_of_z_q_and_the_gradient_of_z_e():
    torch.manual_seed(0)
    z_e, z_q = torch.randn(3, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True)
    out = straight_through(z_e, z_q)
    # z_e + (z_q - z_e): two roundings, within 2 ulp of the larger of |z_e| and |z_q|
    assert_close_scaled(out.detach(), z_q.detach(), z_e.abs().max() + z_q.abs().max(), ulps=4)
    w = torch.randn(3, 4)
    (out * w).sum().backward()
    assert torch.equal(z_e.grad, w)                                    # the identity's gradient: w itself
    assert z_q.grad is None


@pytest.mark.parametrize("beta, seed", [(0.25, 0), (1.0, 1), (0.0, 2)])
def test_loss_is_codebook_plus_beta_commitment(beta, seed):
    q = random_quantizer(16, 6, seed, beta=beta)
    z_e = torch.randn(2, 6, 4, 4, requires_grad=True)
    _, loss, codes = q(z_e)
    e = q.codebook[codes].permute(0, 3, 1, 2)                              # (N, D, H, W), with gradient
    sq = lambda a, b: ((a - b) ** 2).sum() / a.numel()                    # noqa: E731
    expected = sq(z_e.detach(), e) + beta * sq(z_e, e.detach())
    # means of squares (non-negative terms) summed in two orders: the loss itself is the sum of the terms' sizes
    assert_close_scaled(loss.detach(), expected.detach(), (1 + beta) * sq(z_e.detach(), e.detach()))
    # the gradients split as Eq. 3 says: codebook term -> e only, commitment term -> z_e only
    g_e, g_cb = torch.autograd.grad(loss, (z_e, q.codebook))
    per_element = (2 * (e - z_e) / z_e.numel()).detach()                  # (N, D, H, W)
    assert_close_scaled(g_e, -beta * per_element, beta * per_element.abs())
    def rows(v):                                                        # (N, D, H, W) -> (K, D): summed per code
        return torch.zeros_like(q.codebook).index_add_(0, codes.flatten(), v.permute(0, 2, 3, 1).reshape(-1, 6))

    # each code's gradient sums the positions that picked it (both signs): rounding follows the sum of |terms|
    assert_close_scaled(g_cb, rows(per_element), rows(per_element.abs()))


def test_bad_shapes_raise_naming_the_expected_shape():
    q = VectorQuantizer(8, 4)
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        q(torch.zeros(2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        q(torch.zeros(4, 5, 5))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        q.embed(torch.zeros(2, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        q.embed(torch.full((1, 2, 2), 8))
    with pytest.raises(ValueError, match=r"\(M, D\).*\(K, D\)"):
        squared_distances(torch.zeros(3, 4), torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        vq_loss(torch.zeros(2, 4), torch.zeros(2, 5))
    model = VQVAE(num_codes=8, dim=4, width=8)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 7, 7\)"):
        model.decode_tokens(torch.zeros(2, 6, 6, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\(N, 4, 7, 7\)"):
        model.decode(torch.zeros(2, 4, 6, 6))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perplexity_is_exp_entropy_of_code_frequencies(seed):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 12, (5, 7, 7), generator=g) ** 2 % 20   # uneven use, some codes never used
    counts = code_counts(codes, 20)
    assert counts.sum() == codes.numel() and counts.shape == (20,)
    entropy = torch.distributions.Categorical(probs=counts.double() / counts.sum()).entropy()
    assert math.isclose(perplexity(codes, 20), entropy.exp().item(), rel_tol=1e-9)
    assert dead_codes(codes, 20) == 20 - len(codes.unique())
    assert perplexity(torch.arange(20), 20) == pytest.approx(20)
    assert perplexity(torch.zeros(9, dtype=torch.int64), 20) == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_kmeans_equals_sklearn_lloyd_from_the_same_start(seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(6, 3, generator=g, dtype=torch.float64) * 5
    z = (centres.repeat_interleave(30, 0) + torch.randn(180, 3, generator=g, dtype=torch.float64))
    init = z[torch.randperm(180, generator=g)[:6]]
    ours = kmeans(z, 6, iters=50, init=init)
    ref = KMeans(6, init=init.numpy(), n_init=1, max_iter=50, tol=0, algorithm="lloyd").fit(z.numpy())
    # centres are means of up to 180 points summed in other orders (scikit-learn also centres the data first):
    # rounding scales with the points' size
    assert_close_scaled(ours, torch.from_numpy(ref.cluster_centers_), z.abs().max(), ulps=4096)


def test_restart_dead_codes_moves_only_unused_codes_onto_encoder_outputs():
    q = random_quantizer(10, 3, 0)
    q.train()
    z_e = q.codebook.detach()[:4].reshape(4, 3, 1, 1).clone()     # exactly codes 0..3
    q(z_e)
    assert q.counts.tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    before = q.codebook.detach().clone()
    z = torch.randn(50, 3) + 100
    moved = q.restart_dead_codes(z, generator=torch.Generator().manual_seed(0))
    assert moved == 6 and q.counts.sum() == 0
    assert torch.equal(q.codebook[:4], before[:4])
    for row in q.codebook.detach()[4:]:
        assert (row == z).all(1).any()                            # each restarted code is one of the z rows
    q.eval()
    q(z_e)
    assert q.counts.sum() == 0                                    # usage is counted in training mode only


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kmeans_init_runs_in_the_dtype_of_the_encoder_outputs(dtype):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(60, 3, generator=g, dtype=torch.float64).to(dtype) * 3
    q = VectorQuantizer(5, 3).to(dtype)
    q.kmeans_init_(z, iters=5, generator=torch.Generator().manual_seed(1))
    assert q.codebook.dtype == dtype
    # the same k-means, in the same dtype (a float64 k-means must not be rounded through float32)
    assert torch.equal(q.codebook.detach(), kmeans(z, 5, iters=5, generator=torch.Generator().manual_seed(1)))


def test_kmeans_init_puts_the_codebook_on_the_data():
    torch.manual_seed(0)
    model = VQVAE(num_codes=16, dim=4, width=8)
    x = blobs(40)
    vq.kmeans_init(model, x, generator=torch.Generator().manual_seed(0))
    z = model.encode(x).detach().permute(0, 2, 3, 1).reshape(-1, 4)
    near = squared_distances(model.quantizer.codebook.detach(), z).min(1).values
    assert near.max() < z.var(0).sum()                            # every code sits near some encoder output
    assert dead_codes(model.encode_tokens(x), 16) < 16 - 1


# ---------------------------------------------------------------------------------------------- model


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("K, D, width", [(128, 16, 32), (8, 4, 8)])
def test_vqvae_shapes_and_token_api(K, D, width, dtype):
    torch.manual_seed(0)
    model = VQVAE(num_codes=K, dim=D, width=width).eval().to(dtype)
    x = blobs(3).to(dtype)
    x_hat, loss, codes = model(x)
    assert x_hat.shape == (3, 1, 28, 28) and loss.ndim == 0 and codes.shape == (3, 7, 7)
    assert x_hat.dtype == loss.dtype == dtype
    assert ((x_hat >= 0) & (x_hat <= 1)).all()
    assert model.encode(x).shape == (3, D, 7, 7)
    tokens = model.encode_tokens(x)                                     # the forward's nearest_code, same path
    assert tokens.dtype == torch.int64 and torch.equal(tokens, codes) and 0 <= tokens.min() and tokens.max() < K
    decoded = model.decode_tokens(tokens)
    assert torch.equal(decoded, model.decode(model.embed(tokens)))     # the codebook lookup, decoded
    assert not decoded.requires_grad
    if dtype == torch.float64:
        # the forward pass decodes z_e + (z_q - z_e), z_q up to rounding: the decoder's convolutions may
        # differ by a few ulp of the terms they sum (float64, so that the decoder's gain cannot matter)
        assert_close_scaled(decoded, x_hat.detach(), terms_scale(model.decoder, model.embed(tokens)), ulps=4096)


def test_loss_goes_down():
    torch.manual_seed(0)
    model = VQVAE(num_codes=16, dim=4, width=16)
    x = blobs(32)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    vq.kmeans_init(model, x)
    steps = [train_step(model, optimizer, x) for _ in range(40)]
    assert set(steps[0]) == {"recon", "vq", "perplexity", "commit_distance"}
    first, last = steps[0]["recon"].item(), sum(s["recon"].item() for s in steps[-3:]) / 3
    assert last < 0.5 * first, [round(s["recon"].item(), 4) for s in steps]


def fake_fashion(split: str) -> ImageDataset:
    n = 300 if split == "train" else 60
    return ImageDataset(blobs(n, seed=0 if split == "train" else 1), torch.arange(n) % 10)


@pytest.mark.parametrize("name", ["vq_tokenizer", "vq_tokenizer_nofix"])
def test_load_vqvae_trains_caches_and_reloads(monkeypatch, name):
    monkeypatch.setattr(checkpoints, "shipped_dir", lambda: None)
    monkeypatch.setattr(course_data, "fashion_mnist", fake_fashion)
    monkeypatch.setattr(vq, "FALLBACK", {p: vq.VQTrainConfig(n_train=None, steps=4, batch_size=16, n_eval=60,
                                                              restart_every=2) for p in ("smoke", "cpu", "gpu")})
    model = vq.load_vqvae(name, "cpu", profile="smoke")
    assert isinstance(model, VQVAE) and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    entry = model.checkpoint_entry
    assert entry["origin"] == "trained" and entry["metrics"]["fix"] == (name == "vq_tokenizer")
    assert entry["metrics"]["steps"] == 4 and 0 <= entry["metrics"]["dead_codes"] <= 128
    again = vq.load_vqvae(name, "cpu", profile="smoke")
    assert again.checkpoint_entry["origin"] == "cached"
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="vq_tokenizer"):
        vq.load_vqvae("tokenizer", "cpu")


def test_shipped_tokenizer_reconstructs_fashion_mnist_and_uses_its_codebook():
    tok = vq.load_tokenizer("cpu")
    assert tok.checkpoint_entry["origin"] == "shipped"
    x = course_data.fashion_mnist("test").subset(500, seed=3).images
    codes = tok.encode_tokens(x)
    assert codes.shape == (500, 7, 7) and tok.num_codes == 128 and tok.grid == 7
    mse = torch.nn.functional.mse_loss(tok.decode_tokens(codes), x).item()
    assert mse < 0.015                       # the mean image alone gives ~0.09
    assert perplexity(codes, tok.num_codes) > 40


# ---------------------------------------------------------------------------------------------- checks


def test_checks_accept_the_right_answers_and_reject_wrong_ones(capsys):
    assert not vq_checks.check_bits_per_image(None)
    assert vq_checks.check_bits_per_image(49 * 7) and not vq_checks.check_bits_per_image(49 * 128)
    z, e = vq_checks.NEAREST_Z, vq_checks.NEAREST_CODEBOOK
    brute = int(torch.cdist(z[None], e).argmin())
    assert vq_checks.check_nearest_code(brute) and not vq_checks.check_nearest_code((brute + 1) % len(e))
    counts = vq_checks.USAGE_COUNTS
    p = torch.tensor(counts, dtype=torch.float64) / sum(counts)
    expected = math.exp(-(p[p > 0] * p[p > 0].log()).sum().item())
    assert vq_checks.check_perplexity(expected) and not vq_checks.check_perplexity(expected + 0.5)
    # Eq. 3 for one number: d/dz_e [(sg(z_e) - e)^2 + beta (z_e - sg(e))^2] = 2 beta (z_e - e)
    assert vq_checks.check_commitment_gradient(2 * 0.25 * (1.0 - 0.4))
    assert not vq_checks.check_commitment_gradient(2 * 1.25 * (1.0 - 0.4))
    assert "Correct!" in capsys.readouterr().out


def test_train_step_commit_distance_is_the_mean_distance_to_the_codes():
    """train_step's commit_distance is the mean over grid cells of ||z_e - z_q||, measured before the step; and
    the vq loss it reports is (1 + beta) times the mean of (z_e - z_q)^2 over elements (both terms have that value)."""
    torch.manual_seed(0)
    model = VQVAE(num_codes=16, dim=4, width=16, beta=0.5).double()
    x = blobs(8).double()
    with torch.no_grad():
        z_e = model.encode(x)
        z_q = model.embed(model.encode_tokens(x))
    expected = (z_e - z_q).norm(dim=1).mean()
    step = train_step(model, torch.optim.SGD(model.parameters(), lr=0.0), x)
    assert_close_scaled(step["commit_distance"], expected, expected, ulps=64)
    assert_close_scaled(step["vq"], 1.5 * (z_e - z_q).square().mean(), step["vq"], ulps=64)
