"""Notebook 15 (latent diffusion), kept as the script that writes it: `python drafts/build_15_latent_diffusion.py`
writes notebooks/15_latent_diffusion.ipynb (or the path given). The prose that discusses measured numbers
(RECON_DISCUSSION, PCA_DISCUSSION, SAMPLES_DISCUSSION, EVAL_DISCUSSION, SPEED_DISCUSSION, MAPS_DISCUSSION and
PREDICTION) is in drafts/fill_15.py (FILL_FILE), written after a cpu run and checked against its outputs; rebuild,
then re-execute with `python -m course_lib run --profile cpu --inplace`."""
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

sys.path.insert(0, ".")
from course_lib.notebook_cells import repository_url, setup_cell  # noqa: E402

URL = repository_url(Path("."))
OWNER_REPO = URL.removeprefix("https://github.com/")
NAME = "15_latent_diffusion.ipynb"
FILL = {}
import os
if Path(os.environ.get("FILL_FILE", "drafts/fill_15.py")).exists():
    exec(Path(os.environ.get("FILL_FILE", "drafts/fill_15.py")).read_text(), FILL)

def fill(key, default):
    return FILL.get(key, default)

cells = []
md = lambda s: cells.append(new_markdown_cell(s.strip("\n")))
code = lambda s, tags=None: cells.append(new_code_cell(s.strip("\n"), metadata={"tags": tags or []}))

md(f"""
# 15 · Latent diffusion: text to image through cross-attention

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/{OWNER_REPO}/blob/main/notebooks/{NAME})

The notes' "Stable Diffusion / Latent Diffusion" (Rombach et al. 2022). Chapter 14 conditioned a pixel-space
DDPM on a class id. Here three things change at once, each a bullet of the notes:

1. **A frozen, pretrained autoencoder** $E$, $D$: the diffusion runs on $z = E(x)$ and its samples are decoded by
   $D$. We use chapter 08's VQ-VAE tokenizer: its latent's shape, what it costs in reconstruction, how much it
   compresses.
2. **A caption instead of a class**, read by a text encoder $\\tau_\\theta$ and **cross-attention** in every block of
   the denoiser at every step: queries from the image's positions, keys and values from the caption's tokens.
   You write the attention kernel.
3. **Measured**: does the sample show what the caption says? The caption's class (graded by a classifier of
   captioned images), its size, brightness and position (read back from the pixels), FID, across guidance scales;
   and the time per image against chapter 14's pixel-space model with the same sampler, the chapter's point.

The captions come from `course_lib.text.caption_dataset`: every Fashion-MNIST item is drawn small or large, dark
or light, and, when small, against one side, and its caption says all of it ("a photo of a small dark jacket on the
left"). A model that reads only the garment's name gets the other three wrong half the time or more.

The model sampled from section 4 on is the shipped checkpoint `ldm_text` (`python -m course_lib checkpoints ldm_text`
retrains it; the notebook prints how long it took).
""")
code(setup_cell(URL))
code('PROFILE = "auto"  # smoke | cpu | gpu | auto (gpu with CUDA, else cpu); papermill sets it', ["parameters"])
code("""
import math
import textwrap
import time

import matplotlib.pyplot as plt
import torch.nn.functional as F
from tqdm.auto import tqdm

import course_lib.guidance as guidance
from course_lib import metrics, plots
from course_lib.diffusion import NoiseSchedule, ddim_timesteps
from course_lib.guidance.latent_config import latent_notebook_config
from course_lib.text import Tokenizer, attribute_agreement, caption_dataset, measure_attributes, parse_caption
from course_lib.text.shipped import load_caption_judge
from course_lib.training import predict

cfg = latent_notebook_config(PROFILE)
cfg
""")

md("""
## Captions, and how a sample is graded against one

The grammar has 37 words. The tokenizer maps a caption to `<start>` followed by one id per word, padded to 16
tokens; the mask marks the real tokens. The **empty caption** is `<start>` alone: it plays the null label of
chapter 14's classifier-free guidance, as the empty prompt does in Stable Diffusion.

A sample is graded on what can be measured:

- **class**: `caption_judge`, chapter 01's ResNet trained on captioned images (the course's judge, trained on plain
  Fashion-MNIST, misreads small and rescaled items: its accuracy is printed beside it);
- **size, brightness, position**: `measure_attributes` reads them back from the pixels (bounding box, intensity,
  centroid) and `attribute_agreement` compares them with the caption's words.

Grading the real captioned test images first gives the ceiling of each number.
""")
code("""
tokenizer = Tokenizer.for_captions()
null = tokenizer.encode("")                                        # the empty caption: ids (16,), mask (16,)
test = caption_dataset(cfg.n_eval, "test", seed=0)                 # the captions every sample is graded against
ids, mask = tokenizer.encode_batch(test.captions[:1])
print(f"{test.captions[0]!r}\\n  ids  {ids[0].tolist()}\\n  mask {mask[0].int().tolist()}")
print(f"the empty caption: ids {null[0].tolist()[:3]}..., {int(null[1].sum())} token")
plots.image_grid(test.images[:12], [textwrap.fill(c, 26) for c in test.captions[:12]], ncols=6, scale=2.2)
plt.show()

judge = load_caption_judge(DEVICE, PROFILE)
names = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")

def grade(images: torch.Tensor, captions: list[str], labels: torch.Tensor) -> dict:
    '''images (N, 1, 28, 28) in [0, 1] against their captions: the caption judge's class accuracy and the share of
    images whose measured size, brightness and position is the caption's.'''
    hit = predict(judge, images).argmax(1) == labels
    return {"class": float(hit.double().mean())} | attribute_agreement(measure_attributes(images), captions)

real = grade(test.images, test.captions, test.labels)
course_judge_acc = float((metrics.judge_labels(test.images) == test.labels).double().mean())
print(f"real captioned test images ({cfg.n_eval}): caption judge {real['class']:.3f} (the course's judge: "
      f"{course_judge_acc:.3f}); measured size {real['size']:.3f}, brightness {real['brightness']:.3f}, "
      f"position {real['position']:.3f}")
for k, v in real.items():
    record(f"real_{k}_acc", v)
record("course_judge_on_captioned_acc", course_judge_acc)
""")

