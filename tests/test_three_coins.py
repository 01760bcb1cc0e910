"""emlib.three_coins against a naive exact reference, bad inputs, and the book.

The reference below is written independently of the module: plain loops over
the tosses in ``fractions.Fraction``, straight from the model's definition
(Li Hang, Statistical Learning Methods, example 9.1). Floats convert to
Fractions exactly, so the reference is the exact value of each formula at the
same inputs, and the module may differ from it only by rounding.
"""

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from emlib import three_coins
from emlib.three_coins import ThreeCoins

# Li Hang, example 9.1: the observed second tosses.
BOOK_Y = [1, 1, 0, 1, 0, 0, 1, 0, 1, 1]

# Float agreement with the exact reference: a handful of roundings in double
# precision, far below this (measured at most 1.5e-15 in the tests that use it).
RTOL = 1e-13


# ---------------------------------------------------------------------------
# Naive exact reference
# ---------------------------------------------------------------------------


def ref_joint(y_j, pi, p, q):
    """P(y_j, coin B) and P(y_j, coin C) for one toss, exactly."""
    b = pi * p if y_j == 1 else pi * (1 - p)
    c = (1 - pi) * q if y_j == 1 else (1 - pi) * (1 - q)
    return b, c


def ref_e_step(y, pi, p, q):
    mu = []
    for y_j in y:
        b, c = ref_joint(y_j, pi, p, q)
        mu.append(b / (b + c))
    return mu


def ref_m_step(y, mu):
    n_b = sum(mu)
    n_c = sum(1 - m for m in mu)
    heads_b = sum(m * y_j for m, y_j in zip(mu, y, strict=True))
    heads_c = sum((1 - m) * y_j for m, y_j in zip(mu, y, strict=True))
    return n_b / len(y), heads_b / n_b, heads_c / n_c


def ref_log_likelihood(y, pi, p, q):
    total = 0.0
    for y_j in y:
        b, c = ref_joint(y_j, pi, p, q)
        total += math.log(b + c)
    return total


def ref_em(y, pi, p, q, n_iter):
    thetas = [(pi, p, q)]
    for _ in range(n_iter):
        thetas.append(ref_m_step(y, ref_e_step(y, *thetas[-1])))
    return thetas


def exact(theta):
    return Fraction(theta.pi), Fraction(theta.p), Fraction(theta.q)


def assert_close(actual, expected, rtol=RTOL):
    actual = np.asarray(actual, dtype=float)
    expected = np.array([float(e) for e in np.ravel(expected)]).reshape(actual.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=0)


