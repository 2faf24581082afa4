"""Property-based fuzzing of chapter 06's public kernels and model helpers (course_lib.autoencoders).

The same contract as ``test_fuzz.py`` (whose helpers and strategies this file imports): for random shapes
(empty ones included), dtypes and memory layouts, each kernel gives its oracle's answer -- scipy's
``subspace_angles``, torch.distributions' Bernoulli KL, a numpy top-k, ``torch.func.jacrev``, the corruptions'
definitions written out here -- or raises a ValueError that says what it expected. Any other exception, or a
silently different answer, fails.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from fuzz_stats import counted
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_fuzz import (
    FLOAT_DTYPES,
    FUZZ,
    HALF_DTYPES,
    ODD_DTYPES,
    any_dtypes,
    as_layout,
    assert_oracle_or_value_error,
    assert_same,
    assert_value_error,
    float_dtypes,
    fuzz,
    images,
    layouts,
    result_or_value_error,
    tol_of,
    tolerance,
    values,
    wrong_shape,
)
from torch import nn
from torch.distributions import Bernoulli, kl_divergence

from course_lib.autoencoders import (
    Autoencoder,
    contractive_penalty,
    encode_all,
    fraction_active,
    gaussian_noise,
    jacobian_sq_norms,
    k_sparse,
    kl_sparsity,
    loss_terms,
    mask_noise,
    principal_angles,
    reconstruction_mse,
    sigmoid_contractive_penalty,
    train_step,
)

CODES_ERROR = r"expected .*\(B, D\)"
MOSTLY_FLOAT = st.sampled_from(FLOAT_DTYPES * 3 + ODD_DTYPES)         # about half the examples in float32 / float64
NOT_FLOAT = [torch.int64, torch.uint8, torch.bool]
IMAGE_ERROR = r"expected .*\(B, 1, 28, 28\) or \(B, 784\)"
pytestmark = pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op")

# ---------------------------------------------------------------------------------------------- principal angles


def scipy_angles(U, V):
    """scipy.linalg.subspace_angles in float64, reversed to ascending order (the kernel's documented order)."""
    return torch.from_numpy(scipy.linalg.subspace_angles(U.double().numpy(), V.double().numpy())[::-1].copy())


def column_rank(A: torch.Tensor) -> tuple[int, float]:
    """scipy.linalg.orth's rank of A (D, p) and how far its smallest singular value is from orth's cutoff
    (log10 ratio; near 0: a borderline rank that rounding could flip)."""
    A = A.double().numpy()
    if min(A.shape) == 0:
        return 0, math.inf
    s = scipy.linalg.svdvals(A)
    cutoff = s.max() * max(A.shape) * np.finfo(np.float64).eps
    if cutoff == 0:
        return 0, math.inf
    return int((s > cutoff).sum()), float(np.min(np.abs(np.log10(np.maximum(s, 1e-300) / cutoff))))


@st.composite
def bases(draw, D: int, p: int, kind: str):
    """(D, p) float64 matrices: random, or made rank-deficient (a repeated, scaled or zero column)."""
    A = draw(values((D, p)))
    if p >= 2 and kind == "repeat":
        i, j = draw(st.permutations(range(p)))[:2]
        A[:, j] = A[:, i] * draw(st.sampled_from([1.0, -2.0, 0.5]))
    elif p >= 1 and kind == "zero":
        A[:, draw(st.integers(0, p - 1))] = 0
    return A


@counted()
@fuzz(50)
@given(data=st.data(), D=st.integers(0, 6), dtypes=st.tuples(MOSTLY_FLOAT, MOSTLY_FLOAT), layout=layouts,
       deficient=st.sampled_from(["U", "V"]))
def test_principal_angles_match_scipy(data, D, dtypes, layout, deficient):
    p, q = data.draw(st.integers(0, min(D, 4))), data.draw(st.integers(0, min(D, 4)))
    U = as_layout(data.draw(bases(D, p, "random")).to(dtypes[0]), layout)
    V = data.draw(bases(D, q, "random")).to(dtypes[1])
    (rank_u, margin_u), (rank_v, margin_v) = column_rank(U), column_rank(V)
    assume(min(margin_u, margin_v) > 1)                                # no rank that rounding could flip
    valid = rank_u == p and rank_v == q                                # full column rank (so p, q <= D)
    assume(valid)                                                      # (small integer entries may repeat a column)
    # The angles' rounding error grows with the bases' condition numbers (Björck & Golub 1973, Sec. 4), and
    # scipy's own is up to ~sqrt(eps): its sine/cosine mask is paired with the angles in reverse order, so it
    # reads angles near pi/2 from arcsin (U = [e4 e2 e3], V = [e1 + e4, e4] in R^4: pi/2 - 2.6e-8 instead of pi/2).
    cond = sum(float(np.linalg.cond(A.double().numpy())) if A.shape[1] and valid else 1.0 for A in (U, V))
    assume(cond < 1e8)                                                 # beyond, the angles themselves are ill-posed
    wider = torch.promote_types(*dtypes)
    narrow = [d for d in dtypes if d in (torch.float16, torch.bfloat16)]
    tol = tolerance(narrow[0]) if narrow else {"rtol": 0.0, "atol": 3 * math.sqrt(2.3e-16 * cond)} if wider in (
        torch.float64, *ODD_DTYPES) else {}
    angles = assert_oracle_or_value_error(principal_angles, scipy_angles, U, V, valid=True, **tol)
    assert angles.dtype == (wider if wider.is_floating_point else torch.float64)
    assert (angles.diff() >= 0).all() and ((angles >= 0) & (angles <= math.pi / 2 + 1e-3)).all()
    assert_same(principal_angles(V, U), angles)                       # symmetric in U and V
    # rank-deficient: a repeated, scaled or zero column, or more columns than dimensions
    A = data.draw(bases(D, data.draw(st.integers(2, 4)), data.draw(st.sampled_from(["repeat", "zero"]))))
    A = A.to(dtypes[0] if deficient == "U" else dtypes[1])
    rank, margin = column_rank(A)
    if rank < A.shape[1] and margin > 1:                               # (not a rank that rounding could flip)
        args, match = ((A, V), r"expected .*U \(D, p\)") if deficient == "U" else ((U, A), r"expected .*V \(D, q\)")
        assert_value_error(principal_angles, *args, match=match)


@FUZZ
@given(data=st.data(), D=st.integers(1, 5), q=st.integers(1, 3), bad=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_principal_angles_reject_wrong_shapes_and_non_finite_bases(data, D, q, bad):
    V = torch.randn(D, q, dtype=torch.float64, generator=torch.Generator().manual_seed(D * q))
    wrong = torch.zeros(data.draw(wrong_shape((D, None))))
    assert_value_error(principal_angles, wrong, V)
    assert_value_error(principal_angles, V, wrong)
    U = V.clone()
    U[data.draw(st.integers(0, D - 1)), 0] = bad
    assert_value_error(principal_angles, U, V, match=r"expected finite U \(D, p\)")


# ---------------------------------------------------------------------------------------------- KL sparsity

EPS = 1e-6                                                             # kl_sparsity's default clamp


def clamp_bounds(h) -> tuple[float, float, float]:
    """eps and 1 - eps as the kernel represents them (in float32 for float32, float16 and bfloat16 codes: 1 - 1e-6
    is 1 - 1.01e-6 there), and that dtype's machine epsilon."""
    compute = torch.float64 if h.dtype == torch.float64 else torch.float32
    lo, hi = (float(torch.tensor(v, dtype=compute)) for v in (EPS, 1 - EPS))
    return lo, hi, torch.finfo(compute).eps


def bernoulli_kl(h, rho):
    """sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)), rho_hat = the batch mean clamped to [eps, 1 - eps] as the
    kernel documents, by torch.distributions in float64."""
    lo, hi, _ = clamp_bounds(h)
    rho_hat = h.double().mean(0).clamp(lo, hi)
    return kl_divergence(Bernoulli(probs=torch.full_like(rho_hat, rho)), Bernoulli(probs=rho_hat)).sum()


def kl_atol(h, rho) -> float:
    """Forward error bound of a KL computed in float32 (float64 for float64 codes): for the units whose mean is not
    clamped by a clear margin, |dKL / drho_hat| = rho / rho_hat + (1 - rho) / (1 - rho_hat) times the rounding of a
    mean of B values in [0, 1]; plus a few ulps of each of the two terms and of their logs."""
    lo, hi, eps = clamp_bounds(h)
    raw = h.double().mean(0)
    rho_hat = raw.clamp(lo, hi)
    err = 4 * (len(h) + 1) * eps
    near = (raw > lo - err) & (raw < hi + err)
    slope = rho / rho_hat + (1 - rho) / (1 - rho_hat)
    terms = (rho * torch.log(rho / rho_hat)).abs() + ((1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).abs()
    return float((slope * err * near).sum() + 8 * eps * (terms.sum() + h.shape[1])) + 1e-12


@counted()
@fuzz(50)
@given(data=st.data(), B=st.integers(1, 5), D=st.integers(0, 5), dtype=st.sampled_from(FLOAT_DTYPES + HALF_DTYPES),
       layout=layouts, levels=st.sampled_from([None, 1, 4]), rho=st.one_of(
           st.floats(0.01, 0.99), st.sampled_from([0.05, 0.5]), st.floats(0, 1, exclude_min=True, exclude_max=True)),
       wrong=st.sampled_from(["rho", "outlier", "empty", "dtype"]))
def test_kl_sparsity_matches_bernoulli_kl(data, B, D, dtype, layout, levels, rho, wrong):
    h = data.draw(images((B, D), levels=levels))                       # levels=1: every activation exactly 0 or 1
    h_ = as_layout(h.to(dtype), layout)
    valid = dtype == torch.float64 or rho >= 1e-44                    # 0 in float32: rejected (see kl_sparsity)
    kl = assert_oracle_or_value_error(kl_sparsity, bernoulli_kl, h_, rho, valid=valid, rtol=0.0,
                                      atol=kl_atol(h_, rho), match=r"rho must be in \(0, 1\)")
    if kl is not None:
        assert kl.ndim == 0 and torch.isfinite(kl) and kl >= -kl_atol(h_, rho)  # saturated units: large, finite
        assert kl.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    if wrong == "rho":                                                 # rho outside (0, 1), NaN
        args = (h_, data.draw(st.sampled_from([0.0, 1.0, -0.1, 1.5, math.nan])))
    elif wrong == "outlier" and h.numel():                            # an activation outside [0, 1], NaN
        h.view(-1)[data.draw(st.integers(0, h.numel() - 1))] = data.draw(st.sampled_from([-0.25, 1.5, math.nan]))
        args = (as_layout(h.to(dtype), layout), rho)
    elif wrong == "dtype":
        args = (h_.to(data.draw(st.sampled_from(NOT_FLOAT))), rho)
    else:                                                              # no codes
        args = (h_[:0], rho)
    assert_value_error(kl_sparsity, *args, match=rf"{CODES_ERROR}|rho must be in \(0, 1\)")


@FUZZ
@given(data=st.data())
def test_kl_sparsity_rejects_wrong_shapes(data):
    assert_value_error(kl_sparsity, torch.full(data.draw(wrong_shape((None, None))), 0.5), 0.05)


# ---------------------------------------------------------------------------------------------- k-sparse


def numpy_top_k(h, k):
    """The k largest entries of each row kept (numpy's stable sort: the lowest index wins a tie), the rest 0."""
    a = h.double().numpy()
    kept = np.argsort(-a, axis=1, kind="stable")[:, :k]
    mask = np.zeros(a.shape, dtype=bool)
    np.put_along_axis(mask, kept, True, axis=1)
    return torch.from_numpy(np.where(mask, a, 0.0))


@counted()
@fuzz(40)
@given(data=st.data(), B=st.integers(0, 4), D=st.integers(1, 6), dtype=st.sampled_from(FLOAT_DTYPES + HALF_DTYPES),
       layout=layouts, infinities=st.booleans(), bad=st.sampled_from(NOT_FLOAT))
def test_k_sparse_matches_numpy_top_k_and_masks_the_gradient(data, B, D, dtype, layout, infinities, bad):
    k = data.draw(st.integers(1, D))
    h = data.draw(values((B, D)))                                      # small integers: ties, zeros, negatives
    if infinities and h.numel():
        for _ in range(data.draw(st.integers(1, 3))):
            h.view(-1)[data.draw(st.integers(0, h.numel() - 1))] = data.draw(st.sampled_from([math.inf, -math.inf]))
    h = as_layout(h.to(dtype), layout)
    match = rf"{CODES_ERROR}|k must be in 1\.\.{D}\b"
    for wrong in ((h, data.draw(st.sampled_from([0, -1, D + 1]))), (h.to(bad), k)):   # k out of 1..D; not float
        assert_value_error(k_sparse, *wrong, match=match)
    assert_value_error(k_sparse, h[:, :0], 1, match=r"k must be in 1\.\.0\b")  # no units to keep
    z = result_or_value_error(k_sparse, h, k, valid=True)
    assert z.shape == h.shape and z.dtype == h.dtype and not z.isnan().any()
    # the gradient is the kept mask: h.grad = upstream where kept, 0 elsewhere
    leaf = h.detach().requires_grad_(True)
    k_sparse(leaf, k).backward(torch.ones_like(leaf))
    kept = leaf.grad == 1
    assert ((leaf.grad == 0) | kept).all() and (kept.sum(1) == k).all()
    assert torch.equal(z, torch.where(kept, h, torch.zeros((), dtype=h.dtype)))
    values_ = h.double()
    # every kept value >= every dropped one (a tie at the k-th value may be broken either way) ...
    low = torch.where(kept, values_, math.inf).amin(1)
    high = torch.where(kept, -math.inf, values_).amax(1)
    assert (low >= high).all(), (h, z)
    # ... and where the k-th largest value is not tied with the (k+1)-th, exactly numpy's top-k
    ordered = values_.sort(1, descending=True).values
    clear = torch.ones(B, dtype=torch.bool) if k == D else ordered[:, k - 1] > ordered[:, k]
    assert_same(z[clear], numpy_top_k(h[clear], k))


@FUZZ
@given(data=st.data(), k=st.integers(1, 3))
def test_k_sparse_rejects_wrong_shapes(data, k):
    assert_value_error(k_sparse, torch.zeros(data.draw(wrong_shape((None, None)))), k)
    assert_value_error(k_sparse, torch.zeros(2, 4), 2.0, match=r"k must be in 1\.\.4")   # a float k
    assert_value_error(k_sparse, torch.zeros(2, 4), True, match=r"k must be in 1\.\.4")


# ---------------------------------------------------------------------------------------------- corruptions

def grid(shape: tuple[int, ...], levels: int):
    """Float64 tensors of ``shape`` (0-d included) with values k / levels in [0, 1] (test_fuzz.images with levels
    fails on 0-d shapes: numpy turns a 0-d array divided by levels into a scalar)."""
    return arrays(np.int64, shape, elements=st.integers(0, levels)).map(
        lambda a: torch.from_numpy(np.asarray(a / levels)))


SHAPES = st.lists(st.integers(0, 3), max_size=4).map(tuple)
LEVELS = st.sampled_from([0.0, 1.0, 0.5, 0.25]) | st.floats(0, 1)
BAD_LEVELS = st.sampled_from([-0.1, 1.5, math.nan, -math.inf, math.inf])


def seeded_mask(x, p, seed):
    """The definition: entry i (x's logical order) is zeroed when the i-th draw of torch.rand is < p."""
    keep = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)) >= p
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype))


