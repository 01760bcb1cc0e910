"""The mixture density, the E-step and the M-step.

Notation (see notebooks/00-overview.ipynb): y_j observed data, theta =
(alpha_k, mu_k, sigma_k^2), gamma_jk the responsibilities, n_k = sum_j gamma_jk.
Densities stay in log space throughout, so no exp() can underflow to a row of
zeros.
"""

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import as_observations, as_responsibilities, as_sample_weight
from emlib._numerics import (
    EPS,
    LOG_2PI,
    TINY,
    check_finite_rows,
    log_sum_exp_rows,
    weighted_moments,
)
from emlib.gmm import GMM

# A component whose standard deviation is below this many units in the last
# place of its own mean has collapsed (see check_components).
_COLLAPSE_ULPS = 16


def check_theta(theta: object) -> None:
    """Raise ``TypeError`` unless ``theta`` is a :class:`GMM`."""
    if not isinstance(theta, GMM):
        raise TypeError(
            "theta must be an emlib.GMM(weights, means, variances), "
            f"got {type(theta).__name__}."
        )


def log_normalizers(theta: GMM) -> np.ndarray:
    """log alpha_k - (1/2) log(2 pi sigma_k^2), the y-free part of log P(y, k | theta).

    Returns
    -------
    ndarray, shape (K,)
        ``-inf`` where alpha_k = 0 (that component can never be drawn).
    """
    with np.errstate(divide="ignore"):
        log_weights = np.log(theta.weights)
    return log_weights - 0.5 * (LOG_2PI + np.log(theta.variances))


def log_joint(y: np.ndarray, theta: GMM) -> np.ndarray:
    """log P(y_j, z_j = k | theta) = log alpha_k + log phi(y_j | mu_k, sigma_k^2).

    Parameters
    ----------
    y : ndarray, shape (N,)
        Validated observations.
    theta : GMM
        K components.

    Returns
    -------
    ndarray, shape (N, K)
    """
    # log phi = -(1/2) log(2 pi sigma^2) - (y - mu)^2 / (2 sigma^2); the
    # square is taken of the difference, never expanded, so a point far from
    # a mean keeps its precision.
    # z * z may overflow to inf for a narrow component far from a point: the
    # log density is then -inf, which is right (the density underflows).
    with np.errstate(over="ignore"):
        z = (y[:, None] - theta.means) / (np.sqrt(2.0) * np.sqrt(theta.variances))
        return log_normalizers(theta) - z * z


def log_likelihood(
    y: ArrayLike, theta: GMM, sample_weight: ArrayLike | None = None
) -> float:
    """log P(Y | theta) = sum_j w_j log sum_k alpha_k phi(y_j | theta_k).

    A sum over the N points, not a mean; w_j = 1 without ``sample_weight``.

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Observations.
    theta : GMM
        Mixture parameters.
    sample_weight : array_like, shape (N,), optional
        w_j >= 0, not all 0: point j counts w_j times (an integer w_j is
        y_j repeated w_j times).

    Returns
    -------
    float

    Examples
    --------
    >>> import emlib
    >>> theta = emlib.GMM(weights=[0.5, 0.5], means=[-1.0, 1.0], variances=[1.0, 1.0])
    >>> print(f"{emlib.log_likelihood([-1.2, 0.1, 0.9], theta):.6f}")
    -4.428305
    """
    y = as_observations(y)
    w = as_sample_weight(sample_weight, y.size)
    check_theta(theta)
    log_p = log_sum_exp_rows(log_joint(y, theta))
    return float(log_p.sum() if w is None else w @ log_p)


def e_step(y: ArrayLike, theta: GMM) -> np.ndarray:
    """Responsibilities gamma-hat_jk = P(z_j = k | y_j, theta) (Bayes' rule).

    .. math::

        \\hat\\gamma_{jk} = \\frac{\\alpha_k \\phi(y_j|\\theta_k)}
                                {\\sum_{l} \\alpha_l \\phi(y_j|\\theta_l)}

    computed from ``exp(log_joint - max_k log_joint)``, normalised by its row
    sum, so a point far from every mean still gets a finite row that sums to 1
    (the largest term is exp(0) = 1, so the sum is at least 1).

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Observations.
    theta : GMM
        Current parameters theta^(i).

    Returns
    -------
    ndarray, shape (N, K)
        Each row a distribution over the K components.

    Examples
    --------
    >>> import emlib
    >>> theta = emlib.GMM(weights=[0.5, 0.5], means=[-1.0, 1.0], variances=[1.0, 1.0])
    >>> gamma = emlib.e_step([-1.2, 0.1, 0.9], theta)
    >>> print(gamma.round(4))
    [[0.9168 0.0832]
     [0.4502 0.5498]
     [0.1419 0.8581]]
    """
    y = as_observations(y)
    check_theta(theta)
    log_p = log_joint(y, theta)
    peak = log_p.max(axis=1, keepdims=True)
    check_finite_rows(peak[:, 0])
    # Normalise in linear space: subtracting a log-sum-exp of size 1e11 (a
    # point 1e6 sigma away) would leave rows off 1 by its rounding error.
    weights = np.exp(log_p - peak)
    return weights / weights.sum(axis=1, keepdims=True)


