"""emlib.hmm against brute-force path sums, the book, hmmlearn, and bad input.

The reference below is written independently of the module: it enumerates
all S^T state paths I of a short sequence and sums or maximises
P(O, I | lambda) = pi_{i_1} b_{i_1}(o_1) prod_t a_{i_{t-1} i_t} b_{i_t}(o_t)
in ``fractions.Fraction`` (floats convert to Fractions exactly), straight
from the model's definition (Li Hang, Statistical Learning Methods, 10.1).
No recursion, no scaling: the module may differ from it only by rounding.
"""

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
from hmmlearn.hmm import CategoricalHMM
from hypothesis import given, settings
from hypothesis import strategies as st

import emlib
from emlib.hmm import HMM, baum_welch, log_likelihood, posteriors, viterbi

# Float against the exact reference: a few roundings per time step on
# sequences of at most 6 steps (measured at most 2e-15).
RTOL = 1e-13
# Against hmmlearn after several EM iterations: the two libraries order their
# sums differently (hmmlearn works in log space), and each iteration feeds the
# last one's rounding forward. The issue asks for 1e-8; measured <= 1e-14.
RTOL_HMMLEARN = 1e-10

# Li Hang, example 10.2 (also 10.3 and exercise 10.1): three boxes, red = 0,
# white = 1. States and symbols are numbered from 0 here, from 1 in the book.
# As decimal strings, so that the reference works with the book's exact
# numbers (Fraction("0.2") is 1/5; the float 0.2 is not).
BOOK_EXACT = (
    ["0.2", "0.4", "0.4"],
    [["0.5", "0.2", "0.3"], ["0.3", "0.5", "0.2"], ["0.2", "0.3", "0.5"]],
    [["0.5", "0.5"], ["0.4", "0.6"], ["0.7", "0.3"]],
)
# Exercise 10.2's model.
EXERCISE_10_2_EXACT = (
    ["0.2", "0.3", "0.5"],
    [["0.5", "0.1", "0.4"], ["0.3", "0.5", "0.2"], ["0.2", "0.2", "0.6"]],
    [["0.5", "0.5"], ["0.4", "0.6"], ["0.7", "0.3"]],
)
BOOK = HMM(*(np.array(p, dtype=float) for p in BOOK_EXACT))
EXERCISE_10_2 = HMM(*(np.array(p, dtype=float) for p in EXERCISE_10_2_EXACT))


# ---------------------------------------------------------------------------
# Brute-force exact reference
# ---------------------------------------------------------------------------


def path_probabilities(obs, hmm):
    """{I: P(O, I | lambda)} over all S^T paths, exactly.

    ``hmm`` is an HMM (its floats are taken exactly) or a triple of nested
    lists of decimal strings such as ``BOOK_EXACT``.
    """
    if isinstance(hmm, HMM):
        hmm = (hmm.start, hmm.transition, hmm.emission)
    start, transition, emission = hmm
    pi = [Fraction(v) for v in start]
    a = [[Fraction(v) for v in row] for row in transition]
    b = [[Fraction(v) for v in row] for row in emission]
    states = range(len(pi))
    # The paths of length t + 1 extend those of length t: each product
    # pi_{i_1} b_{i_1}(o_1) ... a_{i_{t-1} i_t} b_{i_t}(o_t) is its prefix's
    # times one more factor, so prefixes are multiplied out once, not once
    # per path. Paths come in itertools.product's (lexicographic) order.
    table = {(i,): pi[i] * b[i][obs[0]] for i in states}
    for o in obs[1:]:
        table = {
            (*path, j): prob * (a[path[-1]][j] * b[j][o])
            for path, prob in table.items()
            for j in states
        }
    return table


