"""Writes notebooks/18_beit.ipynb (or the path given): `python drafts/build_18_beit.py [out]`.

The prose that discusses measured numbers is in TEXT (drafts/text_18.py, written after a cpu run and checked
against its outputs); rebuild, then re-execute with `python -m course_lib run --profile cpu --inplace`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from notebook_builder import NotebookBuilder

b = NotebookBuilder("18_beit.ipynb", ('tokens', 'masks', 'mim', 'decoded', 'finetune', 'vae'), "drafts/text_18.py")
md, code = b.md, b.code

md(f"""
# 18 · BEiT: BERT pre-training of image transformers

{b.badge}

The notes' "BEiT" (Bao et al. 2022): *BEiT models are regular Vision Transformers, but pre-trained in a
self-supervised way rather than supervised* — and, unlike Image GPT (chapter 16), with vision-specific pieces:
patches as the input and **discrete visual tokens** as the targets. The notes add: *the BEiT pre-training can be
viewed as variational autoencoder training.* Chapter 17 measured what the ViT's missing inductive bias costs when
labels are scarce; here we ask whether pre-training on unlabelled images buys it back.

1. **Two views of one image**: 49 patches for the ViT, 49 visual tokens from chapter 08's VQ-VAE tokenizer.
2. **Blockwise masking** (Algorithm 1): about 40 % of the patches hidden, in blocks; you write it.
3. **Masked image modelling**: the ViT predicts the hidden tokens; you write the loss. Its accuracy against the
   baselines a guesser would reach, and its predictions decoded.
4. **Fine-tuning with 10 % of the labels**: the pre-trained ViT against the same ViT from scratch (chapter 17's
   `vit_fmnist_10pct`) and the ResNet, with a paired test on the 10,000 test images; linear probes beside raw
   pixels.
5. **BEiT as a VAE**: the notes' reading, in equations, with the two terms measured in nats.

The models of sections 3–4 are shipped checkpoints: `beit_pretrain` (5,000 steps of batch 128 on the 60,000
training images without their labels), `beit_finetune_10pct`, and chapter 17's `vit_fmnist_10pct` and
`resnet_fmnist_10pct`.
""")
b.setup_and_parameters()
code("""
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_lib import plots, record
from course_lib.data import fashion_mnist
from course_lib.transformers import ViT, patchify
from course_lib.transformers.beit import BEiT, blockwise_mask, masks, mim_loss
from course_lib.transformers.config import beit_notebook_config
from course_lib.vq import load_tokenizer

cfg = beit_notebook_config(PROFILE)
train, test = fashion_mnist("train"), fashion_mnist("test")
names = test.classes
tokenizer = load_tokenizer(DEVICE, PROFILE)                        # chapter 08's VQ-VAE, frozen
cfg
""")

md("""
## 1 · Two views of one image

