"""Writes notebooks/19_dalle.ipynb (or the path given): `python drafts/build_19_dalle.py [out]`.

The prose that discusses measured numbers is in TEXT (drafts/text_19.py, written after a cpu run and checked
against its outputs); rebuild, then re-execute with `python -m course_lib run --profile cpu --inplace`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from notebook_builder import NotebookBuilder

b = NotebookBuilder("19_dalle.ipynb", ('nll', 'samples', 'sweep', 'rerank'), "drafts/text_19.py")
md, code = b.md, b.code

md(f"""
# 19 · DALL·E: text and image as one stream of tokens

{b.badge}

The notes' "DALL·E" (Ramesh et al. 2021): *a simple decoder-only transformer that receives both the text and the
image as a single stream of tokens and models all of them autoregressively*, in two steps:

1. train a discrete VAE that turns an image into a grid of tokens (DALL·E: 256² pixels → 32² tokens; here
   chapter 08's VQ-VAE: 28² pixels → 7² = 49 tokens of 128 codes);
2. concatenate the caption's tokens (DALL·E: up to 256 BPE tokens; here up to 16 words) with the image's tokens
   and train one autoregressive transformer on the joint distribution.

Then a caption alone, followed by sampling the 49 image tokens one at a time, is text-to-image generation. We
measure whether the samples show what the captions say — the garment (graded by chapter 15's caption judge),
its size, brightness and position (read back from the pixels) — and FID; how the sampling knobs (temperature,
top-k) move those numbers; and how much **reranking** several samples per caption with CLIP (notebook 20's
model; DALL·E reranks 512 samples) gains.

The model graded from section 3 on is the shipped checkpoint `dalle` (`python -m course_lib checkpoints dalle`
retrains it).
""")
b.setup_and_parameters()
code("""
import math
import textwrap
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_lib import metrics, plots, record
from course_lib.dalle import DALLE, filter_logits, stream_loss, stream_mask
from course_lib.dalle.config import dalle_notebook_config
from course_lib.dalle.data import TEXT_LEN, token_pairs
from course_lib.text import Tokenizer, attribute_agreement, caption_dataset, measure_attributes
from course_lib.text.shipped import load_caption_judge
from course_lib.training import predict
from course_lib.vq import load_tokenizer

cfg = dalle_notebook_config(PROFILE)
words = Tokenizer.for_captions()
tokenizer = load_tokenizer(DEVICE, PROFILE)                          # chapter 08's VQ-VAE, frozen
cfg
""")

md("""
## 1 · The stream

Each captioned training image (chapter 15's `caption_dataset`: every item drawn small or large, dark or light,
and when small against one side, and the caption says all of it) becomes one sequence: the caption's word ids,
padded to 16, then the image's 49 tokens in raster order.
""")
code("""
pairs = token_pairs(6, "test", seed=0)
i = 0
print(f"caption: {pairs.captions.captions[i]!r}")
print(f"  word ids    ({TEXT_LEN}): {pairs.text[i].tolist()}   (1 = <start>, 0 = <pad>)")
print(f"  image tokens  (49): {pairs.codes[i].tolist()}")
print(f"  the stream: {TEXT_LEN} + 49 = {TEXT_LEN + 49} tokens")
with torch.no_grad():
    decoded = tokenizer.decode_tokens(pairs.codes.view(-1, 7, 7).to(DEVICE)).cpu()
plots.image_grid(torch.cat([pairs.captions.images, decoded]),
                 [textwrap.fill(c, 22) for c in pairs.captions.captions] + ["its 49 tokens, decoded"] * 6,
                 ncols=6, scale=2.0)
plt.show()
""")
md(r"""
One network reads the stream left to right. Every position predicts the next token, so the mask is causal over
the whole stream: caption tokens see the caption so far, image tokens see the entire caption and the image
tokens before them. The figure draws it, with the four blocks named.

Two details from the paper: a caption shorter than 16 words is filled with a **pad token learned separately for
each position** (so no padding mask is needed: the pads are ordinary tokens), and the loss weighs the caption's
tokens by 1/8 and the image's by 7/8 — the model is for images, but learning to predict the words helps too.
""")
code("""
L, N = TEXT_LEN, 49
m = stream_mask(L, N).float()
fig, ax = plt.subplots(figsize=(5.6, 5.2))
ax.imshow(m, cmap="Blues", vmin=0, vmax=1.4)
ax.axhline(L - 0.5, color="tab:orange", lw=1.2); ax.axvline(L - 0.5, color="tab:orange", lw=1.2)
for (y, x, t) in ((L / 2, L / 2, "text -> text\\n(causal)"), (L + N / 2, L / 2, "image -> text\\n(all of it)"),
                  (L + N / 2, L + N / 2, "image -> image\\n(causal)"), (L / 2, L + N / 2, "text -> image\\n(never)")):
    ax.text(x, y, t, ha="center", va="center", fontsize=8, bbox=dict(facecolor="white", alpha=0.85, lw=0))
ax.set(xlabel="key: the token attended to (0-15 caption, 16-64 image)", ylabel="query position",
       title="the stream's attention mask (blue = may attend)")
plt.tight_layout(); plt.show()
""")

md("""
By hand: how many (query, key) pairs does this mask allow, over the whole 65-token stream? (The cost of attention
grows with that count; DALL·E's sparse masks cut it further.)
""")
code("""
from course_lib.dalle.checks import check_mask_pairs

# Allowed (query, key) pairs of the causal mask over 65 tokens (a number)
### BEGIN SOLUTION
my_pairs = 65 * 66 // 2
### END SOLUTION
check_mask_pairs(my_pairs)
""")
md("""
## 2 · Training

The loop below trains a fresh DALL·E (dim 128, 4 causal blocks of 4 heads, as the shipped one) on the tokenized
captioned training set for `cfg.train_steps` steps; the shipped `dalle` took 6,000.
""")
code("""
from course_lib.utils import autocast, backward_step, compile_if_asked
train = token_pairs(60_000, "train", seed=0)
torch.manual_seed(0)
model = DALLE(len(words), TEXT_LEN, image_vocab=128, image_len=49, dim=128, depth=4, heads=4).to(DEVICE)
compile_if_asked(model, DEVICE)                 # torch.compile with COURSE_COMPILE=1 on a GPU
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
g = torch.Generator().manual_seed(0)
log, start = [], time.perf_counter()
for step in tqdm(range(cfg.train_steps), desc="DALL-E"):
    idx = torch.randint(len(train.text), (64,), generator=g)
    with autocast(DEVICE):          # mixed precision on a GPU (bfloat16; float16 on a T4), a no-op on the CPU
        loss, ce_text, ce_image = stream_loss(model, train.text[idx].to(DEVICE), train.codes[idx].to(DEVICE))
    backward_step(loss, optimizer, DEVICE)   # zero_grad, backward, step (float16: scaled)
    log.append(torch.stack([ce_text, ce_image]).detach())
log = torch.stack(log).cpu()
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(log[:, 0], lw=0.8, label="caption tokens")
ax.plot(log[:, 1], lw=0.8, label="image tokens")
ax.axhline(math.log(128), color="gray", ls=":", lw=1, label="log 128 (uniform over codes)")
ax.set(xlabel="step", ylabel="cross-entropy (nats per token)", title=f"a fresh DALL-E, {cfg.train_steps} steps of batch 64")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()
print(f"{cfg.train_steps} steps in {time.perf_counter() - start:.0f} s")
""")
code("""
from course_lib.dalle.shipped import load

dalle = load("dalle", DEVICE, PROFILE)
e = dalle.checkpoint_entry
print(f"dalle: {e['origin']} checkpoint, {e['metrics']['steps']:,} steps of batch 64, trained "
      f"{e['seconds'] / 60:.0f} min on a 2-core CPU")
test = token_pairs(cfg.n_eval, "test", seed=0)
with torch.no_grad():
    parts = [stream_loss(dalle, test.text[i:i + 500].to(DEVICE), test.codes[i:i + 500].to(DEVICE)) for i in range(0, cfg.n_eval, 500)]
ce_image = float(torch.stack([p[2] for p in parts]).mean())
counts = torch.bincount(train.codes.flatten(), minlength=128).double() + 1
unigram = float(-(counts / counts.sum()).log()[test.codes].mean())
pos = torch.stack([torch.bincount(train.codes[:, j], minlength=128).double() + 1 for j in range(49)])
per_pos = float(-(pos / pos.sum(1, keepdim=True)).log()[torch.arange(49), test.codes].mean())
with torch.no_grad():                                                # the same model, reading a wrong caption
    shuffled = test.text[torch.roll(torch.arange(cfg.n_eval), 1)]
    wrong = float(torch.stack([stream_loss(dalle, shuffled[i:i + 500].to(DEVICE), test.codes[i:i + 500].to(DEVICE))[2]
                               for i in range(0, cfg.n_eval, 500)]).mean())
print(f"image-token NLL on {cfg.n_eval} captioned test images, bits per token:")
for k, v in (("uniform over 128 codes", math.log(128)), ("unigram (code frequencies)", unigram),
             ("per position", per_pos), ("DALL-E, another image's caption", wrong), ("DALL-E, the image's caption", ce_image)):
    print(f"  {k:34s} {v / math.log(2):6.3f}")
record("image_bits_per_token", ce_image / math.log(2))
record("image_bits_wrong_caption", wrong / math.log(2))
record("image_bits_per_position", per_pos / math.log(2))
""")
b.discussion("nll")

md("""
## 3 · Sampling

Generation is the loop of chapter 16: the caption, then 49 times: the model's distribution of the next image
token, filtered, one draw, appended. Two knobs shape the distribution before the draw: the **temperature**
(divide the logits by $T$: $T < 1$ sharpens) and **top-k** (keep the $k$ most likely tokens).

### Exercise: temperature and top-k

Return the filtered logits: divided by the temperature, and all but each row's `top_k` largest set to $-\\infty$
(`top_k` None keeps all).
""")
code("""
from course_lib.dalle.checks import check_filter_kernel


def my_filter_logits(logits: torch.Tensor, temperature: float, top_k: int | None) -> torch.Tensor:
    '''logits (B, V) -> (B, V): logits / temperature, all but the top_k of each row set to -inf.'''
    ### BEGIN SOLUTION
    logits = logits / temperature
    if top_k is not None:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits
    ### END SOLUTION


check_filter_kernel(my_filter_logits)
""")
code("""
@torch.no_grad()
def generate(text: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
             batch_size: int = 500) -> torch.Tensor:
    '''Caption ids (B, 16) -> images (B, 1, 28, 28): 49 image tokens drawn one by one, then decoded.'''
    g, out = torch.Generator().manual_seed(seed), []
    for i in range(0, len(text), batch_size):
        t = text[i:i + batch_size].to(DEVICE)
        codes = torch.zeros(len(t), 0, dtype=torch.long, device=DEVICE)
        for _ in range(49):
            _, image_logits = dalle(t, codes)                             # (b, n + 1, 128)
            probs = filter_logits(image_logits[:, -1], temperature, top_k).softmax(-1)
            codes = torch.cat([codes, torch.multinomial(probs.cpu(), 1, generator=g).to(DEVICE)], 1)
        out.append(tokenizer.decode_tokens(codes.view(-1, 7, 7)).cpu())
    return torch.cat(out)

captions = ["a photo of a large light dress", "a small dark sneaker on the left", "an image of a large dark bag",
            "a picture of a small light coat at the top", "large light trousers", "a small dark ankle boot on the right"]
ids, _ = words.encode_batch(captions, TEXT_LEN)
start = time.perf_counter()
grid = generate(ids.repeat_interleave(6, 0), seed=1)
print(f"{len(grid)} samples in {time.perf_counter() - start:.1f} s (temperature 1, no top-k)")
plots.image_grid(grid, sum(([textwrap.fill(c, 24)] + [""] * 5 for c in captions), []), ncols=6, scale=1.6)
plt.show()
""")
b.discussion("samples")

md("""
### Measured: does the sample show the caption?

For `cfg.n_eval` captions of the test set, one sample each per sampling setting, graded as in chapter 15: the caption
judge's class against the caption's garment, and size, brightness and position read from the pixels against the
caption's words; FID (the course judge's features) against another draw of as many real captioned test images.
Two references: the real test images themselves (their FID is the floor that sampling noise alone leaves), and
their own 49 tokens decoded (what the tokenizer keeps of them; a sample is 49 tokens decoded, too). Chance: 10 %
for the class, 50 % for size and brightness, 25 % for the position.
""")
code("""
judge = load_caption_judge(DEVICE, PROFILE)
real = test.captions
real_stats = metrics.gaussian(metrics.features(caption_dataset(cfg.n_eval, "test", seed=5).images))  # another draw

def grade(images: torch.Tensor) -> dict:
    '''Class accuracy (caption judge), attribute agreement and FID of images against the test captions.'''
    hit = predict(judge, images).argmax(1) == real.labels[:len(images)]
    out = {"class": float(hit.double().mean())} | attribute_agreement(measure_attributes(images), real.captions[:len(images)])
    out["fid"] = metrics.frechet_distance(*metrics.gaussian(metrics.features(images)), *real_stats)
    return out

with torch.no_grad():
    decoded = torch.cat([tokenizer.decode_tokens(test.codes[i:i + 1000].view(-1, 7, 7).to(DEVICE)).cpu()
                         for i in range(0, cfg.n_eval, 1000)])
rows = {"real images": grade(real.images), "their tokens, decoded": grade(decoded)}
samples, start = {}, time.perf_counter()
for T, k in cfg.settings:
    samples[(T, k)] = generate(test.text, T, k, seed=2)
    rows[f"DALL-E, T={T:g}, top-k={k}"] = grade(samples[(T, k)])
print(f"{len(cfg.settings)} x {cfg.n_eval} samples in {time.perf_counter() - start:.0f} s")
print(f"{'':32s} {'class':>6s} {'size':>6s} {'bright':>7s} {'position':>9s} {'FID':>7s}")
for k, r in rows.items():
    print(f"{k:32s} {r['class']:6.3f} {r['size']:6.3f} {r['brightness']:7.3f} {r['position']:9.3f} {r['fid']:7.2f}")
for (T, k) in cfg.settings:
    r = rows[f"DALL-E, T={T:g}, top-k={k}"]
    tag = f"T{T:g}_k{k}".replace(".", "p")
    for key in ("class", "size", "brightness", "position", "fid"):
        record(f"{key}_{tag}", r[key])
best = max(cfg.settings, key=lambda s: rows[f"DALL-E, T={s[0]:g}, top-k={s[1]}"]["class"])
record("best_class_acc", rows[f"DALL-E, T={best[0]:g}, top-k={best[1]}"]["class"])
record("decoded_tokens_class_acc", rows["their tokens, decoded"]["class"])
""")
b.discussion("sweep")

md("""
## 4 · Reranking with CLIP

DALL·E draws 512 samples per caption and keeps the ones that CLIP (notebook 20's contrastive model) scores as
best matching the caption. Here: `cfg.candidates` samples per caption at the best setting above, scored by the
cosine similarity of the shipped `clip`'s image and caption embeddings; the top one is kept.

Predict before you measure: against the first sample of each caption, how many points of class accuracy does
picking CLIP's favourite of the candidates add? One of `"none or less"`, `"under 3 points"`, `"3 to 10 points"`,
`"10 points or more"`.
""")
code("""
# Predict before you run the next cell: one of ("none or less", "under 3 points", "3 to 10 points", "10 points or more").
### BEGIN SOLUTION
my_prediction = "10 points or more"
### END SOLUTION
""")
code("""
from course_lib.checks import check_prediction
from course_lib.dalle.shipped import load as load_shipped

clip = load_shipped("clip", DEVICE, PROFILE)
n, c = cfg.n_rerank, cfg.candidates
T, k = best
text = test.text[:n]
cands = generate(text.repeat_interleave(c, 0), T, k, seed=3).view(n, c, 1, 28, 28)
cap_ids, cap_mask = words.encode_batch(real.captions[:n], TEXT_LEN)
with torch.no_grad():
    zi = F.normalize(clip.encode_image(cands.flatten(0, 1).to(DEVICE)), dim=-1).view(n, c, -1)
    zt = F.normalize(clip.encode_text(cap_ids.to(DEVICE), cap_mask.to(DEVICE)), dim=-1)
    score = (zi * zt[:, None]).sum(-1).cpu()                              # (n, c) cosine similarities
pick = score.argmax(1)
chosen = cands[torch.arange(n), pick]
first = cands[:, 0]
labels = real.labels[:n]
acc = lambda imgs: float((predict(judge, imgs).argmax(1) == labels).double().mean())
attr = lambda imgs: attribute_agreement(measure_attributes(imgs), real.captions[:n])
acc_first, acc_pick = acc(first), acc(chosen)
any_right = float((predict(judge, cands.flatten(0, 1)).argmax(1).view(n, c) == labels[:, None]).any(1).double().mean())
print(f"{n} captions, {c} samples each (T={T:g}, top-k={k}); class accuracy (caption judge):")
print(f"  the first sample           {acc_first:.3f}   attributes {attr(first)}")
print(f"  CLIP's favourite           {acc_pick:.3f}   attributes {attr(chosen)}")
print(f"  any of the {c} is right      {any_right:.3f}   (the most reranking could reach)")
gain = 100 * (acc_pick - acc_first)
record("rerank_acc_first", acc_first)
record("rerank_acc_clip", acc_pick)
record("rerank_acc_oracle", any_right)
measured = ("none or less" if gain <= 0 else "under 3 points" if gain < 3 else "3 to 10 points" if gain < 10
            else "10 points or more")
check_prediction(my_prediction, measured, ("none or less", "under 3 points", "3 to 10 points", "10 points or more"),
                 why=f"CLIP's pick is right {acc_pick:.1%} of the time, the first sample {acc_first:.1%} ({gain:+.1f} points).")
show = torch.arange(min(6, n))
plots.image_grid(torch.cat([cands[show].flatten(0, 1)]),
                 [f"{'* ' if j == int(pick[i]) else ''}{float(score[i, j]):.2f}" for i in show for j in range(c)],
                 ncols=c, scale=1.1, suptitle="candidates per caption (row), CLIP's cosine above; * = kept")
plt.show()
for i in show:
    print(f"row {int(i)}: {real.captions[int(i)]}")
""")
b.discussion("rerank")

md("""
## What to remember

- DALL·E is a language model over one stream: caption tokens, then image tokens from a discrete VAE. The mask is
  causal; image tokens see the whole caption.
- Text-to-image sampling is next-token sampling; temperature and top-k trade variety for the most likely tokens.
- The tokenizer sets the quality: a sample is 49 codes decoded, and its FID stays above that of real images'
  own tokens decoded.
- Reranking many samples with a contrastive text-image model buys accuracy with compute.
""")

b.write()
