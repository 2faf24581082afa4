"""Our ViT (course_lib.transformers.ViT) against timm's VisionTransformer of the same shape, on this machine.

    python benchmarks/vit_vs_timm.py [--minutes 3] [--threads 2] [--out benchmarks/results/vit_vs_timm.json]

Same shape as notebook 17 (28x28, patch 4, dim 64, depth 4, 4 heads, MLP ratio 4; the two hold the same parameters,
tests/test_transformers.py checks equal logits). Measured one after the other, with the same seed and data:
- throughput: training steps/s on batch 128 (forward, cross-entropy, backward, AdamW), after 3 warm-up steps;
- quality at equal wall-clock: each trains for ``--minutes`` (AdamW lr 1e-3, weight decay 5e-4, the course's
  flips and 2-pixel shifts, batch 128), then its accuracy on the 10,000 test images.
Ratios ours / timm: throughput >= 1 means ours is faster, accuracy ratio >= 1 means ours is as good or better.
Run it on an idle machine: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib.data import fashion_mnist  # noqa: E402
from course_lib.training import accuracy, augment  # noqa: E402
from course_lib.transformers.vit import ViT  # noqa: E402
from results_file import write  # noqa: E402


def timm_vit() -> torch.nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=4, num_heads=4,
                             mlp_ratio=4.0)


def step(model, opt, x, y) -> torch.Tensor:
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def steps_per_second(model, seconds: float = 20.0, batch: int = 128) -> float:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch, 1, 28, 28, generator=g), torch.randint(0, 10, (batch,), generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(3):
        step(model, opt, x, y)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(model, opt, x, y)
        n += 1
    return n / (time.perf_counter() - start)


def train_for(model, minutes: float, batch: int = 128) -> dict:
    train = fashion_mnist("train")
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4)
    model.train()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < 60 * minutes:
        idx = torch.randint(len(train.images), (batch,), generator=g)
        step(model, opt, augment(train.images[idx], g), train.labels[idx])
        n += 1
    test = fashion_mnist("test")
    return {"train_steps": n, "test_acc": round(accuracy(model.eval(), test.images, test.labels), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "vit_vs_timm.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "minutes_each": args.minutes}
    for name, make in (("ours", ViT), ("timm", timm_vit)):
        torch.manual_seed(0)
        model = make()
        row = {"params": sum(p.numel() for p in model.parameters()),
               "steps_per_s": round(steps_per_second(make()), 2)}
        row |= train_for(model, args.minutes)
        result[name] = row
        print(name, row, flush=True)
    result["throughput_ratio"] = round(result["ours"]["steps_per_s"] / result["timm"]["steps_per_s"], 3)
    result["accuracy_ratio"] = round(result["ours"]["test_acc"] / result["timm"]["test_acc"], 3)
    write(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
