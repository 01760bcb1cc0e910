"""The book reads offline: maths typeset, figures, search, links, no network.

Builds the book once per session into a temporary directory, with the same
Sphinx command as ``make html`` (so no earlier ``make html`` is needed, and a
warning, such as a broken cross-reference, fails the build), then reads its
pages' HTML and opens a few of them from ``file://`` URLs in Debian's
headless Chromium, driven by Playwright. Every request of those that is not
for a file on disk is aborted and recorded, and the tests fail if there was
any. Without Chromium the browser
tests are skipped, except when the environment variable CI is set: there its
absence is a failure.

MathJax 2's HTML-CSS output, what a reader sees, costs about 10 ms a formula:
a minute for the book's ~3,200 formulas; opening every page in the browser,
even untypeset, was most of this module's time. What the pages are made of
is written by Sphinx and the theme, so most checks read the built HTML
(parsed with html.parser) and the browser opens a few pages only:

* Static, every page (the chapters, then the API reference's pages in
  ``api/``, whose links are resolved from there): the sidebar and
  previous/next (rendered by the theme into the HTML) follow the reading
  order; every figure of the article is a
  file on disk that decodes as an image of nonzero size; no TeX ("$",
  "\\(", "\\[") is left in the prose of the article outside code, pre,
  script and Sphinx's maths elements; each page with maths loads
  ``_static/mathjax/MathJax.js``, which is there; each page with code cells
  loads the copy-button script and stylesheet; and no ``src`` or ``href`` of
  any page of the build points at ``http://`` or ``https://``. The maths
  elements of each page are collected as the HTML has them.
* The TeX check: in one page with MathJax loaded, every collected element of
  every page goes through MathJax's tex2jax (which finds the formula in the
  element, as on the page: exactly one per element) and its TeX input jax
  (which parses it into MathML, the step before typesetting, where every TeX
  error arises): well under a millisecond a formula. The book's
  configuration disables noUndefined and noErrors, so an undefined macro is
  an error; a test proves the check reports one, an unbalanced brace, and
  an element with no formula or two.
* In the browser, a sample: the overview typeset in full with the STIX-Web
  font, as a reader sees it: every formula typeset, no error, MathJax's own
  files (output jax, fonts) read from disk; the TeX check and the
  undefined-macro test run there. The search page finds the Lagrangian, and
  viterbi in the API reference; a cross-reference of notebook 40 lands on
  its equation in notebook 30.
  Every request of these pages that is not for a file on disk is aborted
  and fails the tests, and the copy buttons, which a script adds, are
  counted on the overview and on notebook 40. What the other pages are not
  checked for is what their scripts do (copy buttons, the HTML-CSS layout
  of their formulas past the TeX, the font files of any Unicode block only
  they use, read from the same local copy of MathJax).

The cross-reference test relies on the equation labels ``gmm-m-step-mu``,
``gmm-m-step-var`` and ``gmm-m-step-alpha`` of notebook 30, and on notebook
40 citing ``gmm-m-step-mu`` with {eq}.
"""

import html
import os
import posixpath
import re
import warnings
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pytest
from toc import api_toc, book_toc, reading_order

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
# Typeset in full; the TeX check runs in the first. The overview is light
# (48 formulas, inline and display). Each page more costs about 10 ms a
# formula: the M-step page's 270, 3 s on 2 busy cores, for the layout of
# formulas whose TeX the TeX check has parsed.
TYPESET_SAMPLE = ("00-overview.html",)
# Requests that are not for a file; "**/*" would send every request through
# Python, this only the ones that leave the disk.
NOT_A_FILE = re.compile(r"^(?!(?:file|data|about):)")
MATHJAX_SCRIPT = re.compile(r"^file:.*/_static/mathjax/MathJax\.js")

# `make test-book` runs this module; `make test` leaves it out (-m "not book").
pytestmark = [pytest.mark.book, pytest.mark.browser]

