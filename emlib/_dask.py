"""``emlib.em`` on a Dask array: the per-chunk pass of the in-memory fit,
merged over a tree.

EM's E-step touches every point, its M-step only the statistics of
:class:`emlib.fit.Statistics` (3K + 1 numbers). So each chunk of a Dask array
is reduced to its statistics where it lives, by the same
:func:`emlib.fit.chunk_statistics` that the in-memory fit runs, and the
statistics are merged pairwise up a binary tree (:func:`emlib.fit.merge_statistics`,
exact in exact arithmetic); the M-step runs on the merged totals. Whatever
scheduler is active computes the tree: Dask's threads by default, or the
cluster of a ``distributed.Client``, which also recomputes the chunks of a
worker that dies.

Imported by :func:`emlib.em` only when it is given a Dask array, so emlib
imports and works without Dask installed.
"""

import dask
import numpy as np

from emlib._checks import check_magnitude
from emlib._statistics import chunk_statistics, merge_statistics
from emlib.gmm import GMM


def prepare(y, init):
    """Validate a Dask array of observations, in one pass over its chunks.

    Parameters
    ----------
    y : dask.array.Array, shape (N,) or (N, 1)
    init : object
        The start; it must be a :class:`emlib.GMM`.

    Returns
    -------
    y : dask.array.Array, shape (N,)
    statistics : callable
        ``statistics(y, theta)`` -> :class:`emlib.fit.Statistics` of all of y.

    Raises
    ------
    TypeError, ValueError
        As the in-memory checks do; a non-finite point is named by its global
        index and its chunk.
    """
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            "y must be 1-D data of shape (N,) or a column (N, 1), "
            f"got a Dask array of shape {y.shape}."
        )
    if y.dtype.kind not in "iuf":
        raise TypeError(
            f"y must hold real numbers (int or float), got dtype {y.dtype}."
        )
    if any(np.isnan(size) for size in y.chunks[0]):
        raise ValueError(
            "y has chunks of unknown size; call y.compute_chunk_sizes() first."
        )
    if y.size == 0:
        raise ValueError("y is empty; EM needs at least one observation.")
    if not isinstance(init, GMM):
        raise TypeError(
            "with a Dask array, init must be an emlib.GMM start: the default "
            "start needs exact quantiles of the whole array. Fit a random sample "
            "(the first rows may not be representative), e.g. idx = np.sort("
            "np.random.default_rng(0).choice(len(y), 100_000, replace=False)); "
            f"emlib.initial_theta(y[idx].compute(), K); got {type(init).__name__}."
        )
    checks = [
        dask.delayed(_largest_magnitude)(block, chunk, offset)
        for chunk, (block, offset) in enumerate(_blocks(y))
    ]
    check_magnitude(max(dask.compute(*checks)))
    return y, _tree_statistics


def _blocks(y):
    """(delayed chunk, global index of its first point) for each chunk of y."""
    offsets = np.cumsum((0, *y.chunks[0][:-1]))
    return zip(y.to_delayed().ravel(), (int(o) for o in offsets), strict=True)


def _as_chunk(block):
    return np.asarray(block, dtype=np.float64).reshape(-1)


def _largest_magnitude(block, chunk, offset):
    """max |y_j| over a chunk, or a ValueError naming its first non-finite point."""
    values = _as_chunk(block)
    finite = np.isfinite(values)
    if not finite.all():
        j = int(np.argmin(finite))
        raise ValueError(
            f"y[{offset + j}] (in chunk {chunk}) is {values[j]}; remove or impute "
            "non-finite values."
        )
    # From the extremes, without np.abs's temporary copy of the chunk.
    return float(max(values.max(), -values.min())) if values.size else 0.0


def _chunk_statistics(block, theta, offset):
    # An empty chunk gives zero statistics, which merge as the identity.
    return chunk_statistics(_as_chunk(block), theta, offset)


def _tree_statistics(y, theta):
    """Statistics of all of y at theta: per chunk, then merged pairwise up a tree."""
    level = [
        dask.delayed(_chunk_statistics)(block, theta, offset)
        for block, offset in _blocks(y)
    ]
    while len(level) > 1:
        merged = [
            dask.delayed(merge_statistics)(a, b)
            for a, b in zip(level[::2], level[1::2], strict=False)
        ]
        level = merged + level[len(merged) * 2 :]
    (stats,) = dask.compute(level[0])
    return stats
