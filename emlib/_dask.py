"""EM on Dask arrays: per-chunk sufficient statistics, merged exactly up a tree.

EM's E-step touches every point, its M-step only sufficient statistics: per
component a weight, a weighted mean and a centred scatter. So each chunk of a
Dask array is reduced, where it lives, to its statistics by the same pass the
in-memory fit runs over its blocks, and the statistics are merged up a tree
by Chan, Golub and LeVeque's update (exact in exact arithmetic, in any order:
notebooks/90-em-at-scale.ipynb proves it, in matrix form too); the M-step
runs on the totals. Whatever scheduler is active computes the tree: Dask's
threads by default, or the cluster of a ``distributed.Client``, which also
recomputes the chunks of a worker that dies.

- :func:`prepare` serves :func:`emlib.em` (1-D mixture, ``emlib.fit``
  statistics);
- :func:`mixture_e_pass` serves :func:`emlib.multivariate.em` (its
  ``_Moments``, every covariance type);
- :func:`sample_moments` serves :func:`emlib.ppca.em`, which needs N, the
  mean and the covariance S only, so it reads the data once.

Each pass is one graph, built in time linear in the number of chunks: a task
per chunk applied to the chunk's key, theta stored once under a key of its
own (so it is serialised once per pass, not once per chunk), and merges of
``_FAN_IN`` partial results at a time.

Imported only when a Dask array is given, so emlib imports and works without
Dask installed.
"""

import warnings
from typing import Any

import dask
import numpy as np
from dask.base import tokenize
from dask.core import flatten, istask
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from emlib import multivariate as mv
from emlib._checks import RecomputeWarning, check_magnitude
from emlib._statistics import chunk_statistics, merge_statistics
from emlib.gmm import GMM

# Partial results merged by one task. 2 would be a binary tree (about as
# many merge tasks as chunks); 8 needs a seventh of that, while each merge
# stays a few microseconds of arithmetic on K-sized arrays.
_FAN_IN = 8
# Chunks this small (rows in all) that share a leaf task are reduced as one
# array: copying them costs less than a call apiece. The in-memory passes'
# own block sizes are of this order.
_SMALL_ROWS = 65536


# ---------------------------------------------------------------------------
# The reduction
# ---------------------------------------------------------------------------


def _chunk_keys(x):
    """The keys of x's chunks, in row order (one column chunk for 2-D x)."""
    return list(flatten(x.__dask_keys__()))


def _offsets(x):
    """Global index of each chunk's first row."""
    return [int(o) for o in np.cumsum((0, *x.chunks[0][:-1]))]


