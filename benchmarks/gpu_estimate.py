"""How long would each notebook's gpu profile take on a T4? An estimate from measured FLOP and op counts (issue #21).

    python benchmarks/gpu_estimate.py [--only 13,14] [--out benchmarks/results/gpu_estimate.json]

No GPU, no training, nothing downloaded. For each dominant loop of a notebook's gpu profile (sizes from its profile
table in course_lib, loop structure and call counts read from the notebook's code cells: see each loop's note) the
script builds the model as the notebook does (random init; 05's inference uses the shipped weights, because how many
boxes pass the score threshold sets its per-detection work), runs ONE call of the loop body -- forward + backward +
optimizer step for training, forward plus the sampler's update for sampling -- at batches 4 and 8 on one CPU thread,
and counts in a small ``TorchDispatchMode``:
  F  FLOPs, with FlopCounterMode's per-op formulas (``flop_check``: the same total as FlopCounterMode on one loop;
     FlopCounterMode itself breaks torch.autograd.grad inside a no_grad sampling loop, as in classifier guidance),
  K  aten ops that launch a kernel (views, detach and empty allocations excluded): the launch proxy,
  M  bytes read + written by those ops (fp32: each op's tensor arguments and outputs),
  S  host syncs (``aten._local_scalar_dense``: .item(), int(tensor)); reported, not priced.
Each count is fitted as a + b * batch from the two batches, read at the real batch, times the number of calls.
Optimizers and clipping are counted as CUDA runs them (foreach kernels; step counters stay on the host).

T4 seconds of a loop = max(F / (8.1 TFLOP/s fp32 * u), K * launch, M / (320 GB/s * e)):
  central     u = 30 %, launch = 10 us, e = 60 %;
  range, low  u = 50 %, launch =  5 us, e = 80 %  (the same max);
  range, high u = 15 %, launch = 20 us, e = 45 %, the three terms ADDED (no overlap: host syncs serialise).
fp32, not the fp16 tensor-core peak (65 TFLOP/s), as a ceiling: training steps under ``utils.autocast`` (01, 04,
07, 08, 12-20; it picks float16 with a gradient scaler on a T4 -- bfloat16, which a T4 only emulates, until this
estimate found it) should land nearer ``amp_fp16_min``, while the GANs (09-11), the autoencoders (06), Mask R-CNN
(05) and every sampling loop run in fp32. ``amp_fp16_min`` is the what-if of fp16 AMP everywhere:
F / (65 TFLOP/s * 25 %) (15-40 % range), M halved, same launches.
The M term adds to issue #21's max(F, K): at these widths, elementwise ops at batch 500-3000 are bandwidth-bound.
Work that stays on the CPU in the gpu profile (the FID judge, toy 2-D models, host-side augmentation and masks, and
notebooks 02-03, whose models never leave the CPU) is not on the T4: the largest items are timed here on one thread,
scaled, and listed apart (``host_side``). Data loading is ignored. One thread, batches of 8: about 20 s.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

os.environ.setdefault("COURSE_OFFLINE", "1")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode, flop_registry  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from results_file import write  # noqa: E402

T4 = {"fp32_peak_flops": 8.1e12, "fp16_tensor_peak_flops": 65e12, "dram_bytes_per_s": 320e9}
CENTRAL = {"util": 0.30, "launch_s": 10e-6, "bw_eff": 0.60}
LOW = {"util": 0.50, "launch_s": 5e-6, "bw_eff": 0.80}
HIGH = {"util": 0.15, "launch_s": 20e-6, "bw_eff": 0.45}
AMP_UTIL = (0.15, 0.25, 0.40)            # fp16 what-if: low, central, high fraction of the tensor-core peak
BUDGET_MIN = 15.0
aten = torch.ops.aten
FREE = {aten.detach, aten.empty, aten.empty_like, aten.empty_strided, aten.new_empty, aten.new_empty_strided,
        aten.lift_fresh, aten.alias, aten._unsafe_view, aten.set_}

# count optimizers as CUDA runs them: foreach (multi-tensor) kernels, not one op per parameter
import torch.optim.optimizer as _optim  # noqa: E402
_optim._get_foreach_kernels_supported_devices = lambda: ["cuda", "cpu"]


# Optimizers keep their step counters on the host even on CUDA (not capturable): ops on those alone are not kernels.
STEP_COUNTERS: dict[int, torch.Tensor] = {}         # id -> tensor (held, so that no other tensor takes its id)
_optim.register_optimizer_step_pre_hook(
    lambda opt, args, kwargs: STEP_COUNTERS.update((id(v["step"]), v["step"]) for v in opt.state.values()
                                                   if "step" in v))


class OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched inside it: FLOPs (FlopCounterMode's per-op formulas), launching ops, their
    bytes, and host syncs. (FlopCounterMode itself is not used in the loops: its module hooks make torch.autograd.grad
    fail inside a sampling loop, as in classifier guidance; ``flop_check`` compares the two on one loop.)"""

    def __init__(self) -> None:
        super().__init__()
        self.ops = self.bytes = self.syncs = self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        out = func(*args, **(kwargs or {}))
        if any(id(t) in STEP_COUNTERS for t in tensors) and all(id(t) in STEP_COUNTERS or t.ndim == 0 for t in tensors):
            return out                                        # host-side optimizer bookkeeping
        packet = func.overloadpacket
        if packet in flop_registry:
            self.flops += flop_registry[packet](*args, **(kwargs or {}), out_val=out)
        if packet is aten._local_scalar_dense:
            self.syncs += 1
        if not func.is_view and packet not in FREE:
            self.ops += 1
            seen = {id(t): t for t in tensors + [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]}
            self.bytes += sum(t.numel() * t.element_size() for t in seen.values())
        return out


@dataclass
class Loop:
    notebook: str
    name: str
    build: Callable[[], Callable[[int], None]]   # -> step(B): one call of the loop body at batch B
    batch: int                                   # the real batch of one call
    calls: int                                   # calls in the gpu profile
    note: str = ""
    fixed_s: float | None = None                 # the notebook runs it for this wall-clock, whatever the speed