def ref_posteriors(obs, hmm):
    """gamma (T, S) and xi (T-1, S, S) as nested lists of Fractions."""
    table = path_probabilities(obs, hmm)
    total = sum(table.values())
    size, s = len(obs), len(hmm[0] if isinstance(hmm, tuple) else hmm.start)
    gamma = [[Fraction(0)] * s for _ in range(size)]
    xi = [[[Fraction(0)] * s for _ in range(s)] for _ in range(size - 1)]
    for path, prob in table.items():
        for t in range(size):
            gamma[t][path[t]] += prob
        for t in range(size - 1):
            xi[t][path[t]][path[t + 1]] += prob
    gamma = [[g / total for g in row] for row in gamma]
    xi = [[[x / total for x in row] for row in matrix] for matrix in xi]
    return gamma, xi


def ref_m_step(sequences, hmm):
    """Li Hang (10.39)-(10.41) from the exact posteriors, counts summed.

    A row with no expected count keeps its current value (emlib's rule).
    """
    s, m = hmm.n_states, hmm.n_symbols
    first = [Fraction(0)] * s
    trans = [[Fraction(0)] * s for _ in range(s)]
    emit = [[Fraction(0)] * m for _ in range(s)]
    for obs in sequences:
        gamma, xi = ref_posteriors(obs, hmm)
        for i in range(s):
            first[i] += gamma[0][i]
            for t, o in enumerate(obs):
                emit[i][o] += gamma[t][i]
            for j in range(s):
                trans[i][j] += sum(xi[t][i][j] for t in range(len(obs) - 1))

    def normalize(rows, current):
        return [
            [c / sum(row) for c in row] if sum(row) else list(old)
            for row, old in zip(rows, current, strict=True)
        ]

    return (
        [f / len(sequences) for f in first],
        normalize(trans, hmm.transition),
        normalize(emit, hmm.emission),
    )


def assert_close(actual, expected, rtol=RTOL):
    actual = np.asarray(actual, dtype=float)
    expected = np.array([float(e) for e in np.ravel(expected)]).reshape(actual.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=0)


def random_hmm(rng, n_states, n_symbols, zeros=False):
    """Rows uniform on the simplex; with ``zeros``, some entries set to 0."""

    def rows(shape):
        x = rng.uniform(0.05, 1.0, shape)
        if zeros:
            x[rng.uniform(size=shape) < 0.3] = 0.0
            x[np.arange(shape[0]), rng.integers(0, shape[1], shape[0])] = 1.0
        return x / x.sum(axis=1, keepdims=True)

    return HMM(
        rows((1, n_states))[0], rows((n_states, n_states)), rows((n_states, n_symbols))
    )


def sample(rng, hmm, size):
    """A sequence drawn from the model (so it has positive probability)."""
    state = rng.choice(hmm.n_states, p=hmm.start)
    obs = []
    for _ in range(size):
        obs.append(int(rng.choice(hmm.n_symbols, p=hmm.emission[state])))
        state = rng.choice(hmm.n_states, p=hmm.transition[state])
    return obs


CASES = [  # (seed, S, M, T, zeros in pi, A, B)
    (0, 2, 2, 1, False),
    (1, 2, 3, 5, False),
    (2, 3, 2, 5, False),
    (3, 3, 3, 4, True),
    (4, 2, 2, 6, True),
]


@pytest.fixture(
    params=CASES, ids=[f"seed{c[0]}-S{c[1]}-M{c[2]}-T{c[3]}" for c in CASES]
)
def case(request):
    seed, s, m, size, zeros = request.param
    rng = np.random.default_rng(seed)
    hmm = random_hmm(rng, s, m, zeros)
    return sample(rng, hmm, size), sample(rng, hmm, 3), hmm


# ---------------------------------------------------------------------------
# Against the path sums
# ---------------------------------------------------------------------------


def test_log_likelihood_is_the_path_sum(case):
    obs, _, hmm = case
    exact = sum(path_probabilities(obs, hmm).values())
    assert math.isclose(log_likelihood(obs, hmm), math.log(exact), rel_tol=RTOL)