@counted()
@fuzz(40)
@given(data=st.data(), shape=SHAPES, dtype=any_dtypes, layout=layouts, p=LEVELS, seed=st.integers(0, 3),
       inf=st.booleans(), bad_p=BAD_LEVELS)
def test_mask_noise_zeroes_the_drawn_entries(data, shape, dtype, layout, p, seed, inf, bad_p):
    x = data.draw(grid(shape, 4)) + 0.25                      # no zeros before the corruption
    if inf and x.numel():
        x.view(-1)[0] = math.inf
    x = as_layout(x.to(dtype), layout)
    masked = lambda x, p, s: mask_noise(x, p, torch.Generator().manual_seed(s))   # noqa: E731
    assert_value_error(masked, x, bad_p, seed, match=r"p must be in \[0, 1\]")
    out = assert_oracle_or_value_error(masked, seeded_mask, x, p, seed, valid=True)
    if out is not None:
        assert out.shape == x.shape and out.dtype == x.dtype and not (out.is_floating_point() and out.isnan().any())
        if p == 0:
            assert torch.equal(out, x)
        if p == 1:
            assert not out.any()


@counted()
@fuzz(40)
@given(data=st.data(), shape=SHAPES, dtype=any_dtypes, layout=layouts,
       sigma=st.sampled_from([0.0, 0.5, 2.0]) | st.floats(0, 3), seed=st.integers(0, 3),
       bad_sigma=st.sampled_from([-0.1, math.nan, -math.inf, math.inf]))
