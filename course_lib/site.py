"""The course website: ``python -m course_lib site [--out build/site]`` (or ``make site``).

A static site built by Sphinx with myst-nb and sphinx-book-theme from the committed, executed notebooks: nothing is
executed, every figure and number is the one in the notebook. Chosen over Jupyter Book 2 (``mystmd``), which fetches
its page template from the web at build time; Sphinx builds fully offline, and its own search (a JavaScript index
shipped with the pages) needs no server.

Offline by construction: MathJax 3 (npm's ``mathjax`` package, its single-file SVG build, no web fonts) is copied
into the site; the notebooks' Colab badge images are replaced by a local copy; the only widgets the executed
notebooks hold are tqdm's progress bars (widget cells draw a static figure when executed headless), and each becomes
the text of its last state, so no widget JavaScript is loaded from a CDN.

Layout (``out``): ``src/`` the staged sources (conf.py, index.md, results and profile pages, notebook copies),
``html/`` the site (open ``html/index.html``), ``node_modules/`` npm's MathJax, kept between builds.
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
MATHJAX = "mathjax@3.2.2"
MATHJAX_FILE = "tex-svg-full.js"           # TeX input, SVG output, every TeX extension: one file, no fonts
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

# The notes' headings (../shared/NOTES.md), in their order, and the notebooks that build each.
CONTENTS: list[tuple[str, list[tuple[str, list[str]]]]] = [
    ("Start", [("How to run the course", ["00"])]),
    ("CNN", [("Trend in image networks", ["01"]), ("Inside a network", ["02"]),
             ("Object detection: R-CNN, YOLO", ["03", "04"]), ("Object segmentation: Mask R-CNN", ["05"])]),
    ("Autoencoders", [("Overview, denoising and robust autoencoders", ["06"]), ("Variational autoencoder", ["07"]),
                      ("VQ-VAE", ["08"])]),
    ("GANs", [("Theory", ["09"]), ("Progressive GANs, StyleGAN", ["10"]), ("Image translation", ["11"])]),
    ("Diffusion", [("Score matching perspective", ["12"]), ("Thermodynamics perspective, the model, the math", ["13"]),
                   ("Conditional diffusion and guidance", ["14"]), ("Stable diffusion / latent diffusion", ["15"])]),
    ("Image transformer", [("Image GPT", ["16"]), ("Vision Transformer", ["17"]), ("BEiT", ["18"]),
                           ("DALL·E", ["19"]), ("DALL·E 2", ["20"])]),
]

PROFILE_PAGES = {
    "smoke": ("The smoke profile", """
Every code cell runs, on tiny data and a few training steps, so that a change that breaks a notebook is caught in
seconds. Its numbers mean nothing; its purpose is the test suite: `make test` executes every notebook in this
profile (with both editions, and nbval on the committed outputs). Budget: at most 30 s per notebook on 2 CPU cores.
Shipped checkpoints are still loaded where they exist, so some smoke-profile checks are meaningful (the tests say
which).

Run one notebook in it: `COURSE_PROFILE=smoke jupyter lab`, or
`python -m course_lib run --profile smoke notebooks/13_ddpm.ipynb`.
"""),
    "cpu": ("The cpu profile", """
Real results on a laptop: each notebook at most 5 minutes on 2 CPU cores, using the shipped checkpoints in
`data/checkpoints` (trained once, on 2 CPU cores, with their training time and measured metrics in
`data/checkpoints/manifest.json`) wherever training here could not reach a result worth showing. The committed
notebooks, the README's table and this site's [results page](../results.md) come from cpu-profile runs.

Run: `make course` (auto picks cpu without a GPU), or `python -m course_lib run --profile cpu`.
"""),
    "gpu": ("The gpu profile", """
Larger samples and longer training for a Colab GPU or better: mixed precision (bf16 where supported, fp16 with a
gradient scaler on a T4), channels-last convolutions, the dataset kept on the GPU, no host synchronisation inside
training loops. `auto` picks it whenever CUDA is available.

**Measured so far: nothing.** No GPU has been available to the course's maintainers yet, so no notebook's gpu
profile has been timed or its metrics recorded; until then the cpu numbers are the course's numbers.
"""),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m course_lib site", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site")
    return parser.parse_args(argv)


def repository() -> str:
    """The course's repository address, from pyproject.toml (its one written place)."""
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'^Repository = "([^"]+)"', text, re.M)[1]


def notebooks() -> dict[str, Path]:
    """'00' -> notebooks/00_start_here.ipynb, for every numbered notebook."""
    return {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))}


