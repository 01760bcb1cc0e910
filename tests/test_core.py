"""The EM core: why a run stops, what it reports, and when it warns.

``run_em`` is driven here both by toy E-passes whose log-likelihood sequence
is chosen exactly, and by real models: a genuine decrease (the multivariate
mixture with reg_covar = 0.5 on Old Faithful, whose penalised M-step lowers
the log-likelihood by 3.3 in its first iteration) must stop the run, while
the rounding-level wobbles of long runs at convergence must not.
"""

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.datasets import load_iris

import emlib
from embook.data import old_faithful
from emlib import multivariate
from emlib._core import ROUNDING_ULPS, rounding_allowance, run_em

EPS = np.finfo(np.float64).eps


def scripted(values):
    """An E-pass / M-step pair whose iterate i has log-likelihood values[i]."""

    def e_pass(i):
        return values[i], None

    def m_step(i, _statistics):
        return i + 1

    return e_pass, m_step


def run(values, n=100, tol=0.0, max_iter=None):
    e_pass, m_step = scripted(values)
    max_iter = len(values) - 1 if max_iter is None else max_iter
    return run_em(e_pass, m_step, 0, n=n, tol=tol, max_iter=max_iter)


def test_the_allowance_is_64_ulps_of_the_sum_and_its_size():
    assert ROUNDING_ULPS == 64
    assert rounding_allowance(-1000.0, 272) == 64 * EPS * 1272


def test_a_fall_beyond_rounding_stops_with_a_warning_naming_it():
    with pytest.warns(emlib.ConvergenceWarning, match=r"iteration 2: .* fell by 0\.5"):
        result = run([-10.0, -9.0, -9.5, -9.0])
    assert result.stop_reason == "decrease"
    assert result.converged is False
    assert result.n_iter == 2
    assert result.theta == 2  # the iterate after the fall
    np.testing.assert_array_equal(result.log_likelihoods, [-10.0, -9.0, -9.5])


def test_a_decrease_stops_whatever_tol_is():
    for tol in (0.0, 1e-10, 1.0):
        with pytest.warns(emlib.ConvergenceWarning, match="fell by"):
            assert run([-10.0, -11.0, -5.0], tol=tol).stop_reason == "decrease"


def test_falls_within_the_allowance_are_rounding():
    ll = -500.0
    allowed = rounding_allowance(ll, 100)
    within = [ll, ll - 0.9 * allowed, ll - 0.9 * allowed, ll]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run(within)
    assert (result.stop_reason, result.n_iter) == ("max_iter", 3)
    with pytest.warns(emlib.ConvergenceWarning, match="fell by"):
        assert run([ll, ll - 1.1 * allowed]).stop_reason == "decrease"


def test_converged_when_the_gain_is_below_tol_times_n():
    # tol * N = 1e-2: gains 1, 0.5, then 0.009 < 1e-2.
    result = run([-10.0, -9.0, -8.5, -8.491, 0.0], n=100, tol=1e-4)
    assert (result.stop_reason, result.converged, result.n_iter) == (
        "converged",
        True,
        3,
    )


def test_max_iter_warns_only_when_tol_is_positive():
    values = [-10.0, -9.0, -8.0, -7.0]
    with pytest.warns(
        emlib.ConvergenceWarning,
        match=r"max_iter = 3 iterations: iteration 3 raised the log-likelihood by 1",
    ):
        result = run(values, tol=1e-6)
    assert (result.stop_reason, result.converged) == ("max_iter", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run(values, tol=0.0).stop_reason == "max_iter"


def test_an_m_step_with_no_ascent_stops_as_converged():
    def m_step(i, _statistics):
        return None if i == 1 else i + 1

    result = run_em(scripted([-3.0, -2.0])[0], m_step, 0, n=10, tol=0.0, max_iter=5)
    assert (result.stop_reason, result.converged, result.n_iter) == (
        "converged",
        True,
        1,
    )


def test_the_warning_is_emlibs_own_user_warning():
    assert issubclass(emlib.ConvergenceWarning, UserWarning)
    assert emlib.ConvergenceWarning.__module__ == "emlib._core"
    assert "ConvergenceWarning" in emlib.__all__


def scipy_log_likelihood(X, theta):
    """log P(X | theta) by SciPy's Gaussian densities (independent of emlib)."""
    log_joint = [
        np.log(w) + multivariate_normal(mu, cov).logpdf(X)
        for w, mu, cov in zip(
            theta.weights, theta.means, theta.full_covariances(), strict=True
        )
    ]
    return logsumexp(np.column_stack(log_joint), axis=1).sum()


def test_regularised_multivariate_fit_on_old_faithful_decreases():
    # The start the issue reported it from: equal weights, means at each
    # column's quartiles, the data's covariance for both components.
    X = old_faithful()
    cov = np.cov(X.T, bias=True)
    start = multivariate.GMM(
        [0.5, 0.5], np.quantile(X, [0.25, 0.75], axis=0), [cov] * 2
    )
    before = scipy_log_likelihood(X, start)
    with pytest.warns(
        emlib.ConvergenceWarning, match=r"iteration 1: the log-likelihood fell by 3\.33"
    ) as record:
        fit = multivariate.em(X, start, reg_covar=0.5)
    assert (fit.stop_reason, fit.converged, fit.n_iter) == ("decrease", False, 1)
    # The fall, recomputed by SciPy: to 1e-10 of log P (measured 1e-13).
    fall = before - scipy_log_likelihood(X, fit.theta)
    assert fall == pytest.approx(-np.diff(fit.log_likelihoods)[0], abs=1e-10 * 1320)
    assert fall > 3.3
    assert record[0].filename == __file__  # the warning points at the caller


@pytest.mark.parametrize("covariance_type", multivariate.COVARIANCE_TYPES)
def test_rounding_wobbles_at_convergence_do_not_stop_a_run(covariance_type):
    # Iris, 150 iterations with tol=0: the log-likelihood stalls at its
    # maximum from about iteration 45 and wobbles by up to 2.3e-13. Which
    # steps fall varies between runs (threaded BLAS); measured, those of
    # tied, diag and spherical end by iteration 105 (the iterates stop
    # moving), full's go on (about 45 by iteration 150, 90-120 by 300), and
    # each type's largest fall came by iteration 115.
    iris = load_iris().data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = multivariate.em(
            iris, 3, covariance_type=covariance_type, tol=0, max_iter=150
        )
    assert (fit.stop_reason, fit.n_iter) == ("max_iter", 150)
    gains = np.diff(fit.log_likelihoods)
    assert np.any(gains < 0)  # there are wobbles, and they are not decreases
    assert -gains.min() < 1e-12


def test_one_d_wobbles_at_convergence_do_not_stop_a_run():
    # All 13 wobbles (the largest 1.1e-13) come between iterations 39 and 66.
    y = old_faithful()[:, 0]
    fit = emlib.em(y, 2, tol=0, max_iter=150)
    assert (fit.stop_reason, fit.n_iter) == ("max_iter", 150)
    assert np.any(np.diff(fit.log_likelihoods) < 0)
