"""emlib.multivariate with values missing at random (NaN), against independent routes.

- The fixed point of EM is the maximiser of the observed-data log-likelihood
  that SciPy's BFGS finds from the same start (``embook.missing``: the
  likelihood from ``numpy.linalg.solve``/``slogdet``, a Cholesky
  parametrisation). Tolerances: the issue's 1e-8 relative on log L and 1e-5
  on every parameter. Measured: log L within 1e-13 relative, parameters
  within 2e-6 (BFGS stops where its central-difference gradient, accurate to
  about 1e-10 per row, stops improving; the Hessian per row is of order 1,
  so its parameters carry errors of about 1e-6).
- log_likelihood against ``scipy.stats.multivariate_normal`` of each row's
  observed coordinates, to 1e-12 relative (a sum of 40 terms, each to a few
  ulps; measured 1e-15).
- Without NaN the missing-data path (``_missing.Patterns``) runs the
  complete-data fit: equal to 1e-12 relative (different summation order).
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from embook.missing import bfgs_maximiser
from emlib import _missing
from emlib import multivariate as mv
from emlib._core import run_em


def two_clusters(n, d, seed, fraction):
    """Two correlated Gaussian clusters, a fraction of entries set to NaN.

    Returns X with NaN (every pattern of D = 2 present, plus one row with
    every value missing) and the complete data.
    """
    rng = np.random.default_rng(seed)
    complete = rng.normal(size=(n, d)) @ np.triu(np.full((d, d), 0.6))
    complete[: n // 2] += 2.5
    X = complete.copy()
    X[rng.uniform(size=X.shape) < fraction] = np.nan
    X[np.isnan(X).all(axis=1)] = complete[np.isnan(X).all(axis=1)]
    X[0] = np.nan  # one row with nothing observed
    return X, complete


def mean_imputed_by_hand(X):
    """Rows observing something, NaN -> the column's observed mean."""
    rows = X[~np.isnan(X).all(axis=1)]
    return np.where(np.isnan(rows), np.nanmean(X, axis=0), rows)


@pytest.mark.parametrize(
    ("d", "k", "covariance_type"),
    [
        (2, 2, "full"),
        (2, 2, "diag"),
        (2, 2, "tied"),
        (2, 2, "spherical"),
        (3, 1, "full"),
    ],
)
def test_em_fixed_point_is_the_bfgs_maximiser(d, k, covariance_type):
    X, _ = two_clusters(100, d, seed=1, fraction=0.3)
    patterns = {tuple(row) for row in ~np.isnan(X)}
    assert len(patterns) == 2**d  # every pattern, the empty one included
    start = mv.initial_theta(
        mean_imputed_by_hand(X), k, covariance_type, random_state=0
    )
    fit = mv.em(X, start, covariance_type=covariance_type, tol=1e-13)
    weights, means, covariances, log_lik = bfgs_maximiser(
        X, start.weights, start.means, start.full_covariances(), covariance_type
    )
    assert fit.converged
    assert_allclose(fit.log_likelihoods[-1], log_lik, rtol=1e-8)
    assert_allclose(fit.theta.weights, weights, atol=1e-5)
    assert_allclose(fit.theta.means, means, atol=1e-5)
    assert_allclose(fit.theta.full_covariances(), covariances, atol=1e-5)


def test_log_likelihood_is_the_sum_of_scipy_marginals():
    X, _ = two_clusters(40, 3, seed=2, fraction=0.3)
    theta = mv.GMM(
        [0.3, 0.7],
        [[0.0, 1.0, -1.0], [2.0, 0.5, 0.0]],
        [[[2.0, 0.5, 0.3], [0.5, 1.0, 0.2], [0.3, 0.2, 1.5]], np.eye(3) * 0.8],
    )
    terms = []
    for row in X:
        o = ~np.isnan(row)
        if not o.any():
            continue  # log of the empty marginal, 1
        terms.append(
            logsumexp(
                [
                    np.log(a)
                    + multivariate_normal(m[o], s[np.ix_(o, o)]).logpdf(row[o])
                    for a, m, s in zip(
                        theta.weights, theta.means, theta.covariances, strict=True
                    )
                ]
            )
        )
    assert len(terms) == X.shape[0] - 1
    assert_allclose(mv.log_likelihood(X, theta), np.sum(terms), rtol=1e-12)


