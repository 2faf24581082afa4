"""Writes notebooks/16_image_gpt.ipynb (or the path given): `python drafts/build_16_image_gpt.py [out]`.

The prose that discusses measured numbers is in TEXT (drafts/text_16.py, written after a cpu run and checked
against its outputs); rebuild, then re-execute with `python -m course_lib run --profile cpu --inplace`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from notebook_builder import NotebookBuilder

b = NotebookBuilder("16_image_gpt.ipynb", ('palette', 'nll', 'completions', 'samples', 'bert', 'probes'), "drafts/text_16.py")
md, code = b.md, b.code

md(f"""
# 16 · Image GPT: a language model on pixels

{b.badge}

The notes' "Image GPT" (Chen et al. 2020, *Generative Pretraining from Pixels*): *directly use GPT on pixels;
tested both autoregressive and BERT-like training.* No convolution, no patch, no 2-D anything: an image is read
as a sequence of pixels in raster order, and a transformer learns to predict them. Here:

1. **From pixels to tokens**: Fashion-MNIST downsampled to 14×14 and each pixel replaced by one of 16 grey levels
   found by k-means — the vocabulary.
2. **Attention with a mask**: you write masked attention; the causal mask is what makes the model a GPT.
3. **Autoregressive training** (a visible loop), the test NLL per token against the baselines a
   language model must beat, and **completions** of the bottom halves of test images, judged.
4. **The BERT-style variant**: the same network, no causal mask, trained to fill in 15 % masked pixels.
5. **Linear probes, layer by layer**: how well a linear classifier reads the garment's class from each layer's
   features — the paper's finding that the best features sit in the *middle* of the network, checked here.

The models of sections 3–5 are the shipped checkpoints `igpt_ar` and `igpt_bert` (`python -m course_lib
checkpoints igpt_ar` retrains one).
""")
b.setup_and_parameters()
code("""
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_lib import metrics, plots, record
from course_lib.data import fashion_mnist
from course_lib.transformers.config import igpt_notebook_config
from course_lib.transformers.igpt import (PALETTE, SIDE, ImageGPT, ar_loss, dequantize, kmeans_palette, quantize,
                                          to_sequence_images)

cfg = igpt_notebook_config(PROFILE)
train, test = fashion_mnist("train"), fashion_mnist("test")
names = test.classes
cfg
""")

md(r"""
## 1 · From pixels to tokens

A language model predicts a categorical distribution over a vocabulary. iGPT makes pixels categorical: it clusters
the colours of the training images with k-means and replaces each pixel by the index of its nearest centre (the
paper uses 512 clusters of RGB; we use 16 grey levels), and it downsamples first, because attention costs grow with
the square of the sequence length (the paper: 32×32 to 64×64; we: 14×14, 196 tokens). k-means below is
Lloyd's algorithm: assign every pixel to the nearest centre, move each centre to the mean of its pixels, repeat.
""")
code("""
pixels = to_sequence_images(train.images[:2_000]).flatten()          # (392000,) intensities of 14x14 images
palette = kmeans_palette(pixels, PALETTE)                            # (16,), ascending
fig, axes = plt.subplots(1, 2, figsize=(10, 2.8), gridspec_kw={"width_ratios": [1.4, 1]})
axes[0].hist(pixels, bins=100, color="gray", log=True)
for c in palette:
    axes[0].axvline(float(c), color="tab:orange", lw=1)
axes[0].set(xlabel="pixel intensity (14 x 14 images)", ylabel="count (log)", title="intensities and the 16 k-means centres")
axes[1].imshow(palette[None], cmap="gray", vmin=0, vmax=1, aspect="auto")
axes[1].set(yticks=[], xticks=range(PALETTE), title="the palette: token k is this grey")
axes[1].tick_params(labelsize=8)
plt.tight_layout(); plt.show()
print("palette:", " ".join(f"{float(c):.2f}" for c in palette))
""")
code("""
x = test.images[:8]
small = to_sequence_images(x)                                        # (8, 1, 14, 14)
tokens = quantize(small, palette)                                    # (8, 196) long, values 0..15
back = dequantize(tokens, palette, SIDE)
print(f"an image is now {tokens.shape[1]} tokens from a vocabulary of {PALETTE}; the first 14 of image 0: {tokens[0, :14].tolist()}")
plots.image_grid(torch.cat([x, F.interpolate(small, scale_factor=2), F.interpolate(back, scale_factor=2)]),
                 ["28 x 28"] + [""] * 7 + ["14 x 14"] + [""] * 7 + ["14 x 14, 16 greys"] + [""] * 7, ncols=8, scale=1.0)
