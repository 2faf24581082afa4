"""The DDPM noise schedule, the forward process q(x_t | x_0), one DDPM step and one DDIM step.

Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models" (https://arxiv.org/abs/2006.11239):

- Eq. 2, the forward process:    q(x_t | x_{t-1}) = N(x_t; sqrt(1 - beta_t) x_{t-1}, beta_t I)
- Eq. 4, its closed form:        q(x_t | x_0) = N(x_t; sqrt(abar_t) x0, (1 - abar_t) I),
                                 alpha_t = 1 - beta_t, abar_t = prod_{s <= t} alpha_s
- Eq. 7, the posterior variance: beta~_t = (1 - abar_{t-1}) / (1 - abar_t) * beta_t
- Eq. 11, the reverse mean:      mu(x_t, t) = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)
- Eq. 14, the simple loss:       L_simple = E ||eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t)||^2
- Algorithm 2, one sampling step: x_{t-1} = mu(x_t, t) + sigma_t z, sigma_t^2 = beta~_t, z = 0 at the last step

Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models" (https://arxiv.org/abs/2010.02502), Eq. 12
(one step from t to any earlier t_prev) with Eq. 16's sigma_t(eta): eta = 0 is deterministic DDIM, eta = 1
has the DDPM posterior's variance. Nichol & Dhariwal 2021 (https://arxiv.org/abs/2102.09672), Eq. 17: the
cosine schedule.

The DSM link (Song & Ermon 2019; Ho et al. Sec. 3.2): q(x_t | x_0) is Gaussian, so its score is
grad_{x_t} log q(x_t | x_0) = -(x_t - sqrt(abar_t) x0) / (1 - abar_t) = -eps / sqrt(1 - abar_t): predicting eps
is denoising score matching at noise level sqrt(1 - abar_t) (:meth:`NoiseSchedule.score_from_eps`).

**Time index.** As in diffusers, ``t`` is 0-based: t = 0, ..., T-1, and index t holds the paper's step t + 1
(``betas[0]`` = beta_1, ``alpha_bar[T-1]`` = abar_T). ``ddpm_step`` at t = 0 returns the mean, adds no noise,
and gives x0's estimate; in ``ddim_step`` a t_prev < 0 stands for "x0" (abar = 1, diffusers'
``set_alpha_to_one=True``).

**Shapes and dtypes.** x0, xt, eps, noise: (B, ...) any trailing shape; t: an int or an int64 tensor (B,).
The tables are float64 buffers (so ``.to(device)`` and ``state_dict`` carry them); each step gathers its
coefficients in float64, casts them to x's dtype and computes in x's dtype, as diffusers does.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from course_lib.utils import values_checkable


def linear_betas(T: int, beta_1: float, beta_T: float) -> Tensor:
    """Ho et al. Sec. 4: beta_t linear from beta_1 to beta_T. -> (T,) float64."""
    return torch.linspace(beta_1, beta_T, T, dtype=torch.float64)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Nichol & Dhariwal Eq. 17: abar(t) = f(t) / f(0), f(t) = cos^2((t/T + s) / (1 + s) * pi/2), and
    beta_t = 1 - abar_t / abar_{t-1} clipped to max_beta (their Sec. 3.2). -> (T,) float64."""
    f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2   # (T+1,)
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


