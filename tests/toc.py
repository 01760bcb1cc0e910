"""The book's table of contents: the two toctrees of notebooks/index.md.

The first, without a caption, lists the chapters (the notebooks, ``NN-title``);
the second, captioned "API reference", lists one page per public module of
emlib (``api/emlib``, ``api/emlib.hmm``, ...), each ``notebooks/api/<module>.md``.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOC = ROOT / "notebooks" / "index.md"
API_CAPTION = "API reference"
TOCTREE = re.compile(r"^```\{toctree\}\n(.*?)^```", re.DOTALL | re.MULTILINE)


def toctrees(path=TOC):
    """Each toctree of ``path`` as (caption, entries): "" when it has none.

    Option lines of the directive (``:maxdepth: 1``) and blank lines are not
    entries.
    """
    trees = []
    for block in TOCTREE.findall(Path(path).read_text(encoding="utf-8")):
        lines = [line.strip() for line in block.splitlines()]
        caption = next(
            (
                line.split(":", 2)[2].strip()
                for line in lines
                if line.startswith(":caption:")
            ),
            "",
        )
        trees.append(
            (caption, [line for line in lines if line and not line.startswith(":")])
        )
    return trees


def _two_toctrees(path):
    trees = toctrees(path)
    captions = [caption for caption, _ in trees]
    assert captions == ["", API_CAPTION], (
        f"{path} should hold two toctrees, the chapters (no caption), then "
        f"{API_CAPTION!r}; found captions {captions}"
    )
    return trees


def book_toc(path=TOC):
    """The chapters: notebook names (``NN-title``, no suffix), in order."""
    return _two_toctrees(path)[0][1]


def api_toc(path=TOC):
    """The API reference's pages (``api/<module>``), in order."""
    return _two_toctrees(path)[1][1]


def reading_order(path=TOC):
    """Every page the sidebar lists, in its order: the chapters, then the API."""
    return book_toc(path) + api_toc(path)
