"""Our selective search (course_lib.detection.proposals.selective_search) against OpenCV's
(cv2.ximgproc.segmentation.createSelectiveSearchSegmentation, "fast" and "quality" modes) on the same held-out
Fashion scenes, on this machine.

    python benchmarks/proposals_vs_opencv.py [--n 100] [--seed 4] [--out benchmarks/results/proposals_vs_opencv.json]

Needs OpenCV's contrib modules: pip install opencv-contrib-python-headless.

Scenes: ``fashion_scenes(n, seed=4, split="test")``, notebook 03's recall scenes (its "cpu" profile takes 100).
Ours runs as notebook 03 calls it, ``selective_search(image)`` with its defaults: felzenszwalb k in (50, 100, 150,
300), min_size 10, sigma 0.8, similarity mixes colour + texture + size + fill and texture + size + fill (8
hierarchies). OpenCV runs with its defaults: "fast" = images HSV and Lab, k in (150, 300, 450), 2 mixes (12
hierarchies); "quality" = images HSV, Lab, grey, H and RGI, k in (150, ..., 750), 4 mixes (100 hierarchies); its
graph segmentation keeps min_size 100. Both k are on the 0..255 intensity scale (scikit-image divides its scale by
255). OpenCV wants 3-channel uint8: the grey scene in [0, 1] is rounded to 0..255 and replicated into 3 channels
(so HSV's H and S and Lab's a and b are constant: its colour spaces carry no more than the grey level).

Per method: proposals per image; recall of the ground-truth boxes (all objects pooled, as notebook 03 does) at
IoU >= 0.5 and >= 0.7 with all proposals and with the first k, k in (10, 50, 100, 300); MABO (Uijlings et al.:
each object's best IoU over all proposals, averaged per class, then over classes); seconds per image, wall clock,
one thread (torch and OpenCV), after one untimed warm-up image; OpenCV's time is setBaseImage + switchTo... +
process, not the tensor -> uint8 conversion. Ratios ours / OpenCV: recall@0.5 (>= 1: ours finds more) and seconds
per image (> 1: ours is slower); recall@0.5 also at an equal budget: the first 10 proposals.

Order: both rank as Uijlings et al. Sec. 3.3, position in its hierarchy times a random number, duplicates removed.
Ours gives position 1 to the region covering the image (large regions first, seeded). OpenCV multiplies by the
region's level (1 = initial region, "inverted from the paper" says its source), so small regions come first;
its random numbers are C's rand(), seeded here with srand(0) before each image. Recall@k compares these orders.
Run it on an idle machine: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import ctypes
import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib.data import fashion_scenes  # noqa: E402
from course_lib.detection.boxes import box_iou  # noqa: E402
from course_lib.detection.proposals import selective_search  # noqa: E402
from results_file import write  # noqa: E402

KS = (10, 50, 100, 300)
THRESHOLDS = (0.5, 0.7)


def opencv_search(mode: str) -> Callable[[Tensor], Tensor]:
    """OpenCV's selective search in ``mode`` ("fast" or "quality"): grey image (1, H, W) in [0, 1] -> boxes (K, 4)
    float xyxy, half-open like ours (OpenCV's rect (x, y, w, h) spans columns x..x+w-1)."""
    import cv2

    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    srand = ctypes.CDLL(None).srand                                     # OpenCV ranks with C's rand()

    def propose(image: Tensor) -> Tensor:
        grey = (image[0] * 255).round().byte().numpy()                  # (H, W) uint8
        bgr = cv2.merge([grey, grey, grey])                             # (H, W, 3): grey replicated
        srand(0)
        search.setBaseImage(bgr)
        (search.switchToSelectiveSearchFast if mode == "fast" else search.switchToSelectiveSearchQuality)()
        rects = torch.from_numpy(search.process()).float()              # (K, 4) x, y, w, h
        return torch.cat([rects[:, :2], rects[:, :2] + rects[:, 2:]], dim=1)

    return propose


def evaluate(propose: Callable[[Tensor], Tensor], images: Tensor, targets: list[dict]) -> dict:
    """Run ``propose`` on every image (timed, after one untimed warm-up) and score its boxes against the targets."""
    propose(images[0])
    seconds, counts, best, labels = 0.0, [], [], []                     # best: (1 + len(KS), G) per scene
    for image, target in zip(images, targets):
        start = time.perf_counter()
        boxes = propose(image)
        seconds += time.perf_counter() - start
        counts.append(len(boxes))
        iou = box_iou(target["boxes"], boxes)                           # (G, K)
        best.append(torch.stack([iou.max(1).values] + [iou[:, :k].max(1).values for k in KS]))
        labels.append(target["labels"])
    best, labels = torch.cat(best, dim=1), torch.cat(labels)            # (1 + len(KS), G), (G,)
    per_class = [best[0, labels == c].mean() for c in labels.unique()]
    fraction = lambda hit: round(hit.float().mean().item(), 4)  # noqa: E731
    recall = {f"iou{t}": {"all": fraction(best[0] >= t),
                          **{f"top{k}": fraction(best[1 + i] >= t) for i, k in enumerate(KS)}}
              for t in THRESHOLDS}
    return {"proposals_per_image": sum(counts) / len(counts), "recall": recall,
            "mabo": round(torch.stack(per_class).mean().item(), 4), "seconds_per_image": seconds / len(images)}


def ratios_over(ours: dict, ref: dict) -> dict:
    """ours / ref for recall@0.5 (all proposals and the first 10) and seconds per image."""
    recall50 = lambda result, kept: result["recall"]["iou0.5"][kept]  # noqa: E731
    return {"recall50": round(recall50(ours, "all") / recall50(ref, "all"), 3),
            "recall50_top10": round(recall50(ours, "top10") / recall50(ref, "top10"), 3),
            "seconds_per_image": round(ours["seconds_per_image"] / ref["seconds_per_image"], 3)}


def installed(*packages: str) -> dict[str, str]:
    """{package: version} of those of ``packages`` that are installed."""
    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="held-out scenes (notebook 03's cpu profile: 100)")
    parser.add_argument("--seed", type=int, default=4, help="scene seed (notebook 03's recall scenes: 4)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/proposals_vs_opencv.json")
    args = parser.parse_args()
    try:
        import cv2
        cv2.ximgproc.segmentation.createSelectiveSearchSegmentation
    except (ImportError, AttributeError):
        sys.exit("OpenCV with its contrib modules (cv2.ximgproc) is not importable: "
                 f"{sys.executable} -m pip install opencv-contrib-python-headless")
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    scenes = fashion_scenes(args.n, seed=args.seed, split="test")
    methods = {"ours": selective_search, "opencv_fast": opencv_search("fast"),
               "opencv_quality": opencv_search("quality")}
    results = {name: evaluate(propose, scenes.images, scenes.targets) for name, propose in methods.items()}
    ratios = {ref: ratios_over(results["ours"], results[ref]) for ref in ("opencv_fast", "opencv_quality")}
    write(args.out, {
        "machine": platform.processor() or platform.machine(), "threads": 1,
        "scenes": {"n": args.n, "seed": args.seed, "split": "test", "size": int(scenes.images.shape[-1]),
                   "objects": sum(len(t["boxes"]) for t in scenes.targets)},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "opencv": cv2.__version__,
                     **installed("scikit-image", "opencv-contrib-python-headless", "opencv-contrib-python")},
        "results": results, "ratios_ours_over": ratios,
    })


if __name__ == "__main__":
    main()