def test_posteriors_are_the_path_sums(case):
    obs, _, hmm = case
    (gamma,), (xi,) = posteriors(obs, hmm)  # one sequence: lists of one
    ref_gamma, ref_xi = ref_posteriors(obs, hmm)
    assert gamma.shape == (len(obs), hmm.n_states)
    assert xi.shape == (len(obs) - 1, hmm.n_states, hmm.n_states)
    np.testing.assert_allclose(
        gamma, np.array(ref_gamma, dtype=float), rtol=RTOL, atol=1e-16
    )
    np.testing.assert_allclose(
        xi, np.array(ref_xi, dtype=float).reshape(xi.shape), rtol=RTOL, atol=1e-16
    )


def test_viterbi_is_the_path_maximum(case):
    obs, _, hmm = case
    table = path_probabilities(obs, hmm)
    best = max(table, key=table.get)
    (path,), (log_p,) = viterbi(obs, hmm)
    assert path.dtype.kind == "i"
    assert tuple(path.tolist()) == best
    assert math.isclose(log_p, math.log(table[best]), rel_tol=RTOL)


def test_one_baum_welch_iteration_is_the_exact_m_step(case):
    obs, other, hmm = case
    fit = baum_welch([obs, other], hmm, tol=0, max_iter=1)
    pi, a, b = ref_m_step([obs, other], hmm)
    assert_close(fit.theta.start, pi)
    assert_close(fit.theta.transition, a)
    assert_close(fit.theta.emission, b)


def test_one_sequence_or_a_list_give_the_same_kind_of_result(case):
    obs, other, hmm = case
    assert math.isclose(
        log_likelihood([obs, other], hmm),
        log_likelihood(obs, hmm) + log_likelihood(other, hmm),
        rel_tol=RTOL,
    )
    gammas, xis = posteriors((obs, np.array(other)), hmm)
    paths, log_ps = viterbi([obs, other], hmm)
    assert len(gammas) == len(xis) == len(paths) == len(log_ps) == 2
    # A single sequence is a list of one: the same kind of result.
    one_gamma, one_xi = posteriors(other, hmm)
    one_path, one_log_p = viterbi(obs, hmm)
    assert all(type(r) is list for r in (one_gamma, one_xi, one_path, one_log_p))
    assert len(one_gamma) == len(one_xi) == len(one_path) == len(one_log_p) == 1
    np.testing.assert_array_equal(gammas[1], one_gamma[0])
    np.testing.assert_array_equal(xis[1], one_xi[0])
    np.testing.assert_array_equal(paths[0], one_path[0])
    assert log_ps[0] == one_log_p[0]
    assert isinstance(log_likelihood(obs, hmm), float)
    assert isinstance(log_likelihood([obs], hmm), float)


# ---------------------------------------------------------------------------
# The book (Li Hang, ch. 10)
# ---------------------------------------------------------------------------


def test_example_10_2_forward_probability():
    obs = [0, 1, 0]  # red, white, red
    exact = sum(path_probabilities(obs, BOOK_EXACT).values())
    assert exact == Fraction("0.130218")  # the book's P(O | lambda)
    assert math.isclose(log_likelihood(obs, BOOK), math.log(0.130218), rel_tol=RTOL)


def test_example_10_3_viterbi_path():
    obs = [0, 1, 0]
    table = path_probabilities(obs, BOOK_EXACT)
    assert max(table, key=table.get) == (2, 2, 2)  # the book's (3, 3, 3)
    assert table[(2, 2, 2)] == Fraction("0.0147")  # the book's P*
    (path,), (log_p,) = viterbi(obs, BOOK)
    assert path.tolist() == [2, 2, 2]
    assert math.isclose(log_p, math.log(0.0147), rel_tol=RTOL)


def test_exercise_10_1_backward_probability():
    obs = [0, 1, 0, 1]
    exact = sum(path_probabilities(obs, BOOK_EXACT).values())
    assert math.isclose(log_likelihood(obs, BOOK), math.log(exact), rel_tol=RTOL)