md("""
The attribute grader agrees with the rendering on nearly every real image, and the caption judge reads the class
of most of them; those are the ceilings for the samples below. Chance is 10 % for the class, 50 % for size and
brightness, 25 % for the position.

## The autoencoder's latent

Latent diffusion trains nothing new to compress: $E$ and $D$ come from a perceptual-compression stage trained
before (Rombach et al. Sec. 3.1) and stay frozen. Ours is chapter 08's VQ-VAE tokenizer (`vq_tokenizer`, trained
on plain Fashion-MNIST): two stride-2 convolutions, a downsampling factor $f = 4$, so a 28 × 28 image becomes a
7 × 7 grid of 16-dimensional vectors $z_e$. Rombach et al.'s VQ-regularized autoencoders keep the quantizer in
the **decoder**: the diffusion model works on $z_e$, and its sample is snapped to the nearest codebook vectors
before $D$ (`decode_latents`).

What does the latent save, and what does it cost? Three counts of its size, and the reconstruction error on
captioned test images — which the tokenizer never saw in training — against the simplest latent of the same
grid: the image averaged over 4 × 4 blocks (49 numbers) and upsampled back.

First by hand: the quantized latent is 7 × 7 tokens, each naming one of the codebook's 128 entries. How many
bits is that per image (8-bit pixels: 6,272)?
""")
code("""
from course_lib.guidance.checks import check_latent_bits

# One image's tokens: how many bits? (a number)
### BEGIN SOLUTION
my_bits = 7 * 7 * math.log2(128)
### END SOLUTION
check_latent_bits(my_bits)
""")
code("""
from course_lib.guidance.latent import decode_latents
from course_lib.vq import load_tokenizer

tok = load_tokenizer(DEVICE, PROFILE)
recon_set = caption_dataset(cfg.n_recon, "test", seed=1)
with torch.no_grad():
    z_e = torch.cat([tok.encode(recon_set.images[i:i + 1_000].to(DEVICE)).cpu() for i in range(0, cfg.n_recon, 1_000)])
recon = decode_latents(tok, z_e)                                   # snapped to the codebook, then D
pooled = F.interpolate(F.avg_pool2d(recon_set.images, 4), size=28, mode="bilinear", align_corners=False)
C = tok.dim
pixels, latent_numbers, positions = 28 * 28, z_e[0].numel(), z_e.shape[-1] * z_e.shape[-2]
bits_image, bits_tokens = pixels * 8, positions * math.log2(tok.num_codes)
print(f"image x: (1, 28, 28), {pixels} numbers  ->  latent z_e: {tuple(z_e.shape[1:])}, {latent_numbers} numbers")
print(f"  positions a denoiser computes on: {pixels} -> {positions} ({pixels / positions:.0f}x fewer)")
print(f"  numbers per image:                {pixels} -> {latent_numbers} ({pixels / latent_numbers:.0f}x: the 16 channels "
      f"hold what the positions lost)")
print(f"  bits after quantization:          {bits_image} (8-bit pixels) -> {bits_tokens:.0f} (49 tokens of "
      f"{math.log2(tok.num_codes):.0f} bits; {bits_image / bits_tokens:.0f}x)")

real_stats = metrics.gaussian(metrics.features(recon_set.images))
other = caption_dataset(cfg.n_recon, "test", seed=2).images        # other captioned test images: FID's floor
fid = lambda images: metrics.frechet_distance(*metrics.gaussian(metrics.features(images)), *real_stats)
recon_mse, pooled_mse = float(F.mse_loss(recon, recon_set.images)), float(F.mse_loss(pooled, recon_set.images))
recon_fid, pooled_fid, floor_fid = fid(recon), fid(pooled), fid(other)
print(f"reconstruction of {cfg.n_recon} captioned test images:    MSE {recon_mse:.4f}, FID {recon_fid:.2f}")
print(f"4x4 block means, upsampled (49 numbers):  MSE {pooled_mse:.4f}, FID {pooled_fid:.2f}")
print(f"FID floor (other captioned test images):             {floor_fid:.2f}")
record("compression_positions", pixels / positions)
record("compression_bits", bits_image / bits_tokens)
record("recon_mse", recon_mse)
record("recon_fid", recon_fid)
record("pooled_mse", pooled_mse)
record("pooled_fid", pooled_fid)
record("recon_fid_floor", floor_fid)
plots.image_grid(torch.cat([recon_set.images[:8], recon[:8], pooled[:8]]),
                 ["x"] + [""] * 7 + ["D(quantize(E(x)))"] + [""] * 7 + ["4x4 block means"] + [""] * 7, ncols=8, scale=1.1)
plt.show()
""")
md(fill("RECON_DISCUSSION", "RECON_DISCUSSION"))