def tree_reduce(x, chunk_fn, merge_fn, argument):
    """merge_fn over chunk_fn(chunk, argument, offset) for every chunk of x.

    One graph on top of x's, built in time linear in the number of chunks:
    ``argument`` (theta) under a key of its own, so it is serialised once per
    pass, not once per chunk; leaf tasks that reduce chunks; then a tree of
    merges of ``_FAN_IN`` results each.

    A chunk that Dask computes or a cluster holds (its graph entry is a task
    or a future) gets a leaf task of its own, which the scheduler runs where
    the chunk lives: only the partial result travels. Chunks held as arrays in
    this process (persisted on threads, or ``da.from_array``) go into the
    leaf tasks themselves, ``_FAN_IN`` to a task. As keys of their own they
    would be data nodes, and the start-up of Dask's local schedulers takes
    time quadratic in their number (each task's dependencies minus the set
    of all data nodes: dask/local.py, ``start_state_from_dask``; 2 s of an
    iteration at 8,000 chunks); and a task per tiny chunk costs more in
    scheduling than the chunk's statistics.

    Parameters
    ----------
    x : dask.array.Array
        Chunked along axis 0 only.
    chunk_fn : callable
        ``chunk_fn(block, argument, offset) -> partial`` with ``offset`` the
        global index of the block's first row.
    merge_fn : callable
        ``merge_fn(a, b) -> partial``, associative: the tree is not left to
        right.
    argument : object
        Passed to every chunk_fn.

    Returns
    -------
    The merged result, computed on the active scheduler.
    """
    token = tokenize(x.name, argument)
    arg_key = f"emlib-argument-{token}"
    layer: dict[Any, Any] = {arg_key: argument}
    graph = x.__dask_graph__()
    leaves: list[tuple[list, list]] = []  # (chunks, offsets) of each leaf task
    held: list[tuple[np.ndarray, int]] = []  # arrays not yet in a leaf
    for key, offset in zip(_chunk_keys(x), _offsets(x), strict=True):
        value = graph[key]
        if isinstance(value, np.ndarray):
            held.append((value, offset))
        if held and (len(held) == _FAN_IN or not isinstance(value, np.ndarray)):
            # A run of consecutive chunks (a task chunk ends the run).
            leaves.append(([c for c, _ in held], [o for _, o in held]))
            held = []
        if not isinstance(value, np.ndarray):
            leaves.append(([key], [offset]))
    if held:
        leaves.append(([c for c, _ in held], [o for _, o in held]))
    level: list[Any] = []
    for i, (chunks, offsets) in enumerate(leaves):
        leaf = (f"emlib-chunk-{token}", i)
        layer[leaf] = (
            _reduce_chunks,
            chunk_fn,
            merge_fn,
            chunks,
            arg_key,
            offsets,
        )
        level.append(leaf)
    depth = 0
    while len(level) > 1:
        depth += 1
        groups = [level[i : i + _FAN_IN] for i in range(0, len(level), _FAN_IN)]
        level = []
        for i, group in enumerate(groups):
            node = (f"emlib-merge-{token}", depth, i)
            layer[node] = (_merge_all, merge_fn, list(group))
            level.append(node)
    name = f"emlib-reduce-{token}"
    layer[name] = level[0]  # an alias: the root under a plain name
    reduction = HighLevelGraph.from_collections(name, layer, dependencies=[x])
    (result,) = dask.compute(Delayed(name, reduction), optimize_graph=False)
    return result


def _reduce_chunks(chunk_fn, merge_fn, chunks, argument, offsets):
    """A leaf: merge_fn over chunk_fn of each of its chunks (consecutive rows).

    Chunks of at most ``_SMALL_ROWS`` rows in all are reduced as one array,
    their concatenation: the statistics of a union are the merge of its
    parts' (exact up to rounding), and one call saves the fixed cost of a
    call per tiny chunk (about 0.15 ms, more than four points' arithmetic).
    """
    if len(chunks) > 1 and sum(len(c) for c in chunks) <= _SMALL_ROWS:
        return chunk_fn(np.concatenate(chunks), argument, offsets[0])
    parts = [
        chunk_fn(chunk, argument, offset)
        for chunk, offset in zip(chunks, offsets, strict=True)
    ]
    return _merge_all(merge_fn, parts)


def _merge_all(merge_fn, parts):
    """merge_fn over a list of partial results, pairwise (balanced)."""
    while len(parts) > 1:
        merged = [merge_fn(a, b) for a, b in zip(parts[::2], parts[1::2], strict=False)]
        parts = merged + parts[len(merged) * 2 :]
    return parts[0]


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def _check_rows(x, name, ndim):
    """Shape, dtype and chunking checks that need no pass over the data."""
    if x.ndim != ndim:
        want = "(N,) or a column (N, 1)" if ndim == 1 else "(N, D)"
        raise ValueError(
            f"{name} must have shape {want}, got a Dask array of shape {x.shape}."
        )
    if x.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold real numbers (int or float), got dtype {x.dtype}."
        )
    if any(np.isnan(size) for size in x.chunks[0]):
        raise ValueError(
            f"{name} has chunks of unknown size; call {name}.compute_chunk_sizes() "
            "first."
        )
    if x.size == 0:
        raise ValueError(f"{name} is empty; EM needs at least one observation.")
    if ndim == 2 and len(x.chunks[1]) != 1:
        raise ValueError(
            f"{name} is chunked along its columns ({len(x.chunks[1])} column "
            "chunks); each chunk must hold whole rows. Rechunk it once, "
            f"{name} = {name}.rechunk({{1: -1}}).persist()."
        )


