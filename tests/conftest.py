"""Shared fixtures."""

import pytest
from problems import PROBLEMS, make_problem


@pytest.fixture(params=PROBLEMS, ids=[f"seed{s}-N{n}-K{k}" for s, n, k in PROBLEMS])
def problem(request):
    """A small random problem: data, and a theta different from the one drawn from."""
    return make_problem(*request.param)
