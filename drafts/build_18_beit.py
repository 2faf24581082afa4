"""Writes notebooks/18_beit.ipynb (or the path given): `python drafts/build_18_beit.py [out]`.

The prose that discusses measured numbers is in TEXT (drafts/text_18.py, written after a cpu run and checked
against its outputs); rebuild, then re-execute with `python -m course_lib run --profile cpu --inplace`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from notebook_builder import NotebookBuilder

b = NotebookBuilder("18_beit.ipynb", ('masks', 'mim', 'finetune', 'vae'), "drafts/text_18.py")
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
2. **Blockwise masking** (Algorithm 1): about 40 % of the patches hidden, in blocks.
3. **Masked image modelling**: the ViT predicts the hidden tokens; you write the loss. Its accuracy against the
   baselines a guesser would reach.
4. **Fine-tuning with 10 % of the labels**: the pre-trained ViT against the same ViT from scratch (chapter 17's
   `vit_fmnist_10pct`) and the ResNet.
5. **BEiT as a VAE**: the notes' reading, in equations, with the two terms measured.

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
we use chapter 08's VQ-VAE with 128). Patch $i$ and token $i$ cover the same 4×4 region. The tokens are the
targets: a token summarises its region in one of 128 symbols, and the decoder turns tokens back into an image.
""")
code("""
x = test.images[:6].to(DEVICE)
with torch.no_grad():
    codes = tokenizer.encode_tokens(x)                              # (6, 7, 7) int64 in [0, 128)
    decoded = tokenizer.decode_tokens(codes)
print(f"patches {tuple(patchify(x, 4).shape)}, visual tokens {tuple(codes.shape)} from a vocabulary of {tokenizer.num_codes}")
print("the tokens of image 0:\\n", codes[0].cpu())
fig, axes = plt.subplots(3, 6, figsize=(9, 4.8))
for i in range(6):
    axes[0, i].imshow(x[i, 0].cpu(), cmap="gray", vmin=0, vmax=1)
    axes[1, i].imshow(codes[i].cpu(), cmap="tab20", vmin=0, vmax=127)
    for r in range(7):
        for c in range(7):
            axes[1, i].text(c, r, str(int(codes[i, r, c])), fontsize=5.5, ha="center", va="center")
    axes[2, i].imshow(decoded[i, 0].cpu(), cmap="gray", vmin=0, vmax=1)
for ax, t in zip(axes[:, 0], ("image", "visual tokens", "tokens decoded")):
    ax.set_ylabel(t, fontsize=9)
for ax in axes.flat:
    ax.set_xticks([]); ax.set_yticks([])
plt.tight_layout(); plt.show()
""")

