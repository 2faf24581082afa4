"""Writes notebooks/17_vision_transformer.ipynb (or the path given): `python drafts/build_17_vit.py [out]`.

The prose that discusses measured numbers is in drafts/text_17.py, written after a cpu run and checked against
its outputs; rebuild, then re-execute with `python -m course_lib run --profile cpu --inplace`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from notebook_builder import NotebookBuilder


b = NotebookBuilder("17_vision_transformer.ipynb", ('trained', 'data', 'shift', 'pos', 'maps', 'distance'), "drafts/text_17.py")
md, code = b.md, b.code

md(f"""
# 17 · The Vision Transformer

{b.badge}

The notes' "Vision Transformer" (Dosovitskiy et al. 2021, *An Image is Worth 16x16 Words*): cut the image into
patches, embed each patch linearly, add a learned position, and hand the sequence to a plain transformer encoder.
The notes' one claim about it: *the ViT has much less image-specific inductive bias than a CNN* — locality, the 2-D
neighbourhood and translation equivariance are built into every layer of a CNN; in a ViT only the MLPs act per
token, and self-attention is global from the first layer. Here we build it and measure what that means:

1. **Patches and tokens**: a 28×28 Fashion-MNIST image becomes 49 tokens of 4×4 pixels. You write the patch
   embedding.
2. **The model**, Eqs. 1–4 of the paper, in ~60 lines of `course_lib.transformers`, and **parity with timm**:
   `timm`'s `VisionTransformer` and ours give the same logits from the same weights.
3. **Training** (a visible loop), then the shipped ViT's test accuracy beside chapter 01's ResNet and chance.
4. **Inductive bias, measured**: ViT against ResNet with 10 % and with 100 % of the training images; accuracy
   under translation; what the position embeddings learned about 2-D structure.
5. **Where it looks**: attention maps, attention rollout, and the attention distance of every head per layer.

The models of sections 3–5 are shipped checkpoints (`vit_fmnist`, `vit_fmnist_10pct`, `resnet_fmnist_10pct`, and
chapter 01's judge `fmnist_classifier`); `python -m course_lib checkpoints vit_fmnist` retrains one.
""")
b.setup_and_parameters()
code("""
import inspect
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from course_lib.data import fashion_mnist
from course_lib.transformers import ViT, patchify
from course_lib.transformers.config import vit_notebook_config

cfg = vit_notebook_config(PROFILE)
test = fashion_mnist("test").subset(cfg.n_eval, seed=0)
names = test.classes
cfg
""")

md(r"""
## 1 · Patches and tokens

ViT's Eq. 1 reads an image $x \in \mathbb{R}^{H \times W \times C}$ as a sequence of $N = HW/p^2$ flattened patches
$x_p^n \in \mathbb{R}^{p^2 C}$, embeds each with one matrix $E \in \mathbb{R}^{p^2 C \times D}$, prepends a learned
class token and adds learned position embeddings:

$$z_0 = [\,x_\text{class};\; x_p^1 E;\; x_p^2 E;\; \dots;\; x_p^N E\,] + E_\text{pos}, \qquad E_\text{pos} \in \mathbb{R}^{(N+1) \times D}.$$

With $p = 4$ a Fashion-MNIST image is a 7×7 grid: 49 tokens of 16 pixels each, plus the class token. `patchify`
cuts them row by row.
""")
code("""
x = test.images[:1]                                          # (1, 1, 28, 28)
P = patchify(x, 4)                                           # (1, 49, 16)
print(f"image {tuple(x.shape)} -> patches {tuple(P.shape)}: 49 tokens of 4 x 4 = 16 pixels")

fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), gridspec_kw={"width_ratios": [1, 1]})
axes[0].imshow(x[0, 0], cmap="gray", vmin=0, vmax=1)
for k in range(1, 7):                                        # the patch borders
    axes[0].axhline(4 * k - 0.5, color="tab:orange", lw=0.8)
    axes[0].axvline(4 * k - 0.5, color="tab:orange", lw=0.8)
