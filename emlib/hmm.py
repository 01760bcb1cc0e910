"""Categorical hidden Markov models: Li Hang, Statistical Learning Methods, ch. 10.

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

``obs`` is either one sequence (a 1-D array_like of ints in [0, M)) or a list
(or tuple) of such sequences, which are independent: their log-likelihoods
and their sufficient statistics add. Every function returns the same kind of
result whichever it is given: a float for :func:`log_likelihood` (the sum
over sequences), an ``EMResult`` for :func:`em`, and lists with one entry per
sequence, in the order of the input, for the per-sequence :func:`posteriors`
and :func:`viterbi` (a single sequence is a list of one). States and symbols
are numbered from 0, as in numpy (the book numbers them from 1).
"""

from dataclasses import dataclass

import numpy as np

from emlib._checks import (
    SUM_TOL,
    Parameters,
    as_array,
    as_generator,
    as_real_array,
    check_int,
    is_int,
    read_only,
)
from emlib._core import run_em

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

    def __post_init__(self):
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
    def n_states(self):
        """Number of hidden states S."""
        return self.start.size

    @property
    def n_symbols(self):
        """Number of observable symbols M."""
        return self.emission.shape[1]

    def __repr__(self):
        def fmt(a):
            if a.ndim == 1:
                return "[" + ", ".join(f"{v:.6g}" for v in a) + "]"
            return "[" + ", ".join(fmt(row) for row in a) + "]"

        return (
            f"HMM(start={fmt(self.start)}, transition={fmt(self.transition)}, "
            f"emission={fmt(self.emission)})"
        )


def _check_hmm(hmm):
    if not isinstance(hmm, HMM):
        raise TypeError(
            "hmm must be an emlib.hmm.HMM(start, transition, emission), "
            f"got {type(hmm).__name__}."
        )


# ---------------------------------------------------------------------------
# Observations
# ---------------------------------------------------------------------------


