"""Numerics shared by the models: log-sum-exp rows, weighted moments, ...

Nothing here knows a model's parameters; each model module imports what it
needs, so no model depends on another's internals.
"""

import numpy as np

LOG_2PI = np.log(2.0 * np.pi)
EPS = np.finfo(np.float64).eps
TINY = np.finfo(np.float64).tiny
# Below this |d|, d - log1p(d) is summed from its Taylor series: the two terms
# are each about |d| and their difference about d^2 / 2, so subtracting them
# would lose about log10(1 / |d|) digits.
_SERIES_BELOW = 1e-2


def check_finite_rows(peak, offset=0):
    """Raise unless every row maximum of log P(y_j, z_j = k | theta) is finite.

    A row that is ``-inf`` throughout is an observation with density zero
    under every component, even in log space; ``offset`` is the index of
    ``peak[0]`` in the data, for the message.
    """
    if not np.all(np.isfinite(peak)):
        j = offset + int(np.argmin(np.isfinite(peak)))
        raise ValueError(
            f"observation {j} has zero density under every component (log density "
            "-inf); check the data's scale or give theta nonzero weights nearer it."
        )


def log_sum_exp_rows(a):
    """log sum_k exp(a_jk) for each row j, shifted by the row maximum.

    Parameters
    ----------
    a : ndarray, shape (N, K)

    Returns
    -------
    ndarray, shape (N,)

    Raises
    ------
    ValueError
        If a row is ``-inf`` throughout: that observation has density zero
        under every component, even in log space.
    """
    peak = a.max(axis=1)
    check_finite_rows(peak)
    return peak + np.log(np.exp(a - peak[:, None]).sum(axis=1))


def divide_where_mass(total, nk):
    """total / nk, and 0 where nk = 0 (a component with no mass here)."""
    return np.divide(total, nk, out=np.zeros_like(total), where=nk > 0)


def weighted_moments(w, d):
    """Weighted count, mean and variance of each row of ``d``.

    Uses the corrected two-pass algorithm (Chan, Golub and LeVeque 1983, eq.
    1.7): after subtracting the first-pass mean m, the deviations' own weighted
    mean c (zero in exact arithmetic) corrects both the mean, m + c, and the
    variance, sum w (d - m)^2 / n - c^2. So identical points give a variance
    at rounding level, and data far from 0 keeps full precision.

    Parameters
    ----------
    w : ndarray, shape (K, n)
        Weights gamma_jk, one row per component.
    d : ndarray, shape (K, n)
        Values, one row per component. Overwritten.

    Returns
    -------
    nk, mean, variance : ndarray, shape (K,)
        Zero mean and variance where a row's weights sum to 0.
    """
    nk = w.sum(axis=1)
    mean = divide_where_mass(np.einsum("kj,kj->k", w, d), nk)
    d -= mean[:, None]
    correction = divide_where_mass(np.einsum("kj,kj->k", w, d), nk)
    # A deviation beyond 1e154 squares to inf (only for a theta far outside
    # the data); check_components reports the non-finite variance.
    with np.errstate(over="ignore", invalid="ignore"):
        np.square(d, out=d)
        variance = divide_where_mass(np.einsum("kj,kj->k", w, d), nk)
    return nk, mean + correction, variance - correction * correction


def r_minus_1_minus_log_r(var_q, var_p):
    """r - 1 - log r for r = var_q / var_p, accurate for every r > 0.

    d = r - 1 is formed as (var_q - var_p) / var_p, exact-ish also when the
    variances are close. For |d| < 1e-2 the result is summed from the series
    d - log1p(d) = sum_{m >= 2} (-1)^m d^m / m (terms after m = 10 are below
    1e-22 relative to the first). Otherwise it is d - log r, with log r from
    log1p(d) while r >= 1/2, and from log var_q - log var_p below: there d
    has lost r (it rounds to -1 once r < 1e-16) and log1p(d) would be -inf.
    """
    d = (var_q - var_p) / var_p
    small = np.abs(d) < _SERIES_BELOW
    # The series only where it is used: on a huge d its d^10 would overflow.
    d_small = np.where(small, d, 0.0)
    series = np.zeros_like(d_small)
    for m in range(10, 1, -1):  # Horner: d^2 (1/2 - d (1/3 - d (1/4 - ...)))
        series = 1.0 / m - d_small * series
    series *= d_small * d_small
    near = d > -0.5
    log_r = np.where(
        near,
        np.log1p(np.where(near, d, 0.0)),
        np.log(var_q) - np.log(var_p),
    )
    return np.where(small, series, d - log_r)
