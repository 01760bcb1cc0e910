"""EM for the 1-D Gaussian mixture: the start, and the fit through the core.

The iteration is :func:`emlib._core.run_em` with the fused, blocked E-pass of
``emlib._statistics`` (in memory) or its chunk-by-chunk tree over a Dask
array (``emlib._dask``). ``Statistics``, ``chunk_statistics`` and
``merge_statistics`` are re-exported here, where notebooks/90-em-at-scale
uses them.
"""

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import (
    as_observations,
    as_sample_weight,
    check_n_components,
    is_dask_array,
    is_int,
)
from emlib._core import EMResult, run_em
from emlib._statistics import (
    Statistics,
    chunk_statistics,
    m_step_from_statistics,
    merge_statistics,
)
from emlib.gmm import GMM

__all__ = [
    "EMResult",
    "Statistics",
    "chunk_statistics",
    "em",
    "initial_theta",
    "merge_statistics",
    "theta_to_vector",
    "vector_to_theta",
]


def initial_theta(y: ArrayLike, n_components: int) -> GMM:
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
    k = check_n_components(n_components, y.size)
    variance = y.var()
    if not variance > 0:
        raise ValueError(
            "all observations are equal (variance 0); a Gaussian mixture needs "
            "data with some spread."
        )
    means = np.quantile(y, (np.arange(k) + 0.5) / k)
    return GMM(np.full(k, 1.0 / k), means, np.full(k, variance))


def theta_to_vector(theta: GMM) -> np.ndarray:
    """theta as the flat vector SQUAREM extrapolates: (alpha, mu, log sigma^2).

    Log variances, because every real vector then maps to positive
    variances, so the extrapolation cannot leave the parameter space through
    them (and the likelihood is closer to quadratic in log sigma^2 than in
    sigma^2, the scale on which the extrapolation is a polynomial). The
    weights stay on the simplex: an extrapolation is an affine combination
    of iterates (its coefficients sum to 1), so it keeps sum_k alpha_k = 1,
    and only alpha_k >= 0 needs the check :func:`vector_to_theta` makes.

    Parameters
    ----------
    theta : GMM

    Returns
    -------
    ndarray, shape (3K,)
    """
    return np.concatenate([theta.weights, theta.means, np.log(theta.variances)])


def vector_to_theta(vector: np.ndarray, like: GMM) -> GMM:
    """The GMM of a :func:`theta_to_vector` vector.

    Parameters
    ----------
    vector : ndarray, shape (3K,)
    like : GMM
        A mixture with the same K.

    Returns
    -------
    GMM
        Its weights divided by their sum (which differs from 1 only by the
        rounding of the extrapolation).

    Raises
    ------
    ValueError
        If a weight is negative or a variance is not a positive finite float
        (the vector lies outside the parameter space).
    """
    weights, means, log_variances = np.split(vector, 3)
    with np.errstate(over="ignore"):
        variances = np.exp(log_variances)
    return GMM(weights / weights.sum(), means, variances)


