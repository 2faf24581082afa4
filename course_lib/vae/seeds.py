"""The seed spread of chapter 07's VAE-vs-HVAE comparison: ``python -m course_lib.vae.seeds``.

Notebook 07 compares ``vae_latent16`` and ``hvae_2level`` (the same parameters, data and 40 epochs) and finds the
hierarchical one better by under a nat of test NLL. One pair of runs cannot say whether that gap is larger than
what another seed changes, so this trains both again with other seeds -- the seed sets the initial weights, the
order of the batches and their binarizations; everything else is the shipped recipe -- and keeps the test metrics
of each run (``train.evaluate`` on all 10,000 binarized test images, IWAE with k = 100) in
``data/checkpoints/vae_seed_spread.json``. The weights are not kept: the file holds numbers only. Each finished run
is written at once (atomically), so a killed job resumes with the runs still missing. About 12 minutes per seed on
2 CPU threads.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from course_lib.checkpoints import atomic_write, shipped_dir
from course_lib.vae import hierarchical, vae
from course_lib.vae.train import TrainConfig, train_model

RUNS = {"vae_latent16": (lambda: vae.build("vae_latent16"), vae.SHIPPED["vae_latent16"].train),
        "hvae_2level": (hierarchical.build_hvae, hierarchical.SHIPPED)}
SEEDS = (1, 2)


def results_path() -> Path:
    folder = shipped_dir()
    if folder is None:
        raise FileNotFoundError("no data/checkpoints folder: run this from a checkout of the course repository")
    return folder / "vae_seed_spread.json"


def read(path: Path | None = None) -> dict:
    """{"<name>_seed<k>": metrics} of the finished runs ({} before any)."""
    path = path or results_path()
    return json.loads(path.read_text()) if path.is_file() else {}


def run(seeds: tuple[int, ...] = SEEDS, path: Path | None = None, cfg_override: TrainConfig | None = None,
        progress: bool = True) -> dict:
    """Train every model of ``RUNS`` with every seed not yet in the file; return the file's contents."""
    path = path or results_path()
    results = read(path)
    for seed in seeds:
        for name, (build, spec) in RUNS.items():
            key = f"{name}_seed{seed}"
            if key in results:
                continue
            torch.manual_seed(seed)                               # the initial weights
            model = build()
            cfg = replace(cfg_override or spec, seed=seed)        # the batches and their binarizations
            start = time.perf_counter()
            metrics = train_model(model, cfg, progress=progress)
            metrics.pop("history")
            results[key] = {**metrics, "seed": seed, "seconds": round(time.perf_counter() - start, 1),
                            "threads": torch.get_num_threads()}
            atomic_write(path, lambda tmp: tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n"))
            print(key, results[key], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    run(tuple(parser.parse_args().seeds))


if __name__ == "__main__":
    main()
