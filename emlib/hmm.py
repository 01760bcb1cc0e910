"""Hidden Markov models, categorical or Gaussian: Li Hang, Statistical Learning
Methods, ch. 10.

A hidden Markov model lambda = (pi, A, B) has S hidden states and M observable
symbols. The state sequence I = (i_1, ..., i_T) starts in state i with
probability pi_i and moves from state i to state j with probability a_ij; in
state j the model emits symbol k with probability b_j(k). Only the symbols
O = (o_1, ..., o_T) are observed, and the states are the latent variables.

Probabilities come from Rabiner's scaled forward-backward recursions (Rabiner
1989, section V.A): every forward vector is renormalised to sum 1, and the
normalisers c_t = P(o_t | o_1, ..., o_{t-1}, lambda) multiply to P(O | lambda),
so log P(O | lambda) = sum_t log c_t stays finite for sequences of any length.
Zero entries in pi, A or B are allowed: they only make some paths impossible.
The Viterbi algorithm works with logarithms, where log 0 = -inf is exact.
:func:`em` (also named :func:`baum_welch`, its textbook name) is EM for this
model, with the M-step of Li Hang's (10.39)-(10.41). Everything is derived
with SymPy in notebooks/70-hmm-baum-welch.ipynb.

:class:`GaussianHMM` replaces B by a Gaussian with diagonal covariance per
state, b_j(x) = prod_d N(x_d; mu_jd, sigma_jd^2); its observations are real
vectors, an array of shape (T, D) per sequence. Every function takes either
model, and reads the emission model only through the (T, S) matrix of
log b_j(o_t) (:func:`_log_emission`). :func:`em` also fits MAP estimates
under Dirichlet priors on pi, the rows of A and the rows of B (hmmlearn's
``startprob_prior``, ``transmat_prior``, ``emissionprob_prior``). Both are
derived in notebooks/72-hmm-gaussian-and-map.ipynb.

``obs`` is either one sequence (a 1-D array_like of ints in [0, M) for
:class:`HMM`, a real array_like of shape (T, D) for :class:`GaussianHMM`) or a
list (or tuple) of such sequences, which are independent: their log-likelihoods
and their sufficient statistics add. Every function returns the same kind of
result whichever it is given: a float for :func:`log_likelihood` (the sum
over sequences), an ``EMResult`` for :func:`em`, and lists with one entry per
sequence, in the order of the input, for the per-sequence :func:`posteriors`
and :func:`viterbi` (a single sequence is a list of one). States and symbols
are numbered from 0, as in numpy (the book numbers them from 1).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from emlib import _hmm_scan, multivariate
from emlib._checks import (
    SUM_TOL,
    Parameters,
    as_array,
    as_generator,
    as_real_array,
    check_int,
    check_magnitude,
    is_int,
    read_only,
)
from emlib._core import EMResult, run_em
from emlib._numerics import weighted_moments
from emlib.model import check_components

# Below this, a forward vector's entry may have lost terms that underflowed
# (tiny / eps, about 1e-292; see _forward).
_SAFE = np.finfo(np.float64).tiny / np.finfo(np.float64).eps
# A scaled gamma_t whose sum is off 1 by more than this lost terms (1e-9:
# rounding of the recursions is ~T S eps, far below it for any T < 1e6).
_GAMMA_SUM_TOL = 1e-9

# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------


def _read_only_stochastic(name, values, ndim, what):
    """A read-only float64 copy of a vector or matrix of distributions.

    Each row (the whole vector when ``ndim == 1``) must hold entries >= 0
    summing to 1 within ``SUM_TOL``; ``what`` says what a row is, for errors.
    """
    arr = as_real_array(values, name)
    if arr.ndim != ndim or 0 in arr.shape:
        shape = "(S,)" if ndim == 1 else "(S, S)" if name == "transition" else "(S, M)"
        raise ValueError(
            f"{name} must be a non-empty array of shape {shape}, got shape {arr.shape}."
        )
    rows = arr.reshape(-1, arr.shape[-1])
    if np.any(rows < 0):
        raise ValueError(
            f"{name} must hold probabilities >= 0; got min {rows.min():.3g}."
        )
    sums = rows.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > SUM_TOL:
        where = "" if ndim == 1 else f" row {worst}"
        raise ValueError(
            f"{name}{where} must sum to 1 ({what}); it sums to {sums[worst]:.12g}."
        )
    return read_only(arr)


def _format_array(a):
    """A 1-D or 2-D array as nested lists of 6-significant-digit numbers."""
    if a.ndim == 1:
        return "[" + ", ".join(f"{v:.6g}" for v in a) + "]"
    return "[" + ", ".join(_format_array(row) for row in a) + "]"


@dataclass(frozen=True, eq=False)
class HMM(Parameters):
    """Parameters lambda = (pi, A, B) of a categorical hidden Markov model.

    .. math::

        P(O, I \\mid \\lambda) = \\pi_{i_1} b_{i_1}(o_1)
            \\prod_{t=2}^{T} a_{i_{t-1} i_t} b_{i_t}(o_t)

    Instances are immutable: the arrays are read-only copies of the inputs.

    Parameters
    ----------
    start : array_like, shape (S,)
        pi_i = P(i_1 = i), the initial state distribution.
    transition : array_like, shape (S, S)
        a_ij = P(i_{t+1} = j | i_t = i); each row is a distribution.
    emission : array_like, shape (S, M)
        b_j(k) = P(o_t = k | i_t = j); each row is a distribution.

    Raises
    ------
    TypeError
        If an argument is not real numbers.
    ValueError
        If a shape is wrong or the shapes disagree on S, a value is negative
        or not finite, or a distribution does not sum to 1 (within 1e-9).
    """

    start: np.ndarray
    transition: np.ndarray
    emission: np.ndarray

    def __post_init__(self) -> None:
        start = _read_only_stochastic(
            "start", self.start, 1, "the distribution of the first state"
        )
        transition = _read_only_stochastic(
            "transition", self.transition, 2, "the next state's distribution"
        )
        emission = _read_only_stochastic(
            "emission", self.emission, 2, "the distribution of a state's symbols"
        )
        n_states = start.size
        if transition.shape != (n_states, n_states) or emission.shape[0] != n_states:
            raise ValueError(
                "start (S,), transition (S, S) and emission (S, M) must agree on "
                f"the number of states S; got shapes {start.shape}, "
                f"{transition.shape}, {emission.shape}."
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "transition", transition)
        object.__setattr__(self, "emission", emission)

    @property
    def n_states(self) -> int:
        """Number of hidden states S."""
        return self.start.size

    @property
    def n_symbols(self) -> int:
        """Number of observable symbols M."""
        return self.emission.shape[1]

    def __repr__(self) -> str:
        fmt = _format_array
        return (
            f"HMM(start={fmt(self.start)}, transition={fmt(self.transition)}, "
            f"emission={fmt(self.emission)})"
        )


@dataclass(frozen=True, eq=False)
class GaussianHMM(Parameters):
    """Parameters (pi, A, mu, sigma^2) of an HMM with diagonal Gaussian emissions.

    .. math::

        b_j(x) = \\prod_{d=1}^{D} \\frac{1}{\\sqrt{2\\pi\\sigma_{jd}^2}}
            \\exp\\Big(-\\frac{(x_d - \\mu_{jd})^2}{2\\sigma_{jd}^2}\\Big)

    replaces b_j(k) of :class:`HMM`; pi and A are as there. Instances are
    immutable: the arrays are read-only copies of the inputs.

    Parameters
    ----------
    start : array_like, shape (S,)
        pi_i = P(i_1 = i).
    transition : array_like, shape (S, S)
        a_ij = P(i_{t+1} = j | i_t = i); each row is a distribution.
    means : array_like, shape (S, D)
        mu_jd, the mean of feature d in state j.
    variances : array_like, shape (S, D)
        sigma_jd^2 > 0, the variance of feature d in state j (the diagonal
        of state j's covariance; hmmlearn's ``covariance_type="diag"``).

    Raises
    ------
    TypeError
        If an argument is not real numbers.
    ValueError
        If a shape is wrong or the shapes disagree on S or D, a value is not
        finite, a variance is <= 0, or a distribution does not sum to 1.
    """

    start: np.ndarray
    transition: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    def __post_init__(self) -> None:
        start = _read_only_stochastic(
            "start", self.start, 1, "the distribution of the first state"
        )
        transition = _read_only_stochastic(
            "transition", self.transition, 2, "the next state's distribution"
        )
        means = as_real_array(self.means, "means")
        variances = as_real_array(self.variances, "variances")
        n_states = start.size
        for name, arr in (("means", means), ("variances", variances)):
            if arr.ndim != 2 or arr.shape[0] != n_states or arr.shape[1] == 0:
                raise ValueError(
                    f"{name} must have shape (S, D) = ({n_states}, D), D >= 1, one "
                    f"row per state of start; got shape {arr.shape}."
                )
        if transition.shape != (n_states, n_states):
            raise ValueError(
                "start (S,) and transition (S, S) must agree on the number of "
                f"states S; got shapes {start.shape}, {transition.shape}."
            )
        if variances.shape != means.shape:
            raise ValueError(
                "means and variances must have the same shape (S, D); got "
                f"{means.shape} and {variances.shape}."
            )
        if not np.all(variances > 0):
            j, d = np.unravel_index(int(np.argmin(variances)), variances.shape)
            raise ValueError(
                f"variances must be > 0; variances[{j}, {d}] = "
                f"{variances[j, d]:.3g}. A variance is sigma^2 of one feature in "
                "one state: pass a positive one."
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "transition", transition)
        object.__setattr__(self, "means", read_only(means))
        object.__setattr__(self, "variances", read_only(variances))

    @property
    def n_states(self) -> int:
        """Number of hidden states S."""
        return self.start.size

    @property
    def n_features(self) -> int:
        """Dimension D of an observation."""
        return self.means.shape[1]

    def __repr__(self) -> str:
        fmt = _format_array
        return (
            f"GaussianHMM(start={fmt(self.start)}, "
            f"transition={fmt(self.transition)}, means={fmt(self.means)}, "
            f"variances={fmt(self.variances)})"
        )


def _check_hmm(hmm):
    if not isinstance(hmm, HMM | GaussianHMM):
        raise TypeError(
            "hmm must be an emlib.hmm.HMM(start, transition, emission) or an "
            "emlib.hmm.GaussianHMM(start, transition, means, variances), "
            f"got {type(hmm).__name__}."
        )


# ---------------------------------------------------------------------------
# Observations
# ---------------------------------------------------------------------------


def _as_sequence(seq, name, n_symbols, check_symbols=True):
    """One sequence as a fresh int64 array of shape (T,), T >= 1, in [0, M).

    ``n_symbols`` None (M not known yet) checks only that symbols are >= 0.
    ``check_symbols=False`` skips that range check (the caller makes it on
    many sequences at once).
    """
    arr = as_array(seq, name, expected="a 1-D sequence of ints")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; a sequence needs T >= 1 observations.")
    if arr.dtype.kind not in "iu":
        symbols = "0, 1, 2, ..." if n_symbols is None else f"[0, M) = [0, {n_symbols})"
        raise TypeError(
            f"{name} must hold integer symbols in {symbols}, got dtype "
            f"{arr.dtype}; convert with np.asarray(..., dtype=int) if the values "
            "are whole numbers."
        )
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one symbol per time step), got shape "
            f"{arr.shape}; pass several sequences as a list of 1-D sequences."
        )
    if not check_symbols:
        return arr.astype(np.int64, copy=False)
    bad = arr < 0 if n_symbols is None else (arr < 0) | (arr >= n_symbols)
    if n_symbols is None and bad.any():
        t = int(np.argmax(bad))
        raise ValueError(
            f"{name}[{t}] = {arr[t]} is not a symbol: symbols are 0, 1, 2, ..."
        )
    if bad.any():
        t = int(np.argmax(bad))
        raise ValueError(
            f"{name}[{t}] = {arr[t]} is not a symbol of this model: symbols are "
            f"0, ..., M - 1 = {n_symbols - 1} (the columns of emission)."
        )
    return arr.astype(np.int64, copy=False)


def _as_observations(obs, n_symbols):
    """Validate ``obs``: one sequence or a list of them.

    Parameters
    ----------
    obs : array_like of int, shape (T,), or list of them
    n_symbols : int or None
        M; None checks only that symbols are >= 0.

    Returns
    -------
    sequences : list of ndarray, each shape (T_k,)
        int64 copies.
    several : bool
        True if ``obs`` was a list or tuple of sequences.
    """
    several = isinstance(obs, list | tuple) and any(
        isinstance(s, list | tuple | range) or getattr(s, "ndim", 0) > 0 for s in obs
    )
    if not several:
        return [_as_sequence(obs, "obs", n_symbols)], False
    sequences = [
        _as_sequence(s, f"obs[{k}]", n_symbols, check_symbols=False)
        for k, s in enumerate(obs)
    ]
    # One range check over all symbols (a check per sequence costs more than
    # a forward pass on 1,000 short ones); on failure, name the sequence.
    symbols = np.concatenate(sequences)
    if symbols.min() < 0 or (n_symbols is not None and symbols.max() >= n_symbols):
        for k, seq in enumerate(sequences):
            _as_sequence(seq, f"obs[{k}]", n_symbols)
    return sequences, True


def _as_vectors(seq, name, n_features):
    """One Gaussian-model sequence as a fresh float64 array (T, D), T >= 1.

    ``n_features`` None (D not known yet) accepts any D >= 1.
    """
    arr = as_array(seq, name, expected="a real array of shape (T, D)")
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold real numbers (an array of shape (T, D) of int or "
            f"float), got dtype {arr.dtype}."
        )
    want = "(T, D)" if n_features is None else f"(T, D) = (T, {n_features})"
    if arr.ndim != 2 or 0 in arr.shape or n_features not in (None, arr.shape[1]):
        raise ValueError(
            f"{name} must be a non-empty array of shape {want}, one row per time "
            f"step, got shape {arr.shape}; a single feature is a column "
            "x[:, None], and several sequences a list of such arrays."
        )
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        t, d = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name}[{t}, {d}] is {arr[t, d]}: observations must be finite; "
            "remove or impute the missing values."
        )
    check_magnitude(np.abs(arr).max(), name, "divide by its standard deviation")
    return arr


def _is_vector_data(obs):
    """Whether ``obs`` is real vectors (GaussianHMM): it or its first element is
    2-D. Integer symbol sequences (HMM) are 1-D."""
    first = obs[0] if isinstance(obs, list | tuple) and len(obs) else obs
    try:
        return np.ndim(first) == 2 or np.ndim(obs) == 2
    except ValueError:  # ragged: let the validation name the bad sequence
        return False


def _as_vector_observations(obs, n_features):
    """Validate Gaussian-model ``obs``: one (T, D) array or a list of them.

    Returns a list of float64 copies, each (T_k, D), and whether ``obs`` was
    a list of sequences (a list whose elements are 2-D).
    """
    several = isinstance(obs, list | tuple) and any(
        (isinstance(s, list | tuple) and len(s) and isinstance(s[0], list | tuple))
        or getattr(s, "ndim", 0) >= 2
        for s in obs
    )
    if not several:
        return [_as_vectors(obs, "obs", n_features)], False
    sequences = [_as_vectors(s, f"obs[{k}]", n_features) for k, s in enumerate(obs)]
    if n_features is None and len({seq.shape[1] for seq in sequences}) > 1:
        raise ValueError(
            "the sequences of obs must all have the same number of features D; "
            f"got {sorted({seq.shape[1] for seq in sequences})}."
        )
    return sequences, True


def _observations_for(obs, hmm):
    """``obs`` validated for the model ``hmm``: (sequences, several)."""
    if isinstance(hmm, GaussianHMM):
        return _as_vector_observations(obs, hmm.n_features)
    return _as_observations(obs, hmm.n_symbols)


def _names(n_sequences, several):
    """How errors name each sequence: ``obs`` alone, or ``obs[k]`` in a list."""
    return [f"obs[{k}]" for k in range(n_sequences)] if several else ["obs"]


# ---------------------------------------------------------------------------
# The emission model, as a (T, S) matrix
# ---------------------------------------------------------------------------


def _log_emission(hmm, observations):
    """log b_j(o_t) for every time step and state: shape (..., S).

    ``observations`` are validated for ``hmm``: symbols of shape (T,) or a
    batch (N, T) for :class:`HMM`, vectors (T, D) or (N, T, D) for
    :class:`GaussianHMM`. With :func:`_emission_likelihoods`, the only place
    the recursions read the emission model. log 0 = -inf is exact.
    """
    if isinstance(hmm, GaussianHMM):
        # log N(x; mu_j, diag sigma_j^2)
        #   = -1/2 sum_d [log(2 pi sigma_jd^2) + (x_d - mu_jd)^2 / sigma_jd^2]
        log_normalizer = -0.5 * np.log(2.0 * np.pi * hmm.variances).sum(axis=1)
        squared = (observations[..., None, :] - hmm.means) ** 2 / hmm.variances
        return log_normalizer - 0.5 * squared.sum(axis=-1)
    with np.errstate(divide="ignore"):
        return np.log(hmm.emission).T[observations]


def _emission_likelihoods(hmm, observations):
    """b_j(o_t) up to a positive factor per time step, and the factors' logs summed.

    Parameters
    ----------
    hmm : HMM or GaussianHMM
    observations : ndarray, shape (..., T) of symbols or (..., T, D) of vectors
        One validated sequence, or a batch of N equal-length ones.

    Returns
    -------
    emitted : ndarray, shape (..., T, S)
        b_j(o_t) / exp(m_t): for :class:`HMM`, m_t = 0 (B's entries); for
        :class:`GaussianHMM`, m_t = max_j log b_j(o_t), so each row has
        largest entry 1 and densities far below float64's range (a point
        many standard deviations from every mean) cannot all underflow.
    log_offset : ndarray, shape (...)
        sum_t m_t. The forward and backward variables of ``emitted`` are
        those of b divided by prod_t exp(m_t): posteriors are unchanged and
        log P(O | lambda) is theirs plus ``log_offset``.
    """
    if isinstance(hmm, HMM):
        return hmm.emission.T[observations], np.zeros(observations.shape[:-1])
    log_b = _log_emission(hmm, observations)
    peak = log_b.max(axis=-1, keepdims=True)
    # A row of -inf (every density overflowed its exponent) stays 0: the
    # sequence is then impossible in float64, as a zero of B makes it.
    peak = np.where(np.isfinite(peak), peak, 0.0)
    return np.exp(log_b - peak), peak[..., 0].sum(axis=-1)


# ---------------------------------------------------------------------------
# Recursions on one validated sequence
# ---------------------------------------------------------------------------


def _forward(seq, hmm, emitted):
    """Scaled forward recursion (Rabiner's alpha-hat; Li Hang's forward algorithm).

    Parameters
    ----------
    seq : ndarray, shape (T,) of symbols or (T, D) of vectors
    hmm : HMM or GaussianHMM
    emitted : ndarray, shape (T, S)
        From :func:`_emission_likelihoods`: b_j(o_t) / exp(m_t).

    Returns
    -------
    alpha_hat : ndarray, shape (T, S)
        alpha_t(i) / P(o_1, ..., o_t | lambda); each row sums to 1.
    scale : ndarray, shape (T,)
        c_t = P(o_t | o_1, ..., o_{t-1}, lambda) / exp(m_t), with
        c_1 = P(o_1 | lambda) / exp(m_1). If some c_t is 0 the recursion
        stops there, leaving the later entries (and rows of alpha_hat) at 0.
    exact : bool
        False if rounding may have lost probability: some u_t(j) = c_t
        alpha-hat_t(j) (before normalising) of a state j that some path can
        be in at t is below ``_SAFE`` = tiny / eps. Terms flushed to 0 or
        subnormal are below tiny, so where every such u_t(j) >= tiny / eps
        they change it by less than S eps relative; otherwise a lost branch
        can dominate later (after the others meet a zero), and the caller
        must use log space.
    """
    alpha_hat = np.zeros_like(emitted)
    scale = np.zeros(len(emitted))
    alpha = hmm.start * emitted[0]  # alpha_1(i) = pi_i b_i(o_1)
    for t in range(len(emitted)):
        if t:
            # u_t(j) = sum_i alpha-hat_{t-1}(i) a_ij b_j(o_t)
            alpha = (alpha_hat[t - 1] @ hmm.transition) * emitted[t]
        c = alpha.sum()  # c_t = sum_j u_t(j)
        if not c > 0.0:
            break
        scale[t] = c
        np.divide(alpha, c, out=alpha_hat[t])
    unscaled = alpha_hat * scale[:, None]  # u_t(j), to rounding
    exact = bool(np.all(unscaled[_possible_states(seq, hmm)] >= _SAFE))
    return alpha_hat, scale, exact


def _possible_states(seq, hmm):
    """(T, S) bool: whether some path with P(o_1..o_t, i_t = j) > 0 ends in j.

    The forward recursion on the zero pattern of pi, A and b_j(o_t). Without
    zeros in A and in the emissions every state is possible after the first
    step.
    """
    emits = _log_emission(hmm, seq) > -np.inf  # b_j(o_t) > 0, shape (T, S)
    possible = np.empty(emits.shape, dtype=bool)
    possible[0] = (hmm.start > 0) & emits[0]
    reachable = hmm.transition > 0
    if np.all(reachable) and np.all(emits):
        possible[1:] = possible[0].any()
        return possible
    reachable = reachable.astype(np.float64)
    for t in range(1, len(emits)):
        into = possible[t - 1] @ reachable > 0
        possible[t] = into & emits[t]
    return possible


def _backward(emitted, scale, transition):
    """Scaled backward recursion: beta-hat_t = beta_t / prod_{s > t} c_s.

    Li Hang's backward algorithm, beta_t(i) = sum_j a_ij b_j(o_{t+1})
    beta_{t+1}(j), with each step divided by c_{t+1} (``emitted`` (T, S)
    and ``scale`` (T,) from :func:`_forward`; the factors exp(m_t) of the
    two cancel). Needs every c_t > 0, and ``emitted`` zero wherever
    alpha-hat_t(j) is (see :func:`_posteriors`): a state the forward pass
    cannot reach may have an unbounded beta-hat. Returns beta_hat, shape
    (T, S), with beta-hat_T = 1.
    """
    beta_hat = np.ones_like(emitted)
    for t in range(len(emitted) - 2, -1, -1):
        np.matmul(transition, emitted[t + 1] * beta_hat[t + 1], out=beta_hat[t])
        beta_hat[t] /= scale[t + 1]
    return beta_hat


def _log_start_transition(hmm):
    """log pi (S,) and log A (S, S); log 0 = -inf is exact."""
    with np.errstate(divide="ignore"):
        return np.log(hmm.start), np.log(hmm.transition)


def _log_sum_exp_rows(a):
    """log sum_i exp(a[..., i]) over the last axis, with -inf rows giving -inf."""
    peak = a.max(axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)  # all -inf: log 0 = -inf below
    with np.errstate(divide="ignore"):
        return peak[..., 0] + np.log(np.exp(a - peak).sum(axis=-1))


def _log_forward(log_b, log_start, log_transition):
    """log alpha_t(i), shape (T, S): the forward recursion in log space.

    ``log_b`` (T, S) is log b_j(o_t) (:func:`_log_emission`).
    log alpha_1(i) = log pi_i + log b_i(o_1) and
    log alpha_t(j) = log sum_i exp(log alpha_{t-1}(i) + log a_ij) + log b_j(o_t).
    A sum of exponentials is at least its largest term, so the result is
    never below Viterbi's delta_t(j) (the same recursion with max), in
    floating point too: log-sum-exp is computed as the max plus the log of a
    sum >= 1, and rounding is monotone. It costs 5 to 8 times the scaled
    recursion (measured at S = 2, 5, 10 and T = 2000), so it is the fallback
    where scaling underflows.
    """
    log_alpha = np.empty_like(log_b)
    log_alpha[0] = log_start + log_b[0]
    for t in range(1, len(log_b)):
        # Row j of the transpose holds log alpha_{t-1}(i) + log a_ij over i.
        into = (log_alpha[t - 1][:, None] + log_transition).T
        log_alpha[t] = _log_sum_exp_rows(into) + log_b[t]
    return log_alpha


def _log_backward(log_b, log_transition):
    """log beta_t(i), shape (T, S), with log beta_T = 0: the backward recursion
    log beta_t(i) = log sum_j exp(log a_ij + log b_j(o_{t+1}) + log beta_{t+1}(j)).
    """
    log_beta = np.zeros_like(log_b)
    for t in range(len(log_b) - 2, -1, -1):
        after = log_b[t + 1] + log_beta[t + 1]  # over j
        log_beta[t] = _log_sum_exp_rows(log_transition + after)
    return log_beta


def _impossible(seq, t, name):
    what = f"symbol {seq[t]}" if seq.ndim == 1 else "the observation"
    return ValueError(
        f"{name} has probability 0 under the model: no state path can produce "
        f"{what} at t = {t} after the observations before it. Posteriors are "
        "then 0/0; start from parameters that give every observation a "
        "positive probability, e.g. without zeros in emission."
    )


def _log_posteriors(seq, hmm, name):
    """:func:`_posteriors` in log space, for sequences whose scaling underflows.

    gamma_t(i) = exp(log alpha_t(i) + log beta_t(i) - log P(O)) and
    xi_t(i, j) = exp(log alpha_t(i) + log a_ij + log b_j(o_{t+1})
    + log beta_{t+1}(j) - log P(O)).
    """
    log_start, log_transition = _log_start_transition(hmm)
    log_b = _log_emission(hmm, seq)
    log_alpha = _log_forward(log_b, log_start, log_transition)
    log_lik = float(_log_sum_exp_rows(log_alpha[-1]))
    if log_lik == -np.inf:
        raise _impossible(seq, int(np.argmax(np.all(log_alpha == -np.inf, 1))), name)
    log_beta = _log_backward(log_b, log_transition)
    gamma = np.exp(log_alpha + log_beta - log_lik)
    after = log_b[1:] + log_beta[1:]  # (T-1, S) over j
    xi = np.exp(log_alpha[:-1, :, None] + log_transition + after[:, None, :] - log_lik)
    return gamma, xi, log_lik


def _posteriors(seq, hmm, name, pairs=True):
    """gamma (T, S), xi (T-1, S, S) and log P(O | lambda) for one sequence.

    ``name`` names the sequence in errors. Scaled recursions, or log space
    where they underflow. ``pairs=False`` returns sum_t xi_t (S, S) in place
    of xi, without forming the (T - 1, S, S) array (41 million numbers at
    T = 10,000, S = 64): sum_t alpha-hat_t(i) a_ij after_t(j) is
    a_ij (F^T G)_ij with F_t = alpha-hat_t and G_t = after_t, one matmul.
    """
    emitted, log_offset = _emission_likelihoods(hmm, seq)
    alpha_hat, scale, exact = _forward(seq, hmm, emitted)
    if not exact:
        return _summed(_log_posteriors(seq, hmm, name), pairs)
    if not np.all(scale > 0.0):  # exactly impossible
        raise _impossible(seq, int(np.argmin(scale > 0.0)), name)
    # alpha-hat_t(j) = 0 exactly for a state j no path reaches at t (each term
    # of u_t(j) has a zero factor), so gamma_t(j) = 0 and xi into it are 0
    # whatever beta_t(j) is. But its beta-hat_t(j) = beta_t(j) / prod_{s>t} c_s
    # is unbounded: with c_s ~ 1e-166 it overflowed, and 0 inf = NaN reached
    # the reachable states through a zero a_ij b_j. Zeroing b_j(o_t) there
    # changes no term of a reachable state (each had a zero factor) and bounds
    # every beta-hat_t(i) by 1 / _SAFE ~ 1e292, as c_t <= 1 (every emitted
    # entry is <= 1) and, when exact, u_t(j) >= _SAFE for every reachable j:
    # a reachable i has beta-hat_t(i) = gamma_t(i) / alpha-hat_t(i) <= c_t /
    # u_t(i); an unreachable i sums a_ij b_j(o_{t+1}) beta-hat_{t+1}(j) /
    # c_{t+1} over reachable j, each factor b_j beta-hat_{t+1}(j) / c_{t+1}
    # = gamma_{t+1}(j) / (alpha-hat_t A)_j <= 1 / u_{t+1}(j) <= 1 / _SAFE
    # (the same bound holds for ``after`` below).
    emitted = np.where(alpha_hat > 0.0, emitted, 0.0)
    beta_hat = _backward(emitted, scale, hmm.transition)
    # gamma_t(i) = alpha_t(i) beta_t(i) / P(O) = alpha-hat_t(i) beta-hat_t(i)
    gamma = alpha_hat * beta_hat
    # xi_t(i, j) = alpha_t(i) a_ij b_j(o_{t+1}) beta_{t+1}(j) / P(O)
    #            = alpha-hat_t(i) a_ij b_j(o_{t+1}) beta-hat_{t+1}(j) / c_{t+1}
    after = emitted[1:] * beta_hat[1:] / scale[1:, None]  # (T-1, S)
    # Rows of gamma sum to 1 in exact arithmetic; if not to rounding, beta-hat
    # lost terms by underflow (as alpha-hat may), so use log space.
    if np.max(np.abs(gamma.sum(axis=1) - 1.0)) > _GAMMA_SUM_TOL:
        return _summed(_log_posteriors(seq, hmm, name), pairs)
    if pairs:
        xi = alpha_hat[:-1, :, None] * hmm.transition * after[:, None, :]
    else:
        xi = hmm.transition * _hmm_scan.gram(alpha_hat[:-1], after)
    return gamma, xi, float(np.log(scale).sum() + log_offset)


def _summed(posterior, pairs):
    """(gamma, xi, log_lik), with xi summed over t unless ``pairs``."""
    gamma, xi, log_lik = posterior
    return (gamma, xi, log_lik) if pairs else (gamma, xi.sum(axis=0), log_lik)


# ---------------------------------------------------------------------------
# Batches for the parallel scan (emlib/_hmm_scan.py)
# ---------------------------------------------------------------------------


def _use_scan(n_states, length, n_sequences):
    """Whether the parallel scan beats the sequential loop: S states, N x T.

    The scan does O(S^3 N T) work in ~L + log2 T numpy calls (blocks of L
    steps, see emlib/_hmm_scan.py), the loop O(S^2 T) in ~T calls per
    sequence. benchmarks/bench_hmm.py's crossover table (log_likelihood of
    one sequence, median CPU seconds on a 2-core machine loaded by other
    jobs): at S = 4 the scan was as fast as the loop at T = 100, 3.4x
    faster at T = 1000 and 20x at T = 10,000; at S = 16, 0.7x, 2.7x and
    3.9x; at S = 32, 0.8x, 0.9x and 1.4x (too close to switch); at T = 10
    the scan took 1.1-1.4x the loop's wall time. A batch of N sequences
    makes one scan do the work of N loops, so the rule counts N T.
    """
    return (
        length > 1
        and n_states <= _SCAN_MAX_STATES
        and n_sequences * length >= _SCAN_MIN_STEPS
    )


# The crossover measured in benchmarks/bench_hmm.py (see _use_scan).
_SCAN_MAX_STATES = 16
_SCAN_MIN_STEPS = 100


def _batches(sequences, n_states):
    """Split sequence indices into scan batches of equal length and the rest.

    Returns
    -------
    batches : list of (list of int, ndarray of shape (N, T) or (N, T, D))
        Indices into ``sequences`` and their observations stacked, one batch
        per length where :func:`_use_scan` says so.
    sequential : list of int
        Indices of sequences for the sequential recursion.
    """
    by_length = {}
    for k, seq in enumerate(sequences):
        by_length.setdefault(len(seq), []).append(k)
    batches, sequential = [], []
    for length, indices in by_length.items():
        if _use_scan(n_states, length, len(indices)):
            batches.append((indices, np.stack([sequences[k] for k in indices])))
        else:
            sequential.extend(indices)
    return batches, sequential


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def log_likelihood(
    obs: ArrayLike | Sequence[ArrayLike], hmm: HMM | GaussianHMM
) -> float:
    """log P(O | lambda), by the scaled forward recursion.

    .. math::

        \\log P(O \\mid \\lambda) = \\sum_{t=1}^{T} \\log c_t, \\qquad
        c_t = P(o_t \\mid o_1, \\dots, o_{t-1}, \\lambda)
            = \\sum_{j} \\Big[\\sum_i \\hat\\alpha_{t-1}(i) a_{ij}\\Big] b_j(o_t)

    Parameters
    ----------
    obs : array_like, shape (T,) of int or (T, D) of float, or list of them
        Symbols in [0, M) for an :class:`HMM`, vectors for a
        :class:`GaussianHMM`. For a list, the sum over its independent
        sequences.
    hmm : HMM or GaussianHMM
        lambda.

    Returns
    -------
    float
        ``-inf`` if a sequence has probability 0 under ``hmm``. Where the
        scaled recursion may lose probability to underflow (a forward entry
        below about 1e-292), that sequence is computed by the forward
        recursion in log space instead, so the result is finite whenever some
        state path has a finite log-probability, and never below Viterbi's.

    Examples
    --------
    >>> import numpy as np
    >>> from emlib import hmm
    >>> model = hmm.HMM(  # Li Hang's example 10.2: three boxes, red (0) or white (1)
    ...     start=[0.2, 0.4, 0.4],
    ...     transition=[[0.5, 0.2, 0.3], [0.3, 0.5, 0.2], [0.2, 0.3, 0.5]],
    ...     emission=[[0.5, 0.5], [0.4, 0.6], [0.7, 0.3]],
    ... )
    >>> print(f"P(O | lambda) = {np.exp(hmm.log_likelihood([0, 1, 0], model)):.6f}")
    P(O | lambda) = 0.130218
    """
    _check_hmm(hmm)
    sequences, _ = _observations_for(obs, hmm)
    batches, sequential = _batches(sequences, hmm.n_states)
    total = 0.0
    for indices, observations in batches:
        emitted, log_offset = _emission_likelihoods(hmm, observations)
        log_lik, exact = _hmm_scan.log_likelihood(hmm.start, hmm.transition, emitted)
        total += (log_lik + log_offset)[exact].sum()
        sequential.extend(k for k, ok in zip(indices, exact, strict=True) if not ok)
    for k in sequential:
        total += _sequential_log_likelihood(sequences[k], hmm)
    return float(total)


def _sequential_log_likelihood(seq, hmm):
    """log P(O | lambda) of one sequence by the scaled forward recursion, or in
    log space where scaling may lose probability (see :func:`_forward`)."""
    emitted, log_offset = _emission_likelihoods(hmm, seq)
    _, scale, exact = _forward(seq, hmm, emitted)
    if not exact:  # the log-space recursion, which loses nothing
        log_b = _log_emission(hmm, seq)
        return _log_sum_exp_rows(_log_forward(log_b, *_log_start_transition(hmm))[-1])
    with np.errstate(divide="ignore"):  # log 0 = -inf: impossible
        return np.log(scale).sum() + log_offset


def posteriors(
    obs: ArrayLike | Sequence[ArrayLike], hmm: HMM | GaussianHMM
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """State posteriors gamma and pair posteriors xi (Li Hang, section 10.2).

    .. math::

        \\gamma_t(i) = P(i_t = i \\mid O, \\lambda)
            = \\frac{\\alpha_t(i) \\beta_t(i)}{P(O \\mid \\lambda)}, \\qquad
        \\xi_t(i, j) = P(i_t = i, i_{t+1} = j \\mid O, \\lambda)
            = \\frac{\\alpha_t(i) a_{ij} b_j(o_{t+1}) \\beta_{t+1}(j)}
                   {P(O \\mid \\lambda)}

    Parameters
    ----------
    obs : array_like, shape (T,) of int or (T, D) of float, or list of them
        Symbols in [0, M) (:class:`HMM`) or vectors (:class:`GaussianHMM`).
    hmm : HMM or GaussianHMM
        lambda.

    Returns
    -------
    gamma : list of ndarray, each shape (T_k, S)
        One per sequence (one for a single sequence); rows sum to 1.
    xi : list of ndarray, each shape (T_k - 1, S, S)
        One per sequence; each (S, S) slice sums to 1, and xi_t summed over j
        is gamma_t (up to rounding). Empty (shape (0, S, S)) when T_k = 1.

    Raises
    ------
    ValueError
        On bad input, or if a sequence has probability 0 under ``hmm`` (its
        posteriors would be 0/0).

    Examples
    --------
    >>> from emlib import hmm
    >>> model = hmm.HMM(
    ...     start=[0.2, 0.4, 0.4],
    ...     transition=[[0.5, 0.2, 0.3], [0.3, 0.5, 0.2], [0.2, 0.3, 0.5]],
    ...     emission=[[0.5, 0.5], [0.4, 0.6], [0.7, 0.3]],
    ... )
    >>> gammas, xis = hmm.posteriors([[0, 1, 0]], model)  # a list of one sequence
    >>> print(gammas[0].round(4))
    [[0.1882 0.3222 0.4896]
     [0.3193 0.4154 0.2653]
     [0.3215 0.2727 0.4058]]
    >>> print(xis[0].shape)
    (2, 3, 3)
    """
    _check_hmm(hmm)
    sequences, several = _observations_for(obs, hmm)
    names = _names(len(sequences), several)
    # Filled by sequence number below; list[Any] as they start as None.
    gammas: list[Any] = [None] * len(sequences)
    xis: list[Any] = [None] * len(sequences)
    batches, sequential = _batches(sequences, hmm.n_states)
    for indices, observations in batches:
        emitted, _ = _emission_likelihoods(hmm, observations)
        gamma, alpha, after, _, exact = _hmm_scan.posteriors(
            hmm.start, hmm.transition, emitted
        )
        xi = _hmm_scan.pair_posteriors(alpha, hmm.transition, after)
        for n, k in enumerate(indices):
            if exact[n]:
                gammas[k], xis[k] = gamma[n], xi[n]
            else:
                sequential.append(k)
    for k in sequential:
        gammas[k], xis[k], _ = _posteriors(sequences[k], hmm, names[k])
    return gammas, xis


def viterbi(
    obs: ArrayLike | Sequence[ArrayLike], hmm: HMM | GaussianHMM
) -> tuple[list[np.ndarray], list[float]]:
    """The most probable state path and its log-probability (Li Hang 10.4.2).

    The max-product version of the forward recursion, in log space:

    .. math::

        \\delta_1(i) = \\log \\pi_i + \\log b_i(o_1), \\quad
        \\delta_t(j) = \\max_i \\big[\\delta_{t-1}(i) + \\log a_{ij}\\big]
            + \\log b_j(o_t),

    then backtracking from :math:`\\arg\\max_i \\delta_T(i)`. Ties go to the
    lowest state number.

    Parameters
    ----------
    obs : array_like, shape (T,) of int or (T, D) of float, or list of them
        Symbols in [0, M) (:class:`HMM`) or vectors (:class:`GaussianHMM`).
    hmm : HMM or GaussianHMM
        lambda.

    Returns
    -------
    paths : list of ndarray of int, each shape (T_k,)
        One per sequence (one for a single sequence): argmax over I of
        P(O, I | lambda), states numbered from 0.
    log_probabilities : list of float
        log max_I P(O, I | lambda) (a log-density for :class:`GaussianHMM`),
        one per sequence.

    Raises
    ------
    ValueError
        On bad input, or if a sequence has probability 0 under ``hmm`` (every
        path is then a maximiser).

    Examples
    --------
    >>> import numpy as np
    >>> from emlib import hmm
    >>> model = hmm.HMM(  # Li Hang's example 10.3
    ...     start=[0.2, 0.4, 0.4],
    ...     transition=[[0.5, 0.2, 0.3], [0.3, 0.5, 0.2], [0.2, 0.3, 0.5]],
    ...     emission=[[0.5, 0.5], [0.4, 0.6], [0.7, 0.3]],
    ... )
    >>> paths, log_ps = hmm.viterbi([[0, 1, 0]], model)  # a list of one sequence
    >>> print(paths[0], f"{np.exp(log_ps[0]):.4f}")
    [2 2 2] 0.0147
    """
    _check_hmm(hmm)
    sequences, several = _observations_for(obs, hmm)
    # log 0 = -inf is exact, and the recursion only adds and compares, so
    # impossible transitions and emissions need no special case.
    log_start, log_transition = _log_start_transition(hmm)
    names = _names(len(sequences), several)
    # Filled by sequence number below; list[Any] as they start as None.
    paths: list[Any] = [None] * len(sequences)
    log_probabilities: list[Any] = [None] * len(sequences)
    batches, sequential = _batches(sequences, hmm.n_states)
    for indices, observations in batches:
        # The (max, +) scan works in log space: no underflow, no fallback.
        log_b = _log_emission(hmm, observations)
        best, log_p = _hmm_scan.viterbi(log_start, log_transition, log_b)
        for n, k in enumerate(indices):
            if log_p[n] == -np.inf:
                raise _no_path(names[k])
            paths[k], log_probabilities[k] = best[n], float(log_p[n])
    for k in sequential:
        log_b = _log_emission(hmm, sequences[k])
        paths[k], log_probabilities[k] = _viterbi(
            log_start + log_b[0], log_transition, log_b, names[k]
        )
    return paths, log_probabilities


def _no_path(name):
    return ValueError(
        f"{name} has probability 0 under the model: every state path is "
        "impossible, so there is no most probable one."
    )


def _viterbi(delta, log_transition, log_b, name):
    """Viterbi on one sequence, from delta_1 (S,), log A (S, S), log b (T, S)."""
    best_previous = np.zeros(log_b.shape, dtype=np.int64)  # psi_t(j)
    # Row j of the transpose holds log a_ij over i: the max and argmax over i
    # reduce contiguous rows (about 2x faster at S = 64 than over columns).
    into = np.ascontiguousarray(log_transition.T)
    states = np.arange(len(delta))
    for t in range(1, len(log_b)):
        candidates = into + delta  # (j, i): delta_{t-1}(i) + log a_ij
        np.argmax(candidates, axis=1, out=best_previous[t])
        # max_i [delta(i) + log a_ij] + log b_j: adding after the max rounds
        # the same way (rounding is monotone), so the values are unchanged.
        delta = candidates[states, best_previous[t]] + log_b[t]
    last = int(delta.argmax())
    log_probability = float(delta[last])
    if log_probability == -np.inf:
        raise _no_path(name)
    path = np.empty(len(log_b), dtype=np.int64)
    path[-1] = last
    for t in range(len(log_b) - 1, 0, -1):
        path[t - 1] = best_previous[t, path[t]]
    return path, log_probability


# ---------------------------------------------------------------------------
# Baum-Welch
# ---------------------------------------------------------------------------


def _e_step(sequences, names, hmm):
    """Expected counts summed over sequences, and log P(O | lambda).

    ``names`` name the sequences in errors.

    Returns
    -------
    log_lik : float
    first : ndarray, shape (S,)
        sum over sequences of gamma_1(i).
    transitions : ndarray, shape (S, S)
        sum over sequences and t < T of xi_t(i, j).
    emissions : ndarray, shape (S, M) or (sum_k T_k, S)
        :class:`HMM`: sum over sequences and t with o_t = k of gamma_t(j),
        column k. :class:`GaussianHMM`: every gamma_t, the sequences' rows
        in the order of ``sequences`` (the weights of the Gaussian M-step).
    """
    n_states = hmm.n_states
    first = np.zeros(n_states)
    transitions = np.zeros((n_states, n_states))
    gammas = [None] * len(sequences)
    log_lik = 0.0
    batches, sequential = _batches(sequences, n_states)
    for indices, observations in batches:
        emitted, log_offset = _emission_likelihoods(hmm, observations)
        gamma, alpha, after, batch_log_lik, exact = _hmm_scan.posteriors(
            hmm.start, hmm.transition, emitted
        )
        # Sequences the scan flags go to the sequential recursion (with its
        # log-space fallback); the others' counts are added here.
        sequential.extend(k for k, ok in zip(indices, exact, strict=True) if not ok)
        transitions += _hmm_scan.transition_counts(
            alpha[exact], hmm.transition, after[exact]
        )
        log_lik += (batch_log_lik + log_offset)[exact].sum()
        for n, k in enumerate(indices):
            gammas[k] = gamma[n]
    for k in sequential:
        gammas[k], pair_counts, seq_log_lik = _posteriors(
            sequences[k], hmm, names[k], pairs=False
        )
        transitions += pair_counts
        log_lik += seq_log_lik
    first = np.sum([gamma[0] for gamma in gammas], axis=0)
    gamma = np.concatenate(gammas)
    if isinstance(hmm, GaussianHMM):
        return log_lik, first, transitions, gamma
    # Column k of emissions gathers the gamma_t with o_t = k.
    symbols = np.concatenate(sequences)
    emissions = np.stack(
        [
            np.bincount(symbols, gamma[:, j], minlength=hmm.n_symbols)
            for j in range(n_states)
        ]
    )
    return log_lik, first, transitions, emissions


def _normalize_rows(counts, current):
    """Rows of expected counts divided by their sums; a row with no count keeps
    its current value (Q does not depend on it, so that value maximises Q too).
    """
    totals = counts.sum(axis=1, keepdims=True)
    has_mass = totals > 0.0
    return np.where(has_mass, counts / np.where(has_mass, totals, 1.0), current)


def _with_prior(counts, concentration, current, name):
    """Expected counts plus (concentration - 1), the MAP M-step's numerators.

    Only where ``current`` > 0: a zero of the start stays a zero (the prior
    is on the free entries), as in hmmlearn for pi and A.

    Raises
    ------
    ValueError
        If a concentration below 1 makes a numerator negative: the posterior
        density is then unbounded at that entry's 0, and no MAP estimate
        exists.
    """
    if concentration is None:
        return counts
    counts = counts + np.where(current > 0, concentration - 1.0, 0.0)
    if np.any(counts < 0):
        where = np.unravel_index(int(np.argmin(counts)), counts.shape)
        at = ", ".join(str(int(i)) for i in where)
        raise ValueError(
            f"{name}[{at}] = {np.broadcast_to(concentration, counts.shape)[where]:.6g}"
            f" < 1 makes an expected count negative: count + ({name} - 1) = "
            f"{counts[where]:.3g}. A Dirichlet concentration below 1 with "
            "fewer expected counts than 1 - concentration has an unbounded "
            f"posterior density at 0, so there is no MAP estimate; pass {name} "
            ">= 1 (1 is no prior)."
        )
    return counts


def _m_step(hmm, first, transitions, emissions, x, priors):
    """Li Hang (10.39)-(10.41), with several sequences' counts added.

    a_ij divides by sum_j xi-counts (equal to sum_{t<T} gamma_t(i) in exact
    arithmetic), so each row sums to 1 up to one rounding. With Dirichlet
    ``priors`` (start, transition, emission concentrations or None), the MAP
    M-step: concentration - 1 added to each count before normalising. For a
    :class:`GaussianHMM`, ``emissions`` is every gamma_t, (sum T_k, S), and
    ``x`` the sequences' vectors concatenated, (sum T_k, D).
    """
    start_prior, transition_prior, emission_prior = priors
    first = _with_prior(first, start_prior, hmm.start, "start_prior")
    start = _normalize_rows(first[None], hmm.start[None])[0]
    transitions = _with_prior(
        transitions, transition_prior, hmm.transition, "transition_prior"
    )
    transition = _normalize_rows(transitions, hmm.transition)
    if isinstance(hmm, GaussianHMM):
        return GaussianHMM(start, transition, *_gaussian_m_step(hmm, emissions, x))
    emissions = _with_prior(emissions, emission_prior, hmm.emission, "emission_prior")
    return HMM(start, transition, _normalize_rows(emissions, hmm.emission))


def _gaussian_m_step(hmm, gamma, x):
    """Notebook 30's weighted Gaussian M-step, per state and feature.

    mu_jd = sum_t gamma_t(j) x_td / n_j and
    sigma_jd^2 = sum_t gamma_t(j) (x_td - mu_jd)^2 / n_j, n_j = sum_t gamma_t(j),
    by the mixture's :func:`emlib._numerics.weighted_moments` (two-pass) on
    S D rows: row (j, d) weights feature d by gamma_t(j). A state with
    n_j = 0 keeps its means and variances (Q does not depend on them).

    Returns
    -------
    means, variances : ndarray, shape (S, D)
    """
    n_states, n_features = hmm.means.shape
    weights = np.repeat(gamma.T, n_features, axis=0)  # row j D + d: gamma_t(j)
    values = np.tile(x.T, (n_states, 1))  # row j D + d: x_td
    nk, means, variances = weighted_moments(weights, values)
    has_mass = nk.reshape(n_states, n_features)[:, :1] > 0
    means = np.where(has_mass, means.reshape(n_states, n_features), hmm.means)
    variances = np.where(
        has_mass, variances.reshape(n_states, n_features), hmm.variances
    )
    for j in np.flatnonzero(has_mass[:, 0]):
        rows = slice(j * n_features, (j + 1) * n_features)
        try:  # the mixture's test of a collapse onto a point, or an overflow
            check_components(nk[rows], means[j], variances[j])
        except ValueError as exc:
            raise ValueError(
                f"state {j}'s new variances {variances[j]} (means {means[j]}) are "
                "degenerate: a variance collapsed onto a single point, where the "
                "likelihood grows without bound, or overflowed. Use more data, "
                "fewer states, or another start."
            ) from exc
    return means, variances


def _as_concentration(value, name, shape):
    """A Dirichlet concentration (hmmlearn's ``*_prior``): None, or a float64
    array of ``shape`` from a scalar or an array_like broadcast to it, > 0."""
    if value is None:
        return None
    arr = as_real_array(value, name)
    try:
        arr = np.broadcast_to(arr, shape).copy()
    except ValueError:
        raise ValueError(
            f"{name} must be a scalar or broadcast to shape {shape} (one "
            f"Dirichlet concentration per entry), got shape {arr.shape}."
        ) from None
    if not np.all(arr > 0):
        raise ValueError(
            f"{name} must hold Dirichlet concentrations > 0; got min "
            f"{arr.min():.3g}. 1 is no prior; > 1 pulls toward uniform."
        )
    return arr


def _log_prior(hmm, priors):
    """sum (alpha - 1) log theta over the Dirichlet-distributed entries theta > 0.

    The log-density of the priors up to their normalising constants: for
    each distribution (pi, every row of A and of B) with concentrations
    alpha, log Dir(theta; alpha) = sum_k (alpha_k - 1) log theta_k + const.
    Entries kept at 0 (zeros of the start; see :func:`_with_prior`) are not
    free parameters and carry no prior.
    """
    emission = hmm.emission if isinstance(hmm, HMM) else None
    total = 0.0
    for theta, alpha in zip((hmm.start, hmm.transition, emission), priors, strict=True):
        if alpha is not None:
            free = theta > 0
            total += float(np.sum((alpha[free] - 1.0) * np.log(theta[free])))
    return total


def initial_theta(
    obs: ArrayLike | Sequence[ArrayLike],
    n_states: int,
    *,
    n_symbols: int | None = None,
    random_state: int | np.random.Generator | None = None,
) -> HMM | GaussianHMM:
    """A random start for ``em(obs, S)``: an :class:`HMM` or a :class:`GaussianHMM`.

    Which one follows ``obs``: 1-D integer sequences give an :class:`HMM`,
    (T, D) real arrays a :class:`GaussianHMM`. In both, pi and every row of
    A are uniform (1/S): nothing in the start favours a state or a
    transition, and the emissions make the states differ. They must differ:
    from a start whose states are all alike, every iterate keeps them alike
    (their expected counts are equal), and EM could not separate them.

    * :class:`HMM`, as hmmlearn's categorical HMM draws one: each row of B
      drawn uniformly from the simplex (a Dirichlet(1, ..., 1) draw).
    * :class:`GaussianHMM`: the means and variances of
      :func:`emlib.multivariate.initial_theta` with ``covariance_type="diag"``
      on every vector of every sequence pooled: k-means++ seeds refined by
      Lloyd's k-means, each state a cluster's mean and per-feature variance.
      The time order is ignored there, but the states' emission laws are what
      the pooled data identify (as in hmmlearn, whose GaussianHMM starts its
      means by k-means); the seeding spreads the states over the data, where
      a quantile start would leave them on one line for D > 1.

    Parameters
    ----------
    obs : array_like, shape (T,) of int or (T, D) of float, or list of them
        Symbols (ints >= 0), or vectors.
    n_states : int
        S >= 1 (for vectors, at most the number of them).
    n_symbols : int, optional
        M, the number of symbols; default the largest symbol in ``obs`` + 1.
        Categorical observations only.
    random_state : None, int or numpy.random.Generator, default None
        The seed or generator of the draw of B or of the k-means++ seeds.

    Returns
    -------
    HMM or GaussianHMM
    """
    n_states = check_int(n_states, "n_states")
    uniform = np.full(n_states, 1.0 / n_states)
    rng = as_generator(random_state)
    if _is_vector_data(obs):
        if n_symbols is not None:
            raise TypeError(
                "n_symbols is for categorical observations (1-D int sequences); "
                "obs holds vectors (T, D), which give a GaussianHMM."
            )
        sequences, _ = _as_vector_observations(obs, None)
        mixture = multivariate.initial_theta(
            np.concatenate(sequences), n_states, "diag", random_state=rng
        )
        return GaussianHMM(
            uniform, np.tile(uniform, (n_states, 1)), mixture.means, mixture.covariances
        )
    sequences, _ = _as_observations(obs, None)
    largest = max(int(seq.max()) for seq in sequences)
    if n_symbols is None:
        n_symbols = largest + 1
    n_symbols = check_int(
        n_symbols,
        "n_symbols",
        largest + 1,
        rule=f"be > every symbol in obs (the largest is {largest})",
    )
    return HMM(
        uniform,
        np.tile(uniform, (n_states, 1)),
        rng.dirichlet(np.ones(n_symbols), size=n_states),
    )


def theta_to_vector(hmm: HMM | GaussianHMM) -> np.ndarray:
    """lambda as the flat vector SQUAREM extrapolates.

    For :class:`HMM`, (pi, A, B): the probabilities themselves, each
    distribution on its simplex. An extrapolation is an affine combination of
    iterates (its coefficients sum to 1), so every row keeps its sum 1 and
    every zero stays zero (an impossible transition or emission stays
    impossible, as in EM); only the signs need the check
    :func:`vector_to_theta` makes. (Log probabilities would make the signs
    free but send EM's zeros to -inf.) For :class:`GaussianHMM`, (pi, A, mu,
    log sigma^2): the variances in logs, so that no extrapolation can make
    one negative.

    Parameters
    ----------
    hmm : HMM or GaussianHMM

    Returns
    -------
    ndarray, shape (S + S S + S M,) or (S + S S + 2 S D,)
    """
    if isinstance(hmm, GaussianHMM):
        emission = [hmm.means.ravel(), np.log(hmm.variances).ravel()]
    else:
        emission = [hmm.emission.ravel()]
    return np.concatenate([hmm.start, hmm.transition.ravel(), *emission])


def vector_to_theta(vector: np.ndarray, like: HMM | GaussianHMM) -> HMM | GaussianHMM:
    """The HMM of a :func:`theta_to_vector` vector.

    Parameters
    ----------
    vector : ndarray
        As :func:`theta_to_vector` returns it.
    like : HMM or GaussianHMM
        A model of the same kind and sizes.

    Returns
    -------
    HMM or GaussianHMM
        Each distribution divided by its sum (which differs from 1 only by
        the rounding of the extrapolation).

    Raises
    ------
    ValueError
        If a probability is negative (the vector lies outside the simplex).
    """
    n_states = like.start.size
    start, transition, emission = np.split(
        vector, [n_states, n_states * (n_states + 1)]
    )
    start = start / start.sum()
    transition = transition.reshape(n_states, n_states)
    transition = transition / transition.sum(axis=1, keepdims=True)
    if isinstance(like, GaussianHMM):
        means, log_variances = np.split(emission, 2)
        shape = like.means.shape
        return GaussianHMM(
            start,
            transition,
            means.reshape(shape),
            np.exp(log_variances).reshape(shape),
        )
    emission = emission.reshape(n_states, like.emission.shape[1])
    return HMM(start, transition, emission / emission.sum(axis=1, keepdims=True))


def em(
    obs: ArrayLike | Sequence[ArrayLike],
    init: HMM | GaussianHMM | int,
    *,
    tol: float = 1e-10,
    max_iter: int = 1000,
    random_state: int | np.random.Generator | None = None,
    start_prior: ArrayLike | None = None,
    transition_prior: ArrayLike | None = None,
    emission_prior: ArrayLike | None = None,
    accelerate: Literal["squarem"] | None = None,
    stop: Literal["gain", "aitken"] = "gain",
) -> EMResult:
    """Fit an HMM by the Baum-Welch algorithm (EM), or its MAP version.

    Each iteration computes gamma and xi at lambda^(i) and sets

    .. math::

        \\pi_i = \\gamma_1(i), \\qquad
        a_{ij} = \\frac{\\sum_{t=1}^{T-1} \\xi_t(i, j)}
                      {\\sum_{t=1}^{T-1} \\gamma_t(i)}, \\qquad
        b_j(k) = \\frac{\\sum_{t: o_t = k} \\gamma_t(j)}{\\sum_{t=1}^{T} \\gamma_t(j)}

    (Li Hang (10.39)-(10.41)); for a :class:`GaussianHMM`, instead of b_j(k),

    .. math::

        \\mu_{jd} = \\frac{\\sum_t \\gamma_t(j) x_{td}}{\\sum_t \\gamma_t(j)},
        \\qquad
        \\sigma_{jd}^2 = \\frac{\\sum_t \\gamma_t(j) (x_{td} - \\mu_{jd})^2}
                              {\\sum_t \\gamma_t(j)},

    the mixture's M-step (notebook 30) with gamma_t(j) as responsibilities.
    With several sequences the numerators and denominators are summed over
    sequences, and pi is the average of their gamma_1. With Dirichlet priors
    (MAP-EM), each distribution's expected counts get concentration - 1
    added before they are normalised: pi_i proportional to
    sum gamma_1(i) + alpha_i - 1, and likewise for the rows of A and B.

    Parameters
    ----------
    obs : array_like, shape (T,) of int or (T, D) of float, or list of them
        Symbols in [0, M) (:class:`HMM`) or vectors (:class:`GaussianHMM`).
    init : HMM, GaussianHMM or int
        The start lambda^(0), or a number of states S, in which case the
        start is :func:`initial_theta` ``(obs, S, random_state=random_state)``
        (an HMM or a GaussianHMM, as ``obs`` is). Its zeros stay zeros: an
        impossible transition or emission is never re-estimated as possible.
    tol : float, default 1e-10
        Stop when an iteration raises the objective (the log-likelihood, or
        the log-posterior with priors) by less than ``tol * N``, N the total
        number of observations (a per-observation gain below tol). With
        ``tol=0`` exactly ``max_iter`` iterations run (unless it falls).
    max_iter : int, default 1000
        Maximum number of iterations (>= 1).
    random_state : None, int or numpy.random.Generator, default None
        For the start drawn when ``init`` is an int; unused otherwise.
    start_prior : None, float or array_like, shape (S,)
        Dirichlet concentrations alpha > 0 of pi (hmmlearn's
        ``startprob_prior``); a scalar is used for every entry. None (or 1)
        is no prior.
    transition_prior : None, float or array_like, shape (S, S)
        Dirichlet concentrations of each row of A (``transmat_prior``).
    emission_prior : None, float or array_like, shape (S, M)
        Dirichlet concentrations of each row of B (``emissionprob_prior``);
        :class:`HMM` only.
    accelerate : {None, "squarem"}, default None
        "squarem": SQUAREM with the monotonicity safeguard, extrapolating in
        the coordinates of :func:`theta_to_vector`; as in :func:`emlib.em`.
    stop : {"gain", "aitken"}, default "gain"
        The stopping rule, as in :func:`emlib.em`.

    Returns
    -------
    EMResult
        ``theta`` is the last lambda^(n_iter). ``log_likelihoods[i]`` is
        log P(O | lambda^(i)), computed by the E-step's forward pass; with
        any prior given it is the log-posterior log P(O | lambda^(i)) +
        log P(lambda^(i)) (up to the priors' normalising constants), the
        objective MAP-EM never decreases.

    Raises
    ------
    TypeError
        If ``init`` is neither an :class:`HMM`, a :class:`GaussianHMM` nor an
        int, tol / max_iter have the wrong type, or ``emission_prior`` is
        given with a :class:`GaussianHMM`.
    ValueError
        On bad observations or priors, if a sequence has probability 0 under
        the start, if a concentration below 1 makes a count negative (no MAP
        estimate), or if a Gaussian state collapses onto a point.

    Warns
    -----
    emlib.ConvergenceWarning
        If the run stops on ``max_iter`` with tol > 0, or on a decrease.

    Notes
    -----
    A state with no expected transitions out of it (sum_{t<T} gamma_t(i) = 0)
    keeps its row of A, and a state with no expected visits keeps its row of
    B (its means and variances): Q does not depend on those rows, so keeping
    them is a maximiser and the objective still cannot decrease.

    With priors, hmmlearn clips a negative count + concentration - 1 to 0;
    this function refuses it (see Raises), and keeps zeros of the start's B
    at 0 as of its pi and A (hmmlearn keeps only those of pi and A).

    Examples
    --------
    >>> from emlib import hmm
    >>> start = hmm.HMM([0.6, 0.4], [[0.7, 0.3], [0.4, 0.6]], [[0.6, 0.4], [0.3, 0.7]])
    >>> obs = [0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1]
    >>> fit = hmm.baum_welch(obs, start)
    >>> first, last = fit.log_likelihoods[[0, -1]]
    >>> print(fit.converged, f"log-likelihood {first:.4f} -> {last:.4f}")
    True log-likelihood -10.9873 -> -9.8823
    """
    if is_int(init):
        n_states = check_int(init, "init", rule="satisfy 1 <= S, a number of states")
        init = initial_theta(obs, n_states, random_state=random_state)
    if not isinstance(init, HMM | GaussianHMM):
        raise TypeError(
            "init must be an emlib.hmm.HMM(start, transition, emission) or "
            "emlib.hmm.GaussianHMM(start, transition, means, variances) start, "
            f"or a number of states S (int), got {type(init).__name__}."
        )
    if emission_prior is not None and isinstance(init, GaussianHMM):
        raise TypeError(
            "emission_prior is a Dirichlet prior on the rows of a categorical "
            "emission matrix; a GaussianHMM has none: pass emission_prior=None."
        )
    n_states = init.n_states
    priors = (
        _as_concentration(start_prior, "start_prior", (n_states,)),
        _as_concentration(transition_prior, "transition_prior", (n_states, n_states)),
        None
        if isinstance(init, GaussianHMM)
        else _as_concentration(emission_prior, "emission_prior", init.emission.shape),
    )
    has_prior = any(alpha is not None for alpha in priors)
    sequences, several = _observations_for(obs, init)
    names = _names(len(sequences), several)
    x = np.concatenate(sequences) if isinstance(init, GaussianHMM) else None

    def e_pass(hmm):
        log_lik, *counts = _e_step(sequences, names, hmm)
        if has_prior:  # MAP-EM raises the log-posterior, not the likelihood
            log_lik += _log_prior(hmm, priors)
        return log_lik, counts

    def m_step(hmm, counts):
        first, transitions, emissions = counts
        return _m_step(hmm, first, transitions, emissions, x, priors)

    return run_em(
        e_pass,
        m_step,
        init,
        n=sum(len(seq) for seq in sequences),
        tol=tol,
        max_iter=max_iter,
        objective="log-posterior" if has_prior else "log-likelihood",
        accelerate=accelerate,
        stop=stop,
        to_vector=theta_to_vector,
        from_vector=vector_to_theta,
    )


# The textbook name (Li Hang 10.3, Rabiner III.C): the same function.
baum_welch = em