def _as_sequence(seq, name, n_symbols):
    """One sequence as a fresh int64 array of shape (T,), T >= 1, in [0, M).

    ``n_symbols`` None (M not known yet) checks only that symbols are >= 0.
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
    sequences = [_as_sequence(s, f"obs[{k}]", n_symbols) for k, s in enumerate(obs)]
    return sequences, True


def _names(n_sequences, several):
    """How errors name each sequence: ``obs`` alone, or ``obs[k]`` in a list."""
    return [f"obs[{k}]" for k in range(n_sequences)] if several else ["obs"]


# ---------------------------------------------------------------------------
# Recursions on one validated sequence
# ---------------------------------------------------------------------------


def _step_matrices(hmm):
    """a_ij b_j(k) for every symbol k, with the row sums appended.

    Returns an array of shape (M, S, S + 1): slice k is the matrix
    ``A diag(B[:, k])`` followed by its row sums, so that one product
    ``alpha-hat_{t-1} @ steps[o_t]`` gives both the next unscaled forward
    vector and, in its last entry, its sum c_t.
    """
    steps = hmm.transition[None, :, :] * hmm.emission.T[:, None, :]
    return np.concatenate([steps, steps.sum(axis=2, keepdims=True)], axis=2)


def _forward(seq, hmm, steps):
    """Scaled forward recursion (Rabiner's alpha-hat; Li Hang's forward algorithm).

    Parameters
    ----------
    seq : ndarray of int, shape (T,)
    hmm : HMM
    steps : ndarray, shape (M, S, S + 1)
        From :func:`_step_matrices`.

    Returns
    -------
    alpha_hat : ndarray, shape (T, S)
        alpha_t(i) / P(o_1, ..., o_t | lambda); each row sums to 1.
    scale : ndarray, shape (T,)
        c_t = P(o_t | o_1, ..., o_{t-1}, lambda), with c_1 = P(o_1 | lambda).
        If some c_t is 0 the recursion stops there, leaving the later
        entries (and rows of alpha_hat) at 0.
    exact : bool
        False if rounding may have lost probability: some u_t(j) = c_t
        alpha-hat_t(j) (before normalising) of a state j that some path can
        be in at t is below ``_SAFE`` = tiny / eps. Terms flushed to 0 or
        subnormal are below tiny, so where every such u_t(j) >= tiny / eps
        they change it by less than S eps relative; otherwise a lost branch
        can dominate later (after the others meet a zero), and the caller
        must use log space.
    """
    n_states = hmm.n_states
    alpha_hat = np.zeros((seq.size, n_states))
    scale = np.zeros(seq.size)
    alpha = hmm.start * hmm.emission[:, seq[0]]  # alpha_1(i) = pi_i b_i(o_1)
    c = alpha.sum()
    for t in range(seq.size):
        if t:
            # u_t(j) = sum_i alpha-hat_{t-1}(i) a_ij b_j(o_t), then c_t = sum_j u_t(j)
            with_sum = alpha_hat[t - 1] @ steps[seq[t]]
            alpha, c = with_sum[:n_states], with_sum[n_states]
        if not c > 0.0:
            break
        scale[t] = c
        np.divide(alpha, c, out=alpha_hat[t])
    unscaled = alpha_hat * scale[:, None]  # u_t(j), to rounding
    exact = bool(np.all(unscaled[_possible_states(seq, hmm)] >= _SAFE))
    return alpha_hat, scale, exact


def _possible_states(seq, hmm):
    """(T, S) bool: whether some path with P(o_1..o_t, i_t = j) > 0 ends in j.

    The forward recursion on the zero pattern of pi, A and B. Without zeros
    in A and B every state is possible after the first step.
    """
    possible = np.empty((seq.size, hmm.n_states), dtype=bool)
    possible[0] = (hmm.start > 0) & (hmm.emission[:, seq[0]] > 0)
    reachable = hmm.transition > 0
    if np.all(reachable) and np.all(hmm.emission > 0):
        possible[1:] = possible[0].any()
        return possible
    reachable = reachable.astype(np.float64)
    for t in range(1, seq.size):
        into = possible[t - 1] @ reachable > 0
        possible[t] = into & (hmm.emission[:, seq[t]] > 0)
    return possible


def _backward(seq, scale, steps):
    """Scaled backward recursion: beta-hat_t = beta_t / prod_{s > t} c_s.

    Li Hang's backward algorithm, beta_t(i) = sum_j a_ij b_j(o_{t+1})
    beta_{t+1}(j), with each step divided by c_{t+1}. Needs every c_t > 0.
    Returns beta_hat, shape (T, S), with beta-hat_T = 1.
    """
    n_states = steps.shape[1]
    beta_hat = np.ones((seq.size, n_states))
    for t in range(seq.size - 2, -1, -1):
        np.matmul(steps[seq[t + 1], :, :n_states], beta_hat[t + 1], out=beta_hat[t])
        beta_hat[t] /= scale[t + 1]
    return beta_hat


def _log_parameters(hmm):
    """log pi (S,), log A (S, S), log B (S, M); log 0 = -inf is exact."""
    with np.errstate(divide="ignore"):
        return np.log(hmm.start), np.log(hmm.transition), np.log(hmm.emission)


def _log_sum_exp_rows(a):
    """log sum_i exp(a[..., i]) over the last axis, with -inf rows giving -inf."""
    peak = a.max(axis=-1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)  # all -inf: log 0 = -inf below
    with np.errstate(divide="ignore"):
        return peak[..., 0] + np.log(np.exp(a - peak).sum(axis=-1))


def _log_forward(seq, log_params):
    """log alpha_t(i), shape (T, S): the forward recursion in log space.

    log alpha_1(i) = log pi_i + log b_i(o_1) and
    log alpha_t(j) = log sum_i exp(log alpha_{t-1}(i) + log a_ij) + log b_j(o_t).
    A sum of exponentials is at least its largest term, so the result is
    never below Viterbi's delta_t(j) (the same recursion with max), in
    floating point too: log-sum-exp is computed as the max plus the log of a
    sum >= 1, and rounding is monotone. It costs 5 to 8 times the scaled
    recursion (measured at S = 2, 5, 10 and T = 2000), so it is the fallback
    where scaling underflows.
    """
    log_start, log_transition, log_emission = log_params
    log_alpha = np.empty((seq.size, log_start.size))
    log_alpha[0] = log_start + log_emission[:, seq[0]]
    for t in range(1, seq.size):
        # Row j of the transpose holds log alpha_{t-1}(i) + log a_ij over i.
        into = (log_alpha[t - 1][:, None] + log_transition).T
        log_alpha[t] = _log_sum_exp_rows(into) + log_emission[:, seq[t]]
    return log_alpha


def _log_backward(seq, log_params):
    """log beta_t(i), shape (T, S), with log beta_T = 0: the backward recursion
    log beta_t(i) = log sum_j exp(log a_ij + log b_j(o_{t+1}) + log beta_{t+1}(j)).
    """
    _, log_transition, log_emission = log_params
    log_beta = np.zeros((seq.size, log_transition.shape[0]))
    for t in range(seq.size - 2, -1, -1):
        after = log_emission[:, seq[t + 1]] + log_beta[t + 1]  # over j
        log_beta[t] = _log_sum_exp_rows(log_transition + after)
    return log_beta


def _impossible(seq, t, name):
    return ValueError(
        f"{name} has probability 0 under the model: no state path can produce "
        f"symbol {seq[t]} at t = {t} after the symbols before it. Posteriors "
        "are then 0/0; start from parameters that give every observed symbol "
        "a positive probability, e.g. without zeros in emission."
    )


def _log_posteriors(seq, hmm, name):
    """:func:`_posteriors` in log space, for sequences whose scaling underflows.

    gamma_t(i) = exp(log alpha_t(i) + log beta_t(i) - log P(O)) and
    xi_t(i, j) = exp(log alpha_t(i) + log a_ij + log b_j(o_{t+1})
    + log beta_{t+1}(j) - log P(O)).
    """
    log_params = _log_parameters(hmm)
    log_alpha = _log_forward(seq, log_params)
    log_lik = float(_log_sum_exp_rows(log_alpha[-1]))
    if log_lik == -np.inf:
        raise _impossible(seq, int(np.argmax(np.all(log_alpha == -np.inf, 1))), name)
    log_beta = _log_backward(seq, log_params)
    gamma = np.exp(log_alpha + log_beta - log_lik)
    after = log_params[2][:, seq[1:]].T + log_beta[1:]  # (T-1, S) over j
    xi = np.exp(log_alpha[:-1, :, None] + log_params[1] + after[:, None, :] - log_lik)
    return gamma, xi, log_lik


def _posteriors(seq, hmm, steps, name):
    """gamma (T, S), xi (T-1, S, S) and log P(O | lambda) for one sequence.

    ``steps`` is :func:`_step_matrices` of ``hmm``; ``name`` names the
    sequence in errors. Scaled recursions, or log space where they underflow.
    """
    alpha_hat, scale, exact = _forward(seq, hmm, steps)
    if not exact:
        return _log_posteriors(seq, hmm, name)
    if not np.all(scale > 0.0):  # exactly impossible
        raise _impossible(seq, int(np.argmin(scale > 0.0)), name)
    beta_hat = _backward(seq, scale, steps)
    emitted = hmm.emission[:, seq].T  # (T, S): b_j(o_t)
    # gamma_t(i) = alpha_t(i) beta_t(i) / P(O) = alpha-hat_t(i) beta-hat_t(i)
    gamma = alpha_hat * beta_hat
    # xi_t(i, j) = alpha_t(i) a_ij b_j(o_{t+1}) beta_{t+1}(j) / P(O)
    #            = alpha-hat_t(i) a_ij b_j(o_{t+1}) beta-hat_{t+1}(j) / c_{t+1}
    after = emitted[1:] * beta_hat[1:] / scale[1:, None]  # (T-1, S)
    xi = alpha_hat[:-1, :, None] * hmm.transition * after[:, None, :]
    # Rows of gamma sum to 1 in exact arithmetic; if not to rounding, beta-hat
    # lost terms by underflow (as alpha-hat may), so use log space.
    if np.max(np.abs(gamma.sum(axis=1) - 1.0)) > _GAMMA_SUM_TOL:
        return _log_posteriors(seq, hmm, name)
    return gamma, xi, float(np.log(scale).sum())


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def log_likelihood(obs, hmm):
    """log P(O | lambda), by the scaled forward recursion.

    .. math::

        \\log P(O \\mid \\lambda) = \\sum_{t=1}^{T} \\log c_t, \\qquad
        c_t = P(o_t \\mid o_1, \\dots, o_{t-1}, \\lambda)
            = \\sum_{j} \\Big[\\sum_i \\hat\\alpha_{t-1}(i) a_{ij}\\Big] b_j(o_t)

    Parameters
    ----------
    obs : array_like of int, shape (T,), or list of them
        Symbols in [0, M). For a list, the sum over its independent sequences.
    hmm : HMM
        lambda = (pi, A, B).

    Returns
    -------
    float
        ``-inf`` if a sequence has probability 0 under ``hmm``. Where the
        scaled recursion may lose probability to underflow (a forward entry
        below about 1e-292), that sequence is computed by the forward
        recursion in log space instead, so the result is finite whenever some
        state path has a finite log-probability, and never below Viterbi's.
    """
    _check_hmm(hmm)
    sequences, _ = _as_observations(obs, hmm.n_symbols)
    steps = _step_matrices(hmm)
    total = 0.0
    for seq in sequences:
        _, scale, exact = _forward(seq, hmm, steps)
        if not exact:  # the log-space recursion, which loses nothing
            log_alpha = _log_forward(seq, _log_parameters(hmm))
            total += _log_sum_exp_rows(log_alpha[-1])
        else:
            with np.errstate(divide="ignore"):  # log 0 = -inf: impossible
                total += np.log(scale).sum()
    return float(total)


def posteriors(obs, hmm):
    """State posteriors gamma and pair posteriors xi (Li Hang, section 10.2).

    .. math::

        \\gamma_t(i) = P(i_t = i \\mid O, \\lambda)
            = \\frac{\\alpha_t(i) \\beta_t(i)}{P(O \\mid \\lambda)}, \\qquad
        \\xi_t(i, j) = P(i_t = i, i_{t+1} = j \\mid O, \\lambda)
            = \\frac{\\alpha_t(i) a_{ij} b_j(o_{t+1}) \\beta_{t+1}(j)}
                   {P(O \\mid \\lambda)}

    Parameters
    ----------
    obs : array_like of int, shape (T,), or list of them
        Symbols in [0, M).
    hmm : HMM
        lambda = (pi, A, B).

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
    """
    _check_hmm(hmm)
    sequences, several = _as_observations(obs, hmm.n_symbols)
    names = _names(len(sequences), several)
    steps = _step_matrices(hmm)
    results = [
        _posteriors(s, hmm, steps, n) for s, n in zip(sequences, names, strict=True)
    ]
    return [gamma for gamma, _, _ in results], [xi for _, xi, _ in results]


def viterbi(obs, hmm):
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
    obs : array_like of int, shape (T,), or list of them
        Symbols in [0, M).
    hmm : HMM
        lambda = (pi, A, B).

    Returns
    -------
    paths : list of ndarray of int, each shape (T_k,)
        One per sequence (one for a single sequence): argmax over I of
        P(O, I | lambda), states numbered from 0.
    log_probabilities : list of float
        log max_I P(O, I | lambda), one per sequence.

    Raises
    ------
    ValueError
        On bad input, or if a sequence has probability 0 under ``hmm`` (every
        path is then a maximiser).
    """
    _check_hmm(hmm)
    sequences, several = _as_observations(obs, hmm.n_symbols)
    # log 0 = -inf is exact, and the recursion only adds and compares, so
    # impossible transitions and emissions need no special case.
    with np.errstate(divide="ignore"):
        log_start = np.log(hmm.start)
        log_emission = np.log(hmm.emission)
        # log a_ij + log b_j(k) for every symbol k: shape (M, S, S)
        log_steps = np.log(hmm.transition) + log_emission.T[:, None, :]
    results = []
    for seq, name in zip(sequences, _names(len(sequences), several), strict=True):
        delta = log_start + log_emission[:, seq[0]]
        results.append(_viterbi(seq, delta, log_steps, name))
    return [path for path, _ in results], [log_p for _, log_p in results]