md("""
## 2 · Blockwise masking

BERT masks 15 % of the words at random. Neighbouring patches are so alike that a randomly hidden patch can be
copied from its neighbours; BEiT hides whole **blocks** instead (Algorithm 1): draw a block area $s$ of at least a
minimum number of patches, an aspect ratio $r \\in [0.3, 1/0.3]$, a block of $\\sqrt{sr} \\times \\sqrt{s/r}$
patches at a random place; repeat until about 40 % of the patches are masked (the paper: 75 of 196). On our 7×7
grid: 20 of 49, blocks of at least 4 patches.
""")
code("""
g = torch.Generator().manual_seed(0)
examples = torch.stack([blockwise_mask(7, 0.4, generator=g) for _ in range(6)])
many = torch.stack([blockwise_mask(7, 0.4, generator=g) for _ in range(2_000)])
fig, axes = plt.subplots(1, 8, figsize=(12, 2), gridspec_kw={"width_ratios": [1] * 6 + [0.15, 1.3]})
for i in range(6):
    axes[i].imshow(examples[i].view(7, 7), cmap="Oranges", vmin=0, vmax=1.2)
    axes[i].set_title(f"{int(examples[i].sum())} of 49 masked", fontsize=8)
    axes[i].set_xticks([]); axes[i].set_yticks([])
axes[6].axis("off")
im = axes[7].imshow(many.float().mean(0).view(7, 7), cmap="viridis", vmin=0, vmax=1)
axes[7].set_title("P(masked), 2,000 masks", fontsize=8); axes[7].set_xticks([]); axes[7].set_yticks([])
fig.colorbar(im, ax=axes[7], fraction=0.046)
plt.tight_layout(); plt.show()
print(f"masked per image over 2,000 masks: mean {float(many.sum(1).float().mean()):.2f}, "
      f"min {int(many.sum(1).min())}, max {int(many.sum(1).max())} of 49")
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

torch.manual_seed(0)
beit_fresh = BEiT(ViT(), vocab=tokenizer.num_codes).to(DEVICE)
optimizer = torch.optim.AdamW(beit_fresh.parameters(), lr=1e-3, weight_decay=0.05)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=cfg.train_steps)
g = torch.Generator().manual_seed(0)
losses, accs, start = [], [], time.perf_counter()
for step in tqdm(range(cfg.train_steps), desc="BEiT pre-training"):
    xb = augment(train.images[torch.randint(len(train.images), (128,), generator=g)], g).to(DEVICE)
    with torch.no_grad():
        zb = tokenizer.encode_tokens(xb).flatten(1)                      # (128, 49) targets
    loss, acc = mim_loss(beit_fresh, xb, zb, masks(128, 7, 0.4, g).to(DEVICE))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
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
network: the most frequent token of the training set everywhere; the most frequent token among the image's own
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
code("""
show = torch.arange(6)
pred = torch.where(Mt[show], logits[show].argmax(-1), zt[show]).view(-1, 7, 7)        # visible tokens kept
with torch.no_grad():
    recon_pred = tokenizer.decode_tokens(pred.to(DEVICE)).cpu()
    recon_true = tokenizer.decode_tokens(zt[show].view(-1, 7, 7).to(DEVICE)).cpu()
hidden = xt[show].cpu().clone()
up = F.interpolate(Mt[show].view(-1, 1, 7, 7).float(), scale_factor=4).bool()
hidden[up] = 0.5
plots.image_grid(torch.cat([hidden, recon_pred, recon_true]),
                 ["masked input"] + [""] * 5 + ["BEiT's tokens, decoded"] + [""] * 5 + ["true tokens, decoded"] + [""] * 5,
                 ncols=6, scale=1.2)
plt.show()
""")
b.discussion("mim")

md("""
## 4 · Fine-tuning with 10 % of the labels

The point of pre-training: a classifier from few labels. `beit_finetune_10pct` is the pre-trained ViT with a fresh
classification head, fine-tuned on chapter 17's 6,000 labelled images with exactly the recipe that trained
`vit_fmnist_10pct` from random weights (150 epochs, AdamW, one-cycle to 1e-3, flips and shifts). A linear probe on
frozen features (the class token's final state) shows what pre-training alone put there.

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
from course_lib.training import accuracy
from course_lib.transformers.shipped import load_model

acc_test = test.subset(cfg.n_acc, seed=0)
models = {"ViT from scratch (vit_fmnist_10pct)": load_model("vit_fmnist_10pct", DEVICE, PROFILE),
          "ViT pre-trained as BEiT (beit_finetune_10pct)": load_model("beit_finetune_10pct", DEVICE, PROFILE),
          "ResNet (resnet_fmnist_10pct)": load_model("resnet_fmnist_10pct", DEVICE, PROFILE)}
ft = {k: accuracy(m, acc_test.images, acc_test.labels) for k, m in models.items()}
print(f"fine-tuned on 6,000 labelled images; accuracy on {len(acc_test)} test images:")
for k, v in ft.items():
    print(f"  {k:48s} {v:.3f}")
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
code("""
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

small = train.subset(6_000, seed=0).subset(cfg.n_probe_train, seed=1)   # labelled images from the same 10 %

@torch.no_grad()
def frozen(vit: ViT, images: torch.Tensor) -> torch.Tensor:
    '''The class token's final state (ViT Eq. 4) of a frozen ViT: (N, 64).'''
    vit.eval()
    return torch.cat([vit.features(images[i:i + 1000].to(DEVICE)).cpu() for i in range(0, len(images), 1000)])

def probe(vit: ViT) -> float:
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(frozen(vit, small.images).numpy(), small.labels.numpy())
    return float(clf.score(frozen(vit, acc_test.images).numpy(), acc_test.labels.numpy()))

torch.manual_seed(0)
probes = {"random ViT (no training)": probe(ViT().to(DEVICE)), "BEiT pre-trained ViT": probe(beit.vit)}
print(f"linear probes on frozen class-token features, {len(small)} labelled images:")
for k, v in probes.items():
    print(f"  {k:28s} {v:.3f}")
record("probe_random_vit", probes["random ViT (no training)"])
record("probe_beit", probes["BEiT pre-trained ViT"])
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
Because the tokenizer is deterministic ($q_\phi$ puts all its mass on $\hat z = \arg\max_z q_\phi(z \mid x)$), the KL
term is $-\log p_\theta(\hat z \mid \tilde x)$ up to a constant, and maximising the bound over $\theta$ is
exactly Eq. 1 above — BEiT's masked image modelling (on the masked positions; the visible ones are given).
So BEiT is the second stage of a VAE whose prior is conditioned on the visible patches, and its loss in bits per
token is the prior's share of the image's code length:
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
with torch.no_grad():
    x_hat = torch.cat([tokenizer.decode_tokens(zt[i:i + 500].view(-1, 7, 7).to(DEVICE)).cpu() for i in range(0, len(zt), 500)])
mse = float((x_hat - xt.cpu()).pow(2).mean())
n_masked = float(Mt.sum(1).float().mean())
print(f"stage 1 (the tokenizer): reconstruction MSE {mse:.4f} per pixel on {cfg.n_eval} test images")
print(f"stage 2 (BEiT's prior): {nll_beit / math.log(2):.2f} bits per masked token, against log2 128 = 7 bits for the "
      f"uniform prior of stage 1")
print(f"the masked tokens of one image ({n_masked:.0f} of 49): {n_masked * nll_beit / math.log(2):.0f} bits with BEiT's "
      f"prior, {n_masked * 7:.0f} bits with the uniform one")
record("tokenizer_mse", mse)
""")
b.discussion("vae")

md("""
## What to remember

- BEiT pre-trains a plain ViT without labels: hide ~40 % of the patches in blocks, predict the hidden patches'
  discrete visual tokens (from a separately trained tokenizer) with a cross-entropy on the masked positions only.
- Blocks, not scattered patches: a scattered patch could be copied from a neighbour; the nearest-visible-patch
  baseline measures how far that copy gets.
- Read as a VAE: the tokenizer is stage 1 (encoder and decoder with a uniform prior), BEiT is stage 2 (a prior
  over the tokens conditioned on the visible patches).
- What pre-training is worth is measured by fine-tuning with few labels against the same model from scratch.
""")

b.write()
