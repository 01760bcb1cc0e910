"""embook.em_runs: the EM step, its Jacobian, and the iteration-count check."""

import numpy as np
import problems
import pytest
from numpy.testing import assert_allclose

import emlib
from embook.em_runs import (
    assert_count_robust,
    central_jacobian,
    em_map_jacobian,
    em_step,
)
from embook.params import to_vector


def sample(seed=0, n=200):
    rng = np.random.default_rng(seed)
    return problems.mixture_sample(rng, n, [0.4, 0.6], [-2.0, 2.0], [1.0, 0.5])


def test_em_step_is_one_m_step_after_one_e_step():
    """Equal to m_step(e_step) to 1e-12 (tests/test_em.py's reasoning)."""
    y = sample()
    theta = emlib.GMM([0.5, 0.5], [-1.0, 1.0], [2.0, 2.0])
    want = emlib.m_step(y, emlib.e_step(y, theta))
    assert_allclose(to_vector(em_step(y, theta)), to_vector(want), rtol=1e-12)


def test_central_jacobian_of_a_known_map():
    """f(v) = (v0 v1, v0^2 + 3 v1): exact Jacobian [[v1, v0], [2 v0, 3]].

    Truncation O(h^2) vanishes for these quadratics; rounding ~eps/h ~ 1e-10.
    """

    def f(v):
        return np.array([v[0] * v[1], v[0] ** 2 + 3 * v[1]])

    v = np.array([2.0, -0.5])
    want = np.array([[v[1], v[0]], [2 * v[0], 3.0]])
    assert_allclose(central_jacobian(f, v), want, rtol=0, atol=1e-8)
    with pytest.raises(ValueError, match="1-D vector"):
        central_jacobian(f, v[None, :])


def test_em_map_jacobian_vanishes_for_one_component():
    """K = 1: one step gives the sample mean and variance from any start."""
    y = sample(1)
    theta = emlib.GMM([1.0], [0.3], [4.0])
    jac = em_map_jacobian(y, theta)
    assert jac.shape == (2, 2)
    assert_allclose(jac, 0, rtol=0, atol=1e-8)


def test_em_map_jacobian_at_a_maximum_contracts():
    """At a maximum of the likelihood every eigenvalue lies in [0, 1)."""
    y = sample(2)
    theta = emlib.em(y, 2, tol=0, max_iter=300).theta
    eigenvalues = np.linalg.eigvals(em_map_jacobian(y, theta))
    assert eigenvalues.shape == (5,)
    assert np.all(np.abs(eigenvalues.imag) < 1e-8)
    assert np.all(eigenvalues.real > -1e-8)
    assert np.all(eigenvalues.real < 1)


def run_with(log_likelihoods, converged=True):
    ll = np.asarray(log_likelihoods, dtype=float)
    stop_reason = "converged" if converged else "max_iter"
    return emlib.EMResult(None, ll, ll.size - 1, converged, stop_reason, ll.size)


def test_assert_count_robust_accepts_clear_stops_and_rejects_close_calls():
    n, tol = 100, 1e-10  # tol * N = 1e-8
    assert_count_robust(run_with([0.0, 1.0, 1.0 + 2e-8, 1.0 + 2.5e-8]), n, tol)
    with pytest.raises(AssertionError, match="last gain"):
        assert_count_robust(run_with([0.0, 1.0, 1.0 + 2e-8, 1.0 + 2.995e-8]), n, tol)
    with pytest.raises(AssertionError, match="gain before the last"):
        assert_count_robust(run_with([0.0, 1.0, 1.0 + 1.005e-8, 1.0 + 1.1e-8]), n, tol)
    with pytest.raises(AssertionError, match="did not converge"):
        assert_count_robust(run_with([0.0, 1.0, 2.0], converged=False), n, tol)


def test_assert_count_robust_on_a_real_run():
    y = sample(3)
    assert_count_robust(emlib.em(y, 2), y.size)