md("""
### How many of the 16 channels carry anything?

A diffusion model spends its loss equally on every number it denoises. Before training one on $z_e$, look at how
the 16 channels vary together: the covariance of the 16-vectors over all positions of the training latents, and
its eigenvalues — principal component analysis, channel by channel (`course_lib.guidance.LatentPCA`). If the
variance sits in a few directions, the other channels are (almost) constant, and noise added there is predicted
exactly by the best *linear* denoiser: a model trained on all 16 learns little beyond that. Below, each axis's
share of the variance, and the reconstruction when only the top $k$ axes of $z_e$ are kept (the others set to
their mean), graded by the judge of captioned images and by FID.
""")
code("""
from course_lib.guidance.latent import LatentPCA
from course_lib.guidance.shipped import caption_latents

z_fit, ids_train, mask_train, _ = caption_latents(cfg.n_train_latents, "train", seed=0)   # E(x) of training images
pca16 = LatentPCA(C, C).fit(z_fit)
share = pca16.explained()
judge_acc = lambda images: grade(images, recon_set.captions, recon_set.labels)["class"]
rows = {}
for k in (1, 2, 3, C):
    pk = LatentPCA(C, k).fit(z_fit)
    images_k = decode_latents(tok, pk.decode(pk.encode(z_e)))
    rows[k] = (judge_acc(images_k), fid(images_k))
fig, ax = plt.subplots(figsize=(6, 3))
ax.bar(range(1, C + 1), share.numpy(), color="tab:blue")
ax.set_yscale("log"); ax.set_ylim(1e-7, 1.5)
ax.set(xlabel="channel axis (principal component)", ylabel="share of the variance (log)", xticks=range(1, C + 1),
       title=f"the {C} channels of z_e: {float(share[:2].sum()):.1%} of the variance on 2 axes")
plt.tight_layout(); plt.show()
print(f"share of the variance on the top axes: " + ", ".join(f"{float(share[:k].sum()):.4f} (k={k})" for k in (1, 2, 3)))
print(f"{'axes kept':>10s} {'judge accuracy':>15s} {'FID':>7s}   ({cfg.n_recon} captioned test images)")
for k, (acc, f) in rows.items():
    print(f"{k:10d} {acc:15.3f} {f:7.2f}")
print(f"real images: judge accuracy {judge_acc(recon_set.images):.3f}")
record("pca_share_top2", float(share[:2].sum()))
record("pca_judge_acc_k1", rows[1][0])
record("pca_judge_acc_k2", rows[2][0])
record("pca_judge_acc_k16", rows[C][0])
record("pca_fid_k2", rows[2][1])
""")
md(fill("PCA_DISCUSSION", "PCA_DISCUSSION"))

md("""
## Cross-attention: the image asks, the caption answers

In every block of the denoiser, the feature map $\\varphi(z_t)$ (one vector per latent position) reads the caption's
token features $\\tau_\\theta(y)$ (one per token) through attention (Rombach et al. Eq. 1 and Sec. 3.3):

$$\\text{Attention}(Q, K, V) = \\text{softmax}\\!\\left(\\frac{Q K^\\top}{\\sqrt d}\\right) V,\\qquad
Q = W_Q\\,\\varphi(z_t),\\quad K = W_K\\,\\tau_\\theta(y),\\quad V = W_V\\,\\tau_\\theta(y).$$

$Q$ has one row per **position** (49 here), $K$ and $V$ one row per **token** (16): the scores are a
positions × tokens matrix, and the softmax runs over the tokens, so each position's weights over the caption's words
sum to 1. Padding tokens must get weight exactly 0: their scores are set to $-\\infty$ before the softmax.
That matrix of weights is what the cross-attention maps at the end of the notebook draw.

### Exercise: masked cross-attention

Write the kernel for one batch of heads. `mask` is `None` (keep every token) or a `(B, M)` boolean tensor,
`True` for a real token.
""")
code("""
from course_lib.guidance.checks import check_cross_attention_kernel


def my_cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    '''q (B, h, N, d) from the image's N positions; k, v (B, h, M, d) from the caption's M tokens;
    mask (B, M) bool or None -> (B, h, N, d).'''
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])                 # (B, h, N, M)
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))  # padding: weight 0
    return scores.softmax(-1) @ v                                             # (B, h, N, d)
    ### END SOLUTION


check_cross_attention_kernel(my_cross_attention)
""")
md("""
The layer around the kernel, `course_lib.guidance.CrossAttention`, adds the three projections and an output
projection (as diffusers' `Attention(query_dim, cross_attention_dim=...)` does). Its forward pass uses PyTorch's
fused `F.scaled_dot_product_attention`; the written-out kernel gives the same numbers and also returns the
weights. Checked here on random inputs: the two paths, diffusers' layer with the same weights (float64), and
that padding a caption with more pad tokens changes nothing.
""")
code("""
torch.manual_seed(0)
layer = guidance.CrossAttention(query_dim=64, context_dim=64, heads=4, dim_head=16).double()
x, context = torch.randn(3, 49, 64, dtype=torch.float64), torch.randn(3, 16, 64, dtype=torch.float64)
keep = torch.arange(16)[None] < torch.tensor([[16], [9], [1]])                 # captions of 15, 8 and 0 words
with torch.no_grad():
    fused = layer(x, context, keep)
    written, weights = layer(x, context, keep, return_attention=True)            # weights (3, 4, 49, 16)
    short = layer(x[1:2], context[1:2, :9], keep[1:2, :9])                       # caption 2 without its pads
scale = float(fused.abs().max())
xattn_paths = float((fused - written).abs().max()) / scale
xattn_pads = float((fused[1:2] - short).abs().max()) / scale
print(f"fused vs written-out: max |difference| / max |output| = {xattn_paths:.1e}")
print(f"7 pads more or fewer: {xattn_pads:.1e};  weight on pads: {float(weights[~keep[:, None, None, :].expand_as(weights)].abs().max()):.0f};  "
      f"weights sum to 1 per position: {bool(torch.allclose(weights.sum(-1), torch.ones(()).double()))}")
try:
    from diffusers.models.attention_processor import Attention
    theirs = Attention(64, cross_attention_dim=64, heads=4, dim_head=16).double()
    for n in ("to_q", "to_k", "to_v"):
        getattr(theirs, n).weight.data.copy_(getattr(layer, n).weight)
    theirs.to_out[0].weight.data.copy_(layer.to_out.weight)
    theirs.to_out[0].bias.data.copy_(layer.to_out.bias)
    with torch.no_grad():       # diffusers takes the mask as an additive bias: 0 kept, -10000 dropped
        ref = theirs(x, encoder_hidden_states=context, attention_mask=(1 - keep.double())[:, None, :] * -1e4)
    xattn_diffusers = float((fused - ref).abs().max()) / scale
    print(f"against diffusers' Attention with the same weights: {xattn_diffusers:.1e}")
    record("xattn_diffusers_rel_err", xattn_diffusers)
except ImportError:
    print("diffusers is not installed (pip install diffusers): the comparison with its Attention is skipped")
record("xattn_paths_rel_err", xattn_paths)
record("xattn_pads_rel_err", xattn_pads)
""")

