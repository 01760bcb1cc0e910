"""The book's table of contents: the toctree of notebooks/index.md."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOC = ROOT / "notebooks" / "index.md"


def book_toc(path=TOC):
    """The notebook names (``NN-title``, no suffix) the toctree lists, in order.

    Option lines of the directive (``:maxdepth: 1``) and blank lines are not
    entries.
    """
    text = Path(path).read_text(encoding="utf-8")
    blocks = re.findall(r"^```\{toctree\}\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1, f"{path} should hold exactly one toctree"
    lines = (line.strip() for line in blocks[0].splitlines())
    return [line for line in lines if line and not line.startswith(":")]