def test_gaussian_noise_adds_sigma_times_the_drawn_noise(data, shape, dtype, layout, sigma, seed, bad_sigma):
    x = as_layout(data.draw(grid(shape, 4)).to(dtype), layout)
    def oracle(x, s, seed):                                            # x~ = x + sigma * eps, the same eps
        return x.double() + s * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).double()

    noisy = lambda x, s, seed: gaussian_noise(x, s, torch.Generator().manual_seed(seed))  # noqa: E731
    assert_value_error(noisy, x, bad_sigma, seed, match=r"sigma must be a finite number >= 0")
    out = assert_oracle_or_value_error(noisy, oracle, x, sigma, seed, valid=True,
                                       rtol=1.3e-6, atol=1e-5 * (1 + sigma))  # eps is float32
    if out is not None:
        assert out.shape == x.shape and out.dtype == torch.promote_types(x.dtype, torch.float32)


# ---------------------------------------------------------------------------------------------- fraction active


@counted()
@fuzz(20)
@given(data=st.data(), shape=st.tuples(st.integers(1, 4), st.integers(1, 4)), dtype=any_dtypes, layout=layouts,
       threshold=st.sampled_from([0.1, 0.0, 0.25, 0.5, 1.0, -1.0, math.nan]),
       bad_shape=SHAPES.filter(lambda s: len(s) != 2 or 0 in s))
