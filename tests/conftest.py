"""Shared fixtures, and the order in which xdist hands out the work."""

import pytest
from problems import PROBLEMS, make_problem

# Tests whose fixtures take seconds to set up: the book's Sphinx build and
# the browser, a Dask cluster of worker processes.
SLOW_START = ("browser", "cluster")


def run_order(item):
    """0 for the slow starters, 1 for notebook cells, 2 for the unit tests."""
    if any(item.get_closest_marker(name) for name in SLOW_START):
        return 0
    if item.path.suffix == ".ipynb":
        return 1
    return 2


def pytest_collection_modifyitems(items):
    """Longest work first, so that the xdist workers finish together.

    Under ``-n`` (``make test`` runs ``pytest -n 2``), the ``--dist loadscope
    --no-loadscope-reorder`` of pyproject.toml sends each test module or
    notebook whole to one worker, in the order in which its first item
    comes. The book test (about 15 s) and the Dask tests (about 5 s; their
    cluster tests come first, and with them the module) go first, the
    notebooks next (3 to 8 s each, a kernel apiece), and the unit-test
    modules, mostly well under a second each, last, where they fill the
    gaps. The sort is stable: within each group, the collection order stays.
    """
    items.sort(key=run_order)


@pytest.fixture(params=PROBLEMS, ids=[f"seed{s}-N{n}-K{k}" for s, n, k in PROBLEMS])
def problem(request):
    """A small random problem: data, and a theta different from the one drawn from."""
    return make_problem(*request.param)