plt.show()
test_small = to_sequence_images(test.images[:cfg.n_eval])
quant_err = float((dequantize(quantize(test_small, palette), palette, SIDE) - test_small).abs().mean())
print(f"mean |quantized - original| on {cfg.n_eval} test images: {quant_err:.4f} (intensities in [0, 1])")
_ = record("palette_mean_abs_err", quant_err)
""")
b.discussion("palette")

md(r"""
## 2 · Attention with a mask

A GPT's block is the standard pre-norm transformer block (LayerNorm, multi-head attention, residual; LayerNorm,
MLP, residual); what makes it a *language model* is one mask. Position $i$'s output must predict token $i$ from tokens $< i$ only, so attention from $i$ to any later
position is forbidden:

$$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\Big(\frac{QK^\top}{\sqrt d} + M\Big)V, \qquad
M_{ij} = \begin{cases} 0 & j \le i \\ -\infty & j > i \end{cases}$$

(with the input shifted right by one, behind a start token, so position $i$ sees tokens $0..i-1$). The BERT-style
model uses no mask at all: it sees everything except the pixels replaced by a `[MASK]` token.

### Exercise: masked attention

`mask` is boolean, True where query $i$ may attend to key $j$, broadcastable to the scores' shape. It may be None.
""")
code("""
from course_lib.transformers.checks import check_attention_kernel


def my_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    '''q (..., N, d), k (..., M, d), v (..., M, e), mask bool broadcastable to (..., N, M) or None -> (..., N, e).'''
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])        # (..., N, M)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v
    ### END SOLUTION


check_attention_kernel(my_attention)
""")
code("""
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from course_lib.transformers import causal_mask

n = 12
colours = ["white", "tab:blue", "tab:orange"]        # 0: may not attend, 1: may attend, 2: may attend, key is [MASK]
hidden = torch.rand(n, generator=torch.Generator().manual_seed(0)) < 0.3              # (n,) BERT's [MASK] keys
fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
axes[0].imshow(causal_mask(n).long(), cmap=ListedColormap(colours), vmin=0, vmax=2)
axes[0].set(title="GPT: causal mask", xlabel="key j (the token attended to)", ylabel="query i")
axes[1].imshow(1 + hidden.long().expand(n, n), cmap=ListedColormap(colours), vmin=0, vmax=2)
axes[1].set(title="BERT: no mask", xlabel="key j", ylabel="query i")
for ax in axes:
    ax.set_xticks(range(n)); ax.set_yticks(range(n)); ax.tick_params(labelsize=8)
fig.legend(handles=[Patch(facecolor=c, edgecolor="gray", label=t) for c, t in zip(colours, (
    "mask False: may not attend (score -inf)", "mask True: may attend", "may attend; key j is a [MASK] token"))],
    loc="lower center", ncol=3, fontsize=8, frameon=False)
plt.tight_layout(rect=(0, 0.07, 1, 1)); plt.show()
""")

md(r"""
## 3 · Autoregressive training

The loss is the paper's Eq. 1, the negative log-likelihood of each token given the ones before it,

$$L_\text{AR} = \mathbb{E}_x\Big[-\sum_{i=1}^{n} \log p(x_i \mid x_1, \dots, x_{i-1})\Big],$$

averaged over positions (nats per token; divide by $\ln 2$ for bits).

Before training, by hand: the first model any language model must beat finds every token equally likely at every
position. Our palette has 16 greys; the paper's has 512 colours. With the paper's palette, how many bits would that
uniform model spend on one 14×14 image?
""")
code("""
from course_lib.transformers.igpt import check_uniform_bits_512

