"""Agreement with scikit-learn's GaussianMixture, started from the same theta.

How scikit-learn is made to run exactly n EM iterations from our start:

- ``weights_init``, ``means_init`` (shape (K, 1)) and ``precisions_init``
  (1 / sigma_k^2, shape (K,) for "spherical") together replace everything
  its initialisation computes; ``init_params="random_from_data"`` with a fixed
  ``random_state`` only keeps that discarded step cheap and deterministic.
- ``tol=0``: it stops when ``abs(change) < tol``, never true for 0, so
  ``fit`` runs all ``max_iter`` E-step/M-step rounds, then warns
  ``ConvergenceWarning`` (caught here with ``pytest.warns``, as warnings are
  errors in this suite). ``n_iter_`` confirms the count.
- ``reg_covar=0``: no variance floor; ``n_init=1``. Its ``lower_bounds_[i]``
  is the mean log-likelihood at theta^(i), i = 0..n-1, the start included:
  a second confirmation that both began at the same theta.

Tolerance 1e-10 relative, the issue's figure. scikit-learn computes
sigma^2 as E[y^2] - mu^2 and log densities by expanding (y - mu)^2; on data
of unit scale near 0 that cancellation costs a few digits at most, and it
adds 10 eps to each n_k.
"""

import numpy as np
import pytest
import reference
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import emlib

RTOL = 1e-10


def sklearn_rounds(y, theta, n_iter):
    gm = GaussianMixture(
        n_components=theta.n_components,
        covariance_type="spherical",
        reg_covar=0.0,
        tol=0.0,
        max_iter=n_iter,
        n_init=1,
        weights_init=theta.weights,
        means_init=theta.means[:, None],
        precisions_init=1.0 / theta.variances,
        init_params="random_from_data",
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gm.fit(y[:, None])
    assert gm.n_iter_ == n_iter
    return gm


def explicit_rounds(y, theta, n_iter):
    log_liks = []
    for _ in range(n_iter):
        log_liks.append(emlib.log_likelihood(y, theta))
        theta = emlib.m_step(y, emlib.e_step(y, theta))
    return theta, np.array(log_liks)


CASES = [(0, 200, 2, 10), (1, 500, 3, 25), (2, 1000, 4, 40), (3, 20_000, 3, 15)]


@pytest.mark.parametrize(
    ("seed", "n", "k", "n_iter"),
    CASES,
    ids=[f"seed{s}-N{n}-K{k}-iter{i}" for s, n, k, i in CASES],
)
def test_e_step_m_step_rounds_agree_with_sklearn(seed, n, k, n_iter):
    rng = np.random.default_rng(seed)
    y = reference.mixture_sample(rng, n, *reference.random_theta(rng, k, spread=2.0))
    start = emlib.GMM(*reference.random_theta(rng, k, spread=2.0))
    gm = sklearn_rounds(y, start, n_iter)
    theta, log_liks = explicit_rounds(y, start, n_iter)
    assert_allclose(theta.weights, gm.weights_, rtol=RTOL, atol=0)
    assert_allclose(theta.means, gm.means_[:, 0], rtol=RTOL, atol=0)
    assert_allclose(theta.variances, gm.covariances_, rtol=RTOL, atol=0)
    assert_allclose(log_liks / n, gm.lower_bounds_, rtol=RTOL, atol=0)
    # And em itself, fused and blocked, from the same start.
    result = emlib.em(y, start, tol=0, max_iter=n_iter)
    assert_allclose(result.theta.weights, gm.weights_, rtol=RTOL, atol=0)
    assert_allclose(result.theta.means, gm.means_[:, 0], rtol=RTOL, atol=0)
    assert_allclose(result.theta.variances, gm.covariances_, rtol=RTOL, atol=0)
    assert_allclose(result.log_likelihoods[:-1] / n, gm.lower_bounds_, rtol=RTOL)


def test_e_step_agrees_with_sklearn_predict_proba():
    rng = np.random.default_rng(4)
    y = reference.mixture_sample(rng, 300, *reference.random_theta(rng, 3))
    start = emlib.GMM(*reference.random_theta(rng, 3))
    gm = sklearn_rounds(y, start, 1)
    theta = emlib.m_step(y, emlib.e_step(y, start))
    assert_allclose(emlib.e_step(y, theta), gm.predict_proba(y[:, None]), rtol=RTOL)
    assert_allclose(
        emlib.log_likelihood(y, theta) / y.size, gm.score(y[:, None]), rtol=RTOL
    )
