"""Training and evaluating the AE and VAEs on dynamically binarized Fashion-MNIST (Adam, KL warm-up)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from course_lib.utils import autocast, backward_step
from course_lib.vae.kernels import binarize, iwae_nll


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, beta: float = 1.0) -> dict:
    """One step on -(recon_term - beta * kl_term), averaged over the batch x (N, C, H, W) binary.

    Returns the batch means of both terms and the loss (nats per image), 0-d tensors detached on x's device (not
    read back, so a GPU loop does not wait at every step). beta < 1 is the KL warm-up of Sonderby et al. 2016;
    beta = 1 is the ELBO."""
    model.train()
    with autocast(x.device):                         # mixed precision on a GPU; the terms are summed in float32
        recon, kl = model.terms(x)
        loss = -(recon - beta * kl).mean()
    backward_step(loss, optimizer, x.device)
    return {"recon": recon.mean().detach(), "kl": kl.mean().detach(), "loss": loss.detach()}


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    warmup_epochs: float = 5.0       # KL weight beta rises linearly from 0 to 1 over these epochs
    n_train: int | None = None       # None: all 60,000 training images
    n_eval: int | None = None        # test images for the reported ELBO / NLL (None: all 10,000)
    k_eval: int = 100                # importance samples of the reported NLL
    seed: int = 0


@torch.no_grad()
def binarized_test(n: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The first ``n`` Fashion-MNIST test images binarized once with ``seed``: (images (n, 1, 28, 28), labels)."""
    from course_lib.data import fashion_mnist

    test = fashion_mnist("test")
    n = len(test) if n is None else min(n, len(test))
    return binarize(test.images[:n], torch.Generator().manual_seed(seed)), test.labels[:n]


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, k: int = 100, batch_size: int = 500) -> dict:
    """Mean test terms (nats per image) of x (N, C, H, W) binary: recon, kl, -ELBO and, for latent-variable
    models, the IWAE NLL with k samples; seeded, so repeated calls agree."""
    model.eval()
    dev = next(model.parameters()).device
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):  # the caller's RNG is untouched
        torch.manual_seed(0)
        chunks = [model.terms(x[i:i + batch_size].to(dev)) for i in range(0, len(x), batch_size)]
        recon, kl = torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])
        out = {"recon": recon.mean().item()}
        if hasattr(model, "log_weights"):  # a latent-variable model (not the plain AE)
            out.update(kl=kl.mean().item(), neg_elbo=(kl - recon).mean().item())
            out[f"nll_k{k}"] = iwae_nll(model, x.to(dev), k, batch_size=max(1, 20_000 // k)).mean().item()
    return out


def train_model(model: nn.Module, cfg: TrainConfig, progress: bool = True) -> dict:
    """Train on dynamically binarized Fashion-MNIST (Adam, KL warm-up); return the test metrics and the
    per-epoch history of both terms (for the notebook's training curves)."""
    from course_lib.data import fashion_mnist

    images = fashion_mnist("train").subset(cfg.n_train, seed=cfg.seed).images
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = max(len(images) // cfg.batch_size, 1)
    warmup = max(cfg.warmup_epochs * steps_per_epoch, 1)
    history: dict[str, list] = {"recon": [], "kl": []}
    step = 0
    for _ in tqdm(range(cfg.epochs), desc=f"training {type(model).__name__}", disable=not progress):
        order = torch.randperm(len(images), generator=g)
        sums = {"recon": 0.0, "kl": 0.0}
        for i in range(steps_per_epoch):
            x = binarize(images[order[i * cfg.batch_size:(i + 1) * cfg.batch_size]], g).to(dev)
            terms = train_step(model, optimizer, x, beta=min(1.0, step / warmup))
            step += 1
            for key in sums:
                sums[key] += terms[key].double() / steps_per_epoch
        for key in sums:
            history[key].append(round(float(sums[key]), 3))                # one read-back per epoch
    x_test, _ = binarized_test(cfg.n_eval)
    metrics = {key: round(v, 3) for key, v in evaluate(model, x_test, cfg.k_eval).items()}
    return {**metrics, "epochs": cfg.epochs, "n_train": len(images), "n_eval": len(x_test),
            "history": history}
