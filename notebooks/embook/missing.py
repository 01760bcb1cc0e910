"""The observed-data likelihood of a Gaussian mixture, maximised by BFGS.

An independent route to the maximum likelihood estimate with missing values,
for checking ``emlib.multivariate.em``: the log-likelihood is written from its
definition (the marginal Gaussian of each row's observed coordinates, with
``numpy.linalg.slogdet`` and ``solve``; nothing from emlib), and SciPy's BFGS
maximises it over an unconstrained parametrisation: softmax logits for the
weights, the means as they are, and for each covariance a lower Cholesky
factor with a log diagonal (log variances for "diag" and "spherical"), so
every vector is a valid mixture.
"""

import numpy as np
from scipy.optimize import minimize


def observed_log_likelihood(X, weights, means, covariances):
    """sum_j log sum_k alpha_k N(x_j,o | mu_k,o, Sigma_k,oo), NaN = missing.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    weights : ndarray, shape (K,)
    means : ndarray, shape (K, D)
    covariances : ndarray, shape (K, D, D)
        Full matrices whatever the family.

    Returns
    -------
    float
        A row with no observed value contributes log 1 = 0.
    """
    return _grouped_log_likelihood(_by_pattern(X), weights, means, covariances)


def _by_pattern(X):
    """[(observed mask (D,), x_o of the rows with that mask (n_p, |o|))]."""
    observed = ~np.isnan(X)
    return [
        (mask, X[(observed == mask).all(axis=1)][:, mask])
        for mask in np.unique(observed, axis=0)
        if mask.any()
    ]


def _grouped_log_likelihood(groups, weights, means, covariances):
    """The sum of :func:`observed_log_likelihood` over patterns grouped once."""
    total = 0.0
    for mask, rows in groups:
        sub = covariances[:, mask][:, :, mask]  # Sigma_k,oo, (K, |o|, |o|)
        dev = rows[None] - means[:, None, mask]  # (K, n_p, |o|)
        solved = np.linalg.solve(sub, dev.transpose(0, 2, 1))  # Sigma_oo^-1 dev^T
        quad = np.einsum("kjd,kdj->kj", dev, solved)
        _, log_det = np.linalg.slogdet(sub)
        log_terms = np.log(weights)[:, None] - 0.5 * (
            mask.sum() * np.log(2 * np.pi) + log_det[:, None] + quad
        )
        total += np.logaddexp.reduce(log_terms, axis=0).sum()
    return float(total)


def _n_scales(covariance_type, k, d):
    """How many numbers parametrise the covariances of one family."""
    tri = d * (d + 1) // 2
    return {"full": k * tri, "tied": tri, "diag": k * d, "spherical": k}[
        covariance_type
    ]


def unpack(v, k, d, covariance_type):
    """(weights (K,), means (K, D), covariances (K, D, D)) from a vector."""
    logits = np.append(v[: k - 1], 0.0)
    weights = np.exp(logits - np.logaddexp.reduce(logits))
    means = v[k - 1 : k - 1 + k * d].reshape(k, d)
    scales = v[k - 1 + k * d :]
    if covariance_type in ("full", "tied"):
        tril = np.tril_indices(d)
        factors = np.zeros((len(scales) // len(tril[0]), d, d))
        factors[:, tril[0], tril[1]] = scales.reshape(len(factors), -1)
        diagonal = np.arange(d)
        factors[:, diagonal, diagonal] = np.exp(factors[:, diagonal, diagonal])
        covariances = factors @ factors.transpose(0, 2, 1)
        covariances = np.broadcast_to(covariances, (k, d, d))
    else:
        variances = np.exp(scales).reshape(k, -1) * np.ones((k, d))
        covariances = variances[:, :, None] * np.eye(d)
    return weights, means, covariances


def pack(weights, means, covariances, covariance_type):
    """The vector :func:`unpack` maps to these parameters (full matrices in)."""
    d = means.shape[1]
    logits = np.log(weights[:-1]) - np.log(weights[-1])
    if covariance_type in ("full", "tied"):
        factors = np.linalg.cholesky(
            covariances[:1] if covariance_type == "tied" else covariances
        )
        diagonal = np.arange(d)
        factors[:, diagonal, diagonal] = np.log(factors[:, diagonal, diagonal])
        tril = np.tril_indices(d)
        scales = factors[:, tril[0], tril[1]].ravel()
    else:
        variances = np.diagonal(covariances, axis1=1, axis2=2)
        scales = np.log(variances if covariance_type == "diag" else variances[:, 0])
        scales = scales.ravel()
    return np.concatenate([logits, means.ravel(), scales])


def bfgs_maximiser(X, weights, means, covariances, covariance_type, gtol=1e-9):
    """Maximise the observed-data log-likelihood by BFGS from the given start.

    Gradients by SciPy's central differences ("3-point") of the mean
    log-likelihood per row.

    Returns
    -------
    weights, means, covariances : ndarray
        The maximiser, covariances as full (K, D, D) matrices.
    log_lik : float
        The observed-data log-likelihood there.
    """
    k, d = means.shape
    n = X.shape[0]

    groups = _by_pattern(X)

    def objective(v):
        fitted = unpack(v, k, d, covariance_type)
        return -_grouped_log_likelihood(groups, *fitted) / n

    start = pack(weights, means, covariances, covariance_type)
    assert start.size == k - 1 + k * d + _n_scales(covariance_type, k, d)
    result = minimize(
        objective, start, method="BFGS", jac="3-point", options={"gtol": gtol}
    )
    fitted = unpack(result.x, k, d, covariance_type)
    return (*fitted, -result.fun * n)
