"""Command line: ``python -m course_lib run ...``, ``... checkpoints``, ``... sync``, ``... learner`` and ``... site``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute notebooks with papermill and write results.json / results.md")
    run.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: all in notebooks/)")
    run.add_argument("--profile", default="auto", help="smoke, cpu, gpu or auto (default)")
    run.add_argument("--out", type=Path, default=Path("runs/latest"), help="folder for executed copies and results")
    run.add_argument("--inplace", action="store_true", help="overwrite the notebooks with their executed copies")
    run.add_argument("--readme", type=Path, default=None, help="also write the results table into this README")
    run.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")

    ship = sub.add_parser("checkpoints", help="train and ship checkpoints into data/checkpoints")
    ship.add_argument("names", nargs="*", help="checkpoint names (default: all)")

    sync = sub.add_parser("sync", help="write the shared setup cell and the committed profile note into notebooks")
    sync.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: all in notebooks/)")

    learner = sub.add_parser("learner", help="regenerate the learner edition (learner/) from notebooks/")
    learner.add_argument("notebooks", nargs="*", type=Path, help="notebooks (default: all in notebooks/)")

    site = sub.add_parser("site", help="build the static course website from the committed notebooks")
    site.add_argument("--out", type=Path, default=None, help="build folder (default: build/site); the site is OUT/html")

    args = parser.parse_args(argv)
    if args.command == "site":
        from course_lib.site import ROOT, build

        build((args.out or ROOT / "build" / "site").resolve())
        return 0
    if args.command == "learner":
        from course_lib.editions import write_learner_editions

        write_learner_editions(args.notebooks or None)
        return 0
    if args.command == "sync":
        from course_lib.notebook_cells import sync as sync_notebooks

        return sync_notebooks(args.notebooks)
    if args.command == "run":
        from course_lib.runner import run_notebooks

        return run_notebooks(args.notebooks, profile=args.profile, out=args.out, inplace=args.inplace,
                             readme=args.readme, timeout=args.timeout)
    from course_lib.shipping import ship_checkpoints

    return ship_checkpoints(args.names)


if __name__ == "__main__":
    sys.exit(main())
