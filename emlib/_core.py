"""The one EM loop every model runs through, its result and its warning.

A model supplies two functions (the shape of scikit-learn's
``BaseMixture.fit_predict`` and of dynamax's ``fit_em``):

- an E-pass ``e_pass(theta) -> (log_lik, statistics)``: log P(data | theta)
  and whatever the M-step needs from the data at theta (responsibilities,
  expected counts, moments);
- an M-step ``m_step(theta, statistics) -> theta_new``.

:func:`run_em` owns everything else: the iteration, the history of the
log-likelihood, the stopping rule and the warnings. Nothing here knows a
model; parameters are passed through untouched.
"""

import warnings
from typing import Any, NamedTuple

import numpy as np

from emlib._checks import check_stopping_rule
from emlib._numerics import EPS

STOP_REASONS = ("converged", "max_iter", "decrease")

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
        Number of EM iterations (M-steps) performed.
    converged : bool
        True exactly when ``stop_reason`` is "converged".
    stop_reason : {"converged", "max_iter", "decrease"}
        "converged": an iteration raised the log-likelihood by less than
        ``tol * N``. "max_iter": ``max_iter`` iterations ran without that.
        "decrease": the last iteration lowered the log-likelihood by more
        than rounding explains (see :func:`rounding_allowance`); theta is
        the iterate after the fall.
    """

    theta: Any
    log_likelihoods: np.ndarray
    n_iter: int
    converged: bool
    stop_reason: str


def rounding_allowance(log_lik, n):
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
    e_pass,
    m_step,
    theta,
    *,
    n,
    tol,
    max_iter,
    allowance=rounding_allowance,
    objective="log-likelihood",
):
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
        ``tol * N``. With 0, exactly ``max_iter`` iterations run (unless the
        objective falls).
    max_iter : int
        >= 1.
    allowance : callable, default :func:`rounding_allowance`
        ``allowance(log_lik, n)``: the largest fall from ``log_lik`` that is
        still rounding. A fall beyond it stops the run as "decrease".
    objective : str, default "log-likelihood"
        The objective's name, for the warning messages.

    Returns
    -------
    EMResult

    Warns
    -----
    ConvergenceWarning
        When the run stops on "decrease", or on "max_iter" with tol > 0.
    """
    check_stopping_rule(tol, max_iter)
    log_lik, statistics = e_pass(theta)
    history = [log_lik]
    stop_reason = "max_iter"
    while len(history) <= max_iter:
        new_theta = m_step(theta, statistics)
        if new_theta is None:
            stop_reason = "converged"
            break
        theta = new_theta
        log_lik, statistics = e_pass(theta)
        history.append(log_lik)
        gain = history[-1] - history[-2]
        if gain < -allowance(history[-2], n):
            stop_reason = "decrease"
            break
        if tol > 0 and gain < tol * n:
            stop_reason = "converged"
            break
    n_iter = len(history) - 1
    _warn(stop_reason, history, n_iter, tol * n, objective)
    return EMResult(
        theta, np.array(history), n_iter, stop_reason == "converged", stop_reason
    )


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
