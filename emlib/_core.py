"""The one EM loop every model runs through, its result and its warning.

A model supplies two functions (the shape of scikit-learn's
``BaseMixture.fit_predict`` and of dynamax's ``fit_em``):

- an E-pass ``e_pass(theta) -> (log_lik, statistics)``: log P(data | theta)
  and whatever the M-step needs from the data at theta (responsibilities,
  expected counts, moments);
- an M-step ``m_step(theta, statistics) -> theta_new``.

:func:`run_em` owns everything else: the iteration, the history of the
log-likelihood, the stopping rule and the warnings, and, on request, the
SQUAREM acceleration (:func:`run_em`'s ``accelerate``) and Aitken's stopping
rule (``stop="aitken"``, :func:`aitken_limit`). Nothing here knows a model;
parameters are passed through untouched, except that SQUAREM reads them as
flat vectors through the two maps the model supplies (``to_vector``,
``from_vector``).
"""

import itertools
import warnings
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import as_real_array, check_choice, check_stopping_rule
from emlib._numerics import EPS

STOP_REASONS = ("converged", "max_iter", "decrease")
ACCELERATIONS = (None, "squarem")
STOPPING_RULES = ("gain", "aitken")
# SQUAREM's step-length bounds (Varadhan and Roland 2008, and
# their R package SQUAREM's defaults): |alpha| starts capped at 1 (a plain
# double EM step), the cap is multiplied by 4 each time a step reaches it and
# divided by 4 (never below 1) when such a step is rejected, so the
# extrapolation lengthens only while it keeps being accepted.
_STEP_MAX_START = 1.0
_STEP_MAX_FACTOR = 4.0
# |alpha| within this of 1 is a plain double EM step (the R package's 0.01).
_PLAIN_ALPHA = 0.01

# How far the log-likelihood may fall between iterations and still count as
# rounding, in units of eps * (|log P| + N). log P is a sum of N terms
# log P(x_j | theta), each computed to a few ulps of its own size plus a few
# ulps of 1 (the log of a density near 1 still carries the error of the
# log-sum-exp), so its rounding is a few eps * (sum_j |log P(x_j)| + N);
# |log P| + N stands in for that sum (equal to it when every term has the same
# sign). Measured on EM runs iterated with tol=0 hundreds of iterations past
# convergence (1-D mixtures on Old Faithful and on 500,000 points offset by
# 1e4 or scaled by 1e-6; the four multivariate covariance types on Old
# Faithful and iris; PPCA on iris, q = 1, 2, 3; an HMM on 2,000 symbols; the
# three-coin model), the largest fall was 3.1 eps (|log P| + N) (iris, tied
# covariance: 2.8e-13). 64 gives a margin of 20 over that, and is still below
# 1.5e-14 (|log P| + N): a genuine decrease (a regularised M-step, a bug) is
# many orders of magnitude larger.
ROUNDING_ULPS = 64


class ConvergenceWarning(UserWarning):
    """EM stopped without converging: on ``max_iter``, or on a decrease.

    Issued by every model's ``em`` (and :func:`emlib.linear_vae.fit`) when
    the result's ``stop_reason`` is "decrease" (always) or "max_iter" with
    ``tol > 0`` (``tol=0`` asks for exactly ``max_iter`` iterations). As
    scikit-learn's ``sklearn.exceptions.ConvergenceWarning``, a
    ``UserWarning``: filter it with ``warnings.simplefilter("ignore",
    emlib.ConvergenceWarning)``.
    """


class EMResult(NamedTuple):
    """The outcome of every model's ``em``.

    Attributes
    ----------
    theta : parameter object
        The last iterate theta^(n_iter) (the model's class: emlib.GMM,
        multivariate.GMM, hmm.HMM, ppca.PPCA, three_coins.ThreeCoins).
    log_likelihoods : ndarray, shape (n_iter + 1,)
        log P(data | theta^(i)) for i = 0..n_iter, the start included;
        non-decreasing up to rounding unless ``stop_reason`` is "decrease"
        (the EM monotonicity theorem).
    n_iter : int
        Number of iterations performed: EM steps, or with
        ``accelerate="squarem"`` SQUAREM cycles (accepted iterates).
    converged : bool
        True exactly when ``stop_reason`` is "converged".
    stop_reason : {"converged", "max_iter", "decrease"}
        "converged": an iteration raised the log-likelihood by less than
        ``tol * N``. "max_iter": ``max_iter`` iterations ran without that.
        "decrease": the last iteration lowered the log-likelihood by more
        than rounding explains (see :func:`rounding_allowance`); theta is
        the iterate after the fall.
    n_evaluations : int
        Number of E-passes (evaluations of the EM map) the run made, the
        start's included: ``n_iter + 1`` for plain EM, 2 to 4 per cycle with
        SQUAREM. The cost to compare between plain and accelerated runs.
    """

    theta: Any
    log_likelihoods: np.ndarray
    n_iter: int
    converged: bool
    stop_reason: str
    n_evaluations: int


