"""Choosing K and the covariance family of a D-dimensional mixture: BIC, AIC, ICL.

Each criterion trades the maximised log-likelihood log L = log P(X | theta-hat)
against the number p of free parameters (:func:`n_parameters`):

.. math::

    \\mathrm{BIC} = -2 \\log L + p \\log N, \\qquad
    \\mathrm{AIC} = -2 \\log L + 2 p, \\qquad
    \\mathrm{ICL} = \\mathrm{BIC} + 2\\,\\mathrm{EN}(\\hat\\gamma),

with EN(gamma-hat) = -sum_j sum_k gamma_jk log gamma_jk the entropy of the
responsibilities (Schwarz 1978; Akaike 1974; Biernacki, Celeux and Govaert
2000, who penalise BIC by how unclear the classification is).

**Sign convention.** Every value here follows scikit-learn's
``GaussianMixture.bic``/``aic``: -2 log L + penalty, *lower is better*. R's
mclust reports the negative, 2 log L - p log N, *higher is better*
(``mclustBIC``, ``icl``): its BIC is ``-bic(X, theta)``. Its model names map to
scikit-learn's covariance types as VVV = "full", EEE = "tied", VVI = "diag",
VII = "spherical" (mclust's other ten families have no counterpart here).

:func:`select` fits a grid of (covariance type, K) and returns the table and the
fit that minimises the criterion. These functions are re-exported by
``emlib.multivariate``; derived in notebooks/66-weights-and-model-selection.ipynb.
"""

import math
from collections.abc import Iterable
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import as_generator, check_int
from emlib._core import EMResult
from emlib.multivariate import (
    COVARIANCE_TYPES,
    GMM,
    _check_covariance_type,
    _check_theta,
    as_points,
    e_step,
    em,
    log_likelihood,
)

CRITERIA = ("bic", "aic", "icl")


def n_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """The number p of free parameters of a K-component mixture in D dimensions.

    (K - 1) mixing weights (they sum to 1), K D mean coordinates, and the
    covariances' free entries: a symmetric D x D matrix has D (D + 1) / 2.

    =========== =====================
    type        covariance parameters
    =========== =====================
    "full"      K D (D + 1) / 2
    "tied"      D (D + 1) / 2
    "diag"      K D
    "spherical" K
    =========== =====================

    Parameters
    ----------
    n_components : int
        K >= 1.
    n_features : int
        D >= 1.
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    int
    """
    k = check_int(n_components, "n_components")
    d = check_int(n_features, "n_features")
    covariance = {
        "full": k * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
        "diag": k * d,
        "spherical": k,
    }[_check_covariance_type(covariance_type)]
    return (k - 1) + k * d + covariance


def _log_likelihood_and_p(X, theta):
    X = as_points(X)
    _check_theta(theta, X.shape[1])
    p = n_parameters(theta.n_components, theta.n_features, theta.covariance_type)
    return X, log_likelihood(X, theta), p


def bic(X: ArrayLike, theta: GMM) -> float:
    """Bayesian information criterion, -2 log P(X | theta) + p log N; lower is better.

    scikit-learn's ``GaussianMixture.bic`` convention; mclust's BIC is the
    negative of this value.

    Parameters
    ----------
    X : array_like, shape (N, D)
    theta : multivariate.GMM
        Usually EM's fit to ``X``: the criterion assumes the maximised
        likelihood.

    Returns
    -------
    float
    """
    X, log_lik, p = _log_likelihood_and_p(X, theta)
    return -2.0 * log_lik + p * math.log(X.shape[0])


def aic(X: ArrayLike, theta: GMM) -> float:
    """Akaike information criterion, -2 log P(X | theta) + 2 p; lower is better.

    Parameters
    ----------
    X : array_like, shape (N, D)
    theta : multivariate.GMM

    Returns
    -------
    float
    """
    _, log_lik, p = _log_likelihood_and_p(X, theta)
    return -2.0 * log_lik + 2.0 * p


def icl(X: ArrayLike, theta: GMM, assignment: Literal["soft", "map"] = "soft") -> float:
    """Integrated completed likelihood criterion, BIC + 2 EN; lower is better.

    Parameters
    ----------
    X : array_like, shape (N, D)
    theta : multivariate.GMM
    assignment : {"soft", "map"}, default "soft"
        "soft": EN = -sum_j sum_k gamma_jk log gamma_jk, the entropy of the
        responsibilities (0 log 0 = 0). "map": EN = -sum_j log gamma_{j z_j}
        with z_j = argmax_k gamma_jk, the classification mclust's ``icl``
        uses (R/icl.R of mclust 6.1.3; there with the opposite sign).

    Returns
    -------
    float
    """
    if assignment not in ("soft", "map"):
        raise ValueError(f"assignment must be 'soft' or 'map', got {assignment!r}.")
    X = as_points(X)
    gamma = e_step(X, theta)
    with np.errstate(divide="ignore"):
        log_gamma = np.log(gamma)
    if assignment == "soft":
        # gamma log gamma -> 0 as gamma -> 0: a responsibility that
        # underflowed to 0 contributes nothing.
        entropy = -np.sum(np.where(gamma > 0, gamma * log_gamma, 0.0))
    else:
        entropy = -np.sum(log_gamma[np.arange(X.shape[0]), gamma.argmax(axis=1)])
    return bic(X, theta) + 2.0 * float(entropy)


