"""Input validation shared by every public function.

Each checker returns a fresh float64 array (never a view of the caller's
data), so no public function can modify its arguments, and raises
``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, wrong
values) with a message that says what was expected.
"""

import dataclasses
import math
import numbers
import sys
from collections.abc import Sequence
from typing import TypeGuard

import numpy as np

# Rows of gamma or q, and the weights alpha, must sum to 1 within this.
SUM_TOL = 1e-9
# Data magnitudes whose squares, (y - mu)^2 and sigma^2, stay normal float64
# numbers (between about 1e-308 and 1e308).
Y_MAGNITUDE_RANGE = (1e-150, 1e150)


def is_dask_array(x):
    """True if ``x`` is a dask.array.Array (without importing Dask).

    If Dask was never imported, nothing can be a Dask array, so Dask stays an
    optional dependency.
    """
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(x, dask_array.Array)


class RecomputeWarning(UserWarning):
    """A Dask array given to EM is not persisted: each pass recomputes it.

    Its chunks are made by tasks (read from storage, sliced, transformed),
    and every EM iteration reads every chunk, so the tasks run once per
    iteration. Persist the array first (``X = X.persist()``, or
    ``client.persist(X)`` on a cluster) when it fits in memory. To stream
    data larger than memory from storage on purpose, silence it:
    ``warnings.simplefilter("ignore", emlib.RecomputeWarning)``.
    """


def as_array(x, name, expected="an array of real numbers"):
    """``x`` as a new numpy array (a copy, any dtype), refusing Dask arrays.

    ``np.array`` would silently compute a Dask array and load all of it into
    memory; only :func:`emlib.em` reduces one chunk by chunk, so every other
    function refuses it here, where all of emlib's array arguments pass.

    Parameters
    ----------
    x : array_like
    name : str
        The argument's name, for messages.
    expected : str
        What ``x`` should be, for the message on a ragged nested sequence.

    Raises
    ------
    TypeError
        If ``x`` is a Dask array, or a ragged nested sequence.
    """
    if is_dask_array(x):
        raise TypeError(
            f"{name} is a Dask array, which this function would load whole into "
            "memory; only emlib.em, emlib.multivariate.em and emlib.ppca.em fit "
            f"Dask arrays, chunk by chunk. Pass {name}.compute() if it fits in "
            "memory."
        )
    try:
        return np.array(x, copy=True)
    except (TypeError, ValueError) as exc:  # ragged nested sequences
        raise TypeError(f"{name} must be {expected}: {exc}") from None


def as_real_array(x, name):
    """Return ``x`` as a new float64 array, or raise if it is not real numbers.

    A Dask array raises ``TypeError`` (:func:`as_array`).
    """
    arr = as_array(x, name)
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


class Parameters:
    """Base of the frozen parameter dataclasses (GMM, HMM, PPCA, ...).

    Pickled as a call of the constructor on the constructor's arguments, so
    that unpickling validates them again and stores read-only copies, as
    construction does (pickle's default would restore writeable arrays).
    """

    def __reduce__(self):
        fields = dataclasses.fields(self)
        return type(self), tuple(getattr(self, f.name) for f in fields if f.init)


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


def check_magnitude(magnitude, name="y", rescale="divide by its standard deviation"):
    """Raise unless the data's max |entry| lies in ``Y_MAGNITUDE_RANGE`` (or is 0).

    ``name`` names the data and ``rescale`` says how to rescale it, for the
    message.
    """
    low, high = Y_MAGNITUDE_RANGE
    if magnitude > high or 0 < magnitude < low:
        raise ValueError(
            f"{name} has magnitude {magnitude:.3g}, outside [{low:g}, {high:g}] "
            f"where squared deviations are representable in float64; rescale "
            f"{name} (for example {rescale}) and fit again."
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


# ---------------------------------------------------------------------------
# Scalars: one checker per kind, used by every module
# ---------------------------------------------------------------------------


def check_int(value, name, low=1, high=None, rule=None):
    """Validate an integer argument: ``low <= value`` (and ``<= high`` if given).

    Parameters
    ----------
    value : object
        The argument; a Python or numpy integer (not a bool).
    name : str
        Its name, for the messages.
    low : int, default 1
    high : int, optional
    rule : str, optional
        What the value must do, for the ``ValueError`` ("{name} must
        {rule}, got ..."), e.g. "satisfy 1 <= K <= N = 5"; default
        "be >= low" or "satisfy low <= name <= high".

    Returns
    -------
    int
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}.")
    if value < low or (high is not None and value > high):
        if rule is None:
            rule = (
                f"be >= {low}" if high is None else f"satisfy {low} <= {name} <= {high}"
            )
        raise ValueError(f"{name} must {rule}, got {value}.")
    return int(value)


def check_widths(widths, name):
    """``widths`` as a tuple of layer widths, each an int >= 1.

    Parameters
    ----------
    widths : sequence of int
    name : str
        The argument's name, for messages (``sizes``, ``hidden``).

    Returns
    -------
    tuple of int
    """
    if not isinstance(widths, Sequence) or isinstance(widths, str):
        raise TypeError(
            f"{name} must be a sequence of layer widths, e.g. (32, 32); "
            f"got {type(widths).__name__}."
        )
    return tuple(check_int(w, f"{name}[{i}]") for i, w in enumerate(widths))


def check_real(value, name, low=0.0, *, strict=False, high=None):
    """Validate a real argument: finite, ``>= low`` (``> low`` if ``strict``).

    Parameters
    ----------
    value : object
        Any real number type (int, float, numpy scalar, Fraction), not a bool.
    name : str
        Its name, for the messages.
    low : float, default 0.0
    strict : bool, default False
        Require ``value > low`` rather than ``>=``.
    high : float, optional
        An upper bound, inclusive.

    Returns
    -------
    float
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}.")
    try:
        real = float(value)
    except OverflowError:  # an int beyond float range
        real = math.inf
    above = real > low if strict else real >= low
    if not (math.isfinite(real) and above and (high is None or real <= high)):
        if high is None:
            rule = f"be finite and {'>' if strict else '>='} {low:g}"
        else:
            rule = f"lie in {'(' if strict else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must {rule}, got {value}.")
    return real


