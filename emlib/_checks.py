"""Input validation shared by every public function.

Each checker returns a fresh float64 array (never a view of the caller's
data), so no public function can modify its arguments, and raises
``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, wrong
values) with a message that says what was expected.
"""

import math
import numbers

import numpy as np

# Rows of gamma or q, and the weights alpha, must sum to 1 within this.
SUM_TOL = 1e-9
# Data magnitudes whose squares, (y - mu)^2 and sigma^2, stay normal float64
# numbers (between about 1e-308 and 1e308).
Y_MAGNITUDE_RANGE = (1e-150, 1e150)


def as_real_array(x, name):
    """Return ``x`` as a new float64 array, or raise if it is not real numbers."""
    try:
        arr = np.array(x, copy=True)
    except (TypeError, ValueError) as exc:  # ragged nested sequences
        raise TypeError(f"{name} must be an array of real numbers: {exc}") from None
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold real numbers (int or float), got dtype {arr.dtype}."
        )
    arr = arr.astype(np.float64, copy=False)
    if arr.size and not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} contains NaN or infinite values; remove or impute them."
        )
    return arr


def read_only(arr):
    """A read-only float64 copy of ``arr``, same shape.

    The copy lives in an immutable bytes buffer: numpy refuses to make it, or
    any view of it, writeable again, so parameters built from it cannot be
    changed after validation.
    """
    return np.frombuffer(arr.tobytes(), dtype=np.float64).reshape(arr.shape)


def as_observations(y):
    """Validate observed data ``y``: shape (N,) or (N, 1), finite, N >= 1.

    Returns
    -------
    ndarray, shape (N,)
        A float64 copy.
    """
    arr = as_real_array(y, "y")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(
            "y must be 1-D data of shape (N,) or a column (N, 1), "
            f"got shape {arr.shape}."
        )
    if arr.size == 0:
        raise ValueError("y is empty; EM needs at least one observation.")
    # max_j |y_j| from the extremes: np.abs(arr) would allocate a second array
    # of N floats, a third copy of the data while the caller's y is alive.
    check_magnitude(max(arr.max(), -arr.min()))
    return arr


def check_magnitude(magnitude):
    """Raise unless max_j |y_j| lies in ``Y_MAGNITUDE_RANGE`` (or is 0)."""
    low, high = Y_MAGNITUDE_RANGE
    if magnitude > high or 0 < magnitude < low:
        raise ValueError(
            f"y has magnitude {magnitude:.3g}, outside [{low:g}, {high:g}] where "
            "squared deviations are representable in float64; rescale y (for "
            "example divide by its standard deviation) and fit again."
        )


def as_row_stochastic(q, shape, name):
    """Validate a matrix of per-row distributions, such as gamma or q.

    Parameters
    ----------
    q : array_like, shape (N, K)
        Entries in [0, 1], each row summing to 1 within ``SUM_TOL``.
    shape : tuple of int or None
        Expected ``(N, K)``; ``None`` accepts any 2-D shape.
    name : str
        Argument name for error messages.

    Returns
    -------
    ndarray, shape (N, K)
        A float64 copy.
    """
    arr = as_real_array(q, name)
    if arr.ndim != 2 or (shape is not None and arr.shape != tuple(shape)):
        want = "(N, K)" if shape is None else str(tuple(shape))
        raise ValueError(f"{name} must have shape {want}, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; it needs at least one row and column.")
    if np.any(arr < 0) or np.any(arr > 1):
        raise ValueError(
            f"{name} must hold probabilities in [0, 1]; got values from "
            f"{arr.min():.3g} to {arr.max():.3g}."
        )
    worst = np.max(np.abs(arr.sum(axis=1) - 1.0))
    if worst > SUM_TOL:
        raise ValueError(
            f"each row of {name} must sum to 1 (a distribution over the K "
            f"components); the worst row is off by {worst:.3g}."
        )
    return arr


def as_responsibilities(gamma, n):
    """Validate an M-step's gamma: a distribution per row, one row per point.

    Parameters
    ----------
    gamma : array_like, shape (N, K)
        Responsibilities, as :func:`as_row_stochastic` checks them.
    n : int
        N, the number of observations.

    Returns
    -------
    ndarray, shape (N, K)
        A float64 copy.

    Raises
    ------
    ValueError
        Besides :func:`as_row_stochastic`'s, if gamma's rows are not N, or if
        K > N (K components cannot each own a point).
    """
    gamma = as_row_stochastic(gamma, None, "gamma")
    if gamma.shape[0] != n:
        raise ValueError(
            f"gamma must have one row per observation: {n} rows, got {gamma.shape[0]}."
        )
    if gamma.shape[1] > n:
        raise ValueError(
            f"K = {gamma.shape[1]} components need at least K observations; "
            f"got N = {n}."
        )
    return gamma


def check_stopping_rule(tol, max_iter):
    """Validate EM's stopping rule: ``tol`` finite and >= 0, ``max_iter`` >= 1."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"tol must be a real number, got {type(tol).__name__}.")
    try:
        finite = math.isfinite(tol)
    except OverflowError:  # an int beyond float range
        finite = False
    if not (finite and tol >= 0):
        raise ValueError(f"tol must be finite and >= 0, got {tol}.")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int | np.integer):
        raise TypeError(f"max_iter must be an int, got {type(max_iter).__name__}.")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}.")