def test_fraction_active_matches_numpy(data, shape, dtype, layout, threshold, bad_shape):
    h = (data.draw(grid(shape, 8)) * 2 - 0.5)                  # k/4 - 1/2: ties with the thresholds
    h = as_layout(h.to(dtype), layout)
    oracle = lambda h, t: float(np.mean(h.double().numpy() > t))       # noqa: E731
    frac = assert_oracle_or_value_error(fraction_active, oracle, h, threshold, valid=True)
    assert isinstance(frac, float)
    assert_value_error(fraction_active, torch.zeros(bad_shape, dtype=dtype), threshold, match=CODES_ERROR)


# ---------------------------------------------------------------------------------------------- Jacobians


def jacrev_sq_norms(encoder, x):
    """Oracle: ||J_f(x_b)||_F^2 of each example from the full Jacobian by torch.func.jacrev (B, ...) -> (B,)."""
    rows = [torch.func.jacrev(lambda xi: encoder(xi[None])[0])(x[b]).pow(2).sum() for b in range(len(x))]
    return torch.stack(rows) if rows else x.new_zeros(0)


ENCODERS = ["tanh", "sigmoid", "relu", "softplus", "linear", "k-sparse", "constant", "first input only"]


@functools.lru_cache(maxsize=None)
def small_encoder(kind: str, features: int, D: int, dtype: torch.dtype, seed: int):
    """A seeded encoder (B, ...) -> (B, D) with ``features`` inputs per example, and its parameters: a two-layer
    MLP with the given activation, one that ignores x, or one that reads only the first input."""
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(features, 5), nn.Tanh(), nn.Linear(5, D)).to(dtype)
    act = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": F.relu, "softplus": F.softplus}.get(kind)
    params = list(mlp.parameters())
    if kind == "constant":
        bias = nn.Parameter(torch.randn(D, dtype=dtype))
        return (lambda x: bias.expand(len(x), D) * 1.0), [bias]
    if kind == "first input only":
        return (lambda x: torch.sin(x.flatten(1)[:, :1] * mlp[3].weight[:, 0])), params
    if kind == "k-sparse":
        return (lambda x: k_sparse(mlp(x), max(1, D // 2)) if D else mlp(x)), params
    return ((lambda x: act(mlp(x))) if act else mlp), params


@counted()
@fuzz(40)
@given(data=st.data(), B=st.integers(0, 3),
       feature_shape=st.lists(st.integers(1, 3), min_size=1, max_size=2).map(tuple),
       D=st.integers(0, 4), kind=st.sampled_from(ENCODERS), dtype=st.sampled_from(FLOAT_DTYPES),
       layout=layouts, chunk=st.sampled_from([1, 2, 3, 64]), no_grad=st.booleans(), seed=st.integers(0, 2),
       bad=st.sampled_from(NOT_FLOAT), bad_chunk=st.sampled_from([0, -1]))
def test_jacobian_sq_norms_and_contractive_penalty_match_jacrev(data, B, feature_shape, D, kind, dtype, layout, chunk,
                                                               no_grad, seed, bad, bad_chunk):
    features = math.prod(feature_shape)
    encoder, params = small_encoder(kind, features, D, dtype, seed)
    x = as_layout(data.draw(values((B, *feature_shape))).to(dtype), layout)
    match = r"expected floating-point inputs x \(B, \.\.\.\)|chunk must be an int >= 1"
    for wrong_x, wrong_chunk in ((x.to(bad), chunk), (x, bad_chunk)):  # integer or bool inputs; chunk < 1
        assert_value_error(lambda: jacobian_sq_norms(encoder, wrong_x, chunk=wrong_chunk), match=match)
    with torch.no_grad() if no_grad else torch.enable_grad():          # the kernel enables gradients itself
        norms = assert_oracle_or_value_error(lambda e, x: jacobian_sq_norms(e, x, chunk=chunk),
                                             lambda e, x: jacrev_sq_norms(e, x.detach()), encoder, x, valid=True)
    assert norms.shape == (B,) and norms.dtype == x.dtype
    if B == 0:
        assert_value_error(contractive_penalty, encoder, x, match=r"expected a non-empty batch x \(B, \.\.\.\)")
        return
    penalty = contractive_penalty(encoder, x)
    expected = jacrev_sq_norms(encoder, x.detach()).mean()
    assert_same(penalty, expected)
    # create_graph=True: the penalty's gradient in the encoder's parameters is the oracle's
    if penalty.requires_grad and expected.requires_grad:
        got = torch.autograd.grad(penalty, params, allow_unused=True, materialize_grads=True)
        want = torch.autograd.grad(expected, params, allow_unused=True, materialize_grads=True)
        assert_same(list(got), list(want), **tol_of(x))


@FUZZ
@given(data=st.data(), B=st.integers(1, 3))
def test_jacobian_sq_norms_checks_the_encoder_and_x(data, B):
    x = torch.randn(B, 4, dtype=torch.float64)
    bad_codes = data.draw(st.sampled_from([lambda x: x.sum(1), lambda x: x[:, :, None],
                                           lambda x: x[:1].expand(B + 1, 4),
                                           lambda x: x.sum(1).tolist()]))
    assert_value_error(jacobian_sq_norms, bad_codes, x, match=r"expected the encoder to return codes of shape \(B, D\)")
    assert_value_error(jacobian_sq_norms, lambda x: x, torch.tensor(1.0),
                       match=r"expected inputs x of shape \(B, \.\.\.\)")


@counted()
@fuzz(20)
@given(data=st.data(), B=st.integers(1, 4), D=st.integers(0, 4), D_in=st.integers(0, 4),
       dtypes=st.tuples(float_dtypes, float_dtypes), layout=layouts,
       wrong=st.sampled_from(["W shape", "W shape", "empty", "dtype"]))
def test_sigmoid_contractive_penalty_is_jacrev_of_a_sigmoid_layer(data, B, D, D_in, dtypes, layout, wrong):
    W, b = data.draw(values((D, D_in), bound=2.0)), data.draw(values((D,), bound=2.0))
    x = data.draw(images((B, D_in)))
    layer = lambda x: torch.sigmoid(x @ W.T + b)                      # noqa: E731  (float64)
    h = layer(x).to(dtypes[0])
    W_in = as_layout(W.to(dtypes[1]), layout)
    assert_oracle_or_value_error(sigmoid_contractive_penalty, lambda h, W: jacrev_sq_norms(layer, x).mean(), h, W_in,
                                 valid=True, **tol_of(h, W_in))
    bad = {"W shape": lambda: (h, torch.zeros(data.draw(wrong_shape((D, None))), dtype=dtypes[1])),
           "empty": lambda: (h[:0], W_in),                             # no codes
           "dtype": lambda: (h.to(data.draw(st.sampled_from(NOT_FLOAT))), W_in)}[wrong]()
    assert_value_error(sigmoid_contractive_penalty, *bad, match=r"expected .*h \(B, D\)")


# ---------------------------------------------------------------------------------------------- models


@functools.lru_cache(maxsize=None)
def small_model(kind: str) -> Autoencoder:
    """Seeded 28 x 28 autoencoders with 4 code units: one sigmoid layer (the closed-form contractive term),
    a ReLU MLP, and a k-sparse linear one."""
    torch.manual_seed(0)
    kwargs = {"sigmoid": {}, "mlp": dict(hidden=(6,), activation="relu"), "k-sparse": dict(activation="linear", k=2)}
    return Autoencoder(4, **kwargs[kind])


def reference_encode(model, x):
    """The encoder written out: flatten, the Linear/ReLU stack, the code activation, then numpy top-k."""
    h = x.flatten(1)
    linears = [m for m in model.encoder if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        h = F.linear(h, layer.weight, layer.bias)
        if i < len(linears) - 1:
            h = F.relu(h)
    h = {"sigmoid": torch.sigmoid, "relu": F.relu, "linear": lambda t: t}[model.activation](h)
    if model.k:                                                        # no ties among random codes
        h = torch.where(h >= h.topk(model.k, 1).values[:, -1:], h, 0.0)
    return h


def reference_forward(model, x):
    h = reference_encode(model, x)
    linears = [m for m in model.decoder if isinstance(m, nn.Linear)]
    for i, layer in enumerate(linears):
        h = F.linear(h, layer.weight, layer.bias)
        h = F.relu(h) if i < len(linears) - 1 else torch.sigmoid(h)
    return h.view(len(x), 1, 28, 28)


def reference_terms(model, x, x_in, beta, rho, lam):
    """loss_terms written with torch.distributions and torch.func: mse, beta * KL, lam * ||J||_F^2."""
    x_in = x if x_in is None else x_in
    terms = {"mse": ((reference_forward(model, x_in) - x.reshape(len(x), 1, 28, 28)) ** 2).mean()}
    if beta > 0:
        terms["sparsity"] = beta * bernoulli_kl(reference_encode(model, x_in), rho)
    if lam > 0:
        terms["contractive"] = lam * jacrev_sq_norms(lambda t: reference_encode(model, t), x_in).mean()
    terms["loss"] = sum(terms.values())
    return terms


IMAGE_SHAPES = st.tuples(st.integers(0, 3), st.just(1), st.just(28), st.just(28)) | st.tuples(st.integers(0, 3),
                                                                                               st.just(784))
NON_EMPTY = (st.tuples(st.integers(1, 3), st.just(1), st.just(28), st.just(28))
             | st.tuples(st.integers(1, 3), st.just(784)))
BAD_IMAGE_SHAPES = (st.sampled_from([(2, 4, 14, 14), (2, 28, 28), (2, 784, 1), (784,), (), (2, 1, 14, 14)])
                    | wrong_shape((None, 1, 28, 28)))
BAD_IMAGE_DTYPES = st.sampled_from([torch.float64] + ODD_DTYPES)      # the models are float32


def image_batch(data, shape, dtype, layout):
    return as_layout(data.draw(grid(shape, 8)).to(dtype), layout)


@st.composite
def bad_images(draw, x: torch.Tensor):
    """Not a batch of images for the float32 models: another shape (784 pixels per image included), or x in
    another dtype."""
    if draw(st.booleans()):
        return draw(grid(draw(BAD_IMAGE_SHAPES), 8)).float()
    return x.to(draw(BAD_IMAGE_DTYPES))


@counted()
@fuzz(30)
@given(data=st.data(), kind=st.sampled_from(["sigmoid", "mlp", "k-sparse"]), shape=IMAGE_SHAPES, layout=layouts,
       batch_size=st.sampled_from([1, 2, 3, 1000]), bad_batch_size=st.sampled_from([0, -1]))
def test_encode_encode_all_and_decode_check_image_shapes(data, kind, shape, layout, batch_size, bad_batch_size):
    model = small_model(kind).eval()
    x = image_batch(data, shape, torch.float32, layout)
    with torch.no_grad():
        h = assert_oracle_or_value_error(model.encode, functools.partial(reference_encode, model), x, valid=True)
        assert_oracle_or_value_error(lambda x: encode_all(model, x, batch_size),
                                     functools.partial(reference_encode, model), x, valid=True)
        assert h.shape == (len(x), 4)
        assert_oracle_or_value_error(model.decode, lambda h: reference_forward(model, x), h, valid=True)
        bad = data.draw(bad_images(x))
        assert_value_error(model.encode, bad, match=IMAGE_ERROR)
        assert_value_error(encode_all, model, bad, batch_size, match=IMAGE_ERROR)
        assert_value_error(encode_all, model, x, bad_batch_size, match=r"batch_size must be")
        assert_value_error(model.decode, torch.zeros(data.draw(wrong_shape((None, 4)))),
                           match=r"expected codes h of shape \(B, 4\)")
        assert_value_error(model.decode, h.double(), match=r"expected codes h of shape \(B, 4\)")


@counted()
@fuzz(25)
@given(data=st.data(), kind=st.sampled_from(["sigmoid", "mlp", "k-sparse"]), shape=NON_EMPTY, layout=layouts,
       denoising=st.sampled_from(["none", "same"]),
       penalties=st.sampled_from([{}, dict(beta=0.5, rho=0.1), dict(lam=0.1), dict(beta=0.2, rho=0.3, lam=0.05)]),
       batch_size=st.sampled_from([1, 2, 3, 1000]),
       wrong=st.sampled_from(["x", "x", "empty", "other batch", "other shape", "batch_size"]))
def test_loss_terms_reconstruction_mse_and_train_step_check_their_images(data, kind, shape, layout, denoising,
                                                                        penalties, batch_size, wrong):
    model = small_model(kind)
    x = image_batch(data, shape, torch.float32, layout)
    x_in = mask_noise(x, 0.5, torch.Generator().manual_seed(0)) if denoising == "same" else None
    if kind != "sigmoid" and "beta" in penalties:
        penalties = {**penalties, "beta": 0.0}                          # ReLU or linear codes are not probabilities
    match = rf"{IMAGE_ERROR}|expected x and x_in with the same number of images|expected a non-empty batch"
    model.eval()
    assert_oracle_or_value_error(lambda *a: loss_terms(model, *a, **penalties),
                                 lambda *a: reference_terms(model, *a, **{"beta": 0.0, "rho": 0.05, "lam": 0.0,
                                                                          **penalties}),
                                 x, x_in, valid=True, atol=1e-5)
    assert_oracle_or_value_error(lambda x, x_in: reconstruction_mse(model, x, x_in, batch_size),
                                 lambda x, x_in: reference_terms(model, x, x_in, 0.0, 0.05, 0.0)["mse"].item(), x, x_in,
                                 valid=True, rtol=1e-5, atol=1e-7)
    # a batch to reject: no images for one of x and x_in, or not the same number, or no batch at all
    bad = {"x": lambda: (data.draw(bad_images(x)), None), "empty": lambda: (x[:0], None if x_in is None else x_in[:0]),
           "other batch": lambda: (x, torch.rand(len(x) + 1, 784)), "other shape": lambda: (x, torch.rand(len(x), 1, 14,
                                                                                                           14)),
           "batch_size": lambda: (x, x_in)}[wrong]()
    if wrong == "batch_size":
        assert_value_error(reconstruction_mse, model, x, x_in, 0, match=r"batch_size")
    else:
        assert_value_error(lambda: loss_terms(model, *bad, **penalties), match=match)
        assert_value_error(reconstruction_mse, model, *bad, batch_size, match=rf"{match}|expected at least one image")
        before = [p.detach().clone() for p in model.parameters()]      # a rejected batch leaves the model untouched
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        assert_value_error(lambda: train_step(model, optimizer, *bad, **penalties), match=match)
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("d_in", [10, 783, 2])
def test_autoencoder_needs_square_images(d_in):
    with pytest.raises(ValueError, match=r"expected d_in = side \* side"):
        Autoencoder(3, d_in=d_in)
