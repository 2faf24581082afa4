"""One autoencoder class for the whole chapter, its loss terms and one training step (the notebook owns the loop).

    x (B, 1, 28, 28) --encode--> h (B, D) --decode--> x_hat (B, 1, 28, 28)

- linear AE:        ``Autoencoder(16, activation="linear", output="linear")``: Baldi & Hornik 1989, its optimum
                    spans the top-16 principal subspace
- MLP AE:           ``Autoencoder(32, hidden=(256,))``: a ReLU layer before the code layer
- over-complete AE: ``Autoencoder(1024, activation="relu")``: D > 784, nothing stops it from copying its input
- denoising:        any of them trained on ``x_in = mask_noise(x, p)`` to reconstruct ``x`` (Vincent et al. 2008)
- sparse (KL):      sigmoid codes, ``beta * kl_sparsity(h, rho)`` added to the loss (Ng 2011)
- k-sparse:         ``Autoencoder(D, activation="linear", k=25)``: only the k largest activations survive
                    (Makhzani & Frey 2013)
- contractive:      sigmoid codes, ``lam * ||J_f(x)||_F^2`` added to the loss (Rifai et al. 2011)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.autoencoders.kernels import (
    _count,
    contractive_penalty,
    k_sparse,
    kl_sparsity,
    sigmoid_contractive_penalty,
)

ACTIVATIONS = {"linear": nn.Identity, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}


class Autoencoder(nn.Module):
    """Encoder: Linear layers (ReLU between) to D code units, then ``activation`` and, if ``k``, top-k.
    Decoder: the mirror image (ReLU between), then ``output`` ("sigmoid" for pixels in [0, 1], or "linear").

    d_code: D; hidden: widths of the encoder's hidden layers (the decoder uses them reversed);
    d_in: pixels per image, a square number (784 for 28 x 28; the decoder returns side x side images).
    """

    def __init__(self, d_code: int, hidden: tuple[int, ...] = (), activation: str = "sigmoid", k: int | None = None,
                 output: str = "sigmoid", d_in: int = 784):
        super().__init__()
        if activation not in ACTIVATIONS or output not in ("sigmoid", "linear"):
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)} and output sigmoid or linear, "
                             f"got {activation!r}, {output!r}")
        if k is not None and not 1 <= k <= d_code:
            raise ValueError(f"k must be in 1..{d_code}, got {k}")
        if math.isqrt(d_in) ** 2 != d_in:
            raise ValueError(f"expected d_in = side * side pixels (images (B, 1, side, side)), got {d_in}")
        self.d_code, self.d_in, self.activation, self.k, self.output = d_code, d_in, activation, k, output
        widths = (d_in, *hidden, d_code)
        self.encoder = _mlp(widths, ACTIVATIONS[activation]())
        self.decoder = _mlp(widths[::-1], nn.Sigmoid() if output == "sigmoid" else nn.Identity())

    @property
    def W(self) -> Tensor:
        """The code layer's weight (D, D_in of that layer); row j, for a one-layer encoder, is unit j's filter."""
        return self.encoder[-2].weight

    @property
    def side(self) -> int:
        """Image side: d_in = side * side."""
        return math.isqrt(self.d_in)

    @property
    def dtype(self) -> torch.dtype:
        return self.encoder[0].weight.dtype

    def _dtype_ok(self, t: Tensor) -> bool:
        """t is in the model's dtype, or any float dtype under autocast (which casts inside the layers)."""
        return t.dtype == self.dtype or (t.is_floating_point() and torch.is_autocast_enabled(t.device.type))

    def check_images(self, x: Tensor, name: str = "images") -> None:
        """x is a batch (B, 1, side, side) or (B, d_in) in the model's dtype (B = 0 allowed), else a ValueError.

        Only these two shapes: (B, 4, 14, 14) also has 784 pixels per image, but is not a 28 x 28 image."""
        ok = isinstance(x, Tensor) and self._dtype_ok(x) and (
            (x.ndim == 2 and x.shape[1] == self.d_in) or (x.ndim == 4 and x.shape[1:] == (1, self.side, self.side)))
        if not ok:
            got = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"expected {name} of shape (B, 1, {self.side}, {self.side}) or (B, {self.d_in}) "
                             f"in {self.dtype} (the model's dtype), got {got}")

    def encode(self, x: Tensor) -> Tensor:
        """x (B, 1, 28, 28) or (B, 784) -> codes h (B, D)."""
        self.check_images(x)
        h = self.encoder(x.flatten(1))                                 # (B, D)
        return k_sparse(h, self.k) if self.k else h

    def decode(self, h: Tensor) -> Tensor:
        """codes h (B, D) -> x_hat (B, 1, 28, 28)."""
        if not isinstance(h, Tensor) or h.ndim != 2 or h.shape[1] != self.d_code or not self._dtype_ok(h):
            got = f"{tuple(h.shape)} {h.dtype}" if isinstance(h, Tensor) else type(h).__name__
            raise ValueError(f"expected codes h of shape (B, {self.d_code}) in {self.dtype}, got {got}")
        return self.decoder(h).view(len(h), 1, self.side, self.side)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


