"""The vector quantizer of the VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, Eq. 1-3, Sec. 3.2).

Each row z of the encoder outputs (M, D) is replaced by its nearest codebook row e_k, k in [0, K) (Eq. 1-2):

    k = argmin_j ||z - e_j||_2,        z_q = e_k

argmin has no gradient: the decoder's gradient with respect to z_q is copied onto z_e unchanged -- the
straight-through estimator (Sec. 3.2), written z_e + sg(z_q - z_e). The codebook learns from its own term of
the loss (Eq. 3, sg = stop-gradient):

    L = -log p(x | z_q) + ||sg(z_e) - e||^2 + beta ||z_e - sg(e)||^2

``vq_loss`` gives the last two terms as *means over elements* (N*D*H*W of them), like the mean squared error
that stands for -log p(x | z_q); the paper writes sums. Averaging rescales each term by a constant, so with
the reconstruction also a mean the ratio of the terms, and beta's meaning, are the paper's.

Codebook usage: ``code_counts``, ``dead_codes`` and the perplexity exp(H(p)) of the code frequencies p (K when
all codes are used equally, 1 when one code takes everything). Against codebook collapse: ``kmeans``
(Lancucki et al. 2020, k-means initialisation) and ``VectorQuantizer.restart_dead_codes`` (Dhariwal et al.
2020, Jukebox, Sec. 2.3).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.utils import (
    at_least_float32 as _upcast,  # float16/bfloat16 -> float32, else unchanged
)

# ---------------------------------------------------------------------------------------------- kernels
# float16 / bfloat16 are computed in float32 (torchvision's ``_upcast``): in half precision the expansion
# ||z||^2 - 2 z.e + ||e||^2 loses the distance to rounding, and z_e + sg(z_q - z_e) is no longer z_q.

_HALF = (torch.float16, torch.bfloat16)


def squared_distances(z: Tensor, codebook: Tensor) -> Tensor:
    """z (M, D), codebook (K, D), float -> (M, K) squared Euclidean distances ||z||^2 - 2 z.e + ||e||^2, in
    the wider dtype of the two."""
    if (z.ndim != 2 or codebook.ndim != 2 or z.shape[1] != codebook.shape[1] or not z.is_floating_point()
            or not codebook.is_floating_point()):
        raise ValueError(f"expected float z (M, D) and codebook (K, D), got {tuple(z.shape)} {z.dtype}, "
                         f"{tuple(codebook.shape)} {codebook.dtype}")
    dtype = torch.promote_types(_upcast(z).dtype, _upcast(codebook).dtype)
    z, codebook = z.to(dtype), codebook.to(dtype)
    return z.square().sum(1, keepdim=True) - 2 * z @ codebook.T + codebook.square().sum(1)   # (M, K)


def nearest_code(z: Tensor, codebook: Tensor) -> Tensor:
    """Eq. 2: index of the nearest codebook row (K >= 1 rows) for each row of z (M, D) -> (M,) int64."""
    if codebook.ndim == 2 and len(codebook) == 0:
        raise ValueError(f"expected a codebook (K, D) with K >= 1, got {tuple(codebook.shape)}")
    return squared_distances(z, codebook).argmin(1)


def straight_through(z_e: Tensor, z_q: Tensor) -> Tensor:
    """Sec. 3.2: the value of z_q, the gradient of z_e. z_e + sg(z_q - z_e), z_e and z_q of the same shape."""
    if z_e.shape != z_q.shape:
        raise ValueError(f"expected z_q of the shape of z_e {tuple(z_e.shape)}, got {tuple(z_q.shape)}")
    if z_e.dtype in _HALF or z_q.dtype in _HALF:
        return straight_through(_upcast(z_e), _upcast(z_q)).to(torch.promote_types(z_e.dtype, z_q.dtype))
    return z_e + (z_q - z_e).detach()


def vq_loss(z_e: Tensor, z_q: Tensor, beta: float = 0.25) -> Tensor:
    """Eq. 3, last two terms, as means: ||sg(z_e) - e||^2 (codebook) + beta ||z_e - sg(e)||^2 (commitment).
    z_e and z_q of the same shape; NaN when they are empty, like any mean of nothing."""
    if z_e.shape != z_q.shape:
        raise ValueError(f"expected z_q of the shape of z_e {tuple(z_e.shape)}, got {tuple(z_q.shape)}")
    z_e, z_q = _upcast(z_e), _upcast(z_q)
    return F.mse_loss(z_q, z_e.detach()) + beta * F.mse_loss(z_e, z_q.detach())


def _check_codes(codes: Tensor, num_codes: int) -> None:
    if isinstance(num_codes, bool) or not isinstance(num_codes, numbers.Integral) or num_codes < 1:
        raise ValueError(f"expected num_codes K >= 1, got {num_codes!r}")
    if not isinstance(codes, Tensor) or codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise ValueError(f"expected integer codes in [0, {num_codes}), got "
                         f"{codes.dtype if isinstance(codes, Tensor) else type(codes).__name__}")
    if codes.numel() and not ((codes >= 0) & (codes < num_codes)).all():
        raise ValueError(f"expected codes in [0, {num_codes}), got values in [{int(codes.min())}, {int(codes.max())}]")


def code_counts(codes: Tensor, num_codes: int) -> Tensor:
    """How often each code appears in ``codes`` (any shape, integers in [0, K)) -> (K,) int64."""
    _check_codes(codes, num_codes)
    return torch.bincount(codes.flatten(), minlength=num_codes)


def perplexity(codes: Tensor, num_codes: int) -> float:
    """exp(H(p)) of the code frequencies p (in nats): K when all codes are equally used, 1 for one code, NaN
    for no codes at all (an empty histogram has no entropy)."""
    counts = code_counts(codes, num_codes)
    if codes.numel() == 0:
        return math.nan
    p = counts.double() / codes.numel()
    return math.exp(-(p[p > 0] * p[p > 0].log()).sum().item())


def dead_codes(codes: Tensor, num_codes: int) -> int:
    """Number of codes that never appear in ``codes``."""
    return int((code_counts(codes, num_codes) == 0).sum())


def kmeans(z: Tensor, k: int, iters: int = 10, init: Tensor | None = None,
           generator: torch.Generator | None = None) -> Tensor:
    """Lloyd's k-means on float z (M, D) -> centres (k, D); starts from ``init`` (k, D) or k distinct random
    rows of z. An empty cluster keeps its centre."""
    if z.ndim != 2 or not z.is_floating_point() or not 1 <= k <= len(z):
        raise ValueError(f"expected float z (M, D) with M >= k >= 1, got {tuple(z.shape)} {z.dtype} and k = {k}")
    if init is not None and tuple(init.shape) != (k, z.shape[1]):
        raise ValueError(f"expected init (k, D) = ({k}, {z.shape[1]}), got {tuple(init.shape)}")
    if init is not None:
        centres = init.to(z.dtype, copy=True)
    else:
        centres = z[torch.randperm(len(z), generator=generator)[:k]].clone()
    for _ in range(iters):
        assign = nearest_code(z, centres)                                  # (M,)
        sums = torch.zeros_like(centres).index_add_(0, assign, z)          # (k, D)
        n = torch.bincount(assign, minlength=k)                            # (k,)
        centres = torch.where(n[:, None] > 0, sums / n.clamp(min=1)[:, None], centres)
    return centres


# ---------------------------------------------------------------------------------------------- quantizer

class VectorQuantizer(nn.Module):
    """z_e (N, D, H, W) -> (z_q (N, D, H, W) straight-through, loss (scalar, Eq. 3), codes (N, H, W) int64).

    ``counts`` (K,) accumulates how often each code was picked in training mode since the last
    :meth:`restart_dead_codes`; it is not saved with the weights.
    """

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25):
        super().__init__()
        self.num_codes, self.dim, self.beta = num_codes, dim, beta
        self.codebook = nn.Parameter(torch.empty(num_codes, dim).uniform_(-1 / num_codes, 1 / num_codes))
        self.register_buffer("counts", torch.zeros(num_codes), persistent=False)

    def forward(self, z_e: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if z_e.ndim != 4 or z_e.shape[1] != self.dim:
            raise ValueError(f"expected z_e of shape (N, {self.dim}, H, W), got {tuple(z_e.shape)}")
        N, D, H, W = z_e.shape
        z = z_e.permute(0, 2, 3, 1).reshape(-1, D)                         # (N*H*W, D)
        codes = nearest_code(z.detach(), self.codebook.detach())           # (N*H*W,)
        z_q = self.codebook[codes].view(N, H, W, D).permute(0, 3, 1, 2)    # (N, D, H, W)
        if self.training:
            self.counts += code_counts(codes, self.num_codes)
        return straight_through(z_e, z_q), vq_loss(z_e, z_q, self.beta), codes.view(N, H, W)

    def embed(self, codes: Tensor) -> Tensor:
        """codes (N, H, W) int64 -> z_q (N, D, H, W): the codebook lookup."""
        if codes.ndim != 3 or codes.dtype != torch.int64:
            raise ValueError(f"expected codes of shape (N, H, W), int64, got {tuple(codes.shape)} {codes.dtype}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.num_codes):
            raise ValueError(f"codes must lie in [0, {self.num_codes}), got [{codes.min()}, {codes.max()}]")
        return self.codebook[codes].permute(0, 3, 1, 2)

    @torch.no_grad()
    def kmeans_init_(self, z: Tensor, iters: int = 10, generator: torch.Generator | None = None) -> None:
        """Set the codebook to k-means centres of encoder outputs z (M, D), M >= K. k-means runs in z's dtype
        (float64 stays float64; float16 / bfloat16 and integers in float32), then the centres are cast to the
        codebook's dtype."""
        if z.ndim != 2 or z.shape[1] != self.dim:
            raise ValueError(f"expected encoder outputs z (M, {self.dim}), got {tuple(z.shape)}")
        z = z.detach()
        z = _upcast(z) if z.is_floating_point() else z.float()
        self.codebook.copy_(kmeans(z, self.num_codes, iters, generator=generator))

    @torch.no_grad()
    def restart_dead_codes(self, z: Tensor, min_count: float = 1.0,
                           generator: torch.Generator | None = None) -> int:
        """Move every code picked fewer than ``min_count`` times since the last call onto a random row of
        encoder outputs z (M, D), M >= 1; reset ``counts``; return how many codes moved."""
        if z.ndim != 2 or z.shape[1] != self.dim or len(z) < 1 or not z.is_floating_point():
            raise ValueError(f"expected float encoder outputs z (M, {self.dim}) with M >= 1, got {tuple(z.shape)} "
                             f"{z.dtype}")
        dead = (self.counts < min_count).nonzero()[:, 0]
        if len(dead):
            pick_rows = torch.randint(len(z), (len(dead),), generator=generator).to(z.device)
            self.codebook[dead] = z.detach()[pick_rows].to(self.codebook.dtype)
        self.counts.zero_()
        return len(dead)
