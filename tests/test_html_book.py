"""The book reads offline: maths typeset, figures, search, links, no network.

Builds the book once per session into a temporary directory, with the same
Sphinx command as ``make html`` (so no earlier ``make html`` is needed, and a
warning, such as a broken cross-reference, fails the build), then opens its
pages from ``file://`` URLs in Debian's headless Chromium, driven by
Playwright. Every request that is not for a file on disk is aborted and
recorded, and the tests fail if there was any. Without Chromium the browser
tests are skipped, except when the environment variable CI is set: there its
absence is a failure.

The cross-reference test relies on the equation labels ``gmm-m-step-mu``,
``gmm-m-step-var`` and ``gmm-m-step-alpha`` of notebook 30, and on notebook
40 citing ``gmm-m-step-mu`` with {eq}.
"""

import os
import re
import warnings
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from toc import book_toc

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
M_STEP_PAGE = "30-gmm-m-step.html"
M_STEP_LABELS = ("gmm-m-step-mu", "gmm-m-step-var", "gmm-m-step-alpha")
CITING_PAGE = "40-em-in-action.html"  # cites gmm-m-step-mu

pytestmark = pytest.mark.browser

# Resolves once MathJax has finished its start-up typesetting and everything
# queued after it. (The hook must return nothing: MathJax waits on a callback
# a hook returns.)
WAIT_FOR_MATHJAX = """() => {
  window.__typeset_done = false;
  MathJax.Hub.Register.StartupHook("End", () => {
    MathJax.Hub.Queue(() => { window.__typeset_done = true; });
  });
}"""

# What the page shows, gathered in the page. Prose is the text of the article
# without code, where a "$", "\\(" or "\\[" left over would be TeX that
# MathJax did not typeset.
INSPECT = """() => {
  const article = document.querySelector("article.bd-article");
  const copy = article.cloneNode(true);
  copy.querySelectorAll("code, pre, script, .MathJax, .MathJax_Display")
      .forEach((c) => c.remove());
  const prose = copy.textContent;
  const hub = window.MathJax && MathJax.Hub;
  const html_css = hub && MathJax.OutputJax["HTML-CSS"];
  return {
    // Sphinx's math elements, in the article and in the headings listed
    // beside it, before MathJax adds its own.
    formulas: document.querySelectorAll(".math.notranslate").length,
    sources: document.querySelectorAll('script[type^="math/tex"]').length,
    typeset: document.querySelectorAll("span.MathJax").length,
    errors: document.querySelectorAll(".merror, .MathJax_Error, .mjx-merror").length,
    // TeX errors inside the typeset trees, however the page chose to show them.
    texErrors: !hub ? [] : MathJax.Hub.getAllJax().filter((jax) => {
      const hasError = (node) => !!node && (node.type === "merror" ||
          (node.data || []).some(hasError));
      return hasError(jax.root);
    }).map((jax) => jax.originalText.slice(0, 60)),
    errorText: document.body.innerText.includes("Math Processing Error"),
    font: html_css ? html_css.fontInUse : null,
    rawMath: (prose.match(/([$]|\\\\[(\\[])[^\\n]{0,40}/g) || []).slice(0, 3),
    images: Array.from(article.querySelectorAll("img")).map((i) => ({
      src: i.getAttribute("src"), complete: i.complete, width: i.naturalWidth,
    })),
    codeCells: article.querySelectorAll("div.cell_input pre").length,
    copyButtons: article.querySelectorAll("div.cell_input button.copybtn").length,
    sidebar: Array.from(document.querySelectorAll("nav.bd-docs-nav a.reference"))
      .map((a) => a.getAttribute("href")),
    prev: document.querySelector("a.left-prev")?.getAttribute("href") ?? null,
    next: document.querySelector("a.right-next")?.getAttribute("href") ?? null,
  };
}"""