def measure(loop: Loop, batches: tuple[int, int] = (4, 8)) -> dict:
    STEP_COUNTERS.clear()
    step = loop.build()
    step(batches[0])                                         # warm-up: optimizer state, lazy buffers
    rows = []
    for b in batches:
        with OpCounter() as oc:
            step(b)
        rows.append((oc.flops, oc.ops, oc.bytes, oc.syncs))
    (b1, r1), (b2, r2) = zip(batches, rows)
    at = [max(v2, v1 + (v2 - v1) / (b2 - b1) * (loop.batch - b1)) for v1, v2 in zip(r1, r2)]   # a + b * batch
    return dict(zip(("flops", "ops", "bytes", "syncs"), at))


def flop_check() -> dict:
    """FLOPs of one DDPM training step at batch 8, by FlopCounterMode and by OpCounter: they should agree."""
    step = ddpm_train()
    step(8)
    with FlopCounterMode(display=False) as fc:
        step(8)
    with OpCounter() as oc:
        step(8)
    return {"flop_counter_mode": fc.get_total_flops(), "op_counter": oc.flops}


def seconds(per_call: dict, calls: int, p: dict, add: bool = False) -> tuple[float, str]:
    terms = {"flops": per_call["flops"] * calls / (T4["fp32_peak_flops"] * p["util"]),
             "launch": per_call["ops"] * calls * p["launch_s"],
             "bytes": per_call["bytes"] * calls / (T4["dram_bytes_per_s"] * p["bw_eff"])}
    bound = max(terms, key=terms.get)
    return (sum(terms.values()) if add else terms[bound]), bound


def amp_seconds(per_call: dict, calls: int, util: float, launch_s: float, bw_eff: float) -> float:
    return max(per_call["flops"] * calls / (T4["fp16_tensor_peak_flops"] * util), per_call["ops"] * calls * launch_s,
               per_call["bytes"] / 2 * calls / (T4["dram_bytes_per_s"] * bw_eff))


# ------------------------------------------------------------------------------------------------- loop bodies

def rand_images(B: int, size: int = 28, lo: float = 0.0) -> torch.Tensor:
    return torch.rand(B, 1, size, size) * (1 - lo) + lo


def labels(B: int, k: int = 10) -> torch.Tensor:
    return torch.randint(k, (B,))


def trainer(model: nn.Module, loss_fn: Callable[[int], torch.Tensor], opt=torch.optim.Adam, clip: float | None = None,
            after: Callable[[], None] | None = None, **opt_kw) -> Callable[[int], None]:
    """One optimizer step of ``loss_fn(B)`` (zero_grad, backward, optional clipping, step, optional EMA)."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = opt(params, lr=opt_kw.pop("lr", 1e-4), **opt_kw)

    def step(B: int) -> None:
        loss = loss_fn(B)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        if after:
            after()
    return step


def inference(fn: Callable[[int], object], *models: nn.Module) -> Callable[[int], None]:
    for m in models:
        m.eval().requires_grad_(False)

    def step(B: int) -> None:
        with torch.no_grad():
            fn(B)
    return step


CAPTIONS: list[torch.Tensor] = []


def captions(B: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and mask (B, 16) of B captions, tokenized once on the host as the notebooks do (not counted)."""
    if not CAPTIONS:
        from course_lib.text import Tokenizer
        texts = ["a photo of a large light dress", "a small dark sneaker on the left", "large dark pants at the top"]
        CAPTIONS.extend(Tokenizer.for_captions().encode_batch([texts[i % 3] for i in range(8)], 16))
    return CAPTIONS[0][:B], CAPTIONS[1][:B]


def schedule():
    from course_lib.diffusion import NoiseSchedule
    return NoiseSchedule(1000)


# 01 ---------------------------------------------------------------------------------------------------------

def cnn_degradation(kind: str, blocks: int):
    def build():
        from course_lib.cnn.resnet import PlainBlock, ResidualBlock, stack
        net = stack({"plain": PlainBlock, "res": ResidualBlock}[kind], blocks, 16)
        return trainer(net, lambda B: F.cross_entropy(net(rand_images(B, 14)), labels(B)), torch.optim.SGD,
                       lr=0.1, momentum=0.9, weight_decay=1e-4)
    return build


def cnn_arch(name: str):
    def build():
        import course_lib.cnn as cnn
        from course_lib.training import augment, train_step
        model = getattr(cnn, name)().to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
        return lambda B: train_step(model, opt, augment(rand_images(B)).contiguous(memory_format=torch.channels_last),
                                    labels(B))
    return build


def cnn_eval():
    import course_lib.cnn as cnn
    models = [getattr(cnn, n)() for n in ("AlexNet", "GoogLeNet", "ResNet", "DenseNet")]
    return inference(lambda B: [m(rand_images(B)) for m in models], *models)


# 05 ---------------------------------------------------------------------------------------------------------

def scenes(n: int):
    from course_lib.data import ImageDataset, fashion_scenes
    source = ImageDataset(torch.rand(64, 1, 28, 28), labels(64))
    return fashion_scenes(n, seed=0, split="train", source=source)


def maskrcnn_train():
    from course_lib.maskrcnn import model as mr
    from course_lib.maskrcnn.train import train_step
    model, data = mr.MaskRCNN(), scenes(8)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    return lambda B: train_step(model, opt, data.images[:B], data.targets[:B])


def maskrcnn_predict():
    """The shipped weights (read from data/checkpoints; never trained here): the per-detection work of inference
    depends on how many boxes pass the score threshold, which random weights would inflate."""
    from course_lib import checkpoints
    from course_lib.data import fashion_scenes
    from course_lib.maskrcnn import model as mr
    from course_lib.maskrcnn.train import CHECKPOINT, REFERENCE, ROIPOOL, build_torchvision_reference
    models = {CHECKPOINT: mr.MaskRCNN(), ROIPOOL: mr.MaskRCNN(pooler="pool"), REFERENCE: build_torchvision_reference()}
    for name, m in models.items():
        checkpoints.load(name, m)                                  # no train function: a missing file raises
    data = fashion_scenes(8, seed=1, split="test")
    ours, pool, ref = models.values()
    return inference(lambda B: [m(list(data.images[:B])) for m in (ours, ours, pool, ref)], ours, pool, ref)


