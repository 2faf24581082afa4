"""Build time and size of the course website (``course_lib.site``), one build on this machine.

    python benchmarks/site_build.py [--out benchmarks/results/site_build.json]

Times the whole build (staging the notebooks, Sphinx) into build/site with npm's MathJax already installed there
(the first build adds one ``npm install``), and writes seconds, the site's size and its page count. Run it on an
idle machine: it is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_lib import site  # noqa: E402
from results_file import write  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "site_build.json")
    args = parser.parse_args()
    folder = ROOT / "build" / "site"
    site.mathjax(folder)                                  # the one-time npm install is not the build
    start = time.perf_counter()
    html_dir = site.build(folder)
    seconds = time.perf_counter() - start
    files = [f for f in html_dir.rglob("*") if f.is_file()]
    result = {"machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "build_seconds": round(seconds, 1), "site_mib": round(sum(f.stat().st_size for f in files) / 2**20, 1),
              "html_pages": sum(f.suffix == ".html" for f in files), "files": len(files),
              "notebook_pages": len(site.notebooks())}
    write(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