def _as_rows(block):
    """A chunk as float64 rows, shape (n, D) (a 1-D chunk is a column)."""
    values = np.asarray(block, dtype=np.float64)
    return values.reshape(values.shape[0], -1)


def _largest_magnitude(block, name, offset):
    """max |x_ji| over a chunk, or a ValueError naming its first non-finite value.

    ``name`` is the argument's name; ``offset`` the chunk's first global row.
    """
    values = _as_rows(block)
    finite = np.isfinite(values)
    if not finite.all():
        j, i = np.unravel_index(int(np.argmin(finite)), values.shape)
        where = f"{name}[{offset + j}]" if name == "y" else f"{name}[{offset + j}, {i}]"
        raise ValueError(
            f"{where} is {values[j, i]}; remove or impute non-finite values (with a "
            "Dask array missing values are not supported: fit in memory to treat "
            "NaN as missing)."
        )
    # From the extremes, without np.abs's temporary copy of the chunk.
    return float(max(values.max(), -values.min())) if values.size else 0.0


def _check_values(x, name, rescale):
    """One pass over x: finite values (else name the first bad one), in range.

    ``rescale`` says how to rescale x, for the message of an out-of-range x.
    """
    check_magnitude(tree_reduce(x, _largest_magnitude, max, name), name, rescale)


def warn_if_recomputed(x, name):
    """Warn (RecomputeWarning) if a chunk of x is made by a task, not stored.

    A persisted array's chunks are values in its graph (numpy arrays, or a
    cluster's futures); any other chunk is computed by a task, which every
    EM iteration would run again.
    """
    graph = x.__dask_graph__()
    keys = _chunk_keys(x)
    computed = sum(istask(graph[key]) for key in keys)
    if computed:
        warnings.warn(
            f"{name} is not persisted: {computed} of its {len(keys)} chunks are "
            "computed by tasks (read, sliced or transformed), which every EM "
            f"iteration runs again. Persist it once first, {name} = "
            f"{name}.persist() (client.persist({name}) on a cluster), if it fits "
            "in memory; to stream it from storage on purpose, "
            'warnings.simplefilter("ignore", emlib.RecomputeWarning).',
            RecomputeWarning,
            stacklevel=4,
        )


# ---------------------------------------------------------------------------
# 1-D mixture (emlib.em)
# ---------------------------------------------------------------------------


def prepare(y, init):
    """Validate a Dask array of observations, in one pass over its chunks.

    Parameters
    ----------
    y : dask.array.Array, shape (N,) or (N, 1)
    init : object
        The start; it must be a :class:`emlib.GMM`.

    Returns
    -------
    y : dask.array.Array, shape (N,) or (N, 1)
    statistics : callable
        ``statistics(y, theta)`` -> :class:`emlib.fit.Statistics` of all of y.

    Raises
    ------
    TypeError, ValueError
        As the in-memory checks do; a non-finite point is named by its global
        index.

    Warns
    -----
    RecomputeWarning
        If y is not persisted.
    """
    _check_rows(y, "y", 2 if y.ndim == 2 and y.shape[1] == 1 else 1)
    if not isinstance(init, GMM):
        raise TypeError(
            "with a Dask array, init must be an emlib.GMM start: the default "
            "start needs exact quantiles of the whole array. Fit a random sample "
            "(the first rows may not be representative), e.g. idx = np.sort("
            "np.random.default_rng(0).choice(len(y), 100_000, replace=False)); "
            f"emlib.initial_theta(y[idx].compute(), K); got {type(init).__name__}."
        )
    _check_values(y, "y", "divide by its standard deviation")
    warn_if_recomputed(y, "y")
    return y, _statistics_1d


def _chunk_statistics(block, theta, offset):
    # An empty chunk gives zero statistics, which merge as the identity.
    return chunk_statistics(_as_rows(block)[:, 0], theta, offset)


def _statistics_1d(y, theta):
    """Statistics of all of y at theta: per chunk, then merged up a tree."""
    return tree_reduce(y, _chunk_statistics, merge_statistics, theta)