# 10, 11 -----------------------------------------------------------------------------------------------------

def dcgan_train():
    from course_lib.gans.dcgan import DCGANDiscriminator, DCGANGenerator
    from course_lib.gans.train import d_step, ema_update, g_step
    G, D = DCGANGenerator(), DCGANDiscriminator()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g, opt_d = adam(G), adam(D)

    def step(B: int) -> None:
        z = torch.randn(2, B, G.z_dim)
        d_step(G, D, opt_d, rand_images(B) * 2 - 1, z[0])
        g_step(G, D, opt_g, z[1])
        ema_update(G_ema, G, decay=0.99)
    return step


def gan_sample(name: str):
    def build():
        from course_lib.gans.shipped import build_generator
        G = build_generator(name)
        return inference(lambda B: G(torch.randn(B, G.z_dim)), G)
    return build


def pix2pix_train():
    from course_lib.translation.pix2pix import PatchDiscriminator, UNet
    from course_lib.translation.train import l1_step, pix2pix_step
    G, D, G_l1 = UNet(), PatchDiscriminator(), UNet()
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g, opt_d, opt_l1 = adam(G), adam(D), adam(G_l1)

    def step(B: int) -> None:
        x, y = rand_images(B) * 2 - 1, rand_images(B) * 2 - 1
        pix2pix_step(G, D, opt_g, opt_d, x, y, lam=100.0)
        l1_step(G_l1, opt_l1, x, y)
    return step


def munit_train():
    from course_lib.translation import munit
    from course_lib.translation.pix2pix import PatchDiscriminator
    from course_lib.translation.train import munit_step
    M = munit.MUNIT(style_dim=8, channels=32)
    discs = nn.ModuleDict({d: PatchDiscriminator(in_channels=1) for d in "ab"})
    opt_m = torch.optim.Adam(M.parameters(), lr=1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discs.parameters(), lr=1e-4, betas=(0.5, 0.999))
    return lambda B: munit_step(M, discs, opt_m, opt_d, rand_images(B) * 2 - 1, rand_images(B) * 2 - 1)


def pix2pix_eval():
    from course_lib.translation.pix2pix import UNet
    G = UNet()
    return inference(lambda B: G(rand_images(B) * 2 - 1), G)


def munit_eval():
    from course_lib.translation import munit
    M = munit.MUNIT(style_dim=8, channels=64)
    return inference(lambda B: M.translate(rand_images(B) * 2 - 1, "a", "b", s=torch.randn(B, 8)), M)


# 12, 13, 14 -------------------------------------------------------------------------------------------------

def ncsn_train():
    from course_lib.diffusion import ncsn
    model = ncsn.build_ncsn()
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    return lambda B: ncsn.train_step(model, opt, rand_images(B))


def ncsn_sample():
    from course_lib.diffusion import langevin_step, ncsn
    model = ncsn.build_ncsn()
    return inference(lambda B: langevin_step(x := rand_images(B), model(x, 0.1), 1e-5, torch.randn(x.shape)), model)


def unet(kind: str = "ddpm") -> nn.Module:
    if kind == "ddpm":
        from course_lib.diffusion.shipped import build_unet
        return build_unet()
    if kind == "decoder":
        from course_lib.dalle.unclip import EmbeddingConditionalUNet
        return EmbeddingConditionalUNet()
    from course_lib.guidance.shipped import build
    return build(kind)


def ddpm_train():
    model, sch = unet(), schedule()

    def loss(B: int) -> torch.Tensor:
        x0, t, eps = rand_images(B) * 2 - 1, torch.randint(0, 1000, (B,)), torch.randn(B, 1, 28, 28)
        return (eps - model(sch.q_sample(x0, t, eps), t)).pow(2).mean()
    return trainer(model, loss, lr=5e-4, clip=1.0)


def ddpm_call(kind: str):
    """One sampler call of chapter 13's U-Net: 'ddim' (DDIM step, x0 clipped), 'ddpm' (Algorithm 2), 'dae'
    (q_sample, predict x0), 'loss' (q_sample, forward)."""
    def build():
        model, sch = unet(), schedule()

        def call(B: int) -> None:
            x, t = torch.randn(B, 1, 28, 28), torch.full((B,), 500)
            if kind == "ddim":
                sch.ddim_step(model(x, t), 500, 480, x, clip_x0=1.0)
            elif kind == "ddpm":
                sch.ddpm_step(model(x, t), 500, x, torch.randn(x.shape))
            elif kind == "dae":
                xt = sch.q_sample(x, 500, torch.randn(x.shape))
                sch.predict_x0(model(xt, t), 500, xt).clamp(-1, 1)
            else:
                model(sch.q_sample(x, t, torch.randn(x.shape)), t)
        return inference(call, model)
    return build


def cond_train():
    from course_lib.guidance import drop_condition
    model, sch = unet("ddpm_cond"), schedule()
    g = torch.Generator().manual_seed(0)

    def loss(B: int) -> torch.Tensor:
        x0, t, eps = rand_images(B) * 2 - 1, torch.randint(0, 1000, (B,)), torch.randn(B, 1, 28, 28)
        y = drop_condition(labels(B), 0.1, model.null_label, g)
        return (eps - model(sch.q_sample(x0, t, eps), t, y)).pow(2).mean()
    return trainer(model, loss, lr=5e-4, clip=1.0)


def guided_call(mode: str):
    """One DDIM step of notebook 14's sweeps: 'cg' (unconditional ddpm + the noisy classifier's gradient), 'cfg1'
    (ddpm_cond, one pass), 'cfg2' (ddpm_cond, conditional and null in one doubled batch)."""
    def build():
        from course_lib.guidance import classifier_grad, classifier_guided_eps, eps_cfg
        sch = schedule()
        model, clf = (unet(), unet("noisy_classifier")) if mode == "cg" else (unet("ddpm_cond"), nn.Identity())

        def call(B: int) -> None:
            x, t, y = torch.randn(B, 1, 28, 28), torch.full((B,), 500), labels(B)
            if mode == "cg":
                eps = classifier_guided_eps(model(x, t), classifier_grad(clf, x, t, y), sch.alpha_bar[t].to(x), 3.0)
            else:
                eps = model(x, t, y) if mode == "cfg1" else eps_cfg(model, x, t, y, 3.0)
            sch.ddim_step(eps, 500, 480, x, clip_x0=1.0)
        return inference(call, model, clf)
    return build