BEiT's Fig. 1: the ViT reads the image as patches (chapter 17: 4×4 pixels each, a 7×7 grid), and a tokenizer
turns the same image into a 7×7 grid of discrete **visual tokens** (the paper uses DALL·E's dVAE with 8,192 codes;
we use chapter 08's VQ-VAE with 128). Token $i$ sits at patch $i$'s place in the grid, but it is **not a code for
that 4×4 patch**: chapter 08 measured that one token's receptive field is 26×26 of the 28×28 pixels, and that
all-black 4×4 cells carry 60 different codes. A token encodes its cell *in context*, and the decoder, as wide,
paints the cell and the edges of its neighbours from it. For BEiT this matters: the tokens are the targets, so the
target of a masked patch depends partly on pixels the model can still see.
""")
code("""
x = test.images[:1].to(DEVICE)                                      # (1, 1, 28, 28): one image, shown large
with torch.no_grad():
    codes = tokenizer.encode_tokens(x)[0].cpu()                     # (7, 7) int64 in [0, 128)
    decoded = tokenizer.decode_tokens(codes[None].to(DEVICE))[0, 0].cpu()   # (28, 28)
black = patchify(x, 4)[0].amax(-1).view(7, 7).cpu() == 0            # (7, 7): cells whose own 16 pixels are all black
print(f"patches {tuple(patchify(x, 4).shape)}, visual tokens {tuple(codes.shape)} from a vocabulary of {tokenizer.num_codes}")
print(f"{int(black.sum())} of this image's 49 cells are all black; they carry {len(codes[black].unique())} different tokens")
fig, axes = plt.subplots(1, 3, figsize=(10, 3.7))
axes[0].imshow(x[0, 0].cpu(), cmap="gray", vmin=0, vmax=1)
axes[1].imshow(black, cmap="Greys", vmin=0, vmax=4)                 # light grey: an all-black cell
for r in range(7):
    for c in range(7):
        axes[1].text(c, r, str(int(codes[r, c])), fontsize=9, ha="center", va="center")
axes[2].imshow(decoded, cmap="gray", vmin=0, vmax=1)
for k in range(1, 7):
    axes[0].axhline(4 * k - 0.5, color="orange", lw=0.5); axes[0].axvline(4 * k - 0.5, color="orange", lw=0.5)
    axes[1].axhline(k - 0.5, color="gray", lw=0.5); axes[1].axvline(k - 0.5, color="gray", lw=0.5)
for ax, t in zip(axes, (f"{names[int(test.labels[0])]}: 49 patches of 4x4 pixels", "its 49 visual tokens\\n(grey: the cell's pixels are all black)",
                        "the tokens, decoded")):
    ax.set_title(t, fontsize=9); ax.set_xticks([]); ax.set_yticks([])
plt.tight_layout(); plt.show()
""")
b.discussion("tokens")

md("""
## 2 · Blockwise masking

BERT masks 15 % of the words at random. Neighbouring patches are so alike that a randomly hidden patch can be
copied from its neighbours; BEiT hides whole **blocks** instead. Algorithm 1 on a $g \\times g$ grid of $N = g^2$
patches, as the paper's code runs it, with the target $t = \\mathrm{round}(0.4\\,N)$ masked patches (the paper: 75 of
196, blocks of at least $s_\\min = 16$; our 7×7 grid: 20 of 49, $s_\\min = 4$):

1. Start with nothing masked, $\\mathcal{M} = \\emptyset$.
2. Draw a block area $s \\sim U\\big(s_\\min,\\ t - |\\mathcal{M}|\\big)$ and an aspect ratio $r$ with
   $\\log r \\sim U\\big(\\log 0.3,\\ \\log \\tfrac{1}{0.3}\\big)$: the block has $a = \\mathrm{round}\\sqrt{s\\,r}$ rows and
   $b = \\mathrm{round}\\sqrt{s / r}$ columns.
3. If it does not fit ($a$ or $b$ outside $[1, g)$), reject it. Else draw its top-left corner,
   $\\text{top} = \\lfloor U(0,\\ g - a + 1) \\rfloor$, $\\text{left} = \\lfloor U(0,\\ g - b + 1) \\rfloor$.
