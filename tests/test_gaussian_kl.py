"""emlib.gaussian_kl against the integral, mpmath, and bad inputs."""

import math

import mpmath
import numpy as np
import pytest
from scipy import integrate

from emlib import gaussian_kl


def normal_log_pdf(x, mean, var):
    """log N(x | mean, var), written out: quad calls it once per point (math,
    not scipy.stats, whose per-call overhead was most of this module's time)."""
    return -0.5 * (math.log(2 * math.pi * var) + (x - mean) ** 2 / var)


def kl_by_quadrature(mean_q, var_q, mean_p, var_p):
    """KL(q || p) = integral of q log(q / p), by adaptive quadrature."""

    def integrand(x):
        log_q = normal_log_pdf(x, mean_q, var_q)
        return math.exp(log_q) * (log_q - normal_log_pdf(x, mean_p, var_p))

    sd = math.sqrt(var_q)
    value, _ = integrate.quad(
        integrand,
        mean_q - 12 * sd,
        mean_q + 12 * sd,
        epsabs=0,
        epsrel=1e-13,
        limit=200,
    )
    return value


@pytest.mark.parametrize(
    ("mean_q", "var_q", "mean_p", "var_p"),
    [(0.0, 1.0, 0.0, 2.0), (1.5, 0.3, -0.5, 1.7), (-2.0, 4.0, 0.1, 0.5)],
)
def test_matches_the_integral(mean_q, var_q, mean_p, var_p):
    # quad's own error estimate is about 1e-13 relative here.
    want = kl_by_quadrature(mean_q, var_q, mean_p, var_p)
    assert gaussian_kl(mean_q, var_q, mean_p, var_p) == pytest.approx(want, rel=1e-11)


def exact_kl(mean_q, var_q, mean_p, var_p):
    """The closed form in 50-digit arithmetic (independent of the float path)."""
    with mpmath.workdps(50):
        r = mpmath.mpf(var_q) / mpmath.mpf(var_p)
        diff = mpmath.mpf(mean_q) - mpmath.mpf(mean_p)
        return float((diff**2 / mpmath.mpf(var_p) + r - 1 - mpmath.log(r)) / 2)


@pytest.mark.parametrize("rel", [1e-15, 1e-12, 1e-8, 1e-4, 9.99e-3, 1.01e-2, 0.3])
def test_nearly_equal_variances_keep_full_precision(rel):
    # r - 1 - log r is about (r - 1)^2 / 2: the naive form cancels to 0 or
    # noise; the series keeps every digit.
    var_q = 2.0 * (1.0 + rel)
    want = exact_kl(0.0, var_q, 0.0, 2.0)
    assert want > 0
    assert gaussian_kl(0.0, var_q, 0.0, 2.0) == pytest.approx(want, rel=1e-14)


@pytest.mark.parametrize("ratio", [1e40, 1e100, 1e-100])
def test_extreme_variance_ratios_give_no_overflow_warning(ratio):
    # The series branch must not be evaluated (and overflow) where it is not
    # used; pytest turns any warning into an error.
    want = exact_kl(0.0, ratio, 0.0, 1.0)
    assert gaussian_kl(0.0, ratio, 0.0, 1.0) == pytest.approx(want, rel=1e-14)


def test_sums_over_broadcast_coordinates():
    mean_q = np.array([[0.0, 1.0, -1.0], [2.0, 0.5, 0.0]])
    var_q = np.array([1.0, 0.5, 2.0])
    want = sum(
        exact_kl(mean_q[i, j], var_q[j], 0.3, 1.5) for i in range(2) for j in range(3)
    )
    assert gaussian_kl(mean_q, var_q, 0.3, 1.5) == pytest.approx(want, rel=1e-14)


def test_zero_for_equal_distributions_and_positive_otherwise():
    assert gaussian_kl([1.0, -2.0], [0.5, 3.0], [1.0, -2.0], [0.5, 3.0]) == 0.0
    assert gaussian_kl(0.0, 1.0, 1e-8, 1.0) > 0


def test_does_not_modify_its_arguments():
    args = [np.array([0.0, 1.0]), np.array([1.0, 2.0]), np.zeros(2), np.ones(2)]
    copies = [a.copy() for a in args]
    gaussian_kl(*args)
    for a, c in zip(args, copies, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((0.0, 0.0, 0.0, 1.0), ValueError, "var_q must hold variances > 0"),
        ((0.0, 1.0, 0.0, -1.0), ValueError, "var_p must hold variances > 0"),
        ((np.nan, 1.0, 0.0, 1.0), ValueError, "mean_q contains NaN"),
        ((0.0, 1.0, np.inf, 1.0), ValueError, "mean_p contains NaN or infinite"),
        (([0.0, 1.0], [1.0, 1.0, 1.0], 0.0, 1.0), ValueError, "must broadcast"),
        (("a", 1.0, 0.0, 1.0), TypeError, "mean_q must hold real numbers"),
    ],
)
def test_bad_input_gets_a_clear_error(args, error, match):
    with pytest.raises(error, match=match):
        gaussian_kl(*args)