# 15 ---------------------------------------------------------------------------------------------------------

def ldm_train():
    from course_lib.guidance.latent import drop_caption
    model, sch = unet("ldm_text"), schedule()
    null = captions(1)
    g = torch.Generator().manual_seed(0)

    def loss(B: int) -> torch.Tensor:
        ids, mask = drop_caption(*captions(B), 0.1, *(v[0] for v in null), generator=g)
        z0, t, eps = torch.randn(B, 2, 7, 7), torch.randint(0, 1000, (B,)), torch.randn(B, 2, 7, 7)
        return (eps - model(sch.q_sample(z0, t, eps), t, ids, mask)).pow(2).mean()
    return trainer(model, loss, lr=5e-4, clip=1.0)


def ldm_call(double: bool):
    def build():
        from course_lib.guidance import guidance
        model, sch = unet("ldm_text"), schedule()

        def call(B: int) -> None:
            (ids, mask), z, t = captions(B), torch.randn(B, 2, 7, 7), torch.full((B,), 500)
            if double:
                eps_c, eps_u = model(torch.cat([z, z]), torch.cat([t, t]), torch.cat([ids, ids]),
                                     torch.cat([mask, mask])).chunk(2)
                eps = guidance.cfg(eps_u, eps_c, 3.0)
            else:
                eps = model(z, t, ids, mask)
            sch.ddim_step(eps, 500, 480, z)
        return inference(call, model)
    return build


def vq_decode():
    from course_lib.vq.vqvae import build_vqvae
    tok = build_vqvae()
    return inference(lambda B: tok.decode_tokens(torch.randint(tok.num_codes, (B, 7, 7))), tok)


# 16-18 ------------------------------------------------------------------------------------------------------

def igpt(causal: bool = True) -> nn.Module:
    from course_lib.transformers.igpt import PALETTE, SIDE, ImageGPT
    return ImageGPT(PALETTE, SIDE * SIDE, dim=64, depth=4, heads=4, causal=causal)


def igpt_train():
    from course_lib.transformers.igpt import ar_loss
    model = igpt()
    return trainer(model, lambda B: ar_loss(model, torch.randint(16, (B, 196))), torch.optim.AdamW, lr=1e-3,
                   weight_decay=0.01)


def igpt_generate(prefix: int, new: int):
    """Notebook 16's ``complete``: one full forward per new token (no cache), the next token drawn on the host."""
    def build():
        model = igpt()

        def call(B: int) -> None:
            seq = torch.randint(16, (B, prefix))
            for _ in range(new):
                logits = model(torch.cat([seq, seq[:, :1]], 1))[:, -1]
                seq = torch.cat([seq, torch.multinomial(logits.softmax(-1), 1)], 1)
        return inference(call, model)
    return build


def igpt_forward():
    from course_lib.transformers.igpt import layer_features
    model = igpt()
    return inference(lambda B: layer_features(model, torch.randint(16, (B, 196))), model)


def vit_train():
    from course_lib.transformers.vit import ViT
    model = ViT()
    return trainer(model, lambda B: F.cross_entropy(model(rand_images(B)), labels(B)), torch.optim.AdamW, lr=1e-3,
                   weight_decay=5e-4)


def vit_eval():
    from course_lib.transformers.vit import ViT
    model = ViT()
    return inference(lambda B: model(rand_images(B)), model)


def resnet_eval():
    from course_lib.cnn import ResNet
    model = ResNet()
    return inference(lambda B: model(rand_images(B)), model)


def beit_train():
    from course_lib.transformers.beit import mim_loss, masks
    from course_lib.transformers.shipped import build_beit
    from course_lib.vq.vqvae import build_vqvae
    model, tok = build_beit(), build_vqvae().eval().requires_grad_(False)
    drawn = masks(8, 7, 0.4, torch.Generator().manual_seed(0))        # drawn on the host in the notebook: not counted

    def loss(B: int) -> torch.Tensor:
        x = rand_images(B)
        return mim_loss(model, x, tok.encode_tokens(x).flatten(1), drawn[:B])[0]
    return trainer(model, loss, torch.optim.AdamW, lr=1e-3, weight_decay=0.05)


# 19, 20 -----------------------------------------------------------------------------------------------------

def dalle_train():
    from course_lib.dalle.dalle import stream_loss
    from course_lib.dalle.shipped import build_dalle
    model = build_dalle()
    return trainer(model, lambda B: stream_loss(model, captions(B)[0], torch.randint(128, (B, 49)))[0],
                   torch.optim.AdamW, lr=1e-3, weight_decay=0.01)


def dalle_generate():
    """Notebook 19's ``generate``: 49 image tokens, one full forward each (no cache), then the VQ decoder."""
    from course_lib.dalle.dalle import filter_logits
    from course_lib.dalle.shipped import build_dalle
    from course_lib.vq.vqvae import build_vqvae
    model, tok = build_dalle(), build_vqvae()

    def call(B: int) -> None:
        text, codes = captions(B)[0], torch.zeros(B, 0, dtype=torch.long)
        for _ in range(49):
            probs = filter_logits(model(text, codes)[1][:, -1], 1.0, 32).softmax(-1)
            codes = torch.cat([codes, torch.multinomial(probs, 1)], 1)
        tok.decode_tokens(codes.view(-1, 7, 7))
    return inference(call, model, tok)


def clip_model() -> nn.Module:
    from course_lib.dalle.shipped import build
    return build("clip")


def clip_train():
    model = clip_model()
    return trainer(model, lambda B: model(rand_images(B), *captions(B)), torch.optim.AdamW, lr=1e-3, weight_decay=0.01)


def clip_embed():
    model = clip_model()
    return inference(lambda B: (model.encode_image(rand_images(B)), model.encode_text(*captions(B))), model)


def prior_call():
    from course_lib.dalle.shipped import build
    from course_lib.dalle.unclip import eps_from_x0
    prior, sch = build("unclip_prior"), schedule()

    def call(B: int) -> None:
        z, t = torch.randn(B, 64), torch.full((B,), 500)
        sch.ddim_step(eps_from_x0(sch, prior(z, t, torch.randn(B, 64)), 500, z), 500, 480, z)
    return inference(call, prior)


