"""Property: EM never lowers the log-likelihood, beyond rounding.

Hypothesis draws the data (finite floats in [-1e3, 1e3], duplicates and
clumps included; magnitudes below 1e-100 are drawn as 0, since emlib rejects
data whose whole magnitude is below 1e-150) and the start theta^(0). Runs
are derandomized (a fixed sequence of examples, no example database), so CI
sees the same cases every time.

"Beyond rounding": log P(Y | theta) = sum_j l_j is computed with an absolute
error of about eps * sum_j (1 + |l_j|), from the rounding of each term and of
the sum. A step is accepted if it loses at most 1e3 times that; a real
decrease (a wrong M-step) loses orders of magnitude more.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_array_equal

import emlib

EPS = np.finfo(np.float64).eps
N_ITER = 20

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
    report_multiple_bugs=False,  # shrink one failure only: keeps a red run short
)


@st.composite
def data_and_start(draw):
    """(y, theta^(0)): 2 <= N <= 60 points, 1 <= K <= min(4, N) components."""
    n = draw(st.integers(2, 60))
    k = draw(st.integers(1, min(4, n)))
    coordinate = st.floats(-1e3, 1e3, allow_subnormal=False).map(
        lambda v: v if abs(v) >= 1e-100 else 0.0
    )
    y = draw(arrays(np.float64, n, elements=coordinate))
    weights = np.array(draw(st.lists(st.floats(0.05, 1.0), min_size=k, max_size=k)))
    means = draw(st.lists(coordinate, min_size=k, max_size=k))
    variances = draw(st.lists(st.floats(1e-2, 1e6), min_size=k, max_size=k))
    return y, emlib.GMM(weights / weights.sum(), means, variances)


def rounding_allowance(y, theta):
    """1e3 eps sum_j (1 + |log P(y_j | theta)|), densities written out here."""
    w, m, v = theta.weights, theta.means, theta.variances
    log_joint = (
        np.log(w) - 0.5 * np.log(2 * np.pi * v) - (y[:, None] - m) ** 2 / (2 * v)
    )
    peak = log_joint.max(axis=1)
    per_point = peak + np.log(np.exp(log_joint - peak[:, None]).sum(axis=1))
    return 1e3 * EPS * np.sum(1.0 + np.abs(per_point))


def is_collapse(exc):
    """The documented degenerate end of EM: a component emptied or collapsed."""
    text = str(exc)
    return "collapsed onto a single point" in text or "no responsibility left" in text


def explicit_rounds(y, theta):
    """Up to N_ITER rounds of e_step and m_step, stopping at a collapse."""
    thetas, log_liks = [theta], [emlib.log_likelihood(y, theta)]
    for _ in range(N_ITER):
        try:
            theta = emlib.m_step(y, emlib.e_step(y, theta))
        except ValueError as exc:
            if not is_collapse(exc):
                raise
            break
        thetas.append(theta)
        log_liks.append(emlib.log_likelihood(y, theta))
    return thetas, log_liks


def em_one_step_at_a_time(y, theta):
    """Up to N_ITER single-iteration em calls, chained, stopping at a collapse.

    em keeps no state between iterations beyond theta, so this visits the
    same iterates as one em call, and exposes each theta^(i).
    """
    thetas, log_liks = [theta], []
    for _ in range(N_ITER):
        try:
            result = emlib.em(y, thetas[-1], tol=0, max_iter=1)
        except ValueError as exc:
            if not is_collapse(exc):
                raise
            log_liks.append(emlib.log_likelihood(y, thetas[-1]))
            return thetas, log_liks, False
        log_liks.append(result.log_likelihoods[0])
        thetas.append(result.theta)
    log_liks.append(result.log_likelihoods[1])
    return thetas, log_liks, True


def assert_non_decreasing(y, thetas, log_liks):
    assert len(log_liks) == len(thetas)
    assert np.all(np.isfinite(log_liks))
    for before, after, theta in zip(log_liks, log_liks[1:], thetas, strict=False):
        if after < before:  # the allowance (> 0) is computed only for a fall
            assert after >= before - rounding_allowance(y, theta), (before, after)


@SETTINGS
@given(data_and_start())
def test_em_and_explicit_rounds_never_decrease_the_log_likelihood(problem):
    """em's iterates, and explicit e_step / m_step rounds, on each drawn problem.

    One test for both: drawing a problem costs about as much as its explicit
    rounds (measured), so the two properties share the 100 problems instead
    of drawing 100 each.
    """
    y, theta = problem
    assert_non_decreasing(y, *explicit_rounds(y, theta))
    thetas, log_liks, completed = em_one_step_at_a_time(y, theta)
    assert_non_decreasing(y, thetas, log_liks)
    if completed:
        result = emlib.em(y, theta, tol=0, max_iter=N_ITER)
        assert_array_equal(result.log_likelihoods, log_liks)
    else:
        with pytest.raises(ValueError, match=r"collapsed|no responsibility"):
            emlib.em(y, theta, tol=0, max_iter=N_ITER)