def test_exercise_10_2_state_posterior():
    obs = [0, 1, 0, 0, 1, 0, 1, 1]
    table = path_probabilities(obs, EXERCISE_10_2_EXACT)
    # P(i_4 = q_3 | O, lambda): t = 4 and state 3 in the book's numbering.
    exact = sum(p for path, p in table.items() if path[3] == 2) / sum(table.values())
    assert math.isclose(posteriors(obs, EXERCISE_10_2)[0][0][3, 2], exact, rel_tol=RTOL)


# ---------------------------------------------------------------------------
# Against hmmlearn
# ---------------------------------------------------------------------------


def hmmlearn_model(hmm, n_iter=1):
    """hmmlearn's CategoricalHMM holding ``hmm``'s parameters."""
    # init_params="" makes fit start from these parameters; tol=-inf means
    # its monitor never stops early, so fit runs exactly n_iter iterations.
    model = CategoricalHMM(hmm.n_states, n_iter=n_iter, tol=-np.inf, init_params="")
    model.startprob_ = np.array(hmm.start)
    model.transmat_ = np.array(hmm.transition)
    model.emissionprob_ = np.array(hmm.emission)
    return model


def hmmlearn_fit(sequences, init, n_iter):
    """hmmlearn's Baum-Welch from ``init``: the model and its final score."""
    model = hmmlearn_model(init, n_iter)
    data = np.concatenate(sequences)[:, None]
    lengths = [len(s) for s in sequences]
    model.fit(data, lengths)
    assert model.monitor_.iter == n_iter
    return model, model.score(data, lengths)


@pytest.mark.parametrize("lengths", [(200,), (60, 1, 35, 80)])
def test_matches_hmmlearn(lengths):
    rng = np.random.default_rng(sum(lengths))
    truth, init = random_hmm(rng, 3, 4), random_hmm(rng, 3, 4)
    sequences = [np.array(sample(rng, truth, n)) for n in lengths]
    n_iter = 8
    model, final = hmmlearn_fit(sequences, init, n_iter)
    fit = baum_welch(
        sequences if len(lengths) > 1 else sequences[0], init, tol=0, max_iter=n_iter
    )
    assert fit.n_iter == n_iter
    for ours, theirs in [
        (fit.theta.start, model.startprob_),
        (fit.theta.transition, model.transmat_),
        (fit.theta.emission, model.emissionprob_),
        # hmmlearn's history holds log P(O | lambda^(i)) for i < n_iter.
        (fit.log_likelihoods, [*model.monitor_.history, final]),
    ]:
        np.testing.assert_allclose(ours, theirs, rtol=RTOL_HMMLEARN, atol=0)


def test_long_sequence_is_finite_and_matches_hmmlearn():
    rng = np.random.default_rng(7)
    hmm = random_hmm(rng, 3, 4)  # no zeros: the tiled sequence stays possible
    obs = np.tile(sample(rng, hmm, 1000), 100)  # T = 100,000
    value = log_likelihood(obs, hmm)
    assert np.isfinite(value)
    # P(O) itself is below the smallest positive float64.
    assert value < math.log(np.finfo(float).smallest_subnormal)
    reference = hmmlearn_model(hmm).score(obs[:, None])
    assert math.isclose(value, reference, rel_tol=1e-10)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True, database=None)


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n_states=st.integers(1, 3),
    n_symbols=st.integers(1, 3),
    lengths=st.lists(st.integers(1, 25), min_size=1, max_size=3),
    zeros=st.booleans(),
)
def test_log_likelihood_never_decreases(seed, n_states, n_symbols, lengths, zeros):
    rng = np.random.default_rng(seed)
    truth = random_hmm(rng, n_states, n_symbols)
    init = random_hmm(rng, n_states, n_symbols, zeros)
    # With zeros in the start, data it can produce (from truth they may be
    # impossible under it).
    source = init if zeros else truth
    sequences = [sample(rng, source, n) for n in lengths]
    fit = baum_welch(sequences, init, tol=0, max_iter=10)
    gains = np.diff(fit.log_likelihoods)
    # Rounding only: log P(O) is a sum of N logarithms, each a few ulps off.
    n_obs = sum(lengths)
    assert np.all(gains >= -1e-13 * (n_obs + np.abs(fit.log_likelihoods).max()))
    # Zeros stay zeros (the M-step's numerators carry them).
    assert np.all(fit.theta.transition[init.transition == 0] == 0)
    assert np.all(fit.theta.emission[init.emission == 0] == 0)