def mathjax(out: Path) -> Path:
    """npm's MathJax (installed once into ``out/node_modules``) -> the path of its single-file SVG build."""
    target = out / "node_modules" / "mathjax" / "es5" / MATHJAX_FILE
    if not target.exists():
        if shutil.which("npm") is None:
            raise RuntimeError(f"the site needs npm to install {MATHJAX} (equations render offline from a local copy):"
                               " install Node.js and npm (Debian: apt-get install npm), then run again")
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(out), MATHJAX],
                       check=True)
    return target


def static_widget_text(view: dict, state: dict) -> str:
    """A widget output's static text: a progress bar (tqdm's HBox of HTML, FloatProgress, HTML) as the words of its
    last state, any other widget as a pointer to the notebook."""
    model = state.get(view.get("model_id"), {})
    children = [state.get(c.replace("IPY_MODEL_", ""), {}) for c in model.get("state", {}).get("children", [])]
    if children and all(c.get("model_name") in ("HTMLModel", "FloatProgressModel", "IntProgressModel") for c in children):
        parts = [html.unescape(re.sub(r"<[^>]+>", "", str(c["state"].get("value", ""))))
                 if c["model_name"] == "HTMLModel" else "" for c in children]
        return " ".join(p.strip() for p in parts if p.strip())
    return "(an interactive widget: open the notebook in JupyterLab or Colab to use it)"


def stage_notebook(path: Path, links: str) -> nbformat.NotebookNode:
    """A copy of the notebook for the site: the links cell after the title, the Colab badge local, widget outputs as
    static text, the widget state dropped (no widget JavaScript)."""
    nb = copy.deepcopy(nbformat.read(path, as_version=4))
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace(COLAB_BADGE, "colab-badge.svg")
        for out in cell.get("outputs", []):
            if WIDGET_VIEW in out.get("data", {}):
                out["data"] = {"text/plain": static_widget_text(out["data"][WIDGET_VIEW], state)}
    nb.metadata.pop("widgets", None)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(links))
    return nb


def links_cell(path: Path, repo: str) -> str:
    name = path.name
    colab = f"https://colab.research.google.com/github/{repo.removeprefix('https://github.com/')}/blob/main"
    return (f"**Run it:** [complete edition in Colab]({colab}/notebooks/{name}) · "
            f"[learner edition in Colab]({colab}/learner/{name}) (exercises left for you) · "
            f"[source on GitHub]({repo}/blob/main/notebooks/{name}) · "
            f"[learner edition on GitHub]({repo}/blob/main/learner/{name}). "
            f"Everything below is the notebook as committed, executed in the cpu profile.")


def title_of(nb: nbformat.NotebookNode) -> str:
    first = nb.cells[0].source.splitlines()[0]
    return first.lstrip("#").strip()


def index_page(titles: dict[str, str]) -> str:
    readme = (ROOT / "README.md").read_text()
    intro = readme.split("\n\n")[1].strip()                # the README's opening paragraph
    lines = ["# Computer vision and generative models, by building them", "", intro, "",
             "Every page is a notebook of the course with its committed outputs (the cpu profile): the figures, the",
             "measured numbers and the exercises' solutions. To run one, follow its Colab links, or clone the",
             "repository and run `make course`.", "", "## Contents, following the notes", ""]
    for part, sections in CONTENTS:
        lines.append(f"**{part}**")
        lines.append("")
        for heading, numbers in sections:
            pages = ", ".join(f"[{titles[n]}](notebooks/{notebooks()[n].stem}.ipynb)" for n in numbers)
            lines.append(f"- {heading}: {pages}")
        lines.append("")
    lines += ["**Results and profiles**: [every recorded number](results.md) · [smoke](profiles/smoke.md) · "
              "[cpu](profiles/cpu.md) · [gpu](profiles/gpu.md)", ""]
    for part, sections in CONTENTS:
        lines += ["```{toctree}", ":hidden:", f":caption: {part}", ""]
        lines += [f"notebooks/{notebooks()[n].stem}" for _, numbers in sections for n in numbers]
        lines += ["```", ""]
    lines += ["```{toctree}", ":hidden:", ":caption: Results and profiles", "", "results", "profiles/smoke",
              "profiles/cpu", "profiles/gpu", "```", ""]
    return "\n".join(lines)