def rounding_allowance(log_lik: float, n: float) -> float:
    """How far log P may fall between iterates and still be rounding.

    ``ROUNDING_ULPS * eps * (|log_lik| + n)``; see the comment at
    ``ROUNDING_ULPS`` for the measurement behind it.

    Parameters
    ----------
    log_lik : float
        The log-likelihood before the iteration.
    n : int
        N, the number of terms in its sum.

    Returns
    -------
    float
    """
    return ROUNDING_ULPS * EPS * (abs(log_lik) + n)


def run_em(
    e_pass: Callable[[Any], tuple[float, Any]],
    m_step: Callable[[Any, Any], Any],
    theta: Any,
    *,
    n: float,
    tol: float,
    max_iter: int,
    allowance: Callable[[float, float], float] = rounding_allowance,
    objective: str = "log-likelihood",
    accelerate: Literal["squarem"] | None = None,
    stop: Literal["gain", "aitken"] = "gain",
    to_vector: Callable[[Any], np.ndarray] | None = None,
    from_vector: Callable[..., Any] | None = None,
) -> EMResult:
    """Iterate EM from ``theta`` until the stopping rule says stop.

    Parameters
    ----------
    e_pass : callable
        ``e_pass(theta) -> (log_lik, statistics)``.
    m_step : callable
        ``m_step(theta, statistics) -> theta_new``; may return ``None`` to
        say that no step raises the objective beyond rounding (theta is
        stationary), which stops the run as "converged".
    theta : object
        The start theta^(0).
    n : int or float
        N, the number of observations (the sum of the sample weights when
        the model has them): the stopping threshold is ``tol * N`` (a
        per-observation gain below tol).
    tol : float
        >= 0. Stop as "converged" when an iteration gains less than
        ``tol * N`` (``stop="gain"``), or when Aitken's estimate of the
        distance to the limit is below it (``stop="aitken"``). With 0,
        exactly ``max_iter`` iterations run (unless the objective falls).
    max_iter : int
        >= 1.
    allowance : callable, default :func:`rounding_allowance`
        ``allowance(log_lik, n)``: the largest fall from ``log_lik`` that is
        still rounding. A fall beyond it stops the run as "decrease".
    objective : str, default "log-likelihood"
        The objective's name, for the warning messages.
    accelerate : {None, "squarem"}, default None
        None: plain EM, one M-step and one E-pass per iteration.
        "squarem": each iteration is a SQUAREM cycle (:func:`squarem_cycle`),
        which needs ``to_vector`` and ``from_vector``.
    stop : {"gain", "aitken"}, default "gain"
        The convergence test applied to the accepted log-likelihoods
        l_0, l_1, ...: "gain" stops when l_i - l_{i-1} < tol * N; "aitken"
        when Aitken's estimate of l* - l_i (:func:`aitken_distance`) is below
        tol * N, which on a slowly converging (rate c near 1) run is larger
        than the gain by the factor c / (1 - c). It assumes a linear rate,
        as plain EM has; SQUAREM's gains are not geometric.
    to_vector, from_vector : callable, optional
        The model's parametrisation, for SQUAREM: ``to_vector(theta)`` -> a
        1-D float array, and ``from_vector(vector, like=theta)`` -> the
        parameter object (``like`` supplies what the vector leaves out),
        raising ``ValueError`` when the vector lies outside the parameter
        space.

    Returns
    -------
    EMResult

    Warns
    -----
    ConvergenceWarning
        When the run stops on "decrease", or on "max_iter" with tol > 0.
    """
    check_stopping_rule(tol, max_iter)
    check_choice(accelerate, ACCELERATIONS, "accelerate")
    check_choice(stop, STOPPING_RULES, "stop")
    counted = _CountedEPass(e_pass)
    state = _Iterate(theta, *counted(theta))
    history = [state.log_lik]
    stop_reason = "max_iter"
    step_max = _STEP_MAX_START

    def fell(before, after):
        return after < before - allowance(before, n)

    while len(history) <= max_iter:
        if accelerate == "squarem":
            new_state, step_max = squarem_cycle(
                counted, m_step, state, to_vector, from_vector, fell, step_max
            )
        else:
            new_state = _em_step(counted, m_step, state)
        if new_state is None:
            stop_reason = "converged"
            break
        state = new_state
        history.append(state.log_lik)
        if fell(history[-2], history[-1]):
            stop_reason = "decrease"
            break
        if tol > 0 and _converged(history, tol * n, stop):
            stop_reason = "converged"
            break
    n_iter = len(history) - 1
    _warn(stop_reason, history, n_iter, tol * n, objective)
    return EMResult(
        state.theta,
        np.array(history),
        n_iter,
        stop_reason == "converged",
        stop_reason,
        counted.count,
    )


