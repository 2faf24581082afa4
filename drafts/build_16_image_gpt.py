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
3. **Autoregressive training** (a visible loop), the test NLL in bits per token against the baselines a
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
axes[1].tick_params(labelsize=7)
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
record("palette_mean_abs_err", quant_err)
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
from course_lib.transformers import causal_mask

n = 12
fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
axes[0].imshow(causal_mask(n), cmap="Blues", vmin=0, vmax=1.3)
axes[0].set(title="GPT: causal mask", xlabel="key j (the token attended to)", ylabel="query i")
g = torch.Generator().manual_seed(0)
hidden = torch.rand(n, generator=g) < 0.3
axes[1].imshow(torch.ones(n, n, dtype=torch.bool), cmap="Blues", vmin=0, vmax=1.3)
for j in torch.nonzero(hidden).flatten().tolist():
    axes[1].axvspan(j - 0.5, j + 0.5, color="tab:orange", alpha=0.5)
axes[1].set(title="BERT: no mask; orange tokens are [MASK]", xlabel="key j", ylabel="query i")
for ax in axes:
    ax.set_xticks(range(n)); ax.set_yticks(range(n)); ax.tick_params(labelsize=7)
plt.tight_layout(); plt.show()
""")

md(r"""
## 3 · Autoregressive training

The loss is the paper's Eq. 1, the negative log-likelihood of each token given the ones before it,

$$L_\text{AR} = \mathbb{E}_x\Big[-\sum_{i=1}^{n} \log p(x_i \mid x_1, \dots, x_{i-1})\Big],$$

averaged over positions (nats per token; divide by $\ln 2$ for bits). The loop below trains a fresh model
(dim 64, 4 blocks of 4 heads, as the shipped one) for `cfg.train_steps` steps.
""")
code("""
train_tokens = quantize(to_sequence_images(train.images), palette)           # (60000, 196)
test_tokens = quantize(to_sequence_images(test.images[:cfg.n_eval]), palette)
torch.manual_seed(0)
model = ImageGPT(PALETTE, SIDE * SIDE, dim=64, depth=4, heads=4, causal=True).to(DEVICE)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
g = torch.Generator().manual_seed(0)
losses, start = [], time.perf_counter()
for step in tqdm(range(cfg.train_steps), desc="iGPT, Eq. 1"):
    xb = train_tokens[torch.randint(len(train_tokens), (64,), generator=g)].to(DEVICE)
    loss = ar_loss(model, xb)                                                  # nats per token
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    losses.append(loss.detach())
losses = torch.stack(losses).cpu() / math.log(2)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(losses, lw=0.8)
ax.axhline(math.log2(PALETTE), color="gray", ls=":", lw=1, label="log2 16: uniform over the palette")
ax.set(xlabel="step", ylabel="bits per token", title=f"a fresh iGPT, {cfg.train_steps} steps of batch 64")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()
print(f"{cfg.train_steps} steps in {time.perf_counter() - start:.0f} s; last 10 steps' mean: {float(losses[-10:].mean()):.3f} bits per token")
""")
md("""
Before the numbers, by hand: a model that finds every one of the 16 greys equally likely, at every position, spends
how many bits on one 14×14 image?
""")
code("""
from course_lib.transformers.checks import check_uniform_bits

# Bits per image under the uniform model (a number)
### BEGIN SOLUTION
my_bits = 14 * 14 * math.log2(16)
### END SOLUTION
check_uniform_bits(my_bits)
""")
md("""
The shipped `igpt_ar` trained this way for 4,000 steps. Is its NLL good? A language model is measured against
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
print(f"test NLL on {cfg.n_eval} images, bits per token (x 196 = bits per image):")
for k, v in table.items():
    print(f"  {k:24s} {v:6.3f}   ({v * SIDE * SIDE:6.0f} bits per image)")
record("ar_bits_per_token", ar_bits)
from course_lib import checkpoints
vae = checkpoints.read_manifest(checkpoints.shipped_dir())["vae_latent16"]["metrics"]
vae_bits = vae["nll_k100"] / math.log(2)
print(f"chapter 07's VAE (16-D latent): {vae['nll_k100']:.1f} nats = {vae_bits:.0f} bits per binarized 28 x 28 image, "
      f"{vae_bits / 784:.3f} bits per binary pixel -- another data set (784 binary pixels, not 196 tokens of 16 levels)")