# A formula with an undefined control sequence, typeset in the page as the
# book's own maths is.
TYPESET_UNDEFINED = """() => new Promise((resolve) => {
  const span = document.createElement("span");
  span.className = "math";
  span.textContent = "\\\\(\\\\notamacro{x}\\\\)";
  document.querySelector("article.bd-article").appendChild(span);
  MathJax.Hub.Queue(["Typeset", MathJax.Hub, span], () => resolve({
    merror: span.querySelectorAll(".merror").length,
    text: span.textContent,
  }));
})"""


def running_in_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def toc_pages():
    """The notebooks' pages, in the order of the book's table of contents."""
    return [name + ".html" for name in book_toc()]


@pytest.fixture(scope="session")
def book(tmp_path_factory):
    """The book, built from the notebooks as they are now, as by ``make html``."""
    from sphinx.cmd.build import build_main
    from sphinx.deprecation import RemovedInSphinx11Warning

    out = tmp_path_factory.mktemp("book") / "html"
    args = ["-W", "--keep-going", "-q", "-b", "html", "-c", str(ROOT / "book")]
    with warnings.catch_warnings():
        # sphinx-book-theme 1.4.0 uses an API that Sphinx 11 removes; a
        # notice for the theme's authors, not a fault of the book.
        warnings.filterwarnings("ignore", category=RemovedInSphinx11Warning)
        status = build_main([*args, str(ROOT / "notebooks"), str(out)])
    assert status == 0, "sphinx-build failed (warnings are errors): see stderr"
    return out


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


def file_only_context(browser):
    """A browser context that may read files only: any other request is aborted.

    Returns the context and the list, filled as the pages ask, of the URLs
    it aborted.
    """
    context = browser.new_context()
    remote = []

    def only_files(route):
        url = route.request.url
        if url.startswith(("file:", "data:", "about:")):
            route.continue_()
        else:
            remote.append(url)
            route.abort()

    context.route("**/*", only_files)
    return context, remote


@pytest.fixture(scope="module")
def tour(book, browser):
    """Every page of the book opened in turn, in reading order, the index first.

    ``shown`` maps each page to what it shows; ``tab`` stays on the last page,
    its maths typeset; ``remote`` lists the requests that were not for files.
    """
    context, remote = file_only_context(browser)
    tab = context.new_page()
    names = ["index.html", *toc_pages()]
    shown = {name: open_typeset(tab, (book / name).as_uri()) for name in names}
    yield SimpleNamespace(shown=shown, tab=tab, remote=remote)
    context.close()


@pytest.fixture
def page(browser):
    """A fresh tab that may read files only; the test fails if it asked more."""
    context, remote = file_only_context(browser)
    yield context.new_page()
    context.close()
    assert remote == [], "the book asked the network for these"


def open_typeset(page, url):
    """Open ``url``, wait for MathJax to finish, return what the page shows."""
    page.goto(url, timeout=TIMEOUT_MS)
    # Sphinx loads MathJax only on pages with maths.
    if page.locator(".math.notranslate").count():
        loaded = page.evaluate("() => !!(window.MathJax && window.MathJax.Hub)")
        assert loaded, f"{url}: MathJax did not load from _static/mathjax"
        page.evaluate(WAIT_FOR_MATHJAX)
        page.wait_for_function("() => window.__typeset_done", timeout=TIMEOUT_MS)
    return page.evaluate(INSPECT)


def test_no_page_asks_the_network(tour):
    assert tour.remote == []


def test_every_page_typesets_its_maths_and_shows_its_figures(tour):
    shown = tour.shown
    for name, seen in shown.items():
        assert seen["errors"] == 0, f"{name}: MathJax shows an error"
        assert seen["texErrors"] == [], f"{name}: TeX errors in {seen['texErrors']}"
        assert not seen["errorText"], f"{name}: 'Math Processing Error'"
        # Every formula was found by MathJax and typeset, none left raw.
        assert seen["typeset"] == seen["sources"] == seen["formulas"], name
        assert seen["rawMath"] == [], f"{name}: raw TeX left in the prose"
        if seen["sources"]:
            # The web font the local MathJax ships; anything else means the
            # TeX fonts were looked for, were missing, and system fonts stood in.
            assert seen["font"] == "STIX-Web", name
        for image in seen["images"]:
            assert image["complete"], f"{name}: image {image['src']} did not load"
            assert image["width"] > 0, f"{name}: image {image['src']} is broken"
    assert shown[M_STEP_PAGE]["sources"] > 0, "the M-step page shows no maths"
    assert sum(len(seen["images"]) for seen in shown.values()) > 0, "no figures"


