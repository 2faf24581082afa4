"""The autoencoder chapter's kernels: subspace angles, the three regularizers, two corruptions.

- ``principal_angles``    Björck & Golub 1973; the sine/cosine split of Knyazev & Argentati 2002
- ``kl_sparsity``         Ng, "Sparse autoencoder" (CS294A notes 2011), the penalty sum_j KL(rho || rho_hat_j)
- ``k_sparse``            Makhzani & Frey 2013, "k-Sparse Autoencoders", Sec. 2: z = supp_k(W x + b)
- ``contractive_penalty`` Rifai et al. 2011, "Contractive Auto-Encoders", Eq. 2: ||J_f(x)||_F^2
- ``mask_noise``, ``gaussian_noise``  Vincent et al. 2008 / 2010, Sec. 4.2 of the 2010 paper: the corruptions
  q(x~ | x) of the denoising autoencoder
"""

from __future__ import annotations

import math
import operator
from typing import Callable

import torch
from torch import Tensor

from course_lib.utils import values_checkable


def _describe(t) -> str:
    """A tensor's shape and dtype, for error messages; the type of anything else."""
    return f"{tuple(t.shape)} {t.dtype}" if isinstance(t, Tensor) else type(t).__name__


def _count(n, name: str, lo: int, hi: int | None = None, note: str = "") -> int:
    """n as an int in lo..hi (an int or a numpy int; not a bool, not a float), or a ValueError naming the range."""
    try:
        if isinstance(n, bool):
            raise TypeError
        n = operator.index(n)
    except TypeError:
        n = None
    if n is None or n < lo or (hi is not None and n > hi):
        allowed = f"an int >= {lo}" if hi is None else f"in {lo}..{hi}{note}"
        raise ValueError(f"{name} must be {allowed}, got {n!r}")
    return n


def _orthonormal(A: Tensor, name: str) -> Tensor:
    """An orthonormal basis (D, p) of the column space of A (D, p), float64, of full column rank.

    The rank is decided as ``scipy.linalg.orth`` decides it (singular values above s_max * max(D, p) * eps);
    a rank-deficient A (p > D included) raises: QR would pad its basis with arbitrary directions.
    """
    s = torch.linalg.svdvals(A)                                        # (min(D, p),)
    rank = int((s > s.max() * max(A.shape) * torch.finfo(A.dtype).eps).sum()) if s.numel() else 0
    if rank < A.shape[1]:
        raise ValueError(f"expected {name} of full column rank {A.shape[1]}, got rank {rank} for shape "
                         f"{tuple(A.shape)}")
    Q, _ = torch.linalg.qr(A)
    return Q


def _check_float(t: Tensor, what: str) -> None:
    """t is a floating-point tensor, or a ValueError naming ``what`` (the expected name and shape)."""
    if not isinstance(t, Tensor) or not t.is_floating_point():
        raise ValueError(f"expected floating-point {what}, got {_describe(t)}")


def principal_angles(U: Tensor, V: Tensor) -> Tensor:
    """Principal angles (radians) between the column spaces of U (D, p) and V (D, q) -> (min(p, q),).

    Sorted **ascending** (smallest angle first; ``scipy.linalg.subspace_angles`` returns the same angles
    in descending order). With orthonormal bases Q_U, Q_V, the cosines are the singular values of
    Q_U^T Q_V (Björck & Golub 1973); small angles are read from their sines instead, the singular values
    of Q_V - Q_U Q_U^T Q_V, because arccos loses precision near 0 (Knyazev & Argentati 2002).
    Computed in float64, returned in the wider dtype of U and V (float64 for integer inputs). U and V must
    be finite and of full column rank (so p, q <= D); otherwise a ValueError.
    """
    if (not isinstance(U, Tensor) or not isinstance(V, Tensor) or U.ndim != 2 or V.ndim != 2
            or U.shape[0] != V.shape[0] or U.is_complex() or V.is_complex()):
        raise ValueError(f"expected real U (D, p) and V (D, q) with the same D, got {_describe(U)} and "
                         f"{_describe(V)}")
    dtype = torch.promote_types(U.dtype, V.dtype)
    dtype = dtype if dtype.is_floating_point else torch.float64
    U, V = U.double(), V.double()
    if not (torch.isfinite(U).all() and torch.isfinite(V).all()):
        raise ValueError(f"expected finite U (D, p) and V (D, q), got non-finite entries in {tuple(U.shape)} "
                         f"and {tuple(V.shape)}")
    QU, QV = _orthonormal(U, "U (D, p)"), _orthonormal(V, "V (D, q)")  # (D, p), (D, q)
    if QU.shape[1] < QV.shape[1]:
        QU, QV = QV, QU                                                # now p >= q: q angles
    M = QU.T @ QV                                                      # (p, q)
    cos = torch.linalg.svdvals(M).clamp(-1, 1)                         # (q,) descending -> angles ascending
    sin = torch.linalg.svdvals(QV - QU @ M).clamp(-1, 1).flip(0)       # (q,) ascending -> angles ascending
    angles = torch.where(cos**2 >= 0.5, torch.arcsin(sin), torch.arccos(cos))
    return angles.to(dtype)


