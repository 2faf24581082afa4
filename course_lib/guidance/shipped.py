"""Chapters 14 and 15's shipped checkpoints: a class-conditional DDPM trained for classifier-free guidance, the
noisy classifier p(y | x_t, t) for classifier guidance of chapter 13's unconditional ``ddpm``, and the latent
text-to-image diffusion model ``ldm_text``.

``ddpm_cond`` is chapter 13's U-Net (channels 16, 32, 64; attention at 7x7; 0.77M parameters) with a class
embedding added to the time embedding, trained like ``ddpm`` (20,000 steps of batch 64, Adam 5e-4 after 200
warm-up steps, clipping at 1, EMA 0.999) with the label dropped to the null token for 10 % of the examples
(Ho & Salimans 2022). Its manifest keeps, for guidance scales 0, 1, 1.5, 2 and 3, the FID of 1,000 DDIM-50 samples
(100 of each class; x0 clipped) against 1,000 test images and the judge's accuracy (sample class = condition).
``noisy_classifier`` is ``NoisyClassifier`` (0.1M parameters), 3,000 steps of batch 128; its manifest keeps
its accuracy on noisy test images at a few t.
``ldm_text`` is ``LatentTextDenoiser`` (width 64, 3 blocks) on chapter 08's tokenizer latents of 60,000 captioned
training images (z_e before quantization, 16 x 7 x 7) mapped by ``LatentPCA`` to their top 2 channel axes, whitened
(2 x 7 x 7: the 16 channels hold 99.8 % of their variance in two directions), 12,000 steps of batch 64 with the
caption dropped to the empty one for 10 %; its manifest keeps, for 1,000 test captions at guidance scales 1 and 3,
the caption judge's class accuracy, the measured size, brightness and position against the caption, FID against
the captioned test images and the sampling seconds per image. (Diffusing all 16 channels, scaled by one global
factor, the same denoiser barely beat the best linear one and matched the caption's class in 15-18 % of samples.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from course_lib.diffusion.schedule import NoiseSchedule
from course_lib.diffusion.train import DDPMTrainConfig, to_model, train_loop
from course_lib.guidance.guidance import ClassConditionalUNet, NoisyClassifier
from course_lib.guidance.latent import LatentTextDenoiser, decode_latents, latent_train_step, sample_latents
from course_lib.guidance.train import (
    ClassifierTrainConfig,
    CondDDPMTrainConfig,
    sample_cfg,
    train_cond_ddpm,
    train_noisy_classifier,
)
from course_lib.profiles import resolve

@dataclass
class LatentTrainConfig(DDPMTrainConfig):
    steps: int = 12_000           # of batch 64 (ddpm: 5,000): a step costs about a fifth of the pixel U-Net's
    p_uncond: float = 0.1         # the caption dropped to the empty one, for classifier-free guidance


CHANNELS = (16, 32, 64)
ATTENTION = (False, False, True)
SHIPPED = {"ddpm_cond": CondDDPMTrainConfig(steps=20_000), "noisy_classifier": ClassifierTrainConfig(),
           "ldm_text": LatentTrainConfig()}
LATENT = {"latent_channels": 2, "width": 64, "depth": 3,       # ldm_text's denoiser on the top 2 axes (whitened)
          "autoencoder_channels": 16}                          # of the tokenizer's 16 x 7 x 7
LDM_SCALES = (1.0, 3.0)
N_EVAL = 1_000
SCALES = (0.0, 1.0, 1.5, 2.0, 3.0)
CLASSIFIER_T = (0, 250, 500, 750, 999)

# Without a shipped or cached checkpoint the same models train this long (smoke: only so that every cell runs):
# profile -> (steps, samples for the metrics); None: the shipped spec's.
FALLBACK = {"smoke": (3, 10), "cpu": (300, 200), "gpu": (None, N_EVAL)}


def build(name: str) -> nn.Module:
    if name == "ldm_text":
        from course_lib.text import Tokenizer

        return LatentTextDenoiser(len(Tokenizer.for_captions()), **LATENT)
    if name == "ddpm_cond":
        return ClassConditionalUNet(10, channels=CHANNELS, attention=ATTENTION)
    if name == "noisy_classifier":
        return NoisyClassifier(10)
    raise ValueError(f"unknown guidance checkpoint {name!r}: expected one of {sorted(SHIPPED)}")


def _cond_metrics(model: ClassConditionalUNet, n: int, scales: tuple[float, ...] = SCALES) -> dict:
    """FID against n test images and the judge's accuracy, for n samples (n / 10 per class) at each scale."""
    from course_lib import metrics
    from course_lib.data import fashion_mnist

    labels = torch.arange(n) % 10
    real = metrics.gaussian(metrics.features(fashion_mnist("test").subset(n, seed=0).images))
    out = {}
    for s in scales:
        feats = metrics.features(sample_cfg(model, NoiseSchedule(), labels, s, steps=50, seed=1))
        out[f"fid_{n}_scale{s:g}"] = round(metrics.frechet_distance(*metrics.gaussian(feats), *real), 3)
        out[f"judge_acc_{n}_scale{s:g}"] = round(float((metrics.judge_labels(feats=feats) == labels).float().mean()), 4)
    return out