def em(
    y: ArrayLike,
    init: GMM | int,
    *,
    sample_weight: ArrayLike | None = None,
    tol: float = 1e-10,
    max_iter: int = 1000,
    accelerate: Literal["squarem"] | None = None,
    stop: Literal["gain", "aitken"] = "gain",
) -> EMResult:
    """Fit a 1-D Gaussian mixture by expectation-maximisation.

    Parameters
    ----------
    y : array_like or dask.array.Array, shape (N,) or (N, 1)
        Observations. A Dask array is fitted chunk by chunk with Dask's active
        scheduler (threads by default, a ``distributed.Client`` when one is
        set): each chunk yields its :class:`Statistics` and only those cross
        between workers; the data are never gathered in one place. The result
        equals the in-memory fit up to the order of floating-point summation.
    init : GMM or int
        The start theta^(0), or a number of components K, in which case the
        start is :func:`initial_theta` ``(y, K)`` (with ``sample_weight``:
        of the points of positive weight). A Dask array needs a GMM: exact
        quantiles would need the whole array in memory (fit a sample with
        ``initial_theta`` for a start).
    sample_weight : array_like, shape (N,), optional
        w_j >= 0, not all 0: EM maximises sum_j w_j log P(y_j | theta), so
        an integer w_j counts y_j w_j times, w_j = 0 drops it, and scaling
        every w_j by c > 0 changes nothing (the tolerance below scales with
        it). Not supported for a Dask array.
    tol : float, default 1e-10
        Stop when an iteration raises the log-likelihood by less than
        ``tol * N`` (a per-point gain below tol; N = sum_j w_j with
        ``sample_weight``). With ``tol=0`` exactly ``max_iter`` iterations
        run (unless the log-likelihood falls).
    max_iter : int, default 1000
        Maximum number of iterations (>= 1).
    accelerate : {None, "squarem"}, default None
        "squarem": SQUAREM (Varadhan and Roland 2008, scheme S3) with the
        monotonicity safeguard, extrapolating in :func:`theta_to_vector`'s
        coordinates; it reaches EM's fixed point in fewer E-passes when EM
        is slow. Each iteration is then a cycle of 2 to 4 E-passes
        (``EMResult.n_evaluations`` counts them). See
        :func:`emlib._core.squarem_cycle`.
    stop : {"gain", "aitken"}, default "gain"
        "gain": stop when an iteration gains less than ``tol * N``.
        "aitken": when Aitken's estimate of the distance to the limit,
        l* - l_i (:func:`emlib.aitken_limit`), is below ``tol * N``; it
        assumes EM's linear convergence, so use it with plain EM (SQUAREM's
        gains are not geometric and can make it stop early).

    Returns
    -------
    EMResult
        With ``stop_reason`` "converged", "max_iter" or "decrease".

    Warns
    -----
    emlib.ConvergenceWarning
        If the run stops on ``max_iter`` with tol > 0, or on a decrease.

    Raises
    ------
    ValueError
        On bad input (for a Dask array: with the global index of the first
        bad point), or when a component collapses onto a point or empties.

    Examples
    --------
    >>> import emlib
    >>> fit = emlib.em([-2.1, -1.9, -2.0, 3.0, 3.2, 2.8], 2)
    >>> print(fit.converged, fit.theta)
    True GMM(weights=[0.5, 0.5], means=[-2, 3], variances=[0.00666667, 0.0266667])
    >>> print(f"log-likelihood {fit.log_likelihoods[-1]:.4f}")
    log-likelihood 0.2800
    """
    weights = None
    if is_dask_array(y):
        if sample_weight is not None:
            raise ValueError(
                "sample_weight is not supported with a Dask array y; fit in "
                "memory (y.compute()) or pass sample_weight=None."
            )
        from emlib import _dask  # Dask is optional: imported only when used

        y, statistics = _dask.prepare(y, init)
    else:
        y = as_observations(y)
        weights = as_sample_weight(sample_weight, y.size)
        if is_int(init):
            # The start sees which points count, not how much: so zero weight
            # is dropping the point, and scaling the weights changes nothing.
            init = initial_theta(y if weights is None else y[weights > 0], init)
        statistics = chunk_statistics
    if not isinstance(init, GMM):
        raise TypeError(
            "init must be an emlib.GMM start or a number of components K (int), "
            f"got {type(init).__name__}."
        )
    check_n_components(init.n_components, y.size)

    def e_pass(theta):
        stats = (
            statistics(y, theta)
            if weights is None
            else statistics(y, theta, sample_weight=weights)
        )
        return stats.log_lik, stats

    n = y.size if weights is None else weights.sum()
    return run_em(
        e_pass,
        m_step_from_statistics,
        init,
        n=n,
        tol=tol,
        max_iter=max_iter,
        accelerate=accelerate,
        stop=stop,
        to_vector=theta_to_vector,
        from_vector=vector_to_theta,
    )
