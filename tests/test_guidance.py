"""Chapters 14-15: classifier-free guidance, classifier guidance, the class-conditional U-Net, the noisy
classifier and cross-attention.

Oracles: a class-conditional Gaussian toy whose noisy scores and Bayes classifier are exact
(torch.distributions log-densities differentiated by autograd, and the closed form
grad log p(y | x_t) = sqrt(abar) / s^2 (mu_y - E_p(k|x_t)[mu_k])); torch.func (per-example gradients by
vmap(grad)); diffusers' ``Attention`` (both its ``AttnProcessor2_0`` and the written-out ``AttnProcessor``,
``get_attention_scores`` for the weights); ``F.scaled_dot_product_attention`` with a boolean mask; the plain
``UNet`` (the class-conditional one with a zero class embedding).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import (
    Attention,
    AttnProcessor,
    AttnProcessor2_0,
)
from tolerance import assert_close_scaled
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from course_lib.diffusion import UNet, attention
from course_lib.guidance import (
    ClassConditionalUNet,
    CrossAttention,
    NoisyClassifier,
    SpatialCrossAttention,
    cfg,
    classifier_grad,
    classifier_guided_eps,
    drop_condition,
    eps_cfg,
    masked_attention,
)


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---------------------------------------------------------------------------------------------- cfg


def test_cfg_ends_exact_linear_in_s_and_per_example():
    """s = 0 gives eps_u and s = 1 gives eps_c bit for bit; cfg equals eps_u + s (eps_c - eps_u) and is affine
    in s; a (B,) scale applies row by row."""
    eps_u, eps_c = randn(4, 1, 6, 6, seed=1), randn(4, 1, 6, 6, seed=2)
    assert torch.equal(cfg(eps_u, eps_c, 0.0), eps_u)
    assert torch.equal(cfg(eps_u, eps_c, 1.0), eps_c)
    assert torch.equal(cfg(eps_u, eps_c, torch.zeros(4)), eps_u)
    assert torch.equal(cfg(eps_u, eps_c, torch.ones(4)), eps_c)
    scale = 8 * (eps_u.abs().max() + eps_c.abs().max())
    for s in [-1.0, 0.3, 2.0, 7.5]:
        assert_close_scaled(cfg(eps_u, eps_c, s), eps_u + s * (eps_c - eps_u), scale=scale)
    a, s1, s2 = 0.3, 2.0, 5.0                                                         # affine in s
    assert_close_scaled(cfg(eps_u, eps_c, a * s1 + (1 - a) * s2),
                        a * cfg(eps_u, eps_c, s1) + (1 - a) * cfg(eps_u, eps_c, s2), scale=scale)
    s = torch.tensor([0.0, 1.0, 3.0, -0.5])
    rows = torch.cat([cfg(eps_u[i:i + 1], eps_c[i:i + 1], float(s[i])) for i in range(4)])
    assert torch.equal(cfg(eps_u, eps_c, s), rows)
    assert cfg(eps_u.float(), eps_c.float(), 3.0).dtype == torch.float32


def test_cfg_bad_inputs():
    with pytest.raises(ValueError, match=r"same shape \(B, \.\.\.\)"):
        cfg(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        cfg(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(3))


# ---------------------------------------------------------------------------------------------- the Gaussian toy

K, DIM, SIGMA0 = 3, 2, 0.3
MU = torch.tensor([[2.0, 0.0], [-1.0, 1.5], [0.0, -2.0]], dtype=torch.float64)        # (K, DIM) class means


def toy_noisy(abar: torch.Tensor):
    """p(x0 | y) = N(mu_y, SIGMA0^2 I), y uniform. At noise level abar (B,): p_t(x | y) = N(sqrt(abar) mu_y, s^2 I),
    s^2 = abar SIGMA0^2 + 1 - abar. Returns the means (B, K, DIM) and the std s (B, 1, 1)."""
    s = (abar * SIGMA0**2 + 1 - abar).sqrt()[:, None, None]
    return abar.sqrt()[:, None, None] * MU, s


class BayesClassifier(nn.Module):
    """The exact p(y | x_t) of the toy: logits_k = log p_t(x_t | k) (uniform prior); t indexes ``abar``."""

    def __init__(self, abar: torch.Tensor):
        super().__init__()
        self.abar = abar

    def forward(self, x, t):
        means, s = toy_noisy(self.abar[t])                                           # (B, K, DIM), (B, 1, 1)
        return Normal(means, s).log_prob(x[:, None, :]).sum(-1)                      # (B, K)


def score(log_prob, x):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(log_prob(x).sum(), x)
    return g


@pytest.mark.parametrize("s", [0.0, 0.5, 1.0, 3.0])
def test_guidance_on_the_gaussian_toy(s):
    """With exact models: (1) ``classifier_grad`` of the Bayes classifier is the closed-form
    sqrt(abar)/s^2 (mu_y - sum_k p(k|x_t) mu_k); (2) classifier guidance at scale 1 turns the unconditional eps into
    the conditional eps (Bayes' rule through eps = -sqrt(1 - abar) score); (3) at any scale, classifier guidance
    and CFG give the same eps, and CFG is the combination (1 - s) score_u + s score_c of the scores.
    Per-example abar (B,)."""
    abar = torch.tensor([0.999, 0.9, 0.5, 0.2, 0.05, 0.01], dtype=torch.float64)
    t = torch.arange(6)
    x = randn(6, DIM, seed=3) * 2
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    means, sd = toy_noisy(abar)
    mixture = MixtureSameFamily(Categorical(torch.ones(6, K)), Independent(Normal(means, sd), 1))
    conditional = Independent(Normal(means[torch.arange(6), y], sd[:, 0]), 1)
    score_u, score_c = score(mixture.log_prob, x), score(conditional.log_prob, x)
    c = (1 - abar).sqrt()[:, None]
    eps_u, eps_c = -c * score_u, -c * score_c                                        # eps = -sqrt(1 - abar) score
    clf = BayesClassifier(abar)
    with torch.no_grad():                                                           # as in a sampling loop
        grad = classifier_grad(clf, x, t, y)
    p = clf(x, t).softmax(1)                                                        # (B, K)
    closed = (abar.sqrt() / sd[:, 0, 0] ** 2)[:, None] * (MU[y] - p @ MU)
    scale = (x.abs().max() + MU.abs().max()) / sd.min() ** 2
    assert_close_scaled(grad, closed, scale=scale)
    guided = classifier_guided_eps(eps_u, grad, abar, s)
    assert_close_scaled(guided, cfg(eps_u, eps_c, s), scale=(1 + s) * scale)
    assert_close_scaled(cfg(eps_u, eps_c, s), -c * ((1 - s) * score_u + s * score_c), scale=(1 + s) * scale)
    if s == 1.0:
        assert_close_scaled(guided, eps_c, scale=scale)
    # a float abar equals the same value in every row
    same = classifier_guided_eps(eps_u[:1].expand(3, -1), grad[:1].expand(3, -1), float(abar[0]), s)
    assert_close_scaled(same, guided[:1].expand(3, -1), scale=(1 + s) * scale)


def test_classifier_guided_eps_bad_inputs():
    with pytest.raises(ValueError, match=r"same shape"):
        classifier_guided_eps(torch.zeros(2, 3), torch.zeros(3, 3), 0.5, 1.0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        classifier_guided_eps(torch.zeros(2, 3), torch.zeros(2, 3), torch.full((3,), 0.5), 1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        classifier_guided_eps(torch.zeros(2, 3), torch.zeros(2, 3), 1.5, 1.0)


# ---------------------------------------------------------------------------------------------- classifier_grad


class LinearClassifier(nn.Module):
    """logits = W flatten(x) + b + t u: a classifier whose log-softmax gradient has the closed form
    W^T (onehot(y) - softmax)."""

    def __init__(self, d_in, k):
        super().__init__()
        self.lin, self.u = nn.Linear(d_in, k, dtype=torch.float64), nn.Parameter(randn(k, seed=4))

    def forward(self, x, t):
        return self.lin(x.flatten(1)) + t.to(x.dtype)[:, None] * self.u


def test_classifier_grad_matches_torch_func_and_is_per_example():
    torch.manual_seed(0)
    clf = LinearClassifier(12, 5)
    x, t, y = randn(4, 3, 2, 2, seed=5), torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64), \
        torch.tensor([0, 4, 2, 2])
    grad = classifier_grad(clf, x, t, y)
    assert grad.shape == x.shape and not grad.requires_grad and not x.requires_grad
    params = dict(clf.named_parameters())

    def log_p(xi, ti, yi):                                                          # one example
        logits = torch.func.functional_call(clf, params, (xi[None], ti[None]))[0]
        return F.log_softmax(logits, 0).gather(0, yi[None])[0]

    oracle = torch.func.vmap(torch.func.grad(log_p))(x, t, y)
    logits = clf(x, t)
    closed = ((F.one_hot(y, 5) - logits.softmax(1)) @ clf.lin.weight).view_as(x)
    scale = clf.lin.weight.abs().max() * 2
    with torch.no_grad():
        assert_close_scaled(grad, oracle, scale=scale)
        assert_close_scaled(grad, closed, scale=scale)
    x2 = x.clone()
    x2[0] += 5.0                                                                    # change example 0 only
    grad2 = classifier_grad(clf, x2, t, y)
    assert torch.equal(grad2[1:], grad[1:]) and not torch.allclose(grad2[0], grad[0])


def test_noisy_classifier_gradients_are_per_example():
    """GroupNorm keeps examples apart: the batch's gradients are the single examples' gradients."""
    torch.manual_seed(0)
    clf = NoisyClassifier().double().eval()
    x, t, y = randn(3, 1, 28, 28, seed=6), torch.tensor([0, 400, 900]), torch.tensor([1, 7, 3])
    grad = classifier_grad(clf, x, t, y)
    rows = torch.cat([classifier_grad(clf, x[i:i + 1], t[i:i + 1], y[i:i + 1]) for i in range(3)])
    assert_close_scaled(grad, rows, scale=grad.abs().max(), ulps=256)
    assert float(grad.abs().max()) > 0


def test_classifier_grad_bad_inputs():
    clf = LinearClassifier(4, 3)
    x, t = randn(2, 4), torch.zeros(2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"y of shape \(2,\)"):
        classifier_grad(clf, x, t, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        classifier_grad(clf, x, t, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"\(B, \.\.\.\)"):
        classifier_grad(clf, torch.zeros(2, 4, dtype=torch.long), t, torch.tensor([0, 1]))


# ---------------------------------------------------------------------------------------------- drop_condition


def test_drop_condition():
    """p = 0 keeps, p = 1 drops everything; otherwise each row is dropped with probability p (5 standard errors
    on 20,000 rows), reproducibly with a seeded generator; rows of token ids are replaced whole."""
    labels = torch.randint(10, (20_000,), generator=torch.Generator().manual_seed(7))
    assert torch.equal(drop_condition(labels, 0.0, 10), labels)
    assert bool((drop_condition(labels, 1.0, 10) == 10).all())
    out = drop_condition(labels, 0.1, 10, torch.Generator().manual_seed(8))
    assert torch.equal(out, drop_condition(labels, 0.1, 10, torch.Generator().manual_seed(8)))
    assert torch.equal(out[out != 10], labels[out != 10])
    frac = float((out == 10).double().mean())
    assert abs(frac - 0.1) < 5 * math.sqrt(0.1 * 0.9 / 20_000), frac
    ids = torch.randint(2, 30, (500, 6), generator=torch.Generator().manual_seed(9))
    null = torch.tensor([1, 0, 0, 0, 0, 0])                                          # the empty caption's ids
    out = drop_condition(ids, 0.5, null, torch.Generator().manual_seed(10))
    dropped = (out == null).all(1)
    assert 150 < int(dropped.sum()) < 350 and torch.equal(out[~dropped], ids[~dropped])
    with pytest.raises(ValueError, match=r"0 <= p_uncond <= 1"):
        drop_condition(labels, 1.5, 10)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        drop_condition(ids, 0.5, torch.zeros(5, dtype=torch.long))


# ---------------------------------------------------------------------------------------------- the conditional U-Net


def small_unet(num_classes=4):
    torch.manual_seed(0)
    return ClassConditionalUNet(num_classes, channels=(8, 16), attention=(False, True), heads=2, groups=4).eval()


def test_class_conditional_unet_shapes_null_and_labels():
    model = small_unet()
    x, t = randn(4, 1, 12, 12, seed=11, dtype=torch.float32), torch.tensor([0, 10, 500, 999])
    with torch.no_grad():
        out = model(x, t, torch.tensor([0, 1, 2, 3]))
        null = model(x, t, torch.full((4,), model.null_label))
        other = model(x, t, torch.tensor([3, 2, 1, 0]))
        assert model(x, 7, torch.tensor([0, 1, 2, 4])).shape == (4, 1, 12, 12)         # scalar t, a null row
    assert out.shape == null.shape == (4, 1, 12, 12) and model.null_label == 4
    assert model.class_emb.num_embeddings == 5
    for a, b in [(out, null), (out, other)]:
        assert float((a - b).abs().amax((1, 2, 3)).min()) > 1e-3 * float(out.abs().max()), "labels change eps"


def test_class_conditional_unet_with_zero_class_embedding_is_the_unet():
    """The class embedding is the only change: with it zeroed, the model is the plain U-Net with its weights."""
    model = small_unet()
    with torch.no_grad():
        model.class_emb.weight.zero_()
    plain = UNet(channels=(8, 16), attention=(False, True), heads=2, groups=4).eval()
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing and unexpected == ["class_emb.weight"]
    x, t = randn(3, 1, 8, 8, seed=12, dtype=torch.float32), torch.tensor([1, 50, 900])
    with torch.no_grad():
        assert torch.equal(model(x, t, torch.tensor([0, 2, 4])), plain(x, t))


def test_eps_cfg_is_cfg_of_the_two_passes():
    """One batch of 2B equals the conditional and the null passes run apart, combined by ``cfg``: scale 0 is the
    null pass, scale 1 the conditional one (up to rounding: the batch size changes the kernels' blocking)."""
    model = small_unet()
    x, t, y = randn(3, 1, 8, 8, seed=13, dtype=torch.float32), torch.tensor([5, 300, 800]), torch.tensor([0, 3, 1])
    with torch.no_grad():
        eps_c, eps_u = model(x, t, y), model(x, t, torch.full_like(y, model.null_label))
        tol = {"scale": eps_c.abs().max() + eps_u.abs().max(), "ulps": 256}
        assert_close_scaled(eps_cfg(model, x, t, y, 0.0), eps_u, **tol)
        assert_close_scaled(eps_cfg(model, x, t, y, 1.0), eps_c, **tol)
        s = torch.tensor([0.0, 2.0, 7.5])
        assert_close_scaled(eps_cfg(model, x, t, y, s), cfg(eps_u, eps_c, s), **{**tol, "scale": 9 * tol["scale"]})
        assert eps_cfg(model, x, 100, y, 3.0).shape == x.shape                                  # a scalar t


def test_class_conditional_unet_bad_inputs():
    model = small_unet()
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"y of shape \(2,\) int64 in \[0, 4\]"):
        model(x, 0, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"y of shape \(2,\)"):
        model(x, 0, torch.zeros(2))
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        model(x, 0, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        model(torch.zeros(2, 3, 8, 8), 0, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"y \(B,\)"):
        eps_cfg(model, x, 0, torch.tensor([0]), 1.0)


def test_conditional_models_one_step_lowers_the_loss():
    """Three Adam steps on one fixed batch lower L_simple for the conditional U-Net (labels dropped to null with
    p = 0.5) and the cross-entropy of the noisy classifier."""
    torch.manual_seed(0)
    model = small_unet().train()
    x0, eps = randn(6, 1, 8, 8, seed=14, dtype=torch.float32), randn(6, 1, 8, 8, seed=15, dtype=torch.float32)
    t, abar = torch.tensor([10, 100, 200, 300, 400, 500]), torch.linspace(0.9, 0.2, 6)[:, None, None, None]
    y = drop_condition(torch.tensor([0, 1, 2, 3, 0, 1]), 0.5, model.null_label, torch.Generator().manual_seed(16))
    xt = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    clf = NoisyClassifier(num_classes=4, channels=(8, 16), groups=4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    for net, loss_fn in [(model, lambda: (model(xt, t, y) - eps).pow(2).mean()),
                         (clf, lambda: F.cross_entropy(clf(xt, t), labels))]:
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        losses = []
        for _ in range(4):
            loss = loss_fn()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.9 * losses[0], (type(net).__name__, losses)


def test_noisy_classifier_shapes_size_and_time():
    torch.manual_seed(0)
    clf = NoisyClassifier().eval()
    n = sum(p.numel() for p in clf.parameters())
    assert 50_000 < n < 200_000, n
    x = randn(2, 1, 28, 28, seed=17, dtype=torch.float32)
    with torch.no_grad():
        a, b = clf(x, torch.tensor([0, 0])), clf(x, torch.tensor([900, 900]))
        assert a.shape == (2, 10) and clf(x, 5).shape == (2, 10)
    assert float((a - b).abs().max()) > 1e-3 * float(a.abs().max()), "t changes the logits"
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        clf(torch.zeros(2, 28, 28), 0)
    with pytest.raises(ValueError, match=r"t of shape \(2,\)"):
        clf(x, torch.zeros(3))


# ---------------------------------------------------------------------------------------------- cross-attention


def diffusers_twin(ours: CrossAttention, **kwargs) -> Attention:
    """diffusers' Attention with our weights (to_q, to_k, to_v without bias; to_out[0] with bias), float64."""
    theirs = Attention(ours.query_dim, cross_attention_dim=ours.context_dim, heads=ours.heads,
                       dim_head=ours.dim_head, **kwargs).double()
    for name in ["to_q", "to_k", "to_v"]:
        assert getattr(theirs, name).bias is None
        getattr(theirs, name).weight.data.copy_(getattr(ours, name).weight)
    theirs.to_out[0].weight.data.copy_(ours.to_out.weight)
    theirs.to_out[0].bias.data.copy_(ours.to_out.bias)
    return theirs


def make_mask(B, M):
    """(B, M) bool with some tokens dropped in every row but the start token (column 0) kept: captions of
    lengths 2, 3, ... followed by pads, with one more token dropped inside row 0 (masks need not be prefixes)."""
    mask = torch.arange(M)[None] < torch.arange(2, B + 2)[:, None]
    mask[0, 0:2], mask[0, M - 1] = torch.tensor([True, False]), True
    assert not bool(mask.all(1).any()) and bool(mask[:, 0].all())
    return mask


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("processor", [AttnProcessor2_0, AttnProcessor])
@pytest.mark.parametrize("dims", [(32, 24, 4, 16), (16, 8, 2, 4)])
def test_cross_attention_matches_diffusers(masked, processor, dims):
    """Output equals diffusers' ``Attention(query_dim, cross_attention_dim=context_dim, heads, dim_head)`` with the
    same weights, given the mask as diffusers' additive bias (0 kept, -10000 dropped, as its UNet builds it);
    the weights equal its ``get_attention_scores`` (the written-out processor's softmax)."""
    query_dim, context_dim, heads, dim_head = dims
    torch.manual_seed(0)
    ours = CrossAttention(query_dim, context_dim, heads, dim_head).double()
    theirs = diffusers_twin(ours)
    theirs.set_processor(processor())
    B, N, M = 3, 10, 7
    x, context = randn(B, N, query_dim, seed=18), randn(B, M, context_dim, seed=19)
    mask = make_mask(B, M) if masked else None
    bias = None if mask is None else (1 - mask.double())[:, None, :] * -10000.0          # (B, 1, M)
    with torch.no_grad():
        expected = theirs(x, encoder_hidden_states=context, attention_mask=bias)
        fast = ours(x, context, mask)
        explicit, weights = ours(x, context, mask, return_attention=True)
        q, k = theirs.head_to_batch_dim(theirs.to_q(x)), theirs.head_to_batch_dim(theirs.to_k(context))
        bias3 = None if bias is None else theirs.prepare_attention_mask(bias, M, B)
        their_weights = theirs.get_attention_scores(q, k, bias3).view(B, heads, N, M)
    scale = expected.abs().max() + x.abs().max() + context.abs().max()
    assert fast.shape == explicit.shape == (B, N, query_dim) and weights.shape == (B, heads, N, M)
    assert_close_scaled(fast, expected, scale=scale, ulps=256)
    assert_close_scaled(explicit, expected, scale=scale, ulps=256)
    assert_close_scaled(weights, their_weights, scale=1, ulps=256)


def test_masked_attention_equals_sdpa_and_masked_tokens_get_zero_weight():
    q, k, v = randn(2, 3, 5, 8, seed=21), randn(2, 3, 7, 8, seed=22), randn(2, 3, 7, 6, seed=23)
    mask = make_mask(2, 7)
    out, w = masked_attention(q, k, v, mask)
    sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
    scale = v.abs().max() * (1 + q.abs().max() * k.abs().max() * 8)
    assert_close_scaled(out, sdpa, scale=scale)
    assert bool((w[~mask[:, None, None, :].expand_as(w)] == 0).all())                  # exactly 0
    assert_close_scaled(w.sum(-1), torch.ones(2, 3, 5, dtype=torch.float64), scale=1)
    out_all, _ = masked_attention(q, k, v)
    assert_close_scaled(out_all, attention(q, k, v), scale=scale)                      # the U-Net's kernel


def test_cross_attention_ignores_masked_context():
    """What sits at a masked token (a pad's embedding) changes neither the output nor the kept weights."""
    torch.manual_seed(0)
    ours = CrossAttention(16, 8, heads=2, dim_head=8).double()
    x, context, mask = randn(2, 6, 16, seed=25), randn(2, 5, 8, seed=26), make_mask(2, 5)
    other = torch.where(mask[..., None], context, 100 * randn(2, 5, 8, seed=28))
    with torch.no_grad():
        a, wa = ours(x, context, mask, return_attention=True)
        b, wb = ours(x, other, mask, return_attention=True)
    assert_close_scaled(a, b, scale=a.abs().max() + x.abs().max(), ulps=256)
    assert torch.equal(wa == 0, wb == 0) and torch.equal(wa == 0, ~mask[:, None, None, :].expand_as(wa))
    with torch.no_grad():
        assert (ours(x, other) - ours(x, context)).abs().max() > 0.1 * a.abs().max()   # unmasked, it matters


@pytest.mark.parametrize("masked", [False, True])
def test_spatial_cross_attention_matches_diffusers(masked):
    """GroupNorm, pixels as tokens, cross-attention, residual: diffusers' Attention with ``norm_num_groups`` and
    ``residual_connection=True`` on a (B, C, H, W) input, with the same weights."""
    torch.manual_seed(0)
    ours = SpatialCrossAttention(16, 12, heads=2, dim_head=8, groups=4).double()
    with torch.no_grad():
        ours.norm.weight.copy_(1 + 0.5 * randn(16, seed=29))
        ours.norm.bias.copy_(0.5 * randn(16, seed=30))
    theirs = diffusers_twin(ours.attn, norm_num_groups=4, residual_connection=True)
    theirs.group_norm.load_state_dict(ours.norm.state_dict())
    B, H, W, M = 2, 5, 6, 4
    x, context = randn(B, 16, H, W, seed=31), randn(B, M, 12, seed=32)
    mask = make_mask(B, M) if masked else None
    bias = None if mask is None else (1 - mask.double())[:, None, :] * -10000.0
    with torch.no_grad():
        expected = theirs(x, encoder_hidden_states=context, attention_mask=bias)
        out, weights = ours(x, context, mask, return_attention=True)
        fast = ours(x, context, mask)
    assert out.shape == (B, 16, H, W) and weights.shape == (B, 2, H * W, M)
    scale = expected.abs().max() + x.abs().max() + context.abs().max()
    assert_close_scaled(out, expected, scale=scale, ulps=256)
    assert_close_scaled(fast, expected, scale=scale, ulps=256)


def test_cross_attention_bad_inputs():
    ca = CrossAttention(16, 8)
    with pytest.raises(ValueError, match=r"x of shape \(B, N, 16\)"):
        ca(torch.zeros(2, 5, 15), torch.zeros(2, 3, 8))
    with pytest.raises(ValueError, match=r"context of shape \(2, M, 8\)"):
        ca(torch.zeros(2, 5, 16), torch.zeros(2, 3, 7))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 3\) bool"):
        ca(torch.zeros(2, 5, 16), torch.zeros(2, 3, 8), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask of shape \(2, 3\) bool"):
        ca(torch.zeros(2, 5, 16), torch.zeros(2, 3, 8), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"at least one token"):
        ca(torch.zeros(2, 5, 16), torch.zeros(2, 3, 8), torch.tensor([[True, False, False], [False] * 3]))
    with pytest.raises(ValueError, match=r"x of shape \(B, 16, H, W\)"):
        SpatialCrossAttention(16, 8)(torch.zeros(2, 8, 4, 4), torch.zeros(2, 3, 8))
