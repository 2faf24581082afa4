"""Conditional diffusion and guidance: classifier guidance and classifier-free guidance (CFG).

The link that makes guidance one line (Ho et al. 2020 Sec. 3.2; Song et al. 2021): a noise prediction is a
scaled score, eps(x_t) = -sqrt(1 - abar_t) grad_{x_t} log p_t(x_t). Bayes' rule for a label y,

    grad log p_t(x_t | y) = grad log p_t(x_t) + grad log p_t(y | x_t),

then turns an unconditional model into a conditional one in two ways:

- **Classifier guidance** (Dhariwal & Nichol 2021, https://arxiv.org/abs/2105.05233, Sec. 4.2, Eq. 14 and
  Algorithm 2): train a classifier p(y | x_t, t) on noisy images and add s times its gradient,
  eps^ = eps(x_t) - s sqrt(1 - abar_t) grad log p(y | x_t). s = 1 is Bayes' rule; s > 1 samples from
  p(x | y) p(y | x)^(s-1), sharper and less diverse.
- **Classifier-free guidance** (Ho & Salimans 2022, https://arxiv.org/abs/2207.12598, Eq. 6 and Algorithm 1):
  train one model eps(x_t, y) with the label replaced by a null token with probability p_uncond, so it also
  learns eps(x_t, null) = eps(x_t); sample with eps^ = eps_u + s (eps_c - eps_u). On scores this is
  (1 - s) score_u + s score_c = score_u + s grad log p(y | x_t) with the classifier implied by the model's
  two outputs. (The paper writes (1 + w) eps_c - w eps_u: w = s - 1.)

Kernels: ``cfg``, ``drop_condition``, ``classifier_guided_eps``, ``classifier_grad``. Models:
``ClassConditionalUNet`` (the course's U-Net with a class embedding added to its time embedding, as in
diffusers' ``UNet2DModel(num_class_embeds=...)``), ``eps_cfg`` (its two passes as one batch) and
``NoisyClassifier`` (a small p(y | x_t, t) built from the same residual blocks).

Shapes: B batch, C, H, W image, K classes, D time-embedding width. Labels are int64 in [0, K); the null
label is K.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.diffusion.unet import ResBlock, UNet, sinusoidal_embedding
from course_lib.utils import values_checkable


def _per_example(value: float | Tensor, x: Tensor, name: str) -> Tensor | float:
    """A float, or a (B,) tensor viewed as (B, 1, ..., 1) to broadcast against x (B, ...)."""
    if not isinstance(value, Tensor):
        return float(value)
    if value.ndim == 0:
        return value.to(x)
    if value.shape != x.shape[:1]:
        raise ValueError(f"expected {name} a float or a tensor of shape ({x.shape[0]},), got {tuple(value.shape)}")
    return value.to(x).view(-1, *([1] * (x.ndim - 1)))


def cfg(eps_uncond: Tensor, eps_cond: Tensor, scale: float | Tensor) -> Tensor:
    """Ho & Salimans 2022, Eq. 6: eps^ = eps_u + s (eps_c - eps_u), computed as (1 - s) eps_u + s eps_c.

    The barycentric combination of the two predictions (extrapolated for s > 1); since eps = -sqrt(1 - abar_t)
    score, it is the same combination of the unconditional and conditional scores. s = 0 returns eps_u and
    s = 1 returns eps_c exactly.

    eps_uncond, eps_cond (B, ...) of equal shape, scale a float or (B,) -> (B, ...)."""
    if not isinstance(eps_uncond, Tensor) or not isinstance(eps_cond, Tensor) or eps_uncond.shape != eps_cond.shape \
            or eps_uncond.ndim < 1:
        raise ValueError(f"expected eps_uncond and eps_cond of the same shape (B, ...), got "
                         f"{tuple(getattr(eps_uncond, 'shape', ()))} and {tuple(getattr(eps_cond, 'shape', ()))}")
    s = _per_example(scale, eps_uncond, "scale")
    return (1 - s) * eps_uncond + s * eps_cond


def drop_condition(labels: Tensor, p_uncond: float, null_label: int | Tensor,
                   generator: torch.Generator | None = None) -> Tensor:
    """CFG training (Ho & Salimans Algorithm 1, line 3): each row of ``labels`` becomes the null condition with
    probability p_uncond, independently.

    labels (B,) int64 (or (B, ...), e.g. token ids), null_label an int (or a tensor of shape labels.shape[1:],
    e.g. the empty caption's ids) -> (B, ...) like labels. One uniform draw per row from ``generator``."""
    if not isinstance(labels, Tensor) or labels.ndim < 1:
        raise ValueError(f"expected labels of shape (B,) or (B, ...), got {getattr(labels, 'shape', labels)!r}")
    if not 0 <= p_uncond <= 1:
        raise ValueError(f"expected a probability 0 <= p_uncond <= 1, got {p_uncond}")
    null = torch.as_tensor(null_label, dtype=labels.dtype, device=labels.device)
    if null.ndim and null.shape != labels.shape[1:]:
        raise ValueError(f"expected null_label an int or of shape {tuple(labels.shape[1:])}, got {tuple(null.shape)}")
    drop = torch.rand(labels.shape[0], generator=generator, device=labels.device) < p_uncond    # (B,)
    return torch.where(drop.view(-1, *([1] * (labels.ndim - 1))), null, labels)


def classifier_guided_eps(eps: Tensor, grad_log_p: Tensor, alpha_bar_t: float | Tensor, scale: float | Tensor) -> Tensor:
    """Dhariwal & Nichol 2021, Eq. 14 (Algorithm 2, DDIM): eps^ = eps - s sqrt(1 - abar_t) grad_{x_t} log p(y | x_t).

    eps, grad_log_p (B, ...), alpha_bar_t a float or (B,) in [0, 1], scale a float or (B,) -> (B, ...)."""
    if not isinstance(eps, Tensor) or not isinstance(grad_log_p, Tensor) or eps.shape != grad_log_p.shape \
            or eps.ndim < 1:
        raise ValueError(f"expected eps and grad_log_p of the same shape (B, ...), got "
                         f"{tuple(getattr(eps, 'shape', ()))} and {tuple(getattr(grad_log_p, 'shape', ()))}")
    abar = torch.as_tensor(_per_example(alpha_bar_t, eps, "alpha_bar_t"), dtype=eps.dtype, device=eps.device)
    if values_checkable(abar) and not bool(((abar >= 0) & (abar <= 1)).all()):
        raise ValueError(f"expected alpha_bar_t in [0, 1], got {alpha_bar_t}")
    s = _per_example(scale, eps, "scale")
    return eps - s * (1 - abar).sqrt() * grad_log_p                          # (B, ...)


def classifier_grad(classifier: nn.Module, x_t: Tensor, t: Tensor | int, y: Tensor) -> Tensor:
    """grad_{x_t} log p(y | x_t, t), with log p = log_softmax(classifier(x_t, t)) at y, by autograd.

    The log-probabilities of the batch are summed before differentiating: row b of the gradient is then row b's
    own gradient, as long as the classifier treats examples independently (GroupNorm, not BatchNorm in
    training mode). Works under ``torch.no_grad()`` (the sampling loop's usual context).

    classifier(x (B, ...), t) -> logits (B, K); x_t (B, ...); t (B,) or a scalar; y (B,) int64 in [0, K)
    -> (B, ...) detached."""
    if not isinstance(x_t, Tensor) or not x_t.is_floating_point() or x_t.ndim < 1:
        raise ValueError(f"expected x_t a float tensor of shape (B, ...), got {getattr(x_t, 'shape', x_t)!r}")
    B = x_t.shape[0]
    if not isinstance(y, Tensor) or y.shape != (B,) or y.is_floating_point():
        raise ValueError(f"expected y of shape ({B},) int64, got {tuple(getattr(y, 'shape', ())) or y!r}")
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        logits = classifier(x, t)                                               # (B, K)
        if logits.shape[:1] != (B,) or logits.ndim != 2:
            raise ValueError(f"expected the classifier's logits of shape ({B}, K), got {tuple(logits.shape)}")
        if B and values_checkable(y) and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
            raise ValueError(f"expected y in [0, {logits.shape[1] - 1}], got [{int(y.min())}, {int(y.max())}]")
        log_p = F.log_softmax(logits, dim=1).gather(1, y.view(B, 1).to(logits.device)).sum()
        (grad,) = torch.autograd.grad(log_p, x)
    return grad.detach()


# ---------------------------------------------------------------------------------------------- models

class ClassConditionalUNet(UNet):
    """eps_theta(x_t, t, y): the course's U-Net with the class entering through the time embedding,
    temb = MLP(sinusoids(t)) + E[y] (Dhariwal & Nichol Sec. 3; diffusers' ``class_embedding``).

    E has num_classes + 1 rows: row ``num_classes`` (= ``self.null_label``) is the learned null token that CFG
    trains with ``drop_condition``. x (B, C, H, W), t (B,) or a scalar, y (B,) int64 in [0, num_classes]
    -> (B, C, H, W). The other arguments are the U-Net's."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, channels: tuple[int, ...] = (32, 64, 64),
                 attention: tuple[bool, ...] = (False, False, True), heads: int = 4, groups: int = 8):
        super().__init__(in_channels, channels, attention, heads, groups)
        if num_classes < 1:
            raise ValueError(f"expected num_classes >= 1, got {num_classes}")
        self.num_classes = self.null_label = num_classes
        self.class_emb = nn.Embedding(num_classes + 1, self.time_mlp[-1].out_features)   # (K + 1, D)

    def forward(self, x: Tensor, t: Tensor | float, y: Tensor) -> Tensor:
        t = self.check(x, t)                                                    # (B,)
        B = x.shape[0]
        if not isinstance(y, Tensor) or y.shape != (B,) or y.is_floating_point():
            raise ValueError(f"expected y of shape ({B},) int64 in [0, {self.num_classes}] "
                             f"({self.num_classes} = null), got {tuple(getattr(y, 'shape', ())) or y!r}")
        if B and values_checkable(y) and (int(y.min()) < 0 or int(y.max()) > self.num_classes):
            raise ValueError(f"expected y in [0, {self.num_classes}] ({self.num_classes} = null), "
                             f"got [{int(y.min())}, {int(y.max())}]")
        temb = self.time_mlp(sinusoidal_embedding(t, self.channels[0]).to(x.dtype))   # (B, D)
        temb = temb + self.class_emb(y.to(x.device)).to(x.dtype)               # (B, D): the only change
        return self.trunk(x, temb)                                              # UNet's steps 2-5


def eps_cfg(model: ClassConditionalUNet, x: Tensor, t: Tensor | float, y: Tensor, scale: float | Tensor) -> Tensor:
    """CFG with one forward pass: the batch [x; x] with labels [y; null] -> ``cfg(eps_u, eps_c, scale)``.

    x (B, C, H, W), t (B,) or a scalar, y (B,) int64, scale a float or (B,) -> (B, C, H, W)."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor) or y.shape != x.shape[:1]:
        raise ValueError(f"expected x (B, C, H, W) and y (B,), got {tuple(getattr(x, 'shape', ()))} and "
                         f"{tuple(getattr(y, 'shape', ()))}")
    t2 = torch.cat([t, t]) if isinstance(t, Tensor) and t.ndim == 1 else t
    eps_c, eps_u = model(torch.cat([x, x]), t2, torch.cat([y, torch.full_like(y, model.null_label)])).chunk(2)
    return cfg(eps_u, eps_c, scale)


class NoisyClassifier(nn.Module):
    """p(y | x_t, t) for classifier guidance: the U-Net's downsampling half in miniature (Dhariwal & Nichol
    Sec. 4.2 use the U-Net's encoder), with t entering every residual block through the sinusoidal embedding.

    conv -> [ResBlock, stride-2 conv] per level (no downsample after the last) -> GroupNorm, SiLU, global
    average pool, Linear. Default channels (16, 32, 64) at 28 -> 14 -> 7: about 0.1M parameters.
    x (B, C, H, W), t (B,) or a scalar -> logits (B, K)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, channels: tuple[int, ...] = (16, 32, 64),
                 groups: int = 8):
        super().__init__()
        self.in_channels, self.channels = in_channels, tuple(channels)
        c0, D = channels[0], 4 * channels[0]
        self.time_mlp = nn.Sequential(nn.Linear(c0, D), nn.SiLU(), nn.Linear(D, D))
        self.conv_in = nn.Conv2d(in_channels, c0, 3, padding=1)
        self.blocks, self.downs, c_prev = nn.ModuleList(), nn.ModuleList(), c0
        for i, c in enumerate(channels):
            self.blocks.append(ResBlock(c_prev, c, D, groups))
            last = i == len(channels) - 1
            self.downs.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            c_prev = c
        self.norm_out = nn.GroupNorm(groups, c_prev)
        self.head = nn.Linear(c_prev, num_classes)

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels or not x.is_floating_point():
            raise ValueError(f"expected x of shape (B, {self.in_channels}, H, W) float, got "
                             f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}")
        B = x.shape[0]
        t = torch.as_tensor(t, device=x.device)
        t = t.expand(B) if t.ndim == 0 else t
        if t.shape != (B,):
            raise ValueError(f"expected t of shape ({B},) or a scalar, got {tuple(t.shape)}")
        temb = self.time_mlp(sinusoidal_embedding(t, self.channels[0]).to(x.dtype))   # (B, D)
        h = self.conv_in(x)                                                     # (B, c0, H, W)
        for block, down in zip(self.blocks, self.downs):
            h = down(block(h, temb))                                            # (B, c_i, H / 2^(i+1), ...)
        h = F.silu(self.norm_out(h)).mean((2, 3))                               # (B, c_last)
        return self.head(h)                                                     # (B, K)