def random_case(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    y = rng.integers(0, 2, n)
    theta = ThreeCoins(*rng.uniform(0.02, 0.98, 3))
    return y, theta


SEEDS = range(8)


# ---------------------------------------------------------------------------
# Agreement with the reference
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_e_step_matches_exact_reference(seed):
    y, theta = random_case(seed)
    mu = three_coins.e_step(y, theta)
    assert mu.shape == y.shape
    assert_close(mu, ref_e_step(y.tolist(), *exact(theta)))


@pytest.mark.parametrize("seed", SEEDS)
def test_m_step_matches_exact_reference(seed):
    y, _ = random_case(seed)
    mu = np.random.default_rng(seed + 100).uniform(0.0, 1.0, y.size)
    theta = three_coins.m_step(y, mu)
    expected = ref_m_step(y.tolist(), [Fraction(m) for m in mu])
    assert_close([theta.pi, theta.p, theta.q], expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_log_likelihood_matches_per_toss_reference(seed):
    y, theta = random_case(seed)
    expected = ref_log_likelihood(y.tolist(), *exact(theta))
    assert math.isclose(three_coins.log_likelihood(y, theta), expected, rel_tol=RTOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_em_is_the_exact_iteration(seed):
    y, theta = random_case(seed)
    fit = three_coins.em(y, theta, tol=0, max_iter=3)
    assert fit.n_iter == 3
    assert not fit.converged
    thetas = ref_em(y.tolist(), *exact(theta), 3)
    assert_close([fit.theta.pi, fit.theta.p, fit.theta.q], thetas[-1])
    expected_lls = [ref_log_likelihood(y.tolist(), *t) for t in thetas]
    assert_close(fit.log_likelihoods, expected_lls)


def test_heads_probability_is_the_marginal():
    theta = ThreeCoins(0.4, 0.6, 0.7)
    b, c = ref_joint(1, *exact(theta))
    assert math.isclose(theta.heads_probability, b + c, rel_tol=RTOL)


# ---------------------------------------------------------------------------
# The book's results
# ---------------------------------------------------------------------------

BOOK = [
    # start, printed result (example 9.1 twice, then exercise 9.1)
    (("0.5", "0.5", "0.5"), (0.5, 0.6, 0.6)),
    (("0.4", "0.6", "0.7"), (0.4064, 0.5368, 0.6432)),
    (("0.46", "0.55", "0.67"), (0.4619, 0.5346, 0.6561)),
]


@pytest.mark.parametrize(("start", "printed"), BOOK)
def test_book_results(start, printed):
    fit = three_coins.em(BOOK_Y, ThreeCoins(*(float(s) for s in start)))
    got = (fit.theta.pi, fit.theta.p, fit.theta.q)
    # To the printed 4 decimals (half a unit in the last place).
    assert np.all(np.abs(np.subtract(got, printed)) <= 0.5e-4 + 1e-15)
    # The exact EM limit from the exact decimal start: one iteration reaches
    # it and a second does not move (see test_em_stops_after_one_iteration).
    thetas = ref_em(BOOK_Y, *(Fraction(s) for s in start), 2)
    assert thetas[2] == thetas[1]
    assert_close(got, thetas[1])
    assert fit.converged
    assert fit.n_iter == 2


def test_book_exact_fractions():
    # Worked by hand for the start (0.4, 0.6, 0.7): mu = 4/11 for heads and
    # 8/17 for tails, so pi = (6*4/11 + 4*8/17) / 10 = 76/187, and so on.
    thetas = ref_em(BOOK_Y, Fraction("0.4"), Fraction("0.6"), Fraction("0.7"), 1)
    assert ref_e_step([1, 0], *thetas[0]) == [Fraction(4, 11), Fraction(8, 17)]
    assert thetas[1] == (Fraction(76, 187), Fraction(51, 95), Fraction(119, 185))


def test_all_maximisers_have_the_same_likelihood():
    # Any theta with pi p + (1 - pi) q = mean(y) maximises the likelihood.
    fits = [
        three_coins.em(BOOK_Y, ThreeCoins(*(float(s) for s in start)))
        for start, _ in BOOK
    ]
    best = 6 * math.log(0.6) + 4 * math.log(0.4)
    for fit in fits:
        assert math.isclose(fit.theta.heads_probability, 0.6, rel_tol=1e-14)
        assert math.isclose(fit.log_likelihoods[-1], best, rel_tol=1e-14)


# ---------------------------------------------------------------------------
# Properties over random data and starts
# ---------------------------------------------------------------------------

tosses = st.lists(st.integers(0, 1), min_size=1, max_size=60)
probability = st.floats(0.01, 0.99)
starts = st.builds(ThreeCoins, probability, probability, probability)


# derandomize and no example database: CI runs the same examples every time.
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None)


@SETTINGS
@given(y=tosses, start=starts)
# The worst case for rounding: a heads posterior 1 - mu_j near 1e-4 (below).
@example(y=[1] + [0] * 59, start=ThreeCoins(0.99, 0.99, 0.01))
def test_log_likelihood_never_decreases_and_em_stops_after_one_iteration(y, start):
    """Two properties of each drawn (y, start): one test, one set of draws.

    Drawing an example costs hypothesis more than both checks together
    (measured: 0.5 s of the 0.6 s a test of 150 examples took), so the two
    properties share the 150 examples instead of drawing 150 each.
    """
    fit = three_coins.em(y, start, tol=0, max_iter=4)
    lls = fit.log_likelihoods
    rounding = 1e-13 * max(1.0, np.abs(lls).max())
    assert np.all(np.diff(lls) >= -rounding)
    # Every M-step sets the model's heads probability to the observed
    # frequency, and the EM map fixes every such theta.
    first = three_coins.m_step(y, three_coins.e_step(y, start))
    assert math.isclose(first.heads_probability, np.mean(y), abs_tol=1e-14)
    second = three_coins.m_step(y, three_coins.e_step(y, first))
    # Not RTOL: the M-step sums 1 - mu_j, and for a posterior mu_j near 1 the
    # absolute rounding of mu_j (about 1e-16) becomes a relative error of
    # 1e-16 / (1 - mu_j) in coin C's counts. Starts in [0.01, 0.99] allow
    # 1 - mu_j (or mu_j) down to about 1e-4, so up to about 1e-12; measured
    # 1.09e-12 at the example above.
    assert_close(
        [second.pi, second.p, second.q], [first.pi, first.p, first.q], rtol=1e-11
    )


def test_all_heads_reach_deterministic_coins():
    fit = three_coins.em([1, 1, 1], ThreeCoins(0.3, 0.5, 0.8))
    pi, p, q = exact(ThreeCoins(0.3, 0.5, 0.8))
    assert fit.theta.p == fit.theta.q == 1.0
    assert math.isclose(fit.theta.pi, float(pi * p / (pi * p + (1 - pi) * q)))
    assert fit.log_likelihoods[-1] == 0.0


# ---------------------------------------------------------------------------
# Accepted input forms
# ---------------------------------------------------------------------------


def test_boolean_and_column_tosses_equal_integer_tosses():
    theta = ThreeCoins(0.4, 0.6, 0.7)
    y = np.array(BOOK_Y)
    expected = three_coins.e_step(y, theta)
    for form in (y.astype(bool), y.astype(float)[:, None], BOOK_Y):
        np.testing.assert_array_equal(three_coins.e_step(form, theta), expected)


def test_three_coins_accepts_real_number_types():
    theta = ThreeCoins(Fraction(1, 2), np.float32(0.25), 1)
    assert (theta.pi, theta.p, theta.q) == (0.5, 0.25, 1.0)
    assert all(type(v) is float for v in (theta.pi, theta.p, theta.q))
    assert ThreeCoins(0.5, 0, 1) == ThreeCoins(0.5, 0.0, 1.0)


def test_three_coins_is_frozen():
    theta = ThreeCoins(0.4, 0.6, 0.7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        theta.pi = 0.5  # type: ignore[misc]


# ---------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pi": 0.0}, ValueError, r"0 < pi < 1, got pi = 0: coin B would never"),
        ({"pi": 1}, ValueError, r"0 < pi < 1, got pi = 1: coin C would never"),
        ({"p": -0.1}, ValueError, r"p must be a probability in \[0, 1\], got -0.1"),
        ({"q": 1.5}, ValueError, r"q must be a probability in \[0, 1\]"),
        ({"pi": float("nan")}, ValueError, r"pi must be a probability"),
        ({"p": float("inf")}, ValueError, r"p must be a probability"),
        ({"q": 10**400}, ValueError, r"q must be a probability"),
        ({"pi": "0.5"}, TypeError, r"pi must be a real number.*got str"),
        ({"p": True}, TypeError, r"p must be a real number.*got bool"),
        ({"q": None}, TypeError, r"q must be a real number.*got NoneType"),
        ({"q": 0.5 + 0j}, TypeError, r"got complex"),
        ({"pi": np.array(0.5)}, TypeError, r"got ndarray"),
    ],
)
def test_three_coins_rejects(kwargs, error, match):
    args = {"pi": 0.4, "p": 0.6, "q": 0.7} | kwargs
    with pytest.raises(error, match=match):
        ThreeCoins(**args)


@pytest.mark.parametrize(
    ("y", "error", "match"),
    [
        ([1, 0, 2], ValueError, r"coded 1 \(heads\) or 0 \(tails\); y\[2\] = 2"),
        ([0.5], ValueError, r"y\[0\] = 0.5"),
        ([-1, 1], ValueError, r"y\[0\] = -1"),
        ([], ValueError, r"y is empty"),
        ([[1, 0], [0, 1]], ValueError, r"shape \(N,\) or a column"),
        ([1, float("nan")], ValueError, r"NaN or infinite"),
        (["1", "0"], TypeError, r"real numbers"),
        ([[1], [0, 1]], TypeError, r"array of real numbers"),
        (None, TypeError, r"real numbers"),
    ],
)
def test_bad_tosses(y, error, match):
    theta = ThreeCoins(0.4, 0.6, 0.7)
    with pytest.raises(error, match=match):
        three_coins.e_step(y, theta)
    with pytest.raises(error, match=match):
        three_coins.log_likelihood(y, theta)
    with pytest.raises(error, match=match):
        three_coins.em(y, theta)
    with pytest.raises(error, match=match):
        three_coins.m_step(y, [0.5, 0.5, 0.5])


@pytest.mark.parametrize("func", [three_coins.e_step, three_coins.log_likelihood])
def test_theta_must_be_three_coins(func):
    with pytest.raises(TypeError, match=r"ThreeCoins\(pi, p, q\), got tuple"):
        func(BOOK_Y, (0.4, 0.6, 0.7))


def test_impossible_toss():
    # p = q = 1: no coin can show tails.
    theta = ThreeCoins(0.4, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"toss 2 \(tails\) has probability 0"):
        three_coins.e_step(BOOK_Y, theta)
    with pytest.raises(ValueError, match=r"toss 2 \(tails\) has probability 0"):
        three_coins.em(BOOK_Y, theta)
    assert three_coins.log_likelihood(BOOK_Y, theta) == -math.inf
    assert three_coins.log_likelihood([1, 1], theta) == 0.0


@pytest.mark.parametrize(
    ("mu", "error", "match"),
    [
        ([0.5, 0.5], ValueError, r"shape \(N,\) = \(3,\).*got shape \(2,\)"),
        ([[0.5, 0.5, 0.5]], ValueError, r"got shape \(1, 3\)"),
        ([0.5, 1.2, 0.5], ValueError, r"probabilities in \[0, 1\]"),
        ([0.5, -0.1, 0.5], ValueError, r"probabilities in \[0, 1\]"),
        ([0.5, float("nan"), 0.5], ValueError, r"NaN or infinite"),
        ([0.0, 0.0, 0.0], ValueError, r"coin B no tosses.*p = 0/0"),
        ([1.0, 1.0, 1.0], ValueError, r"coin C no tosses.*q = 0/0"),
        # A positive count too small for pi = n_B / N to stay below 1 or above 0.
        (
            [1.0, 1.0, 1.0 - 2.0**-53],
            ValueError,
            r"coin C a soft count of only 1.11e-16 of N = 3, so pi = n_B / N "
            r"rounds to 1 in double precision",
        ),
        (
            [5e-324, 0.0, 0.0],
            ValueError,
            r"coin B a soft count of only 4.94e-324 of N = 3, so pi = n_B / N "
            r"rounds to 0",
        ),
        (["a", "b", "c"], TypeError, r"mu must hold real numbers"),
    ],
)
def test_bad_posteriors(mu, error, match):
    with pytest.raises(error, match=match):
        three_coins.m_step([1, 0, 1], mu)


def test_m_step_impossible_for_one_coin_under_start():
    # p = 0 with all heads: coin B explains no toss, and p would be 0/0.
    with pytest.raises(ValueError, match=r"coin B no tosses"):
        three_coins.em([1, 1], ThreeCoins(0.5, 0.0, 0.5))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"init": (0.4, 0.6, 0.7)}, TypeError, r"init must be an .*got tuple"),
        ({"init": None}, TypeError, r"got NoneType"),
        ({"tol": -1.0}, ValueError, r"tol must be finite and >= 0"),
        ({"tol": float("nan")}, ValueError, r"tol must be finite"),
        ({"tol": "1e-8"}, TypeError, r"tol must be a real number"),
        ({"tol": True}, TypeError, r"tol must be a real number"),
        ({"max_iter": 0}, ValueError, r"max_iter must be >= 1"),
        ({"max_iter": 2.0}, TypeError, r"max_iter must be an int"),
        ({"max_iter": False}, TypeError, r"max_iter must be an int"),
    ],
)
def test_em_rejects(kwargs, error, match):
    args = {"init": ThreeCoins(0.4, 0.6, 0.7)} | kwargs
    init = args.pop("init")
    with pytest.raises(error, match=match):
        three_coins.em(BOOK_Y, init, **args)