# Bits per 14 x 14 image under the uniform model over 512 colours (a number)
### BEGIN SOLUTION
my_bits = 14 * 14 * math.log2(512)
### END SOLUTION
check_uniform_bits_512(my_bits)
""")
md("""
The loop below trains a fresh model with the recipe of the shipped `igpt_ar` (`course_lib.transformers.igpt.train_igpt`,
which calls `course_lib.training.run_steps`): dim 64, 4 blocks of 4 heads; AdamW with weight decay 0.01 and a
one-cycle learning rate that warms up to 1e-3 and anneals; batches of 64 drawn by a generator seeded 0. Only the
length differs: `cfg.train_steps` steps here (the one cycle spans them), 4,000 for the shipped model.
""")
code("""
from course_lib.utils import autocast, backward_step, compile_if_asked
train_tokens = quantize(to_sequence_images(train.images), palette)           # (60000, 196)
test_tokens = quantize(to_sequence_images(test.images[:cfg.n_eval]), palette)
torch.manual_seed(0)
model = ImageGPT(PALETTE, SIDE * SIDE, dim=64, depth=4, heads=4, causal=True).to(DEVICE)
compile_if_asked(model, DEVICE)                 # torch.compile with COURSE_COMPILE=1 on a GPU
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=cfg.train_steps)
g = torch.Generator().manual_seed(0)
losses, start = [], time.perf_counter()
for step in tqdm(range(cfg.train_steps), desc="iGPT, Eq. 1"):
    xb = train_tokens[torch.randint(len(train_tokens), (64,), generator=g)].to(DEVICE)
    with autocast(DEVICE):          # mixed precision on a GPU (bfloat16; float16 on a T4), a no-op on the CPU
        loss = ar_loss(model, xb)                                              # nats per token
    backward_step(loss, optimizer, DEVICE)   # zero_grad, backward, step (float16: scaled)
    schedule.step()
    losses.append(loss.detach())
losses = torch.stack(losses).cpu() / math.log(2)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(losses, lw=0.8)
ax.axhline(math.log2(PALETTE), color="gray", ls=":", lw=1, label="uniform over our 16 greys")
ax.set(xlabel="step", ylabel="bits per token", title=f"a fresh iGPT, {cfg.train_steps} steps of batch 64")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()
print(f"{cfg.train_steps} steps in {time.perf_counter() - start:.0f} s; last 10 steps' mean: {float(losses[-10:].mean()):.3f} bits per token")
""")
md("""
The shipped `igpt_ar` was trained with this recipe for 4,000 steps. Is its NLL good? A language model is measured against
the simpler models it must beat, each fitted by counting on the training tokens: **uniform** (every grey equally
likely), **unigram** (the greys' frequencies), **per position** (each position's own frequencies: the background
is black at the border), and a **bigram** of the left neighbour, $p(x_i \\mid x_{i-1})$ (pixels are like their
neighbours). Each is evaluated on the same test tokens.
""")
code("""
from course_lib.transformers.shipped import load_igpt

ar = load_igpt("igpt_ar", DEVICE, PROFILE)
e = ar.checkpoint_entry
print(f"igpt_ar: {e['origin']} checkpoint, {e['metrics']['steps']:,} steps of batch 64, trained "
      f"{e['seconds'] / 60:.0f} min on a 2-core CPU")
print(f"its palette (fitted as above, stored with the weights) differs from ours by at most "
      f"{float((ar.palette.cpu() - palette).abs().max()):.1e}")
test_tokens = quantize(to_sequence_images(test.images[:cfg.n_eval]), ar.palette.cpu())

def bits(log_probs: torch.Tensor) -> float:
    '''mean -log2 p over tokens, from natural-log probabilities.'''
    return float(-log_probs.mean() / math.log(2))

counts = lambda idx, n: torch.bincount(idx.flatten(), minlength=n).double() + 1.0      # add-one smoothing
uni = counts(train_tokens, PALETTE).log() - counts(train_tokens, PALETTE).sum().log()
pos = torch.stack([counts(train_tokens[:, i], PALETTE) for i in range(SIDE * SIDE)])        # (196, 16)
pos = pos.log() - pos.sum(1, keepdim=True).log()
prev = torch.cat([torch.full((len(train_tokens), 1), PALETTE), train_tokens[:, :-1]], 1)  # left neighbour, 16 = start
big = counts(prev * PALETTE + train_tokens, (PALETTE + 1) * PALETTE).view(PALETTE + 1, PALETTE)
big = big.log() - big.sum(1, keepdim=True).log()
tprev = torch.cat([torch.full((len(test_tokens), 1), PALETTE), test_tokens[:, :-1]], 1)
with torch.no_grad():
    ar_bits = float(torch.stack([ar_loss(ar, test_tokens[i:i + 500].to(DEVICE)) for i in range(0, len(test_tokens), 500)]).mean()) / math.log(2)