md("""
## The denoiser, and its training

`LatentTextDenoiser` is $\\epsilon_\\theta(z_t, t, \\tau_\\theta(y))$. A 7 × 7 latent leaves a U-Net almost nothing to
halve, so it keeps the latent's resolution and stacks three of LDM's blocks: a residual block that receives the
time embedding, self-attention over the 49 positions, cross-attention to the caption. The caption also enters
once globally: the mean of its token features, projected, is **added to the time embedding** (as Imagen and SDXL
do with a pooled text embedding). The shipped model got there in three versions, each trained on the same
captions: with cross-attention alone and all 16 channels of $z_e$ (divided by one global standard deviation), its
samples matched their caption's class at chance (0.11 and 0.12 on 1,000 test captions at scales 1 and 3) while
following size and brightness; with the pooled caption added, 15-18 %; and its loss ended barely below that of the
best *linear* denoiser for data of the same covariance (0.033 against 0.0351, `benchmarks/linear_denoiser_baseline.py`, its result in
`benchmarks/results/linear_denoiser_baseline.json`):
it had learned little beyond the latent's covariance, because 14 of the 16 channels hardly vary (the spectrum above).
On the top 2 axes, whitened, the same network's class accuracy is the one measured below. The text encoder
$\\tau_\\theta$ (two transformer layers over the token embeddings) is **trained with** the denoiser, as in Rombach
et al. Eq. 3 (Stable Diffusion instead uses a frozen, pretrained text encoder: CLIP's, and in version 2 the notes' OpenCLIP).

The loss is chapter 13's $L_\\text{simple}$, on latents:

$$L_{LDM} = \\mathbb{E}_{z_0 = E(x),\\, y,\\, \\epsilon,\\, t}\\,\\big\\|\\epsilon - \\epsilon_\\theta(z_t, t, \\tau_\\theta(y))\\big\\|^2,
\\qquad z_t = \\sqrt{\\bar\\alpha_t}\\, z_0 + \\sqrt{1-\\bar\\alpha_t}\\, \\epsilon,$$

on the latent's top 2 channel axes, each scaled to unit variance: $w = \\Lambda_2^{-1/2} V_2^\\top (z_e - \\mu)$ at every
position, a 2 × 7 × 7 latent (Rombach et al. Sec. 4.3.2 divide the latent by one global standard deviation, because
the noise schedule was made for data of about unit scale; here each axis gets its own), and the caption replaced
by the empty one 10 % of the time
(`drop_caption`), for classifier-free guidance. The visible loop below trains a fresh model for a few steps; the
trivial baseline, $\\epsilon_\\theta = 0$, has loss 1.
""")
code("""
from course_lib.guidance.latent import LatentTextDenoiser, drop_caption
from course_lib.guidance.shipped import LATENT
from course_lib.utils import autocast, backward_step, compile_if_asked

schedule = NoiseSchedule(1000).to(DEVICE)
torch.manual_seed(0)
model = LatentTextDenoiser(len(tokenizer), **LATENT).to(DEVICE)              # model.pca: 16 channels -> 2 axes
z_train = model.pca.fit(z_fit).encode(z_fit)                                 # (N, 2, 7, 7), unit variance per axis
n_text = sum(p.numel() for p in model.text.parameters())
print(f"LatentTextDenoiser: {sum(p.numel() for p in model.parameters()):,} parameters, {n_text:,} of them in the "
      f"text encoder; latents {tuple(z_fit.shape)} -> {tuple(z_train.shape)}, std per axis "
      f"{[round(float(v), 3) for v in z_train.std((0, 2, 3))]}")
compile_if_asked(model, DEVICE)                 # torch.compile with COURSE_COMPILE=1 on a GPU
optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
g = torch.Generator().manual_seed(0)
losses, dropped, start = [], 0, time.perf_counter()
for step in tqdm(range(cfg.train_steps), desc="latent diffusion, Eq. 3"):
    idx = torch.randint(len(z_train), (64,), generator=g)
    z0, ids, mask = z_train[idx].to(DEVICE), ids_train[idx].to(DEVICE), mask_train[idx].to(DEVICE)
    ids, mask = drop_caption(ids, mask, 0.1, *null, generator=g)          # y <- "" with probability 0.1
    dropped += (mask.sum(1) == 1).sum()                                   # on the device: no sync
    t = torch.randint(0, schedule.T, (64,), generator=g).to(DEVICE)
    eps = torch.randn(z0.shape, generator=g).to(DEVICE)
    with autocast(DEVICE):          # mixed precision on a GPU (bfloat16; float16 on a T4), a no-op on the CPU
        loss = (eps - model(schedule.q_sample(z0, t, eps), t, ids, mask)).pow(2).mean()
    backward_step(loss, optimizer, DEVICE, grad_clip=1.0)   # zero_grad, backward, clip, step (float16: scaled)
    losses.append(loss.detach())
losses, dropped = torch.stack(losses).cpu(), int(dropped)                     # read back once
k = max(1, min(10, cfg.train_steps // 4))
print(f"{cfg.train_steps} steps of batch 64 in {time.perf_counter() - start:.0f} s: loss of the first {k} steps "
      f"{float(losses[:k].mean()):.3f}, of the last {k} {float(losses[-k:].mean()):.3f} (predicting 0: 1); captions "
      f"dropped: {dropped / (64 * cfg.train_steps):.1%} (asked: 10 %)")
record("short_run_loss_first", float(losses[:k].mean()))
record("short_run_loss_last", float(losses[-k:].mean()))
record("caption_dropped_frac", dropped / (64 * cfg.train_steps))
""")

