"""Numerics shared by the linear-Gaussian latent models: PPCA and the linear VAE.

Both have the decoder x = W z + mean + noise, z ~ N(0, I_q), noise ~
N(0, sigma^2 I_D), and both see the data only through N, the sample mean and
the sample covariance S; ``emlib.ppca`` and ``emlib.linear_vae`` import
these from here.
"""

import numpy as np

from emlib._checks import as_real_array, check_int
from emlib._numerics import LOG_2PI


def as_data(X, n_features=None):
    """Validate X: shape (N, D), finite, N >= 1; return a float64 copy.

    ``n_features``, if given, is the D that X must have.
    """
    X = as_real_array(X, "X")
    if X.ndim != 2:
        hint = " (pass one point per row, X.reshape(-1, 1) for D = 1)"
        raise ValueError(f"X must be 2-D, shape (N, D){hint}; got shape {X.shape}.")
    if X.shape[0] == 0:
        raise ValueError("X is empty; PPCA needs at least one observation.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"X has D = {X.shape[1]} columns but theta has D = {n_features}."
        )
    return X


def check_n_latent(q, d, name="n_latent"):
    """Validate q, the latent dimension: an int with 1 <= q < D.

    ``name`` is the argument's name, for the messages.
    """
    return check_int(
        q,
        name,
        1,
        d - 1,
        rule=f"satisfy 1 <= q < D = {d} (with q = D the noise variance is not "
        "identifiable)",
    )


def sample_moments(X):
    """Sample mean (D,) and covariance S (D, D), normalised by N, from centred data."""
    mean = X.mean(axis=0)
    centred = X - mean
    return mean, centred.T @ centred / X.shape[0]


def latent_precision(W, noise_variance):
    """M = W^T W + sigma^2 I_q, shape (q, q).

    sigma^2 M^-1 is the posterior covariance of z given x.
    """
    m = W.T @ W
    m.flat[:: m.shape[0] + 1] += noise_variance  # the diagonal
    return m


def cholesky(cov, what):
    """The lower Cholesky factor of ``cov``, or a ValueError naming ``what``."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"{what} is not positive definite in float64; rescale the data."
        ) from None


def log_likelihood_from_moments(n, s, W, noise_variance):
    """log P(X | theta) when theta's mean is the sample mean:
    -(N/2) (D log 2 pi + log det C + tr(C^-1 S)), C = W W^T + sigma^2 I."""
    d = s.shape[0]
    cov = W @ W.T
    cov.flat[:: d + 1] += noise_variance  # the diagonal
    chol = cholesky(cov, "W W^T + sigma^2 I")
    half = np.linalg.solve(chol, s)  # L^-1 S, so tr(C^-1 S) = tr(L^-T L^-1 S)
    trace = np.linalg.solve(chol.T, half).trace()
    log_det = 2.0 * np.log(chol.diagonal()).sum()
    return float(-0.5 * n * (d * LOG_2PI + log_det + trace))


def axis_start(s, q):
    """The deterministic start's W (D, q) and sigma^2 from the sample covariance.

    The q columns of W point along the q coordinate axes of largest sample
    variance, each scaled to that axis's standard deviation; sigma^2 is the
    average variance per coordinate, tr(S) / D.
    """
    variances = np.diag(s)
    if not variances.max() > 0:
        raise ValueError(
            "all observations are equal (sample covariance 0); PPCA needs data "
            "with some spread."
        )
    axes = np.argsort(-variances, kind="stable")[:q]
    W = np.zeros((s.shape[0], q))
    W[axes, np.arange(q)] = np.sqrt(variances[axes])
    return W, variances.mean()