4. Accept it if the patches it adds (those not masked yet) number at least 1 and at most $t - |\\mathcal{M}|$, so
   the count never passes $t$ (the paper's pseudo-code stops once $|\\mathcal{M}| > 0.4N$; its code stops at $t$).
5. Repeat from 2 until $|\\mathcal{M}| = t$, or until 10 blocks in a row were rejected (then a patch or two short).

### Exercise: blockwise masking

Write Algorithm 1. `rand(lo, hi)` returns one uniform number in $[lo, hi)$; the check gives your function and
course_lib's `blockwise_mask` the same stream of draws on several grids, so draw in the order of the steps: $s$,
$\\log r$, then, for a block that fits, top and left.
""")
code("""
from course_lib.transformers.checks import check_blockwise_mask_kernel


def my_blockwise_mask(grid: int, ratio: float, min_block: int, rand) -> torch.Tensor:
    '''Algorithm 1 -> (grid * grid,) bool, True = masked, row by row. rand(lo, hi) -> float: one uniform draw.'''
    ### BEGIN SOLUTION
    target = round(ratio * grid * grid)
    M = torch.zeros(grid, grid, dtype=torch.bool)                       # (g, g)
    while (remaining := target - int(M.sum())) > 0:
        for _ in range(10):                                             # 10 tries at one block
            s = rand(min_block, remaining)                              # area
            r = math.exp(rand(math.log(0.3), math.log(1 / 0.3)))        # aspect ratio, log-uniform
            a, b = round(math.sqrt(s * r)), round(math.sqrt(s / r))     # rows, columns
            if not (1 <= a < grid and 1 <= b < grid):
                continue                                                # does not fit: no corner drawn
            top, left = int(rand(0, grid - a + 1)), int(rand(0, grid - b + 1))
            new = a * b - int(M[top:top + a, left:left + b].sum())      # patches it would add
            if 0 < new <= remaining:
                M[top:top + a, left:left + b] = True
                break
        else:                                                           # 10 rejections in a row
            break
    return M.flatten()
    ### END SOLUTION


check_blockwise_mask_kernel(my_blockwise_mask)
""")
md("""
Six masks and, over 2,000 masks, how often each patch is hidden:
""")
code("""
from matplotlib.patches import Patch

g = torch.Generator().manual_seed(0)
examples = torch.stack([blockwise_mask(7, 0.4, generator=g) for _ in range(6)])
many = torch.stack([blockwise_mask(7, 0.4, generator=g) for _ in range(2_000)])
fig = plt.figure(figsize=(10, 4.6))
grid = fig.add_gridspec(2, 5, width_ratios=[1, 1, 1, 0.25, 2.1], wspace=0.15, hspace=0.3)
freq = many.float().mean(0).view(7, 7)                               # (7, 7): P(masked) per patch
for i in range(6):
    ax = fig.add_subplot(grid[i // 3, i % 3])
    ax.imshow(examples[i].view(7, 7), cmap="Oranges", vmin=0, vmax=1.2)
    ax.set_title(f"{int(examples[i].sum())} of 49 masked", fontsize=9)
    ax.set_xticks([k - 0.5 for k in range(8)]); ax.set_yticks([k - 0.5 for k in range(8)])
    ax.grid(color="gray", lw=0.5); ax.tick_params(length=0, labelbottom=False, labelleft=False)
    if i == 3:
        ax.legend(handles=[Patch(color=plt.cm.Oranges(1 / 1.2), label="masked patch"),
                           Patch(facecolor="white", edgecolor="gray", label="visible patch")],
                  loc="upper left", bbox_to_anchor=(0, -0.04), ncol=2, fontsize=9, frameon=False)
ax = fig.add_subplot(grid[:, 4])
im = ax.imshow(freq, cmap="viridis", vmin=0, vmax=1)
ax.set_title("P(masked) per patch, 2,000 masks", fontsize=9); ax.set_xticks([]); ax.set_yticks([])
fig.colorbar(im, ax=ax, fraction=0.046, label="P(masked)")
fig.suptitle("blockwise masks on the 7 x 7 patch grid (ratio 0.4)", fontsize=10)
plt.show()
print(f"masked per image over 2,000 masks: mean {float(many.sum(1).float().mean()):.2f}, "
      f"min {int(many.sum(1).min())}, max {int(many.sum(1).max())} of 49")
print(f"P(masked): centre patch {float(freq[3, 3]):.2f}; corners {float(freq[0, 0]):.2f}, {float(freq[0, 6]):.2f}, "
      f"{float(freq[6, 0]):.2f}, {float(freq[6, 6]):.2f}")
right = (many.view(-1, 7, 7)[:, :, :-1] & many.view(-1, 7, 7)[:, :, 1:]).sum() / many.view(-1, 7, 7)[:, :, :-1].sum()
print(f"P(right neighbour masked | masked) = {float(right):.2f} (a random mask of 20 patches: {19 / 48:.2f})")
record("mask_fraction", many.float().mean())
""")
b.discussion("masks")

md(r"""
## 3 · Masked image modelling

The masked patches' embeddings are replaced by one learned vector $e_{[M]}$, the ViT encodes the corrupted
sequence, and a linear head over the 128 visual tokens reads each masked position's output. The objective (the
paper's Eq. 1) maximises the log-likelihood of the true tokens at the masked positions $\mathcal{M}$:

$$\max \sum_{x \in \mathcal{D}} \mathbb{E}_{\mathcal{M}} \Big[\sum_{i \in \mathcal{M}} \log p_\text{MIM}(z_i \mid x^{\mathcal{M}})\Big].$$

### Exercise: the masked-token loss

Given the head's logits at every position, the tokens and the mask, return the mean negative log-likelihood over
the masked positions of the whole batch.
""")
code("""
from course_lib.transformers.checks import check_mim_loss_kernel


def my_mim_loss(logits: torch.Tensor, codes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    '''logits (B, N, V), codes (B, N) long, mask (B, N) bool (True = masked) -> mean NLL over masked positions ().'''
    ### BEGIN SOLUTION
    return F.cross_entropy(logits[mask], codes[mask])
    ### END SOLUTION


check_mim_loss_kernel(my_mim_loss)
""")
md("""
The pre-training loop: random flips and shifts of a batch of training images (no labels), their tokens from the
frozen tokenizer, one blockwise mask per image, the loss. A fresh BEiT for `cfg.train_steps` steps (the gpu
profile runs the shipped 5,000).
""")
code("""
from course_lib.training import augment
from course_lib.utils import autocast, backward_step, compile_if_asked

torch.manual_seed(0)
beit_fresh = BEiT(ViT(), vocab=tokenizer.num_codes).to(DEVICE)
compile_if_asked(beit_fresh, DEVICE)                 # torch.compile with COURSE_COMPILE=1 on a GPU
optimizer = torch.optim.AdamW(beit_fresh.parameters(), lr=1e-3, weight_decay=0.05)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=cfg.train_steps)
g = torch.Generator().manual_seed(0)
losses, accs, start = [], [], time.perf_counter()
for step in tqdm(range(cfg.train_steps), desc="BEiT pre-training"):
    xb = augment(train.images[torch.randint(len(train.images), (128,), generator=g)], g).to(DEVICE)
    with torch.no_grad():
        zb = tokenizer.encode_tokens(xb).flatten(1)                      # (128, 49) targets
    with autocast(DEVICE):          # mixed precision on a GPU (bfloat16; float16 on a T4), a no-op on the CPU
        loss, acc = mim_loss(beit_fresh, xb, zb, masks(128, 7, 0.4, g).to(DEVICE))
    backward_step(loss, optimizer, DEVICE)   # zero_grad, backward, step (float16: scaled)
    schedule.step()
    losses.append(loss.detach()); accs.append(acc.detach())
losses, accs = torch.stack(losses).cpu(), torch.stack(accs).cpu()
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(losses, lw=0.8, label="loss (nats per masked token)")
ax.axhline(math.log(tokenizer.num_codes), color="gray", ls=":", lw=1, label="log 128 (uniform)")
ax.set(xlabel="step", ylabel="nats", title=f"a fresh BEiT, {cfg.train_steps} steps of batch 128")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()
print(f"{cfg.train_steps} steps in {time.perf_counter() - start:.0f} s; masked-token accuracy of the last 10 batches: "
      f"{float(accs[-10:].mean()):.3f}")
""")
md("""
The shipped `beit_pretrain` is measured on test images with fresh masks, against what a guesser gets without a
network: the most frequent token of 10,000 training images everywhere; the most frequent token among the image's own
*visible* tokens; and the token of the nearest visible patch (the copy that random masking would make easy).
""")
code("""
from course_lib.transformers.shipped import load_beit

beit = load_beit("beit_pretrain", DEVICE, PROFILE)
e = beit.checkpoint_entry
print(f"beit_pretrain: {e['origin']} checkpoint, {e['metrics']['steps']:,} steps of batch 128, trained "
      f"{e['seconds'] / 60:.0f} min on a 2-core CPU")
xt = test.images[:cfg.n_eval].to(DEVICE)
with torch.no_grad():
    zt = tokenizer.encode_tokens(xt).flatten(1).cpu()                  # (n, 49)
    ztrain = torch.cat([tokenizer.encode_tokens(train.images[i:i + 2000].to(DEVICE)).flatten(1).cpu()
                        for i in range(0, 10_000, 2000)])
Mt = masks(len(xt), 7, 0.4, torch.Generator().manual_seed(1))
with torch.no_grad():
    logits = torch.cat([beit(xt[i:i + 500], Mt[i:i + 500].to(DEVICE)).cpu() for i in range(0, len(xt), 500)])
acc_beit = float((logits.argmax(-1)[Mt] == zt[Mt]).float().mean())
nll_beit = float(F.cross_entropy(logits[Mt], zt[Mt]))

top = torch.bincount(ztrain.flatten(), minlength=128).argmax()
acc_top = float((zt[Mt] == top).float().mean())
vis_mode = torch.stack([torch.bincount(zt[b][~Mt[b]], minlength=128).argmax() for b in range(len(zt))])
acc_vis = float((vis_mode[:, None].expand_as(zt)[Mt] == zt[Mt]).float().mean())
rc = torch.stack([torch.arange(49) // 7, torch.arange(49) % 7], 1).float()
d = torch.cdist(rc, rc)                                                 # (49, 49) grid distances
near = torch.where(Mt[:, None, :], torch.full((1, 1, 49), float("inf")), d[None]).argmin(-1)   # nearest visible patch
acc_near = float((zt.gather(1, near)[Mt] == zt[Mt]).float().mean())
print(f"masked-token accuracy on {cfg.n_eval} test images ({int(Mt.sum()):,} masked tokens):")
for k, v in (("most frequent token", acc_top), ("most frequent visible token of the image", acc_vis),
             ("token of the nearest visible patch", acc_near), ("BEiT", acc_beit)):
    print(f"  {k:42s} {v:.3f}")
print(f"BEiT's NLL on them: {nll_beit:.3f} nats = {nll_beit / math.log(2):.2f} bits per token (uniform: 7 bits)")
record("mim_acc", acc_beit)
record("mim_nll_bits", nll_beit / math.log(2))
record("mim_acc_nearest_visible", acc_near)
record("mim_acc_most_frequent", acc_top)
""")
b.discussion("mim")
md("""
The predictions decoded: BEiT's tokens at the masked positions (the visible ones kept) through the tokenizer's
decoder, beside the true tokens decoded, and their difference. The mean squared difference on the masked cells'
pixels, over all the test images above, is printed beside two guessers' tokens decoded the same way.
""")
code("""
@torch.no_grad()
def decode(z: torch.Tensor) -> torch.Tensor:
    '''Tokens (n, 49) -> decoded images (n, 1, 28, 28) on the CPU, in batches.'''
    return torch.cat([tokenizer.decode_tokens(z[i:i + 500].view(-1, 7, 7).to(DEVICE)).cpu() for i in range(0, len(z), 500)])

true_dec = decode(zt)                                                      # (n, 1, 28, 28)
cells = F.interpolate(Mt.view(-1, 1, 7, 7).float(), scale_factor=4).bool()  # (n, 1, 28, 28): masked cells' pixels
guesses = {"BEiT's predictions": torch.where(Mt, logits.argmax(-1), zt),   # (n, 49): visible tokens kept
           "the nearest visible patch's token": torch.where(Mt, zt.gather(1, near), zt),
           "the most frequent token": torch.where(Mt, top, zt)}
dec = {k: decode(z) for k, z in guesses.items()}
decode_mse = {k: float((v - true_dec)[cells].pow(2).mean()) for k, v in dec.items()}
print(f"MSE to the decoded true tokens on the masked cells' pixels ({cfg.n_eval} test images), masked tokens from:")
for k, v in decode_mse.items():
    print(f"  {k:36s} {v:.4f}")
record("decode_mse_beit", decode_mse["BEiT's predictions"])
record("decode_mse_nearest_visible", decode_mse["the nearest visible patch's token"])
record("decode_mse_most_frequent", decode_mse["the most frequent token"])

show = torch.arange(6)
hidden = xt[show].cpu().clone()
hidden[cells[show]] = 0.5
diff = (dec["BEiT's predictions"][show] - true_dec[show]).abs()
fig, axes = plt.subplots(4, 6, figsize=(9, 6.4), layout="constrained")
for i in show.tolist():
    right = int((logits[i].argmax(-1) == zt[i])[Mt[i]].sum())
    axes[0, i].set_title(f"{names[int(test.labels[i])]}\\n{right} of {int(Mt[i].sum())} tokens right", fontsize=8)
    for row, img in enumerate((hidden[i], dec["BEiT's predictions"][i], true_dec[i])):
        axes[row, i].imshow(img[0], cmap="gray", vmin=0, vmax=1)
    im = axes[3, i].imshow(diff[i, 0], cmap="magma", vmin=0, vmax=1)
for ax, t in zip(axes[:, 0], ("masked input\\n(grey: masked)", "BEiT's tokens,\\ndecoded", "true tokens,\\ndecoded",
                              "|difference|")):
    ax.set_ylabel(t, fontsize=9)
for ax in axes.flat:
    ax.set_xticks([]); ax.set_yticks([])
fig.colorbar(im, ax=axes[3, :].tolist(), fraction=0.02, pad=0.01, label="|BEiT's - true|")
plt.show()
""")
b.discussion("decoded")

md("""
## 4 · Fine-tuning with 10 % of the labels

The point of pre-training: a classifier from few labels. `beit_finetune_10pct` is the pre-trained ViT with a fresh
classification head, fine-tuned on chapter 17's 6,000 labelled images with exactly the recipe that trained
`vit_fmnist_10pct` from random weights (150 epochs, AdamW, one-cycle to 1e-3, flips and shifts); each was trained
once, with one seed, and the cell prints its training time from the checkpoints' manifest. Linear probes on frozen
features then show what pre-training alone put into the network, beside a probe on the raw pixels.

Predict before you measure: fine-tuned on the same 6,000 labels, does the pre-trained ViT beat the ViT trained from
scratch? One of `"no"`, `"by under 1 point"`, `"by 1 to 3 points"`, `"by 3 points or more"`.
""")
code("""
# Predict before you run the next cell: one of ("no", "by under 1 point", "by 1 to 3 points", "by 3 points or more").
### BEGIN SOLUTION
my_prediction = "by 1 to 3 points"
### END SOLUTION
""")
code("""
from course_lib.checks import check_prediction
from course_lib.training import predict
from course_lib.transformers.shipped import load_model

acc_test = test.subset(cfg.n_acc, seed=0)
models = {"ViT from scratch (vit_fmnist_10pct)": load_model("vit_fmnist_10pct", DEVICE, PROFILE),
          "ViT pre-trained as BEiT (beit_finetune_10pct)": load_model("beit_finetune_10pct", DEVICE, PROFILE),
          "ResNet (resnet_fmnist_10pct)": load_model("resnet_fmnist_10pct", DEVICE, PROFILE)}
right = {k: predict(m, acc_test.images).argmax(1) == acc_test.labels for k, m in models.items()}   # (n,) bool each
ft = {k: int(r.sum()) / len(r) for k, r in right.items()}
print(f"fine-tuned on 6,000 labelled images; accuracy on {len(acc_test)} test images (training time: the manifest's):")
for k, m in models.items():
    print(f"  {k:48s} {ft[k]:.3f}   {m.checkpoint_entry['seconds'] / 60:.0f} min")
scratch, pre = ft["ViT from scratch (vit_fmnist_10pct)"], ft["ViT pre-trained as BEiT (beit_finetune_10pct)"]
gain = 100 * (pre - scratch)
record("finetune_10pct_acc", pre)
record("scratch_10pct_acc", scratch)
record("resnet_10pct_acc", ft["ResNet (resnet_fmnist_10pct)"])
record("pretraining_gain_points", gain)
measured = "no" if gain <= 0 else "by under 1 point" if gain < 1 else "by 1 to 3 points" if gain < 3 else "by 3 points or more"
check_prediction(my_prediction, measured, ("no", "by under 1 point", "by 1 to 3 points", "by 3 points or more"),
                 why=f"Pre-trained: {pre:.3f} against {scratch:.3f} from scratch ({gain:+.1f} points).")
""")
md("""
How sure is that difference? Both models saw the same 10,000 test images, so the comparison is **paired**: what
matters are the images one model gets right and the other wrong. McNemar's test asks whether those split evenly
(the exact binomial test on the discordant images); a paired bootstrap resamples the test images and recomputes the
difference of accuracies. Both measure the test set's sampling error only: each model was trained once, and how
much a second seed would move its accuracy is not measured here.
""")
code("""
from scipy.stats import binomtest

def paired(a: torch.Tensor, b: torch.Tensor, resamples: int = 10_000) -> tuple[int, int, float, float, float]:
    '''a, b (n,) bool: model A / B right on each test image -> (A-only, B-only images, McNemar's exact p,
    95 % paired-bootstrap CI of acc(A) - acc(B) in points).'''
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue                 # H0: a discordant image is a coin flip
    diff = a.float() - b.float()                                        # (n,) in {-1, 0, 1}
    g = torch.Generator().manual_seed(0)
    boot = torch.cat([diff[torch.randint(len(diff), (1000, len(diff)), generator=g)].mean(1)
                      for _ in range(resamples // 1000)])               # (resamples,)
    lo, hi = (100 * boot.quantile(torch.tensor([0.025, 0.975]))).tolist()
    return only_a, only_b, p, lo, hi

keys = list(models)                                                     # scratch, pre-trained, ResNet
pairs = {"pre-trained - from scratch": (keys[1], keys[0]), "ResNet - pre-trained": (keys[2], keys[1])}
tests = {}
for k, (first, second) in pairs.items():
    tests[k] = only_a, only_b, p, lo, hi = paired(right[first], right[second])
    print(f"{k:27s} {100 * (ft[first] - ft[second]):+.1f} points, 95 % paired-bootstrap CI [{lo:+.1f}, {hi:+.1f}]; "
          f"right only by the first: {only_a} images, only by the second: {only_b}; McNemar exact p = {p:.1e}")
record("gain_mcnemar_p", tests["pre-trained - from scratch"][2])
record("gain_ci_low_points", tests["pre-trained - from scratch"][3])
record("gain_ci_high_points", tests["pre-trained - from scratch"][4])
record("resnet_gap_mcnemar_p", tests["ResNet - pre-trained"][2])
record("resnet_gap_ci_low_points", tests["ResNet - pre-trained"][3])
record("resnet_gap_ci_high_points", tests["ResNet - pre-trained"][4])
""")
code("""
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

small = train.subset(6_000, seed=0).subset(cfg.n_probe_train, seed=1)   # labelled images from the same 10 %

@torch.no_grad()
def frozen(vit: ViT, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    '''A frozen ViT's class-token final state (ViT Eq. 4) and the mean of its 49 patch tokens' final states (the
    pooled features BEiT's paper probes): two (N, 64).'''
    vit.eval()
    z = [vit.encode(vit.embed(images[i:i + 1000].to(DEVICE))).cpu() for i in range(0, len(images), 1000)]  # (b, 50, 64)
    return torch.cat([o[:, 0] for o in z]), torch.cat([o[:, 1:].mean(1) for o in z])

def probe(f_train: torch.Tensor, f_test: torch.Tensor) -> float:
    '''Test accuracy of a logistic regression on standardised features (N, F).'''
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(f_train.numpy(), small.labels.numpy())
    return float(clf.score(f_test.numpy(), acc_test.labels.numpy()))

start = time.perf_counter()
torch.manual_seed(0)
probes = {"raw pixels (784 numbers)": probe(small.images.flatten(1), acc_test.images.flatten(1))}
for name, vit in (("random ViT (no training)", ViT().to(DEVICE)), ("BEiT pre-trained ViT", beit.vit)):
    (cls_tr, pool_tr), (cls_te, pool_te) = frozen(vit, small.images), frozen(vit, acc_test.images)
    probes[f"{name}, class token"] = probe(cls_tr, cls_te)
    probes[f"{name}, mean of patch tokens"] = probe(pool_tr, pool_te)
print(f"linear probes trained on {len(small)} labelled images, tested on {len(acc_test)} "
      f"({time.perf_counter() - start:.0f} s):")
for k, v in probes.items():
    print(f"  {k:52s} {v:.3f}")
record("probe_pixels", probes["raw pixels (784 numbers)"])
record("probe_random_vit", probes["random ViT (no training), class token"])
record("probe_beit", probes["BEiT pre-trained ViT, class token"])
record("probe_random_vit_pooled", probes["random ViT (no training), mean of patch tokens"])
record("probe_beit_pooled", probes["BEiT pre-trained ViT, mean of patch tokens"])
""")
b.discussion("finetune")

md(r"""
## 5 · BEiT as a variational autoencoder

The notes: *the BEiT pre-training can be viewed as variational autoencoder training* (the paper's Sec. 2.5). Write
$x$ for the image, $\tilde x$ for its masked version and $z$ for the visual tokens. The evidence lower bound of
chapter 07, with the tokenizer as the encoder $q_\phi(z \mid x)$, its decoder as $p_\psi(x \mid z)$ and a prior over
the tokens that may look at the corrupted image, $p_\theta(z \mid \tilde x)$:

$$\log p(x \mid \tilde x) \;\ge\; \mathbb{E}_{z \sim q_\phi(z \mid x)}\big[\log p_\psi(x \mid z)\big] \;-\;
\mathrm{KL}\big(q_\phi(z \mid x)\,\|\,p_\theta(z \mid \tilde x)\big).$$

Training happens in two stages, as for the VQ-VAE of chapter 08. **Stage 1** trains $q_\phi, p_\psi$ with a
uniform prior (the tokenizer, chapter 08: the reconstruction term). **Stage 2** freezes them and trains the prior.
Because the tokenizer is deterministic ($q_\phi$ puts all its mass on $\hat z = \arg\max_z q_\phi(z \mid x)$, so its
entropy is 0), the KL term is exactly $-\log p_\theta(\hat z \mid \tilde x)$, and maximising the bound over $\theta$ is
exactly Eq. 1 above — BEiT's masked image modelling (on the masked positions; the visible ones are given).
So BEiT is the second stage of a VAE whose prior is conditioned on the visible patches, and its loss in bits per
token is the prior's share of the image's code length.

The reconstruction term needs a decoder *likelihood* to be in the bound's units. The tokenizer was trained with
an MSE, which is the negative log-likelihood of a Gaussian $p_\psi(x \mid z) = \mathcal{N}(x;\ \hat x(z),\ \sigma^2 I)$
up to scale and constant. With $\sigma^2$ set to the measured MSE (the $\sigma$ that maximises the likelihood), over the
$D = 784$ pixels:

$$\mathbb{E}\big[\log p_\psi(x \mid z)\big] = -\tfrac{D}{2}\big(\log 2\pi\sigma^2 + 1\big)\ \text{nats per image}.$$

It is a log-*density* of continuous pixels: positive when $\sigma$ is small, and it moves with the choice of $\sigma$,
so only the KL term is a code length.
""")
md("""
By hand first: under stage 1's uniform prior (each of the 128 codes equally likely), how many bits do the 20 masked
tokens of one image cost?
""")
code("""
from course_lib.transformers.checks import check_masked_bits

# Bits for 20 masked tokens under the uniform prior (a number)
### BEGIN SOLUTION
my_bits = 20 * math.log2(128)
### END SOLUTION
check_masked_bits(my_bits)
""")
code("""
mse = float((true_dec - xt.cpu()).pow(2).mean())                    # true_dec: the true tokens decoded (section 3)
n_masked = float(Mt.sum(1).float().mean())
rec_nats = -784 / 2 * (math.log(2 * math.pi * mse) + 1)              # E log N(x; x_hat, sigma^2 = MSE), per image
print(f"stage 1 (the tokenizer): reconstruction MSE {mse:.4f} per pixel on {cfg.n_eval} test images; as a Gaussian "
      f"decoder with sigma^2 = MSE (sigma = {math.sqrt(mse):.3f}): E log p(x | z) = {rec_nats:+.0f} nats per image")
print(f"stage 2 (BEiT's prior): {nll_beit / math.log(2):.2f} bits per masked token, against log2 128 = 7 bits for the "
      f"uniform prior of stage 1")
print(f"the masked tokens of one image ({n_masked:.0f} of 49): KL term {n_masked * nll_beit / math.log(2):.0f} bits = "
      f"{n_masked * nll_beit:.0f} nats with BEiT's prior, {n_masked * 7:.0f} bits = {n_masked * math.log(128):.0f} nats "
      f"with the uniform one")
print(f"the bound on log p(x | x~) per image: {rec_nats:+.0f} - {n_masked * nll_beit:.0f} = "
      f"{rec_nats - n_masked * nll_beit:+.0f} nats with BEiT's prior, {rec_nats - n_masked * math.log(128):+.0f} with the uniform one")
record("recon_loglik_nats", rec_nats)
record("tokenizer_mse", mse)
""")
b.discussion("vae")

md("""
## What to remember

- BEiT pre-trains a plain ViT without labels: hide ~40 % of the patches in blocks, predict the hidden patches'
  discrete visual tokens (from a separately trained tokenizer) with a cross-entropy on the masked positions only.
- A visual token is a code for its cell in context (chapter 08: a 26×26-pixel receptive field), so a masked
  position's target depends partly on the patches the model can see.
- Blocks, not scattered patches: a scattered patch could be copied from a neighbour; the nearest-visible-patch
  baseline measures how far that copy gets.
- Read as a VAE: the tokenizer is stage 1 (encoder and decoder with a uniform prior), BEiT is stage 2 (a prior
  over the tokens conditioned on the visible patches).
- What pre-training is worth is measured by fine-tuning with few labels against the same model from scratch; a
  paired test on the test images bounds the test set's sampling error, not the spread between training seeds.
""")

b.write()
