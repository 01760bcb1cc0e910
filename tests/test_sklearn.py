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
import problems
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import emlib
from embook.data import old_faithful
from embook.em_runs import assert_count_robust

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
    y = problems.mixture_sample(rng, n, *problems.random_theta(rng, k, spread=2.0))
    start = emlib.GMM(*problems.random_theta(rng, k, spread=2.0))
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
    y = problems.mixture_sample(rng, 300, *problems.random_theta(rng, 3))
    start = emlib.GMM(*problems.random_theta(rng, 3))
    gm = sklearn_rounds(y, start, 1)
    theta = emlib.m_step(y, emlib.e_step(y, start))
    assert_allclose(emlib.e_step(y, theta), gm.predict_proba(y[:, None]), rtol=RTOL)
    assert_allclose(
        emlib.log_likelihood(y, theta) / y.size, gm.score(y[:, None]), rtol=RTOL
    )


def synthetic_three_clusters():
    """Notebook 41's data: N = 1000 from three well separated components."""
    rng = np.random.default_rng(2024)
    weights, means = np.array([0.3, 0.4, 0.3]), np.array([-6.0, 0.0, 5.0])
    variances = np.array([1.0, 0.5, 0.8])
    z = rng.choice(3, size=1000, p=weights)
    return rng.normal(means[z], np.sqrt(variances[z]))


@pytest.mark.parametrize(
    ("data", "k"),
    [(old_faithful()[:, 0], 2), (synthetic_three_clusters(), 3)],
    ids=["old-faithful-K2", "synthetic-K3"],
)
def test_sklearn_stops_one_iteration_after_emlib_then_agrees(data, k):
    """Notebook 40, section 6, on both data sets it used to run on.

    With the same per-sample tol, scikit-learn's stopping test sees the gain
    of the previous iteration, so it runs exactly one iteration more; its
    lower bounds times N are emlib's log-likelihoods (1e-13: sums of N terms
    in another order, measured 8e-15). Run for scikit-learn's count, emlib's
    parameters agree to 1e-11 (scikit-learn's variance formula cancels
    digits; measured 1e-13) and the log-likelihood to 1e-13.
    """
    n = data.size
    start = emlib.initial_theta(data, k)
    gm = GaussianMixture(
        k,
        covariance_type="spherical",
        reg_covar=0.0,
        tol=1e-10,
        max_iter=1000,
        init_params="random",
        random_state=0,
        weights_init=start.weights,
        means_init=start.means[:, None],
        precisions_init=1 / start.variances,
    ).fit(data[:, None])
    ours = emlib.em(data, start)
    assert gm.converged_
    assert_count_robust(ours, n)
    assert gm.n_iter_ == ours.n_iter + 1
    lower_bounds = np.array(gm.lower_bounds_) * n
    assert_allclose(lower_bounds, ours.log_likelihoods, rtol=1e-13, atol=0)
    same = emlib.em(data, start, tol=0, max_iter=gm.n_iter_).theta
    theirs = np.concatenate([gm.weights_, gm.means_[:, 0], gm.covariances_])
    mine = np.concatenate([same.weights, same.means, same.variances])
    assert_allclose(mine, theirs, rtol=1e-11, atol=0)
    log_lik = emlib.log_likelihood(data, same)
    assert_allclose(gm.score(data[:, None]) * n, log_lik, rtol=1e-13, atol=0)
    assert gm.lower_bound_ * n < log_lik  # the lower bound is one M-step behind