def test_stopping_rule_is_emlibs():
    rng = np.random.default_rng(11)
    init = random_hmm(rng, 2, 3)
    obs = sample(rng, random_hmm(rng, 2, 3), 300)
    fit = baum_welch(obs, init, tol=1e-4)
    gains = np.diff(fit.log_likelihoods)
    assert fit.converged
    assert fit.n_iter > 2
    assert gains[-1] < 1e-4 * len(obs) <= gains[:-1].min()
    with pytest.warns(emlib.ConvergenceWarning, match="max_iter = 2 iterations"):
        capped = baum_welch(obs, init, tol=1e-4, max_iter=2)
    assert capped.n_iter == 2
    assert not capped.converged
    assert capped.stop_reason == "max_iter"
    assert isinstance(fit, emlib.EMResult)


def test_zero_probabilities_give_no_nan_and_unvisited_rows_stay():
    # Left-to-right: state 2 is absorbing, state 1 only emits symbol 1.
    hmm = HMM(
        [1, 0, 0],
        [[0.4, 0.6, 0], [0, 0.5, 0.5], [0, 0, 1]],
        [[0.5, 0.5], [0, 1], [1, 0]],
    )
    obs = [0, 1, 1]  # state 2 (emits only 0) cannot appear
    (gamma,), (xi,) = posteriors(obs, hmm)
    assert np.all(np.isfinite(gamma))
    assert np.all(np.isfinite(xi))
    assert np.all(gamma[:, 2] == 0)
    (path,), (log_p,) = viterbi(obs, hmm)
    # Paths 000, 001, 011 have 0.02, 0.06, 0.15; the others probability 0.
    assert path.tolist() == [0, 1, 1]
    assert math.isclose(log_p, math.log(0.15), rel_tol=RTOL)
    fit = baum_welch(obs, hmm, tol=0, max_iter=3)
    # State 2 gets no expected visits: Q does not depend on its rows.
    np.testing.assert_array_equal(fit.theta.transition[2], hmm.transition[2])
    np.testing.assert_array_equal(fit.theta.emission[2], hmm.emission[2])


# ---------------------------------------------------------------------------
# The parameters object
# ---------------------------------------------------------------------------


def test_hmm_is_immutable_and_copies_its_input():
    start = np.array([0.5, 0.5])
    hmm = HMM(start, np.eye(2), [[1.0], [1.0]])
    start[0] = 0.9
    assert hmm.start[0] == 0.5
    with pytest.raises(ValueError, match="read-only"):
        hmm.transition[0, 0] = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        hmm.start = start
    assert (hmm.n_states, hmm.n_symbols) == (2, 1)
    assert (
        repr(hmm)
        == "HMM(start=[0.5, 0.5], transition=[[1, 0], [0, 1]], emission=[[1], [1]])"
    )


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("a", np.eye(2), np.eye(2)), TypeError, "start must hold real numbers"),
        (([0.5, 0.5], [[1, 0], [0, np.nan]], np.eye(2)), ValueError, "NaN"),
        (
            ([[0.5, 0.5]], np.eye(2), np.eye(2)),
            ValueError,
            r"start must be .* shape \(S,\)",
        ),
        (([], np.eye(2), np.eye(2)), ValueError, "non-empty"),
        (([0.5, 0.5], [1, 0], np.eye(2)), ValueError, r"transition .* \(S, S\)"),
        (([0.5, 0.5], np.eye(2), [1, 0]), ValueError, r"emission .* \(S, M\)"),
        (
            ([1.5, -0.5], np.eye(2), np.eye(2)),
            ValueError,
            "start must hold probabilities >= 0",
        ),
        (([0.5, 0.6], np.eye(2), np.eye(2)), ValueError, "start must sum to 1"),
        (
            ([0.5, 0.5], [[1, 0], [0.5, 0.6]], np.eye(2)),
            ValueError,
            "transition row 1 must sum",
        ),
        (
            ([0.5, 0.5], np.eye(2), [[1, 0], [0, 0]]),
            ValueError,
            "emission row 1 must sum",
        ),
        (([1.0], np.eye(2), np.eye(2)), ValueError, "agree on the number of states"),
        (
            ([0.5, 0.5], np.eye(2), np.eye(3)),
            ValueError,
            "agree on the number of states",
        ),
    ],
)
def test_bad_parameters(args, error, match):
    with pytest.raises(error, match=match):
        HMM(*args)


