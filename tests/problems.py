"""Random mixture data for the tests: samplers, and small problems with fixed seeds.

numpy and emlib only: conftest.py imports this module, and every pytest
process loads conftest.py, the xdist controller (which runs no test) included.
"""

from typing import NamedTuple

import numpy as np

import emlib


def random_row_stochastic(rng, n, k, zero_fraction=0.3):
    """An (N, K) matrix of random distributions, about ``zero_fraction`` zeros.

    Every row keeps at least one positive entry. Rows are normalised by their
    sum, so they sum to 1 up to rounding.
    """
    q = rng.gamma(0.7, size=(n, k))
    q[rng.random((n, k)) < zero_fraction] = 0.0
    empty = q.sum(axis=1) == 0
    q[empty, rng.integers(k, size=empty.sum())] = 1.0
    return q / q.sum(axis=1, keepdims=True)


def random_theta(rng, k, *, spread=3.0):
    """Random (weights, means, variances): weights >= 0.1/K, variances in [0.5, 2]."""
    weights = 0.1 / k + rng.random(k)
    return (
        weights / weights.sum(),
        rng.uniform(-spread, spread, size=k),
        rng.uniform(0.5, 2.0, size=k),
    )


def mixture_sample(rng, n, weights, means, variances):
    """N draws from the mixture (weights, means, variances)."""
    z = rng.choice(len(weights), size=n, p=weights)
    return rng.normal(np.asarray(means)[z], np.sqrt(np.asarray(variances))[z])


class Problem(NamedTuple):
    """Data y drawn from one mixture, and another theta to evaluate at."""

    y: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    theta: emlib.GMM


def make_problem(seed, n, k):
    """N points from a random K-component mixture, and a random theta."""
    rng = np.random.default_rng(seed)
    y = mixture_sample(rng, n, *random_theta(rng, k))
    weights, means, variances = random_theta(rng, k)
    return Problem(y, weights, means, variances, emlib.GMM(weights, means, variances))


# (seed, N, K): K = 1 (no mixing), 2, 3 and 5 components, N from 1 to 40,
# and K = N = 3.
PROBLEMS = [(0, 1, 1), (1, 7, 1), (2, 30, 2), (3, 25, 3), (4, 40, 5), (5, 3, 3)]
