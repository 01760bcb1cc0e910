"""The 1-D mixture's E-pass, fused with its M-step's moments and blocked.

One pass over the data at theta^(i) computes, block by block, the E-step's
responsibilities gamma_jk, the log-likelihood log P(Y | theta^(i)) (the
log-sum-exp normalisers, free by-products of the E-step) and the weighted
moments the M-step needs. No (N, K) array is ever formed: each block's
temporaries fit in cache, which is where the speed comes from. The result
equals alternating ``e_step`` and ``m_step`` up to the order of floating-point
summation (tests/test_em.py checks it).

The moments are sufficient statistics that merge exactly
(:func:`merge_statistics`), so the same per-chunk pass serves the in-memory
fit (``emlib.fit``) and data held as a Dask array, chunk by chunk on any
scheduler (``emlib._dask``); both import it from here.
"""

from typing import NamedTuple

import numpy as np

from emlib._numerics import check_finite_rows, divide_where_mass, weighted_moments
from emlib.gmm import GMM
from emlib.model import check_components, log_normalizers

# Rows per block. Large enough that each numpy call works for tens of
# microseconds or more against about a microsecond of Python between calls:
# numpy releases the GIL inside its loops, so threads reducing different
# chunks (Dask's threaded scheduler) then run in parallel. With 8192 rows two
# threads ran no faster than one (measured; the GIL changed hands too often),
# with 65536 they ran 1.7-2x faster, at the same single-thread speed. The two
# (K, _BLOCK) float64 temporaries take 2 x 8 x K x 65536 bytes (5 MB at K = 5).
_BLOCK = 65536


class Statistics(NamedTuple):
    """The E-step's sufficient statistics of a set of points, at theta.

    Centred at theta's means mu_k, so that they keep their precision for data
    far from the origin, and mergeable: the statistics of two disjoint sets
    combine exactly (:func:`merge_statistics`), so they can be computed block
    by block, chunk by chunk, or on different machines.

    Attributes
    ----------
    log_lik : float
        sum_j log P(y_j | theta) over the set's points (sum_j w_j log P with
        sample weights w_j).
    nk : ndarray, shape (K,)
        n_k = sum_j gamma_jk (sum_j w_j gamma_jk with sample weights; every
        gamma_jk below is then w_j gamma_jk).
    shift : ndarray, shape (K,)
        sum_j gamma_jk (y_j - mu_k) / n_k = mu-hat_k - mu_k (0 where n_k = 0).
    m2 : ndarray, shape (K,)
        sum_j gamma_jk (y_j - mu-hat_k)^2, so that sigma-hat_k^2 = m2 / n_k.
    """

    log_lik: float
    nk: np.ndarray
    shift: np.ndarray
    m2: np.ndarray


def merge_statistics(a: Statistics, b: Statistics) -> Statistics:
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


def chunk_statistics(
    y: np.ndarray,
    theta: GMM,
    offset: int = 0,
    sample_weight: np.ndarray | None = None,
) -> Statistics:
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
    sample_weight : ndarray, shape (n,), optional
        Validated weights w_j: each point's log-likelihood and
        responsibilities count w_j times (default: once).

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
        w /= density  # gamma_jk
        if sample_weight is None:
            log_lik = peak.sum() + np.log(density).sum()
        else:
            wb = sample_weight[start : start + _BLOCK]
            log_lik = wb @ (peak + np.log(density))  # sum_j w_j log P(y_j)
            w *= wb  # w_j gamma_jk
        nb, shift_b, var_b = weighted_moments(w, d)
        total = merge_statistics(
            total, Statistics(float(log_lik), nb, shift_b, nb * var_b)
        )
    return total


def m_step_from_statistics(theta, stats):
    """theta^(i+1) from the statistics at theta^(i) (the formulas of ``m_step``)."""
    means = theta.means + stats.shift
    variances = divide_where_mass(stats.m2, stats.nk)
    check_components(stats.nk, means, variances)
    return GMM(stats.nk / stats.nk.sum(), means, variances)