def test_sidebar_and_previous_next_follow_the_reading_order(tour):
    order = list(tour.shown)
    for i, name in enumerate(order):
        seen = tour.shown[name]
        # The current page's own entry links to "#".
        assert seen["sidebar"] == [*order[:i], "#", *order[i + 1 :]], name
        assert seen["prev"] == (order[i - 1] if i > 0 else None), name
        assert seen["next"] == (order[i + 1] if i + 1 < len(order) else None), name


def test_code_cells_have_copy_buttons(tour):
    for name in toc_pages():
        seen = tour.shown[name]
        assert seen["codeCells"] > 0, name
        assert seen["copyButtons"] == seen["codeCells"], name


def test_undefined_tex_shows_as_an_error(tour):
    # The configuration turns MathJax's noUndefined and noErrors off; with
    # them on, \notamacro would show as red text or as its TeX source.
    assert tour.tab.evaluate("() => !!window.MathJax"), "last page has no maths"
    result = tour.tab.evaluate(TYPESET_UNDEFINED)
    assert result["merror"] == 1, result
    assert "Undefined control sequence" in result["text"], result


def test_search_finds_the_lagrangian_in_the_m_step(book, page):
    page.goto((book / "search.html").as_uri() + "?q=Lagrangian", timeout=TIMEOUT_MS)
    results = page.locator("#search-results ul.search li a")
    results.first.wait_for(timeout=TIMEOUT_MS)
    found = [
        urlsplit(href).path
        for href in results.evaluate_all(
            "(links) => links.map((a) => a.getAttribute('href'))"
        )
    ]
    assert M_STEP_PAGE in found


def test_equation_cross_reference_lands_on_the_equation(book, page):
    m_step = (book / M_STEP_PAGE).read_text("utf-8")
    ids = set(re.findall(r'\bid="equation-([^"]+)"', m_step))
    missing = [label for label in M_STEP_LABELS if label not in ids]
    assert missing == [], f"{M_STEP_PAGE} does not define these equation labels"
    page.goto((book / CITING_PAGE).as_uri(), timeout=TIMEOUT_MS)
    link = page.locator(f'a[href="{M_STEP_PAGE}#equation-gmm-m-step-mu"]')
    assert link.count() >= 1, f"{CITING_PAGE} does not cite gmm-m-step-mu"
    link.first.click()
    page.wait_for_url(f"**/{M_STEP_PAGE}#equation-gmm-m-step-mu", timeout=TIMEOUT_MS)
    # The fragment names an element of the page: the equation's display block.
    landed = page.evaluate(
        "() => document.getElementById(location.hash.slice(1))?.className ?? null"
    )
    assert landed is not None, "no element has the fragment's id"
    assert "math" in landed.split(), landed


def test_every_link_in_the_book_resolves(book):
    # Sphinx checks the references it makes; this checks the pages as
    # written, the raw HTML anchors of the numerical notes included.
    ids = {
        path.name: set(re.findall(r'\bid="([^"]+)"', path.read_text("utf-8")))
        for path in book.glob("*.html")
    }
    broken = []
    for name in ["index.html", *toc_pages()]:
        html = (book / name).read_text("utf-8")
        for href in re.findall(r'<a\s[^>]*\bhref="([^"]+)"', html):
            parts = urlsplit(href)
            target = parts.path or name
            if parts.scheme or href == "#":
                continue
            missing_id = parts.fragment and parts.fragment not in ids.get(target, ())
            if missing_id or not (book / target).is_file():
                broken.append(f"{name}: {href}")
    assert broken == []
