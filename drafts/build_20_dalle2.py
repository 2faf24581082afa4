"""Writes notebooks/20_dalle2.ipynb (or the path given): `python drafts/build_20_dalle2.py [out]`.

The prose that discusses measured numbers is in TEXT (drafts/text_20.py, written after a cpu run and checked
against its outputs); rebuild, then re-execute with `python -m course_lib run --profile cpu --inplace`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from notebook_builder import NotebookBuilder

b = NotebookBuilder("20_dalle2.ipynb", ('clip', 'prior', 'decoder', 'samples', 'variations'), "drafts/text_20.py")
md, code = b.md, b.code

md(f"""
# 20 · DALL·E 2: CLIP, a prior and a diffusion decoder

{b.badge}

The notes' "DALL·E 2" (Ramesh et al. 2022): *train a prior that generates a CLIP image embedding given a text
caption, and a decoder that generates an image conditioned on the image embedding (diffusion).* Three models:

1. **CLIP** (Radford et al. 2021): an image encoder and a text encoder trained so that an image and its caption
   land close together in one embedding space. You write its contrastive loss. Measured: zero-shot
   classification by caption prompts, and image↔text retrieval.
2. **The prior** $P(z_i \\mid y)$: from the caption's CLIP text embedding to a CLIP *image* embedding — here a
   diffusion prior, as the paper prefers. Measured: how close its embeddings land to the true ones, against
   simply using the text embedding.
3. **The decoder** $P(x \\mid z_i)$: chapter 13's U-Net with the image embedding added to its time embedding.
   Caption → prior → decoder is text-to-image; the same embedding with new noise gives **variations**, and a path
   between two embeddings an **interpolation**.

Everything trains on chapter 15's captioned Fashion-MNIST. The shipped checkpoints are `clip`, `unclip_prior` and
`unclip_decoder` (`python -m course_lib checkpoints clip` retrains one).
""")
b.setup_and_parameters()
code("""
import math
import textwrap
import time
from collections import Counter

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_lib import metrics, plots, record
from course_lib.dalle import clip_logits, recall_at_k
from course_lib.dalle.config import unclip_notebook_config
from course_lib.dalle.shipped import load
from course_lib.text import CLASS_WORDS, Tokenizer, attribute_agreement, caption_dataset, measure_attributes
from course_lib.text.shipped import load_caption_judge
from course_lib.training import predict

cfg = unclip_notebook_config(PROFILE)
words = Tokenizer.for_captions()
test = caption_dataset(cfg.n_eval, "test", seed=0)
cfg
""")

md(r"""
## 1 · CLIP

A batch of $B$ (image, caption) pairs gives $B$ image embeddings $I$ and $B$ caption embeddings $T$, each
normalised to unit length. Their cosine similarities, times a learned scale $e^{t}$, form a $B \times B$ matrix of
logits. The loss (the paper's Fig. 3) asks each image to pick its own caption among the batch's $B$ captions, and
each caption its own image:

$$\mathcal{L} = \tfrac12\Big[\mathrm{CE}\big(I T^\top e^{t},\ [1..B]\big) + \mathrm{CE}\big((I T^\top e^{t})^\top,\ [1..B]\big)\Big].$$

### Exercise: the contrastive loss
""")
code("""
from course_lib.dalle.checks import check_clip_loss_kernel


def my_clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, log_scale: float | torch.Tensor) -> torch.Tensor:
    '''image_emb, text_emb (B, D), paired row by row; log_scale t -> the symmetric loss, a scalar.'''
    ### BEGIN SOLUTION
    logits = F.normalize(image_emb, dim=-1) @ F.normalize(text_emb, dim=-1).T * torch.as_tensor(log_scale).exp()
    target = torch.arange(len(logits))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    ### END SOLUTION


check_clip_loss_kernel(my_clip_loss)
""")
md(r"""
By hand: a CLIP that gives every pair the same similarity has learned nothing. What is its loss on a batch of 128
pairs, in nats (3 significant digits)? That is the line to beat in the training curve below. (A freshly
initialised CLIP starts *above* it: its similarities are not equal but random, and the initial scale
$e^t = 1/0.07 \approx 14$ turns their noise into confidently wrong logits.)
""")
code("""
from course_lib.dalle.checks import check_chance_clip_loss

