"""Chapter 08's autoregressive prior over VQ-VAE tokens: attention against PyTorch's, causality, shapes, sampling,
the likelihood against torch.distributions, and a loss that goes down."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.vq.prior import (
    CausalSelfAttention,
    PriorConfig,
    TokenPrior,
    attention,
    causal_mask,
    nll,
    sample_next,
    train_step,
)

SMALL = PriorConfig(num_codes=11, length=12, dim=16, heads=4, layers=2)


def small_prior(seed: int = 0, cfg: PriorConfig = SMALL, dtype=torch.float64) -> TokenPrior:
    torch.manual_seed(seed)
    return TokenPrior(cfg).to(dtype).eval()


def scale(*tensors: torch.Tensor) -> float:
    """Size of the outputs compared, for tolerances relative to them (not to their difference)."""
    return max(float(t.detach().abs().max()) for t in tensors)


@pytest.mark.parametrize("T,S,d", [(1, 1, 4), (5, 5, 8), (12, 12, 3)])
@pytest.mark.parametrize("masked", [True, False])
def test_attention_equals_scaled_dot_product_attention(T, S, d, masked):
    g = torch.Generator().manual_seed(T * 100 + d)
    q, k, v = (torch.randn(2, 3, n, d, generator=g, dtype=torch.float64) for n in (T, S, S))
    mask = causal_mask(T) if masked else None
    ours = attention(q, k, v, mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12 * scale(theirs))
    if masked:
        torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, is_causal=True),
                                   rtol=0, atol=1e-12 * scale(theirs))


def test_causal_mask_is_the_lower_triangle():
    mask = causal_mask(5)
    assert mask.dtype == torch.bool and mask.shape == (5, 5)
    assert all(bool(mask[i, j]) == (j <= i) for i in range(5) for j in range(5))


def test_causal_self_attention_equals_torch_multihead_attention():
    """Same weights in nn.MultiheadAttention (whose bool mask marks the *forbidden* pairs)."""
    torch.manual_seed(0)
    D, H, T = 16, 4, 9
    ours = CausalSelfAttention(D, H).double()
    mha = nn.MultiheadAttention(D, H, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(ours.qkv.weight); mha.in_proj_bias.copy_(ours.qkv.bias)
        mha.out_proj.weight.copy_(ours.proj.weight); mha.out_proj.bias.copy_(ours.proj.bias)
    x = torch.randn(3, T, D, dtype=torch.float64)
    theirs = mha(x, x, x, attn_mask=~causal_mask(T), need_weights=False)[0]
    torch.testing.assert_close(ours(x), theirs, rtol=0, atol=1e-12 * scale(theirs))
    with pytest.raises(ValueError):
        CausalSelfAttention(10, 4)


@pytest.mark.parametrize("T", [1, 5, 12])
def test_prior_shapes(T):
    prior = small_prior()
    tokens = torch.randint(SMALL.num_codes, (3, T))
    assert prior(tokens).shape == (3, T, SMALL.num_codes)
    assert TokenPrior().forward(torch.zeros(2, 49, dtype=torch.int64)).shape == (2, 49, 128)   # the course's default


@pytest.mark.parametrize("bad", [torch.zeros(2, 0, dtype=torch.int64), torch.zeros(2, 13, dtype=torch.int64),
                                 torch.zeros(2, 5), torch.zeros(5, dtype=torch.int64)])
def test_prior_rejects_bad_tokens(bad):
    with pytest.raises(ValueError):
        small_prior()(bad)


@pytest.mark.parametrize("t", [0, 1, 6, 11])
def test_logits_at_t_do_not_see_tokens_from_t_on(t):
    """Changing tokens t, t+1, ... leaves the logits at positions 0..t unchanged (position t predicts token t),
    and changes position t+1 (so the test can fail)."""
    prior = small_prior(seed=t)
    g = torch.Generator().manual_seed(t)
    a = torch.randint(SMALL.num_codes, (4, SMALL.length), generator=g)
    b = a.clone()
    b[:, t:] = (a[:, t:] + 1 + torch.randint(SMALL.num_codes - 1, a[:, t:].shape, generator=g)) % SMALL.num_codes
    assert (a[:, t:] != b[:, t:]).all()
    with torch.no_grad():
        la, lb = prior(a), prior(b)
    torch.testing.assert_close(la[:, :t + 1], lb[:, :t + 1], rtol=0, atol=1e-12 * scale(la))
    if t + 1 < SMALL.length:
        assert (la[:, t + 1] - lb[:, t + 1]).abs().max() > 1e-6 * scale(la)


def test_prefix_logits_equal_full_sequence_logits():
    """What the sampling loop relies on: prior(tokens[:, :t+1])[:, -1] is the logits of position t of the full run."""
    prior = small_prior()
    tokens = torch.randint(SMALL.num_codes, (3, SMALL.length), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = prior(tokens)
        for t in range(SMALL.length):
            torch.testing.assert_close(prior(tokens[:, :t + 1])[:, -1], full[:, t], rtol=0, atol=1e-12 * scale(full))


def test_nll_equals_categorical_log_prob():
    prior = small_prior()
    tokens = torch.randint(SMALL.num_codes, (5, SMALL.length), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = prior(tokens)
        expected = -torch.distributions.Categorical(logits=logits).log_prob(tokens).mean()
        torch.testing.assert_close(nll(prior, tokens), expected, rtol=1e-12, atol=0)
    # an untrained prior is close to uniform: about log K nats per token
    assert abs(expected.item() - math.log(SMALL.num_codes)) < 0.5


def test_sample_next_temperature_zero_is_argmax():
    logits = torch.randn(50, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample_next(logits, 0.0), logits.argmax(1))
    # a very low temperature draws the argmax too (with overwhelming probability)
    assert torch.equal(sample_next(logits, 1e-4, torch.Generator().manual_seed(1)), logits.argmax(1))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_sample_next_draws_from_the_tempered_softmax(temperature):
    logits = torch.tensor([[2.0, 0.5, 0.0, -1.0]]).expand(40_000, 4)
    draws = sample_next(logits, temperature, torch.Generator().manual_seed(3))
    assert draws.dtype == torch.int64 and draws.shape == (40_000,)
    freq = torch.bincount(draws, minlength=4).double() / len(draws)
    p = (logits[0].double() / temperature).softmax(0)
    sigma = (p * (1 - p) / len(draws)).sqrt()
    assert ((freq - p).abs() < 5 * sigma + 1e-12).all(), (freq, p)


def test_sample_next_rejects_bad_input():
    with pytest.raises(ValueError):
        sample_next(torch.zeros(3, 4), -1.0)
    with pytest.raises(ValueError):
        sample_next(torch.zeros(4), 1.0)


def test_loss_goes_down():
    """Sequences where each token is the previous one + 1 (mod K) from a random start: after the first token
    everything is predictable, so the NLL must fall well below log K."""
    torch.manual_seed(0)
    cfg = PriorConfig(num_codes=11, length=12, dim=32, heads=4, layers=1)
    prior = TokenPrior(cfg)
    start = torch.randint(cfg.num_codes, (64, 1))
    tokens = (start + torch.arange(cfg.length)) % cfg.num_codes          # (64, 12)
    optimizer = torch.optim.AdamW(prior.parameters(), lr=3e-3)
    losses = [float(train_step(prior, optimizer, tokens)) for _ in range(60)]
    assert losses[0] > 0.8 * math.log(cfg.num_codes)
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0], [round(v, 3) for v in losses[::10]]