class _Iterate(NamedTuple):
    """An iterate with its E-pass: theta, log P(data | theta), statistics."""

    theta: Any
    log_lik: float
    statistics: Any


class _CountedEPass:
    """An E-pass that counts its calls (EMResult.n_evaluations)."""

    def __init__(self, e_pass):
        self.e_pass = e_pass
        self.count = 0

    def __call__(self, theta):
        self.count += 1
        return self.e_pass(theta)


def _em_step(e_pass, m_step, state):
    """One EM step from ``state`` (an _Iterate), or None if it is stationary."""
    theta = m_step(state.theta, state.statistics)
    if theta is None:
        return None
    return _Iterate(theta, *e_pass(theta))


def squarem_cycle(e_pass, m_step, state, to_vector, from_vector, fell, step_max):
    """One cycle of SQUAREM, scheme S3, with the monotonicity safeguard.

    With F the EM map and theta_0 the current iterate (Varadhan and Roland
    2008, Scand. J. Statist. 35, 335-353, steplength scheme S3):

    .. math::

        r = F(\\theta_0) - \\theta_0, \\quad
        v = F(F(\\theta_0)) - 2 F(\\theta_0) + \\theta_0, \\quad
        \\alpha = -\\frac{\\|r\\|}{\\|v\\|}, \\quad
        \\theta' = \\theta_0 - 2 \\alpha r + \\alpha^2 v,

    then one EM step from theta' stabilises: the cycle's result is
    F(theta'). alpha is clamped to [-step_max, -1]: alpha = -1 gives
    theta' = F(F(theta_0)), two plain EM steps, which are then taken as the
    result without the stabilising step. The vectors are ``to_vector`` of
    the parameters, in which the model makes the constraints easy.

    The safeguard keeps EM's monotonicity: if theta' lies outside the
    parameter space (``from_vector``, the E-pass or the M-step raises
    ``ValueError``), or the stabilised point's log-likelihood falls below
    theta_0's by more than rounding, the cycle returns the plain EM iterate
    F(F(theta_0)) instead, already computed (only its E-pass is added).

    Parameters
    ----------
    e_pass, m_step : callable
        As for :func:`run_em`.
    state : _Iterate
        theta_0 with its log-likelihood and statistics.
    to_vector, from_vector : callable
        As for :func:`run_em`.
    fell : callable
        ``fell(before, after)``: whether ``after`` is below ``before`` by more
        than rounding.
    step_max : float
        The current bound on |alpha| (>= 1).

    Returns
    -------
    new_state : _Iterate or None
        The cycle's iterate with its E-pass; None if theta_0 is stationary
        (the M-step returned None). If the first EM step fell, that step.
    step_max : float
        The bound for the next cycle: times 4 after an accepted step that
        reached it, divided by 4 (not below 1) after a rejected one.
    """
    first = _em_step(e_pass, m_step, state)
    if first is None or fell(state.log_lik, first.log_lik):
        return first, step_max  # stationary, or a decrease the run reports
    theta_2 = m_step(first.theta, first.statistics)
    if theta_2 is None:
        return first, step_max
    v_0, v_1 = to_vector(state.theta), to_vector(first.theta)
    r = v_1 - v_0
    # v = (theta_2 - theta_1) - (theta_1 - theta_0): differences of nearby
    # iterates first, so v keeps its digits when the steps are small.
    v = (to_vector(theta_2) - v_1) - r
    norm_v = np.linalg.norm(v)
    alpha = -np.linalg.norm(r) / norm_v if norm_v > 0 else -1.0
    alpha = min(-1.0, max(-step_max, alpha))
    at_cap = alpha == -step_max
    if alpha > -1.0 - _PLAIN_ALPHA:
        plain = _Iterate(theta_2, *e_pass(theta_2))
        return plain, step_max * _STEP_MAX_FACTOR if at_cap else step_max
    try:
        vector_x = v_0 - 2.0 * alpha * r + alpha * alpha * v
        theta_x = from_vector(vector_x, like=state.theta)
        stabilised = _em_step(e_pass, m_step, _Iterate(theta_x, *e_pass(theta_x)))
    except ValueError:  # theta' (or F(theta')) is outside the parameter space
        stabilised = None
    if stabilised is not None and not fell(state.log_lik, stabilised.log_lik):
        return stabilised, step_max * _STEP_MAX_FACTOR if at_cap else step_max
    if at_cap:
        step_max = max(_STEP_MAX_START, step_max / _STEP_MAX_FACTOR)
    return _Iterate(theta_2, *e_pass(theta_2)), step_max


