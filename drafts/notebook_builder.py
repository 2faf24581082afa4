"""The scaffolding the draft builders share: cells in order, the title with its Colab badge, the setup and
parameters cells, the measured-prose file, and writing the notebook."""
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

sys.path.insert(0, ".")
from course_lib.notebook_cells import repository_url, setup_cell  # noqa: E402


class NotebookBuilder:
    """``md(text)`` and ``code(source, tags)`` append cells; ``write()`` saves to notebooks/NAME (or argv[1])."""

    def __init__(self, name: str, text_keys: tuple[str, ...] = (), text_file: str | None = None):
        self.name, self.cells = name, []
        self.url = repository_url(Path("."))
        self.badge = (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                      f"(https://colab.research.google.com/github/{self.url.removeprefix('https://github.com/')}"
                      f"/blob/main/notebooks/{name})")
        self.text = {k: "" for k in text_keys}          # prose about measured numbers, written after a cpu run
        if text_file and Path(text_file).exists():
            exec(Path(text_file).read_text(), self.text)

    def md(self, source: str) -> None:
        self.cells.append(new_markdown_cell(source.strip("\n")))

    def code(self, source: str, tags: list[str] | None = None) -> None:
        self.cells.append(new_code_cell(source.strip("\n"), metadata={"tags": tags or []}))

    def setup_and_parameters(self) -> None:
        """Cell 1 (setup: Colab install, imports, seed, device) and cell 2 (papermill parameters)."""
        self.code(setup_cell(self.url))
        self.code('PROFILE = "auto"  # smoke | cpu | gpu | auto (gpu with CUDA, else cpu); papermill sets it', ["parameters"])

    def discussion(self, key: str) -> None:
        """The measured-prose paragraph ``key``, or a visible placeholder until it is written."""
        self.md(self.text.get(key) or f"{key.upper()}_DISCUSSION")

    def write(self) -> Path:
        nb = new_notebook(cells=self.cells, metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"}})
        out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("notebooks") / self.name
        nbformat.write(nb, out)
        print(f"wrote {out} ({len(self.cells)} cells)")
        return out