def extend_cond_metrics(scales: tuple[float, ...], n: int = N_EVAL) -> dict:
    """Measure the shipped ``ddpm_cond`` at more guidance scales exactly as its training measured SCALES (the same
    labels, noise, sampler and test images) and merge them into its manifest entry. -> the new metrics."""
    from course_lib import checkpoints

    model = load_guidance_model("ddpm_cond", "cpu", profile="cpu")
    new = _cond_metrics(model, n, scales)
    checkpoints.update_metrics("ddpm_cond", new)
    return new


@torch.no_grad()
def _classifier_metrics(model: nn.Module, n: int) -> dict:
    """Accuracy of p(y | x_t, t) on n noisy test images at each t of CLASSIFIER_T (fixed noise, seed 0)."""
    from course_lib.data import fashion_mnist

    test = fashion_mnist("test").subset(n, seed=0)
    x0, schedule = to_model(test.images), NoiseSchedule()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    model.eval()
    return {f"acc_{n}_t{t}": round(float((model(schedule.q_sample(x0, t, eps), t).argmax(1) == test.labels)
                                         .float().mean()), 4) for t in CLASSIFIER_T}


def caption_latents(n: int, split: str, seed: int = 0):
    """The captioned images ``caption_dataset(n, split, seed)`` through the frozen ``vq_tokenizer`` (chapter 08):
    (latents z_e (n, 16, 7, 7) unscaled, ids (n, 16), mask (n, 16), the CaptionSet)."""
    from course_lib.text import Tokenizer, caption_dataset
    from course_lib.vq import load_tokenizer

    data = caption_dataset(n, split, seed)
    tok = load_tokenizer(device="cpu")
    with torch.no_grad():
        z = torch.cat([tok.encode(data.images[i:i + 2_000]) for i in range(0, n, 2_000)])
    ids, mask = Tokenizer.for_captions().encode_batch(data.captions)
    return z, ids, mask, data


def _ldm_metrics(model: LatentTextDenoiser, n: int, profile: str = "auto") -> dict:
    """For n test captions, one sample each at each of LDM_SCALES (DDIM-50): the caption judge's class accuracy,
    the attributes measured on the image against the caption, FID against the n captioned test images, and the
    sampling seconds per image (latent steps and decoding)."""
    import time

    from course_lib import metrics
    from course_lib.text import Tokenizer, attribute_agreement, measure_attributes
    from course_lib.text.shipped import load_caption_judge
    from course_lib.training import predict
    from course_lib.vq import load_tokenizer

    _, ids, mask, test = caption_latents(n, "test", seed=0)
    judge, tok = load_caption_judge(device="cpu", profile=profile), load_tokenizer(device="cpu", profile=profile)
    real = metrics.gaussian(metrics.features(test.images))
    null = Tokenizer.for_captions().encode("")
    out = {}
    for s in LDM_SCALES:
        start = time.perf_counter()
        z = sample_latents(model, NoiseSchedule(), ids, mask, null, s, (LATENT["latent_channels"], 7, 7), steps=50, seed=1)
        images = decode_latents(tok, model.pca.decode(z))
        out[f"seconds_per_image_scale{s:g}"] = round((time.perf_counter() - start) / n, 4)
        out[f"class_acc_{n}_scale{s:g}"] = round(float((predict(judge, images).argmax(1) == test.labels).double().mean()), 4)
        agree = attribute_agreement(measure_attributes(images), test.captions)
        out |= {f"{k}_acc_{n}_scale{s:g}": round(v, 4) for k, v in agree.items()}
        out[f"fid_{n}_scale{s:g}"] = round(metrics.frechet_distance(*metrics.gaussian(metrics.features(images)), *real), 3)
    return out


