"""Training steps for the image GANs of notebook 10, and the resumable run that trains the shipped checkpoints.

One D step and one G step (Goodfellow et al. 2014, Algorithm 1 with k = 1 and the non-saturating G loss of
Sec. 3); an optional R1 penalty on D's gradient at real images (Mescheder et al. 2018, Eq. 9:
(gamma / 2) E ||grad_x D(x)||^2), applied every ``r1_every`` steps and scaled by it ("lazy", StyleGAN 2);
an exponential moving average of G's weights (Karras et al. 2018, Sec. A.1), which the samples come from.
The notebook runs these steps in its own visible loop; :func:`train_gan` runs the same loop for the
shipped checkpoints, saving its state so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from course_lib.gans.dcgan import to_gan, to_unit
from course_lib.gans.progan import RESOLUTIONS, real_at
from course_lib.gans.toy import d_loss, g_loss_nonsaturating
from course_lib.training import ema_update


def d_step(G: nn.Module, D: nn.Module, opt: torch.optim.Optimizer, real: Tensor, z: Tensor,
           r1_gamma: float = 0.0, **kw) -> Tensor:
    """One discriminator update on real (B, 1, H, W) in [-1, 1] and G(z); ``kw`` (res, alpha) go to G and D.
    Returns the loss () before the update: -V on the batch, plus the R1 term when r1_gamma > 0."""
    with torch.no_grad():
        fake = G(z, **kw)
    if r1_gamma:
        real = real.detach().requires_grad_(True)
    real_logits, fake_logits = D(real, **kw), D(fake, **kw)
    loss = d_loss(real_logits, fake_logits)
    if r1_gamma:
        (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)   # (B, 1, H, W)
        loss = loss + r1_gamma / 2 * grad.square().sum(dim=(1, 2, 3)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def g_step(G: nn.Module, D: nn.Module, opt: torch.optim.Optimizer, z: Tensor, **kw) -> Tensor:
    """One generator update with the non-saturating loss -log D(G(z)); D's weights are not touched."""
    D.requires_grad_(False)
    loss = g_loss_nonsaturating(D(G(z, **kw), **kw))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    D.requires_grad_(True)
    return loss.detach()


@torch.no_grad()
@torch.no_grad()
def sample(G: nn.Module, n: int, seed: int = 0, batch_size: int = 500, **kw) -> Tensor:
    """n images (n, 1, 28, 28) in [0, 1] from G in eval mode, z ~ N(0, I) from a seeded generator."""
    was_training = G.training
    G.eval()
    g = torch.Generator().manual_seed(seed)
    dev = next(G.parameters()).device
    out = [to_unit(G(torch.randn(min(batch_size, n - i), G.z_dim, generator=g).to(dev), **kw)).cpu()
           for i in range(0, n, batch_size)]
    G.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 1, 28, 28)


@dataclass
class GANTrainConfig:
    steps: int                         # (D step + G step) pairs in all
    batch_size: int = 64
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    r1_gamma: float = 0.0              # R1 penalty weight (0: none)
    r1_every: int = 4                  # lazy R1: every this many D steps, scaled by it
    ema_decay: float = 0.999
    grow: tuple[int, ...] = ()         # Progressive GAN: steps (fade-in, then stable) of each resolution 7, 14, 28
    n_train: int | None = None         # training images (None: all 60,000)
    seed: int = 0
    state_every: int = 500


def growth(cfg: GANTrainConfig, step: int) -> dict:
    """Progressive GAN's schedule: {'res', 'alpha'} at ``step`` ({} without growing).

    ``cfg.grow`` = (stable_7, fade_14, stable_14, fade_28, stable_28): alpha rises linearly during a fade."""
    if not cfg.grow:
        return {}
    if len(cfg.grow) != 5:
        raise ValueError(f"grow needs 5 step counts (stable 7, fade 14, stable 14, fade 28, stable 28), got {cfg.grow}")
    start = 0
    for i, length in enumerate(cfg.grow):
        if step < start + length or i == 4:
            res = RESOLUTIONS[(i + 1) // 2]
            alpha = (step - start + 1) / length if i % 2 == 1 else 1.0
            return {"res": res, "alpha": min(alpha, 1.0)}
        start += length
    raise AssertionError("unreachable")


class _Optimizers:
    """Two optimizers seen as one by ``course_lib.resume`` (state_dict, load_state_dict, state)."""

    def __init__(self, **optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers

    def state_dict(self) -> dict:
        return {k: o.state_dict() for k, o in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, o in self.optimizers.items():
            o.load_state_dict(state[k])

    @property
    def state(self) -> dict:
        return {p: s for o in self.optimizers.values() for p, s in o.state.items()}


def train_gan(G: nn.Module, D: nn.Module, cfg: GANTrainConfig, state: Path | None = None,
              progress: bool = True) -> dict:
    """Train G and D on Fashion-MNIST; G ends holding the EMA weights. Returns {'seconds', 'steps', 'loss_d', 'loss_g'},
    'seconds' counting the training loop of every run that led here (a resumed run adds the earlier ones').

    With ``state`` the run saves everything every ``cfg.state_every`` steps (``course_lib.resume``) and resumes
    from there when started again with the same config."""
    from tqdm.auto import tqdm

    from course_lib.data import fashion_mnist
    from course_lib.resume import load_state, save_state

    dev = next(G.parameters()).device
    images = to_gan(fashion_mnist("train").subset(cfg.n_train, seed=cfg.seed).images).to(dev)   # (N, 1, 28, 28)
    ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt = _Optimizers(g=torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas),
                      d=torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas))
    trio = nn.ModuleDict({"g": G, "d": D, "ema": ema})
    gen = torch.Generator().manual_seed(cfg.seed)
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items() if k != "state_every"}
    start, losses, before = 0, torch.zeros(cfg.steps, 2), 0.0     # before: seconds of earlier, interrupted runs
    resumed = load_state(state, trio, opt, generator=gen, config=config) if state is not None else None
    if resumed is not None:
        start, extra = resumed
        losses, before = extra["losses"], float(extra.get("seconds", torch.zeros(())))
    t0 = time.perf_counter()
    for step in tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc="GAN"):
        kw = growth(cfg, step)
        idx = torch.randint(len(images), (cfg.batch_size,), generator=gen).to(dev)
        real = real_at(images[idx], **kw) if kw else images[idx]
        z = torch.randn(2, cfg.batch_size, G.z_dim, generator=gen).to(dev)
        r1 = cfg.r1_gamma * cfg.r1_every if cfg.r1_gamma and step % cfg.r1_every == 0 else 0.0
        losses[step, 0] = d_step(G, D, opt.optimizers["d"], real, z[0], r1_gamma=r1, **kw)
        losses[step, 1] = g_step(G, D, opt.optimizers["g"], z[1], **kw)
        ema_update(ema, G, cfg.ema_decay)
        if state is not None and ((step + 1) % cfg.state_every == 0 or step + 1 == cfg.steps):
            seconds = torch.tensor(before + time.perf_counter() - t0, dtype=torch.float64)
            save_state(state, step + 1, trio, opt, generator=gen, extra={"losses": losses, "seconds": seconds},
                       config=config)
    G.load_state_dict(ema.state_dict())
    return {"seconds": round(before + time.perf_counter() - t0, 1), "steps": cfg.steps,
            "loss_d": float(losses[-500:, 0].mean()), "loss_g": float(losses[-500:, 1].mean())}