# ---------------------------------------------------------------------------
# Bad observations and arguments
# ---------------------------------------------------------------------------

FUNCTIONS = [
    log_likelihood,
    posteriors,
    viterbi,
    lambda obs, hmm: baum_welch(obs, hmm, tol=0, max_iter=1),
]
BAD_OBS = [
    ([0.0, 1.0], TypeError, "integer symbols"),
    ([True, False], TypeError, "integer symbols"),
    ("01", TypeError, "integer symbols"),
    ([0, 2], ValueError, r"obs\[1\] = 2 is not a symbol"),
    ([-1, 0], ValueError, r"obs\[0\] = -1 is not a symbol"),
    ([], ValueError, "obs is empty"),
    (np.zeros((2, 3), dtype=int), ValueError, "must be 1-D"),
    ([[0, 1], []], ValueError, r"obs\[1\] is empty"),
    ([[0, 1], [0, 5]], ValueError, r"obs\[1\]\[1\] = 5"),
    ([[0, 1], 1], ValueError, r"obs\[1\] must be 1-D"),
    ([[0, 1], [[0, 1]]], ValueError, r"obs\[1\] must be 1-D"),
    ([[0, [1]]], TypeError, r"obs\[0\] must be a 1-D sequence of ints"),
]


@pytest.mark.parametrize(
    "function", FUNCTIONS, ids=["log_likelihood", "posteriors", "viterbi", "baum_welch"]
)
@pytest.mark.parametrize(("obs", "error", "match"), BAD_OBS)
def test_bad_observations(function, obs, error, match):
    with pytest.raises(error, match=match):
        function(obs, BOOK)


@pytest.mark.parametrize("function", FUNCTIONS[:3])
def test_model_must_be_an_hmm(function):
    with pytest.raises(TypeError, match=r"hmm must be an emlib\.hmm\.HMM"):
        function([0, 1], (BOOK.start, BOOK.transition, BOOK.emission))


def test_baum_welch_arguments():
    with pytest.raises(TypeError, match=r"init must be an emlib\.hmm\.HMM"):
        baum_welch([0, 1], "BOOK")
    with pytest.raises(ValueError, match="tol must be finite"):
        baum_welch([0, 1], BOOK, tol=-1.0)
    with pytest.raises(TypeError, match="max_iter must be an int"):
        baum_welch([0, 1], BOOK, max_iter=2.0)


def test_impossible_sequences():
    never_white = HMM([1, 0], [[0, 1], [1, 0]], [[1, 0], [0, 1]])  # 0, 1, 0, ...
    assert log_likelihood([0, 0], never_white) == -np.inf
    for function in FUNCTIONS[1:]:
        with pytest.raises(ValueError, match="probability 0"):
            function([0, 0], never_white)
    with pytest.raises(ValueError, match=r"obs\[1\] has probability 0.*t = 1"):
        posteriors([[0, 1], [0, 0]], never_white)


def test_inputs_are_not_modified():
    obs = np.array([0, 1, 1, 0])
    sequences = [obs, obs[:2]]
    before = obs.copy()
    for function in FUNCTIONS:
        function(sequences, BOOK)
    np.testing.assert_array_equal(obs, before)
    assert len(sequences) == 2
    assert sequences[0] is obs