# ---------------------------------------------------------------------------
# D-dimensional mixture (emlib.multivariate.em)
# ---------------------------------------------------------------------------


def mixture_e_pass(X, init, covariance_type, n_init, sample_weight):
    """Validate a Dask array for multivariate.em; return its E-pass.

    Parameters
    ----------
    X : dask.array.Array, shape (N, D)
        Chunked by rows only.
    init : multivariate.GMM
    covariance_type : str
        Validated.
    n_init : int
        Must be 1.
    sample_weight : None
        Anything else is refused.

    Returns
    -------
    n : int
        N, the number of rows.
    e_pass : callable
        ``e_pass(theta) -> (log P(X | theta), multivariate._Moments)``, the
        moments about theta's means, merged over the chunks.

    Raises
    ------
    TypeError, ValueError
        On bad input, as in memory; a non-finite value (NaN included: missing
        values need the in-memory fit) is named by its global row and column.

    Warns
    -----
    RecomputeWarning
        If X is not persisted.
    """
    _check_rows(X, "X", 2)
    if sample_weight is not None:
        raise ValueError(
            "sample_weight is not supported with a Dask array X; fit in memory "
            "(X.compute()) or pass sample_weight=None."
        )
    if not isinstance(init, mv.GMM):
        raise TypeError(
            "with a Dask array, init must be an emlib.multivariate.GMM start: the "
            "default start runs k-means++ on the whole array. Fit a random sample "
            "of rows, e.g. idx = np.sort(np.random.default_rng(0).choice(len(X), "
            "100_000, replace=False)); multivariate.initial_theta(X[idx].compute(), "
            f"K, covariance_type); got {type(init).__name__}."
        )
    mv._check_start(init, X.shape[0], X.shape[1], covariance_type, n_init)
    _check_values(X, "X", "divide each column by its standard deviation")
    warn_if_recomputed(X, "X")
    return X.shape[0], lambda theta: tree_reduce(
        X, _mixture_chunk, _merge_mixture, theta
    )


def _mixture_chunk(block, theta, offset):
    """(log P, _Moments about theta's means) of one chunk's rows."""
    xt = np.ascontiguousarray(_as_rows(block).T)  # (D, n), as _e_pass wants
    return mv._e_pass(xt, theta, offset=offset)


def _merge_mixture(a, b):
    (log_lik_a, moments_a), (log_lik_b, moments_b) = a, b
    return log_lik_a + log_lik_b, moments_a.merged(moments_b)


# ---------------------------------------------------------------------------
# PPCA (emlib.ppca.em)
# ---------------------------------------------------------------------------


def sample_moments(X):
    """N, the mean (D,) and the covariance S (D, D) of a Dask array, in one pass.

    Each chunk is reduced to its count, mean and centred scatter; they merge
    exactly (the matrix form of Chan, Golub and LeVeque's update, as the
    mixture's statistics with K = 1 and every responsibility 1). The pass also
    checks every value is finite and in range. Reading the data once, it needs
    no persisted input.

    Parameters
    ----------
    X : dask.array.Array, shape (N, D)
        Chunked by rows only.

    Returns
    -------
    n : int
    mean : ndarray, shape (D,)
    s : ndarray, shape (D, D)
        Normalised by N, as ``emlib._latent_linear.sample_moments``.

    Raises
    ------
    TypeError, ValueError
        On bad input; a non-finite value is named by its global row and column.
    """
    _check_rows(X, "X", 2)
    moments = tree_reduce(X, _moments_chunk, _merge_moments, None)
    n = X.shape[0]
    return n, moments.shift[0], moments.m2[0] / n


def _moments_chunk(block, _, offset):
    """One chunk's count, mean and centred scatter, as _Moments with K = 1."""
    rows = _as_rows(block)
    _largest_magnitude(rows, "X", offset)  # raises on a non-finite value
    moments = mv._Moments(1, rows.shape[1], full=True)
    if rows.shape[0]:
        # Deviations from r = 0: add() centres the chunk at its own mean first.
        moments.add(np.ones((1, rows.shape[0])), rows.T[None].copy())
    return moments


def _merge_moments(a, b):
    return a.merged(b)
