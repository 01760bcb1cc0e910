"""The EM iteration, fused and blocked for speed.

One pass over the data at theta^(i) computes, block by block, the E-step's
responsibilities gamma_jk, the log-likelihood log P(Y | theta^(i)) (the
log-sum-exp normalisers, free by-products of the E-step) and the weighted
moments the M-step needs. No (N, K) array is ever formed: each block's
temporaries fit in cache, which is where the speed comes from. The result
equals alternating ``e_step`` and ``m_step`` up to the order of floating-point
summation (tests/test_em.py checks it).

The moments are sufficient statistics that merge exactly
(:func:`merge_statistics`), so the same per-chunk pass serves data held as a
Dask array, chunk by chunk on any scheduler (``emlib._dask``).
"""

import sys
from typing import NamedTuple

import numpy as np

from emlib._checks import as_observations, check_stopping_rule
from emlib.gmm import GMM
from emlib.model import (
    check_components,
    check_finite_rows,
    divide_where_mass,
    log_normalizers,
    weighted_moments,
)

# Rows per block. Large enough that each numpy call works for tens of
# microseconds or more against about a microsecond of Python between calls:
# numpy releases the GIL inside its loops, so threads reducing different
# chunks (Dask's threaded scheduler) then run in parallel. With 8192 rows two
# threads ran no faster than one (measured; the GIL changed hands too often),
# with 65536 they ran 1.7-2x faster, at the same single-thread speed. The two
# (K, _BLOCK) float64 temporaries take 2 x 8 x K x 65536 bytes (5 MB at K = 5).
_BLOCK = 65536


class EMResult(NamedTuple):
    """The outcome of :func:`em`, :func:`emlib.three_coins.em` and
    :func:`emlib.hmm.baum_welch`.

    Attributes
    ----------
    theta : GMM, three_coins.ThreeCoins or hmm.HMM
        The last iterate theta^(n_iter).
    log_likelihoods : ndarray, shape (n_iter + 1,)
        log P(Y | theta^(i)) for i = 0..n_iter, the start included;
        non-decreasing up to rounding (the EM monotonicity theorem).
    n_iter : int
        Number of EM iterations (M-steps) performed.
    converged : bool
        True if an iteration gained less than ``tol * N`` within ``max_iter``.
    """

    theta: GMM
    log_likelihoods: np.ndarray
    n_iter: int
    converged: bool


def initial_theta(y, n_components):
    """The deterministic start used by ``em(y, K)``.

    Equal weights 1/K, means at the (k + 1/2)/K quantiles of the data
    (k = 0..K-1, so the components start spread over the data in order), and
    every variance equal to the data's variance.

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Observations.
    n_components : int
        K, with 1 <= K <= N.

    Returns
    -------
    GMM
    """
    y = as_observations(y)
    k = check_n_components(n_components, y.size)
    variance = y.var()
    if not variance > 0:
        raise ValueError(
            "all observations are equal (variance 0); a Gaussian mixture needs "
            "data with some spread."
        )
    means = np.quantile(y, (np.arange(k) + 0.5) / k)
    return GMM(np.full(k, 1.0 / k), means, np.full(k, variance))


