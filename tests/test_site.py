"""The course website (``course_lib.site``) built from the committed notebooks and opened in headless Chromium.

One build into build/site-test (npm's MathJax is kept there between runs), served on 127.0.0.1. Every page is
visited: its title, every image loaded, every equation rendered by MathJax (no raw ``$$`` left, no TeX error), no
console error, and no request that leaves the site (each is recorded and aborted). The search page finds a word of
one chapter. Screenshots go to ``test-artifacts/site_*.png``.
"""

from __future__ import annotations

import functools
import http.server
import re
import socket
import threading
from pathlib import Path

import nbformat
import pytest

from chromium import ARTIFACTS, ROOT, needs_chromium
from chromium import browser as _browser
from course_lib import site

PAGES = [f"notebooks/{p.stem}.html" for p in site.notebooks().values()] + [
    "index.html", "results.html", "profiles/smoke.html", "profiles/cpu.html", "profiles/gpu.html"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("site"),      # one worker builds the site once for the whole file
    needs_chromium,
]
browser = pytest.fixture(scope="module")(_browser)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served():
    """The built site, served on a free local port -> (base_url, html_dir)."""
    html_dir = site.build(ROOT / "build" / "site-test")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=str(html_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", html_dir
    server.shutdown()


def open_page(browser, base: str, path: str):
    """Open ``path`` with every request outside ``base`` aborted -> (page, outside requests, console errors)."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    outside, errors = [], []

    def route(r):
        if r.request.url.startswith(base + "/") or r.request.url.startswith("data:"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/{path}", wait_until="load")
    return page, outside, errors


def test_the_build_has_every_page_and_no_outside_address_in_its_assets(served):
    base, html_dir = served
    for path in PAGES:
        assert (html_dir / path).exists(), path
    text = "\n".join(p.read_text(errors="ignore") for p in html_dir.rglob("*.html"))
    # links to GitHub and Colab are fine (a reader follows them); nothing may be *loaded* from outside
    loaded = re.findall(r'<(?:script|img|link)[^>]+(?:src|href)="(https?://[^"]+)"', text)
    assert not loaded, sorted(set(loaded))[:10]


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_offline(browser, served, path):
    base, html_dir = served
    page, outside, errors = open_page(browser, base, path)
    if path.startswith("notebooks/"):
        nb = nbformat.read(ROOT / "notebooks" / Path(path).with_suffix(".ipynb").name, as_version=4)
        assert site.title_of(nb).split(" · ")[-1][:30] in page.title()
        assert page.locator("a", has_text="learner edition in Colab").count() == 1
    n_math = page.locator(".math").count()
    if n_math:
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
        page.evaluate("MathJax.startup.promise")
        unrendered = page.evaluate("Array.from(document.querySelectorAll('.math'))"
                                   ".filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 80))")
        assert not unrendered, unrendered[:5]
        assert page.locator("mjx-merror, [data-mjx-error]").count() == 0, "a TeX error in an equation"
    prose = page.evaluate("Array.from(document.querySelectorAll('article p, article li, article td'))"
                          ".map(e => e.innerText).join('\\n')")
    assert "$$" not in prose
    broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                           ".map(i => i.src)")
    assert not broken, broken[:5]
    if path.startswith("notebooks/"):
        assert page.locator("article img").count() >= 1      # every chapter shows figures
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"site_{path.replace('/', '_').replace('.html', '')}.png"))
    page.close()
    assert not outside, outside[:5]
    assert not errors, errors[:5]


def test_search_finds_a_chapter(browser, served):
    base, _ = served
    page, outside, errors = open_page(browser, base, "search.html?q=Langevin")
    page.wait_for_selector("#search-results li a", timeout=30_000)
    hits = page.eval_on_selector_all("#search-results li a", "els => els.map(e => e.getAttribute('href'))")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "site_search.png"))
    page.close()
    assert any("12_score_matching" in h for h in hits), hits
    assert not outside and not errors, (outside, errors)