class NoiseSchedule(nn.Module):
    """beta_t, alpha_t, abar_t and beta~_t for t = 0..T-1 (float64 buffers, (T,) each) and the steps that use them.

    ``kind="linear"`` uses beta_1 and beta_T (Ho et al.: 1e-4 to 0.02 over T = 1000); ``kind="cosine"``
    ignores them (Nichol & Dhariwal's schedule with s = 0.008).
    """

    def __init__(self, T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02, kind: str = "linear"):
        super().__init__()
        if not isinstance(T, int) or T < 1:
            raise ValueError(f"expected an int number of steps T >= 1, got {T!r}")
        if kind == "linear":
            if not 0 < beta_1 <= beta_T < 1:
                raise ValueError(f"expected 0 < beta_1 <= beta_T < 1, got beta_1={beta_1}, beta_T={beta_T}")
            betas = linear_betas(T, beta_1, beta_T)
        elif kind == "cosine":
            betas = cosine_betas(T)
        else:
            raise ValueError(f"expected kind 'linear' or 'cosine', got {kind!r}")
        self.T, self.kind = T, kind
        alphas = 1 - betas
        alpha_bar = alphas.cumprod(0)
        alpha_bar_prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])      # abar_{t-1}, with abar_{-1} = 1
        self.register_buffer("betas", betas)                                      # (T,)
        self.register_buffer("alphas", alphas)                                    # (T,)
        self.register_buffer("alpha_bar", alpha_bar)                              # (T,)
        self.register_buffer("posterior_variance", (1 - alpha_bar_prev) / (1 - alpha_bar) * betas)  # (T,) beta~_t

    # ------------------------------------------------------------------------------------------ helpers

    def _check(self, x: Tensor, t: int | Tensor, name: str = "xt") -> Tensor:
        """Validate x (B, ...) and t (an int or (B,) ints in [0, T)); return t as int64 (B,)."""
        if not isinstance(x, Tensor) or x.ndim < 1 or not x.is_floating_point():
            raise ValueError(f"expected {name} a float tensor of shape (B, ...), got {getattr(x, 'shape', type(x))}")
        B = x.shape[0]
        if isinstance(t, int):
            t = torch.full((B,), t, dtype=torch.long, device=x.device)
        if not isinstance(t, Tensor) or t.is_floating_point() or t.shape not in {(B,), ()}:
            raise ValueError(f"expected t an int or an int tensor of shape ({B},), got {getattr(t, 'shape', t)!r}")
        t = t.to(device=x.device, dtype=torch.long).expand(B)
        if B and values_checkable(t) and (t.min() < 0 or t.max() >= self.T):
            raise ValueError(f"expected t in [0, {self.T - 1}] (0-based), got values in "
                             f"[{int(t.min())}, {int(t.max())}]")
        return t

    @staticmethod
    def _at(table: Tensor, t: Tensor, x: Tensor) -> Tensor:
        """table (T,) float64 at t (B,) -> (B, 1, ..., 1) in x's dtype, broadcastable against x (B, ...)."""
        return table.to(x.device)[t].to(x.dtype).view(-1, *([1] * (x.ndim - 1)))

    @staticmethod
    def _same_shape(a: Tensor | None, x: Tensor, name: str) -> None:
        if a is not None and (not isinstance(a, Tensor) or a.shape != x.shape):
            raise ValueError(f"expected {name} of shape {tuple(x.shape)} (the shape of x), "
                             f"got {tuple(getattr(a, 'shape', ())) if isinstance(a, Tensor) else type(a).__name__}")

    # ------------------------------------------------------------------------------------------ forward

    def q_sample(self, x0: Tensor, t: int | Tensor, eps: Tensor) -> Tensor:
        """Ho et al. Eq. 4, reparametrized: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.

        x0 (B, ...), t int or (B,), eps (B, ...) ~ N(0, I) -> xt (B, ...)."""
        t = self._check(x0, t, "x0")
        self._same_shape(eps, x0, "eps")
        return self._at(self.alpha_bar.sqrt(), t, x0) * x0 + self._at((1 - self.alpha_bar).sqrt(), t, x0) * eps

    def score_from_eps(self, eps: Tensor, t: int | Tensor) -> Tensor:
        """The DSM link: grad_{x_t} log q(x_t | x_0) = -eps / sqrt(1 - abar_t). eps (B, ...) -> (B, ...)."""
        t = self._check(eps, t, "eps")
        return -eps / self._at((1 - self.alpha_bar).sqrt(), t, eps)

    def predict_x0(self, eps: Tensor, t: int | Tensor, xt: Tensor) -> Tensor:
        """Ho et al. Eq. 15 / DDIM Eq. 12's "predicted x0": (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t).

        eps, xt (B, ...), t int or (B,) -> x0's estimate (B, ...)."""
        t = self._check(xt, t)
        self._same_shape(eps, xt, "eps")
        return (xt - self._at((1 - self.alpha_bar).sqrt(), t, xt) * eps) / self._at(self.alpha_bar.sqrt(), t, xt)

    # ------------------------------------------------------------------------------------------ reverse

    def ddpm_step(self, eps: Tensor, t: int | Tensor, xt: Tensor, noise: Tensor | None,
                  clip_x0: float | None = None) -> Tensor:
        """Ho et al. Algorithm 2, one step: x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)
        + sigma_t z, with sigma_t^2 = beta~_t (Eq. 7) and z = ``noise``; no noise at t = 0.

        ``clip_x0 = c`` clips x0's estimate (Eq. 15) to [-c, c] and takes the posterior mean of Eq. 7 from it,
        mu~ = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0_hat + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t,
        which equals Eq. 11 when nothing is clipped (Ho et al.'s sampler clips to the data's [-1, 1] this way;
        diffusers' ``clip_sample=True``).

        eps = eps_theta(x_t, t) (B, ...), t int or (B,), xt (B, ...), noise (B, ...) ~ N(0, I) (may be None
        only when every t is 0), clip_x0 > 0 or None -> x_{t-1} (B, ...)."""
        t = self._check(xt, t)
        self._same_shape(eps, xt, "eps")
        self._same_shape(noise, xt, "noise")
        if noise is None and bool((t > 0).any()):
            raise ValueError(f"ddpm_step needs noise of shape {tuple(xt.shape)} when t > 0")
        if clip_x0 is None:
            coef = self._at(self.betas / (1 - self.alpha_bar).sqrt(), t, xt)
            mu = (xt - coef * eps) / self._at(self.alphas.sqrt(), t, xt)          # Eq. 11
        else:
            x0_hat = self.predict_x0(eps, t, xt).clamp(-_positive(clip_x0), clip_x0)
            abar_prev = torch.cat([self.alpha_bar.new_ones(1), self.alpha_bar[:-1]])
            mu = (self._at(abar_prev.sqrt() * self.betas / (1 - self.alpha_bar), t, xt) * x0_hat     # Eq. 7
                  + self._at(self.alphas.sqrt() * (1 - abar_prev) / (1 - self.alpha_bar), t, xt) * xt)
        if noise is None:
            return mu
        sigma = self._at(self.posterior_variance.sqrt(), t, xt)                   # beta~_0 = 0: no noise at t = 0
        return mu + sigma * noise

    def ddim_step(self, eps: Tensor, t: int | Tensor, t_prev: int | Tensor, xt: Tensor, eta: float = 0.0,
                  noise: Tensor | None = None, clip_x0: float | None = None) -> Tensor:
        """DDIM Eq. 12, from step t to an earlier t_prev (t_prev < 0: to x0, abar = 1):

            x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps + sigma z,
            x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t),
            sigma  = eta * sqrt((1 - abar_prev) / (1 - abar_t)) * sqrt(1 - abar_t / abar_prev)   (Eq. 16)

        ``clip_x0 = c`` clips x0_hat to [-c, c] and re-derives eps from the clipped x0_hat,
        eps = (x_t - sqrt(abar_t) x0_hat) / sqrt(1 - abar_t), so that the step stays on the line from x_t through
        x0_hat (GLIDE's choice; diffusers' ``clip_sample=True`` with ``use_clipped_model_output=True``).

        eps (B, ...), t int or (B,), t_prev int or (B,) with t_prev < t, xt (B, ...), eta >= 0,
        noise (B, ...) ~ N(0, I), needed when eta > 0, clip_x0 > 0 or None -> x_prev (B, ...)."""
        t = self._check(xt, t)
        self._same_shape(eps, xt, "eps")
        self._same_shape(noise, xt, "noise")
        if isinstance(t_prev, int):
            t_prev = torch.full_like(t, t_prev)
        if not isinstance(t_prev, Tensor) or t_prev.is_floating_point() or t_prev.shape not in {t.shape, ()}:
            raise ValueError(f"expected t_prev an int or an int tensor of shape {tuple(t.shape)}, got {t_prev!r}")
        t_prev = t_prev.to(t.device, torch.long).expand_as(t)
        if values_checkable(t) and bool((t_prev >= t).any()):
            raise ValueError("expected t_prev < t (DDIM steps go back in time; t_prev < 0 means x0)")
        if eta < 0 or (eta > 0 and noise is None):
            raise ValueError(f"expected eta >= 0, and noise of shape {tuple(xt.shape)} when eta > 0; got eta={eta}")
        abar_prev_table = torch.cat([self.alpha_bar, self.alpha_bar.new_ones(1)])  # index -1 (t_prev < 0) -> 1
        abar_t = self.alpha_bar.to(xt.device)[t]                                    # (B,) float64
        abar_prev = abar_prev_table.to(xt.device)[t_prev.clamp(min=-1)]             # (B,) float64
        sigma = eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).sqrt()   # (B,) Eq. 16

        def col(v: Tensor) -> Tensor:                                               # (B,) -> (B, 1, ..., 1)
            return v.to(xt.dtype).view(-1, *([1] * (xt.ndim - 1)))

        x0_hat = (xt - col((1 - abar_t).sqrt()) * eps) / col(abar_t.sqrt())
        if clip_x0 is not None:
            x0_hat = x0_hat.clamp(-_positive(clip_x0), clip_x0)
            eps = (xt - col(abar_t.sqrt()) * x0_hat) / col((1 - abar_t).sqrt())
        x_prev = col(abar_prev.sqrt()) * x0_hat + col((1 - abar_prev - sigma**2).clamp(min=0).sqrt()) * eps
        return x_prev + col(sigma) * noise if eta > 0 else x_prev


def _positive(c: float) -> float:
    if not c > 0:
        raise ValueError(f"expected clip_x0 > 0 (x0's estimate is clipped to [-clip_x0, clip_x0]) or None, got {c!r}")
    return c


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """DDIM's sub-sequence tau (Song et al. 2021 Sec. 4.2), evenly spaced from 0 as diffusers' "leading"
    spacing: [(steps-1)*k, ..., k, 0] with k = T // steps, each step going from tau[i] to tau[i] - k."""
    if not 1 <= steps <= T:
        raise ValueError(f"expected 1 <= steps <= T = {T}, got {steps}")
    k = T // steps
    return [k * i for i in reversed(range(steps))]


def ddpm_loss(model: nn.Module, schedule: NoiseSchedule, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """Ho et al. Eq. 14, L_simple: mean over pixels and batch of (eps - eps_theta(x_t, t))^2.

    model(xt (B, ...), t (B,)) -> (B, ...); x0, eps (B, ...); t (B,) int64 in [0, T) -> scalar."""
    xt = schedule.q_sample(x0, t, eps)
    return (eps - model(xt, t)).pow(2).mean()