def aitken_distance(previous_gain: float, gain: float) -> float:
    """Aitken's estimate of l* - l_i from the last two gains of a sequence.

    With gains g_{i-1} = l_{i-1} - l_{i-2} and g_i = l_i - l_{i-1} of a
    linearly converging sequence, c = g_i / g_{i-1} estimates the rate and
    the remaining gains sum to g_i (c + c^2 + ...) = g_i c / (1 - c).

    Parameters
    ----------
    previous_gain, gain : float
        g_{i-1} and g_i.

    Returns
    -------
    float
        g_i c / (1 - c) when 0 < c < 1; ``inf`` when c >= 1 with g_i > 0
        (the gains are not shrinking, so no finite limit is in sight); and
        g_i itself when c <= 0 or is undefined (a gain <= 0: the sequence
        is at rounding level, and the gain is the only scale left).
    """
    if 0.0 < gain < previous_gain:
        c = gain / previous_gain
        return gain * c / (1.0 - c)
    if gain > 0.0 and previous_gain > 0.0:
        return np.inf
    return gain


def aitken_limit(log_likelihoods: ArrayLike) -> np.ndarray:
    """Aitken's Delta^2 estimates of the limit l* of a log-likelihood sequence.

    From three successive values l_{i-1}, l_i, l_{i+1}, with
    c = (l_{i+1} - l_i) / (l_i - l_{i-1}) the estimated rate,

    .. math::

        \\hat\\ell^*_i = \\ell_i + \\frac{\\ell_{i+1} - \\ell_i}{1 - c},

    exact for a sequence l* - A c^i (EM's log-likelihood near a maximum,
    where c is the square of the EM map's largest eigenvalue).

    Parameters
    ----------
    log_likelihoods : array_like, shape (n,)
        l_0, ..., l_{n-1}, n >= 3, finite (``EMResult.log_likelihoods``).

    Returns
    -------
    ndarray, shape (n - 2,)
        Entry i - 1 is the estimate from l_{i-1}, l_i, l_{i+1}. Where c is
        not in (0, 1) (the gains grow, change sign or vanish) no linear
        rate is there to extrapolate, and the entry is l_{i+1} itself: never
        NaN, never infinite.

    Raises
    ------
    ValueError
        If the sequence is not 1-D, finite, with at least 3 entries.
    """
    ll = as_real_array(log_likelihoods, "log_likelihoods")
    if ll.ndim != 1 or ll.size < 3:
        raise ValueError(
            "log_likelihoods must be a 1-D sequence of at least 3 values (Aitken's "
            f"estimate uses three successive ones); got shape {ll.shape}."
        )
    gains = np.diff(ll)
    estimates = ll[2:].copy()
    for i, (previous_gain, gain) in enumerate(itertools.pairwise(gains)):
        if 0.0 < gain < previous_gain:  # c in (0, 1)
            estimates[i] += aitken_distance(previous_gain, gain)
    return estimates


def _converged(history, threshold, stop):
    """Whether the accepted log-likelihoods meet the stopping rule ``stop``."""
    gain = history[-1] - history[-2]
    if stop == "gain":
        return gain < threshold
    if len(history) < 3:
        return False
    return aitken_distance(history[-2] - history[-3], gain) < threshold


def _warn(stop_reason, history, n_iter, threshold, objective):
    """Issue the ConvergenceWarning a stop calls for (none for "converged")."""
    # stacklevel 4: _warn, run_em, the model's em, its caller.
    if stop_reason == "decrease":
        fall = history[-2] - history[-1]
        warnings.warn(
            f"EM stopped at iteration {n_iter}: the {objective} fell by "
            f"{fall:.3g} (from {history[-2]:.10g} to {history[-1]:.10g}), more "
            "than rounding explains. EM cannot decrease it, so the M-step does "
            "not maximise this objective (a regularised M-step maximises a "
            "penalised one). The result is the iterate after the fall.",
            ConvergenceWarning,
            stacklevel=4,
        )
    elif stop_reason == "max_iter" and threshold > 0:
        gain = history[-1] - history[-2]
        warnings.warn(
            f"EM did not converge in max_iter = {n_iter} iterations: iteration "
            f"{n_iter} raised the {objective} by {gain:.3g}, not below tol * N "
            f"= {threshold:.3g}. Raise max_iter, or pass tol=0 to ask for "
            "exactly max_iter iterations.",
            ConvergenceWarning,
            stacklevel=4,
        )