def results_page() -> str:
    """Every recorded number, one section per notebook (the README's table, from the same ``committed_results``)."""
    from course_lib.runner import committed_results, fmt

    results = committed_results()
    lines = ["# Results", "", "Every number the notebooks record with `record(...)`, read from the committed notebooks "
             f"(profile: {results['profile']}); the README's results table holds the same numbers. Seconds are each "
             "notebook's own run on 2 CPU cores; each name links to the notebook that measures it.", ""]
    for stem, r in results["notebooks"].items():
        lines += [f"## [{stem}](notebooks/{stem}.ipynb)", "", f"{r['seconds']:.0f} s.", ""]
        if "error" in r:
            lines += ["**The last run failed:** " + " ".join(r["error"].split()), ""]
            continue
        lines += ["| recorded | value |", "|---|---:|"] + [f"| `{k}` | {fmt(v)} |" for k, v in r["metrics"].items()]
        lines.append("")
    return "\n".join(lines)


def profile_page(name: str) -> str:
    title, text = PROFILE_PAGES[name]
    lines = [f"# {title}", text.strip(), ""]
    if name == "smoke":
        bench = ROOT / "benchmarks" / "results" / "smoke_seconds.json"
        if bench.exists():
            data = json.loads(bench.read_text())
            lines += [f"Measured by `benchmarks/smoke_seconds.py` on {data['date']} ({data['machine']['cores']} cores, "
                      f"{data['threads_per_notebook']} thread per notebook):", "", "| notebook | seconds |", "|---|---:|"]
            lines += [f"| {k} | {v:.1f} |" for k, v in data["seconds"].items()] + [""]
    if name == "cpu":
        from course_lib.runner import committed_results

        res = committed_results()["notebooks"]
        lines += ["Each notebook's last cpu-profile run, as committed:", "", "| notebook | seconds |", "|---|---:|"]
        lines += [f"| {k} | {r['seconds']:.0f} |" for k, r in res.items()]
        lines += [f"| all | {sum(r['seconds'] for r in res.values()):.0f} |", ""]
    return "\n".join(lines)


CONF = """
project = "Computer vision and generative models"
author = "the course's authors"
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_title = "CV and generative models"
html_static_path = ["_static"]
mathjax_path = "mathjax/{mathjax}"
myst_enable_extensions = ["dollarmath", "amsmath"]
nb_execution_mode = "off"
nb_ipywidgets_js = {{}}
nb_output_stderr = "remove"
exclude_patterns = ["_build"]
html_copy_source = False           # each page links its notebook on GitHub instead
html_show_sourcelink = False
html_context = {{"default_mode": "light"}}   # the theme logs a console error when no mode is set
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]
html_theme_options = {{"repository_url": "{repo}", "use_repository_button": True, "use_download_button": False,
                      "home_page_in_toc": True, "show_toc_level": 2}}
"""

BADGE_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="117" height="20" role="img" aria-label="Open in Colab">
<rect width="117" height="20" rx="3" fill="#555"/><rect x="20" width="97" height="20" rx="3" fill="#f9ab00"/>
<circle cx="10" cy="10" r="6" fill="none" stroke="#f9ab00" stroke-width="3"/>
<text x="68" y="14" font-family="Verdana,sans-serif" font-size="11" fill="#fff" text-anchor="middle">Open in Colab</text>
</svg>
"""


def stage(out: Path) -> Path:
    """Write the Sphinx sources into ``out/src`` (a fresh copy each time) -> that folder."""
    src = out / "src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "notebooks").mkdir(parents=True)
    (src / "profiles").mkdir()
    (src / "_static" / "mathjax").mkdir(parents=True)
    shutil.copy(mathjax(out), src / "_static" / "mathjax" / MATHJAX_FILE)
    repo = repository()
    (src / "conf.py").write_text(CONF.format(mathjax=MATHJAX_FILE, repo=repo))
    (src / "notebooks" / "colab-badge.svg").write_text(BADGE_SVG)
    titles = {}
    for number, path in notebooks().items():
        nb = stage_notebook(path, links_cell(path, repo))
        titles[number] = title_of(nb)
        nbformat.write(nb, src / "notebooks" / path.name)
    (src / "index.md").write_text(index_page(titles))
    (src / "results.md").write_text(results_page())
    for name in PROFILE_PAGES:
        (src / "profiles" / f"{name}.md").write_text(profile_page(name))
    return src


def build(out: Path) -> Path:
    """Stage and build the site -> ``out/html``; a Sphinx warning (a broken reference, a bad cell) fails the build."""
    start = time.perf_counter()
    src = stage(out)
    html_dir = out / "html"
    shutil.rmtree(html_dir, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", str(src), str(html_dir)],
                   check=True)
    size = sum(f.stat().st_size for f in html_dir.rglob("*") if f.is_file())
    print(f"site: {html_dir / 'index.html'} ({size / 2**20:.1f} MiB, {time.perf_counter() - start:.0f} s)")
    return html_dir


def main(argv: list[str] | None = None) -> int:
    build(parse_args(argv).out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