_CRITERION_FUNCTIONS = {"bic": bic, "aic": aic, "icl": icl}


class SelectionRow(NamedTuple):
    """One fit of :func:`select`'s grid.

    Attributes
    ----------
    covariance_type : str
    n_components : int
        K.
    criterion : float
        The criterion's value (lower is better); NaN if the fit failed.
    log_likelihood : float
        log P(X | theta-hat) of the best of the ``n_init`` starts; NaN if the
        fit failed.
    n_parameters : int
        p, from :func:`n_parameters`.
    error : str or None
        Why the fit failed (e.g. a covariance became singular, a component
        emptied, K > N), or None.
    """

    covariance_type: str
    n_components: int
    criterion: float
    log_likelihood: float
    n_parameters: int
    error: str | None


class Selection(NamedTuple):
    """The outcome of :func:`select`.

    Attributes
    ----------
    table : tuple of SelectionRow
        Every (covariance_type, n_components) of the grid, types in the order
        given, K ascending within each.
    criterion : str
        "bic", "aic" or "icl".
    fit : EMResult
        The fit with the smallest criterion (the first of equals in the
        table's order); ``fit.theta`` is a ``multivariate.GMM``.
    covariance_type : str
        The chosen type (``fit.theta.covariance_type``).
    n_components : int
        The chosen K.
    """

    table: tuple
    criterion: str
    fit: EMResult
    covariance_type: str
    n_components: int


def select(
    X: ArrayLike,
    n_components: Iterable[int] = range(1, 10),
    covariance_types: Iterable[str] = COVARIANCE_TYPES,
    criterion: Literal["bic", "aic", "icl"] = "bic",
    *,
    n_init: int = 1,
    random_state: int | np.random.Generator | None = None,
    reg_covar: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 1000,
) -> Selection:
    """Fit every (covariance type, K) of a grid by EM and pick the smallest criterion.

    Each fit is ``multivariate.em(X, K, covariance_type=..., n_init=n_init,
    ...)``: the best of ``n_init`` k-means++ starts. A fit that fails with a
    ``ValueError`` (a covariance turning singular, a component emptying,
    K > N) is recorded in the table with its message and NaN values, and
    takes no part in the choice.

    Parameters
    ----------
    X : array_like, shape (N, D)
    n_components : iterable of int, default range(1, 10)
        The K to try, each >= 1.
    covariance_types : iterable of str, default ("full", "tied", "diag", "spherical")
    criterion : {"bic", "aic", "icl"}, default "bic"
        Lower is better (scikit-learn's sign; mclust's is the opposite).
    n_init : int, default 1
        Starts per fit.
    random_state : int, numpy.random.Generator or None, default None
        One stream for the whole grid, used in the table's order.
    reg_covar, tol, max_iter
        Passed to ``multivariate.em``.

    Returns
    -------
    Selection

    Raises
    ------
    ValueError
        On bad arguments, or if every fit of the grid fails.
    """
    X = as_points(X)
    if criterion not in CRITERIA:
        raise ValueError(
            f"criterion must be one of {', '.join(map(repr, CRITERIA))}; "
            f"got {criterion!r}."
        )
    ks = [check_int(k, "each of n_components") for k in n_components]
    types = [_check_covariance_type(t) for t in covariance_types]
    if not ks or not types:
        raise ValueError("n_components and covariance_types must not be empty.")
    rng = as_generator(random_state)
    score = _CRITERION_FUNCTIONS[criterion]
    rows: list[SelectionRow] = []
    fits: dict[int, EMResult] = {}  # row index -> fit, for the fits that ran
    for covariance_type in types:
        for k in ks:
            p = n_parameters(k, X.shape[1], covariance_type)
            try:
                fit = em(
                    X,
                    k,
                    covariance_type=covariance_type,
                    n_init=n_init,
                    random_state=rng,
                    reg_covar=reg_covar,
                    tol=tol,
                    max_iter=max_iter,
                )
            except ValueError as exc:
                rows.append(
                    SelectionRow(covariance_type, k, np.nan, np.nan, p, str(exc))
                )
                continue
            value = score(X, fit.theta)
            log_lik = float(fit.log_likelihoods[-1])
            fits[len(rows)] = fit
            rows.append(SelectionRow(covariance_type, k, value, log_lik, p, None))
    values = np.array([row.criterion for row in rows])
    if np.all(np.isnan(values)):
        raise ValueError(f"every fit of the grid failed; first error: {rows[0].error}")
    best = int(np.nanargmin(values))
    return Selection(
        tuple(rows),
        criterion,
        fits[best],
        rows[best].covariance_type,
        rows[best].n_components,
    )