for n in range(49):
    axes[0].text(4 * (n % 7) + 1.5, 4 * (n // 7) + 1.5, str(n), color="white", fontsize=8, ha="center", va="center",
                 bbox=dict(facecolor="tab:orange", alpha=0.6, pad=0.6, lw=0))
axes[0].set(title=f"a test {names[test.labels[0]]}, cut into 4 x 4 patches", xticks=[], yticks=[])
strip = torch.ones(7, 7 * 5 - 1) * float("nan")              # the sequence: 7 rows of 7 tokens, with gaps
canvas = torch.full((7 * 5 - 1, 7 * 5 - 1), float("nan"))
for n in range(49):
    r, c = n // 7, n % 7
    canvas[5 * r:5 * r + 4, 5 * c:5 * c + 4] = P[0, n].view(4, 4)
axes[1].imshow(canvas, cmap="gray", vmin=0, vmax=1)
axes[1].set(title="the same image as 49 separate tokens", xticks=[], yticks=[])
plt.tight_layout(); plt.show()
""")
md("""
Nothing in the sequence on the right says that token 8 sits below token 1: to the transformer the tokens are a
set, and only the position embeddings $E_\\text{pos}$ (learned, one vector per index) can tell it where each came
from. Section 4 looks at what they learn.

### Exercise: the patch embedding

Write $x_p^n E + b$ for every patch of every image. The weight comes as `(D, C, p, p)`, the layout of the
convolution that `course_lib` uses for speed: a convolution with kernel = stride = $p$ computes exactly this
product, patch by patch. Flatten each patch as `(C, p, p)` so it meets the right rows of the weight.
""")
code("""
from course_lib.transformers.checks import check_patch_embed_kernel


def my_patch_embed(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, p: int) -> torch.Tensor:
    '''x (B, C, H, W), weight (D, C, p, p), bias (D,) -> tokens (B, N, D), N = (H/p)(W/p), patches row by row.'''
    ### BEGIN SOLUTION
    B, C, H, W = x.shape
    patches = x.view(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, -1, C * p * p)  # (B, N, C p p)
    return patches @ weight.flatten(1).T + bias                                                    # (B, N, D)
    ### END SOLUTION


check_patch_embed_kernel(my_patch_embed)
""")

md("""
By hand: how many parameters does the patch embedding $E$ have, with its bias, for this ViT (4×4 patches of a
1-channel image, width $D = 64$)? It is one matrix shared by all 49 patches.
""")
code("""
from course_lib.transformers.checks import check_patch_embed_params

# Parameters of E and its bias (a number)
### BEGIN SOLUTION
my_params = 4 * 4 * 1 * 64 + 64
### END SOLUTION
check_patch_embed_params(my_params)
""")
md(r"""
## 2 · The model

After Eq. 1 come $L$ identical pre-norm blocks (Eqs. 2–3) and a LayerNorm on the class token's final state (Eq. 4):

$$z'_\ell = \mathrm{MSA}(\mathrm{LN}(z_{\ell-1})) + z_{\ell-1}, \qquad z_\ell = \mathrm{MLP}(\mathrm{LN}(z'_\ell)) + z'_\ell,
\qquad y = \mathrm{LN}(z_L^0).$$

Multi-head self-attention (MSA) is $h$ copies of Eq. 1 of Vaswani et al. on the same tokens,
$\mathrm{softmax}(QK^\top/\sqrt{d})\,V$ with $Q, K, V$ linear maps of the tokens, each copy of width $d = D/h$. Here is
all of it: the attention kernel (written out; the block calls `F.scaled_dot_product_attention`, which the tests
hold equal to it), the block and the encoder.
""")
code("""
from course_lib.transformers import Block, attention

print(inspect.getsource(attention))
print(inspect.getsource(Block.forward))
print(inspect.getsource(ViT.encode))
""")
code("""
from course_lib.cnn import build
from course_lib.cnn.train import count_flops