def check_components(nk: np.ndarray, means: np.ndarray, variances: np.ndarray) -> None:
    """Raise a clear error for a component that has emptied or collapsed.

    Parameters
    ----------
    nk : ndarray, shape (K,)
        Soft counts n_k.
    means, variances : ndarray, shape (K,)
        The new mu-hat_k and sigma-hat_k^2.

    Notes
    -----
    A component has collapsed onto a point, and the likelihood is heading to
    infinity, when its standard deviation is within a few units in the last
    place of its mean (16 eps |mu_k|): it can no longer separate two distinct
    floating-point observations there. A variance below the smallest normal
    float64 has lost its precision too, and counts as collapsed.
    """
    for k in range(nk.size):
        if not nk[k] > 0:
            raise ValueError(
                f"component {k} has no responsibility left (n_k = 0), so its mean "
                "is undefined; use fewer components or another start."
            )
        if not np.isfinite(variances[k]):
            raise ValueError(
                f"component {k}'s new variance overflows float64: theta lies too "
                "far from the data; start nearer it."
            )
        resolution = _COLLAPSE_ULPS * EPS * abs(means[k])
        if not variances[k] > max(resolution * resolution, TINY):
            raise ValueError(
                f"component {k} collapsed onto a single point (mean {means[k]:.6g}, "
                f"variance {variances[k]:.3g}): the likelihood grows without bound "
                "there. Use more data, fewer components, or another start."
            )


def m_step(
    y: ArrayLike, gamma: ArrayLike, sample_weight: ArrayLike | None = None
) -> GMM:
    """Closed-form maximiser of Q(theta, theta^(i)) given responsibilities.

    .. math::

        \\hat\\alpha_k = \\frac{n_k}{N}, \\quad
        \\hat\\mu_k = \\frac{\\sum_j \\gamma_{jk} y_j}{n_k}, \\quad
        \\hat\\sigma_k^2 = \\frac{\\sum_j \\gamma_{jk} (y_j - \\hat\\mu_k)^2}{n_k}

    with n_k = sum_j gamma_jk (derived in notebooks/30-gmm-m-step.ipynb).
    With ``sample_weight`` every gamma_jk becomes w_j gamma_jk, so n_k =
    sum_j w_j gamma_jk and N becomes sum_j w_j: the maximiser of the weighted
    Q = sum_j w_j sum_k gamma_jk log(alpha_k phi(y_j | theta_k))
    (notebooks/66-weights-and-model-selection.ipynb).

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Observations.
    gamma : array_like, shape (N, K)
        Responsibilities, each row summing to 1.
    sample_weight : array_like, shape (N,), optional
        w_j >= 0, not all 0 (default: every w_j = 1).

    Returns
    -------
    GMM
        theta^(i+1).

    Raises
    ------
    ValueError
        If a component has n_k = 0 or collapses onto a point.

    Examples
    --------
    >>> import emlib
    >>> gamma = [[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]]
    >>> print(emlib.m_step([-1.2, 0.1, 0.9], gamma))
    GMM(weights=[0.5, 0.5], means=[-0.626667, 0.493333], variances=[0.528622, 0.341956])
    """
    y = as_observations(y)
    gamma = as_responsibilities(gamma, y.size)
    w = as_sample_weight(sample_weight, y.size)
    k = gamma.shape[1]
    weights = gamma.T if w is None else gamma.T * w  # w_j gamma_jk, (K, N)
    nk, means, variances = weighted_moments(weights, np.repeat(y[None, :], k, axis=0))
    check_components(nk, means, variances)
    # alpha_k = n_k / N (N = sum_j w_j with weights); sum_k n_k equals it up
    # to rounding (rows sum to 1), and dividing by it keeps the weights on the
    # simplex exactly.
    return GMM(nk / nk.sum(), means, variances)