def train_ldm(model: LatentTextDenoiser, cfg: LatentTrainConfig, state=None, progress: bool = True,
              n_eval: int = N_EVAL, profile: str = "auto") -> dict:
    """Latent diffusion on the captioned training images' tokenizer latents through ``model.pca`` (fitted here:
    the top channel axes, whitened), caption dropped with probability cfg.p_uncond; it ends holding the EMA
    weights. Then ``_ldm_metrics``."""
    from course_lib.text import Tokenizer

    z, ids, mask, _ = caption_latents(cfg.n_train, "train", seed=cfg.seed)
    model.pca.fit(z)
    dev = next(model.parameters()).device
    schedule, null = NoiseSchedule(cfg.T).to(dev), Tokenizer.for_captions().encode("")
    losses, seconds = train_loop(
        model, cfg, (model.pca.encode(z).to(dev), ids.to(dev), mask.to(dev)),
        lambda m, opt, zb, ib, mb, g: latent_train_step(m, opt, schedule, zb, ib, mb, null, g, cfg.p_uncond, cfg.grad_clip),
        state=state, progress=progress, desc="latent diffusion")
    k = max(1, cfg.steps // 10)
    return {"seconds": seconds, "steps": cfg.steps, "pca_explained": round(float(model.pca.explained()[:model.latent_channels].sum()), 5),
            "loss_first": float(losses[:k].mean()), "loss_last": float(losses[-k:].mean())} | \
        _ldm_metrics(model, n_eval, profile)


def train_shipped(model: nn.Module, name: str, cfg=None, progress: bool = True, n_eval: int = N_EVAL,
                  profile: str = "auto") -> dict:
    """Train ``model`` with the spec of ``name`` (resumable: ``checkpoints.state_path(name)``), then measure it."""
    from course_lib.checkpoints import state_path

    cfg = cfg or SHIPPED[name]
    state = state_path(name) if cfg == SHIPPED[name] else None      # shorter fallback runs are not resumed
    torch.manual_seed(cfg.seed)
    if name == "ldm_text":
        return train_ldm(model, cfg, state=state, progress=progress, n_eval=n_eval, profile=profile)
    if name == "ddpm_cond":
        return train_cond_ddpm(model, cfg, state=state, progress=progress) | _cond_metrics(model, n_eval)
    return train_noisy_classifier(model, cfg, state=state, progress=progress) | _classifier_metrics(model, n_eval)


def load_guidance_model(name: str, device: torch.device | str = "cpu", profile: str = "auto") -> nn.Module:
    """``ddpm_cond``, ``noisy_classifier`` or ``ldm_text`` in eval mode (EMA weights), its manifest entry as
    ``.checkpoint_entry`` (shipped, else cached, else trained here for the profile's ``FALLBACK`` length)."""
    from course_lib import checkpoints

    model = build(name).to(device)
    steps, n_eval = FALLBACK[resolve(profile)]
    spec = SHIPPED[name]
    cfg = replace(spec, steps=steps or spec.steps, warmup=min(spec.warmup, max(1, (steps or spec.steps) // 5)))
    if name == "ldm_text" and steps:               # a fallback run encodes only as many images as it can use
        cfg = replace(cfg, n_train=min(spec.n_train, 64 * cfg.batch_size * max(1, steps // 100)))
    model.checkpoint_entry = checkpoints.load(
        name, model, lambda m: train_shipped(m, name, cfg, progress=False, n_eval=n_eval, profile=profile),
        profile=profile)
    return model.eval()


def _make(name: str):
    def make():
        return build(name), lambda m: train_shipped(m, name)
    return make


CHECKPOINTS = {name: _make(name) for name in SHIPPED}     # for ``python -m course_lib checkpoints``
