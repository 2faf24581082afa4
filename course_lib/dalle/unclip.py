"""DALL-E 2 (notebook 20): caption -> prior -> CLIP image embedding -> diffusion decoder -> image.

Ramesh et al. 2022, "Hierarchical Text-Conditional Image Generation with CLIP Latents"
(https://arxiv.org/abs/2204.06125), Sec. 2: with x an image, y its caption and z_i, z_t their CLIP image and text
embeddings, the generative model factors as

    P(x | y) = P(x | z_i, y) P(z_i | y)                      (Eq. 1; z_i is a deterministic function of x)

- **the prior** P(z_i | y): here a *diffusion* prior (Sec. 2.2: the paper compares an autoregressive and a
  diffusion prior and prefers diffusion), a small MLP that, given the noised embedding z_i^(t), the step t and the
  caption's CLIP text embedding z_t, predicts the clean z_i directly (the paper predicts z_i, not the noise, with a
  mean-squared error);
- **the decoder** P(x | z_i): a diffusion model on pixels whose time embedding receives a projection of z_i (Sec.
  2.1: "projecting and adding CLIP embeddings to the existing timestep embedding"), the embedding dropped 10 % of
  the time for classifier-free guidance.

Embeddings enter both as sqrt(D) * z / ||z||: unit length on CLIP's sphere, scaled so each coordinate has variance
near 1 like the diffusion's noise.

- ``PriorMLP``                      x0-predicting denoiser of embeddings: (z_noisy (B, D), t (B,), z_text (B, D)) -> (B, D)
- ``prior_loss``                    E ||z_i - f(z_i^(t), t, z_t)||^2
- ``EmbeddingConditionalUNet``      the course's U-Net, temb = MLP(t) + W z_i (or a learned null vector)
- ``scaled``                        sqrt(D) * z / ||z||

Shapes: B batch, D CLIP width (64).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.diffusion.schedule import NoiseSchedule
from course_lib.diffusion.unet import UNet, sinusoidal_embedding
from course_lib.training import mean_of, run_steps


def scaled(z: Tensor) -> Tensor:
    """(B, D) -> sqrt(D) * z / ||z||: on the unit sphere, times sqrt(D)."""
    return F.normalize(z, dim=-1) * math.sqrt(z.shape[-1])


class PriorMLP(nn.Module):
    """f(z_noisy, t, z_text) -> the clean image embedding (B, D): an MLP with residual blocks on the concatenation
    [z_noisy, z_text, sinusoids(t)]."""

    def __init__(self, dim: int = 64, hidden: int = 512, depth: int = 4):
        super().__init__()
        self.dim = dim
        self.inp = nn.Linear(3 * dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(),
                                                  nn.Linear(hidden, hidden)) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, dim))

    def forward(self, z_noisy: Tensor, t: Tensor, z_text: Tensor) -> Tensor:
        B, D = z_noisy.shape
        if D != self.dim or z_text.shape != (B, D) or t.shape != (B,):
            raise ValueError(f"expected z_noisy (B, {self.dim}), t (B,), z_text (B, {self.dim}); got "
                             f"{tuple(z_noisy.shape)}, {tuple(t.shape)}, {tuple(z_text.shape)}")
        h = self.inp(torch.cat([z_noisy, z_text, sinusoidal_embedding(t, D).to(z_noisy.dtype)], -1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def prior_loss(prior: PriorMLP, schedule: NoiseSchedule, z_image: Tensor, z_text: Tensor,
               generator: torch.Generator | None = None) -> Tensor:
    """Sec. 2.2: t ~ U{0..T-1}, z^(t) = q_sample(z_i, t, eps), loss = mean ||z_i - f(z^(t), t, z_t)||^2 (per
    coordinate). z_image, z_text (B, D), already ``scaled``."""
    B = len(z_image)
    t = torch.randint(0, schedule.T, (B,), generator=generator).to(z_image.device)
    eps = torch.randn(z_image.shape, generator=generator).to(z_image)
    return (prior(schedule.q_sample(z_image, t, eps), t, z_text) - z_image).pow(2).mean()


def eps_from_x0(schedule: NoiseSchedule, x0: Tensor, t: int, xt: Tensor) -> Tensor:
    """The noise implied by a clean prediction: eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t) (Ho et al. Eq. 4
    solved for eps), so an x0-predicting model can take ``NoiseSchedule.ddim_step``."""
    abar = schedule.alpha_bar[t]
    return (xt - abar.sqrt() * x0) / (1 - abar).sqrt()


class EmbeddingConditionalUNet(UNet):
    """eps_theta(x_t, t, z_i): the course's U-Net with a projection of the image embedding added to the time
    embedding; rows of ``keep`` that are False get the learned ``null`` vector instead (classifier-free guidance).

    x (B, C, H, W), t (B,) or a scalar, z (B, D) (``scaled``), keep (B,) bool or None (all kept) -> (B, C, H, W)."""

    def __init__(self, emb_dim: int = 64, in_channels: int = 1, channels: tuple[int, ...] = (32, 64, 64),
                 attention: tuple[bool, ...] = (False, False, True), heads: int = 4, groups: int = 8):
        super().__init__(in_channels, channels, attention, heads, groups)
        D = self.time_mlp[-1].out_features
        self.emb_dim = emb_dim
        self.emb_proj = nn.Linear(emb_dim, D)
        self.null = nn.Parameter(torch.zeros(D))

    def forward(self, x: Tensor, t: Tensor | float, z: Tensor, keep: Tensor | None = None) -> Tensor:
        t = self.check(x, t)                                                    # (B,)
        B = x.shape[0]
        if not isinstance(z, Tensor) or z.shape != (B, self.emb_dim):
            raise ValueError(f"expected z of shape ({B}, {self.emb_dim}), got {tuple(getattr(z, 'shape', ()))}")
        temb = self.time_mlp(sinusoidal_embedding(t, self.channels[0]).to(x.dtype))    # (B, D)
        cond = self.emb_proj(z.to(x.dtype))                                              # (B, D)
        if keep is not None:
            cond = torch.where(keep.to(x.device)[:, None], cond, self.null.to(x.dtype))
        return self.trunk(x, temb + cond)


# ---------------------------------------------------------------------------------------------- training


@torch.no_grad()
def clip_embeddings(clip, images: Tensor, ids: Tensor, mask: Tensor, batch_size: int = 1000) -> tuple[Tensor, Tensor]:
    """``scaled`` CLIP image and text embeddings of paired images (N, 1, 28, 28) and captions (N, L): (N, D) each."""
    dev = next(clip.parameters()).device
    zi = torch.cat([clip.encode_image(images[i:i + batch_size].to(dev)).cpu() for i in range(0, len(images), batch_size)])
    zt = torch.cat([clip.encode_text(ids[i:i + batch_size].to(dev), mask[i:i + batch_size].to(dev)).cpu()
                    for i in range(0, len(ids), batch_size)])
    return scaled(zi), scaled(zt)


def _caption_embeddings(clip, n: int, split: str) -> tuple[Tensor, Tensor, object]:
    from course_lib.text import Tokenizer, caption_dataset

    data = caption_dataset(n, split, seed=0)
    ids, mask = Tokenizer.for_captions().encode_batch(data.captions, 16)
    zi, zt = clip_embeddings(clip, data.images, ids, mask)
    return zi, zt, data


def train_prior(prior: PriorMLP, clip, steps: int, batch_size: int = 256, lr: float = 3e-4, state=None,
                progress: bool = True, seed: int = 0) -> dict:
    """The prior on the frozen CLIP's embeddings of 60,000 captioned training pairs. Metrics: on 2,000 test captions,
    the cosine similarity to the true image embedding of the prior's sample (DDIM, 50 steps) and of the caption's
    own text embedding (the baseline)."""
    dev = next(prior.parameters()).device
    schedule = NoiseSchedule(1000).to(dev)
    zi, zt, _ = _caption_embeddings(clip, 60_000, "train")

    def batch(g):
        idx = torch.randint(len(zi), (batch_size,), generator=g)
        return prior_loss(prior, schedule, zi[idx].to(dev), zt[idx].to(dev), g)

    result = run_steps(prior, steps, batch, lr, clip_grad=1.0, state=state, desc="DALL-E 2 prior", progress=progress,
                       seed=seed, config={"batch_size": batch_size})
    losses, seconds = result["losses"], result["seconds"]
    zi_test, zt_test, _ = _caption_embeddings(clip, 2_000, "test")
    z = sample_prior(prior, schedule, zt_test.to(dev), 50, torch.Generator().manual_seed(1)).cpu()
    return {"steps": steps, "batch_size": batch_size,
            "cos_prior_2000": round(float(F.cosine_similarity(z, zi_test).mean()), 4),
            "cos_text_baseline_2000": round(float(F.cosine_similarity(zt_test, zi_test).mean()), 4),
            "loss_first200": mean_of(losses, first=200), "loss_last200": mean_of(losses, last=200),
            "seconds": round(seconds, 1)}


@torch.no_grad()
def sample_prior(prior: PriorMLP, schedule: NoiseSchedule, z_text: Tensor, steps: int = 50,
                 generator: torch.Generator | None = None) -> Tensor:
    """DDIM (eta = 0) from noise to an image embedding for each caption embedding (B, D) -> ``scaled`` (B, D)."""
    from course_lib.diffusion.schedule import ddim_timesteps

    z = torch.randn(z_text.shape, generator=generator).to(z_text)
    k = schedule.T // steps
    for t in ddim_timesteps(schedule.T, steps):
        x0 = prior(z, torch.full((len(z),), t, device=z.device), z_text)
        z = schedule.ddim_step(eps_from_x0(schedule, x0, t, z), t, t - k, z)
    return scaled(z)


def train_decoder(model: EmbeddingConditionalUNet, clip, steps: int, batch_size: int = 64, lr: float = 5e-4,
                  p_uncond: float = 0.1, state=None, progress: bool = True, seed: int = 0) -> dict:
    """L_simple of the decoder on 60,000 captioned training images, conditioned on their (frozen) CLIP image
    embeddings, the embedding replaced by the null vector with probability ``p_uncond``."""
    from course_lib.diffusion.train import to_model

    dev = next(model.parameters()).device
    schedule = NoiseSchedule(1000).to(dev)
    zi, _, data = _caption_embeddings(clip, 60_000, "train")
    x_all = to_model(data.images)

    def batch(g):
        idx = torch.randint(len(zi), (batch_size,), generator=g)
        x0, z = x_all[idx].to(dev), zi[idx].to(dev)
        keep = (torch.rand(batch_size, generator=g) >= p_uncond).to(dev)
        t = torch.randint(0, schedule.T, (batch_size,), generator=g).to(dev)
        eps = torch.randn(x0.shape, generator=g).to(dev)
        return (eps - model(schedule.q_sample(x0, t, eps), t, z, keep)).pow(2).mean()

    result = run_steps(model, steps, batch, lr, clip_grad=1.0, state=state, desc="DALL-E 2 decoder", progress=progress,
                       seed=seed, config={"batch_size": batch_size, "p_uncond": p_uncond})
    losses, seconds = result["losses"], result["seconds"]
    return {"steps": steps, "batch_size": batch_size,
            "loss_first500": mean_of(losses, first=500), "loss_last500": mean_of(losses, last=500),
            "seconds": round(seconds, 1)}