# Before MathJax loads: sets window.__typeset_done once MathJax has finished
# its start-up typesetting and everything queued after it. (The hook must
# return nothing: MathJax waits on a callback a hook returns.) AuthorInit
# runs once MathJax.Hub exists, before the page's configuration is read,
# which it leaves as it is.
WAIT_FOR_MATHJAX = """window.MathJax = {AuthorInit: () => {
  window.__typeset_done = false;
  MathJax.Hub.Register.StartupHook("End", () => {
    MathJax.Hub.Queue(() => { window.__typeset_done = true; });
  });
}};"""

# A "$", "\\(" or "\\[" left in the prose: TeX that MathJax would not typeset.
RAW_TEX = re.compile(r"(?:[$]|\\[(\[])[^\n]{0,40}")
# Elements whose text is not prose.
NOT_PROSE = ("code", "pre", "script")
# Attributes that name a URL.
URL_ATTRIBUTES = ("src", "href", "srcset", "xlink:href", "action", "poster")

# The copy buttons the copy-button script has added, and the code cells.
COUNT_COPY_BUTTONS = """() => {
  const article = document.querySelector("article.bd-article");
  return {
    codeCells: article.querySelectorAll("div.cell_input pre").length,
    copyButtons: article.querySelectorAll("div.cell_input button.copybtn").length,
  };
}"""


class PageParser(HTMLParser):
    """What a page of the built book holds, read from its HTML.

    ``math``: Sphinx's maths elements (class ``math notranslate``), in the
    article and in the headings listed beside it, as HTML, as a browser's
    ``outerHTML`` gives them; ``prose``: the text of ``article.bd-article``
    without code, pre, script and maths elements, as ``textContent`` gives
    it; ``images``: the ``src`` of the article's images; ``code_cells``:
    the ``pre`` in its ``div.cell_input``; ``scripts`` and ``stylesheets``:
    what the page loads; ``sidebar``: the ``href`` of the ``a.reference``
    in ``nav.bd-docs-nav``; ``prev``, ``next``: those of ``a.left-prev``
    and ``a.right-next``; ``urls``: every URL-valued attribute.
    """

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.math, self.prose, self.images = [], [], []
        self.code_cells = 0
        self.scripts, self.stylesheets, self.sidebar, self.urls = [], [], [], []
        self.prev = self.next = None
        # Open regions: name -> [tag, depth of tags of that name inside].
        self.open = {}
        self.element = None  # the maths element being written out

    def enter(self, region, tag):
        self.open[region] = [tag, 0]

    def inside(self, region):
        return region in self.open

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in URL_ATTRIBUTES:
            if attrs.get(key):
                self.urls.append(attrs[key])
        for region in self.open.values():
            if region[0] == tag:
                region[1] += 1
        classes = (attrs.get("class") or "").split()
        if self.element is not None:
            self.element.append(self.get_starttag_text())
        elif {"math", "notranslate"} <= set(classes):
            self.element = [f'<{tag} class="{html.escape(attrs["class"])}">']
            self.enter("math", tag)
        if tag == "article" and "bd-article" in classes:
            self.enter("article", tag)
        if tag == "nav" and "bd-docs-nav" in classes:
            self.enter("nav", tag)
        if tag == "div" and "cell_input" in classes:
            self.enter("cell_input", tag)
        if tag in NOT_PROSE and not self.inside("not prose"):
            self.enter("not prose", tag)
        if tag == "pre" and self.inside("cell_input") and self.inside("article"):
            self.code_cells += 1
        if tag == "img" and self.inside("article"):
            self.images.append(attrs.get("src"))
        if tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        if tag == "link" and "stylesheet" in (attrs.get("rel") or "").split():
            self.stylesheets.append(attrs.get("href"))
        if tag == "a" and "reference" in classes and self.inside("nav"):
            self.sidebar.append(attrs.get("href"))
        if tag == "a" and "left-prev" in classes:
            self.prev = attrs.get("href")
        if tag == "a" and "right-next" in classes:
            self.next = attrs.get("href")

    def handle_endtag(self, tag):
        if self.element is not None:
            self.element.append(f"</{tag}>")
        for name, region in list(self.open.items()):
            if region[0] != tag:
                continue
            if region[1] == 0:
                del self.open[name]
                if name == "math":
                    self.math.append("".join(self.element))
                    self.element = None
            else:
                region[1] -= 1

    def handle_data(self, data):
        if self.element is not None:
            self.element.append(html.escape(data, quote=False))
        prose = not (self.inside("not prose") or self.inside("math"))
        if self.inside("article") and prose:
            self.prose.append(data)


