"""Training steps for notebook 11 (pix2pix, its L1-only twin, MUNIT) and the resumable run of the shipped models.

- :func:`pix2pix_step`: one D step, then one G step on Eq. 4 (Isola et al. 2017, Sec. 3.3: "we alternate
  between one gradient descent step on D, then one step on G"; Adam, lr 2e-4, betas (0.5, 0.999)).
- :func:`l1_step`: the same generator trained on L_L1 alone (the paper's "L1" row of Table 1).
- :func:`munit_step`: one generator step on MUNIT's total loss (Huang et al. 2018, Eq. 5) with freshly sampled
  styles s_a, s_b ~ N(0, I), then one step of the two domain discriminators (Adam, lr 1e-4, betas (0.5, 0.999)).

The notebook runs these steps in its own visible loop; :func:`train_translation` runs the same loop for the
shipped checkpoints, saving its state so that an interrupted run resumes where it stopped.
Images are (B, 1, 28, 28) in [-1, 1] (``course_lib.gans.dcgan.to_gan``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.gans.dcgan import to_gan, to_unit
from course_lib.gans.train import _Optimizers
from course_lib.translation.munit import MUNIT, munit_d_loss, munit_losses
from course_lib.translation.pix2pix import (
    PatchDiscriminator,
    UNet,
    pix2pix_d_loss,
    pix2pix_g_loss,
)


def pix2pix_step(G: nn.Module, D: nn.Module, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                 x: Tensor, y: Tensor, lam: float) -> dict[str, Tensor]:
    """One D step on real pairs (x, y) vs fake pairs (x, G(x)), then one G step on adv + lam * L1.
    x, y (B, 1, 28, 28) in [-1, 1]. Returns the detached losses {'d', 'adv', 'l1'} before the updates."""
    y_fake = G(x)                                                   # (B, 1, 28, 28)
    loss_d = pix2pix_d_loss(D, x, y_fake, y)                        # y_fake detached inside
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    D.requires_grad_(False)                                         # G's step leaves D's weights alone
    terms = pix2pix_g_loss(D, x, y_fake, y, lam)
    opt_g.zero_grad(set_to_none=True)
    terms["total"].backward()
    opt_g.step()
    D.requires_grad_(True)
    return {"d": loss_d.detach(), "adv": terms["adv"].detach(), "l1": terms["l1"].detach()}


def l1_step(G: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """One step of G on L_L1 = mean |y - G(x)| alone: no discriminator. Returns {'l1'} before the update."""
    loss = F.l1_loss(G(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"l1": loss.detach()}


def munit_step(model: MUNIT, discs: nn.ModuleDict, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               x_a: Tensor, x_b: Tensor, generator: torch.Generator | None = None,
               lam_x: float = 10.0, lam_c: float = 1.0, lam_s: float = 1.0) -> dict[str, Tensor]:
    """One generator step on Eq. 5 (styles s_a, s_b ~ N(0, I) drawn from ``generator``), then one step of both
    discriminators on the translations it made. x_a (B, 1, 28, 28) of domain a, x_b of domain b (unpaired).
    Returns the detached terms {'recon_x', 'recon_c', 'recon_s', 'adv', 'd'}."""
    B, dev = len(x_a), x_a.device
    s_a, s_b = torch.randn(2, B, model.style_dim, generator=generator).to(dev)     # (B, style_dim) each
    discs.requires_grad_(False)
    terms = munit_losses(model, discs, x_a, x_b, s_a, s_b, lam_x=lam_x, lam_c=lam_c, lam_s=lam_s)
    opt_g.zero_grad(set_to_none=True)
    terms["total"].backward()
    opt_g.step()
    discs.requires_grad_(True)
    loss_d = munit_d_loss(discs, x_a, x_b, terms["x_ba"], terms["x_ab"])
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    out = {k: terms[k].detach() for k in ("recon_x", "recon_c", "recon_s", "adv")}
    return out | {"d": loss_d.detach()}


@torch.no_grad()
def translate(G: nn.Module, edges: Tensor, batch_size: int = 500) -> Tensor:
    """pix2pix / L1-only outputs (N, 1, 28, 28) in [0, 1] for edge maps (N, 1, 28, 28) in [0, 1], G in eval mode."""
    was_training = G.training
    G.eval()
    dev = next(G.parameters()).device
    out = [to_unit(G(to_gan(edges[i:i + batch_size]).to(dev))).cpu() for i in range(0, len(edges), batch_size)]
    G.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 1, 28, 28)


@torch.no_grad()
def munit_translate(model: MUNIT, edges: Tensor, s: Tensor | None = None, seed: int = 0,
                    batch_size: int = 500) -> Tensor:
    """MUNIT's edges (domain a) -> items (domain b), (N, 1, 28, 28) in [0, 1]; styles s (N, style_dim), else
    drawn from N(0, I) with a seeded generator (one style per edge map)."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    if s is None:
        s = torch.randn(len(edges), model.style_dim, generator=torch.Generator().manual_seed(seed))
    out = [to_unit(model.translate(to_gan(edges[i:i + batch_size]).to(dev), "a", "b",
                                   s=s[i:i + batch_size].to(dev))).cpu() for i in range(0, len(edges), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 1, 28, 28)


@dataclass
class TranslationTrainConfig:
    kind: str                          # "pix2pix" | "l1" | "munit"
    steps: int
    lam: float = 100.0                 # pix2pix: the weight of L1 in Eq. 4
    batch_size: int = 32
    lr: float = 2e-4                   # pix2pix's; MUNIT's is 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    width: int = 32                    # U-Net and PatchGAN width
    channels: int = 64                 # MUNIT's encoders and decoders
    style_dim: int = 8
    n_train: int | None = None         # pairs (pix2pix) or images per domain (MUNIT); None: all of them
    seed: int = 0
    state_every: int = 500


def build_model(cfg: TranslationTrainConfig) -> nn.Module:
    """The model a checkpoint of ``cfg`` holds: the U-Net generator, or the whole MUNIT (both domains)."""
    if cfg.kind in ("pix2pix", "l1"):
        return UNet(width=cfg.width)
    if cfg.kind == "munit":
        return MUNIT(style_dim=cfg.style_dim, channels=cfg.channels)
    raise ValueError(f"unknown kind {cfg.kind!r}: expected 'pix2pix', 'l1' or 'munit'")


def training_data(cfg: TranslationTrainConfig) -> tuple[Tensor, Tensor]:
    """(domain a, domain b) images in [-1, 1]: paired (edge map i, item i) for pix2pix and L1, unpaired for MUNIT."""
    from course_lib.data import edge_pairs, fashion_mnist, unpaired_domains

    if cfg.kind == "munit":
        n = cfg.n_train if cfg.n_train is not None else len(fashion_mnist("train")) // 2
        edges, _, items, _ = unpaired_domains(n, seed=cfg.seed)
    else:
        edges, items, _ = edge_pairs(cfg.n_train, "train", seed=cfg.seed)
    return to_gan(edges), to_gan(items)


def train_translation(model: nn.Module, cfg: TranslationTrainConfig, state: Path | None = None,
                      progress: bool = True) -> dict:
    """Train ``model`` (from :func:`build_model`) with the steps above on Fashion-MNIST; fresh discriminators.
    Returns {'seconds', 'steps', ...the last 200 steps' mean losses}; 'seconds' counts every run that led here
    (a resumed run adds the earlier ones'). With ``state`` the run saves everything every ``cfg.state_every``
    steps (``course_lib.resume``) and resumes from there when started again with the same config."""
    from tqdm.auto import tqdm

    from course_lib.resume import load_state, save_state

    dev = next(model.parameters()).device
    a, b = (t.to(dev) for t in training_data(cfg))                   # (N, 1, 28, 28) each
    torch.manual_seed(cfg.seed)
    if cfg.kind == "munit":
        D = nn.ModuleDict({d: PatchDiscriminator(cfg.width, in_channels=1) for d in "ab"}).to(dev)
    else:
        D = PatchDiscriminator(cfg.width).to(dev)                    # unused by the L1-only run
    opt = _Optimizers(g=torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas),
                      d=torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas))
    pair = nn.ModuleDict({"g": model, "d": D})
    gen = torch.Generator().manual_seed(cfg.seed)
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items() if k != "state_every"}
    names = {"pix2pix": ("d", "adv", "l1"), "l1": ("l1",), "munit": ("recon_x", "recon_c", "recon_s", "adv", "d")}
    names = names[cfg.kind]
    start, losses, before = 0, torch.zeros(cfg.steps, len(names)), 0.0
    resumed = load_state(state, pair, opt, generator=gen, config=config) if state is not None else None
    if resumed is not None:
        start, extra = resumed
        losses, before = extra["losses"], float(extra.get("seconds", torch.zeros(())))
    model.train()
    t0 = time.perf_counter()
    for step in tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc=cfg.kind):
        i = torch.randint(len(a), (cfg.batch_size,), generator=gen).to(dev)
        if cfg.kind == "pix2pix":
            out = pix2pix_step(model, D, opt.optimizers["g"], opt.optimizers["d"], a[i], b[i], cfg.lam)
        elif cfg.kind == "l1":
            out = l1_step(model, opt.optimizers["g"], a[i], b[i])
        else:
            j = torch.randint(len(b), (cfg.batch_size,), generator=gen).to(dev)   # unpaired: another index
            out = munit_step(model, D, opt.optimizers["g"], opt.optimizers["d"], a[i], b[j], generator=gen)
        losses[step] = torch.stack([out[k] for k in names]).cpu()
        if state is not None and ((step + 1) % cfg.state_every == 0 or step + 1 == cfg.steps):
            seconds = torch.tensor(before + time.perf_counter() - t0, dtype=torch.float64)
            save_state(state, step + 1, pair, opt, generator=gen, extra={"losses": losses, "seconds": seconds},
                       config=config)
    model.eval()
    result = {"seconds": round(before + time.perf_counter() - t0, 1), "steps": cfg.steps}
    result.update({f"loss_{k}": float(losses[-200:, n].mean()) for n, k in enumerate(names)})
    return result
