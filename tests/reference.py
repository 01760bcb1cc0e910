"""Naive reference implementations of emlib's formulas, for the tests.

Written independently of emlib, straight from the definitions: one scalar at a
time in Python loops, densities from ``scipy.stats.norm`` (one call evaluates
the (N, K) table of them: the same formula elementwise, without SciPy's
per-call overhead of about 0.1 ms for each of N K scalars), logarithms from
``math``, sums by ``math.fsum`` (correctly rounded). Slow and only fit for
small, well-scaled data (no log-space tricks), which is what the tests feed
them. Parameters are plain sequences ``weights, means, variances``, so nothing
here depends on ``emlib.GMM``.
"""

import math
import statistics

import numpy as np
from scipy.stats import norm


def _table(function, y, means, variances):
    """[[function(y_j | mu_k, sigma_k^2) for k] for j] as Python floats.

    ``function`` is ``norm.pdf`` or ``norm.logpdf``, evaluated once on the
    (N, K) grid of y_j against (mu_k, sigma_k = sqrt(sigma_k^2)).
    """
    means = np.asarray(means, dtype=float)
    if means.ndim != 1 or len(variances) != means.size:
        raise ValueError("means and variances must be sequences of one length K")
    y = np.asarray(y, dtype=float).reshape(-1, 1)
    scale = np.sqrt(np.asarray(variances, dtype=float))
    return function(y, loc=means, scale=scale).tolist()


def log_likelihood(y, weights, means, variances):
    """sum_j log sum_k alpha_k phi(y_j | mu_k, sigma_k^2)."""
    return math.fsum(
        math.log(math.fsum(a * d for a, d in zip(weights, row, strict=True)))
        for row in _table(norm.pdf, y, means, variances)
    )


def e_step(y, weights, means, variances):
    """gamma_jk = alpha_k phi_k(y_j) / sum_l alpha_l phi_l(y_j), as an (N, K) array."""
    rows = []
    for row in _table(norm.pdf, y, means, variances):
        joint = [a * d for a, d in zip(weights, row, strict=True)]
        total = math.fsum(joint)
        rows.append([p / total for p in joint])
    return np.array(rows)


def m_step(y, gamma):
    """(alpha, mu, sigma^2) maximising Q, from the textbook formulas."""
    y = [float(v) for v in y]
    n, k = len(y), len(gamma[0])
    weights, means, variances = [], [], []
    for c in range(k):
        col = [float(gamma[j][c]) for j in range(n)]
        nk = math.fsum(col)
        mu = math.fsum(g * yj for g, yj in zip(col, y, strict=True)) / nk
        var = math.fsum(g * (yj - mu) ** 2 for g, yj in zip(col, y, strict=True)) / nk
        weights.append(nk / n)
        means.append(mu)
        variances.append(var)
    return np.array(weights), np.array(means), np.array(variances)


def _xlogy(x, y):
    """x log y with 0 log y = 0 (for every y, including 0)."""
    return 0.0 if x == 0 else x * math.log(y)


def q_function(y, gamma, weights, means, variances):
    """sum_jk gamma_jk [log alpha_k + log phi(y_j | mu_k, sigma_k^2)]."""
    log_densities = _table(norm.logpdf, y, means, variances)
    return math.fsum(
        0.0 if gamma[j][k] == 0 else gamma[j][k] * (math.log(a) + log_density)
        for j, row in enumerate(log_densities)
        for k, (a, log_density) in enumerate(zip(weights, row, strict=True))
    )


def entropy(q):
    """-sum q log q over every entry, with 0 log 0 = 0."""
    return -math.fsum(_xlogy(x, x) for x in np.ravel(q))


def kl_divergence(q, p):
    """sum q log(q / p) over every entry, with 0 log(0 / p) = 0."""
    terms = []
    for qi, pi in zip(np.ravel(q), np.ravel(p), strict=True):
        if qi == 0:
            continue
        if pi == 0:
            return math.inf
        terms.append(qi * math.log(qi / pi))
    return math.fsum(terms)


def elbo(y, q, weights, means, variances):
    """sum_jk q_jk log P(y_j, z_j = k | theta) + H(q)."""
    return q_function(y, q, weights, means, variances) + entropy(q)


def quantile(y, p):
    """The linearly interpolated sample quantile (Hyndman and Fan's type 7).

    With the order statistics x_(0) <= ... <= x_(N-1) and h = (N - 1) p, the
    value x_(floor h) + (h - floor h) (x_(floor h + 1) - x_(floor h)).
    """
    x = sorted(float(v) for v in y)
    h = (len(x) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(x) - 1)
    return x[lo] + (h - lo) * (x[hi] - x[lo])


def initial_theta(y, k):
    """The documented start of ``em(y, K)``: 1/K, (k + 1/2)/K quantiles, var(y)."""
    y = [float(v) for v in y]
    variance = statistics.pvariance(y)  # exact rational arithmetic, then rounded
    return (
        np.full(k, 1.0 / k),
        np.array([quantile(y, (c + 0.5) / k) for c in range(k)]),
        np.full(k, variance),
    )