md("""
## Caption → image

The shipped `ldm_text` ran the same loop for 12,000 steps (with warm-up and an EMA of the weights, as chapter 13's
`ddpm`) on the latents of 60,000 captioned training images. Sampling is chapter 14's DDIM with classifier-free
guidance, in the latent, then one pass of the decoder:

1. $w_T \\sim \\mathcal N(0, I)$ of shape (2, 7, 7);
2. at each of the DDIM steps, $\\hat\\epsilon = \\epsilon_\\theta(z_t, t, \\varnothing) + s\\,(\\epsilon_\\theta(z_t, t, y) -
   \\epsilon_\\theta(z_t, t, \\varnothing))$, both predictions in one batch, then the DDIM update;
3. $x = D(\\text{quantize}(\\mu + V_2 \\Lambda_2^{1/2} w_0))$: back to the tokenizer's 16 channels, snapped, decoded.
""")
code("""
from course_lib.guidance.shipped import load_guidance_model

ldm = load_guidance_model("ldm_text", DEVICE, PROFILE)
entry = ldm.checkpoint_entry
print(f"ldm_text: {entry['origin']} checkpoint, {entry['metrics']['steps']:,} steps of batch 64, trained "
      f"{entry['metrics'].get('seconds', entry['seconds']) / 60:.0f} min; loss {entry['metrics']['loss_first']:.3f} -> "
      f"{entry['metrics']['loss_last']:.3f} (means of the first and last tenth)")
K_STEP = schedule.T // cfg.sample_steps

@torch.no_grad()
def generate(captions: list[str], scale: float, seed: int = 1, batch_size: int = 250,
             return_latents: bool = False):
    '''One image per caption -> (N, 1, 28, 28) in [0, 1] (and the latents w_0 (N, 2, 7, 7)): DDIM
    (eta = 0) over cfg.sample_steps steps in the latent with eps_u + s (eps_c - eps_u), then the decoder.'''
    ids, mask = tokenizer.encode_batch(captions)                   # (N, 16) each; an unknown word raises
    g, images, latents = torch.Generator().manual_seed(seed), [], []
    for i in range(0, len(captions), batch_size):
        c = ids[i:i + batch_size].to(DEVICE), mask[i:i + batch_size].to(DEVICE)       # the caption
        B = len(c[0])
        u = null[0].expand(B, -1).to(DEVICE), null[1].expand(B, -1).to(DEVICE)        # the empty caption
        z = torch.randn((B, ldm.latent_channels, 7, 7), generator=g).to(DEVICE)       # w_T
        for t in ddim_timesteps(schedule.T, cfg.sample_steps):
            tt = torch.full((B,), t, device=DEVICE)
            if scale in (0, 1):                      # the combination is one of the two predictions: one pass
                eps = ldm(z, tt, *(c if scale == 1 else u))
            else:                                    # both predictions in one batch
                eps_c, eps_u = ldm(torch.cat([z, z]), torch.cat([tt, tt]), torch.cat([c[0], u[0]]),
                                   torch.cat([c[1], u[1]])).chunk(2)
                eps = guidance.cfg(eps_u, eps_c, scale)
            z = schedule.ddim_step(eps, t, t - K_STEP, z)
        latents.append(z.cpu())
        images.append(decode_latents(tok, ldm.pca.decode(z)))       # back to the tokenizer's 16 channels, then D
    return (torch.cat(images), torch.cat(latents)) if return_latents else torch.cat(images)

shown = ["a small dark sneaker on the left", "a photo of a large light dress", "a small light bag at the top",
         "large dark pants", "a picture of a small light ankle boot at the bottom", "an image of a large dark coat",
         "a small light t-shirt on the right", "a large light sandal"]
images = generate([c for c in shown for _ in range(6)], 3.0, seed=2)
plots.image_grid(images, sum(([textwrap.fill(c, 24)] + [""] * 5 for c in shown), []), ncols=6, scale=1.25,
                 suptitle="ldm_text, guidance scale 3: six samples per caption")
plt.show()
""")
md(fill("SAMPLES_DISCUSSION", "SAMPLES_DISCUSSION"))

