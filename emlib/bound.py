"""The quantities of the EM lower bound for a Gaussian mixture.

For any q(Z) = prod_j q_j(z_j), a row-stochastic (N, K) matrix,

    log P(Y | theta) = L(q, theta) + KL(q || P(Z | Y, theta)),
    L(q, theta) = sum_jk q_jk log P(y_j, z_j = k | theta) + H(q),

and at q = P(Z | Y, theta^(i)) the first term of L is Q(theta, theta^(i))
(derived in notebooks/10-em-lower-bound.ipynb).
"""

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import as_observations, as_real_array, as_row_stochastic
from emlib.gmm import GMM
from emlib.model import check_theta, log_joint


def _weighted_sum(weights, log_values):
    """sum of weights * log_values with the convention 0 * log 0 = 0."""
    terms = np.zeros_like(weights)
    np.multiply(weights, log_values, out=terms, where=weights > 0)
    return float(terms.sum())


def _as_distributions(q, name):
    """A distribution (K,) or one per row (N, K), as an (N, K) array."""
    arr = as_real_array(q, name)
    return as_row_stochastic(arr[None, :] if arr.ndim == 1 else arr, None, name)


def q_function(y: ArrayLike, gamma: ArrayLike, theta: GMM) -> float:
    """Q(theta, theta^(i)) = sum_jk gamma_jk [log alpha_k + log phi(y_j | theta_k)].

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Observations.
    gamma : array_like, shape (N, K)
        Responsibilities of the E-step at theta^(i).
    theta : GMM
        The parameters theta at which Q is evaluated.

    Returns
    -------
    float
        ``-inf`` if some gamma_jk > 0 falls where alpha_k phi(y_j | theta_k)
        is 0 in float64 (alpha_k = 0, or a narrow component far from y_j).
    """
    y = as_observations(y)
    check_theta(theta)
    gamma = as_row_stochastic(gamma, (y.size, theta.n_components), "gamma")
    return _weighted_sum(gamma, log_joint(y, theta))


def entropy(q: ArrayLike) -> float:
    """H(q) = -sum q log q, with 0 log 0 = 0.

    Parameters
    ----------
    q : array_like, shape (K,) or (N, K)
        One distribution, or one per row; for (N, K) the result is the
        entropy of the product distribution, the sum of the row entropies.

    Returns
    -------
    float
    """
    q = _as_distributions(q, "q")
    with np.errstate(divide="ignore"):
        # 0.0 - x, not -x: a one-hot q gives +0.0 rather than -0.0.
        return 0.0 - _weighted_sum(q, np.log(q))


def kl_divergence(q: ArrayLike, p: ArrayLike) -> float:
    """KL(q || p) = sum q log(q / p), with 0 log(0 / p) = 0.

    Parameters
    ----------
    q, p : array_like, shape (K,) or (N, K)
        Distributions of the same shape (one per row for (N, K)).

    Returns
    -------
    float
        ``inf`` where q puts mass on a point p gives none.
    """
    q = _as_distributions(q, "q")
    p = _as_distributions(p, "p")
    if p.shape != q.shape:
        raise ValueError(
            f"q and p must have the same shape; got {q.shape} and {p.shape}."
        )
    # log q - log p is -inf - (-inf) = nan only where q = 0, which is masked.
    with np.errstate(divide="ignore", invalid="ignore"):
        return _weighted_sum(q, np.log(q) - np.log(p))


def elbo(y: ArrayLike, q: ArrayLike, theta: GMM) -> float:
    """The evidence lower bound (ELBO) L(q, theta).

    L(q, theta) = sum_jk q_jk log P(y_j, z_j = k | theta) + H(q).

    For every row-stochastic q, ``log_likelihood(y, theta) == elbo(y, q,
    theta) + kl_divergence(q, e_step(y, theta))``.

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Observations.
    q : array_like, shape (N, K)
        A distribution over the K components for each observation.
    theta : GMM
        Mixture parameters.

    Returns
    -------
    float
    """
    y = as_observations(y)
    check_theta(theta)
    q = as_row_stochastic(q, (y.size, theta.n_components), "q")
    return _weighted_sum(q, log_joint(y, theta)) + entropy(q)