def test_without_nan_the_missing_path_is_the_complete_fit():
    _, X = two_clusters(80, 3, seed=3, fraction=0.0)
    start = mv.initial_theta(X, 2, random_state=0)
    complete = mv.em(X, start, tol=0, max_iter=20)
    patterns = _missing.Patterns(X)
    assert len(patterns.groups) == 1

    def m_step(theta, moments):
        return mv._m_step_from_moments(theta.means, moments, "full", 0.0)

    path = run_em(patterns.e_pass, m_step, start, n=80, tol=0, max_iter=20)
    assert_allclose(path.log_likelihoods, complete.log_likelihoods, rtol=1e-12)
    assert_allclose(path.theta.covariances, complete.theta.covariances, rtol=1e-12)


def test_rows_with_nothing_observed_change_nothing():
    X, _ = two_clusters(60, 2, seed=4, fraction=0.3)
    start = mv.initial_theta(mean_imputed_by_hand(X), 2, random_state=0)
    padded = np.vstack([X, np.full((5, 2), np.nan)])
    fit, fit_padded = (mv.em(Y, start, tol=0, max_iter=5) for Y in (X, padded))
    assert_allclose(fit_padded.log_likelihoods, fit.log_likelihoods, rtol=1e-14)
    assert_allclose(fit_padded.theta.means, fit.theta.means, rtol=1e-14)


def test_default_start_is_kmeans_on_the_mean_imputed_rows():
    X, _ = two_clusters(60, 2, seed=5, fraction=0.3)
    fit = mv.em(X, 2, random_state=7, tol=0, max_iter=1)
    start = mv.initial_theta(mean_imputed_by_hand(X), 2, random_state=7)
    assert_allclose(fit.log_likelihoods[0], mv.log_likelihood(X, start), rtol=1e-14)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (1, np.nan, "column 1 of X has no observed value"),
        (0, np.inf, "X contains infinite values"),
    ],
)
def test_bad_missing_data_is_refused_and_not_modified(column, value, message):
    X, _ = two_clusters(20, 2, seed=6, fraction=0.2)
    X[:, column] = value
    before = X.copy()
    theta = mv.GMM([1.0], [[0.0, 0.0]], [np.eye(2)])
    with pytest.raises(ValueError, match=message):
        mv.em(X, 1)
    with pytest.raises(ValueError, match=message):
        mv.log_likelihood(X, theta)
    assert_allclose(X, before, equal_nan=True, rtol=0, atol=0)


def test_nan_outside_em_and_log_likelihood_is_refused():
    X, _ = two_clusters(20, 2, seed=6, fraction=0.2)
    theta = mv.GMM([1.0], [[0.0, 0.0]], [np.eye(2)])
    with pytest.raises(ValueError, match="X contains NaN"):
        mv.e_step(X, theta)
    with pytest.raises(ValueError, match="X contains NaN"):
        mv.initial_theta(X, 1)


def test_integer_weights_are_repeated_rows_with_missing_values():
    X, _ = two_clusters(40, 2, seed=8, fraction=0.3)
    counts = np.random.default_rng(8).integers(0, 3, size=len(X))
    start = mv.initial_theta(mean_imputed_by_hand(X), 2, random_state=0)
    weighted = mv.em(X, start, tol=0, max_iter=5, sample_weight=counts)
    repeated = mv.em(np.repeat(X, counts, axis=0), start, tol=0, max_iter=5)
    assert_allclose(weighted.log_likelihoods, repeated.log_likelihoods, rtol=1e-12)
    assert_allclose(weighted.theta.covariances, repeated.theta.covariances, rtol=1e-10)
