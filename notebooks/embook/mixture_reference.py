"""The 1-D Gaussian mixture computed without emlib: the notebooks' reference.

emlib is the library under test, so a check of it needs the same quantities
computed by other code. Here the log-density is written out from the
textbook formula, log phi = -(1/2) log(2 pi sigma^2) - (y - mu)^2 / (2
sigma^2) (checked against ``scipy.stats.norm.logpdf`` in the tests; SciPy's
stats module itself is not imported, as it costs a notebook over a second of
start-up), the sum over components is a log-sum-exp shifted by its maximum,
and the information matrices are numerical Hessians (central differences,
Richardson-extrapolated) of the log-likelihood and of Q written with them.
Nothing here calls emlib's numerics (a :class:`emlib.GMM` is only read as
three arrays).

Coordinates are those of :func:`embook.params.to_vector`: v = (alpha_1 ..
alpha_{K-1}, mu_1..mu_K, sigma_1^2..sigma_K^2), alpha_K = 1 - the others.
Checked against emlib, SciPy and closed forms in
``tests/test_embook_mixture_reference.py``.
"""

import numpy as np

from embook.params import to_vector


def log_joint(y, weights, means, variances):
    """log alpha_k + log phi(y_j | mu_k, sigma_k^2), each term written out.

    Parameters
    ----------
    y : array_like, shape (N,)
    weights, means, variances : array_like, shape (K, ...)
        Any trailing axes (shape ``...``) are a batch of parameter values.

    Returns
    -------
    ndarray, shape (N, K, ...)
    """
    y = np.asarray(y, dtype=float)
    means = np.asarray(means, dtype=float)
    y = y.reshape(y.shape + (1,) * means.ndim)  # (N, 1, ...) against (K, ...)
    log_phi = -0.5 * np.log(2 * np.pi * variances) - (y - means) ** 2 / (2 * variances)
    return log_phi + np.log(weights)


def _log_sum_exp(a):
    """log sum_k exp(a[:, k, ...]), shifted by the maximum over k; shape (N, ...).

    (``scipy.special.logsumexp`` computes the same, at several times the cost
    on the (N, K, M) arrays of the numerical Hessians.)
    """
    peak = a.max(axis=1)
    return peak + np.log(np.exp(a - peak[:, None]).sum(axis=1))


def _unpack(v, k):
    """(weights, means, variances), each (K, ...), from v of shape (3K - 1, ...)."""
    alpha = v[: k - 1]
    weights = np.concatenate([alpha, 1.0 - alpha.sum(axis=0, keepdims=True)])
    return weights, v[k - 1 : 2 * k - 1], v[2 * k - 1 :]


def log_likelihood(y, theta):
    """log P(Y | theta) = sum_j log sum_k alpha_k phi(y_j | theta_k), a float."""
    lj = log_joint(y, theta.weights, theta.means, theta.variances)
    return float(_log_sum_exp(lj).sum())


def responsibilities(y, theta):
    """gamma_jk = alpha_k phi(y_j | theta_k) / P(y_j | theta), shape (N, K)."""
    lj = log_joint(y, theta.weights, theta.means, theta.variances)
    return np.exp(lj - _log_sum_exp(lj)[:, None])


def complete_data_standard_errors(theta, n_points):
    """Standard errors of theta had every label been seen, in ``to_vector`` order.

    With n_k = alpha_k N points from component k: sqrt(alpha_k (1 - alpha_k) / N)
    for a weight, sigma_k / sqrt(n_k) for a mean, sigma_k^2 sqrt(2 / n_k) for
    a variance. At a fixed point of EM they are the square roots of the
    diagonal of I_c^-1 (see :func:`complete_information`).

    Returns
    -------
    ndarray, shape (3K - 1,)
    """
    alpha, var = theta.weights, theta.variances
    n_k = alpha * n_points
    return np.concatenate(
        [
            np.sqrt(alpha * (1 - alpha) / n_points)[:-1],
            np.sqrt(var / n_k),
            var * np.sqrt(2 / n_k),
        ]
    )


def central_hessian(f, v, scale, h):
    """Hessian of ``f`` at ``v`` by central differences, Richardson-extrapolated.

    Steps are ``h * scale[a]`` along coordinate a. Each entry is the
    four-point difference (f(++) - f(+-) - f(-+) + f(--)) / (4 h_a h_b),
    whose error is c h^2 + O(h^4); (4 H(h/2) - H(h)) / 3 cancels the h^2 term.

    Parameters
    ----------
    f : callable
        Maps points of shape (n, M), one per column, to values of shape (M,).
    v : ndarray, shape (n,)
    scale : ndarray, shape (n,)
        A natural unit of each coordinate (a standard error, say).
    h : float
        Step in those units.

    Returns
    -------
    ndarray, shape (n, n)
    """
    n = v.size
    signs = [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    pairs = [(a, b) for a in range(n) for b in range(a, n)]

    def four_point(step):
        e = np.eye(n) * (step * scale)
        points = [v + sa * e[a] + sb * e[b] for a, b in pairs for sa, sb in signs]
        pp, pm, mp, mm = f(np.array(points).T).reshape(len(pairs), 4).T
        hessian = np.empty((n, n))
        for (a, b), entry in zip(pairs, pp - pm - mp + mm, strict=True):
            hessian[a, b] = hessian[b, a] = entry / (4 * e[a, a] * e[b, b])
        return hessian

    return (4 * four_point(h / 2) - four_point(h)) / 3


def observed_information(y, theta, h=0.02):
    """I_obs = -d^2 log P(Y | theta) / dv dv^T, numerically, shape (3K - 1, 3K - 1).

    Steps ``h`` complete-data standard errors (:func:`complete_data_standard_errors`).
    """
    k = theta.n_components

    def log_lik(v):  # v: (3K - 1, M) -> (M,)
        return _log_sum_exp(log_joint(y, *_unpack(v, k))).sum(axis=0)

    scale = complete_data_standard_errors(theta, np.size(y))
    return -central_hessian(log_lik, to_vector(theta), scale, h)


def complete_information(y, theta, h=0.02):
    """I_c = -d^2 Q(theta', theta) / dv' dv'^T at theta' = theta, numerically.

    Q(theta', theta) = sum_jk gamma_jk(theta) log[alpha'_k phi(y_j | theta'_k)],
    the expected complete-data log-likelihood (its Hessian in theta' at theta
    is minus the conditional expected complete-data information).

    Returns
    -------
    ndarray, shape (3K - 1, 3K - 1)
    """
    k = theta.n_components
    gamma = responsibilities(y, theta)[:, :, None]

    def q_function(v):  # v: (3K - 1, M) -> (M,)
        return (gamma * log_joint(y, *_unpack(v, k))).sum(axis=(0, 1))

    scale = complete_data_standard_errors(theta, np.size(y))
    return -central_hessian(q_function, to_vector(theta), scale, h)