def check_probability(value, name):
    """Validate a probability: a real number in [0, 1]. Returns a float."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number (a probability in [0, 1]), "
            f"got {type(value).__name__}."
        )
    try:
        prob = float(value)
    except OverflowError:
        prob = math.inf
    if not 0.0 <= prob <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}.")
    return prob


def check_n_components(k, n, name="the number of components"):
    """Validate K, a number of components or states: an int with 1 <= K <= N."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(k).__name__}.")
    if not 1 <= k <= n:
        raise ValueError(f"{name} K must satisfy 1 <= K <= N = {n}; got {k}.")
    return int(k)


def check_stopping_rule(tol, max_iter):
    """Validate EM's stopping rule: ``tol`` finite and >= 0, ``max_iter`` >= 1."""
    check_real(tol, "tol")
    check_int(max_iter, "max_iter")


def check_choice(value, choices, name):
    """Validate an option: ``value`` must be one of ``choices`` (compared by ==)."""
    if not (value is None or isinstance(value, str)) or value not in choices:
        raise ValueError(
            f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}."
        )
    return value


def is_int(value: object) -> TypeGuard[int]:
    """True for a Python or numpy integer, False for a bool: an ``init`` that
    is a number of components rather than a parameter object."""
    # TypeGuard[int]: a numpy integer is typed as the int it stands for, so
    # ``init: Theta | int`` narrows to int after the test.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_generator(rng):
    """Raise ``TypeError`` unless ``rng`` is a numpy.random.Generator."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy Generator, e.g. np.random.default_rng(seed); "
            f"got {type(rng).__name__}."
        )


def as_generator(random_state):
    """A numpy Generator from ``random_state``: an int seed, a Generator, or None.

    A Generator is used as it is (so successive calls continue its stream);
    None seeds a fresh one from the operating system's entropy.
    """
    if random_state is None or isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state)
    if isinstance(random_state, bool) or not isinstance(random_state, int | np.integer):
        raise TypeError(
            "random_state must be an int seed, a numpy.random.Generator or None, "
            f"got {type(random_state).__name__}; for example random_state=0."
        )
    if random_state < 0:
        raise ValueError(f"random_state must be a seed >= 0, got {random_state}.")
    return np.random.default_rng(random_state)


def as_sample_weight(sample_weight, n):
    """Validate per-observation weights w_j: shape (N,), finite, >= 0, not all 0.

    Parameters
    ----------
    sample_weight : array_like, shape (N,), or None
    n : int
        N, the number of observations.

    Returns
    -------
    ndarray, shape (N,), or None
        A float64 copy (None for None: every weight 1).
    """
    if sample_weight is None:
        return None
    w = as_real_array(sample_weight, "sample_weight")
    if w.shape != (n,):
        raise ValueError(
            f"sample_weight must have shape (N,) = ({n},), one weight per "
            f"observation; got shape {w.shape}."
        )
    if np.any(w < 0):
        j = int(np.argmin(w))
        raise ValueError(
            f"sample_weight must be >= 0; observation {j} has weight {w[j]:.6g}."
        )
    with np.errstate(over="ignore"):  # an overflowing sum is refused below
        total = w.sum()
    if not total > 0:
        raise ValueError(
            "sample_weight sums to 0: every observation would be ignored; give "
            "at least one observation a positive weight."
        )
    if not np.isfinite(total):
        raise ValueError(
            "sample_weight sums to more than float64 holds; divide the weights "
            "by a constant (EM does not depend on their scale)."
        )
    return w
