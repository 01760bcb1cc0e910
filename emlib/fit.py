"""The EM iteration, fused and blocked for speed.

One pass over the data at theta^(i) computes, block by block, the E-step's
responsibilities gamma_jk, the log-likelihood log P(Y | theta^(i)) (the
log-sum-exp normalisers, free by-products of the E-step) and the weighted
moments the M-step needs. No (N, K) array is ever formed: each block's
temporaries fit in cache, which is where the speed comes from. The result
equals alternating ``e_step`` and ``m_step`` up to the order of floating-point
summation (tests/test_em.py checks it).
"""

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

# Rows per block: two (K, _BLOCK) float64 temporaries stay within L2 cache
# for K up to about 10.
_BLOCK = 8192


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
    k = _check_n_components(n_components, y.size)
    variance = y.var()
    if not variance > 0:
        raise ValueError(
            "all observations are equal (variance 0); a Gaussian mixture needs "
            "data with some spread."
        )
    means = np.quantile(y, (np.arange(k) + 0.5) / k)
    return GMM(np.full(k, 1.0 / k), means, np.full(k, variance))


def _check_n_components(k, n):
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(
            f"the number of components must be an int, got {type(k).__name__}."
        )
    if not 1 <= k <= n:
        raise ValueError(
            f"the number of components K must satisfy 1 <= K <= N = {n}; got {k}."
        )
    return int(k)


def _e_pass(y, theta):
    """E-step at theta, fused with the weighted moments the M-step needs.

    Parameters
    ----------
    y : ndarray, shape (N,)
    theta : GMM

    Returns
    -------
    log_lik : float
        log P(Y | theta).
    nk : ndarray, shape (K,)
        n_k = sum_j gamma_jk.
    shift : ndarray, shape (K,)
        sum_j gamma_jk (y_j - mu_k) / n_k = mu-hat_k - mu_k, the move of each mean.
    variances : ndarray, shape (K,)
        sum_j gamma_jk (y_j - mu-hat_k)^2 / n_k, the M-step's sigma-hat_k^2.
    """
    mu = theta.means[:, None]
    # 1 / sqrt(2 sigma_k^2), as two square roots so sigma^2 near 1e308 cannot
    # overflow.
    inv_sqrt_2var = (1.0 / (np.sqrt(2.0) * np.sqrt(theta.variances)))[:, None]
    log_norm = log_normalizers(theta)[:, None]
    k = theta.n_components
    # Running weighted count, mean (of y - mu_k) and sum of squared deviations
    # about that mean, merged block by block (Chan, Golub and LeVeque's
    # pairwise update): every term is >= 0, so no cancellation even when a
    # mean moves far relative to its new spread.
    nk, shift, m2 = np.zeros(k), np.zeros(k), np.zeros(k)
    log_lik = 0.0
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
        check_finite_rows(peak, start)
        w -= peak
        np.exp(w, out=w)
        total = w.sum(axis=0)  # sum_k alpha_k phi(y_j | theta_k) / exp(peak_j)
        log_lik += peak.sum() + np.log(total).sum()
        w /= total  # gamma_jk
        nb, mean_b, var_b = weighted_moments(w, d)
        # Merge: M2 = M2_a + M2_b + delta^2 n_a n_b / (n_a + n_b).
        merged = nk + nb
        frac = divide_where_mass(nb, merged)
        delta = mean_b - shift
        shift += delta * frac
        m2 += nb * var_b + delta * delta * nk * frac
        nk = merged
    variances = divide_where_mass(m2, nk)
    return float(log_lik), nk, shift, variances


def _m_step_from_moments(theta, nk, shift, variances):
    """theta^(i+1) from the moments of :func:`_e_pass` (the formulas of ``m_step``)."""
    means = theta.means + shift
    check_components(nk, means, variances)
    return GMM(nk / nk.sum(), means, variances)


def em(y, init, *, tol=1e-10, max_iter=1000):
    """Fit a 1-D Gaussian mixture by expectation-maximisation.

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Observations.
    init : GMM or int
        The start theta^(0), or a number of components K, in which case the
        start is :func:`initial_theta` ``(y, K)``.
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
        On bad input, or when a component collapses onto a point or empties.
    """
    y = as_observations(y)
    if isinstance(init, GMM):
        _check_n_components(init.n_components, y.size)
        theta = init
    elif isinstance(init, int | np.integer) and not isinstance(init, bool):
        theta = initial_theta(y, init)
    else:
        raise TypeError(
            "init must be an emlib.GMM start or a number of components K (int), "
            f"got {type(init).__name__}."
        )
    check_stopping_rule(tol, max_iter)

    log_lik, *moments = _e_pass(y, theta)
    log_likelihoods = [log_lik]
    converged = False
    for _ in range(max_iter):
        theta = _m_step_from_moments(theta, *moments)
        log_lik, *moments = _e_pass(y, theta)
        log_likelihoods.append(log_lik)
        if tol > 0 and log_likelihoods[-1] - log_likelihoods[-2] < tol * y.size:
            converged = True
            break
    return EMResult(
        theta, np.array(log_likelihoods), len(log_likelihoods) - 1, converged
    )
