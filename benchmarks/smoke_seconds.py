"""Seconds of every notebook's smoke run, one notebook at a time with one thread each (as ``make test`` runs
them: two workers, one thread each), with the machine they were measured on.

    python benchmarks/smoke_seconds.py [--out benchmarks/results/smoke_seconds.json] [NOTEBOOK ...]

The budget is 30 s per notebook on any machine (COURSE.md); a notebook above ``--near`` seconds (default
20 s, two thirds of the budget) is reported as near it. Run it on an idle machine: other jobs on the cores
inflate the numbers. Exit status 1 if a notebook fails or exceeds the budget.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 30.0


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "smoke_seconds.json")
    parser.add_argument("--near", type=float, default=20.0)
    args = parser.parse_args()
    notebooks = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    scratch = ROOT / "runs" / "smoke-seconds"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COURSE_HEADLESS": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "course_lib", "run", "--profile", "smoke", "--out", str(scratch),
                    *map(str, notebooks)], cwd=ROOT, env=env, check=False)
    wall = time.perf_counter() - start
    results = json.loads((scratch / "results.json").read_text())["notebooks"]
    seconds = {stem: round(r["seconds"], 1) for stem, r in results.items()}
    failed = sorted(stem for stem, r in results.items() if "error" in r)
    report = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "threads_per_notebook": 1,
              "seconds": seconds, "total_seconds": round(sum(seconds.values()), 1),
              "wall_seconds": round(wall, 1), "failed": failed}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{report['machine']['cpu']}, {report['machine']['cores']} cores, one thread per notebook")
    for stem, s in seconds.items():
        flag = "OVER BUDGET" if s > BUDGET else "near the budget" if s > args.near else ""
        print(f"{stem:32s} {s:6.1f} s  {flag}")
    print(f"{'all':32s} {report['total_seconds']:6.1f} s (wall {wall:.0f} s) -> {args.out}")
    return 1 if failed or any(s > BUDGET for s in seconds.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
