"""Online EM (Cappé and Moulines 2009) for the 1-D Gaussian mixture.

Batch EM reads all N points for every M-step. Online EM reads a mini-batch
and moves running expected sufficient statistics part of the way towards the
batch's (a stochastic approximation, Robbins and Monro 1951):

.. math::

    s_t = (1 - \\gamma_t)\\, s_{t-1} + \\gamma_t\\, \\bar s(B_t; \\theta_{t-1}),
    \\qquad \\theta_t = \\bar\\theta(s_t),

where s holds the per-point statistics (alpha_k, and the weighted mean and
centred spread of each component), s-bar(B; theta) is their average over
batch B with the E-step's responsibilities at theta (``chunk_statistics``
divided by the batch size), and theta-bar is the M-step on s. Derived and
checked against batch EM in notebooks/90-em-at-scale.ipynb.

The convex combination is computed as a merge (Chan, Golub and LeVeque) of
the two statistics with their counts scaled by 1 - gamma_t and gamma_t:
that equals the convex combination of the raw sums (proved in notebook 90),
and keeps the statistics centred, so data far from the origin keep their
precision.
"""

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from emlib._checks import as_observations, check_real, is_dask_array
from emlib._statistics import (
    Statistics,
    chunk_statistics,
    m_step_from_statistics,
    merge_statistics,
)
from emlib.gmm import GMM


def _scaled(stats: Statistics, c: float) -> Statistics:
    """The statistics of the same points, each counted c times (c > 0)."""
    return Statistics(c * stats.log_lik, c * stats.nk, stats.shift, c * stats.m2)


def robbins_monro(exponent: float) -> Callable[[int], float]:
    """The step sizes gamma_t = t^-a, t = 1, 2, ..., for a in (1/2, 1].

    They satisfy Robbins and Monro's conditions, sum_t gamma_t = infinity
    (a <= 1) and sum_t gamma_t^2 < infinity (a > 1/2), and gamma_1 = 1, so
    the first batch's statistics replace the (undefined) s_0.

    Parameters
    ----------
    exponent : float
        a, with 1/2 < a <= 1.

    Returns
    -------
    callable
        t -> gamma_t.
    """
    a = check_real(exponent, "step_size", 0.5, strict=True)
    if a > 1.0:
        raise ValueError(
            f"step_size = {a} is above 1: the steps t^-a would sum to a finite "
            "value, so the statistics would stop moving before they converge. "
            "Use 1/2 < step_size <= 1 (0.6 is a robust choice)."
        )
    return lambda t: float(t) ** -a


def online_em(
    batches: Iterable[Any],
    init: GMM,
    *,
    step_size: float | Callable[[int], float] = 0.6,
) -> GMM:
    """Fit a 1-D Gaussian mixture by online EM over mini-batches.

    Parameters
    ----------
    batches : iterable of array_like, shape (n_t,) or (n_t, 1)
        The mini-batches B_1, B_2, ..., each read once in turn (numpy arrays,
        or Dask arrays, each computed when its turn comes, e.g. the chunks
        ``y.blocks`` of a Dask array). For several passes over the data,
        chain them: ``itertools.chain.from_iterable(itertools.repeat(batches,
        3))`` with ``batches`` a list.
    init : GMM
        theta_0, the start (the E-step of B_1 runs at it).
    step_size : float or callable, default 0.6
        A float a with 1/2 < a <= 1 gives gamma_t = t^-a
        (:func:`robbins_monro`); or a callable t -> gamma_t in (0, 1] for
        t = 1, 2, ..., with gamma_1 = 1. Convergence needs Robbins and
        Monro's conditions, sum gamma_t = infinity and sum gamma_t^2 <
        infinity (Cappé and Moulines 2009, Theorem 1; with a in (1/2, 1)
        they recommend averaging the iterates, which this function does not do).

    Returns
    -------
    GMM
        theta_T after the last batch.

    Raises
    ------
    ValueError
        If there are no batches, a batch is bad input (empty, non-finite),
        a step size is outside (0, 1] or gamma_1 != 1, or a component
        empties (its running weight n_k reaches 0).
    """
    if not isinstance(init, GMM):
        raise TypeError(f"init must be an emlib.GMM start, got {type(init).__name__}.")
    if isinstance(batches, np.ndarray) or is_dask_array(batches):
        # Iterating an array would give its rows or scalars, each a "batch".
        raise TypeError(
            "batches must be an iterable of mini-batches, not one array: split "
            "it, e.g. np.array_split(y, 10), or pass y.blocks for a Dask array."
        )
    gamma_of = robbins_monro(step_size) if not callable(step_size) else step_size
    theta, running, t = init, None, 0
    for t, batch in enumerate(batches, start=1):
        try:
            y = as_observations(batch.compute() if is_dask_array(batch) else batch)
        except (TypeError, ValueError) as exc:
            # as_observations names its argument y; say which batch it was.
            raise type(exc)(f"batch {t} of batches: {exc}") from None
        gamma = check_real(gamma_of(t), f"step_size({t})", 0.0, strict=True)
        if gamma > 1.0 or (t == 1 and gamma != 1.0):
            raise ValueError(
                f"step_size({t}) = {gamma}: the steps must lie in (0, 1], with "
                "the first equal to 1 (the first batch's statistics replace s_0)."
            )
        # s-bar(B_t; theta_{t-1}): per-point statistics, centred at theta's means.
        batch_stats = _scaled(chunk_statistics(y, theta), 1.0 / y.size)
        if running is None:
            running = batch_stats
        else:
            # (1 - gamma) s_{t-1} + gamma s-bar: a merge of scaled statistics.
            running = merge_statistics(
                _scaled(running, 1.0 - gamma), _scaled(batch_stats, gamma)
            )
        theta = m_step_from_statistics(theta, running)
        # theta's means are now the running means: centred there, shift 0.
        running = running._replace(shift=np.zeros_like(running.shift))
    if t == 0:
        raise ValueError("batches is empty; online EM needs at least one batch.")
    return theta