def test_tol_zero_runs_max_iter():
    fit = three_coins.em(BOOK_Y, ThreeCoins(0.4, 0.6, 0.7), tol=0, max_iter=5)
    assert fit.n_iter == 5
    assert fit.log_likelihoods.shape == (6,)
    assert not fit.converged


# ---------------------------------------------------------------------------
# No argument is modified
# ---------------------------------------------------------------------------


def test_no_argument_is_modified():
    y = np.array(BOOK_Y, dtype=float)
    mu = np.linspace(0.1, 0.9, y.size)
    y_before, mu_before = y.copy(), mu.copy()
    # Read-only inputs: any in-place write would raise.
    y.flags.writeable = False
    mu.flags.writeable = False
    theta = ThreeCoins(0.4, 0.6, 0.7)
    out = three_coins.e_step(y, theta)
    three_coins.m_step(y, mu)
    three_coins.log_likelihood(y, theta)
    fit = three_coins.em(y, theta)
    np.testing.assert_array_equal(y, y_before)
    np.testing.assert_array_equal(mu, mu_before)
    assert theta == ThreeCoins(0.4, 0.6, 0.7)
    assert fit.theta is not theta
    assert not np.shares_memory(out, y)
    out[:] = 0.0  # the result is the caller's own array
    np.testing.assert_array_equal(y, y_before)


def test_bool_tosses_not_modified():
    y = np.array(BOOK_Y, dtype=bool)
    y.flags.writeable = False
    three_coins.em(y, ThreeCoins(0.4, 0.6, 0.7))
    np.testing.assert_array_equal(y, np.array(BOOK_Y, dtype=bool))
