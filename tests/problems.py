"""Small random mixture problems with fixed seeds, shared by the tests."""

from typing import NamedTuple

import numpy as np
from reference import mixture_sample, random_theta

import emlib


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