def kl_sparsity(h: Tensor, rho: float, eps: float = 1e-6) -> Tensor:
    """Sparsity penalty sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)) for codes h (B, D) in (0, 1) -> scalar.

    rho_hat_j = (1/B) sum_b h_bj is the mean activation of hidden unit j over the batch;
    KL(rho || rho_hat) = rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat)) (Ng 2011).
    rho_hat is clamped to [eps, 1 - eps] so a dead or saturated unit gives a large, finite penalty.
    h must be float with B >= 1 and values in [0, 1]; float16 / bfloat16 are computed (and returned) in float32,
    where 1 - eps is not rounded to 1.
    """
    _check_float(h, "codes h (B, D)")
    if h.ndim != 2 or h.shape[0] == 0:
        raise ValueError(f"expected codes h of shape (B, D) with B >= 1, got {tuple(h.shape)}")
    if not 0 < rho < 1:
        raise ValueError(f"rho must be in (0, 1), got {rho}")
    if values_checkable(h) and not ((h >= 0) & (h <= 1)).all():        # NaN fails too (CPU only: no sync)
        raise ValueError(f"expected codes h (B, D) in [0, 1] (mean activations are probabilities), got values "
                         f"in [{h.min().item()}, {h.max().item()}]")
    if h.dtype in (torch.float16, torch.bfloat16):
        h = h.float()
    if torch.tensor(rho, dtype=h.dtype) == 0:                          # rho / rho_hat would be 0 / x, log 0
        raise ValueError(f"rho must be in (0, 1), got {rho}, which is 0 in {h.dtype} (the codes' dtype)")
    rho_hat = h.mean(0).clamp(eps, 1 - eps)                            # (D,)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum()


def k_sparse(h: Tensor, k: int) -> Tensor:
    """Keep the k largest activations of each row of h (B, D), zero the rest -> (B, D).

    Makhzani & Frey 2013, Sec. 2: z = supp_k(W x + b). The output is h where a constant 0/1 mask is 1 and 0
    elsewhere, so gradients flow only through the k kept units of each example. Among tied values any k may be
    kept. Dropped entries are set to 0 (not multiplied by 0): an infinite dropped activation gives 0, not NaN.
    """
    _check_float(h, "activations h (B, D)")
    if h.ndim != 2:
        raise ValueError(f"expected activations h of shape (B, D), got {tuple(h.shape)}")
    B, D = h.shape
    k = _count(k, "k", 1, D, " (the number of hidden units)")
    idx = h.topk(k, dim=1).indices                                     # (B, k)
    keep = torch.zeros_like(h, dtype=torch.bool).scatter(1, idx, True)  # (B, D), no gradient
    return torch.where(keep, h, torch.zeros((), dtype=h.dtype, device=h.device))


