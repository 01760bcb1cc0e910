"""The three-coin model: Li Hang, Statistical Learning Methods, example 9.1.

Coins A, B and C show heads with probabilities pi, p and q. Toss A; if it
shows heads toss B, otherwise toss C; record only the second toss, y_j = 1
for heads and 0 for tails. Which coin produced y_j is the latent variable.

This is a two-component Bernoulli mixture with weights (pi, 1 - pi): the
posterior mu_j that toss j came from coin B plays the role of the Gaussian
part's responsibility gamma-hat_j1, and 1 - mu_j that of gamma-hat_j2. The
formulas are derived with SymPy in notebooks/50-three-coins.ipynb.

One property of this model shapes what EM can do with it: the tosses are
independent with P(y_j = 1 | theta) = pi p + (1 - pi) q, so the likelihood
depends on theta only through that one number. Every M-step sets it to the
observed frequency of heads, after which EM stays where it is (in exact
arithmetic), and every theta with that frequency is a maximiser.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import (
    Parameters,
    as_array,
    as_observations,
    as_real_array,
    check_probability,
)
from emlib._core import EMResult, run_em

# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ThreeCoins(Parameters):
    """Parameters theta = (pi, p, q) of the three-coin model.

    .. math::

        P(y \\mid \\theta) = \\pi p^{y} (1 - p)^{1 - y}
                          + (1 - \\pi) q^{y} (1 - q)^{1 - y},
        \\qquad y \\in \\{0, 1\\}

    Instances are immutable and compare equal when all three numbers are
    equal. Each argument may be any real number type (int, float, numpy
    scalar, ``fractions.Fraction``, ...); it is stored as a Python float.

    Parameters
    ----------
    pi : real
        P(coin A shows heads), strictly between 0 and 1.
    p : real
        P(coin B shows heads), in [0, 1].
    q : real
        P(coin C shows heads), in [0, 1].

    Raises
    ------
    TypeError
        If an argument is not a real number (bools are refused too).
    ValueError
        If an argument lies outside [0, 1] or is NaN, or if pi is 0 or 1.

    Notes
    -----
    pi = 0 or pi = 1 is refused because the model is then degenerate: one of
    coins B and C is never tossed, its bias has no effect on P(y | theta), and
    the M-step's estimate of it is 0/0. p or q at 0 or 1 is allowed: such a
    coin is deterministic, and EM reaches p = q = 1 on data that are all heads
    (the maximum-likelihood estimate there).
    """

    pi: float
    p: float
    q: float

    def __post_init__(self) -> None:
        for name in ("pi", "p", "q"):
            object.__setattr__(self, name, check_probability(getattr(self, name), name))
        if not 0.0 < self.pi < 1.0:
            never, bias = ("B", "p") if self.pi == 0.0 else ("C", "q")
            raise ValueError(
                f"pi must satisfy 0 < pi < 1, got pi = {self.pi:g}: coin {never} "
                f"would never be tossed, so {bias} would have no effect on the "
                "data and could not be estimated. For a single coin, its "
                "maximum-likelihood bias is the mean of y."
            )

    @property
    def heads_probability(self) -> float:
        """P(y = 1 | theta) = pi p + (1 - pi) q, the chance of recording heads."""
        return self.pi * self.p + (1.0 - self.pi) * self.q


def _check_theta(theta):
    if not isinstance(theta, ThreeCoins):
        raise TypeError(
            "theta must be an emlib.three_coins.ThreeCoins(pi, p, q), "
            f"got {type(theta).__name__}."
        )


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def _as_tosses(y):
    """Validate tosses ``y``: shape (N,) or (N, 1), N >= 1, values 0 or 1.

    Booleans are accepted (True = heads). Returns a float64 copy, shape (N,).
    """
    arr = as_array(y, "y")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int8)
    y = as_observations(arr)
    bad = (y != 0.0) & (y != 1.0)
    if bad.any():
        j = int(np.argmax(bad))
        raise ValueError(
            f"y must be coin tosses coded 1 (heads) or 0 (tails); y[{j}] = {y[j]:g}."
        )
    return y


def _as_posteriors(mu, n):
    """Validate posteriors ``mu``: shape (n,), entries in [0, 1]. Returns a copy."""
    mu = as_real_array(mu, "mu")
    if mu.shape != (n,):
        raise ValueError(
            f"mu must have shape (N,) = ({n},), one posterior per toss; "
            f"got shape {mu.shape}."
        )
    if np.any(mu < 0.0) or np.any(mu > 1.0):
        raise ValueError(
            "mu must hold probabilities in [0, 1] (mu_j = P(toss j came from "
            f"coin B)); got min {mu.min():.3g}, max {mu.max():.3g}."
        )
    return mu


# ---------------------------------------------------------------------------
# Probabilities, E-step and M-step on validated input
# ---------------------------------------------------------------------------


def _joint(y, theta):
    """P(y_j, coin B | theta) and P(y_j, coin C | theta), each shape (N,).

    Each is a product of the given probabilities, never a difference of two
    nearly equal numbers, so both keep full relative precision.
    """
    heads = y == 1.0
    b = np.where(heads, theta.pi * theta.p, theta.pi * (1.0 - theta.p))
    c = np.where(heads, (1.0 - theta.pi) * theta.q, (1.0 - theta.pi) * (1.0 - theta.q))
    return b, c


def _e_step(y, theta):
    b, c = _joint(y, theta)
    total = b + c
    if not np.all(total > 0.0):
        j = int(np.argmin(total > 0.0))
        side = "heads" if y[j] == 1.0 else "tails"
        raise ValueError(
            f"toss {j} ({side}) has probability 0 under {theta}: neither coin "
            f"can show {side}, so its posterior mu_j is 0/0. Start from p and q "
            "that make every toss possible, e.g. strictly between 0 and 1."
        )
    return b / total


def _one_coin_message(n_b, n_c, n, pi):
    """Say why the posteriors (soft counts n_b, n_c) admit no ThreeCoins."""
    coin, bias, count = (
        ("B", "p", n_b) if not (n_b > 0.0 and pi > 0.0) else ("C", "q", n_c)
    )
    if count == 0.0:
        return (
            f"the posteriors give coin {coin} no tosses (soft count 0 of N = {n}): "
            f"pi would be {pi:g} and {bias} = 0/0 is undefined. Start from a "
            "theta under which both coins B and C can produce the data."
        )
    # A positive count so small next to N that pi = n_B / N rounds (or
    # underflows) to 0 or 1, which ThreeCoins refuses.
    return (
        f"the posteriors give coin {coin} a soft count of only {count:.3g} of "
        f"N = {n}, so pi = n_B / N rounds to {pi:g} in double precision; "
        f"ThreeCoins needs 0 < pi < 1 (at pi = {pi:g} coin {coin} would never be "
        "tossed). Start from a theta that gives both coins B and C a share of "
        "the data well above rounding."
    )


def _m_step(y, mu):
    n = y.size
    n_b = mu.sum()
    n_c = (1.0 - mu).sum()
    pi = n_b / n
    if not (n_b > 0.0 and n_c > 0.0 and 0.0 < pi < 1.0):
        raise ValueError(_one_coin_message(n_b, n_c, n, pi))
    # Summing mu_j y_j (zeros where y_j = 0) with the same pairwise order as
    # sum_j mu_j gives a numerator <= the denominator, so p <= 1 exactly;
    # likewise for q.
    p = (mu * y).sum() / n_b
    q = ((1.0 - mu) * y).sum() / n_c
    return ThreeCoins(pi, p, q)


def _log_likelihood(y, theta):
    n_heads = y.sum()
    n_tails = y.size - n_heads
    # P(y = 0 | theta) is summed from its two products rather than taken as
    # 1 - P(y = 1 | theta), which would lose precision when heads are likely.
    p_heads = theta.heads_probability
    p_tails = theta.pi * (1.0 - theta.p) + (1.0 - theta.pi) * (1.0 - theta.q)
    log_lik = 0.0
    with np.errstate(divide="ignore"):
        if n_heads > 0:
            log_lik += n_heads * np.log(p_heads)
        if n_tails > 0:
            log_lik += n_tails * np.log(p_tails)
    return float(log_lik)


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def log_likelihood(y: ArrayLike, theta: ThreeCoins) -> float:
    """log P(Y | theta), a sum over the N tosses.

    .. math::

        \\log P(Y \\mid \\theta)
        = \\sum_{j=1}^N \\log\\left[\\pi p^{y_j} (1 - p)^{1 - y_j}
          + (1 - \\pi) q^{y_j} (1 - q)^{1 - y_j}\\right]
        = n_1 \\log r + n_0 \\log(1 - r)

    with :math:`r = \\pi p + (1 - \\pi) q`, :math:`n_1` the number of heads
    and :math:`n_0 = N - n_1` the number of tails.

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Tosses, 1 for heads and 0 for tails (bools accepted).
    theta : ThreeCoins
        Parameters (pi, p, q).

    Returns
    -------
    float
        ``-inf`` if some toss has probability 0 under theta (for example a
        tail when p = q = 1).

    Examples
    --------
    >>> from emlib import three_coins
    >>> theta = three_coins.ThreeCoins(pi=0.4, p=0.6, q=0.7)
    >>> y = [1, 1, 0, 1, 0, 0, 1, 0, 1, 1]  # Li Hang's example 9.1
    >>> print(f"{three_coins.log_likelihood(y, theta):.6f}")
    -6.808331
    """
    y = _as_tosses(y)
    _check_theta(theta)
    return _log_likelihood(y, theta)


def e_step(y: ArrayLike, theta: ThreeCoins) -> np.ndarray:
    """Posterior mu_j that toss j came from coin B (Bayes' rule).

    .. math::

        \\mu_j = \\frac{\\pi p^{y_j} (1 - p)^{1 - y_j}}
                      {\\pi p^{y_j} (1 - p)^{1 - y_j}
                       + (1 - \\pi) q^{y_j} (1 - q)^{1 - y_j}}

    (Li Hang, example 9.1, E-step). The posterior of coin C is 1 - mu_j.

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Tosses, 1 for heads and 0 for tails (bools accepted).
    theta : ThreeCoins
        Current parameters theta^(i).

    Returns
    -------
    ndarray, shape (N,)
        mu_j in [0, 1].

    Raises
    ------
    ValueError
        If a toss has probability 0 under theta (its posterior is 0/0).

    Examples
    --------
    >>> from emlib import three_coins
    >>> theta = three_coins.ThreeCoins(pi=0.4, p=0.6, q=0.7)
    >>> mu = three_coins.e_step([1, 1, 0, 1, 0, 0, 1, 0, 1, 1], theta)
    >>> print(mu.round(4))
    [0.3636 0.3636 0.4706 0.3636 0.4706 0.4706 0.3636 0.4706 0.3636 0.3636]
    """
    y = _as_tosses(y)
    _check_theta(theta)
    return _e_step(y, theta)


def m_step(y: ArrayLike, mu: ArrayLike) -> ThreeCoins:
    """Closed-form maximiser of Q(theta, theta^(i)) given the posteriors mu_j.

    .. math::

        \\hat\\pi = \\frac{1}{N} \\sum_{j=1}^N \\mu_j, \\quad
        \\hat p = \\frac{\\sum_j \\mu_j y_j}{\\sum_j \\mu_j}, \\quad
        \\hat q = \\frac{\\sum_j (1 - \\mu_j) y_j}{\\sum_j (1 - \\mu_j)}

    (Li Hang, example 9.1, M-step; derived in notebooks/50-three-coins.ipynb).

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Tosses, 1 for heads and 0 for tails (bools accepted).
    mu : array_like, shape (N,)
        Posteriors mu_j = P(toss j came from coin B), each in [0, 1].

    Returns
    -------
    ThreeCoins
        theta^(i+1).

    Raises
    ------
    ValueError
        If the posteriors give all the weight to one coin (every mu_j is 0,
        or every mu_j is 1): the other coin's bias is then 0/0. Also if they
        give one coin so little weight that pi = sum(mu) / N rounds to 0 or 1
        in double precision (``ThreeCoins`` needs 0 < pi < 1).

    Examples
    --------
    >>> from emlib import three_coins
    >>> theta = three_coins.ThreeCoins(pi=0.4, p=0.6, q=0.7)
    >>> y = [1, 1, 0, 1, 0, 0, 1, 0, 1, 1]
    >>> new = three_coins.m_step(y, three_coins.e_step(y, theta))
    >>> print(f"pi = {new.pi:.4f}, p = {new.p:.4f}, q = {new.q:.4f}")
    pi = 0.4064, p = 0.5368, q = 0.6432
    """
    y = _as_tosses(y)
    return _m_step(y, _as_posteriors(mu, y.size))


def theta_to_vector(theta: ThreeCoins) -> np.ndarray:
    """theta as the flat vector SQUAREM extrapolates: (pi, p, q) themselves.

    Three probabilities; :func:`vector_to_theta` rejects an extrapolation
    that leaves 0 < pi < 1, 0 <= p, q <= 1. (EM reaches a fixed point in
    one step on this model, so SQUAREM has nothing to accelerate: its
    cycles reduce to plain EM steps.)

    Parameters
    ----------
    theta : ThreeCoins

    Returns
    -------
    ndarray, shape (3,)
    """
    return np.array([theta.pi, theta.p, theta.q])


def vector_to_theta(vector: np.ndarray, like: ThreeCoins) -> ThreeCoins:
    """The ThreeCoins (pi, p, q) of a :func:`theta_to_vector` vector.

    Parameters
    ----------
    vector : ndarray, shape (3,)
    like : ThreeCoins
        Unused (every ThreeCoins has the same shape); kept for the core's
        common signature.

    Returns
    -------
    ThreeCoins

    Raises
    ------
    ValueError
        If the vector lies outside the parameter space.
    """
    return ThreeCoins(*(float(value) for value in vector))


def em(
    y: ArrayLike,
    init: ThreeCoins,
    *,
    tol: float = 1e-10,
    max_iter: int = 1000,
    accelerate: Literal["squarem"] | None = None,
    stop: Literal["gain", "aitken"] = "gain",
) -> EMResult:
    """Fit the three-coin model by expectation-maximisation.

    Iterates theta^(i+1) = m_step(y, e_step(y, theta^(i))) from ``init``.

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Tosses, 1 for heads and 0 for tails (bools accepted).
    init : ThreeCoins
        The start theta^(0) (:func:`initial_theta` gives one). Not a number
        of components, as the other models' ``em`` accept: this model has
        two, coins B and C. The maximisers form a whole surface
        pi p + (1 - pi) q = mean(y), and which of them EM reaches depends on
        the start.
    tol : float, default 1e-10
        Stop when an iteration raises the log-likelihood by less than
        ``tol * N`` (a per-toss gain below tol). With ``tol=0`` exactly
        ``max_iter`` iterations run (unless the log-likelihood falls).
    max_iter : int, default 1000
        Maximum number of iterations (>= 1).
    accelerate : {None, "squarem"}, default None
        "squarem": SQUAREM with the monotonicity safeguard
        (:func:`theta_to_vector`); as in :func:`emlib.em`.
    stop : {"gain", "aitken"}, default "gain"
        The stopping rule, as in :func:`emlib.em`.

    Returns
    -------
    EMResult

    Raises
    ------
    TypeError
        If ``init`` is not a :class:`ThreeCoins`, or tol / max_iter have the
        wrong type.
    ValueError
        On bad data, if a toss is impossible under the start, or if the
        posteriors give one coin no tosses.

    Warns
    -----
    emlib.ConvergenceWarning
        If the run stops on ``max_iter`` with tol > 0, or on a decrease.

    Notes
    -----
    Every M-step returns a theta with pi p + (1 - pi) q equal to the observed
    frequency of heads, and at any such theta the EM map is the identity.
    So, in exact arithmetic, EM stops moving after one iteration; in floating
    point the second iteration gains nothing beyond rounding, and with the
    default ``tol`` the result has ``n_iter == 2`` (or 1 if the start already
    has that frequency).

    Examples
    --------
    >>> from emlib import three_coins
    >>> theta = three_coins.ThreeCoins(pi=0.4, p=0.6, q=0.7)
    >>> fit = three_coins.em([1, 1, 0, 1, 0, 0, 1, 0, 1, 1], theta)
    >>> pi, p, q = fit.theta.pi, fit.theta.p, fit.theta.q
    >>> print(fit.converged, f"pi = {pi:.4f}, p = {p:.4f}, q = {q:.4f}")
    True pi = 0.4064, p = 0.5368, q = 0.6432
    """
    y = _as_tosses(y)
    if not isinstance(init, ThreeCoins):
        raise TypeError(
            "init must be an emlib.three_coins.ThreeCoins(pi, p, q) start, "
            f"got {type(init).__name__}."
        )
    return run_em(
        lambda theta: (_log_likelihood(y, theta), _e_step(y, theta)),
        lambda theta, mu: _m_step(y, mu),
        init,
        n=y.size,
        tol=tol,
        max_iter=max_iter,
        accelerate=accelerate,
        stop=stop,
        to_vector=theta_to_vector,
        from_vector=vector_to_theta,
    )


def initial_theta(y: ArrayLike) -> ThreeCoins:
    """A deterministic start: pi = 1/2, p and q either side of the heads rate.

    With r = mean(y), p = (1 + r) / 2 and q = r / 2, the midpoints of [r, 1]
    and [0, r]: coin B starts as the likelier to show heads, as the 1-D
    mixture's start puts its components in order. Every toss is possible
    under it (p > 0 and q < 1), so the E-step is defined. Which maximiser EM
    reaches depends on the start (see :func:`em`); this one is only a
    reproducible default.

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Tosses, 1 for heads and 0 for tails (bools accepted).

    Returns
    -------
    ThreeCoins
    """
    rate = _as_tosses(y).mean()
    return ThreeCoins(0.5, (1.0 + rate) / 2.0, rate / 2.0)