table = {"uniform": math.log2(PALETTE), "unigram": bits(uni[test_tokens]),
         "per position": bits(pos[torch.arange(SIDE * SIDE), test_tokens]),
         "bigram (left neighbour)": bits(big[tprev, test_tokens]), "iGPT (AR)": ar_bits}
print(f"test NLL on {cfg.n_eval} images (per image = 196 x per token):")
print(f"  {'model':24s} {'bits/token':>10s} {'nats/token':>10s} {'bits/image':>10s} {'nats/image':>10s}")
for k, v in table.items():
    print(f"  {k:24s} {v:10.3f} {v * math.log(2):10.3f} {v * SIDE * SIDE:10.0f} {v * math.log(2) * SIDE * SIDE:10.0f}")
record("ar_bits_per_token", ar_bits)
record("ar_nats_per_token", ar_bits * math.log(2))
from course_lib import checkpoints
vae = checkpoints.read_manifest(checkpoints.shipped_dir())["vae_latent16"]["metrics"]
vae_bits = vae["nll_k100"] / math.log(2)
print(f"chapter 07's VAE (16-D latent): {vae['nll_k100']:.1f} nats = {vae_bits:.0f} bits per binarized 28 x 28 image, "
      f"{vae_bits / 784:.3f} bits per binary pixel -- another data set (784 binary pixels, not 196 tokens of 16 levels)")
record("vae_bits_per_dim", vae_bits / 784)
record("bigram_bits_per_token", table["bigram (left neighbour)"])
record("position_bits_per_token", table["per position"])
_ = record("unigram_bits_per_token", table["unigram"])
""")
b.discussion("nll")

md("""
### Completions

