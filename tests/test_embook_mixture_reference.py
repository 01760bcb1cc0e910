"""embook.mixture_reference against SciPy, emlib and closed forms."""

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats

import emlib
from embook.data import old_faithful
from embook.mixture_reference import (
    central_hessian,
    complete_data_standard_errors,
    complete_information,
    log_joint,
    log_likelihood,
    observed_information,
    responsibilities,
)

THETA = emlib.GMM([0.3, 0.7], [2.0, 4.3], [0.06, 0.2])


def test_log_likelihood_and_responsibilities_match_a_plain_loop():
    y = [1.8, 2.2, 3.5, 4.4, 5.0]
    joint = [
        [
            a / math.sqrt(2 * math.pi * v) * math.exp(-((yj - m) ** 2) / (2 * v))
            for a, m, v in zip(THETA.weights, THETA.means, THETA.variances, strict=True)
        ]
        for yj in y
    ]
    want = sum(math.log(sum(row)) for row in joint)
    assert log_likelihood(y, THETA) == pytest.approx(want, rel=1e-14)
    gamma = [[p / sum(row) for p in row] for row in joint]
    assert np.allclose(responsibilities(y, THETA), gamma, rtol=1e-13, atol=1e-300)


def test_log_joint_is_scipys_and_broadcasts_over_a_batch():
    y = np.array([-3.0, 0.5, 2.0, 40.0])
    weights = np.array([[0.2, 0.6], [0.8, 0.4]])  # (K, M) = (2, 2): two thetas
    means, variances = (
        np.array([[0.0, 1.0], [2.0, -1.0]]),
        np.array([[1.0, 0.1], [4.0, 2.0]]),
    )
    got = log_joint(y, weights, means, variances)
    assert got.shape == (4, 2, 2)
    sd = np.sqrt(variances)
    want = scipy.stats.norm.logpdf(y[:, None, None], means, sd) + np.log(weights)
    assert np.allclose(got, want, rtol=1e-14, atol=0)
    lse = scipy.special.logsumexp(want, axis=1).sum(axis=0)
    assert np.allclose(
        [
            log_likelihood(
                y, emlib.GMM(*(a[:, m] for a in (weights, means, variances)))
            )
            for m in (0, 1)
        ],
        lse,
        rtol=1e-14,
    )


def test_central_hessian_is_exact_on_a_quartic():
    # Richardson cancels the h^2 term; a quartic has no h^4 term.
    def f(v):
        x, z = v
        return x**2 * z + 3 * z**4 - x * z

    v = np.array([0.7, -1.3])
    want = [[2 * v[1], 2 * v[0] - 1], [2 * v[0] - 1, 36 * v[1] ** 2]]
    got = central_hessian(f, v, np.array([1.0, 2.0]), 0.1)
    assert np.allclose(got, want, rtol=1e-11, atol=1e-11)


def test_information_matrices_at_the_old_faithful_fit():
    y = old_faithful()[:, 0]
    theta = emlib.em(y, 2, tol=0, max_iter=150).theta  # a fixed point of EM
    i_obs = observed_information(y, theta)
    louis = emlib.observed_information(y, theta)
    assert np.allclose(i_obs, louis, rtol=0, atol=1e-7 * np.abs(louis).max())
    # At a fixed point the diagonal of I_c^-1 is the complete-data variances.
    se = np.sqrt(np.diag(np.linalg.inv(complete_information(y, theta))))
    assert np.allclose(se, complete_data_standard_errors(theta, y.size), rtol=1e-7)
