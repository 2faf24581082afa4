"""FID of annealed Langevin samples from the shipped NCSN for several (steps per level, eps) settings.

    python benchmarks/ncsn_sampler_sweep.py [--n 200] [--out benchmarks/results/ncsn_sampler_sweep.json] 5,5e-5 20,1e-4 ...

Each setting samples n images from the same seed (``ncsn.sample_ncsn``, Song & Ermon's Algorithm 1 with
alpha_i = eps sigma_i^2 / sigma_L^2, then the denoising step) and scores them against n test images
(FID on the course judge's features, and the judge's class KL to uniform). The manifest's sampler
(``ncsn.SAMPLER``) was chosen with it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from course_lib import checkpoints, metrics
from course_lib.data import fashion_mnist
from course_lib.diffusion import ncsn

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", help="steps_per_sigma,eps pairs, e.g. 20,1e-4")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ncsn_sampler_sweep.json")
    args = parser.parse_args()
    model = ncsn.build_ncsn()
    entry = checkpoints.load("ncsn", model, train=None, profile="cpu")
    if entry is None or entry.get("origin") != "shipped":
        raise SystemExit("no shipped ncsn checkpoint in data/checkpoints: run `python -m course_lib checkpoints ncsn`")
    model.eval()
    real = fashion_mnist("test").subset(args.n, seed=0).images
    rows = []
    for setting in args.settings:
        k, eps = setting.split(",")
        start = time.perf_counter()
        samples = ncsn.sample_ncsn(model, args.n, steps_per_sigma=int(k), eps=float(eps), seed=1)
        rows.append({"steps_per_sigma": int(k), "eps": float(eps), "n": args.n,
                     "fid": round(metrics.fid(samples, real), 2),
                     "class_kl": round(metrics.kl_to_uniform(metrics.class_histogram(samples)), 3),
                     "seconds": round(time.perf_counter() - start, 1)})
        print(rows[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows},
                                   indent=2) + "\n")


if __name__ == "__main__":
    main()