record("vae_bits_per_dim", vae_bits / 784)
record("bigram_bits_per_token", table["bigram (left neighbour)"])
record("position_bits_per_token", table["per position"])
record("unigram_bits_per_token", table["unigram"])
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
code("""
start = time.perf_counter()
given = test_tokens[:cfg.n_complete]
completed = complete(given[:, :half], half, seed=10)
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

With an empty prefix the same loop draws all 196 tokens: an unconditional generator, scored like chapter 10's GANs
and chapter 07's VAE — FID on the judge's features against test images, and the judge's class histogram (its KL to
uniform: 0 when every class is drawn equally often). One caveat is measured rather than argued away: iGPT's images
are 14×14 with 16 greys, scaled up, so even perfect samples would not reach the FID of real 28×28 images. The
**floor** row passes real training images through the same pipeline (downsample, quantize, upsample): no model of
the tokens can do better than that. `igpt_ar`'s manifest keeps its scores for 1,000 samples
(`course_lib.transformers.igpt.sample_metrics`, the loop above without a prefix); the other models are sampled here.
""")
code("""
from course_lib.gans.shipped import load_generator
from course_lib.gans.train import sample as gan_sample
from course_lib.transformers.igpt import sample, sample_metrics, upsample
from course_lib.vae.vae import load_vae

start = time.perf_counter()
drawn = sample(ar, torch.zeros(16, 0, dtype=torch.long, device=DEVICE), SIDE * SIDE, generator=torch.Generator().manual_seed(4))
print(f"16 images of 196 tokens in {time.perf_counter() - start:.1f} s")
plots.image_grid(upsample(drawn.cpu(), ar.palette.cpu()), [""] * 16, ncols=8, scale=1.0)
plt.show()

n_fid = cfg.n_fid
m = ar.checkpoint_entry["metrics"]
n_ig = n_fid if f"fid_{n_fid}" in m else 1_000     # smoke compares its few samples with the shipped 1,000
if f"fid_{n_ig}" not in m:                         # a stand-in without the shipped scores: measured here
    m, n_ig = m | sample_metrics(ar, n_fid), n_fid
real_fid = fashion_mnist("test").subset(n_fid, seed=0).images
stats_fid = metrics.gaussian(metrics.features(real_fid))
def score(images):
    '''(FID against the n_fid test images, the judge's class KL to uniform)'''
    fid = metrics.frechet_distance(*metrics.gaussian(metrics.features(images)), *stats_fid)
    return fid, metrics.kl_to_uniform(metrics.class_histogram(images))

vae16 = load_vae(16, DEVICE, PROFILE)
with torch.no_grad():
    fid_table = {"VAE 16-D (07)": score(vae16.sample(n_fid, torch.Generator().manual_seed(1)).cpu())}
for label, key in (("DCGAN (10)", "gan_dcgan"), ("StyleGAN (10)", "gan_stylegan")):
    fid_table[label] = score(gan_sample(load_generator(key, DEVICE, PROFILE), n_fid, seed=1))
fid_table[f"Image GPT (16), manifest, {n_ig:,}"] = (m[f"fid_{n_ig}"], m[f"class_kl_{n_ig}"])
fid_table[f"floor: real, 14 x 14, 16 greys, {n_ig:,}"] = (m[f"fid_{n_ig}_floor_pipeline"], float("nan"))
fid_table[f"floor: real images, 28 x 28, {n_ig:,}"] = (m[f"fid_{n_ig}_floor_raw"], float("nan"))
print(f"FID of {n_fid:,} samples against {n_fid:,} test images (subset(n, seed=0)); class KL to uniform")
print(f"{'model':40s} {'FID':>7s} {'class KL':>9s}")
for label, (fid, kl) in fid_table.items():
    print(f"{label:40s} {fid:7.2f} {kl:9.3f}")
print(f"iGPT's {n_ig:,} samples took {m[f'sample_seconds_{n_ig}']:.0f} s to draw (one token at a time, no cache)")
record("igpt_fid", m[f"fid_{n_ig}"])
record("igpt_class_kl", m[f"class_kl_{n_ig}"])
record("igpt_fid_floor_pipeline", m[f"fid_{n_ig}_floor_pipeline"])
record("vae_fid_same_protocol", fid_table["VAE 16-D (07)"][0])
record("dcgan_fid_same_protocol", fid_table["DCGAN (10)"][0])
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
record("ar_masked_bits_per_token", nll_ar)
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
averaged, before any attention).

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

def probe(f_tr: torch.Tensor, f_te: torch.Tensor) -> float:
    '''Test accuracy of a logistic regression on standardised features.'''
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(f_tr.numpy(), ptrain.labels.numpy())
    return float(clf.score(f_te.numpy(), ptest.labels.numpy()))

def features(net, tokens):
    '''Every layer's probe features, batched: L + 1 tensors (N, D).'''
    out = [layer_features(net, tokens[i:i + 500].to(DEVICE)) for i in range(0, len(tokens), 500)]
    return [torch.cat([o[l] for o in out]).cpu() for l in range(len(out[0]))]

start = time.perf_counter()
pixel_acc = probe(tok_tr.float(), tok_te.float())
acc = {}
for name, net in (("AR", ar), ("BERT", bert)):
    f_tr, f_te = features(net, tok_tr), features(net, tok_te)
    acc[name] = [probe(a, b) for a, b in zip(f_tr, f_te)]
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
best = max(range(len(acc["AR"])), key=lambda l: acc["AR"][l])
check_prediction(my_prediction, best, range(len(acc["AR"])),
                 why=f"The AR model's probe peaks at layer {best} ({acc['AR'][best]:.3f}); its last layer gives {acc['AR'][-1]:.3f}.")
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
