"""Our Mask R-CNN (course_lib.maskrcnn.model) against torchvision's MaskRCNN built alike, on this machine.

    python benchmarks/maskrcnn_vs_torchvision.py [--seconds 60] [--threads 2]
                                                 [--out benchmarks/results/maskrcnn_vs_torchvision.json]

Both are built as chapter 05 ships them (``course_lib.maskrcnn.train.build_torchvision_reference``: the same backbone, anchors,
RoI sizes, sampling and head widths; only the implementation differs) and stepped by the same ``train_step``
(forward, the sum of the losses, backward, clipping, AdamW) on the same batches of 8 Fashion scenes with random
flips, one model after the other:
- throughput: training steps/s and images/s over ``--seconds`` of steps each, after 3 warm-up steps;
- quality: the shipped checkpoints' mask and box AP@0.5 on the 300 held-out scenes, from
  data/checkpoints/manifest.json (both trained for the same 3,000 steps, so at equal steps; at equal wall-clock
  the faster of the two would have had more).
Ratios ours / torchvision: throughput >= 1 means ours is faster, AP >= 1 means ours is as good or better.
Run it on an idle machine: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib.data import fashion_scenes  # noqa: E402
from course_lib.maskrcnn import model as maskrcnn, train as maskrcnn_train  # noqa: E402
from results_file import write  # noqa: E402


def steps_per_second(model: torch.nn.Module, seconds: float, batch_size: int = 8, seed: int = 0) -> dict:
    """Train ``model`` for ``seconds`` (after 3 warm-up steps) -> {'steps', 'steps_per_s', 'images_per_s'}."""
    scenes = fashion_scenes(256, seed=0, split="train")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=maskrcnn_train.SHIPPED.lr, weight_decay=1e-4)

    def step() -> None:
        idx = torch.randint(len(scenes), (batch_size,), generator=g).tolist()
        images, targets = maskrcnn_train.hflip(scenes.images[idx], [scenes.targets[i] for i in idx], g)
        maskrcnn_train.train_step(model, optimizer, images, targets)

    for _ in range(3):
        step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    elapsed = time.perf_counter() - start
    return {"steps": steps, "seconds": round(elapsed, 1), "steps_per_s": round(steps / elapsed, 3),
            "images_per_s": round(batch_size * steps / elapsed, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "maskrcnn_vs_torchvision.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    manifest = json.loads((ROOT / "data" / "checkpoints" / "manifest.json").read_text())
    result = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
              "seconds_each": args.seconds, "batch_size": 8}
    for name, model, checkpoint in [("ours", maskrcnn.MaskRCNN(pooler="align"), maskrcnn_train.CHECKPOINT),
                                    ("torchvision", maskrcnn_train.build_torchvision_reference(),
                                     maskrcnn_train.REFERENCE)]:
        row = steps_per_second(model, args.seconds)
        metrics = manifest[checkpoint]["metrics"]
        row |= {"params": sum(p.numel() for p in model.parameters()), "shipped_steps": metrics["steps"],
                "mask_map50": metrics["mask_map50"], "box_map50": metrics["box_map50"]}
        result[name] = row
        print(name, row, flush=True)
    ours, ref = result["ours"], result["torchvision"]
    result["throughput_ratio"] = round(ours["steps_per_s"] / ref["steps_per_s"], 3)
    result["mask_ap_ratio"] = round(ours["mask_map50"] / ref["mask_map50"], 3)
    result["box_ap_ratio"] = round(ours["box_map50"] / ref["box_map50"], 3)
    write(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