from torch.utils.flop_counter import FlopCounterMode

vit, resnet = ViT(), build("resnet")
params = {m: sum(p.numel() for p in net.parameters()) for m, net in (("ViT", vit), ("ResNet", resnet))}
with FlopCounterMode(display=False) as counter, torch.no_grad():     # the written-out attention, so its products count
    vit.head(vit.encode(vit.embed(torch.zeros(1, 1, 28, 28)), return_attention=True)[0][:, 0])
flops = {"ViT": counter.get_total_flops(), "ResNet": count_flops(resnet)}
print(f"{'':8s} {'parameters':>11s} {'MFLOPs / image':>15s}")
for m in params:
    print(f"{m:8s} {params[m]:11,d} {flops[m] / 1e6:15.1f}")
print("ViT: dim 64, 4 blocks of 4 heads, 4x4 patches -> 50 tokens; ResNet: chapter 01's, the course judge's architecture")
""")
md("""
The two are of a size: about 0.2 M parameters each, and the ViT needs half the ResNet's arithmetic per image.
A fair pair to compare.

## 3 · Parity with timm

`timm`'s `VisionTransformer` is the implementation most ViT research code builds on. Our modules carry its
parameter names (`patch_embed.proj`, `cls_token`, `pos_embed`, `blocks.i.attn.qkv`, …), so `vit_from_timm` copies
a timm model of the same shape name by name. With every weight drawn at random (LayerNorm gains too, so no term is
trivial), both must give the same logits.
""")
code("""
from timm.models.vision_transformer import VisionTransformer

from course_lib import record
from course_lib.transformers import vit_from_timm

timm_vit = VisionTransformer(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=4,
                             num_heads=4, mlp_ratio=4.0)
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    for name, p in timm_vit.named_parameters():                 # random weights, LayerNorm gains near 1
        noise = torch.randn(p.shape, generator=g)
        p.copy_(1 + 0.1 * noise if "norm" in name and name.endswith("weight") else 0.2 * noise)
ours = vit_from_timm(timm_vit.eval()).eval()
xb = test.images[:64]
with torch.no_grad():
    ref, out = timm_vit(xb), ours(xb)
rel = float((out - ref).abs().max() / ref.abs().max())
print(f"{len(timm_vit.state_dict())} tensors copied; logits of 64 test images: max |ours - timm| / max |timm| = {rel:.1e}"
      f" (logits of size {float(ref.abs().max()):.1f}); same predicted class for {int((out.argmax(1) == ref.argmax(1)).sum())}/64")
record("timm_parity_rel_err", rel, ".2g")
""")

md("""
## 4 · Training, and what the ViT reaches

The loop below trains a fresh ViT as the shipped one was trained (AdamW, a one-cycle learning rate peaking at
1e-3, batch 128, random flips and ±2-pixel shifts: `course_lib.training.augment`) for `cfg.train_steps` steps,
then measures it on the test images. In the cpu profile that is a taste of the first epoch; the gpu profile runs
all 7,020 steps of the shipped recipe.
""")
code("""
from course_lib.training import augment
from course_lib.utils import autocast, backward_step, compile_if_asked

torch.manual_seed(0)
model = ViT().to(DEVICE)
compile_if_asked(model, DEVICE)                 # torch.compile with COURSE_COMPILE=1 on a GPU
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=cfg.train_steps)
train = fashion_mnist("train")
g = torch.Generator().manual_seed(0)
losses, start = [], time.perf_counter()
for step in tqdm(range(cfg.train_steps), desc="training a ViT"):
    idx = torch.randint(len(train.images), (128,), generator=g)
    xb, yb = augment(train.images[idx], g).to(DEVICE), train.labels[idx].to(DEVICE)
    with autocast(DEVICE):          # mixed precision on a GPU (bfloat16; float16 on a T4), a no-op on the CPU
        loss = F.cross_entropy(model(xb), yb)
    backward_step(loss, optimizer, DEVICE)   # zero_grad, backward, step (float16: scaled)
    schedule.step()
    losses.append(loss.detach())
