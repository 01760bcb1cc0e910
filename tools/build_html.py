"""Render the notebooks, with their stored outputs, as an HTML book.

    python tools/build_html.py [OUT_DIR]      (default: build/html)

Every ``notebooks/NN-*.ipynb`` becomes ``OUT_DIR/NN-*.html``; the file-name
order is the reading order. ``OUT_DIR/index.html`` is the table of contents:
one line per notebook, taken from the notebook itself (the H1 title and the
first sentence of the first paragraph of its first markdown cell), so the
contents cannot drift from the notebooks.

The book reads offline, opened from disk: MathJax 2 is copied from the
``jupyter_server_mathjax`` package into ``OUT_DIR/mathjax`` and every page
loads it from there (nbconvert's default is a CDN, and offline the math then
stays raw TeX). Figures are already inside the notebooks as base64 PNGs, which
nbconvert writes into the pages as data URIs. Notebooks are not executed here.
"""

import argparse
import html
import importlib.util
import re
import shutil
import sys
from pathlib import Path

import nbformat
from jinja2 import DictLoader
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import markdown2html_mistune

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
# Found without importing the package, which would import jupyter_server (slow).
MATHJAX_SRC = (
    Path(importlib.util.find_spec("jupyter_server_mathjax").origin).parent / "static"
)
# jupyter_server_mathjax ships this configuration (not nbconvert's default
# TeX-AMS_CHTML-full, which is absent there: the math would stay raw).
MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
# Read by MathJax.js when it loads. The package ships only the STIX-Web web
# fonts; without them named here MathJax asks for its TeX fonts, which are
# missing, and draws the math with whatever system font is at hand. And a TeX
# error shows as an error (the config's noErrors/noUndefined extensions would
# print the faulty TeX source, or an undefined macro in red, as if typeset).
MATHJAX_CONFIG = """<script>
window.MathJax = {
  "HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web",
               imageFont: null},
  TeX: {noErrors: {disabled: true}, noUndefined: {disabled: true}}
};
</script>"""
# nbconvert's lab template, minus what would reach for a CDN: require.js (for
# widgets, which these notebooks do not use) and mermaid.js (for diagrams).
PAGE_TEMPLATE = (
    "{%- extends 'index.html.j2' -%}\n"
    "{% block html_head_js_requirejs %}{% endblock %}\n"
    "{% block html_head_js_mermaidjs %}{% endblock %}\n"
    "{% block html_head_js_mathjax %}"
    + MATHJAX_CONFIG
    + "{{ super() }}{% endblock %}\n"
)
# A sentence ends at . ! or ? after a word, followed by white space and a
# capital letter (so "ch. 9" does not end one).
SENTENCE_END = re.compile(r"(?<=[a-z0-9)$`*_][.!?])\s+(?=[A-Z])")