def _mlp(widths: tuple[int, ...], last: nn.Module) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [nn.Linear(a, b), nn.ReLU() if i < len(widths) - 2 else last]
    return nn.Sequential(*layers)


def loss_terms(model: Autoencoder, x: Tensor, x_in: Tensor | None = None, beta: float = 0.0, rho: float = 0.05,
               lam: float = 0.0) -> dict[str, Tensor]:
    """The loss of every autoencoder of the chapter, term by term (scalars); ``loss`` is their sum.

    mse:         mean over pixels of (x_hat - x)^2, x_hat = decode(encode(x_in)); x_in = x unless denoising
    sparsity:    beta * sum_j KL(rho || rho_hat_j)                       (when beta > 0; sigmoid codes)
    contractive: lam * ||J_f(x_in)||_F^2, batch mean                     (when lam > 0; closed form for
                 a one-layer sigmoid encoder, autograd otherwise)
    """
    x_in = x if x_in is None else x_in
    _check_pair(model, x, x_in)
    if len(x) == 0:
        raise ValueError(f"expected a non-empty batch of images (B, 1, {model.side}, {model.side}), got "
                         f"{tuple(x.shape)}")
    h = model.encode(x_in)                                             # (B, D)
    terms = {"mse": F.mse_loss(model.decode(h).flatten(1), x.flatten(1))}
    if beta > 0:
        terms["sparsity"] = beta * kl_sparsity(h, rho)
    if lam > 0:
        if model.activation == "sigmoid" and len(model.encoder) == 2 and not model.k:
            terms["contractive"] = lam * sigmoid_contractive_penalty(h, model.W)
        else:
            terms["contractive"] = lam * contractive_penalty(model.encode, x_in)
    terms["loss"] = sum(terms.values())
    return terms


def train_step(model: Autoencoder, optimizer: torch.optim.Optimizer, x: Tensor, x_in: Tensor | None = None,
               **penalties: float) -> dict[str, Tensor]:
    """One optimizer step on ``loss_terms(model, x, x_in, **penalties)``; returns the detached terms."""
    model.train()
    terms = loss_terms(model, x, x_in, **penalties)
    optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    optimizer.step()
    return {name: value.detach() for name, value in terms.items()}


def _check_pair(model: Autoencoder, x: Tensor, x_in: Tensor) -> None:
    """Targets x and inputs x_in: image batches of the same size B."""
    model.check_images(x, "target images x")
    model.check_images(x_in, "input images x_in")
    if len(x) != len(x_in):
        raise ValueError(f"expected x and x_in with the same number of images B, got {tuple(x.shape)} and "
                         f"{tuple(x_in.shape)}")


@torch.no_grad()
def encode_all(model: Autoencoder, x: Tensor, batch_size: int = 1000) -> Tensor:
    """Codes (N, D) of images x (N, 1, 28, 28), in batches, on the model's device, returned on the CPU
    (N = 0 gives (0, D))."""
    model.check_images(x)
    batch_size = _count(batch_size, "batch_size", 1)
    model.eval()
    dev = next(model.parameters()).device
    if len(x) == 0:
        return torch.zeros(0, model.d_code, dtype=model.dtype)
    return torch.cat([model.encode(x[i:i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)])


@torch.no_grad()
def reconstruction_mse(model: Autoencoder, x: Tensor, x_in: Tensor | None = None, batch_size: int = 1000) -> float:
    """Mean over images and pixels of (decode(encode(x_in)) - x)^2 for x (N, 1, 28, 28), N >= 1; x_in = x by default."""
    x_in = x if x_in is None else x_in
    _check_pair(model, x, x_in)
    batch_size = _count(batch_size, "batch_size", 1)
    if len(x) == 0:
        raise ValueError(f"expected at least one image (N, 1, {model.side}, {model.side}), got {tuple(x.shape)}")
    model.eval()
    dev = next(model.parameters()).device
    total = sum(F.mse_loss(model(x_in[i:i + batch_size].to(dev)).flatten(1),
                            x[i:i + batch_size].to(dev).flatten(1), reduction="sum").item()
                for i in range(0, len(x), batch_size))
    return total / x.numel()
