"""Sphinx configuration of the book: the notebooks, with their stored outputs.

``make html`` runs ``sphinx-build -W -c book notebooks build/html``: the
sources are ``notebooks/`` (``index.md`` there is the table of contents, the
one file to edit when a notebook is added), this folder holds only the
configuration. MyST-NB renders the outputs stored in the notebooks and never
executes them (nbval already proves the outputs). The API reference,
``notebooks/api/<module>.md``, one page per public module of emlib, is
written by autodoc from the docstrings of the emlib in this checkout
(numpydoc reads their sections). The book reads offline from disk: MathJax 2
is copied into the build from the ``jupyter-server-mathjax`` package, and
nothing is loaded from a CDN.
"""

import importlib.util
import re
import shutil
import sys
from pathlib import Path

from docutils import nodes
from sphinx.transforms import SphinxTransform

ROOT = Path(__file__).resolve().parent.parent


def readme_title():
    """The README's first ``# `` heading, the project's name."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    return next(line[2:].strip() for line in lines if line.startswith("# "))


project = readme_title()

extensions = ["myst_nb", "sphinx_copybutton", "sphinx.ext.autodoc", "numpydoc"]
root_doc = "index"
include_patterns = ["index.md", "[0-9][0-9]-*.ipynb", "api/emlib*.md"]
exclude_patterns = ["**/.ipynb_checkpoints"]

# -- MyST-NB: render the stored outputs, never execute ----------------------
nb_execution_mode = "off"
# No require.js or widget manager from a CDN (these notebooks have no widgets).
nb_ipywidgets_js = {}
# $...$ and $$...$$ as in Jupyter; $$ ... $$ (label) numbers an equation that
# {eq}`label` cites from any notebook; \begin{align} etc. as display math.
myst_enable_extensions = ["dollarmath", "amsmath"]
# $$...$$ inside a line of prose is display maths, as Jupyter renders it.
myst_dmath_double_inline = True
# MyST would write a MathJax 3/4 configuration, which MathJax 2 does not read;
# the delimiters are set for MathJax 2 below instead.
myst_update_mathjax = False

# -- The API reference: autodoc + numpydoc ------------------------------------
# The emlib beside this folder, whatever else is installed.
sys.path.insert(0, str(ROOT))
# Each page is one ``{automodule}``: its documented members, in the order of
# the source (for the emlib package: of its __all__).
autodoc_default_options = {"members": True, "member-order": "bysource"}
# Signatures show names and defaults; the types, with shapes, are in each
# docstring's Parameters and Returns (an annotation such as ArrayLike would
# unfold into a union of a dozen types).
autodoc_typehints = "none"
# Methods and properties are documented by autodoc under their class; numpydoc
# would list them a second time as a table.
numpydoc_show_class_members = False
# Attributes sections render as a list of names, like Parameters, and do not
# create second targets beside the members autodoc documents.
numpydoc_attributes_as_param_list = True
# numpydoc's own checks of each docstring against its signature stay off
# (its default): a docstring numpydoc cannot parse (an unknown section, a
# malformed parameter list) still warns, and so fails the build (-W).


def skip_namedtuple_fields(app, what, name, obj, skip, options):
    """Leave out a NamedTuple's fields: its Attributes section describes them.

    autodoc would document each as "Alias for field number i".
    """
    doc = getattr(obj, "__doc__", None) or ""
    return True if doc.startswith("Alias for field number") else None


# -- MathJax 2, from the jupyter-server-mathjax package ----------------------
# Found without importing the package, which would import jupyter_server (slow).
MATHJAX_SRC = (
    Path(importlib.util.find_spec("jupyter_server_mathjax").origin).parent / "static"
)
# Relative to _static. The package ships this one configuration (Sphinx's
# default, MathJax 4 from a CDN, would leave the math raw offline).
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
mathjax2_config = {
    # Only the delimiters Sphinx writes around math nodes: a "$" in prose
    # or in a printed output is never taken for TeX.
    "tex2jax": {
        "inlineMath": [["\\(", "\\)"]],
        "displayMath": [["\\[", "\\]"]],
        "processEscapes": False,
    },
    # The package ships only the STIX-Web web fonts; without them named here
    # MathJax asks for its TeX fonts, which are missing, and draws the math
    # with whatever system font is at hand.
    "HTML-CSS": {
        "availableFonts": [],
        "preferredFont": None,
        "webFont": "STIX-Web",
        "imageFont": None,
    },
    # A TeX error shows as an error, not as the TeX source or a red macro
    # name that passes for typeset math.
    "TeX": {"noErrors": {"disabled": True}, "noUndefined": {"disabled": True}},
    "messageStyle": "none",
    # The fast preview typesets every formula twice (a rough draft, then the
    # real one): a page of 400 formulas took five times longer to settle.
    "fast-preview": {"disabled": True},
}

# -- HTML ----------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = project
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": True,
    "use_fullscreen_button": False,
    # Search sits in the sidebar; not a second time in a header bar.
    "navbar_persistent": [],
    # No author line (the project names none) and no copyright line.
    "footer_content_items": [],
}
# The download button offers each notebook as the .ipynb it was built from.
html_sourcelink_suffix = ""
html_show_sourcelink = False


# -- Raw HTML anchors ----------------------------------------------------------
# A notebook's "Numerical notes" start with `<a id="note-x"></a>` (an anchor
# that Jupyter renders too), and the checks link to it with [why](#note-x).
# MyST does not see ids inside raw HTML, so it would report those links as
# missing; this points them at the anchor, which the page keeps as written.
# A link to an id that no anchor of the same page carries still fails.
RAW_ANCHOR = re.compile(r'<a\s+(?:id|name)="([^"]+)"\s*>')


class ResolveRawHtmlAnchors(SphinxTransform):
    """Resolve ``[text](#id)`` links to ``<a id="id">`` anchors of the same page."""

    default_priority = 878  # just before MyST's ResolveAnchorIds (879)

    def apply(self, **kwargs):
        anchors = {
            match
            for raw in self.document.findall(nodes.raw)
            if "html" in raw.get("format", "").split()
            for match in RAW_ANCHOR.findall(raw.astext())
        }
        for ref in self.document.findall(nodes.reference):
            target = ref.get("refuri", "")[1:]
            if ref.get("id_link") and target in anchors:
                del ref["id_link"], ref["refuri"]
                ref["refid"] = target


def copy_mathjax(app, exception):
    """Put MathJax 2 beside the pages, where ``mathjax_path`` points."""
    if exception is None and app.builder.format == "html":
        target = Path(app.outdir) / "_static" / "mathjax"
        shutil.copytree(MATHJAX_SRC, target, dirs_exist_ok=True)


def setup(app):
    app.add_transform(ResolveRawHtmlAnchors)
    app.connect("autodoc-skip-member", skip_namedtuple_fields)
    app.connect("build-finished", copy_mathjax)