def unclip_decode_call():
    from course_lib.guidance.guidance import cfg as cfg_combine
    model, sch = unet("decoder"), schedule()

    def call(B: int) -> None:
        x, t, z = torch.randn(B, 1, 28, 28), torch.full((2 * B,), 500), torch.randn(B, 64)
        keep = torch.cat([torch.ones(B, dtype=torch.bool), torch.zeros(B, dtype=torch.bool)])
        eps_c, eps_u = model(torch.cat([x, x]), t, torch.cat([z, z]), keep).chunk(2)
        sch.ddim_step(cfg_combine(eps_u, eps_c, 3.0), 500, 480, x, clip_x0=1.0)
    return inference(call, model)


# 04, 06-09 (smaller) -----------------------------------------------------------------------------------------

def yolo_train():
    from course_lib.yolo.model import YOLOv1, encode_targets, train_step
    model, data = YOLOv1(), scenes(8)
    target = encode_targets(data.targets, S=8, size=64)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    return lambda B: train_step(model, opt, data.images[:B], target[:B])


def autoencoder(d_code: int, batch_of: Callable[[int], torch.Tensor] = lambda B: rand_images(B), sync: bool = True,
                corrupt: bool = False, **kw):
    """Notebook 06's loops: ``train_step`` of an Autoencoder, then ``.item()`` of its terms (fit) or of the MSE."""
    penalties = {k: kw.pop(k) for k in ("beta", "rho", "lam") if k in kw}

    def build():
        from course_lib.autoencoders import Autoencoder, gaussian_noise, train_step
        model = Autoencoder(d_code, **kw)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)

        def step(B: int) -> None:
            x = batch_of(B)
            out = train_step(model, opt, x, gaussian_noise(x, 0.5) if corrupt else None, **penalties)
            for v in (out.values() if sync else [out["loss"]]):
                v.item()
        return step
    return build


def vae_train():
    from course_lib.vae.train import train_step
    from course_lib.vae.vae import VAE
    model = VAE(latent_dim=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return lambda B: train_step(model, opt, (rand_images(B) > 0.5).float(), beta=0.5)


def iwae(kind: str):
    def build():
        from course_lib.vae.hierarchical import build_hvae
        from course_lib.vae.kernels import iwae_nll
        from course_lib.vae.vae import VAE
        model = VAE(latent_dim=16) if kind == "vae" else build_hvae()
        return inference(lambda B: iwae_nll(model, (rand_images(B) > 0.5).float(), 100, batch_size=B), model)
    return build


def vq_train():
    from course_lib.vq import VQVAE, train_step
    model = VQVAE()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    return lambda B: train_step(model, opt, rand_images(B))


def token_prior_train():
    from course_lib.vq.prior import TokenPrior, train_step
    prior = TokenPrior()
    opt = torch.optim.AdamW(prior.parameters(), lr=3e-3)
    return lambda B: train_step(prior, opt, torch.randint(128, (B, 49)))


def token_prior_sample():
    from course_lib.vq.prior import TokenPrior, sample_next
    prior = TokenPrior()

    def call(B: int) -> None:
        samples = torch.zeros(B, 49, dtype=torch.long)
        for t in range(49):
            samples[:, t] = sample_next(prior(samples[:, :t + 1])[:, -1])
    return inference(call, prior)


def toy_gan_train():
    from course_lib.gans.toy import Discriminator, Generator, d_loss, g_loss_nonsaturating, mixture_of_gaussians_2d
    G, D = Generator(), Discriminator()
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))

    def step(B: int) -> None:
        fake = G(torch.randn(B, G.z_dim))
        loss_d = d_loss(D(mixture_of_gaussians_2d(B)), D(fake.detach()))
        opt_d.zero_grad(); loss_d.backward(); opt_d.step()
        loss_g = g_loss_nonsaturating(D(fake))
        opt_g.zero_grad(); loss_g.backward(); opt_g.step()
        loss_d.item(), loss_g.item()
    return step


def toy_d_train():
    from course_lib.gans.toy import Discriminator, d_loss
    D = Discriminator(x_dim=1, hidden=64)
    return trainer(D, lambda B: d_loss(D(torch.randn(B, 1)), D(torch.randn(B, 1))), lr=3e-3)


# ------------------------------------------------------------------------------------------------- the table