def jacobian_sq_norms(encoder: Callable[[Tensor], Tensor], x: Tensor, create_graph: bool = False,
                      chunk: int = 64) -> Tensor:
    """||J_f(x_b)||_F^2 for each example of x (B, ...) -> (B,), where f = ``encoder`` maps x to codes (B, D).

    Row j of J_f(x_b) is the gradient of h_bj with respect to x_b. Examples are independent, so the
    gradient of sum_b h_bj with respect to x (B, ...) holds row j for every example at once; the D rows
    are taken ``chunk`` units at a time (batched backward passes). ``create_graph=True`` keeps the
    result differentiable with respect to the encoder's parameters (for training with the penalty).
    Gradients are enabled inside (it works under ``torch.no_grad()``); codes that do not depend on x give 0.
    """
    _check_float(x, "inputs x (B, ...)")
    if x.ndim == 0:
        raise ValueError(f"expected inputs x of shape (B, ...), got {tuple(x.shape)}")
    chunk = _count(chunk, "chunk", 1)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        h = encoder(x)
        if not isinstance(h, Tensor) or h.ndim != 2 or h.shape[0] != x.shape[0]:
            raise ValueError(f"expected the encoder to return codes of shape (B, D) with B = {x.shape[0]}, "
                             f"got {_describe(h)}")
        B, D = h.shape
        total = x.new_zeros(B)
        if not h.requires_grad:                                        # h does not depend on x: J = 0
            return total
        eye = torch.eye(D, dtype=h.dtype, device=h.device)
        for start in range(0, D, chunk):
            units = eye[start:start + chunk, None, :].expand(-1, B, D)  # (c, B, D): one-hot h_j per row
            (rows,) = torch.autograd.grad(h, x, units, retain_graph=True, create_graph=create_graph,
                                          is_grads_batched=True, allow_unused=True)  # (c, B, ...) = rows j of J
            if rows is not None:                                       # None: h does not depend on x
                total = total + rows.pow(2).flatten(2).sum((0, 2))     # (B,)
    return total


def contractive_penalty(encoder: Callable[[Tensor], Tensor], x: Tensor, create_graph: bool = True) -> Tensor:
    """Rifai et al. 2011, Eq. 2: ||J_f(x)||_F^2 = sum_ij (dh_j / dx_i)^2, averaged over the batch x (B, ...) -> scalar.

    B >= 1: the mean over an empty batch is undefined."""
    if isinstance(x, Tensor) and x.ndim >= 1 and x.shape[0] == 0:
        raise ValueError(f"expected a non-empty batch x (B, ...) with B >= 1, got {tuple(x.shape)}")
    return jacobian_sq_norms(encoder, x, create_graph=create_graph).mean()


def sigmoid_contractive_penalty(h: Tensor, W: Tensor) -> Tensor:
    """Closed form of ``contractive_penalty`` for h = sigmoid(W x + b), averaged over the batch -> scalar.

    Rifai et al. 2011, Sec. 5: ||J_f(x)||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2.
    h: codes (B, D), B >= 1; W: encoder weight (D, D_in); both float (computed in the wider of their dtypes).
    """
    _check_float(h, "codes h (B, D)")
    _check_float(W, "weight W (D, D_in)")
    if h.ndim != 2 or W.ndim != 2 or W.shape[0] != h.shape[1] or h.shape[0] == 0:
        raise ValueError(f"expected h (B, D) and W (D, D_in), B >= 1, got {tuple(h.shape)} and {tuple(W.shape)}")
    dtype = torch.promote_types(h.dtype, W.dtype)
    h, W = h.to(dtype), W.to(dtype)
    return ((h * (1 - h)) ** 2 @ W.pow(2).sum(1)).mean()


def mask_noise(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Masking corruption (Vincent et al. 2008): each entry of x (B, ...) is set to 0 with probability p -> same
    shape and dtype. Entry i is dropped when the i-th uniform draw (in x's logical order, whatever its memory
    layout) is < p."""
    if not isinstance(x, Tensor):
        raise ValueError(f"expected a tensor x (B, ...), got {type(x).__name__}")
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    keep = torch.rand(x.shape, generator=generator).to(x.device) >= p
    return x.masked_fill(~keep, 0)                                     # 0, not x * 0: an inf pixel becomes 0


def gaussian_noise(x: Tensor, sigma: float, generator: torch.Generator | None = None) -> Tensor:
    """Additive isotropic Gaussian corruption (Vincent et al. 2010): x~ = x + sigma * eps, eps ~ N(0, I) -> same shape.

    eps is drawn in float32; the result has x's dtype promoted with float32 (float32 for integer images)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"expected a tensor x (B, ...), got {type(x).__name__}")
    if not (sigma >= 0 and math.isfinite(sigma)):                      # NaN fails too
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    return x + sigma * torch.randn(x.shape, generator=generator).to(x.device)


def fraction_active(h: Tensor, threshold: float = 0.1) -> float:
    """Fraction of the entries of codes h (B, D) above ``threshold``: how many units fire per example, on average.

    h must have at least one entry (B, D >= 1): the fraction of nothing is undefined."""
    if not isinstance(h, Tensor) or h.ndim != 2 or h.numel() == 0:
        raise ValueError(f"expected non-empty codes h of shape (B, D), got {_describe(h)}")
    return int((h > threshold).sum()) / h.numel()                      # an exact count, not a float32 mean