md("""
## Does the image follow the caption? The guidance sweep

Each of the test captions above is sampled once at each guidance scale, from the same noise, and graded like the
real images. Scale 0 ignores the caption (the empty-caption model): it is the baseline that reading nothing gets.
FID compares the samples with the captioned test images themselves (the caption set's own distribution: half the
items small, all rescaled), with its floor measured between two sets of captioned test images.
""")
code("""
test_stats = metrics.gaussian(metrics.features(test.images))
sweep_floor = metrics.frechet_distance(*metrics.gaussian(metrics.features(caption_dataset(cfg.n_eval, "test", seed=3).images)),
                                       *test_stats)
sweep, samples, latents = {}, {}, {}
for s in cfg.scales:
    samples[s], latents[s] = generate(test.captions, s, return_latents=True)
    sweep[s] = grade(samples[s], test.captions, test.labels)
    sweep[s]["fid"] = metrics.frechet_distance(*metrics.gaussian(metrics.features(samples[s])), *test_stats)
    hist = predict(judge, samples[s]).argmax(1).bincount(minlength=10).double() / cfg.n_eval
    sweep[s]["kl"] = metrics.kl_to_uniform(hist)                # the caption judge's class histogram vs uniform

def tag(s: float) -> str:                                            # 0.5 -> "0p5": a metric name for a scale
    return f"{s:g}".replace(".", "p")

real_hist = test.labels.bincount(minlength=10).double() / cfg.n_eval
se = math.sqrt(0.25 / cfg.n_eval)                                    # the largest standard error of a share
print(f"{cfg.n_eval} test captions, DDIM-{cfg.sample_steps}, one sample each per scale (a share's standard error "
      f"<= {se:.3f}); KL: the caption judge's class histogram against uniform")
print(f"{'':>12s} {'class':>6s} {'size':>6s} {'bright':>6s} {'pos.':>6s} {'FID':>6s} {'KL':>6s}")
for s, r in sweep.items():
    print(f"{'scale ' + format(s, 'g'):>12s} {r['class']:6.3f} {r['size']:6.3f} {r['brightness']:6.3f} "
          f"{r['position']:6.3f} {r['fid']:6.2f} {r['kl']:6.3f}")
    for key, v in r.items():
        record(f"{key}_acc_s{tag(s)}" if key not in ("fid", "kl") else f"{key}_s{tag(s)}", v)
print(f"{'real images':>12s} {real['class']:6.3f} {real['size']:6.3f} {real['brightness']:6.3f} {real['position']:6.3f} "
      f"{sweep_floor:6.2f} {metrics.kl_to_uniform(real_hist):6.3f} (FID: the floor; KL: the captions' own classes)")
record("sweep_fid_floor", sweep_floor)
best = max(sweep, key=lambda s: sweep[s]["class"])
print(f"best class accuracy: {sweep[best]['class']:.3f} at scale {best:g} -> the chapter's cpu target (80 %): "
      f"{'met' if sweep[best]['class'] >= 0.8 else 'not met'}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
xs = list(sweep)
for key, m in (("class", "o"), ("size", "s"), ("brightness", "^"), ("position", "v")):
    line, = axes[0].plot(xs, [sweep[s][key] for s in xs], marker=m, label=key)
    axes[0].errorbar(xs, [sweep[s][key] for s in xs], yerr=[math.sqrt(sweep[s][key] * (1 - sweep[s][key]) / cfg.n_eval)
                                                          for s in xs], fmt="none", color=line.get_color(), capsize=2)
    axes[0].axhline(real[key], color=line.get_color(), ls=":", lw=1)
axes[0].set(xlabel="guidance scale s", ylabel="share of samples that match the caption", ylim=(0, 1.02),
            title="bars: one standard error; dotted: the real images' share")
axes[0].legend(fontsize=8, loc="lower right")
axes[1].plot(xs, [sweep[s]["fid"] for s in xs], marker="o", color="C3", label="samples")
axes[1].axhline(sweep_floor, color="gray", ls="--", lw=1, label=f"floor: test vs test ({sweep_floor:.1f})")
axes[1].set(xlabel="guidance scale s", ylabel="FID against the captioned test images", title="FID")
axes[1].legend(fontsize=8); plt.tight_layout(); plt.show()

cols = list(range(8))
print("the grid's columns, left to right:\\n" + "\\n".join(f"  {j + 1}. {test.captions[j]}" for j in cols))
plots.image_grid(torch.cat([samples[s][cols] for s in cfg.scales]),
                 sum(([f"s = {s:g}"] + [""] * 7 for s in cfg.scales), []), ncols=8, scale=1.1,
                 suptitle="the same noise at each scale; columns: the first 8 test captions (listed above)")
plt.show()
e = entry["metrics"]
n_m = max((int(key.split("_")[2]) for key in e if key.startswith("class_acc_")), default=None)
if n_m:
    print(f"the shipped checkpoint's manifest: {n_m:,} test captions, DDIM-50")
    for s in (1.0, 3.0):
        if f"class_acc_{n_m}_scale{s:g}" in e:
            print(f"  scale {s:g}: class {e[f'class_acc_{n_m}_scale{s:g}']:.3f}, size {e[f'size_acc_{n_m}_scale{s:g}']:.3f}, "
                  f"brightness {e[f'brightness_acc_{n_m}_scale{s:g}']:.3f}, position {e[f'position_acc_{n_m}_scale{s:g}']:.3f}, "
                  f"FID {e[f'fid_{n_m}_scale{s:g}']:.2f}")
            record(f"manifest_class_acc_s{tag(s)}", e[f"class_acc_{n_m}_scale{s:g}"])
            record(f"manifest_fid_s{tag(s)}", e[f"fid_{n_m}_scale{s:g}"])
""")
md(fill("EVAL_DISCUSSION", "EVAL_DISCUSSION"))