def read_page(path):
    """What the page at ``path`` holds: see PageParser."""
    parser = PageParser()
    parser.feed(path.read_text("utf-8"))
    parser.close()
    parser.prose = "".join(parser.prose)
    return parser


def local_file(page, url):
    """The file that ``url``, relative to ``page``, names (query, fragment off)."""
    parts = urlsplit(url)
    assert parts.scheme == parts.netloc == "", f"{page.name}: {url} is not local"
    return (page.parent / url2pathname(parts.path)).resolve()


# What a typeset page shows of its maths.
INSPECT_TYPESET = """() => {
  const html_css = MathJax.OutputJax["HTML-CSS"];
  return {
    formulas: document.querySelectorAll(".math.notranslate").length,
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
  };
}"""

# The TeX check: for each page, its maths elements (as HTML) put into a box,
# tex2jax run over the box as over a page, then each formula it found parsed
# by the TeX input jax as the Hub does before typesetting (script.MathJax is
# the state the Hub keeps on each formula), nothing typeset. A macro from an
# extension not loaded yet makes the parser throw a "restart": the extension
# loads, the formula is parsed again. Returns, for each page, the number of
# elements, those that did not hold exactly one formula, and the TeX errors.
CHECK_TEX = """async (pages) => {
  const TeX = MathJax.InputJax.TeX;
  const PENDING = MathJax.ElementJax.STATE.PENDING;
  const formulasIn = (element) => element.querySelectorAll('script[type^="math/tex"]');
  const merror = (node) => !node ? null : node.type === "merror" ? node :
      (node.data || []).map(merror).find(Boolean) || null;
  const text = (node) => typeof node === "string" ? node :
      (node?.data || []).map(text).join("");
  const results = {};
  for (const [name, elements] of Object.entries(pages)) {
    const box = document.createElement("div");
    box.innerHTML = elements.join("\\n");
    document.body.appendChild(box);
    const texts = Array.from(box.children, (e) => e.textContent.slice(0, 60));
    MathJax.Extension.tex2jax.PreProcess(box);
    const notOne = texts.filter((_, i) => formulasIn(box.children[i]).length !== 1);
    const errors = [];
    for (const script of formulasIn(box)) {
      const tex = script.text.slice(0, 60);
      for (;;) {
        script.MathJax = {state: PENDING};
        try {
          const jax = TeX.Translate(script);
          const error = merror(jax.root);
          if (error || jax.texError) errors.push([tex, error ? text(error) : "?"]);
          break;
        } catch (err) {
          if (!err.restart) { errors.push([tex, String(err)]); break; }
          await new Promise((resolve) => MathJax.Callback.After(resolve, err.restart));
        }
      }
    }
    box.remove();
    results[name] = {elements: elements.length, notOne, errors};
  }
  return results;
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


def sidebar_pages():
    """Every page the sidebar lists, in order: the chapters, then the API
    reference (``api/<module>.html``)."""
    return [name + ".html" for name in reading_order()]


def from_root(name, href):
    """``href``, a link written in page ``name``, as a path from the book's root.

    The API pages sit in ``api/``, so their links to chapters start ``../``.
    """
    if href is None or href == "#":
        return href
    path = urlsplit(href).path
    return posixpath.normpath(posixpath.join(posixpath.dirname(name), path))


@pytest.fixture(scope="session")
def book(tmp_path_factory):
    """The book, built from the notebooks as they are now, as by ``make html``."""
    from sphinx.cmd.build import build_main
    from sphinx.deprecation import RemovedInSphinx11Warning

    out = tmp_path_factory.mktemp("book") / "html"
    # No -j: with 14 documents, Sphinx's parallel read and write cost more
    # (processes, pickling) than they save, on 2 cores.
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


def file_only_context(browser, no_mathjax=None):
    """A browser context that may read files only: any other request is aborted.

    Returns the context and the list, filled as the pages ask, of the URLs
    it aborted. Given a list ``no_mathjax``, the requests for MathJax's
    script are aborted too, so that nothing is typeset, and recorded there.
    """
    context = browser.new_context()
    remote = []

    def abort_into(urls):
        def abort(route):
            urls.append(route.request.url)
            route.abort()

        return abort

    context.route(NOT_A_FILE, abort_into(remote))
    if no_mathjax is not None:
        context.route(MATHJAX_SCRIPT, abort_into(no_mathjax))
    return context, remote


@pytest.fixture(scope="module")
def sample(book, browser):
    """The sample pages, each opened in its own tab, typesetting."""
    context, remote = file_only_context(browser)
    context.add_init_script(WAIT_FOR_MATHJAX)
    files = []
    context.on("request", lambda request: files.append(request.url))
    tabs = {name: context.new_page() for name in TYPESET_SAMPLE}
    for name, tab in tabs.items():
        # Returns once the page is on its way; it loads and typesets meanwhile.
        tab.goto((book / name).as_uri(), wait_until="commit", timeout=TIMEOUT_MS)
    yield SimpleNamespace(tabs=tabs, files=files, remote=remote)
    context.close()


@pytest.fixture(scope="module")
def pages(book):
    """Every page of the book, in reading order, the index first, as read
    from its HTML (see PageParser): the chapters, then the API reference."""
    return {name: read_page(book / name) for name in ["index.html", *sidebar_pages()]}


@pytest.fixture(scope="module")
def typeset(sample, pages):
    """The sample pages, typeset in full, their tabs kept open.

    ``shown`` maps each page to what its typeset maths shows, ``tabs`` to
    its tab; ``files`` lists the URLs the pages asked for, ``remote`` the
    requests that were not for files. (It asks for ``pages``, unused, so
    that the HTML is read while the sample typesets.)
    """
    shown = {}
    for name, tab in sample.tabs.items():
        tab.wait_for_function("() => window.__typeset_done", timeout=TIMEOUT_MS)
        shown[name] = tab.evaluate(INSPECT_TYPESET)
    return SimpleNamespace(shown=shown, **vars(sample))


@pytest.fixture
def page(browser):
    """A fresh tab that may read files only; the test fails if it asked more.

    MathJax is not loaded: the tests that use it need no typeset maths.
    """
    context, remote = file_only_context(browser, no_mathjax=[])
    yield context.new_page()
    context.close()
    assert remote == [], "the book asked the network for these"


def check_tex(tab, pages):
    """Run the TeX check in ``tab`` on ``pages``: name -> maths elements."""
    return tab.evaluate(CHECK_TEX, pages)


def test_no_page_asks_the_network(book, typeset):
    assert typeset.remote == []
    # MathJax's own loads went through the same check: from disk.
    fonts = [url for url in typeset.files if "/mathjax/fonts/HTML-CSS/" in url]
    assert fonts, "the typeset pages loaded no MathJax font"
    assert all(url.startswith("file:") for url in fonts), fonts
    # The pages the browser does not open: no URL of theirs leaves the disk.
    remote = [
        f"{path.name}: {url}"
        for path in sorted(book.rglob("*.html"))
        for url in read_page(path).urls
        if re.match(r"\s*https?:", url, re.IGNORECASE)
    ]
    assert remote == [], "these pages point at the network"


def test_pages_with_maths_ask_for_the_local_mathjax(book, pages):
    for name, seen in pages.items():
        if not seen.math:
            continue
        scripts = [url for url in seen.scripts if "MathJax.js" in url]
        assert scripts, f"{name} has maths but does not load MathJax"
        for url in scripts:
            path = local_file(book / name, url)
            assert path.is_relative_to(book / "_static" / "mathjax"), url
            assert path.name == "MathJax.js", url
            assert path.is_file(), f"{name}: {url} is not there"
    assert pages[M_STEP_PAGE].math, "the M-step page shows no maths"


def test_every_formula_of_every_page_is_valid_tex(pages, typeset):
    tab = typeset.tabs[TYPESET_SAMPLE[0]]
    elements = {name: seen.math for name, seen in pages.items()}
    checked = check_tex(tab, elements)
    assert checked.keys() == elements.keys()
    for name, result in checked.items():
        assert result["elements"] == len(elements[name]), name
        assert result["notOne"] == [], f"{name}: not one formula in each element"
        assert result["errors"] == [], f"{name}: TeX errors"
    assert sum(result["elements"] for result in checked.values()) > 1000


def test_the_tex_check_reports_tex_errors(typeset):
    # The check of the test above, on elements that are wrong.
    tab = typeset.tabs[TYPESET_SAMPLE[0]]
    bad = {
        "undefined": ['<span class="math">\\(\\notamacro{x}\\)</span>'],
        "brace": ['<span class="math">\\(\\frac{a}{b\\)</span>'],
        "unclosed": ['<div class="math">\\[x^2</div>'],
        "two": ['<span class="math">\\(a\\) and \\(b\\)</span>'],
        "good": ['<div class="math">\\[\\boldsymbol{x}\\in\\mathbb{R}^D\\]</div>'],
    }
    checked = check_tex(tab, bad)
    assert "Undefined control sequence" in checked["undefined"]["errors"][0][1]
    assert "Missing close brace" in checked["brace"]["errors"][0][1]
    assert checked["unclosed"]["notOne"] == ["\\[x^2"]
    assert checked["two"]["notOne"] == ["\\(a\\) and \\(b\\)"]
    assert checked["good"] == {"elements": 1, "notOne": [], "errors": []}


def test_the_sample_pages_typeset_their_maths(typeset):
    for name, seen in typeset.shown.items():
        assert seen["formulas"] > 0, f"{name} shows no maths"
        assert seen["errors"] == 0, f"{name}: MathJax shows an error"
        assert seen["texErrors"] == [], f"{name}: TeX errors in {seen['texErrors']}"
        assert not seen["errorText"], f"{name}: 'Math Processing Error'"
        # Every formula was found by MathJax and typeset, none left raw.
        assert seen["typeset"] == seen["sources"] == seen["formulas"], name
        # The web font the local MathJax ships; anything else means the
        # TeX fonts were looked for, were missing, and system fonts stood in.
        assert seen["font"] == "STIX-Web", name


def test_every_page_shows_its_figures_and_no_raw_tex(book, pages):
    from PIL import Image

    for name, seen in pages.items():
        raw = RAW_TEX.findall(seen.prose)[:3]
        assert raw == [], f"{name}: raw TeX left in the prose"
        for src in seen.images:
            assert src, f"{name}: an image has no src"
            path = local_file(book / name, src)
            assert path.is_file(), f"{name}: image {src} is not there"
            assert path.stat().st_size > 0, f"{name}: image {src} is empty"
            try:
                with Image.open(path) as image:
                    width, height = image.size
                    image.load()  # decodes it all: a truncated file raises
            except OSError as error:
                pytest.fail(f"{name}: image {src} does not decode: {error}")
            assert min(width, height) > 0, f"{name}: image {src} is broken"
    assert sum(len(seen.images) for seen in pages.values()) > 0, "no figures"


def test_sidebar_and_previous_next_follow_the_reading_order(pages):
    order = list(pages)
    for i, name in enumerate(order):
        seen = pages[name]
        # The current page's own entry links to "#".
        sidebar = [from_root(name, href) for href in seen.sidebar]
        assert sidebar == [*order[:i], "#", *order[i + 1 :]], name
        assert from_root(name, seen.prev) == (order[i - 1] if i > 0 else None), name
        following = order[i + 1] if i + 1 < len(order) else None
        assert from_root(name, seen.next) == following, name


def test_code_cells_load_the_copy_button(book, pages):
    # The buttons themselves are added by the script: counted in the browser
    # on the overview and on the citing page, below.
    for name in toc_pages():
        seen = pages[name]
        assert seen.code_cells > 0, name
        for kind, urls in (("script", seen.scripts), ("css", seen.stylesheets)):
            found = [url for url in urls if "/copybutton." in "/" + url]
            assert found, f"{name} does not load the copy-button {kind}"
            assert all(local_file(book / name, url).is_file() for url in found)


def assert_copy_buttons(tab, name):
    tab.wait_for_load_state("load", timeout=TIMEOUT_MS)
    seen = tab.evaluate(COUNT_COPY_BUTTONS)
    assert seen["codeCells"] > 0, name
    assert seen["copyButtons"] == seen["codeCells"], name


def test_the_sample_pages_have_copy_buttons(pages, typeset):
    for name, tab in typeset.tabs.items():
        assert_copy_buttons(tab, name)
        assert tab.evaluate(COUNT_COPY_BUTTONS)["codeCells"] == pages[name].code_cells


def test_undefined_tex_shows_as_an_error(typeset):
    # The configuration turns MathJax's noUndefined and noErrors off; with
    # them on, \notamacro would show as red text or as its TeX source.
    result = typeset.tabs[TYPESET_SAMPLE[0]].evaluate(TYPESET_UNDEFINED)
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


def test_search_finds_the_api_reference(book, page):
    # The API pages are in the search index, their text and their objects:
    # "viterbi" is in emlib.hmm's prose and is the name of a function there.
    page.goto((book / "search.html").as_uri() + "?q=viterbi", timeout=TIMEOUT_MS)
    results = page.locator("#search-results ul.search li a")
    results.first.wait_for(timeout=TIMEOUT_MS)
    hrefs = results.evaluate_all("(links) => links.map((a) => a.getAttribute('href'))")
    found = {urlsplit(href).path for href in hrefs}
    assert "api/emlib.hmm.html" in found, found
    assert any(urlsplit(href).fragment == "emlib.hmm.viterbi" for href in hrefs), hrefs


def test_api_pages_document_their_modules(book):
    # One page per module (tests/test_config.py checks the list), each with
    # the module's members as autodoc writes them and numpydoc's sections as
    # field lists (not as text); the overview links to emlib.em's entry.
    for entry in api_toc():
        page = (book / f"{entry}.html").read_text("utf-8")
        module = re.escape(entry.removeprefix("api/"))
        assert re.search(rf'\bid="module-{module}"', page), entry
        assert re.search(rf'<dt class="sig sig-object py" id="{module}\.\w+"', page)
        for field in ("Parameters", "Returns"):
            assert f'>{field}<span class="colon">:</span></dt>' in page, entry
        assert "----------" not in page, f"{entry}: a numpydoc section left as text"
    overview = (book / "00-overview.html").read_text("utf-8")
    assert 'href="api/emlib.html#emlib.em"' in overview


def test_equation_cross_reference_lands_on_the_equation(book, page):
    m_step = (book / M_STEP_PAGE).read_text("utf-8")
    ids = set(re.findall(r'\bid="equation-([^"]+)"', m_step))
    missing = [label for label in M_STEP_LABELS if label not in ids]
    assert missing == [], f"{M_STEP_PAGE} does not define these equation labels"
    page.goto((book / CITING_PAGE).as_uri(), timeout=TIMEOUT_MS)
    assert_copy_buttons(page, CITING_PAGE)
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
        path.relative_to(book).as_posix(): set(
            re.findall(r'\bid="([^"]+)"', path.read_text("utf-8"))
        )
        for path in book.rglob("*.html")
    }
    broken = []
    for name in ["index.html", *sidebar_pages()]:
        html = (book / name).read_text("utf-8")
        for href in re.findall(r'<a\s[^>]*\bhref="([^"]+)"', html):
            parts = urlsplit(href)
            target = from_root(name, href) if parts.path else name
            if parts.scheme or href == "#":
                continue
            missing_id = parts.fragment and parts.fragment not in ids.get(target, ())
            if missing_id or not (book / target).is_file():
                broken.append(f"{name}: {href}")
    assert broken == []
