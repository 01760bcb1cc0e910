"""Start-up and shut-down costs of the test processes, none of which a test sees.

pytest loads this plugin first (``-p pytest_speedups`` in pyproject.toml).

``rfc3987_syntax`` is kept out. JupyterLab brings it into the venv (through
jupyter-events, which asks for jsonschema's ``format-nongpl`` checkers), and
when it is installed jsonschema imports it to register checkers for the
``iri`` formats; importing it compiles 38 Lark grammars, about 1.3 s of CPU.
nbval imports nbformat, which imports jsonschema, so every pytest process
(the xdist controller and each worker) paid that before running a test.
Nothing here checks an IRI: nbformat validates notebooks without a format
checker, and so does the settings-schema test in test_config.py. A ``None``
in ``sys.modules`` makes the import raise ImportError, which jsonschema
catches: it then registers no ``iri`` checker, and nothing else changes.
This must happen before nbval's plugin is imported, hence first in
``addopts``.

The objects alive once the tests are collected (modules, SymPy's and
Sphinx's tables, the test items) live until the process ends, so they are
moved out of the cyclic garbage collector's reach with ``gc.freeze()``: a
full collection no longer walks them again and again during the run, and
the interpreter's collections at exit, which took a second or more per
process, skip them. Each freeze comes right after a full collection, so an
object left unclosed in a reference cycle is still found and reported (as
an unraisable-exception warning, an error under ``filterwarnings``), never
frozen away unseen.
"""

import gc
import sys

import pytest

sys.modules.setdefault("rfc3987_syntax", None)


def pytest_collection_finish(session):
    """Collect what collection left behind, then freeze what it built."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Freeze everything before the interpreter's collections at exit.

    ``trylast``: pytest's unraisableexception plugin does a last
    ``gc.collect()`` in its own unconfigure, to report what the last tests
    left in cycles; this runs after it. The xdist controller collects no
    tests, so this is its only freeze.
    """
    gc.freeze()
