"""observed_information against a finite-difference Hessian of log_likelihood.

The reference differentiates ``emlib.log_likelihood`` twice by central
differences in v = (alpha_1..alpha_{K-1}, mu_1..mu_K, sigma_1^2..sigma_K^2),
with steps h, h/2, h/4 times each parameter's scale combined by Richardson
extrapolation, so its truncation error is O(h^6). With h = 1e-2 that is below
1e-8 of the largest entry, and the rounding error, about eps |log P| / (h
scale)^2 with the smallest step, is of the same order. So 1e-6 of the largest
entry bounds both with a margin of 30 (measured: at most 3e-8, in the K = 3
case whose smallest weight is 0.04; the closed form itself agrees with a
50-digit mpmath Hessian to 2e-15).
"""

import itertools

import numpy as np
import pytest
from problems import make_problem, mixture_sample

import emlib

RTOL = 1e-6


def to_vector(theta):
    return np.concatenate([theta.weights[:-1], theta.means, theta.variances])


def from_vector(v, k):
    weights = np.append(v[: k - 1], 1.0 - v[: k - 1].sum())
    return emlib.GMM(weights, v[k - 1 : 2 * k - 1], v[2 * k - 1 :])


def fd_hessian(y, theta, rel_step=1e-2):
    """Hessian of log_likelihood in v by Richardson-extrapolated central differences."""
    k, v = theta.n_components, to_vector(theta)
    # Steps scaled to each parameter: weights by the smallest weight (the
    # log-likelihood bends on that scale), means by the smallest standard
    # deviation, variances by their own size.
    scale = np.concatenate(
        [
            np.full(k - 1, theta.weights.min()),
            np.full(k, np.sqrt(theta.variances.min())),
            v[2 * k - 1 :],
        ]
    )

    def f(x):
        return emlib.log_likelihood(y, from_vector(x, k))

    def central(h):
        e = np.diag(h * scale)
        out = np.empty((v.size, v.size))
        for i in range(v.size):
            for j in range(i, v.size):
                pp = f(v + e[i] + e[j]) - f(v + e[i] - e[j])
                mm = f(v - e[i] + e[j]) - f(v - e[i] - e[j])
                out[i, j] = out[j, i] = (pp - mm) / (4 * h * h * scale[i] * scale[j])
        return out

    # Richardson's table on steps h, h/2, h/4: errors O(h^2), O(h^4), O(h^6).
    table = [central(rel_step / 2**i) for i in range(3)]
    for order in (1, 2):
        table = [
            (4**order * fine - coarse) / (4**order - 1)
            for coarse, fine in itertools.pairwise(table)
        ]
    return table[0]


def assert_close_to_fd(y, theta):
    info = emlib.observed_information(y, theta)
    reference = -fd_hessian(y, theta)
    assert info.shape == (3 * theta.n_components - 1,) * 2
    assert np.array_equal(info, info.T)
    assert np.max(np.abs(info - reference)) <= RTOL * np.max(np.abs(reference))
    return info


# (seed, N, K): K = 1 to 4; theta random, not a maximum of the likelihood.
CASES = [(11, 30, 1), (12, 40, 2), (13, 60, 3), (14, 80, 4)]


@pytest.mark.parametrize(("seed", "n", "k"), CASES, ids=[f"K{c[2]}" for c in CASES])
def test_matches_finite_differences_away_from_a_maximum(seed, n, k):
    problem = make_problem(seed, n, k)
    assert_close_to_fd(problem.y, problem.theta)


def test_need_not_be_positive_definite_away_from_a_maximum():
    """Where log P curves upwards in some direction, so does -I_obs."""
    problem = make_problem(13, 60, 3)
    info = assert_close_to_fd(problem.y, problem.theta)
    assert np.linalg.eigvalsh(info).min() < 0


@pytest.mark.parametrize("k", [1, 2, 3])
def test_positive_definite_at_a_fitted_maximum(k):
    """At a strict local maximum, found by EM on well-separated clusters."""
    rng = np.random.default_rng(20 + k)
    means = 5.0 * np.arange(k)
    y = mixture_sample(rng, 100 * k, np.full(k, 1 / k), means, np.ones(k))
    fit = emlib.em(y, k)
    assert fit.converged
    info = assert_close_to_fd(y, fit.theta)
    assert np.linalg.eigvalsh(info).min() > 0


def test_one_component_is_the_normal_models_information():
    """K = 1: I_obs = [[N/s, S1/s^2], [S1/s^2, S2/s^3 - N/(2 s^2)]].

    With S1 = sum (y - mu) and S2 = sum (y - mu)^2: the textbook second
    derivatives of the normal log-likelihood in (mu, s = sigma^2).
    """
    y = np.array([-1.0, 0.5, 2.0, 3.5])
    mu, s = 0.25, 1.5
    d = y - mu
    want = [
        [y.size / s, d.sum() / s**2],
        [d.sum() / s**2, (d @ d) / s**3 - y.size / (2 * s**2)],
    ]
    got = emlib.observed_information(y, emlib.GMM([1.0], [mu], [s]))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)


def test_far_narrow_component_gives_finite_entries():
    """A point the narrow component cannot explain contributes nothing to it."""
    # For y = -1 and 1, u = (y - mu_2) / sigma_2^2 = 5e100 and u^4 overflows,
    # but their responsibility for component 2 is exactly 0.
    y = np.array([-1.0, 0.0, 1.0, 5.0])
    theta = emlib.GMM([0.5, 0.5], [0.0, 5.0], [1.0, 1e-100])
    info = emlib.observed_information(y, theta)
    assert np.all(np.isfinite(info))


def test_zero_weight_is_refused():
    theta = emlib.GMM([0.0, 1.0], [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(
        ValueError, match=r"needs every weight alpha_k > 0; component 0"
    ):
        emlib.observed_information([0.1, 0.5, 0.9], theta)


def test_overflow_is_an_error_not_inf():
    theta = emlib.GMM([0.5, 0.5], [0.0, 1e100], [1.0, 1e-300])
    with pytest.raises(ValueError, match=r"observed information overflows float64"):
        emlib.observed_information([1e100 + 1e90, 0.0], theta)


def test_column_data_gives_the_same_matrix():
    problem = make_problem(2, 30, 2)
    info = emlib.observed_information(problem.y[:, None], problem.theta)
    assert np.array_equal(info, emlib.observed_information(problem.y, problem.theta))
