"""Notebooks 07 and 08's exercises: the right answer passes, a correctly rounded one passes, the plausible wrong
ones fail; the write-the-kernel checks accept a right kernel and reject a sign flip, a missing term, a wrong
reduction, a missing straight-through."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.vae import checks
from course_lib.vae.vae import bernoulli_log_likelihood, gaussian_kl
from course_lib.vq import checks as vq_checks
from exercise_checks import assert_hand_check, passes


# ---------------------------------------------------------------------------------------------- 07: reparameterize


def good_reparameterize(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


@pytest.mark.parametrize("wrong", [
    lambda mu, logvar, eps: mu + torch.exp(logvar) * eps,                  # the variance, not the std
    lambda mu, logvar, eps: mu + logvar * eps,                             # logvar read as sigma
    lambda mu, logvar, eps: mu - torch.exp(0.5 * logvar) * eps,            # sign flip
    lambda mu, logvar, eps: mu + torch.exp(0.5 * logvar),                  # forgot the noise
    lambda mu, logvar, eps: (mu + torch.exp(0.5 * logvar) * eps).squeeze(),  # a batch of one loses its dim
], ids=["variance", "logvar-as-sigma", "sign", "no-noise", "squeeze"])
def test_reparameterize_kernel_rejects_wrong_kernels(wrong, capsys):
    assert not passes(checks.check_reparameterize_kernel(wrong))
    assert "Not quite" in capsys.readouterr().out


def test_reparameterize_kernel_accepts_the_solution_and_names_the_input(capsys):
    assert passes(checks.check_reparameterize_kernel(good_reparameterize))
    assert capsys.readouterr().out.startswith("Correct! my_reparameterize agrees with course_lib.vae.vae.reparam")
    assert not passes(checks.check_reparameterize_kernel(lambda mu, logvar, eps: None))
    assert "Not answered yet" in capsys.readouterr().out
    # wrong only on a batch of one: the check names that input
    assert not passes(checks.check_reparameterize_kernel(
        lambda mu, logvar, eps: good_reparameterize(mu, logvar, eps) * (1.5 if len(mu) == 1 else 1.0)))
    assert "input 4 (edge: a batch of one" in capsys.readouterr().out


def test_reparameterize_cases_are_seeded_and_have_the_edge_cases():
    cases = checks.reparameterize_cases()
    again = checks.reparameterize_cases()
    assert all(torch.equal(a, b) for (_, xs), (_, ys) in zip(cases, again) for a, b in zip(xs, ys))
    assert all(t.dtype == torch.float64 for _, args in cases for t in args)
    descriptions = " ".join(d for d, _ in cases)
    assert "logvar = 0" in descriptions and "batch of one" in descriptions
    (_, (_, logvar, _)), = [c for c in cases if "logvar = 0" in c[0]]
    assert (logvar == 0).all()
    assert any(args[0].shape[0] == 1 for _, args in cases)


# ---------------------------------------------------------------------------------------------- 07: negative ELBO


def good_neg_elbo(logits, x, mu, logvar):
    nll = (F.softplus(logits) - x * logits).flatten(1).sum(1)
    return nll + 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)


def naive_neg_elbo(logits, x, mu, logvar):  # log(sigmoid): fine at the checked logits in float64
    s = torch.sigmoid(logits)
    recon = (x * torch.log(s) + (1 - x) * torch.log(1 - s)).flatten(1).sum(1)
    return 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1) - recon


def test_neg_elbo_reference_is_course_libs():
    for _, (logits, x, mu, logvar) in checks.neg_elbo_cases():
        expected = gaussian_kl(mu, logvar) - bernoulli_log_likelihood(logits, x)
        assert torch.allclose(checks.neg_elbo(logits, x, mu, logvar), expected, rtol=0, atol=0)
        assert set(x.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("right", [good_neg_elbo, naive_neg_elbo], ids=["softplus", "log-sigmoid"])
def test_neg_elbo_kernel_accepts_right_kernels(right, capsys):
    assert passes(checks.check_neg_elbo_kernel(right))
    assert capsys.readouterr().out.startswith("Correct! my_neg_elbo agrees")


def _kl(mu, logvar):
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1)


def _nll(logits, x):
    return (F.softplus(logits) - x * logits).flatten(1).sum(1)


@pytest.mark.parametrize("wrong", [
    lambda logits, x, mu, logvar: _nll(logits, x) - _kl(mu, logvar),                       # sign of the KL
    lambda logits, x, mu, logvar: -_nll(logits, x) + _kl(mu, logvar),                      # the ELBO's recon sign
    lambda logits, x, mu, logvar: _nll(logits, x),                                          # missing KL
    lambda logits, x, mu, logvar: _kl(mu, logvar),                                          # missing recon
    lambda logits, x, mu, logvar: _nll(logits, x) + 2 * _kl(mu, logvar),                   # no 1/2
    lambda logits, x, mu, logvar: _nll(logits, x) + 0.5 * (mu**2 + logvar.exp() - logvar).sum(1),  # no -1
    lambda logits, x, mu, logvar: (F.softplus(logits) - x * logits).flatten(1).mean(1) + _kl(mu, logvar),  # mean
    lambda logits, x, mu, logvar: _nll(logits, x) + 0.5 * (mu**2 + logvar.exp().sqrt() - 1 - logvar / 2).sum(1),
    lambda logits, x, mu, logvar: (_nll(logits, x) + _kl(mu, logvar)).mean(),              # batch mean
    lambda logits, x, mu, logvar: _nll(logits, x) + _kl(mu, logvar).sum(),                 # KL over the batch
    lambda logits, x, mu, logvar: _nll(logits, 1 - x) + _kl(mu, logvar),                   # x flipped
], ids=["kl-sign", "recon-sign", "no-kl", "no-recon", "no-half", "no-minus-one", "pixel-mean", "sigma-not-var",
        "batch-mean", "kl-over-batch", "flipped-x"])
def test_neg_elbo_kernel_rejects_wrong_kernels(wrong, capsys):
    assert not passes(checks.check_neg_elbo_kernel(wrong))
    assert "Not quite" in capsys.readouterr().out


def test_neg_elbo_cases_have_the_edge_case():
    cases = checks.neg_elbo_cases()
    edge = [args for d, args in cases if "batch of one" in d]
    assert len(edge) == 1
    logits, x, mu, logvar = edge[0]
    assert len(logits) == 1 and (mu == 0).all() and (logvar == 0).all()
    assert float(gaussian_kl(mu, logvar)) == 0.0
    assert any(args[0].shape[1] > 1 for _, args in cases)               # a multi-channel image: sum over C too


# ---------------------------------------------------------------------------------------------- 07: hand computations


KL = 0.5 * (1 + 1 - 1 - 0) + 0.5 * (0 + 4 - 1 - math.log(4))              # 1.30685...
IWAE = -100 + math.log((1 + math.exp(-1) + math.exp(-3)) / 3)             # -100.7496...
NATS, BPP = -784 * math.log(0.9), -math.log2(0.9)                         # 82.60..., 0.1520...


@pytest.mark.parametrize("check, right, rounded, wrongs", [
    (checks.check_gaussian_kl, KL, 1.307,
     [1.306, 1.31, 2 * KL, KL - 0.5, KL + 1, 0.5 + 0.5 * (2 - 1 - math.log(2)), 0.5]),
    # (without the 1/2; the second dimension only; without the -1; sigma for sigma^2; mu only)
    (checks.check_reparameterization, 0.0, 0.0004, [1 + 4 * -0.5, 1 + math.log(4) * -0.5, 2.0, 1.0, 0.001]),
    # (the variance for sigma; logvar for sigma; a sign flip; mu alone; off by a unit in the 3rd decimal)
    (checks.check_iwae_estimate, IWAE, -100.750, [-304 / 3, IWAE + math.log(3), -100.0, -100.75 + 0.001, -100.7]),
    # (the mean of the log weights = ELBO-like; without the -log k; the max weight; off in the 3rd decimal)
    (checks.check_bernoulli_nll, (NATS, BPP), (82.6, 0.152),
     [(NATS, NATS / 784), (NATS, NATS / math.log(2)), (NATS / 784, BPP), (NATS, -math.log2(0.1)),
      (-784 * math.log(0.1), BPP), (BPP, NATS), NATS, BPP, (82.6, 0.15), (82.7, 0.152)]),
    # (nats per pixel given as bits; bits per image; nats per pixel as the NLL; p read as the black pixel's
    #  probability; the same for the NLL; swapped; a single number; under-precise; wrong in the 3rd digit)
], ids=["gaussian_kl", "reparameterization", "iwae_estimate", "bernoulli_nll"])
def test_07_hand_checks(check, right, rounded, wrongs, capsys):
    assert_hand_check(check, right, rounded, wrongs, capsys)


# ---------------------------------------------------------------------------------------------- 08: the quantizer


def good_quantize(z_e, codebook):
    codes = (z_e[:, None, :] - codebook[None]).square().sum(-1).argmin(1)
    e = codebook[codes]
    return z_e + (e - z_e).detach(), codes


def cdist_quantize(z_e, codebook):
    codes = torch.cdist(z_e, codebook).argmin(1)
    return z_e + (codebook[codes] - z_e).detach(), codes


def _st(z_e, e):
    return z_e + (e - z_e).detach()


@pytest.mark.parametrize("right", [good_quantize, cdist_quantize], ids=["broadcast", "cdist"])
def test_quantize_kernel_accepts_right_kernels(right, capsys):
    assert passes(vq_checks.check_quantize_kernel(right))
    assert capsys.readouterr().out.startswith("Correct! my_quantize agrees")


def _codes(z_e, codebook):
    return (z_e[:, None, :] - codebook[None]).square().sum(-1).argmin(1)


def _by(z_e, codebook, codes):
    """The straight-through quantizer with the codes some (wrong) rule picked."""
    return _st(z_e, codebook[codes]), codes


WRONG_QUANTIZERS = {
    "no straight-through (z_q = e)": lambda z, c: (c[_codes(z, c)], _codes(z, c)),
    "detached output": lambda z, c: (c[_codes(z, c)].detach(), _codes(z, c)),
    "only z_e detached": lambda z, c: (z + (c[_codes(z, c)] - z.detach()), _codes(z, c)),
    "no detach": lambda z, c: (z + (c[_codes(z, c)] - z), _codes(z, c)),
    "z_e passed through": lambda z, c: (z, _codes(z, c)),
    "L1 distance": lambda z, c: _by(z, c, torch.cdist(z, c, p=1).argmin(1)),
    "dot product": lambda z, c: _by(z, c, (z @ c.T).argmax(1)),
    "cosine similarity": lambda z, c: _by(z, c, (F.normalize(z, dim=1) @ F.normalize(c, dim=1).T).argmax(1)),
    "farthest code": lambda z, c: _by(z, c, torch.cdist(z, c).argmax(1)),
    "last index on a tie": lambda z, c: _by(z, c, len(c) - 1 - _codes(z, c.flip(0))),
    "codes off by one": lambda z, c: (_st(z, c[_codes(z, c)]), _codes(z, c) + 1),
    "only the codes": lambda z, c: _codes(z, c),
}


@pytest.mark.parametrize("name", list(WRONG_QUANTIZERS))
def test_quantize_kernel_rejects_wrong_kernels(name, capsys):
    assert not passes(vq_checks.check_quantize_kernel(WRONG_QUANTIZERS[name]))
    assert "Not quite" in capsys.readouterr().out


def test_quantize_kernel_names_the_tie_and_compares_gradients(capsys):
    assert not passes(vq_checks.check_quantize_kernel(WRONG_QUANTIZERS["last index on a tie"]))
    assert "input 3 (edge: ties" in capsys.readouterr().out
    assert not passes(vq_checks.check_quantize_kernel(lambda z, c: None))
    assert "Not answered yet" in capsys.readouterr().out
    # the gradients the reference produces: upstream for z_e, zero for the codebook
    for _, (z_e, codebook, upstream) in vq_checks.quantize_cases():
        z_q, codes, grads = vq_checks.with_gradients(vq_checks.quantize)(z_e, codebook, upstream)
        assert torch.equal(grads[:z_e.numel()], upstream.flatten()) and not grads[z_e.numel():].any()
        assert torch.allclose(z_q, codebook[codes], rtol=0, atol=1e-15)          # z_e + (e - z_e): e up to rounding
        assert torch.equal(codes, torch.cdist(z_e, codebook).argmin(1))


def test_quantize_cases_have_a_tie_and_a_single_code():
    cases = dict(vq_checks.quantize_cases())
    tie = next(args for d, args in cases.items() if "tie" in d)
    z_e, codebook, _ = tie
    d = (z_e[:, None] - codebook[None]).square().sum(-1)
    assert ((d == d.min(1, keepdim=True).values).sum(1) > 1).any()            # an exact tie
    single = next(args for d, args in cases.items() if "single code" in d)
    assert len(single[1]) == 1
    assert all(t.dtype == torch.float64 for args in cases.values() for t in args)


# ---------------------------------------------------------------------------------------------- 08: hand computations


def test_nearest_code_rules_all_differ():
    rules = vq_checks.nearest_by_rule()
    assert len(set(rules.values())) == len(rules) == 4
    z, e = vq_checks.NEAREST_Z, vq_checks.NEAREST_CODEBOOK
    assert rules["squared Euclidean distance"] == int(torch.cdist(z[None], e).argmin())
    assert rules["L1 distance"] == int(torch.cdist(z[None], e, p=1).argmin())
    assert rules["cosine similarity"] == int(F.cosine_similarity(e, z[None]).argmax())
    # and every rule wins by a margin, so a hand computation is not a coin toss
    for values, best in (((z - e).square().sum(1), "min"), ((z - e).abs().sum(1), "min"),
                         (F.cosine_similarity(e, z[None]), "max"), (e @ z, "max")):
        s = values.sort(descending=best == "max").values
        assert abs(float(s[0] - s[1])) > 0.1


def test_check_nearest_code(capsys):
    rules = vq_checks.nearest_by_rule()
    right = rules.pop("squared Euclidean distance")
    assert passes(vq_checks.check_nearest_code(right)) and passes(vq_checks.check_nearest_code(float(right)))
    for rule, row in rules.items():                                   # L1, cosine, dot product
        assert not passes(vq_checks.check_nearest_code(row))
        assert f"the one the {rule} picks" in capsys.readouterr().out
    assert not passes(vq_checks.check_nearest_code(right + 1))         # counted from 1
    assert not passes(vq_checks.check_nearest_code(None))


@pytest.mark.parametrize("check, right, rounded, wrongs", [
    (vq_checks.check_bits_per_image, 49 * 7, 343, [49 * 128, 49, 784 * 8, 49 * 8, 7]),
    # (K instead of log2 K; tokens; the raw image; a byte per token; one token)
    (vq_checks.check_perplexity, math.exp(-sum(p * math.log(p) for p in (0.4, 0.3, 0.2, 0.1))), 3.60,
     [4, 8, -sum(p * math.log(p) for p in (0.4, 0.3, 0.2, 0.1)), -sum(p * math.log2(p) for p in (0.4, 0.3, 0.2, 0.1)),
      math.exp(-sum(p * math.log2(p) for p in (0.4, 0.3, 0.2, 0.1))), 3.58, 3.61]),
    # (used codes; all codes; H in nats; H in bits; exp of bits; off in the 3rd digit)
    (vq_checks.check_commitment_gradient, 2 * 0.25 * 0.6, 0.30,
     [2 * 1.25 * 0.6, 0.25 * 0.6, 2 * 0.6, -0.3, 0.0, 0.299]),
    # (both terms; no factor 2; no beta; sign; "no gradient"; off in the 3rd decimal)
], ids=["bits_per_image", "perplexity", "commitment_gradient"])
def test_08_hand_checks(check, right, rounded, wrongs, capsys):
    assert passes(check(right)) and passes(check(rounded))
    assert capsys.readouterr().out.count("Correct!") == 2
    for wrong in wrongs:
        assert not passes(check(wrong)), wrong
    assert not passes(check(None)) and "Not answered yet" in capsys.readouterr().out