L = Loop
LOOPS = [
    # 01: CNNConfig gpu: seconds=120 per architecture (equal wall-clock), degradation 4 stacks x 1,000 steps of 128
    L("01", "train AlexNet (120 s fixed)", cnn_arch("AlexNet"), 128, 0, "cell 33: equal wall-clock", fixed_s=120),
    L("01", "train GoogLeNet (120 s fixed)", cnn_arch("GoogLeNet"), 128, 0, "cell 33", fixed_s=120),
    L("01", "train ResNet (120 s fixed)", cnn_arch("ResNet"), 128, 0, "cell 33", fixed_s=120),
    L("01", "train DenseNet (120 s fixed)", cnn_arch("DenseNet"), 128, 0, "cell 33", fixed_s=120),
    *[L("01", f"degradation {k} x {n} blocks", cnn_degradation(k, n), 128, 1_000, "cell 24: 14x14, width 16")
      for k in ("plain", "res") for n in (3, 12)],
    L("01", "accuracy of the 4 CNNs", cnn_eval, 1_000, 10, "cell 36: 10,000 test images each"),
    # 05: MaskRCNNNotebookConfig gpu: 1,500 steps of 8 scenes; 1,000 held-out scenes through 4 models
    L("05", "train Mask R-CNN", maskrcnn_train, 8, 1_500, "cell 24"),
    L("05", "predict: 2x ours, RoIPool, torchvision", maskrcnn_predict, 32, 32,
      "cells 26-41: 1,000 scenes in batches of 32; random weights give other detection counts than trained ones"),
    # 10: GANImagesConfig gpu: DCGAN 6,000 steps of 32; FID/histogram/psi samples
    L("10", "train DCGAN (D + G + EMA)", dcgan_train, 32, 6_000, "cell 10"),
    L("10", "sample DCGAN (short + shipped)", gan_sample("gan_dcgan"), 500, 60, "~30,000 images: n_fid x 2 + n_hist"),
    L("10", "sample ProGAN", gan_sample("gan_progan"), 500, 40, "~20,000 images: n_fid + n_hist"),
    L("10", "sample StyleGAN", gan_sample("gan_stylegan"), 500, 70, "~35,000 images: n_fid + n_hist + 5 psi x 3,000"),
    # 11: TranslationConfig gpu: 5,000 steps pix2pix + L1 twin (batch 32), MUNIT 2,000 steps of 16
    L("11", "train pix2pix + L1-only twin", pix2pix_train, 32, 5_000, "cell 19"),
    L("11", "train MUNIT (G + 2 D)", munit_train, 16, 2_000, "cell 38"),
    L("11", "translate (U-Nets)", pix2pix_eval, 500, 68, "~6 U-Nets x 5,000 test pairs + diversity 500 x 8"),
    L("11", "translate (MUNIT)", munit_eval, 500, 18, "~5,000 + 500 x 8"),
    # 12: ScoreConfig gpu: NCSN 1,000 steps of 128; 1,000 samples x (10 levels x 100 + 1) passes
    L("12", "train NCSN", ncsn_train, 128, 1_000, "the notebook's own loop"),
    L("12", "annealed Langevin, 1,000 samples", ncsn_sample, 1_000, 1_001, "10 levels x 100 steps + Tweedie"),
    # 13: DDPMNotebookConfig gpu
    L("13", "train DDPM", ddpm_train, 64, 2_000, "Algorithm 1 loop, clip 1"),
    L("13", "loss by t (short + shipped)", ddpm_call("loss"), 2_000, 20, "10 t x 2 models x n_loss 2,000"),
    L("13", "Algorithm 2 (DDPM-1000)", ddpm_call("ddpm"), 64, 1_000, "n_frames 64"),
    L("13", "DDIM-50, -10, -10 noclip", ddpm_call("ddim"), 500, 420, "n_fid 3,000 in batches of 500 x 70 steps"),
    L("13", "DAE chain", ddpm_call("dae"), 3_000, 51, "n_dae 3,000: one shot + 50"),
    # 14: GuidanceNotebookConfig gpu: 1,000 steps of 64; DDIM-50 sweeps of 1,000 samples (batches of 500)
    L("14", "train CFG U-Net", cond_train, 64, 1_000, "label dropout 10 %"),
    L("14", "classifier guidance, s = 0", ddpm_call("ddim"), 500, 100, "1 scale x 2 batches x 50"),
    L("14", "classifier guidance, s > 0", guided_call("cg"), 500, 400, "4 scales: ddpm + grad of the classifier"),
    L("14", "CFG, s in {0, 1} (one pass)", guided_call("cfg1"), 500, 200, "2 scales"),
    L("14", "CFG, s > 1 (doubled batch)", guided_call("cfg2"), 500, 600, "6 scales"),
    L("14", "CFG grid, batches of 8", guided_call("cfg1"), 8, 550, "88 samples in batches of 8 x 50 steps"),
    # 15: LatentNotebookConfig gpu
    L("15", "train latent denoiser", ldm_train, 64, 2_000, "Eq. 3 loop, clip 1"),
    L("15", "generate, s in {0, 1}", ldm_call(False), 250, 400, "2 scales x 1,000 captions / 250 x 50 steps"),
    L("15", "generate, s in {2, 3, 5}", ldm_call(True), 250, 600, "3 scales x 4 batches x 50 steps (doubled)"),
    L("15", "generate: grid 48 + speed 200", ldm_call(True), 124, 100, "2 x 50 steps at 48 and 200 (as 2 x 124)"),
    L("15", "speed test: pixel ddpm_cond", guided_call("cfg2"), 200, 50, "n_speed 200, DDIM-50, s = 3"),
    L("15", "VQ decoder", vq_decode, 1_000, 75, "~7 x 10,000 recon/ablations + 5 x 1,000 samples"),
    # 16: IGPTNotebookConfig gpu
    L("16", "train iGPT", igpt_train, 64, 4_000, "Eq. 1 loop"),
    L("16", "complete 1,000 bottom halves", igpt_generate(98, 98), 1_000, 1, "98 forwards of length 99..196"),
    L("16", "complete 3 x 6, draw 16", igpt_generate(98, 98), 8, 4, "launch-bound small batches (as 4 x 98 calls)"),
    L("16", "NLLs + probe features", igpt_forward, 500, 180, "~60 NLL passes + 2 models x 30,000 probe images"),
    # 17: ViTNotebookConfig gpu: 7,020 steps of 128
    L("17", "train ViT", vit_train, 128, 7_020, "augment runs on the host (not counted)"),
    L("17", "evaluate ViTs", vit_eval, 1_000, 100, "~10 x 10,000 test images"),
    L("17", "evaluate ResNets", resnet_eval, 1_000, 80, "~8 x 10,000 test images"),
    # 18: BEiTNotebookConfig gpu: 5,000 steps of 128 (tokenizer forward each step)
    L("18", "pre-train BEiT (+ tokenizer)", beit_train, 128, 5_000, "masks drawn on the host (not counted)"),
    L("18", "evaluate / probe (ViT size)", vit_eval, 1_000, 70, "~70,000 images through ViT-size models"),
    # 19: DALLENotebookConfig gpu: 6,000 steps of 64; 4 settings x 2,000 + 1,000 x 16 candidates
    L("19", "train DALL-E", dalle_train, 64, 6_000, "stream loss"),
    L("19", "generate (49 tokens, no cache)", dalle_generate, 500, 48, "(4 x 2,000 + 16,000) captions / 500"),
    # 20: UnCLIPNotebookConfig gpu: CLIP 3,000 steps of 128; decoder 5 x 1,000 DDIM-50 with CFG
    L("20", "train CLIP", clip_train, 128, 3_000, "shift runs on the host (not counted)"),
    L("20", "CLIP embeddings", clip_embed, 1_000, 32, "10,000 + 20,000 + 2,000 pairs"),
    L("20", "prior DDIM-50", prior_call, 2_000, 50, "n_p 2,000"),
    L("20", "decoder DDIM-50, CFG", unclip_decode_call, 250, 1_000, "5 x 1,000 / 250 x 50"),
    L("20", "decoder, small batches", unclip_decode_call, 8, 200, "recon 8, 2 variations of 6, interpolation"),
    # smaller notebooks: only their training loops (02 and 03 train on the CPU: see host_side)
    L("04", "train YOLOv1", yolo_train, 64, 3_000, "YOLO_CONFIGS gpu: 3,000 steps of 64 scenes"),
    L("06", "linear AE", autoencoder(16, activation="linear", output="linear", sync=False), 512, 10_000, "k_pca 16"),
    L("06", "over-complete AE (+ .item())", autoencoder(2048, activation="relu", output="linear", sync=False), 256,
      10_000, "d_overcomplete 2,048"),
    L("06", "deep AE x 2", autoencoder(2, hidden=(256, 256, 256), activation="linear", sync=False), 100, 10_000,
      "2 x steps_memorize 5,000"),
    L("06", "plain, sparse, k-sparse AEs (fit)", autoencoder(1024, beta=3e-3, rho=0.05), 256, 30_000,
      "3 x 10,000 steps, .item() of each term (as sparse)"),
    L("06", "denoising AE (fit)", autoencoder(1024, corrupt=True), 256, 10_000, "10,000 steps"),
    L("06", "contractive AE (fit)", autoencoder(1024, lam=1e-3), 256, 10_000, "10,000 steps"),
    L("07", "train VAE-16", vae_train, 128, 3_000, "steps 3,000; 3 .item() per step"),
    L("07", "IWAE NLL k = 100, VAE + HVAE", iwae("vae"), 200, 100, "2 x 10,000 test images / 200 (HVAE as VAE)"),
    L("08", "VQ-VAE runs", vq_train, 128, 12_000, "4 ablation runs + 2 betas x 2,000 steps (restarts not counted)"),
    L("08", "train token prior", token_prior_train, 128, 5_000, "prior_steps 5,000"),
    L("08", "sample 5,000 token grids", token_prior_sample, 5_000, 1, "49 forwards, no cache"),
    L("09", "2-D GAN x 6 runs", toy_gan_train, 512, 30_000, "seed 0 with snapshots + 5 seeds, 5,000 steps each"),
    L("09", "1-D discriminator", toy_d_train, 4_096, 4_000, "d_steps 4,000 of 2 x 4,096"),
]


