"""The VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation Learning"): the
model, its training and the course's tokenizer.

An encoder maps a 28x28 image to a 7x7 grid of vectors z_e (N, D, 7, 7); the quantizer (``quantizer``,
Eq. 1-2) snaps each to its nearest codebook row, so the image becomes 49 discrete tokens; the decoder maps
z_q back to an image. Loss (Eq. 3): the mean squared error (-log p(x | z_q) for a Gaussian of fixed
variance, up to constants) plus ``quantizer.vq_loss`` (beta = 0.25 as in the paper), all means over elements.

Codebook collapse: with a random codebook, a few codes win the first argmins, move towards the data and
keep winning; the others are never picked ("dead") and never trained. The fix used here combines k-means
initialisation of the codebook on encoder outputs (Lancucki et al. 2020, "Robust training of vector
quantized bottleneck models") and restarts of dead codes at random encoder outputs (Dhariwal et al. 2020,
Jukebox, Sec. 2.3).

The stable API that later chapters (15 latent diffusion, 18 BEiT, 19 DALL-E) use::

    from course_lib.vq import load_tokenizer
    tok = load_tokenizer()            # VQVAE in eval mode, frozen; checkpoint "vq_tokenizer"
    codes = tok.encode_tokens(x)      # (N, 1, 28, 28) in [0, 1] -> (N, 7, 7) int64 in [0, tok.num_codes)
    x_hat = tok.decode_tokens(codes)  # (N, 7, 7) int64 -> (N, 1, 28, 28) in [0, 1]
    z_e = tok.encode(x)               # continuous latents (N, tok.dim, 7, 7); tok.embed(codes) gives z_q
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from course_lib import checkpoints
from course_lib.profiles import pick
from course_lib.training import check_images
from course_lib.utils import autocast, backward_step
from course_lib.utils import device as default_device
from course_lib.vq.quantizer import VectorQuantizer, dead_codes, nearest_code, perplexity

CHECKPOINT = "vq_tokenizer"


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
    """One step on images x (B, 1, 28, 28): loss = MSE reconstruction + vq loss (Eq. 3, means over elements).

    Returns the detached terms, the perplexity of the batch's tokens and ``commit_distance``, the mean over the
    B*49 grid cells of ||z_e - z_q||_2 (how far the encoder's outputs sit from their codes)."""
    model.train()
    with autocast(x.device):                                           # mixed precision on a GPU
        z_e = model.encode(x)                                          # (B, D, 7, 7)
        z_q, vq, codes = model.quantizer(z_e)                          # z_q straight-through, value e_k
        x_hat = model.decode(z_q)                                      # (B, 1, 28, 28)
        recon = F.mse_loss(x_hat, x)
    backward_step(recon + vq, optimizer, x.device)
    return {"recon": recon.detach(), "vq": vq.detach(), "perplexity": perplexity(codes, model.num_codes),
            "commit_distance": (z_e - z_q).detach().norm(dim=1).mean()}


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