def check_n_components(k, n):
    """Validate K, the number of components: an int with 1 <= K <= N."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(
            f"the number of components must be an int, got {type(k).__name__}."
        )
    if not 1 <= k <= n:
        raise ValueError(
            f"the number of components K must satisfy 1 <= K <= N = {n}; got {k}."
        )
    return int(k)


class Statistics(NamedTuple):
    """The E-step's sufficient statistics of a set of points, at theta.

    Centred at theta's means mu_k, so that they keep their precision for data
    far from the origin, and mergeable: the statistics of two disjoint sets
    combine exactly (:func:`merge_statistics`), so they can be computed block
    by block, chunk by chunk, or on different machines.

    Attributes
    ----------
    log_lik : float
        sum_j log P(y_j | theta) over the set's points.
    nk : ndarray, shape (K,)
        n_k = sum_j gamma_jk.
    shift : ndarray, shape (K,)
        sum_j gamma_jk (y_j - mu_k) / n_k = mu-hat_k - mu_k (0 where n_k = 0).
    m2 : ndarray, shape (K,)
        sum_j gamma_jk (y_j - mu-hat_k)^2, so that sigma-hat_k^2 = m2 / n_k.
    """

    log_lik: float
    nk: np.ndarray
    shift: np.ndarray
    m2: np.ndarray


def merge_statistics(a, b):
    """The statistics of the union of two disjoint sets of points.

    Chan, Golub and LeVeque's pairwise update: with n = n_a + n_b and
    delta = shift_b - shift_a,

        shift = shift_a + delta n_b / n,
        m2 = m2_a + m2_b + delta^2 n_a n_b / n.

    Every term of m2 is >= 0, so no cancellation, even when a mean moves far
    relative to its spread. Exact in exact arithmetic, and commutative and
    associative there (notebooks/90-em-at-scale.ipynb proves it), so any tree
    of merges gives the same totals up to rounding.

    Parameters
    ----------
    a, b : Statistics
        Of the same theta, over disjoint sets of points.

    Returns
    -------
    Statistics
    """
    nk = a.nk + b.nk
    frac = divide_where_mass(b.nk, nk)  # n_b / n, 0 where neither has mass
    delta = b.shift - a.shift
    return Statistics(
        a.log_lik + b.log_lik,
        nk,
        a.shift + delta * frac,
        a.m2 + (b.m2 + delta * delta * a.nk * frac),
    )


def chunk_statistics(y, theta, offset=0):
    """The E-step at theta over the points ``y``, fused with the M-step's moments.

    One pass in cache-sized blocks: each block's responsibilities gamma_jk,
    log-likelihood (the log-sum-exp normalisers, free by-products of the
    E-step) and weighted moments, merged into the running totals by
    :func:`merge_statistics`. No (N, K) array is formed.

    Parameters
    ----------
    y : ndarray, shape (n,)
        Validated observations (float64), n >= 1.
    theta : GMM
    offset : int, default 0
        Index of ``y[0]`` in the whole data set, for error messages.

    Returns
    -------
    Statistics

    Raises
    ------
    ValueError
        If a point has density zero under every component (message gives its
        index, counting from ``offset``).
    """
    mu = theta.means[:, None]
    # 1 / sqrt(2 sigma_k^2), as two square roots so sigma^2 near 1e308 cannot
    # overflow.
    inv_sqrt_2var = (1.0 / (np.sqrt(2.0) * np.sqrt(theta.variances)))[:, None]
    log_norm = log_normalizers(theta)[:, None]
    k = theta.n_components
    total = Statistics(0.0, np.zeros(k), np.zeros(k), np.zeros(k))
    # (K, block) layout: reductions over components run across rows, which
    # numpy vectorises; reductions over points run along contiguous rows.
    dev = np.empty((k, min(_BLOCK, y.size)))
    work = np.empty_like(dev)
    for start in range(0, y.size, _BLOCK):
        yb = y[start : start + _BLOCK]
        d, w = dev[:, : yb.size], work[:, : yb.size]
        # inf in d or w means a density of 0, which log space handles.
        with np.errstate(over="ignore"):
            np.subtract(yb, mu, out=d)  # y_j - mu_k
            np.multiply(d, inv_sqrt_2var, out=w)
            np.square(w, out=w)
        np.subtract(log_norm, w, out=w)  # log alpha_k + log phi(y_j | theta_k)
        peak = w.max(axis=0)
        check_finite_rows(peak, offset + start)
        w -= peak
        np.exp(w, out=w)
        density = w.sum(axis=0)  # sum_k alpha_k phi(y_j | theta_k) / exp(peak_j)
        log_lik = peak.sum() + np.log(density).sum()
        w /= density  # gamma_jk
        nb, shift_b, var_b = weighted_moments(w, d)
        total = merge_statistics(
            total, Statistics(float(log_lik), nb, shift_b, nb * var_b)
        )
    return total


def _m_step_from_statistics(theta, stats):
    """theta^(i+1) from the statistics at theta^(i) (the formulas of ``m_step``)."""
    means = theta.means + stats.shift
    variances = divide_where_mass(stats.m2, stats.nk)
    check_components(stats.nk, means, variances)
    return GMM(stats.nk / stats.nk.sum(), means, variances)


def em(y, init, *, tol=1e-10, max_iter=1000):
    """Fit a 1-D Gaussian mixture by expectation-maximisation.

    Parameters
    ----------
    y : array_like or dask.array.Array, shape (N,) or (N, 1)
        Observations. A Dask array is fitted chunk by chunk with Dask's active
        scheduler (threads by default, a ``distributed.Client`` when one is
        set): each chunk yields its :class:`Statistics` and only those cross
        between workers; the data are never gathered in one place. The result
        equals the in-memory fit up to the order of floating-point summation.
    init : GMM or int
        The start theta^(0), or a number of components K, in which case the
        start is :func:`initial_theta` ``(y, K)``. A Dask array needs a GMM:
        exact quantiles would need the whole array in memory (fit a sample
        with ``initial_theta`` for a start).
    tol : float, default 1e-10
        Stop when an iteration raises the log-likelihood by less than
        ``tol * N`` (a per-point gain below tol). With ``tol=0`` exactly
        ``max_iter`` iterations run.
    max_iter : int, default 1000
        Maximum number of iterations (>= 1).

    Returns
    -------
    EMResult

    Raises
    ------
    ValueError
        On bad input (for a Dask array: with the global index of the first
        bad point), or when a component collapses onto a point or empties.

    Examples
    --------
    >>> import emlib
    >>> fit = emlib.em([-2.1, -1.9, -2.0, 3.0, 3.2, 2.8], 2)
    >>> print(fit.converged, fit.theta)
    True GMM(weights=[0.5, 0.5], means=[-2, 3], variances=[0.00666667, 0.0266667])
    >>> print(f"log-likelihood {fit.log_likelihoods[-1]:.4f}")
    log-likelihood 0.2800
    """
    if _is_dask_array(y):
        from emlib import _dask  # Dask is optional: imported only when used

        y, statistics = _dask.prepare(y, init)
    else:
        y = as_observations(y)
        if isinstance(init, int | np.integer) and not isinstance(init, bool):
            init = initial_theta(y, init)
        statistics = chunk_statistics
    if not isinstance(init, GMM):
        raise TypeError(
            "init must be an emlib.GMM start or a number of components K (int), "
            f"got {type(init).__name__}."
        )
    check_n_components(init.n_components, y.size)
    check_stopping_rule(tol, max_iter)

    theta = init
    stats = statistics(y, theta)
    log_likelihoods = [stats.log_lik]
    converged = False
    for _ in range(max_iter):
        theta = _m_step_from_statistics(theta, stats)
        stats = statistics(y, theta)
        log_likelihoods.append(stats.log_lik)
        if tol > 0 and log_likelihoods[-1] - log_likelihoods[-2] < tol * y.size:
            converged = True
            break
    return EMResult(
        theta, np.array(log_likelihoods), len(log_likelihoods) - 1, converged
    )


def _is_dask_array(y):
    """True if ``y`` is a dask.array.Array (without importing Dask)."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(y, dask_array.Array)