def _viterbi(seq, delta, log_steps, name):
    """Viterbi on one sequence, from delta_1 (S,) and log_steps (M, S, S)."""
    best_previous = np.zeros((seq.size, delta.size), dtype=np.int64)  # psi_t(j)
    for t in range(1, seq.size):
        candidates = delta[:, None] + log_steps[seq[t]]  # (i, j)
        np.argmax(candidates, axis=0, out=best_previous[t])
        delta = candidates.max(axis=0)
    last = int(delta.argmax())
    log_probability = float(delta[last])
    if log_probability == -np.inf:
        raise ValueError(
            f"{name} has probability 0 under the model: every state path is "
            "impossible, so there is no most probable one."
        )
    path = np.empty(seq.size, dtype=np.int64)
    path[-1] = last
    for t in range(seq.size - 1, 0, -1):
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
    emissions : ndarray, shape (S, M)
        sum over sequences and t with o_t = k of gamma_t(j), column k.
    """
    n_states, n_symbols = hmm.emission.shape
    first = np.zeros(n_states)
    transitions = np.zeros((n_states, n_states))
    emissions = np.zeros((n_states, n_symbols))
    steps = _step_matrices(hmm)
    log_lik = 0.0
    for seq, name in zip(sequences, names, strict=True):
        gamma, xi, seq_log_lik = _posteriors(seq, hmm, steps, name)
        first += gamma[0]
        transitions += xi.sum(axis=0)
        # Column k of emissions gathers the gamma_t with o_t = k.
        np.add.at(emissions.T, seq, gamma)
        log_lik += seq_log_lik
    return log_lik, first, transitions, emissions


def _normalize_rows(counts, current):
    """Rows of expected counts divided by their sums; a row with no count keeps
    its current value (Q does not depend on it, so that value maximises Q too).
    """
    totals = counts.sum(axis=1, keepdims=True)
    has_mass = totals > 0.0
    return np.where(has_mass, counts / np.where(has_mass, totals, 1.0), current)


def _m_step(hmm, first, transitions, emissions):
    """Li Hang (10.39)-(10.41), with several sequences' counts added.

    a_ij divides by sum_j xi-counts (equal to sum_{t<T} gamma_t(i) in exact
    arithmetic), so each row sums to 1 up to one rounding.
    """
    return HMM(
        first / first.sum(),
        _normalize_rows(transitions, hmm.transition),
        _normalize_rows(emissions, hmm.emission),
    )


def initial_theta(obs, n_states, *, n_symbols=None, random_state=None):
    """A random start for ``em(obs, S)``, as hmmlearn's categorical HMM draws one.

    pi and every row of A uniform (1/S); each row of B drawn uniformly from
    the simplex (a Dirichlet(1, ..., 1) draw), so that the states differ: from
    a start whose states are all alike, every iterate keeps them alike (their
    expected counts are equal), and EM could not separate them.

    Parameters
    ----------
    obs : array_like of int, shape (T,), or list of them
        Symbols, ints >= 0.
    n_states : int
        S >= 1.
    n_symbols : int, optional
        M, the number of symbols; default the largest symbol in ``obs`` + 1.
    random_state : None, int or numpy.random.Generator, default None
        The seed or generator of the draw of B.

    Returns
    -------
    HMM
    """
    sequences, _ = _as_observations(obs, None)
    n_states = check_int(n_states, "n_states")
    largest = max(int(seq.max()) for seq in sequences)
    if n_symbols is None:
        n_symbols = largest + 1
    n_symbols = check_int(
        n_symbols,
        "n_symbols",
        largest + 1,
        rule=f"be > every symbol in obs (the largest is {largest})",
    )
    rng = as_generator(random_state)
    uniform = np.full(n_states, 1.0 / n_states)
    return HMM(
        uniform,
        np.tile(uniform, (n_states, 1)),
        rng.dirichlet(np.ones(n_symbols), size=n_states),
    )


def theta_to_vector(hmm):
    """lambda = (pi, A, B) as the flat vector SQUAREM extrapolates.

    The probabilities themselves, each distribution on its simplex: an
    extrapolation is an affine combination of iterates (its coefficients sum
    to 1), so every row keeps its sum 1 and every zero stays zero (an
    impossible transition or emission stays impossible, as in EM); only the
    signs need the check :func:`vector_to_theta` makes. (Log probabilities
    would make the signs free but send EM's zeros to -inf.)

    Parameters
    ----------
    hmm : HMM

    Returns
    -------
    ndarray, shape (S + S S + S M,)
    """
    return np.concatenate([hmm.start, hmm.transition.ravel(), hmm.emission.ravel()])


def vector_to_theta(vector, like):
    """The HMM of a :func:`theta_to_vector` vector.

    Parameters
    ----------
    vector : ndarray, shape (S + S S + S M,)
    like : HMM
        An HMM with the same S and M.

    Returns
    -------
    HMM
        Each distribution divided by its sum (which differs from 1 only by
        the rounding of the extrapolation).

    Raises
    ------
    ValueError
        If a probability is negative (the vector lies outside the simplex).
    """
    n_states, n_symbols = like.emission.shape
    start, transition, emission = np.split(
        vector, [n_states, n_states * (n_states + 1)]
    )
    transition = transition.reshape(n_states, n_states)
    emission = emission.reshape(n_states, n_symbols)
    return HMM(
        start / start.sum(),
        transition / transition.sum(axis=1, keepdims=True),
        emission / emission.sum(axis=1, keepdims=True),
    )


def em(
    obs,
    init,
    *,
    tol=1e-10,
    max_iter=1000,
    random_state=None,
    accelerate=None,
    stop="gain",
):
    """Fit a categorical HMM by the Baum-Welch algorithm (EM).

    Each iteration computes gamma and xi at lambda^(i) and sets

    .. math::

        \\pi_i = \\gamma_1(i), \\qquad
        a_{ij} = \\frac{\\sum_{t=1}^{T-1} \\xi_t(i, j)}
                      {\\sum_{t=1}^{T-1} \\gamma_t(i)}, \\qquad
        b_j(k) = \\frac{\\sum_{t: o_t = k} \\gamma_t(j)}{\\sum_{t=1}^{T} \\gamma_t(j)}

    (Li Hang (10.39)-(10.41)). With several sequences the numerators and
    denominators are summed over sequences, and pi is the average of their
    gamma_1.

    Parameters
    ----------
    obs : array_like of int, shape (T,), or list of them
        Symbols in [0, M).
    init : HMM or int
        The start lambda^(0), or a number of states S, in which case the
        start is :func:`initial_theta` ``(obs, S, random_state=random_state)``.
        Its zeros stay zeros: an impossible transition or emission is never
        re-estimated as possible.
    tol : float, default 1e-10
        Stop when an iteration raises the log-likelihood by less than
        ``tol * N``, N the total number of observations (a per-symbol gain
        below tol). With ``tol=0`` exactly ``max_iter`` iterations run
        (unless the log-likelihood falls).
    max_iter : int, default 1000
        Maximum number of iterations (>= 1).
    random_state : None, int or numpy.random.Generator, default None
        For the start drawn when ``init`` is an int; unused otherwise.
    accelerate : {None, "squarem"}, default None
        "squarem": SQUAREM with the monotonicity safeguard, extrapolating the
        probabilities on their simplices (:func:`theta_to_vector`); as in
        :func:`emlib.em`.
    stop : {"gain", "aitken"}, default "gain"
        The stopping rule, as in :func:`emlib.em`.

    Returns
    -------
    EMResult
        ``theta`` is the last HMM lambda^(n_iter); ``log_likelihoods[i]`` is
        log P(O | lambda^(i)), computed by the E-step's forward pass.

    Raises
    ------
    TypeError
        If ``init`` is neither an :class:`HMM` nor an int, or tol / max_iter
        have the wrong type.
    ValueError
        On bad observations, or if a sequence has probability 0 under the
        start.

    Warns
    -----
    emlib.ConvergenceWarning
        If the run stops on ``max_iter`` with tol > 0, or on a decrease.

    Notes
    -----
    A state with no expected transitions out of it (sum_{t<T} gamma_t(i) = 0)
    keeps its row of A, and a state with no expected visits keeps its row of
    B: Q does not depend on those rows, so keeping them is a maximiser and
    the log-likelihood still cannot decrease.
    """
    if is_int(init):
        n_states = check_int(init, "init", rule="satisfy 1 <= S, a number of states")
        init = initial_theta(obs, n_states, random_state=random_state)
    if not isinstance(init, HMM):
        raise TypeError(
            "init must be an emlib.hmm.HMM(start, transition, emission) start or "
            f"a number of states S (int), got {type(init).__name__}."
        )
    sequences, several = _as_observations(obs, init.n_symbols)
    names = _names(len(sequences), several)

    def e_pass(hmm):
        log_lik, *counts = _e_step(sequences, names, hmm)
        return log_lik, counts

    return run_em(
        e_pass,
        lambda hmm, counts: _m_step(hmm, *counts),
        init,
        n=sum(seq.size for seq in sequences),
        tol=tol,
        max_iter=max_iter,
        accelerate=accelerate,
        stop=stop,
        to_vector=theta_to_vector,
        from_vector=vector_to_theta,
    )


# The textbook name (Li Hang 10.3, Rabiner III.C): the same function.
baum_welch = em
