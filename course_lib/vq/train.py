"""Training and loading chapter 08's VQ-VAE (``course_lib.vq.vqvae``): one step of Eq. 3, the codebook-collapse fix
(k-means initialisation and dead-code restarts), the test metrics, and the checkpoints ``vq_tokenizer`` (with the
fix) and ``vq_tokenizer_nofix`` (the paper's plain recipe), shipped, else cached, else trained now.

Codebook collapse: with a random codebook, a few codes win the first argmins, move towards the data and
keep winning; the others are never picked ("dead") and never trained. The fix used here combines k-means
initialisation of the codebook on encoder outputs (Lancucki et al. 2020, "Robust training of vector
quantized bottleneck models") and restarts of dead codes at random encoder outputs (Dhariwal et al. 2020,
Jukebox, Sec. 2.3).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from course_lib import checkpoints
from course_lib.profiles import pick
from course_lib.utils import autocast, backward_step
from course_lib.utils import device as default_device
from course_lib.vq.quantizer import dead_codes, perplexity
from course_lib.vq.vqvae import VQVAE, build_vqvae

CHECKPOINT = "vq_tokenizer"


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
