"""Answers to notebook 09's exercises, computed with this chapter's kernels (never stored).

Two "write the kernel" exercises -- the Jensen-Shannon divergence on a grid (Goodfellow et al. 2014, Thm. 1)
and the non-saturating generator loss from logits (Sec. 3) -- are checked against ``course_lib.gans`` on
seeded random inputs and edge cases; three hand computations are checked to the precision their questions ask.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Normal

from course_lib.checks import Verdict, check_kernel, report
from course_lib.gans.theory import js_divergence, virtual_criterion
from course_lib.gans.toy import g_loss_nonsaturating, g_loss_saturating

# ---------------------------------------------------------------------------------------------- write the kernel


def js_divergence_cases(seed: int = 0) -> list[tuple[str, tuple[Tensor, Tensor, float | Tensor]]]:
    """Seeded float64 inputs ``(p, q, dx)`` for ``js_divergence``: p, q (..., K) with (p * dx).sum(-1) = 1."""
    g = torch.Generator().manual_seed(seed)
    pmf = lambda *shape: torch.softmax(2 * torch.randn(*shape, generator=g, dtype=torch.float64), -1)  # noqa: E731
    x = torch.linspace(-6, 6, 241, dtype=torch.float64)                        # uniform grid, dx = 0.05
    mu, sigma = torch.tensor([[-1.0], [0.5]], dtype=torch.float64), torch.tensor([[1.0], [0.7]], dtype=torch.float64)
    p_grid = Normal(mu, sigma).log_prob(x).exp()                                # (2, 241)
    q_grid = Normal(mu + 1.5, 1.2 * sigma).log_prob(x).exp()
    # a non-uniform grid: cells grow away from 0; densities tabulated at the cell centres, renormalized
    edges = torch.sinh(torch.linspace(-2.5, 2.5, 61, dtype=torch.float64))
    widths, centres = edges.diff(), 0.5 * (edges[1:] + edges[:-1])               # (60,), (60,)
    p_nu, q_nu = (Normal(torch.tensor(m, dtype=torch.float64), 1.0).log_prob(centres).exp() for m in (-0.5, 1.0))
    p_nu, q_nu = p_nu / (p_nu * widths).sum(), q_nu / (q_nu * widths).sum()
    zeros_p = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.2, 0.3, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    zeros_q = torch.tensor([[0.0, 0.0, 0.3, 0.7], [0.0, 0.6, 0.4, 0.0], [0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    return [
        ("random discrete distributions p, q of shape (4, 10), dx = 1", (pmf(4, 10), pmf(4, 10), 1.0)),
        ("two pairs of Gaussian densities on a grid, shape (2, 241), dx = 0.05", (p_grid, q_grid, 0.05)),
        ("densities on a non-uniform grid of 60 cells, dx a (60,) tensor of cell widths", (p_nu, q_nu, widths)),
        ("edge: zeros -- row 1 disjoint supports (JSD = log 2), row 2 partly overlapping with a point where "
         "p = q = 0, row 3 p = q (JSD = 0)",
         (zeros_p, zeros_q, 1.0)),
    ]


def check_js_divergence_kernel(fn) -> Verdict:
    """``fn(p, q, dx) -> (...)`` against ``course_lib.gans.theory.js_divergence`` on :func:`js_divergence_cases`."""
    return check_kernel(fn, js_divergence, js_divergence_cases(), name="my_js_divergence",
                        reference_name="course_lib.gans.theory.js_divergence",
                        hint="m = (p + q) / 2; JSD = 1/2 sum p log(p / m) dx + 1/2 sum q log(q / m) dx over the last "
                             "dimension, natural log, each term multiplied by its cell width dx before summing; "
                             "0 log 0 = 0: p * log(p / m) is NaN where p = 0, and so is torch.xlogy(p, p / m) where "
                             "p = q = 0 (then m = 0 too); torch.xlogy(p, p) - torch.xlogy(p, m) is 0 there.")


def nonsaturating_cases(seed: int = 0) -> list[tuple[str, tuple[Tensor]]]:
    """Seeded logits ``(d_fake_logits,)`` (B,) for the non-saturating generator loss, with edge cases."""
    g = torch.Generator().manual_seed(seed)
    return [
        ("random logits (64,), float32", (2 * torch.randn(64, generator=g),)),
        ("random logits (7,), float64", (3 * torch.randn(7, generator=g, dtype=torch.float64),)),
        ("edge: D confidently rejects the fakes, logits from -200 to -20 (16,), float32",
         (-20 - 180 * torch.rand(16, generator=g),)),
        ("edge: a batch of one (1,)", (torch.tensor([0.3]),)),
    ]


def check_nonsaturating_kernel(fn) -> Verdict:
    """``fn(d_fake_logits) -> ()`` against ``course_lib.gans.toy.g_loss_nonsaturating``."""
    return check_kernel(fn, g_loss_nonsaturating, nonsaturating_cases(), name="my_g_loss_nonsaturating",
                        reference_name="course_lib.gans.toy.g_loss_nonsaturating",
                        hint="-mean log D(G(z)) with D = sigmoid(logit), one number for the batch; write "
                             "-log sigmoid(l) as softplus(-l) (or -F.logsigmoid(l)): log(torch.sigmoid(l)) is "
                             "-inf once sigmoid(l) underflows to 0 (l below about -100 in float32).")


# ---------------------------------------------------------------------------------------------- hand computations


def check_jsd_disjoint(answer) -> Verdict:
    """JSD (nats, 3 decimals) between two distributions with disjoint supports: (1/2, 1/2, 0, 0) and (0, 0, 1/2, 1/2)."""
    p = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    return report(answer, float(js_divergence(p, p.flip(0))), decimals=3,
                  hint="m = (p + q) / 2 is half of p where p lives, so log(p / m) = log 2 there; the same for q; "
                       "in nats, not bits")


def check_value_at_equilibrium(answer) -> Verdict:
    """C(G) = V(D*, G) (nats, 3 decimals) when p_g = p_data: D* = 1/2 everywhere."""
    x = torch.linspace(-8, 8, 1601, dtype=torch.float64)
    p = Normal(torch.tensor(0.0, dtype=torch.float64), 1.0).log_prob(x).exp()
    return report(answer, float(virtual_criterion(p, p, dx=0.01)), decimals=3,
                  hint="V = E_data[log 1/2] + E_g[log(1 - 1/2)]: two expectations of a constant, natural log")


def check_loss_gradients(answer, d: float = 0.01) -> Verdict:
    """The pair (|d loss / d l| of the saturating loss, the same for the non-saturating loss), 3 decimals, for
    one fake sample with D(G(z)) = sigmoid(l) = d: the derivatives with respect to the logit l."""
    grads = []
    for loss in (g_loss_saturating, g_loss_nonsaturating):
        logit = torch.tensor([math.log(d / (1 - d))], dtype=torch.float64, requires_grad=True)
        loss(logit).backward()
        grads.append(abs(float(logit.grad)))
    return report(answer, tuple(grads), decimals=3,
                  hint="a pair (saturating, non-saturating), derivatives with respect to the logit l, not to D: "
                       "d sigmoid(l) / dl = sigmoid(l) (1 - sigmoid(l))")
