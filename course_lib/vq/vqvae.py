"""The VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation Learning").

An encoder maps a 28x28 image to a 7x7 grid of vectors z_e (N, D, 7, 7). Each vector is replaced by its
nearest codebook entry e_k, k in [0, K) (Eq. 1-2):

    k = argmin_j ||z_e - e_j||_2,        z_q = e_k

so the image becomes 49 discrete tokens. argmin has no gradient: the decoder's gradient with respect to
z_q is copied onto z_e unchanged -- the straight-through estimator (Sec. 3.2), written z_e + sg(z_q - z_e).
The codebook learns from its own term of the loss (Eq. 3, sg = stop-gradient):

    L = -log p(x | z_q) + ||sg(z_e) - e||^2 + beta ||z_e - sg(e)||^2

Here -log p(x | z_q) is a Gaussian of fixed variance, i.e. the mean squared error on [0, 1] intensities,
and the two norms are averaged over elements like it (beta = 0.25 as in the paper).

Codebook collapse: with a random codebook, a few codes win the first argmins, move towards the data and
keep winning; the others are never picked ("dead") and never trained. The fix used here combines k-means
initialisation of the codebook on encoder outputs (Lancucki et al. 2020, "Robust training of vector
quantized bottleneck models") and restarts of dead codes at random encoder outputs (Dhariwal et al. 2020,
Jukebox, Sec. 2.3). Usage is measured by the perplexity exp(H(p)) of the code frequencies p: K when all
codes are used equally, 1 when one code takes everything.

The stable API that later chapters (15 latent diffusion, 18 BEiT, 19 DALL-E) use::

    tok = load_tokenizer()            # VQVAE in eval mode, frozen; checkpoint "vq_tokenizer"
    codes = tok.encode_tokens(x)      # (N, 1, 28, 28) in [0, 1] -> (N, 7, 7) int64 in [0, tok.num_codes)
    x_hat = tok.decode_tokens(codes)  # (N, 7, 7) int64 -> (N, 1, 28, 28) in [0, 1]
    z_e = tok.encode(x)               # continuous latents (N, tok.dim, 7, 7); tok.embed(codes) gives z_q
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from course_lib import checkpoints
from course_lib.profiles import pick
from course_lib.training import check_images
from course_lib.utils import (
    at_least_float32 as _upcast,  # float16/bfloat16 -> float32, else unchanged
)
from course_lib.utils import device as default_device

CHECKPOINT = "vq_tokenizer"


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


# ---------------------------------------------------------------------------------------------- model

class ResBlock(nn.Module):
    """The paper's residual block (Sec. 4.1): x + conv1x1(relu(conv3x3(relu(x)))). (N, C, H, W) -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                 nn.ReLU(), nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class VQVAE(nn.Module):
    """Images (N, 1, 28, 28) in [0, 1] -> (x_hat (N, 1, 28, 28) in [0, 1], vq loss, codes (N, 7, 7)).

    Encoder: two stride-2 convolutions (28 -> 14 -> 7), two residual blocks, a 1x1 conv to D channels.
    Decoder: the mirror image with transposed convolutions, ending in a sigmoid.
    """

    grid = 7  # tokens per side

    def __init__(self, num_codes: int = 128, dim: int = 16, width: int = 32, beta: float = 0.25):
        super().__init__()
        self.num_codes, self.dim = num_codes, dim
        self.encoder = nn.Sequential(
            nn.Conv2d(1, width // 2, 4, stride=2, padding=1), nn.ReLU(),        # (N, w/2, 14, 14)
            nn.Conv2d(width // 2, width, 4, stride=2, padding=1),               # (N, w, 7, 7)
            ResBlock(width), ResBlock(width), nn.ReLU(), nn.Conv2d(width, dim, 1))   # (N, D, 7, 7)
        self.quantizer = VectorQuantizer(num_codes, dim, beta)
        self.decoder = nn.Sequential(
            nn.Conv2d(dim, width, 3, padding=1), ResBlock(width), ResBlock(width), nn.ReLU(),
            nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1), nn.ReLU(),   # (N, w/2, 14, 14)
            nn.ConvTranspose2d(width // 2, 1, 4, stride=2, padding=1), nn.Sigmoid())  # (N, 1, 28, 28)

    def encode(self, x: Tensor) -> Tensor:
        """(N, 1, 28, 28), float, computed in the model's dtype -> z_e (N, D, 7, 7)."""
        check_images(x)
        return self.encoder(x.to(self.quantizer.codebook.dtype))

    def decode(self, z_q: Tensor) -> Tensor:
        """z_q (N, D, 7, 7), float, computed in the model's dtype -> x_hat (N, 1, 28, 28) in [0, 1]."""
        if (z_q.ndim != 4 or tuple(z_q.shape[1:]) != (self.dim, self.grid, self.grid)
                or not z_q.is_floating_point()):
            raise ValueError(f"expected float z_q of shape (N, {self.dim}, {self.grid}, {self.grid}), got "
                             f"{tuple(z_q.shape)} {z_q.dtype}")
        return self.decoder(z_q.to(self.quantizer.codebook.dtype))

    def embed(self, codes: Tensor) -> Tensor:
        """codes (N, 7, 7) int64 -> z_q (N, D, 7, 7)."""
        return self.quantizer.embed(codes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z_q, loss, codes = self.quantizer(self.encode(x))
        return self.decode(z_q), loss, codes

    @torch.no_grad()
    def encode_tokens(self, x: Tensor) -> Tensor:
        """Images (N, 1, 28, 28) in [0, 1] -> tokens (N, 7, 7) int64 in [0, num_codes)."""
        z_e = self.encode(x)
        z = z_e.permute(0, 2, 3, 1).reshape(-1, self.dim)                 # (N*49, D)
        return nearest_code(z, self.quantizer.codebook).view(len(x), self.grid, self.grid)

    @torch.no_grad()
    def decode_tokens(self, codes: Tensor) -> Tensor:
        """Tokens (N, 7, 7) int64 -> images (N, 1, 28, 28) in [0, 1]."""
        if codes.ndim != 3 or tuple(codes.shape[1:]) != (self.grid, self.grid):
            raise ValueError(f"expected codes of shape (N, {self.grid}, {self.grid}), got {tuple(codes.shape)}")
        return self.decode(self.embed(codes))


def train_step(model: VQVAE, optimizer: torch.optim.Optimizer, x: Tensor) -> dict:
    """One step on images x (B, 1, 28, 28): loss = MSE reconstruction + vq loss. Detached terms + perplexity."""
    model.train()
    x_hat, vq, codes = model(x)
    recon = F.mse_loss(x_hat, x)
    optimizer.zero_grad(set_to_none=True)
    (recon + vq).backward()
    optimizer.step()
    return {"recon": recon.detach(), "vq": vq.detach(), "perplexity": perplexity(codes, model.num_codes)}


# ---------------------------------------------------------------------------------------------- training

@dataclass
class VQTrainConfig:
    n_train: int | None = None    # training images (None: all 60,000)
    steps: int = 4_000
    batch_size: int = 128
    lr: float = 2e-3              # peak of a one-cycle schedule (AdamW)
    fix: bool = True              # k-means init + dead-code restarts; False: the paper's plain recipe
    restart_every: int = 100      # steps between dead-code restarts (when fix), over the first 80% of steps
    n_eval: int = 10_000          # test images for the metrics


# SHIPPED: 4,000 steps of 128 images (8.5 epochs), identical but for the fix. Calibration on 2 CPU cores
# when they are free: 1,200 steps of 64 images took 20 s and reached test MSE 0.0091, perplexity 117,
# 0 dead codes with the fix; MSE 0.0115, perplexity 26, 94 dead codes without (10x slower under contention).
SHIPPED = {"vq_tokenizer": VQTrainConfig(), "vq_tokenizer_nofix": VQTrainConfig(fix=False)}
FALLBACK = {"smoke": VQTrainConfig(n_train=2_000, steps=30, batch_size=64, restart_every=10, n_eval=500),
            "cpu": VQTrainConfig(steps=1_000), "gpu": VQTrainConfig(steps=10_000)}


def build_vqvae() -> VQVAE:
    return VQVAE()


@torch.no_grad()
def kmeans_init(model: VQVAE, x: Tensor, iters: int = 10, generator: torch.Generator | None = None) -> None:
    """Initialise the codebook with k-means on the encoder outputs of images x (B, 1, 28, 28)."""
    z = model.encode(x).permute(0, 2, 3, 1).reshape(-1, model.dim)    # (B*49, D)
    model.quantizer.kmeans_init_(z, iters, generator)


@torch.no_grad()
def restart_dead_codes(model: VQVAE, x: Tensor, generator: torch.Generator | None = None) -> int:
    """Restart the codes unused since the last call at encoder outputs of images x (B, 1, 28, 28)."""
    z = model.encode(x).permute(0, 2, 3, 1).reshape(-1, model.dim)    # (B*49, D)
    return model.quantizer.restart_dead_codes(z, generator=generator)


@torch.no_grad()
def evaluate(model: VQVAE, images: Tensor, batch_size: int = 1000) -> dict:
    """Test MSE, perplexity and dead codes of ``model`` on images (N, 1, 28, 28); also the tokens (N, 7, 7)."""
    model.eval()
    dev = next(model.parameters()).device
    codes = torch.cat([model.encode_tokens(images[i:i + batch_size].to(dev)).cpu()
                       for i in range(0, len(images), batch_size)])
    recon = torch.cat([model.decode_tokens(codes[i:i + batch_size].to(dev)).cpu()
                       for i in range(0, len(codes), batch_size)])
    return {"mse": F.mse_loss(recon, images).item(), "perplexity": perplexity(codes, model.num_codes),
            "dead_codes": dead_codes(codes, model.num_codes), "codes": codes, "recon": recon}


def train_vqvae(model: VQVAE, cfg: VQTrainConfig, progress: bool = True) -> dict:
    """Train on Fashion-MNIST with AdamW + one-cycle (the fix when ``cfg.fix``); metrics on the test set."""
    from course_lib.data import fashion_mnist

    train = fashion_mnist("train").subset(cfg.n_train, seed=0).images
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(0)
    batch = lambda: train[torch.randint(len(train), (cfg.batch_size,), generator=g)].to(dev)  # noqa: E731
    if cfg.fix:
        kmeans_init(model, train[torch.randperm(len(train), generator=g)[:2_000]].to(dev), generator=g)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=max(cfg.steps, 1))
    restarted = 0
    for step in tqdm(range(cfg.steps), desc="training the VQ-VAE", disable=not progress):
        train_step(model, optimizer, batch())
        schedule.step()
        if cfg.fix and (step + 1) % cfg.restart_every == 0 and step + 1 < 0.8 * cfg.steps:
            restarted += restart_dead_codes(model, batch(), generator=g)
    test = fashion_mnist("test").subset(cfg.n_eval, seed=0).images
    m = evaluate(model, test)
    return {"test_mse": round(m["mse"], 5), "perplexity": round(m["perplexity"], 2), "dead_codes": m["dead_codes"],
            "restarted": restarted, "steps": cfg.steps, "batch_size": cfg.batch_size, "n_train": len(train),
            "fix": cfg.fix}


def load_vqvae(name: str = CHECKPOINT, device=None, profile: str = "auto") -> VQVAE:
    """The trained VQ-VAE ``name`` ("vq_tokenizer" or "vq_tokenizer_nofix"), eval mode, frozen, on
    ``device``: shipped, else cached, else trained now with the profile's FALLBACK config."""
    if name not in SHIPPED:
        raise ValueError(f"unknown VQ-VAE checkpoint {name!r}; expected one of {sorted(SHIPPED)}")
    model = build_vqvae().to(device or default_device())
    cfg = replace(pick(FALLBACK, profile), fix=SHIPPED[name].fix)
    model.checkpoint_entry = checkpoints.load(name, model, lambda m: train_vqvae(m, cfg), profile=profile)
    return model.eval().requires_grad_(False)


def load_tokenizer(device=None, profile: str = "auto") -> VQVAE:
    """The course's image tokenizer: checkpoint ``vq_tokenizer``. See the module docstring for its API."""
    return load_vqvae(CHECKPOINT, device, profile)
