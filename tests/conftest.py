"""Shared fixtures, and the order in which xdist hands out the work."""

import pytest
from problems import PROBLEMS, make_problem

# Marks of tests whose fixtures take seconds to set up, longest first: the
# book's Sphinx build and browser (about 45 s; make test-book), a Dask
# cluster (about 5 s).
SLOW_START = ("browser", "cluster")


def run_order(item):
    """0, 1 for the slow starters, 2 for notebook cells, 3 for the unit tests."""
    for rank, mark in enumerate(SLOW_START):
        if item.get_closest_marker(mark):
            return rank
    if item.path.suffix == ".ipynb":
        return len(SLOW_START)
    return len(SLOW_START) + 1


def pytest_collection_modifyitems(items):
    """Longest work first, so that the xdist workers finish together.

    Under ``-n`` (``make test`` runs ``pytest -n 2``), the ``--dist loadscope
    --no-loadscope-reorder`` of pyproject.toml sends each test module or
    notebook whole to one worker (a test class would be a unit of its own;
    there are none), in the order in which its first item comes. So whole
    modules are sorted, each by its slowest-starting test, and keep their
    tests together and in order: the book test first (when it runs), then
    the Dask tests, then the notebooks (1 to 8 s each, a kernel apiece),
    and the unit-test modules, mostly well under a second each, last, where
    they fill the gaps. Within each group, the collection order stays.
    """
    module_rank = {}
    for item in items:
        rank = run_order(item)
        module_rank[item.path] = min(rank, module_rank.get(item.path, rank))
    position = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda item: (module_rank[item.path], position[id(item)]))


@pytest.fixture(params=PROBLEMS, ids=[f"seed{s}-N{n}-K{k}" for s, n, k in PROBLEMS])
def problem(request):
    """A small random problem: data, and a theta different from the one drawn from."""
    return make_problem(*request.param)
