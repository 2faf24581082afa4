"""The autoencoder chapter's kernels: subspace angles, the three regularizers, two corruptions.

- ``principal_angles``    Björck & Golub 1973; the sine/cosine split of Knyazev & Argentati 2002
- ``kl_sparsity``         Ng, "Sparse autoencoder" (CS294A notes 2011), the penalty sum_j KL(rho || rho_hat_j)
- ``k_sparse``            Makhzani & Frey 2013, "k-Sparse Autoencoders", Sec. 2: z = supp_k(W x + b)
- ``contractive_penalty`` Rifai et al. 2011, "Contractive Auto-Encoders", Eq. 2: ||J_f(x)||_F^2
- ``mask_noise``, ``gaussian_noise``  Vincent et al. 2008 / 2010, Sec. 4.2 of the 2010 paper: the corruptions
  q(x~ | x) of the denoising autoencoder
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def _orthonormal(A: Tensor) -> Tensor:
    """An orthonormal basis (D, p) of the column space of A (D, p), assumed of full column rank."""
    Q, _ = torch.linalg.qr(A)
    return Q


def principal_angles(U: Tensor, V: Tensor) -> Tensor:
    """Principal angles (radians) between the column spaces of U (D, p) and V (D, q) -> (min(p, q),).

    Sorted **ascending** (smallest angle first; ``scipy.linalg.subspace_angles`` returns the same angles
    in descending order). With orthonormal bases Q_U, Q_V, the cosines are the singular values of
    Q_U^T Q_V (Björck & Golub 1973); small angles are read from their sines instead, the singular values
    of Q_V - Q_U Q_U^T Q_V, because arccos loses precision near 0 (Knyazev & Argentati 2002).
    Computed in float64; U and V must have full column rank.
    """
    if U.ndim != 2 or V.ndim != 2 or U.shape[0] != V.shape[0]:
        raise ValueError(f"expected U (D, p) and V (D, q) with the same D, got {tuple(U.shape)} and {tuple(V.shape)}")
    if U.shape[1] < V.shape[1]:
        U, V = V, U                                                    # now p >= q: q angles
    QU, QV = _orthonormal(U.double()), _orthonormal(V.double())        # (D, p), (D, q)
    M = QU.T @ QV                                                      # (p, q)
    cos = torch.linalg.svdvals(M).clamp(-1, 1)                         # (q,) descending -> angles ascending
    sin = torch.linalg.svdvals(QV - QU @ M).clamp(-1, 1).flip(0)       # (q,) ascending -> angles ascending
    angles = torch.where(cos**2 >= 0.5, torch.arcsin(sin), torch.arccos(cos))
    return angles.to(U.dtype if U.is_floating_point() else torch.float64)


def kl_sparsity(h: Tensor, rho: float, eps: float = 1e-6) -> Tensor:
    """Sparsity penalty sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)) for codes h (B, D) in (0, 1) -> scalar.

    rho_hat_j = (1/B) sum_b h_bj is the mean activation of hidden unit j over the batch;
    KL(rho || rho_hat) = rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat)) (Ng 2011).
    rho_hat is clamped to [eps, 1 - eps] so a dead or saturated unit gives a large, finite penalty.
    """
    if h.ndim != 2:
        raise ValueError(f"expected codes h of shape (B, D), got {tuple(h.shape)}")
    if not 0 < rho < 1:
        raise ValueError(f"rho must be in (0, 1), got {rho}")
    rho_hat = h.mean(0).clamp(eps, 1 - eps)                            # (D,)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum()


def k_sparse(h: Tensor, k: int) -> Tensor:
    """Keep the k largest activations of each row of h (B, D), zero the rest -> (B, D).

    Makhzani & Frey 2013, Sec. 2: z = supp_k(W x + b). The output is h * mask with a constant 0/1 mask,
    so gradients flow only through the k kept units of each example.
    """
    if h.ndim != 2:
        raise ValueError(f"expected activations h of shape (B, D), got {tuple(h.shape)}")
    B, D = h.shape
    if not 1 <= k <= D:
        raise ValueError(f"k must be in 1..{D} (the number of hidden units), got {k}")
    idx = h.topk(k, dim=1).indices                                     # (B, k)
    mask = torch.zeros_like(h).scatter(1, idx, torch.ones_like(idx, dtype=h.dtype))  # (B, D), no gradient
    return h * mask


def jacobian_sq_norms(encoder: Callable[[Tensor], Tensor], x: Tensor, create_graph: bool = False,
                      chunk: int = 64) -> Tensor:
    """||J_f(x_b)||_F^2 for each example of x (B, ...) -> (B,), where f = ``encoder`` maps x to codes (B, D).

    Row j of J_f(x_b) is the gradient of h_bj with respect to x_b. Examples are independent, so the
    gradient of sum_b h_bj with respect to x (B, ...) holds row j for every example at once; the D rows
    are taken ``chunk`` units at a time (batched backward passes). ``create_graph=True`` keeps the
    result differentiable with respect to the encoder's parameters (for training with the penalty).
    """
    x = x.detach().requires_grad_(True)
    h = encoder(x)
    if h.ndim != 2 or h.shape[0] != x.shape[0]:
        raise ValueError(f"expected the encoder to return codes of shape (B, D) with B = {x.shape[0]}, got {tuple(h.shape)}")
    B, D = h.shape
    total = x.new_zeros(B)
    eye = torch.eye(D, dtype=h.dtype, device=h.device)
    for start in range(0, D, chunk):
        units = eye[start:start + chunk, None, :].expand(-1, B, D)     # (c, B, D): one-hot h_j per row
        (rows,) = torch.autograd.grad(h, x, units, retain_graph=True, create_graph=create_graph,
                                      is_grads_batched=True)           # (c, B, ...) = rows j of J
        total = total + rows.pow(2).flatten(2).sum((0, 2))             # (B,)
    return total


def contractive_penalty(encoder: Callable[[Tensor], Tensor], x: Tensor, create_graph: bool = True) -> Tensor:
    """Rifai et al. 2011, Eq. 2: ||J_f(x)||_F^2 = sum_ij (dh_j / dx_i)^2, averaged over the batch x (B, ...) -> scalar."""
    return jacobian_sq_norms(encoder, x, create_graph=create_graph).mean()


def sigmoid_contractive_penalty(h: Tensor, W: Tensor) -> Tensor:
    """Closed form of ``contractive_penalty`` for h = sigmoid(W x + b), averaged over the batch -> scalar.

    Rifai et al. 2011, Sec. 5: ||J_f(x)||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ji^2.
    h: codes (B, D); W: encoder weight (D, D_in).
    """
    if h.ndim != 2 or W.ndim != 2 or W.shape[0] != h.shape[1]:
        raise ValueError(f"expected h (B, D) and W (D, D_in), got {tuple(h.shape)} and {tuple(W.shape)}")
    return ((h * (1 - h)) ** 2 @ W.pow(2).sum(1)).mean()


def mask_noise(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Masking corruption (Vincent et al. 2008): each entry of x (B, ...) is set to 0 with probability p -> same."""
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {p}")
    keep = torch.rand(x.shape, generator=generator).to(x.device) >= p
    return x * keep


def gaussian_noise(x: Tensor, sigma: float, generator: torch.Generator | None = None) -> Tensor:
    """Additive isotropic Gaussian corruption (Vincent et al. 2010): x~ = x + sigma * eps, eps ~ N(0, I) -> same shape."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    return x + sigma * torch.randn(x.shape, generator=generator).to(x.device)


def fraction_active(h: Tensor, threshold: float = 0.1) -> float:
    """Fraction of the entries of codes h (B, D) above ``threshold``: how many units fire per example, on average."""
    if h.ndim != 2:
        raise ValueError(f"expected codes h of shape (B, D), got {tuple(h.shape)}")
    return (h > threshold).float().mean().item()
