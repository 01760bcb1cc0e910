"""A 1-D Gaussian mixture's parameters in the forms the notebooks need."""

import numpy as np

import emlib


def gmm_args(theta):
    """(alpha, mu, sigma) of an :class:`emlib.GMM`, each of shape (K,).

    sigma is the standard deviation, the symbol the derivations use.
    """
    return theta.weights, theta.means, np.sqrt(theta.variances)


def to_vector(theta):
    """The free parameters of ``theta`` as one vector of shape (3K - 1,).

    Order: alpha_1..alpha_{K-1}, mu_1..mu_K, sigma_1^2..sigma_K^2; alpha_K is
    left out because it equals 1 - (alpha_1 + ... + alpha_{K-1}).
    """
    return np.concatenate([theta.weights[:-1], theta.means, theta.variances])


def from_vector(v, n_components):
    """The :class:`emlib.GMM` whose :func:`to_vector` is ``v``.

    Parameters
    ----------
    v : array_like, shape (3K - 1,)
    n_components : int
        K.
    """
    v = np.asarray(v, dtype=float)
    k = n_components
    if v.shape != (3 * k - 1,):
        raise ValueError(
            f"a {k}-component vector has shape ({3 * k - 1},), got {v.shape}."
        )
    weights = np.append(v[: k - 1], 1.0 - v[: k - 1].sum())
    return emlib.GMM(weights, v[k - 1 : 2 * k - 1], v[2 * k - 1 :])