md("""
## Latent against pixel diffusion: the time per image

The latent has 49 positions where the image has 784. Chapter 14's `ddpm_cond` is a pixel-space U-Net
(28 → 14 → 7); `ldm_text` computes on 7 × 7 throughout. Their parameter counts are printed below.
Both sample with the same DDIM steps at guidance scale 3 (two predictions per step); the latent model also pays
one pass of the decoder.

Predict before you measure: per image, how much faster is latent sampling here than pixel sampling?
One of `"under 2x"`, `"2x to 8x"`, `"8x to 16x"`, `"16x or more"` (16x: the ratio of the positions).
""")
code("""
# Predict before you run the next cell: one of ("under 2x", "2x to 8x", "8x to 16x", "16x or more").
### BEGIN SOLUTION
my_prediction = "PREDICTION"
### END SOLUTION
""".replace("PREDICTION", fill("PREDICTION", "2x to 8x")))
code("""
from torch.utils.flop_counter import FlopCounterMode

from course_lib.checks import check_prediction
from course_lib.guidance.train import sample_cfg

pixel = load_guidance_model("ddpm_cond", DEVICE, PROFILE)
speed_captions, speed_labels = test.captions[:cfg.n_speed], test.labels[:cfg.n_speed]
generate(speed_captions[:2], 3.0); sample_cfg(pixel, schedule, speed_labels[:2], 3.0, steps=2)   # warm-up
start = time.perf_counter()
generate(speed_captions, 3.0, batch_size=cfg.n_speed)
latent_seconds = (time.perf_counter() - start) / cfg.n_speed
start = time.perf_counter()
sample_cfg(pixel, schedule, speed_labels, 3.0, steps=cfg.sample_steps, batch_size=cfg.n_speed)
pixel_seconds = (time.perf_counter() - start) / cfg.n_speed
with torch.no_grad(), FlopCounterMode(display=False) as latent_flops:
    ldm(torch.zeros(1, ldm.latent_channels, 7, 7, device=DEVICE), torch.zeros(1, device=DEVICE), *(p[:1].to(DEVICE) for p in tokenizer.encode_batch(test.captions[:1])))
with torch.no_grad(), FlopCounterMode(display=False) as pixel_flops:
    pixel(torch.zeros(1, 1, 28, 28, device=DEVICE), torch.zeros(1, device=DEVICE), torch.zeros(1, dtype=torch.long, device=DEVICE))
flops = {"latent": latent_flops.get_total_flops(), "pixel": pixel_flops.get_total_flops()}
speedup = pixel_seconds / latent_seconds
n_params = {name: sum(p.numel() for p in net.parameters()) for name, net in (("pixel", pixel), ("latent", ldm))}
print(f"DDIM-{cfg.sample_steps}, scale 3, batches of {cfg.n_speed}, on {DEVICE}:")
print(f"  pixel ddpm_cond: {pixel_seconds * 1e3:7.1f} ms per image   ({flops['pixel'] / 1e6:.0f} MFLOPs per network call, "
      f"{n_params['pixel'] / 1e6:.2f}M parameters)")
print(f"  latent ldm_text: {latent_seconds * 1e3:7.1f} ms per image   ({flops['latent'] / 1e6:.0f} MFLOPs per call, "
      f"{n_params['latent'] / 1e6:.2f}M parameters; decoder included in the time)")
print(f"  latent is {speedup:.1f}x faster per image; {flops['pixel'] / flops['latent']:.1f}x fewer FLOPs per call")
record("pixel_seconds_per_image", pixel_seconds)
record("latent_seconds_per_image", latent_seconds)
record("latent_speedup", speedup)
record("flops_ratio", flops["pixel"] / flops["latent"])
measured = ("under 2x" if speedup < 2 else "2x to 8x" if speedup < 8 else "8x to 16x" if speedup < 16 else "16x or more")
check_prediction(my_prediction, measured, ("under 2x", "2x to 8x", "8x to 16x", "16x or more"),
                 why=f"The FLOPs fall by {flops['pixel'] / flops['latent']:.1f}x, not 16x: the latent model is wider where the "
                     "pixel U-Net is narrow (64 channels at every position against 16 at full resolution), and its "
                     f"attention layers see all 49 positions. The time per image fell {speedup:.1f}x here, the decoder "
                     "included. On a GPU, models this small are bound by kernel launches rather than FLOPs, and the "
                     "ratio can be smaller.")
""")
md(fill("SPEED_DISCUSSION", "SPEED_DISCUSSION"))

