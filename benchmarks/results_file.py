"""One helper of the benchmark scripts: write a result as JSON under benchmarks/results/ and print it."""

from __future__ import annotations

import json
from pathlib import Path


def write(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