Sampling is the loop of any language model: feed the tokens so far, take the distribution of the next, draw one,
append, repeat. Given the top 7 rows (98 tokens) of a test image, the model draws the bottom 98, one at a time
(temperature 1). The judge (chapter 01's classifier, on the 14×14 images scaled back to 28×28) then asks whether
the completed image is still of the original's class — against the top half alone (the bottom black) and the
quantized original.
""")
code("""
@torch.no_grad()
def complete(prefix: torch.Tensor, n_new: int, temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
    '''prefix (B, P) tokens -> (B, P + n_new): each new token drawn from p(x_i | x_<i) ** (1 / temperature).'''
    g = torch.Generator().manual_seed(seed)
    seq = prefix.to(DEVICE)
    for _ in range(n_new):
        logits = ar(torch.cat([seq, seq[:, :1]], 1))[:, -1]                # the output at the next position
        probs = (logits / temperature).softmax(-1).cpu()
        seq = torch.cat([seq, torch.multinomial(probs, 1, generator=g).to(DEVICE)], 1)
    return seq.cpu()

half = SIDE * SIDE // 2
show = test_tokens[:6]
samples = [complete(show[:, :half], half, seed=s) for s in range(3)]
up = lambda t: F.interpolate(dequantize(t, ar.palette.cpu(), SIDE), scale_factor=2)
top_only = torch.cat([show[:, :half], torch.zeros_like(show[:, half:])], 1)
rows = [up(top_only), *[up(s) for s in samples], up(show)]
titles = ["top half given"] + [""] * 5 + ["completion 1"] + [""] * 5 + ["completion 2"] + [""] * 5 + \\
         ["completion 3"] + [""] * 5 + ["original (quantized)"] + [""] * 5
plots.image_grid(torch.stack(rows, 1).flatten(0, 1), [titles[6 * (i % 5) + i // 5] for i in range(30)], ncols=5, scale=1.2)
plt.show()
""")
md("""
The judge needs more completions than the figure, and the loop above is slow: each step runs the network on the
whole sequence so far, about 196²/2 token passes per image. But a position's keys and values never change once
computed (the causal mask: nothing later feeds into them), so a **key/value cache** can keep them, and each step
runs the network on the one new position only, its query attending to the cached keys. `course_lib`'s `sample` does
that; the first line below checks that it draws the same tokens as `complete` from the same seed.
""")
code("""
from course_lib.transformers.igpt import sample

cached = sample(ar, show[:, :half], half, generator=torch.Generator().manual_seed(0)).cpu()   # (6, 196)
print(f"cached sampler against `complete`, seed 0 (the figure's completion 1): "
      f"{int((cached != samples[0]).sum())} of {samples[0].numel()} tokens differ")
start = time.perf_counter()
given = test_tokens[:cfg.n_complete]
completed = sample(ar, given[:, :half], half, generator=torch.Generator().manual_seed(10)).cpu()
labels = test.labels[:cfg.n_complete]
judged = {"top half only (bottom black)": up(torch.cat([given[:, :half], torch.zeros_like(given[:, half:])], 1)),
          "iGPT completion": up(completed), "quantized original": up(given)}
print(f"{cfg.n_complete} completions in {time.perf_counter() - start:.0f} s; the judge's accuracy against the original's class:")
for k, imgs in judged.items():
    acc = float((metrics.judge_labels(imgs) == labels).float().mean())
    print(f"  {k:30s} {acc:.3f}")
    record("judge_acc_" + k.split(" ")[0].replace("iGPT", "completion").replace("quantized", "original"), acc)
""")
b.discussion("completions")

md("""
### Images from nothing, scored like every generator of the course

With an empty prefix the same sampler draws all 196 tokens: an unconditional generator, scored like chapter 10's GANs
and chapter 07's VAE — FID on the judge's features against test images, and the judge's class histogram (its KL to
uniform: 0 when every class is drawn equally often). Every model is sampled here three times (seeds 1, 2, 3), so
each score comes with its spread over seeds. One caveat is measured rather than argued away: iGPT's images are 14×14
with 16 greys, scaled up, so even perfect samples would not reach the FID of real 28×28 images. The **floor** row
passes real training images through the same pipeline (downsample, quantize, upsample): no model of the tokens can
do better than that.
""")
code("""
from course_lib.transformers.igpt import sample_images, upsample

empty = torch.zeros(16, 0, dtype=torch.long, device=DEVICE)
start = time.perf_counter()
drawn = sample(ar, empty, SIDE * SIDE, generator=torch.Generator().manual_seed(4), cache=False).cpu()   # (16, 196)
t_loop, start = time.perf_counter() - start, time.perf_counter()
again = sample(ar, empty, SIDE * SIDE, generator=torch.Generator().manual_seed(4)).cpu()
t_cache = time.perf_counter() - start
print(f"16 images of 196 tokens: {t_loop:.2f} s without the cache, {t_cache:.2f} s with it "
      f"({int((again != drawn).sum())} tokens differ)")
plots.image_grid(upsample(drawn, ar.palette.cpu()), ncols=8, scale=1.0,
                 suptitle="16 images igpt_ar drew from nothing (seed 4, temperature 1)")
plt.show()
""")
code("""
from course_lib.gans.shipped import load_generator
from course_lib.gans.train import sample as gan_sample
from course_lib.vae.vae import load_vae

n_fid, seeds = cfg.n_fid, (1, 2, 3)
stats_fid = metrics.gaussian(metrics.features(fashion_mnist("test").subset(n_fid, seed=0).images))
vae16 = load_vae(16, DEVICE, PROFILE)
dcgan, stylegan = (load_generator(key, DEVICE, PROFILE) for key in ("gan_dcgan", "gan_stylegan"))
pipeline = lambda x: upsample(quantize(to_sequence_images(x), ar.palette.cpu()), ar.palette.cpu())
draw = {"VAE 16-D (07)": lambda s: vae16.sample(n_fid, torch.Generator().manual_seed(s)).cpu(),  # seed -> (n_fid, 1, 28, 28)
        "DCGAN (10)": lambda s: gan_sample(dcgan, n_fid, seed=s),
        "StyleGAN (10)": lambda s: gan_sample(stylegan, n_fid, seed=s),
        "Image GPT (16)": lambda s: sample_images(ar, n_fid, seed=s),
        "floor: real, 14 x 14, 16 greys": lambda s: pipeline(train.subset(n_fid, seed=s).images),
        "floor: real, 28 x 28": lambda s: train.subset(n_fid, seed=s).images}
fid, kl, hist, per_1000 = {}, {}, {}, {}      # model -> (3,) FIDs, (3,) class KLs, (3, 10) histograms, s per 1,000
for name, draw_one in draw.items():
    runs = []
    for s in seeds:
        start = time.perf_counter()
        with torch.no_grad():
            images = draw_one(s)
        seconds = time.perf_counter() - start
        h = metrics.class_histogram(images)
        runs.append((metrics.frechet_distance(*metrics.gaussian(metrics.features(images)), *stats_fid),
                     metrics.kl_to_uniform(h), h, seconds))
    fid[name], kl[name] = torch.tensor([r[0] for r in runs]), torch.tensor([r[1] for r in runs])
    hist[name], per_1000[name] = torch.stack([r[2] for r in runs]), 1_000 * sum(r[3] for r in runs) / (3 * n_fid)
print(f"{n_fid:,} images per seed against {n_fid:,} test images (subset(n, seed=0)); mean ± sd over seeds {seeds}")
print(f"{'model':32s} {'FID':>13s}  {'FID per seed':>20s} {'class KL':>15s} {'s / 1,000':>9s}")
for name in draw:
    timing = "" if name.startswith("floor") else f"{per_1000[name]:9.2f}"
    print(f"{name:32s} {fid[name].mean():6.2f} ± {fid[name].std():4.2f}  " + " ".join(f"{v:6.2f}" for v in fid[name])
          + f" {kl[name].mean():7.3f} ± {kl[name].std():5.3f} {timing}")
m = ar.checkpoint_entry["metrics"]
if "fid_1000" in m:
    print(f"igpt_ar's manifest, from when the checkpoint was built (seed 1, 1,000 images, no cache): FID "
          f"{m['fid_1000']:.2f}, class KL {m['class_kl_1000']:.3f}, {m['sample_seconds_1000']:.0f} s to draw")
for key, name in (("igpt", "Image GPT (16)"), ("vae", "VAE 16-D (07)"), ("dcgan", "DCGAN (10)"), ("stylegan", "StyleGAN (10)")):
    suffix = "" if key == "igpt" else "_same_protocol"
    record(f"{key}_fid{suffix}", float(fid[name].mean()))
    record(f"{key}_fid_sd", float(fid[name].std()))
    record(f"{key}_class_kl", float(kl[name].mean()))
record("igpt_fid_floor_pipeline", float(fid["floor: real, 14 x 14, 16 greys"].mean()))
record("fid_floor_raw", float(fid["floor: real, 28 x 28"].mean()))
_ = record("igpt_seconds_per_1000", per_1000["Image GPT (16)"])
""")
code("""
shown = ["VAE 16-D (07)", "DCGAN (10)", "StyleGAN (10)", "Image GPT (16)", "floor: real, 28 x 28"]
width = 0.8 / len(shown)
fig, ax = plt.subplots(figsize=(10, 3.8))
for i, name in enumerate(shown):
    ax.bar(torch.arange(10) + (i - (len(shown) - 1) / 2) * width, hist[name].mean(0), width,
           label=f"{name.removeprefix('floor: ')} (KL {kl[name].mean():.3f})")
ax.axhline(0.1, color="black", ls=":", lw=1, label="uniform (0.1)")
ax.set_xticks(range(10), names, fontsize=8)
ax.set(xlabel="the judge's predicted class", ylabel="fraction of the images",
       ylim=(0, 1.45 * max(float(hist[name].mean(0).max()) for name in shown)),
       title=f"class histograms: {len(seeds)} x {n_fid:,} images per model, pooled over the seeds")
ax.legend(fontsize=8, ncol=3, loc="upper center"); plt.tight_layout(); plt.show()
""")
b.discussion("samples")

md(r"""
## 4 · The BERT-style variant

Same blocks, no causal mask; 15 % of the positions replaced by `[MASK]`, and the loss (the paper's Eq. 2) only on
those:

$$L_\text{BERT} = \mathbb{E}_{x,M}\Big[-\sum_{i \in M} \log p(x_i \mid x_{[1,n] \setminus M})\Big].$$

BERT sees both sides of a hidden pixel, so its per-token NLL on masked pixels is not comparable with the AR
model's (which sees one side and must also predict the first pixels of a blank image); and it defines no
likelihood of a whole image, so it cannot be sampled from left to right. Compare both models on the *same* hidden
pixels instead: for the AR model, a hidden pixel's NLL is its prediction from everything before it.
""")
code("""
from course_lib.transformers.igpt import mask_tokens

bert = load_igpt("igpt_bert", DEVICE, PROFILE)
e = bert.checkpoint_entry
print(f"igpt_bert: {e['origin']} checkpoint, {e['metrics']['steps']:,} steps of batch 64, "
      f"{e['seconds'] / 60:.0f} min on a 2-core CPU")
g = torch.Generator().manual_seed(3)
corrupted, M = mask_tokens(test_tokens, bert.special, 0.15, g)
with torch.no_grad():
    logp_bert = torch.cat([bert(corrupted[i:i + 500].to(DEVICE)).log_softmax(-1).cpu() for i in range(0, len(test_tokens), 500)])
    logp_ar = torch.cat([ar(test_tokens[i:i + 500].to(DEVICE)).log_softmax(-1).cpu() for i in range(0, len(test_tokens), 500)])
pick = lambda lp: lp.gather(-1, test_tokens[..., None])[..., 0][M]
nll_bert, nll_ar = bits(pick(logp_bert)), bits(pick(logp_ar))
nll_big = bits(big[tprev, test_tokens][M])
print(f"on the same {int(M.sum()):,} hidden test pixels (15 %), bits per token:")
print(f"  bigram (left neighbour) {nll_big:.3f}\\n  AR (everything before)  {nll_ar:.3f}\\n  BERT (everything else)  {nll_bert:.3f}")
record("bert_masked_bits_per_token", nll_bert)
_ = record("ar_masked_bits_per_token", nll_ar)
""")
code("""
idx = torch.arange(6)
filled = torch.where(M[idx], logp_bert[idx].argmax(-1), test_tokens[idx])          # BERT's best guess where hidden
shown = torch.where(M[idx], torch.full_like(test_tokens[idx], 0), test_tokens[idx])
up_rgb = lambda t: up(t).repeat(1, 3, 1, 1)
marked = up_rgb(shown)
mask_up = F.interpolate(M[idx].view(-1, 1, SIDE, SIDE).float(), scale_factor=2).bool()[:, 0]
marked[:, 0][mask_up] = 1.0                                                          # hidden pixels in red
marked[:, 1][mask_up] = 0.0
marked[:, 2][mask_up] = 0.0
plots.image_grid(torch.cat([marked, up_rgb(filled), up_rgb(test_tokens[idx])]),
                 ["hidden (red)"] + [""] * 5 + ["BERT's fill (argmax)"] + [""] * 5 + ["original"] + [""] * 5, ncols=6, scale=1.2)
plt.show()
""")
b.discussion("bert")

md("""
## 5 · Linear probes, layer by layer

Neither model saw a label. The paper's test of what they learned: freeze the network, take each layer's features
(the residual stream, layer-normalised and averaged over the 196 positions), and fit a linear classifier of the
garment's class on them. Its accuracy says how linearly the class can be read from that layer. For the AR model
the paper found the best probes in the middle of the network, not at the end: the last layers specialise in
predicting the next pixel.

Baselines: a linear classifier on the 196 raw quantized pixels, and on layer 0 (the token and position embeddings
averaged, before any attention). Neighbouring layers may differ by a point or less, so the cell also measures the
noise of the ranking: a **paired bootstrap** over the test images (draw the test set again with replacement, 1,000
times, and recompute the best layer's lead over the runner-up on the same draw; the middle 95 % of those leads is the
interval).

Predict before you measure: which of the AR model's layers (0 = embeddings, 4 = last) gives the best probe?
""")
code("""
# Predict before you run the next cell: one of (0, 1, 2, 3, 4).
### BEGIN SOLUTION
my_prediction = 3
### END SOLUTION
""")
code("""
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from course_lib.checks import check_prediction
from course_lib.transformers.igpt import layer_features

ptrain = train.subset(cfg.n_probe_train, seed=1)
ptest = test.subset(cfg.n_probe_test, seed=2)
tok_tr = quantize(to_sequence_images(ptrain.images), ar.palette.cpu())
tok_te = quantize(to_sequence_images(ptest.images), ar.palette.cpu())

def probe(f_tr: torch.Tensor, f_te: torch.Tensor) -> torch.Tensor:
    '''A logistic regression on standardised features (N_train, D): is each test image (N_test, D) classified right?
    -> (N_test,) bool.'''
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(f_tr.numpy(), ptrain.labels.numpy())
    return torch.from_numpy(clf.predict(f_te.numpy()) == ptest.labels.numpy())

def features(net, tokens):
    '''Every layer's probe features, batched: L + 1 tensors (N, D).'''
    out = [layer_features(net, tokens[i:i + 500].to(DEVICE)) for i in range(0, len(tokens), 500)]
    return [torch.cat([o[l] for o in out]).cpu() for l in range(len(out[0]))]

start = time.perf_counter()
pixel_acc = float(probe(tok_tr.float(), tok_te.float()).float().mean())
right, acc = {}, {}       # model -> per layer: (N_test,) bool, and its accuracy
for name, net in (("AR", ar), ("BERT", bert)):
    f_tr, f_te = features(net, tok_tr), features(net, tok_te)
    right[name] = [probe(a, b) for a, b in zip(f_tr, f_te)]
    acc[name] = [float(r.float().mean()) for r in right[name]]
print(f"linear probes: {cfg.n_probe_train} training and {cfg.n_probe_test} test images, {time.perf_counter() - start:.0f} s")
fig, ax = plt.subplots(figsize=(6, 3.4))
for name, a in acc.items():
    ax.plot(range(len(a)), a, marker="o", label=f"{name} features")
ax.axhline(pixel_acc, color="gray", ls="--", lw=1, label="raw quantized pixels")
ax.axhline(0.1, color="gray", ls=":", lw=1, label="chance")
ax.set(xlabel="layer (0 = embeddings)", ylabel="probe test accuracy", xticks=range(len(acc["AR"])),
       title="what a linear classifier reads from each layer")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()
print("layer:     " + " ".join(f"{l:6d}" for l in range(len(acc["AR"]))))
for name, a in acc.items():
    print(f"{name:10s} " + " ".join(f"{v:6.3f}" for v in a))
    for l, v in enumerate(a):
        record(f"probe_{name.lower()}_layer{l}", v)
print(f"raw pixels: {pixel_acc:.3f}")
record("probe_pixels", pixel_acc)
best, second = sorted(range(len(acc["AR"])), key=lambda l: -acc["AR"][l])[:2]
diff = right["AR"][best].float() - right["AR"][second].float()      # (N_test,) in {-1, 0, 1}: paired by image
resampled = diff[torch.randint(len(diff), (1_000, len(diff)), generator=torch.Generator().manual_seed(0))].mean(1)
lo, hi = (100 * resampled.quantile(torch.tensor([0.025, 0.975]))).tolist()   # points; 1,000 bootstrap resamples
gap = 100 * float(diff.mean())
print(f"AR, layer {best} - layer {second}: {gap:+.2f} points; 95 % paired bootstrap interval over the "
      f"{len(diff):,} test images: [{lo:+.2f}, {hi:+.2f}]")
record("probe_ar_gap_points", gap)
record("probe_ar_gap_ci_lo", lo)
record("probe_ar_gap_ci_hi", hi)
noise = ("the interval excludes 0, so the ranking holds beyond this test set's noise" if lo > 0 else
         "the interval includes 0: within this test set's noise, another test set could rank the two the other way")
check_prediction(my_prediction, best, range(len(acc["AR"])),
                 why=f"The AR model's probe peaks at layer {best} ({acc['AR'][best]:.3f}), ahead of layer {second} "
                     f"({acc['AR'][second]:.3f}) by {gap:.2f} points, 95 % interval [{lo:+.2f}, {hi:+.2f}]: {noise}.")
""")
b.discussion("probes")

md("""
## What to remember

- Image GPT is GPT unchanged, on a sequence of palette indices: k-means turns intensities into a vocabulary,
  raster order turns the image into a sequence, and a causal mask turns the transformer into a language model.
- A likelihood model is judged against simpler likelihood models on the same tokens (here uniform, unigram,
  per position, bigram); bits per token make them comparable.
- The BERT-style objective uses both sides of a pixel and predicts better where it is asked to, but defines no
  likelihood to sample from.
- Features for a downstream task are read from inside the network, and the best layer is found by measuring.
""")

b.write()