# The loss at equal similarities, B = 128 (a number)
### BEGIN SOLUTION
my_loss = math.log(128)
### END SOLUTION
check_chance_clip_loss(my_loss)
""")
md("""
Our CLIP's image encoder is chapter 01's ResNet stages with the final 7×7 map flattened (not pooled, so "on the
left" stays readable), the text encoder chapter 15's; both project to 64 numbers. The loop trains a fresh one
for `cfg.train_steps` steps of batch 128 (shifts of ±2 pixels, no flips: a flip would make "left" right); the
shipped `clip` ran 3,000.
""")
code("""
from course_lib.dalle.clip import CLIP, shift
from course_lib.utils import autocast, backward_step, compile_if_asked

train = caption_dataset(60_000, "train", seed=0)
train_ids, train_mask = words.encode_batch(train.captions, 16)
torch.manual_seed(0)
fresh = CLIP(len(words)).to(DEVICE)
compile_if_asked(fresh, DEVICE)                 # torch.compile with COURSE_COMPILE=1 on a GPU
optimizer = torch.optim.AdamW(fresh.parameters(), lr=1e-3, weight_decay=0.01)
g = torch.Generator().manual_seed(0)
losses, start = [], time.perf_counter()
for step in tqdm(range(cfg.train_steps), desc="CLIP"):
    idx = torch.randint(len(train_ids), (128,), generator=g)
    with autocast(DEVICE):          # mixed precision on a GPU (bfloat16; float16 on a T4), a no-op on the CPU
        loss = fresh(shift(train.images[idx], 2, g).to(DEVICE), train_ids[idx].to(DEVICE), train_mask[idx].to(DEVICE))
    backward_step(loss, optimizer, DEVICE)   # zero_grad, backward, step (float16: scaled)
    losses.append(loss.detach())
losses = torch.stack(losses).cpu()
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(losses, lw=0.8)
ax.axhline(math.log(128), color="gray", ls=":", lw=1, label="log 128: chance among the batch")
ax.set(xlabel="step", ylabel="contrastive loss", title=f"a fresh CLIP, {cfg.train_steps} steps of batch 128")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()
print(f"{cfg.train_steps} steps in {time.perf_counter() - start:.0f} s")
""")
md("""
**Zero-shot classification**: CLIP never saw a class label. To classify an image, write a caption for each class
and pick the class whose caption embedding is most similar to the image's. The paper's prompt engineering matters
here too: captions in training always name a size and a brightness, so a bare "a photo of a coat" is unlike any of
them. We compare the bare prompt with an **ensemble**: the mean embedding of every prompt "a photo of a {size}
{brightness} {noun}" over sizes, brightnesses and the class's synonyms.

**Retrieval**: among 1,000 test pairs, how often is an image's own caption the most similar of all the captions
(recall@1), and the other way round. Chance is 1 in 1,000, but 1 is out of reach: a caption says only the class,
size, brightness and position, so dozens of the 1,000 images fit "large dark trousers" equally well. The ceiling
is an oracle that reads those four perfectly and guesses among the pairs that share them. (Identical caption
strings get identical embeddings, and a tie counts as a hit, so image → caption has the higher ceiling.)

Predict before you measure: how does the prompt ensemble's zero-shot accuracy compare with the bare prompt's? One
of `"bare prompt better"`, `"within 2 points"`, `"ensemble better by 2 to 10 points"`,
`"ensemble better by 10 points or more"`.
""")
code("""
# Predict before you run the next cell: one of the four answers above.
### BEGIN SOLUTION
my_prediction = "ensemble better by 2 to 10 points"
### END SOLUTION
""")
code("""
clip = load("clip", DEVICE, PROFILE)
e = clip.checkpoint_entry
print(f"clip: {e['origin']} checkpoint, {e['metrics']['steps']:,} steps of batch 128, trained {e['seconds'] / 60:.0f} min "
      f"on a 2-core CPU; learned scale exp(t) = {math.exp(float(clip.log_scale)):.1f}")

@torch.no_grad()
def embed_text(texts: list[str]) -> torch.Tensor:
    ids, mask = words.encode_batch(texts, 16)
    return F.normalize(clip.encode_text(ids.to(DEVICE), mask.to(DEVICE)), dim=-1).cpu()

@torch.no_grad()
def embed_images(images: torch.Tensor) -> torch.Tensor:
    return F.normalize(torch.cat([clip.encode_image(images[i:i + 1000].to(DEVICE)).cpu()
                                  for i in range(0, len(images), 1000)]), dim=-1)

zi = embed_images(test.images)
bare = embed_text([f"a photo of a {names[0]}" for names in CLASS_WORDS])                                  # (10, D)
ensemble = F.normalize(torch.stack([embed_text([f"a photo of a {s} {b} {noun}" for s in ("small", "large")
                                                for b in ("dark", "light") for noun in names]).mean(0)
                                    for names in CLASS_WORDS]), dim=-1)
zero_shot = {k: float(((zi @ p.T).argmax(1) == test.labels).double().mean()) for k, p in
             (("bare prompt", bare), ("prompt ensemble", ensemble))}
n_ret = min(1000, cfg.n_eval)
sim = zi[:n_ret] @ embed_text(test.captions[:n_ret]).T                                                 # (n, n)
ret = {"image -> caption": recall_at_k(sim, 1), "caption -> image": recall_at_k(sim.T, 1)}
# The oracle's expected recall@1: it ranks the pairs that share a meaning first, in random order among them.
meaning = list(zip(test.labels[:n_ret].tolist(), test.sizes, test.brightness, test.positions))    # what a caption says
shared, same_text = Counter(meaning), Counter(test.captions[:n_ret])
ceiling = {"image -> caption": sum(same_text[c] / shared[m] for c, m in zip(test.captions, meaning)) / n_ret,
           "caption -> image": len(shared) / n_ret}      # identical caption strings tie, and a tie counts as a hit
print(f"zero-shot accuracy on {cfg.n_eval} captioned test images (chance 0.1):")
for k, v in zero_shot.items():
    print(f"  {k:18s} {v:.3f}")
print(f"retrieval among {n_ret} test pairs, recall@1 (chance {1 / n_ret:.3f}; the oracle's ceiling, "
      f"{len(shared)} meanings and {len(same_text)} distinct captions among the {n_ret}):")
for k, v in ret.items():
    print(f"  {k:18s} {v:.3f}   ceiling {ceiling[k]:.3f}")
from course_lib.checks import check_prediction

gain = 100 * (zero_shot["prompt ensemble"] - zero_shot["bare prompt"])
answers = ("bare prompt better", "within 2 points", "ensemble better by 2 to 10 points", "ensemble better by 10 points or more")
measured = answers[0] if gain < -2 else answers[1] if gain <= 2 else answers[2] if gain < 10 else answers[3]
check_prediction(my_prediction, measured, answers,
                 why=f"The ensemble classifies {zero_shot['prompt ensemble']:.1%} correctly, the bare prompt "
                     f"{zero_shot['bare prompt']:.1%} ({gain:+.1f} points).")
record("zero_shot_bare_acc", zero_shot["bare prompt"])
record("zero_shot_ensemble_acc", zero_shot["prompt ensemble"])
record("recall1_image_to_caption", ret["image -> caption"])
record("recall1_caption_to_image", ret["caption -> image"])
record("recall1_ceiling_image_to_caption", ceiling["image -> caption"])
record("recall1_ceiling_caption_to_image", ceiling["caption -> image"])
fig, ax = plt.subplots(figsize=(5, 4.2))
im = ax.imshow(sim[:12, :12], cmap="viridis")
ax.set(xlabel="caption j", ylabel="image i", title="cosine similarity, 12 test pairs (diagonal = matches)")
fig.colorbar(im, ax=ax); plt.tight_layout(); plt.show()
for j in range(4):
    print(f"caption {j}: {test.captions[j]}")
""")
b.discussion("clip")

md(r"""
## 2 · The prior

The paper's Eq. 1: $P(x \mid y) = P(x \mid z_i)\,P(z_i \mid y)$, since the image embedding $z_i$ is a function of
the image. A caption's text embedding $z_t$ is *not* an image embedding — CLIP only made matching pairs closer than
non-matching ones — so the prior learns to produce the image embedding a caption calls for. Ours is a diffusion
model on the 64-number embedding (an MLP denoiser given $z_i^{(t)}$, $t$ and $z_t$) that, as in the paper,
predicts the clean $z_i$ rather than the noise, trained with $\lVert z_i - f(z_i^{(t)}, t, z_t)\rVert^2$ and sampled
with 50 DDIM steps. Embeddings are unit vectors scaled by $\sqrt{64}$.

Measured on test captions: the cosine similarity between the prior's sample and the true image embedding,
against two baselines — the caption's text embedding itself, and a retrieval prior: the image embedding of the
training image (among 20,000 in the cpu profile) whose caption's embedding is nearest.
""")
code("""
from course_lib.dalle.unclip import clip_embeddings, sample_prior, scaled
from course_lib.diffusion import NoiseSchedule

prior = load("unclip_prior", DEVICE, PROFILE)
e = prior.checkpoint_entry
print(f"unclip_prior: {e['origin']} checkpoint, {e['metrics']['steps']:,} steps of batch 256, {e['seconds'] / 60:.1f} min")
schedule = NoiseSchedule(1000).to(DEVICE)
n_p = min(2000, cfg.n_eval)
ids, mask = words.encode_batch(test.captions[:n_p], 16)
zi_true, zt = clip_embeddings(clip, test.images[:n_p], ids, mask)                  # scaled, (n, 64)
n_tr = min(20_000, 10 * cfg.n_eval)                                                # the retrieval prior's pool
zi_train, zt_train = clip_embeddings(clip, train.images[:n_tr], train_ids[:n_tr], train_mask[:n_tr])
z_prior = sample_prior(prior, schedule, zt.to(DEVICE), 50, torch.Generator().manual_seed(0)).cpu()
nearest = (F.normalize(zt, dim=-1) @ F.normalize(zt_train, dim=-1).T).argmax(1)      # the closest training caption
cos = lambda a: float(F.cosine_similarity(a, zi_true).mean())
table = {"the caption's text embedding": cos(zt), "nearest training caption's image": cos(zi_train[nearest]),
         "diffusion prior (one sample)": cos(z_prior)}
record("prior_cos", table["diffusion prior (one sample)"])
record("text_emb_cos", table["the caption's text embedding"])
record("retrieval_prior_cos", table["nearest training caption's image"])
print(f"mean cosine similarity to the true image embedding, {n_p} test captions:")
for k, v in table.items():
    print(f"  {k:36s} {v:.3f}")
""")
b.discussion("prior")

md(r"""
## 3 · The decoder

Chapter 13's U-Net, with one change (the paper's Sec. 2.1: "projecting and adding CLIP embeddings to the existing
timestep embedding"): its time embedding gets $W z_i$ added, and 10 % of the time in training a learned null
vector instead, so that classifier-free guidance (chapter 14) can push samples towards the embedding:
$\hat\epsilon = \epsilon(x_t, \varnothing) + s\,(\epsilon(x_t, z_i) - \epsilon(x_t, \varnothing))$. The shipped
`unclip_decoder` has chapter 14's `ddpm_cond` batch (64) and condition dropout (10 %), but a quarter of its steps
(5,000 against 20,000), the optimiser of chapters 19–20 (AdamW with a one-cycle learning rate) and no moving average of its weights.

First the decoder alone: images decoded from the true embeddings of test images (what the embedding keeps of the
image), then caption → prior → decoder, graded like chapter 19's samples.
""")
code("""
from course_lib.diffusion import ddim_timesteps
from course_lib.diffusion.train import to_unit
from course_lib.guidance import cfg as cfg_combine

decoder = load("unclip_decoder", DEVICE, PROFILE)
e = decoder.checkpoint_entry
print(f"unclip_decoder: {e['origin']} checkpoint, {e['metrics']['steps']:,} steps of batch 64, trained "
      f"{e['seconds'] / 60:.0f} min on a 2-core CPU")
K_STEP = schedule.T // cfg.sample_steps

@torch.no_grad()
def decode(z: torch.Tensor, scale: float = 3.0, seed: int = 0, batch_size: int = 250) -> torch.Tensor:
    '''Image embeddings (N, 64), scaled -> images (N, 1, 28, 28): DDIM with classifier-free guidance.'''
    g, out = torch.Generator().manual_seed(seed), []
    for i in range(0, len(z), batch_size):
        zb = z[i:i + batch_size].to(DEVICE)
        b = len(zb)
        x = torch.randn((b, 1, 28, 28), generator=g).to(DEVICE)
        keep = torch.cat([torch.ones(b, dtype=torch.bool), torch.zeros(b, dtype=torch.bool)]).to(DEVICE)
        for t in ddim_timesteps(schedule.T, cfg.sample_steps):
            tt = torch.full((2 * b,), t, device=DEVICE)
            eps_c, eps_u = decoder(torch.cat([x, x]), tt, torch.cat([zb, zb]), keep).chunk(2)
            x = schedule.ddim_step(cfg_combine(eps_u, eps_c, scale), t, t - K_STEP, x, clip_x0=1.0)
        out.append(to_unit(x).cpu())
    return torch.cat(out)

show = torch.arange(8)
recon = decode(zi_true[show], seed=1)
plots.image_grid(torch.cat([test.images[show], recon]), ["test image"] + [""] * 7 + ["decoded from its z_i"] + [""] * 7,
                 ncols=8, scale=1.2)
plt.show()
""")
b.discussion("decoder")
code("""
judge = load_caption_judge(DEVICE, PROFILE)
n_s = cfg.n_samples                        # the first n_s test captions, the ones the prior embedded above
captions, labels = test.captions[:n_s], test.labels[:n_s]
real_stats = metrics.gaussian(metrics.features(caption_dataset(n_s, "test", seed=5).images))   # another draw

def grade(images: torch.Tensor) -> dict:
    '''Images (n_s, 1, 28, 28) made for `captions` -> class, size, brightness, position agreement and FID.'''
    hit = predict(judge, images).argmax(1) == labels
    out = {"class": float(hit.double().mean())} | attribute_agreement(measure_attributes(images), captions)
    out["fid"] = metrics.frechet_distance(*metrics.gaussian(metrics.features(images)), *real_stats)
    return out

rows = {"real images": grade(test.images[:n_s])}
samples, start = {}, time.perf_counter()
for s in cfg.scales:
    samples[s] = decode(z_prior[:n_s], s, seed=2)
    rows[f"caption -> prior -> decoder, s={s:g}"] = grade(samples[s])
rows["true z_i -> decoder, s=3"] = grade(decode(zi_true[:n_s], 3.0, seed=2))
print(f"{len(cfg.scales) + 1} x {n_s} samples in {time.perf_counter() - start:.0f} s")
print(f"{'':36s} {'class':>6s} {'size':>6s} {'bright':>7s} {'position':>9s} {'FID':>7s}")
for k, r in rows.items():
    print(f"{k:36s} {r['class']:6.3f} {r['size']:6.3f} {r['brightness']:7.3f} {r['position']:9.3f} {r['fid']:7.2f}")
for s in cfg.scales:
    r = rows[f"caption -> prior -> decoder, s={s:g}"]
    for key in ("class", "size", "brightness", "position", "fid"):
        record(f"{key}_s{s:g}".replace(".", "p"), r[key])
record("true_emb_class_acc", rows["true z_i -> decoder, s=3"]["class"])
names = [textwrap.fill(c, 22) for c in captions[:6]]
best_s = max(cfg.scales, key=lambda s: rows[f"caption -> prior -> decoder, s={s:g}"]["class"])
plots.image_grid(samples[best_s][:6], names, ncols=6, scale=2.0, suptitle=f"caption -> prior -> decoder (s = {best_s:g})")
plt.show()
""")
b.discussion("samples")

md("""
## 4 · Variations and interpolations

Two things the image embedding makes easy (the paper's Figs. 3 and 4). **Variations**: decode one image's
embedding with new noise — what the embedding fixes stays, what it leaves open changes. **Interpolation**: decode
points on the great circle between two images' embeddings (spherical interpolation, since CLIP's embeddings live
on a sphere), with the same noise for every point.
""")
code("""
def slerp(a: torch.Tensor, b: torch.Tensor, w: float) -> torch.Tensor:
    '''Spherical interpolation between two embeddings (D,) of the same norm, w in [0, 1].'''
    omega = torch.arccos((F.normalize(a, dim=0) @ F.normalize(b, dim=0)).clamp(-1, 1))
    return (torch.sin((1 - w) * omega) * a + torch.sin(w * omega) * b) / torch.sin(omega)

src = torch.tensor([0, 3])
var = torch.cat([decode(zi_true[[int(i)]].repeat(6, 1), seed=10 + int(i)) for i in src])
plots.image_grid(torch.cat([test.images[src[:1]], var[:6], test.images[src[1:]], var[6:]]),
                 ["original"] + ["variations"] + [""] * 5 + ["original"] + [""] * 6, ncols=7, scale=1.2)
plt.show()
a, b = zi_true[1], zi_true[4]
ws = torch.linspace(0, 1, 7)
path = torch.stack([slerp(a, b, float(w)) for w in ws])
inter = decode(path, seed=20)
plots.image_grid(torch.cat([test.images[[1]], inter, test.images[[4]]]),
                 ["image A"] + [f"w = {float(w):.2f}" for w in ws] + ["image B"], ncols=9, scale=1.2)
plt.show()
""")
b.discussion("variations")

md("""
## What to remember

- CLIP learns one space for images and captions from pairs alone, with a symmetric contrastive loss; it
  classifies by comparing an image with written class descriptions (zero-shot), and prompts matter.
- DALL·E 2 factors text-to-image as a prior (caption → CLIP image embedding) and a decoder (embedding → image).
  The text embedding is not an image embedding: the prior closes that gap, measured by cosine similarity.
- The decoder is a diffusion model whose time embedding carries the image embedding; the same embedding with new
  noise gives variations, and a path between embeddings an interpolation.
""")

b.write()