md("""
## Where the words look: cross-attention maps

For a generated latent $z_0$, noise it again to a few steps $t$ and let the denoiser read the caption: its
cross-attention weights, averaged over the heads, the three blocks and those steps, give one 7 × 7 map per caption
token — how strongly each position attends to that word (each position's weights over the tokens sum to 1).
Drawn below over the sample, upsampled; each map is normalised to its own range, and its title gives the mean
weight the word receives.

Is that where the item is? For the small items of the sweep's scale-3 samples, the share of a word's attention
that falls on the cells the item covers, divided by the share of cells it covers (1: attention spread evenly,
above 1: concentrated on the item).
""")
code("""
ATTN_T = (100, 300, 500, 700)

@torch.no_grad()
def word_maps(z0: torch.Tensor, captions: list[str], seed: int = 0) -> torch.Tensor:
    '''Latents w0 (N, 2, 7, 7) and their captions -> weights (N, 7, 7, L) averaged over heads, blocks and
    the steps ATTN_T.'''
    ids, mask = tokenizer.encode_batch(captions)
    g, total = torch.Generator().manual_seed(seed), 0
    for t in ATTN_T:
        zt = schedule.q_sample(z0.to(DEVICE), t, torch.randn(z0.shape, generator=g).to(DEVICE))
        _, maps = ldm(zt, torch.full((len(z0),), t, device=DEVICE), ids.to(DEVICE), mask.to(DEVICE), return_attention=True)
        total = total + torch.stack(maps).mean((0, 2)).cpu()        # (N, 49, L): mean over blocks and heads
    return (total / len(ATTN_T)).view(len(z0), 7, 7, -1)

s_map = 3.0 if 3.0 in latents else max(latents)
small = [i for i, c in enumerate(test.captions) if parse_caption(c)["size"] == "small"][:100]
w = word_maps(latents[s_map][small], [test.captions[i] for i in small])        # (n, 7, 7, L)
cover = F.avg_pool2d((samples[s_map][small] > 0.05).float(), 4)[:, 0] >= 0.5  # (n, 7, 7): the item's cells
concentration = {}
for j, i in enumerate(small):
    words = test.captions[i].split()
    n_pos = 3 if parse_caption(test.captions[i])["position"] else 0
    roles = {"<start>": [0], "brightness": [1 + words.index(parse_caption(test.captions[i])["brightness"])],
             "garment": list(range(2 + words.index(parse_caption(test.captions[i])["brightness"]), 1 + len(words) - n_pos)),
             "side (left, top, ...)": [len(words)] if n_pos else []}
    area = float(cover[j].float().mean())
    if 0 < area < 1:
        for role, tokens in roles.items():
            if tokens:
                m = w[j][..., tokens].sum(-1)                              # (7, 7)
                concentration.setdefault(role, []).append(float(m[cover[j]].sum() / m.sum()) / area)
print(f"small items, scale {s_map:g} samples ({len(small)}): attention share on the item / the item's share of the cells")
for role, v in concentration.items():
    c = sum(v) / len(v)
    print(f"  {role:22s} {c:5.2f}")
    record("attn_on_item_" + role.split()[0].strip("<>"), c)

examples = [i for i in small[:40] if parse_caption(test.captions[i])["position"]][:2] + \\
           [i for i, c in enumerate(test.captions) if parse_caption(c)["size"] == "large"][:1]
for i in examples:
    words = ["<start>"] + test.captions[i].split()
    m = word_maps(latents[s_map][i:i + 1], [test.captions[i]])[0]                # (7, 7, L)
    fig, axes = plt.subplots(1, len(words) + 1, figsize=(1.3 * (len(words) + 1), 1.8))
    axes[0].imshow(samples[s_map][i, 0], cmap="gray", vmin=0, vmax=1); axes[0].set_title("sample", fontsize=8)
    axes[0].axis("off")
    for ax, word, j in zip(axes[1:], words, range(len(words))):
        heat = F.interpolate(m[None, None, :, :, j], size=28, mode="bilinear", align_corners=False)[0, 0]
        plots.overlay_heatmap(ax, samples[s_map][i], heat, alpha=0.55)
        ax.set_title(f"{word}\\n{float(m[..., j].mean()):.2f}", fontsize=8)
    plt.tight_layout()
    fig.colorbar(plt.cm.ScalarMappable(cmap="jet"), ax=axes, fraction=0.012, pad=0.01, label="weight, each map's min to max")
    plt.show()
""")
md(fill("MAPS_DISCUSSION", "MAPS_DISCUSSION"))

md("""
## Try it: type a caption

Eight samples of your caption from eight fixed noises. Each title gives what was measured on the sample: the caption
judge's class, the size and the brightness. Words outside the 37-word vocabulary get a message naming them and the
closest known words (try "a small purple sneaker").
""")
code("""
import ipywidgets

from course_lib import widgets

def draw(caption: str = "a small light sneaker on the left", scale: float = 3.0):
    try:
        images = generate([caption] * 8, scale, seed=7)
    except ValueError as err:                                        # the tokenizer names the unknown words
        print(err)
        return
    found, label = measure_attributes(images), predict(judge, images).argmax(1)
    plots.image_grid(images, [f"{names[int(label[i])]}\\n{found['size'][i]}, {found['brightness'][i]}" for i in range(8)],
                     ncols=8, scale=1.2, suptitle=f"{caption!r}, scale {scale:g}")
    plt.show()

draw("a small purple sneaker")
widgets.interactive(draw, caption=ipywidgets.Text(value="a small light sneaker on the left", description="caption",
                                                  continuous_update=False),
                    scale=ipywidgets.FloatSlider(value=3.0, min=0.0, max=8.0, step=0.5, description="scale"))
""")

md("""
## What to remember

- Latent diffusion is chapter 13's DDPM on $z = E(x)$ of a **frozen** autoencoder, decoded by $D$: the
  autoencoder sets a ceiling on quality (its reconstruction FID) and the denoiser computes on fewer positions.
- Here the 784 pixels became 49 positions of 16 channels, of which only 2 directions vary: the denoiser works on
  98 numbers, 16x fewer positions; its FLOPs per call fell 5.0x and its time per image 3.1x on this CPU, not 16x.
- Look at the latent before diffusing in it: a diffusion model spends its loss on every number it denoises, and
  channels without variance teach it nothing. Per-axis whitening (PCA) is the rescaling of Rombach et al. done
  per direction.
- Text enters through **cross-attention** in every block at every step: $Q$ from the image's positions, $K$ and $V$
  from the caption's tokens, a softmax over the tokens with padding masked out.
- Classifier-free guidance carries over unchanged: the empty caption is the null label.

Next, chapter 16 leaves diffusion: Image GPT models an image as a sequence of tokens, with the same attention.
""")

nb = new_notebook(cells=cells, metadata={
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"}})
out = Path(sys.argv[1] if len(sys.argv) > 1 else f"notebooks/{NAME}")
nbformat.write(nb, out)
print("wrote", out)
