"""The HTML book reads offline: equations typeset, no math errors, figures load.

Builds the book into a temporary directory with ``tools/build_html.py`` (so
no earlier ``make html`` is needed), then opens ``index.html`` and one
notebook page from ``file://`` URLs in Debian's headless Chromium, driven by
Playwright. Without Chromium the tests are skipped, except when the
environment variable CI is set: there its absence is a failure.
"""

import importlib.util
import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 30_000

pytestmark = pytest.mark.browser

# Resolves once MathJax has finished its start-up typesetting and everything
# queued after it (nbconvert's pages queue one more "Typeset").
# (The hook must return nothing: MathJax waits on a callback a hook returns.)
WAIT_FOR_MATHJAX = """() => {
  window.__typeset_done = false;
  MathJax.Hub.Register.StartupHook("End", () => {
    MathJax.Hub.Queue(() => { window.__typeset_done = true; });
  });
}"""

# What the page shows, gathered in the page. Prose is the text of the
# rendered markdown (or of the whole index) without code, where a "$" left
# over would be TeX that MathJax did not typeset.
INSPECT = """(proseSelector) => {
  const prose = Array.from(document.querySelectorAll(proseSelector)).map((el) => {
    const copy = el.cloneNode(true);
    copy.querySelectorAll("code, pre, script, .MathJax, .MathJax_Display")
        .forEach((c) => c.remove());
    return copy.textContent;
  }).join("\\n");
  const html_css = MathJax.OutputJax["HTML-CSS"];
  return {
    sources: document.querySelectorAll('script[type^="math/tex"]').length,
    typeset: document.querySelectorAll("span.MathJax").length,
    errors: document.querySelectorAll(".merror, .MathJax_Error, .mjx-merror").length,
    // TeX errors inside the typeset trees, however the page chose to show them.
    texErrors: MathJax.Hub.getAllJax().filter((jax) => {
      const hasError = (node) => !!node && (node.type === "merror" ||
          (node.data || []).some(hasError));
      return hasError(jax.root);
    }).map((jax) => jax.originalText.slice(0, 60)),
    errorText: document.body.innerText.includes("Math Processing Error"),
    font: html_css ? html_css.fontInUse : null,
    rawMath: (prose.match(/[$][^\\n]{0,40}/g) || []).slice(0, 3),
    images: Array.from(document.images).map((i) => ({
      src: i.src.slice(0, 40), complete: i.complete, width: i.naturalWidth,
    })),
    links: Array.from(document.querySelectorAll("ol.toc a"))
      .map((a) => a.getAttribute("href")),
    summaries: Array.from(document.querySelectorAll("ol.toc .summary"))
      .map((s) => s.textContent.trim()),
  };
}"""


def running_in_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, or a skip (a failure under CI) when it is missing."""
    if not CHROMIUM.is_file():
        reason = (
            f"{CHROMIUM} not found: install Debian's chromium package "
            "(apt-get install chromium) to render the HTML book in a browser"
        )
        if running_in_ci():
            pytest.fail(f"{reason}. CI is set, so this is a failure (see .ci/run).")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """The book, built from the notebooks as they are now by tools/build_html.py."""
    spec = importlib.util.spec_from_file_location(
        "build_html", ROOT / "tools" / "build_html.py"
    )
    build_html = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_html)  # in-process: nbformat is already loaded
    out = tmp_path_factory.mktemp("html")
    build_html.build(out)
    return out


def render(browser, path, prose_selector):
    """Open ``path`` from disk, wait for MathJax, return what the page shows."""
    page = browser.new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        page.goto(path.as_uri(), timeout=TIMEOUT_MS)
        loaded = page.evaluate("() => !!(window.MathJax && window.MathJax.Hub)")
        assert loaded, f"{path.name}: MathJax did not load from mathjax/ beside it"
        page.evaluate(WAIT_FOR_MATHJAX)
        page.wait_for_function("() => window.__typeset_done", timeout=TIMEOUT_MS)
        shown = page.evaluate(INSPECT, prose_selector)
    finally:
        page.close()
    shown["remote"] = [
        url for url in requests if not url.startswith(("file:", "data:", "about:"))
    ]
    return shown


def assert_math_and_figures(name, shown):
    assert shown["remote"] == [], f"{name} fetched from the network"
    assert shown["errors"] == 0, f"{name}: MathJax shows an error"
    assert shown["texErrors"] == [], f"{name}: TeX errors in {shown['texErrors']}"
    assert not shown["errorText"], f"{name}: 'Math Processing Error'"
    # Every TeX source found by MathJax became typeset math, none left raw.
    assert shown["typeset"] == shown["sources"], name
    assert shown["rawMath"] == [], f"{name}: raw TeX left in the prose"
    if shown["sources"]:
        # The web font the local MathJax ships; anything else means the TeX
        # fonts were looked for, were missing, and system fonts stood in.
        assert shown["font"] == "STIX-Web", name
    for image in shown["images"]:
        assert image["complete"], f"{name}: image {image['src']} did not load"
        assert image["width"] > 0, f"{name}: image {image['src']} is broken"


def notebooks():
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def page_with_math_and_figures():
    """The first notebook, in reading order, with display math and a figure."""
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        has_math = any("$$" in c.source for c in nb.cells if c.cell_type == "markdown")
        has_figure = any(
            "image/png" in output.get("data", {})
            for c in nb.cells
            if c.cell_type == "code"
            for output in c.outputs
        )
        if has_math and has_figure:
            return path.stem + ".html"
    pytest.fail("no notebook has both display math and a figure to check")


def test_index_lists_every_notebook_in_reading_order(browser, book):
    shown = render(browser, book / "index.html", "body")
    assert shown["links"] == [p.stem + ".html" for p in notebooks()]
    assert all((book / link).is_file() for link in shown["links"])
    # One line per notebook saying what it proves, from its first markdown cell.
    pairs = zip(shown["links"], shown["summaries"], strict=True)
    missing = [link for link, summary in pairs if not summary]
    assert missing == [], f"no prose in the first markdown cell of {missing}"
    assert_math_and_figures("index.html", shown)


def test_notebook_page_typesets_math_and_shows_figures(browser, book):
    name = page_with_math_and_figures()
    shown = render(browser, book / name, ".jp-MarkdownCell .jp-RenderedMarkdown")
    assert shown["sources"] > 0, f"{name}: no equations found"
    assert len(shown["images"]) > 0, f"{name}: no figures found"
    assert_math_and_figures(name, shown)