# ------------------------------------------------------------------------------------- host-side work, timed

def timed(fn: Callable[[], object], reps: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def host_side() -> list[dict]:
    """Work that stays on the CPU in the gpu profile too, timed here on one thread (one call, scaled)."""
    from course_lib import metrics
    from course_lib.diffusion import song_ermon_mixture
    from course_lib.training import augment
    from course_lib.transformers.beit import masks
    from course_lib.vq.vqvae import build_vqvae

    judge_1000 = timed(lambda: metrics.features(torch.rand(1000, 1, 28, 28)), 1)
    # approximate counts of images the FID judge sees (metrics.features runs on the CPU), read from the cells
    judged = {"10": 128_000, "11": 60_000, "13": 45_000, "14": 27_000, "15": 77_000, "19": 15_000, "01": 15_000}
    out = [{"notebook": nb, "what": f"FID judge on ~{n:,} images (metrics.features, CPU)",
            "seconds": judge_1000 * n / 1000} for nb, n in judged.items()]

    p = song_ermon_mixture()
    mlp = lambda i, h: nn.Sequential(nn.Linear(i, h), nn.Softplus(), nn.Linear(h, h), nn.Softplus(), nn.Linear(h, 2))
    s = mlp(2, 64)
    opt = torch.optim.Adam(s.parameters())

    def sm_step() -> None:                                       # Hyvarinen score matching: a double backward
        x = torch.randn(1024, 2).requires_grad_(True)
        o = s(x)
        tr = sum(torch.autograd.grad(o[:, i].sum(), x, create_graph=True)[0][:, i] for i in range(2))
        loss = (tr + 0.5 * o.pow(2).sum(1)).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    x = torch.rand(10_000, 2, dtype=torch.float64)
    big = torch.rand(10_000, 1, 28, 28)
    tok = build_vqvae().eval()
    g = torch.Generator().manual_seed(0)
    out.append({"notebook": "12", "what": "3 toy score fits x 5,000 steps of 1,024 (~ score matching's cost each)",
                "seconds": 3 * 5_000 * timed(sm_step, 5)})
    with torch.no_grad():
        out += [
            {"notebook": "12", "what": "Langevin with the exact score, 10,000 chains x 2,000 + 2 x 1,000 steps",
             "seconds": 4_000 * timed(lambda: x + 0.05 * p.score(x) + 0.3 * torch.randn_like(x), 5)},
            {"notebook": "12", "what": "sampler noise drawn on the host: 1,001 x randn(1,000, 1, 28, 28)",
             "seconds": 1_001 * timed(lambda: torch.randn(big[:1000].shape, generator=g), 3)},
            {"notebook": "13", "what": "q(x_t | x_t-1) one step at a time: 10,000 images x 1,000 steps",
             "seconds": 1_000 * timed(lambda: 0.99 * big + 0.1 * torch.randn(big.shape), 2)},
            {"notebook": "15", "what": "caption_latents: 60,000 VQ encodes on the CPU",
             "seconds": 120 * timed(lambda: tok.encode(big[:500]), 1)},
            {"notebook": "17", "what": "augment 7,020 batches of 128 on the host",
             "seconds": 7_020 * timed(lambda: augment(big[:128], g), 3)},
            {"notebook": "18", "what": "augment + blockwise masks, 5,000 batches of 128 on the host",
             "seconds": 5_000 * timed(lambda: (augment(big[:128], g), masks(128, 7, 0.4, g)), 2)},
        ]
    out += cpu_notebooks()
    return out


def cpu_notebooks() -> list[dict]:
    """02 and 03 keep their models on the CPU in every profile (load_classifier("cpu"), RCNN() never moved)."""
    from course_lib.detection.rcnn import RCNN, detect, train_step as rcnn_step, training_crops
    from course_lib.inside.localization import BoxRegressor, train_step as box_step
    from course_lib.data import fashion_scenes
    reg, rcnn = BoxRegressor(size=64), RCNN()
    opt_r, opt_c = torch.optim.AdamW(reg.parameters()), torch.optim.AdamW(rcnn.parameters())
    x64, boxes = torch.rand(64, 1, 64, 64), torch.tensor([[10.0, 10.0, 40.0, 40.0]]).repeat(64, 1)
    crops, y = torch.rand(128, 1, 28, 28), labels(128, 11)
    deltas, reg_mask = torch.randn(128, 4), torch.rand(128) > 0.5
    test_scenes = fashion_scenes(2, seed=1, split="test")
    crops_s = timed(lambda: training_crops(4, crops_per_scene=48, progress=False), 1) / 4
    with torch.no_grad():
        detect_s = timed(lambda: [detect(rcnn.eval(), im) for im, _ in test_scenes], 1) / 2
    return [
        {"notebook": "02", "what": "box regressor, 1,500 steps of 64 (CPU)",
         "seconds": 1_500 * timed(lambda: box_step(reg, opt_r, x64, boxes), 2)},
        {"notebook": "03", "what": "selective search + warping, 1,500 training scenes", "seconds": 1_500 * crops_s},
        {"notebook": "03", "what": "R-CNN, 1,500 steps of 128 crops (CPU)",
         "seconds": 1_500 * timed(lambda: rcnn_step(rcnn, opt_c, crops, y, deltas, reg_mask), 2)},
        {"notebook": "03", "what": "detect on 500 test scenes (random weights: more boxes than trained)",
         "seconds": 500 * detect_s},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_estimate.json")
    parser.add_argument("--only", default="", help="comma-separated notebooks to measure (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    only = set(filter(None, args.only.split(",")))
    start = time.perf_counter()
    check = flop_check()
    loops, notebooks = [], {}
    for loop in LOOPS:
        if only and loop.notebook not in only:
            continue
        t0 = time.perf_counter()
        c = measure(loop)
        n = loop.calls
        if loop.fixed_s is not None:
            per_step = seconds(c, 1, CENTRAL)[0]
            central = low = high = amp = loop.fixed_s
            bound = f"fixed wall-clock (~{loop.fixed_s / per_step:,.0f} steps at the central speed)"
        else:
            (central, bound), (low, _) = seconds(c, n, CENTRAL), seconds(c, n, LOW)
            high = seconds(c, n, HIGH, add=True)[0]
            amp = amp_seconds(c, n, AMP_UTIL[1], CENTRAL["launch_s"], CENTRAL["bw_eff"])
        row = {"notebook": loop.notebook, "loop": loop.name, "batch": loop.batch, "calls": n,
               "gflop_per_call": round(c["flops"] / 1e9, 3), "ops_per_call": round(c["ops"]),
               "mb_per_call": round(c["bytes"] / 1e6, 1), "syncs_per_call": round(c["syncs"]),
               "tflop_total": round(c["flops"] * n / 1e12, 2),
               "t4_s": [round(low, 1), round(central, 1), round(high, 1)],
               "bound": bound, "amp_fp16_s": round(amp, 1), "note": loop.note,
               "measured_in_s": round(time.perf_counter() - t0, 2)}
        loops.append(row)
        print(f"{loop.notebook} {loop.name:42s} {row['tflop_total']:8.2f} TFLOP {row['ops_per_call']:6d} ops/call "
              f"{central:7.1f} s ({bound}) [{row['measured_in_s']} s]", flush=True)
    host = host_side() if not only else []
    for nb in sorted({r["notebook"] for r in loops + host}):
        rows = [r for r in loops if r["notebook"] == nb]
        t = [sum(r["t4_s"][i] for r in rows) / 60 for i in range(3)]
        cpu = sum(h["seconds"] for h in host if h["notebook"] == nb) / 60
        top = sorted(rows, key=lambda r: -r["t4_s"][1])[:2]
        notebooks[nb] = {"t4_min": [round(v, 1) for v in t], "host_side_min": round(cpu, 1),
                         "total_central_min": round(t[1] + cpu, 1),
                         "total_range_min": [round(t[0] + cpu, 1), round(t[2] + cpu, 1)],
                         "amp_fp16_min": round(sum(r["amp_fp16_s"] for r in rows) / 60, 1),
                         "tflop": round(sum(r["tflop_total"] for r in rows), 1),
                         "ops_per_call_of_top_loop": top[0]["ops_per_call"] if top else None,
                         "over_15_min": t[1] + cpu > BUDGET_MIN, "over_15_min_at_high_end": t[2] + cpu > BUDGET_MIN,
                         "dominant": [f"{r['loop']} ({r['t4_s'][1] / 60:.1f} min, {r['bound']})" for r in top]}
    result = {
        "what": "T4 minutes of each notebook's gpu profile, estimated from FLOP and op counts (issue #21)",
        "method": __doc__.split("\n\n", 2)[2].strip(),
        "assumptions": {"t4": T4, "central": CENTRAL, "range_low": LOW, "range_high": HIGH | {"terms": "added"},
                        "amp_fp16_util": AMP_UTIL, "measured_batches": [4, 8], "threads": 1},
        "flop_check": check,
        "notebooks": notebooks,
        "over_15_min": [nb for nb, v in notebooks.items() if v["over_15_min"]],
        "loops": loops,
        "host_side": [h | {"seconds": round(h["seconds"], 1)} for h in host],
        "not_modelled": [
            "00: no training loop; 02 (activation scans on all 10,000 test images, occlusion maps) and 03 (300 recall"
            " scenes, 04's R-CNN comparison): host-side work beyond host_side's items",
            "CPU post-processing: COCO AP (05), sklearn linear probes (06, 16, 18), FID statistics",
            "14's 2-D toy annealed Langevin with classifier gradients (CPU, 10,000 particles x 1,000 steps per scale)",
            "data loading and host-to-device copies; checkpoint loading",
        ],
        "torch": torch.__version__, "python": platform.python_version(),
        "seconds": round(time.perf_counter() - start, 1),
    }
    write(args.out, result)


if __name__ == "__main__":
    main()
