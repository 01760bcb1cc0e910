"""The first plugin pytest loads (``-p startup`` in pyproject.toml): start-up
and shut-down costs of the test processes, none of which changes a result.

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
This must happen before nbval's plugin is imported, hence ``-p startup``
first in ``addopts``.

The objects alive once the tests are collected (modules, SymPy's and
Sphinx's tables, the test items) live until the process ends, so they are
moved out of the cyclic garbage collector's reach with ``gc.freeze()``: a
full collection no longer walks them again and again during the run, and
the interpreter's collections at exit, which took a second or more per
process, skip them. Reference counting still frees everything else as
usual; a cycle among frozen objects is never collected, which costs nothing
in a process about to run its tests and end.
"""

import gc
import sys

sys.modules.setdefault("rfc3987_syntax", None)


def pytest_collection_finish(session):
    gc.freeze()


def pytest_unconfigure(config):
    gc.freeze()