train_seconds = time.perf_counter() - start
losses = torch.stack(losses).cpu()


@torch.no_grad()
def evaluate(net, images=test.images, labels=test.labels) -> dict:
    '''Top-1 accuracy, mean cross-entropy (nats) and per-class accuracy of net on images.'''
    net.eval()
    logits = torch.cat([net(images[i:i + 1000].to(DEVICE)).cpu() for i in range(0, len(images), 1000)])
    hit = logits.argmax(1) == labels
    return {"acc": float(hit.float().mean()), "nll": float(F.cross_entropy(logits, labels)),
            "per_class": torch.stack([hit[labels == c].float().mean() for c in range(10)])}


mine = evaluate(model)
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(losses, lw=0.6, alpha=0.5, label="batch loss")
w = max(1, len(losses) // 20)
if len(losses) >= w:
    ax.plot(range(w - 1, len(losses)), losses.unfold(0, w, 1).mean(1), label=f"mean of {w}")
ax.axhline(math.log(10), color="gray", ls=":", lw=1, label="log 10 (chance)")
ax.set(xlabel="step", ylabel="cross-entropy (nats)", title=f"a fresh ViT, {cfg.train_steps} steps of batch 128")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()
print(f"{cfg.train_steps} steps in {train_seconds:.0f} s: test accuracy {mine['acc']:.3f} on {len(test)} images")
record("vit_notebook_steps", cfg.train_steps, ".0f")
record("vit_notebook_acc", mine["acc"])
""")
md("""
Two shipped ViTs ran the whole recipe on the 60,000 training images. `vit_fmnist` took exactly the recipe of chapter
01's ResNet, the course judge: same optimizer, schedule, batch, augmentation and 15 epochs (only the peak learning
rate differs, 1e-3 against the ResNet's 3e-3). `vit_fmnist_long` took six times as many epochs, 90. All are
measured on the same test images, beside chance.
""")
code("""
from course_lib.cnn.classifier import load_classifier
from course_lib.transformers.shipped import load_model

nets = {"ViT, 15 epochs": load_model("vit_fmnist", DEVICE, PROFILE),
        "ViT, 90 epochs": load_model("vit_fmnist_long", DEVICE, PROFILE),
        "ResNet, 15 epochs": load_classifier(DEVICE, PROFILE)}            # chapter 01's ResNet, the judge
for m, net in nets.items():
    e = net.checkpoint_entry
    print(f"{m:18s} {e['origin']} checkpoint, trained {e['seconds'] / 60:.0f} min on a 2-core CPU; manifest test "
          f"accuracy {e['metrics']['test_acc']:.4f}, final training loss {e['metrics']['final_train_loss']:.3f}")
full = {m: evaluate(net) for m, net in nets.items()}
print(f"\\n{'':18s} {'accuracy':>9s} {'NLL (nats)':>11s}    on {len(test)} test images")
print(f"{'chance':18s} {0.1:9.3f} {math.log(10):11.3f}")
for m, r in full.items():
    print(f"{m:18s} {r['acc']:9.3f} {r['nll']:11.3f}")
for key, m in (("vit", "ViT, 15 epochs"), ("vit_long", "ViT, 90 epochs"), ("resnet", "ResNet, 15 epochs")):
    if m in full:
        record(f"{key}_test_acc", full[m]["acc"])
        record(f"{key}_test_nll", full[m]["nll"])
vit_full, resnet_full = nets["ViT, 90 epochs"], nets["ResNet, 15 epochs"]   # the best-trained pair, used below

fig, ax = plt.subplots(figsize=(8.5, 3.2))
for k, (m, r) in enumerate(full.items()):
    ax.bar(torch.arange(10) + 0.27 * (k - (len(full) - 1) / 2), r["per_class"], width=0.27, label=f"{m} ({r['acc']:.3f})")
ax.set_xticks(range(10), names, rotation=30, fontsize=8)
ax.set(ylabel="accuracy", ylim=(0.5, 1.0), title="per-class test accuracy, 100 % of the training data")
ax.legend(fontsize=8, loc="lower left"); plt.tight_layout(); plt.show()
""")
b.discussion("trained")

md("""
## 5 · Inductive bias, measured

A CNN assumes that nearby pixels belong together and that a pattern means the same thing wherever it appears;
those assumptions are right for images, so they are worth data. The ViT must *learn* them. The prediction that
follows (the ViT paper's Sec. 4.2, there with ImageNet against JFT-300M): with little data the CNN wins, and the
gap closes as the data grows.

We train both architectures on a fixed 10 % of the training set (6,000 images) with the same recipe and about
the same number of steps as the 100 % runs (150 epochs of 6,000 against 15 of 60,000), so the pairs differ in data
only.

Predict before you measure: with 10 % of the data, by how many points of test accuracy does the ResNet beat the
ViT? One of `"ViT wins"`, `"under 2 points"`, `"2 to 5 points"`, `"5 points or more"`.
""")
code("""
# Predict before you run the next cell: one of ("ViT wins", "under 2 points", "2 to 5 points", "5 points or more").
### BEGIN SOLUTION
my_prediction = "2 to 5 points"
### END SOLUTION
""")
code("""
from course_lib.checks import check_prediction

small = {"ViT": evaluate(load_model("vit_fmnist_10pct", DEVICE, PROFILE)),
         "ResNet": evaluate(load_model("resnet_fmnist_10pct", DEVICE, PROFILE))}
large = {"ViT": full["ViT, 15 epochs"], "ResNet": full["ResNet, 15 epochs"]}      # the same number of steps
print(f"{'training images':>16s} {'ViT':>7s} {'ResNet':>7s} {'ResNet - ViT':>13s}   (about 7,000 steps each)")
for n, r in (("6,000 (10 %)", small), ("60,000 (100 %)", large)):
    print(f"{n:>16s} {r['ViT']['acc']:7.3f} {r['ResNet']['acc']:7.3f} {100 * (r['ResNet']['acc'] - r['ViT']['acc']):+12.1f} pt")
gap_small = 100 * (small["ResNet"]["acc"] - small["ViT"]["acc"])
gap_full = 100 * (large["ResNet"]["acc"] - large["ViT"]["acc"])
record("vit_10pct_acc", small["ViT"]["acc"])
record("resnet_10pct_acc", small["ResNet"]["acc"])
record("gap_10pct_points", gap_small)
record("gap_100pct_points", gap_full)
measured = ("ViT wins" if gap_small < 0 else "under 2 points" if gap_small < 2 else
            "2 to 5 points" if gap_small < 5 else "5 points or more")
check_prediction(my_prediction, measured, ("ViT wins", "under 2 points", "2 to 5 points", "5 points or more"),
                 why=f"the ResNet leads by {gap_small:.1f} points with 6,000 images and by {gap_full:.1f} with 60,000.")
""")
b.discussion("data")

md("""
### Translation

Convolutions are translation-equivariant: shift the image and the feature maps shift with it, and global pooling
at the end makes the ResNet nearly invariant. The ViT has no such guarantee: a shift by less than a patch changes
what every token contains, and a shift by a whole patch moves content to tokens with other position embeddings.
Both were trained with random shifts of up to 2 pixels. Below, every test image shifted right and down by $s$
pixels (the empty border filled with black, the background colour).
""")
code("""
def shifted(images: torch.Tensor, s: int) -> torch.Tensor:
    '''images (N, 1, 28, 28) moved s pixels right and down, the border zero-filled.'''
    return F.pad(images, (s, 0, s, 0))[..., :28, :28] if s else images

shift_acc = {m: [evaluate(net, shifted(test.images, s))["acc"] for s in cfg.shifts]
             for m, net in (("ViT", vit_full), ("ResNet", resnet_full))}
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for m, accs in shift_acc.items():
    ax.plot(cfg.shifts, accs, marker="o", label=m)
ax.axvspan(0, 2, color="gray", alpha=0.15, label="shifts seen in training")
ax.set(xlabel="shift s (pixels, right and down)", ylabel="test accuracy", title="accuracy of shifted test images")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()
print("shift:  " + " ".join(f"{s:6d}" for s in cfg.shifts))
for m, accs in shift_acc.items():
    print(f"{m:7s} " + " ".join(f"{a:6.3f}" for a in accs))
    for s, a in zip(cfg.shifts, accs):
        record(f"{m.lower()}_acc_shift{s}", a)
""")
b.discussion("shift")

md("""
### What the position embeddings learned

Nothing told the ViT that its 49 tokens lie on a 7×7 grid. If it learned that, the embedding of a position should
resemble those of its neighbours. Each small map below is one position's cosine similarity with all 49 (the ViT
paper's Fig. 7, centre).
""")
code("""
pos = vit_full.pos_embed[0, 1:].detach().cpu()                     # (49, 64): the patches' position embeddings
sim = F.normalize(pos, dim=1) @ F.normalize(pos, dim=1).T            # (49, 49) cosine similarities
fig, axes = plt.subplots(7, 7, figsize=(6.4, 6.4))
for n, ax in enumerate(axes.flat):
    im = ax.imshow(sim[n].view(7, 7), cmap="viridis", vmin=-1, vmax=1)
    ax.set_xticks([]); ax.set_yticks([])
    if n % 7 == 0:
        ax.set_ylabel(f"row {n // 7}", fontsize=8)
    if n // 7 == 6:
        ax.set_xlabel(f"col {n % 7}", fontsize=8)
fig.colorbar(im, ax=axes, shrink=0.6, label="cosine similarity")
fig.suptitle("each position's embedding against all 49 (the 90-epoch ViT)")
plt.show()
rows, cols = torch.arange(49) // 7, torch.arange(49) % 7
dist = ((rows[:, None] - rows[None]) ** 2 + (cols[:, None] - cols[None]) ** 2).float().sqrt()
off = ~torch.eye(49, dtype=torch.bool)
neighbours = (dist == 1)
print(f"mean similarity to the 4-neighbours: {float(sim[neighbours].mean()):.3f}; to positions 4 or more patches away: "
      f"{float(sim[(dist >= 4) & off].mean()):.3f}")
record("pos_sim_neighbours", sim[neighbours].mean())
record("pos_sim_far", sim[(dist >= 4) & off].mean())
""")
b.discussion("pos")

md(r"""
## 6 · Where the ViT looks

`attention_maps` returns every block's attention weights, $(B, h, 50, 50)$ per layer. The class token's row says
which patches the classifier's summary reads from. A single layer's map ignores that each block also keeps its
input (the residual) and that attention mixes tokens that were already mixed; **attention rollout** (Abnar &
Zuidema 2020) accounts for both by multiplying the layers' maps, each averaged over heads and averaged with the
identity for the residual:

$$\tilde A_\ell = \tfrac12\big(\bar A_\ell + I\big), \qquad R = \tilde A_L \tilde A_{L-1} \cdots \tilde A_1,$$

and reads the class token's row of $R$.
""")
code("""
from course_lib import plots
from course_lib.transformers import attention_maps, attention_rollout

xs = test.images[:cfg.n_maps]
maps = attention_maps(vit_full, xs.to(DEVICE))                      # 4 tensors (n, 4, 50, 50)
first = maps[0][:, :, 0, 1:].mean(1).cpu()                         # the class token's row, mean of heads
last = maps[-1][:, :, 0, 1:].mean(1).cpu()
roll = attention_rollout(maps).cpu()                                 # (n, 49)
with torch.no_grad():
    pred = vit_full(xs.to(DEVICE)).argmax(1).cpu()
fig, axes = plt.subplots(len(xs), 4, figsize=(8.4, 2.1 * len(xs)))
for i in range(len(xs)):
    axes[i, 0].imshow(xs[i, 0], cmap="gray", vmin=0, vmax=1)
    axes[i, 0].set_title(f"{names[test.labels[i]]} (pred. {names[pred[i]]})", fontsize=8)
    for j, (heat, title) in enumerate(((first[i], "layer 1: class token"), (last[i], "layer 4: class token"),
                                        (roll[i], "rollout"))):
        h = heat.view(7, 7)
        im = axes[i, j + 1].imshow(xs[i, 0], cmap="gray", vmin=0, vmax=1)
        im = axes[i, j + 1].imshow(h, cmap="inferno", alpha=0.6, extent=(-0.5, 27.5, 27.5, -0.5))
        fig.colorbar(im, ax=axes[i, j + 1], fraction=0.046, pad=0.03).ax.tick_params(labelsize=7)
        axes[i, j + 1].set_title(title, fontsize=8)
for ax in axes.flat:
    ax.set_xticks([]); ax.set_yticks([])
plt.tight_layout(); plt.show()
""")
b.discussion("maps")

md(r"""
### Attention distance

The ViT paper's Fig. 7 (right) measures how far each head looks: the mean distance, in pixels, between a query
patch and the patches it attends to, weighted by the attention. A convolution's receptive field grows by a few
pixels per layer; a head can look anywhere from layer 1 on. Below, each dot is one head, averaged over the test
images and the 49 patch queries (the class token left out).
""")
code("""
centres = torch.stack([4 * (torch.arange(49) // 7) + 1.5, 4 * (torch.arange(49) % 7) + 1.5], 1)   # (49, 2) pixels
pix = torch.cdist(centres, centres)                                                              # (49, 49)
with torch.no_grad():
    maps = attention_maps(vit_full, test.images[:min(1000, len(test))].to(DEVICE))
head_dist = torch.stack([(A[:, :, 1:, 1:].cpu() * pix).sum(-1).mean((0, 2)) for A in maps])        # (L, h)
fig, ax = plt.subplots(figsize=(5.5, 3.2))
for l in range(len(maps)):
    ax.scatter([l + 1] * head_dist.shape[1], head_dist[l], color="tab:blue")
ax.axhline(float(pix[~torch.eye(49, dtype=torch.bool)].mean()), color="gray", ls=":", lw=1,
           label="uniform attention over the other patches")
ax.set(xlabel="layer", ylabel="mean attention distance (pixels)", xticks=range(1, len(maps) + 1),
       title="how far each head looks (one dot per head)")
ax.legend(fontsize=8); plt.tight_layout(); plt.show()
for l in range(len(maps)):
    print(f"layer {l + 1}: heads at " + ", ".join(f"{d:.1f}" for d in head_dist[l]) + " pixels")
    record(f"attn_dist_layer{l + 1}_min", head_dist[l].min())
    record(f"attn_dist_layer{l + 1}_max", head_dist[l].max())
""")
b.discussion("distance")

md("""
## What to remember

- A ViT is a transformer encoder on a sequence of linearly embedded patches, with a class token and learned
  position embeddings (Eqs. 1–4); the patch embedding is a convolution with kernel = stride = $p$.
- It has less built-in knowledge of images than a CNN: no locality, no translation equivariance, no 2-D grid.
  What it needs of them it must learn from data: here its position embeddings learned the 2-D grid, but its
  tolerance to shifts reaches only as far as training showed it, and no head became local. With little data or
  training that costs accuracy.
- Attention maps show where the class token reads; rollout combines the layers and the residual stream.

The notes' next section, BEiT, pre-trains this same ViT without labels, by predicting the visual tokens of masked
patches: a way to pay for the missing inductive bias with unlabelled images instead of labelled ones.
""")

b.write()
