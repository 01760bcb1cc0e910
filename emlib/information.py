"""The observed information matrix of a 1-D Gaussian mixture, in closed form.

The parameter vector is v = (alpha_1..alpha_{K-1}, mu_1..mu_K,
sigma_1^2..sigma_K^2), with alpha_K = 1 - (alpha_1 + ... + alpha_{K-1})
eliminated, so that v ranges over an open set and log P(Y | theta) has an
ordinary Hessian in it (derived in notebooks/45-convergence.ipynb).
"""

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import as_observations
from emlib.gmm import GMM
from emlib.model import check_theta, e_step


def _weighted_sums(gamma, values):
    """sum_j gamma_jk values_jk for each k, with 0 * inf = 0 (a point k ignores)."""
    terms = np.zeros_like(gamma)
    np.multiply(gamma, values, out=terms, where=gamma > 0)
    return terms.sum(axis=0)


def observed_information(y: ArrayLike, theta: GMM) -> np.ndarray:
    """Observed information I_obs = -d^2 log P(Y | theta) / dv dv^T at theta.

    The parameters are v = (alpha_1, ..., alpha_{K-1}, mu_1, ..., mu_K,
    sigma_1^2, ..., sigma_K^2), in this order, with alpha_K = 1 - (alpha_1 +
    ... + alpha_{K-1}) eliminated (the order of ``embook.params.to_vector``).
    At a maximum of the log-likelihood, such as the end of :func:`em`, the
    inverse of I_obs estimates the covariance of the maximum-likelihood
    estimate, so the standard errors of v are
    ``np.sqrt(np.diag(np.linalg.inv(observed_information(y, theta))))``; the
    standard error of alpha_K equals that of alpha_1 + ... + alpha_{K-1}.
    Elsewhere I_obs need not be positive definite.

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Observations.
    theta : GMM
        Mixture parameters, every weight alpha_k > 0.

    Returns
    -------
    ndarray, shape (3K - 1, 3K - 1)
        Symmetric; (2, 2) for K = 1 (mu_1 and sigma_1^2 only).

    Raises
    ------
    ValueError
        On bad input, if a weight is 0 (theta then lies on the boundary of
        the simplex, where the log-likelihood has no two-sided derivatives in
        alpha), or if the information overflows float64.

    Notes
    -----
    Louis' (1982) formula, one observation at a time: with g_jk the gradient
    in v of the complete-data term log alpha_k + log phi(y_j | mu_k,
    sigma_k^2), h_jk its Hessian, and gamma_jk the responsibilities,

    .. math::

        I_{\\mathrm{obs}} = \\underbrace{-\\sum_{j,k} \\gamma_{jk} h_{jk}}_{I_c}
        \\; - \\; \\underbrace{\\sum_j \\Big(\\sum_k \\gamma_{jk} g_{jk}
        g_{jk}^\\top - s_j s_j^\\top\\Big)}_{I_m},
        \\qquad s_j = \\sum_k \\gamma_{jk} g_{jk},

    the complete information minus the missing information (the posterior
    covariance of the complete-data score). With u_jk = (y_j - mu_k) /
    sigma_k^2, the nonzero entries of g_jk are 1/alpha_k in alpha_k (k < K)
    or -1/alpha_K in every alpha (k = K), u_jk in mu_k and (u_jk^2 -
    1/sigma_k^2)/2 in sigma_k^2. The responsibilities come from log space;
    only the (N, 3K - 1) matrix of scores s_j and (N, K) arrays are formed.
    """
    y = as_observations(y)
    check_theta(theta)
    alpha, mu, var = theta.weights, theta.means, theta.variances
    if np.any(alpha <= 0):
        k = int(np.argmin(alpha))
        raise ValueError(
            f"observed_information needs every weight alpha_k > 0; component {k} "
            "has weight 0, so theta lies on the boundary of the simplex where the "
            "log-likelihood has no two-sided derivatives in alpha. Drop that "
            "component and compute it for the others."
        )
    K = theta.n_components
    gamma = e_step(y, theta)  # normalised from log space
    # A narrow component far from a point may give u^2 = inf where gamma = 0;
    # the products below skip those entries (0 * inf counts as 0).
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        u = (y[:, None] - mu) / var
        w = 0.5 * (u * u - 1.0 / var)
        # Per-point scores s_j in v, shape (N, 3K - 1).
        scores = np.concatenate(
            [
                gamma[:, :-1] / alpha[:-1] - (gamma[:, -1] / alpha[-1])[:, None],
                np.where(gamma > 0, gamma * u, 0.0),
                np.where(gamma > 0, gamma * w, 0.0),
            ],
            axis=1,
        )
        # B = sum_jk gamma_jk (h_jk + g_jk g_jk^T), whose alpha-alpha block is
        # 0 (alpha_k is linear in v); blocks per component k.
        mean_u, mean_w = _weighted_sums(gamma, u), _weighted_sums(gamma, w)
        b_mu_mu = _weighted_sums(gamma, u * u - 1.0 / var)
        b_mu_var = _weighted_sums(gamma, u * w - u / var)
        b_var_var = _weighted_sums(gamma, w * w + 0.5 / var**2 - u * u / var)
        # sum_j s_j s_j^T, by BLAS.
        info = scores.T @ scores
        # The alpha-gradient of log alpha_k: e_k / alpha_k, or -1/alpha_K for k = K.
        c = np.zeros((K - 1, K))
        c[np.arange(K - 1), np.arange(K - 1)] = 1.0 / alpha[:-1]
        c[:, -1] = -1.0 / alpha[-1]
        a, m, s = slice(0, K - 1), slice(K - 1, 2 * K - 1), slice(2 * K - 1, None)
        for rows, cols, block in [
            (a, m, c * mean_u),
            (a, s, c * mean_w),
            (m, m, np.diag(b_mu_mu)),
            (m, s, np.diag(b_mu_var)),
            (s, s, np.diag(b_var_var)),
        ]:
            info[rows, cols] -= block
            if rows != cols:
                info[cols, rows] -= block.T
    if not np.all(np.isfinite(info)):
        raise ValueError(
            "the observed information overflows float64 at this theta (a "
            "component far narrower than its distance to the data it explains); "
            "evaluate it nearer a fit."
        )
    return info