def notebooks_in_reading_order(folder=NOTEBOOKS):
    """The ``NN-title.ipynb`` files of ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).glob("[0-9][0-9]-*.ipynb") if p.is_file())


def title_and_summary(nb, fallback):
    """(title, summary) of a notebook, both markdown, from its first markdown cell.

    The title is the cell's first ``# `` heading (``fallback`` if none); the
    summary is the first sentence of its first prose paragraph (not a
    heading, list, table, display equation, code block or HTML), else empty.
    """
    cell = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    blocks, current = [], []
    for line in cell.source.splitlines() if cell else []:
        line = line.strip()
        if line.startswith("#"):  # a heading is a block of its own
            blocks += [current, [line]] if current else [[line]]
            current = []
        elif line:
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    not_prose = ("#", "|", "$$", "```", "<", "- ", "* ", "+ ", "> ")
    title = next((b[0][2:].strip() for b in blocks if b[0].startswith("# ")), None)
    prose = next((" ".join(b) for b in blocks if not b[0].startswith(not_prose)), "")
    summary = SENTENCE_END.split(prose, maxsplit=1)[0]
    return title or fallback, summary


def inline_markdown(text):
    """Markdown of one line to HTML without the enclosing <p>; math kept as TeX."""
    rendered = markdown2html_mistune(text).strip()
    return re.sub(r"^<p>(.*)</p>$", r"\1", rendered, flags=re.DOTALL)


def navigation(pages, i):
    """The contents / previous / next bar for page ``i``."""
    links = ['<a href="index.html">Contents</a>']
    if i > 0:
        prev = pages[i - 1]["html"]
        links.append(f'<a href="{prev}" rel="prev">&larr; {prev[:-5]}</a>')
    if i + 1 < len(pages):
        nxt = pages[i + 1]["html"]
        links.append(f'<a href="{nxt}" rel="next">{nxt[:-5]} &rarr;</a>')
    return (
        '<nav class="book-nav" style="font-family: sans-serif; padding: 0.5em 1em;">'
        + " &middot; ".join(links)
        + "</nav>"
    )


INDEX_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
{mathjax_config}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({{
  tex2jax: {{
    inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]],
    displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
    processEscapes: true
  }},
  messageStyle: "none"
}});
</script>
<script src="{mathjax_url}"></script>
<style>
body {{ font-family: sans-serif; max-width: 50em; margin: 2em auto;
       padding: 0 1em; line-height: 1.5; }}
ol {{ padding-left: 1.5em; }}
li {{ margin-bottom: 0.8em; }}
.summary {{ display: block; color: #333; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>The notebooks in reading order, each with what it proves. Every page shows
the outputs stored in the notebook; the test suite re-executes each notebook
and checks that it prints exactly these outputs.</p>
<ol class="toc">
{items}
</ol>
</body>
</html>
"""


def book_title(readme=ROOT / "README.md"):
    """The README's first ``# `` heading, the project's name."""
    lines = readme.read_text(encoding="utf-8").splitlines() if readme.is_file() else []
    return next((ln[2:].strip() for ln in lines if ln.startswith("# ")), "EM")


def build(out_dir, notebooks_dir=NOTEBOOKS, title=None):
    """Render every notebook of ``notebooks_dir`` and the index into ``out_dir``.

    ``title`` heads the index; by default the README's title.

    Returns
    -------
    list of dict
        One per page, in reading order: ``html`` (file name), ``stem`` (the
        notebook's), ``title`` and ``summary`` (markdown).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.html"):  # pages of renamed or removed notebooks
        stale.unlink()
    shutil.copytree(MATHJAX_SRC, out_dir / "mathjax", dirs_exist_ok=True)

    exporter = HTMLExporter(
        template_name="lab",
        template_file="book.html.j2",
        extra_loaders=[DictLoader({"book.html.j2": PAGE_TEMPLATE})],
        mathjax_url=MATHJAX_URL,
    )
    sources = notebooks_in_reading_order(Path(notebooks_dir))
    pages = []
    for path in sources:
        nb = nbformat.read(path, as_version=4)
        page_title, summary = title_and_summary(nb, path.stem)
        pages.append(
            {
                "nb": nb,
                "html": path.stem + ".html",
                "title": page_title,
                "summary": summary,
                "stem": path.stem,
            }
        )
    for i, page in enumerate(pages):
        body, _ = exporter.from_notebook_node(
            page.pop("nb"), resources={"metadata": {"name": page["stem"]}}
        )
        body = body.replace("<main>", "<main>\n" + navigation(pages, i), 1)
        (out_dir / page["html"]).write_text(body, encoding="utf-8")

    items = "\n".join(
        f'<li><a href="{p["html"]}">{inline_markdown(p["title"])}</a>'
        f'<span class="summary">{inline_markdown(p["summary"])}</span></li>'
        for p in pages
    )
    (out_dir / "index.html").write_text(
        INDEX_TEMPLATE.format(
            title=html.escape(title or book_title()),
            mathjax_config=MATHJAX_CONFIG,
            mathjax_url=MATHJAX_URL,
            items=items,
        ),
        encoding="utf-8",
    )
    return pages


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=ROOT / "build" / "html")
    args = parser.parse_args(argv)
    pages = build(args.out_dir)
    if not pages:
        sys.exit(f"no notebooks/NN-*.ipynb found in {NOTEBOOKS}")
    print(f"{len(pages)} notebooks -> {Path(args.out_dir) / 'index.html'}")


if __name__ == "__main__":
    main()
