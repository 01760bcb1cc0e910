"""conditional_m_step and incremental EM: against their definitions and EM.

Tolerances: the variants compute the same weighted sums as ``m_step`` in
another order (per block, then merged), so they agree with it to a few ulps;
1e-12 relative leaves room for the ~1e3 ulps a sum of N terms can drift.
Monotonicity is checked with a slack of 1e-12 |value|: Q and F are sums of N K
terms of size |value| / (N K) at most, rounding to a few ulps of |value|.
"""

import itertools
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from problems import PROBLEMS, make_problem, mixture_sample
from test_bad_input import BAD_ROWS, BAD_Y, GAMMA, NOT_A_GMM, THETA, Y

import emlib
from emlib.variants import _block_edges

RTOL = 1e-12
# conditional_m_step needs n_k > 0 and a spread, so N >= 2.
M_STEP_PROBLEMS = [p for p in PROBLEMS if p[1] >= 2]


def _slack(value):
    return 1e-12 * abs(value)


@pytest.fixture(scope="module")
def data():
    """N = 61 points (not a multiple of the block counts) from three components."""
    rng = np.random.default_rng(15)
    y = mixture_sample(rng, 61, [0.3, 0.4, 0.3], [-3.0, 0.0, 4.0], [1.0, 0.5, 2.0])
    return y, emlib.GMM([0.2, 0.5, 0.3], [-1.0, 0.5, 1.0], [3.0, 3.0, 3.0])


@pytest.mark.parametrize("seed_n_k", M_STEP_PROBLEMS)
def test_conditional_m_step_against_definitions(seed_n_k):
    problem = make_problem(*seed_n_k)
    y, theta = problem.y, problem.theta
    gamma = emlib.e_step(y, theta)
    full = emlib.m_step(y, gamma)
    by_weights = emlib.conditional_m_step(y, gamma, theta, "weights")
    by_means = emlib.conditional_m_step(y, gamma, theta, "means")
    by_variances = emlib.conditional_m_step(y, gamma, theta, "variances")
    # Weights and means: the full M-step's values, the other blocks held.
    assert_allclose(by_weights.weights, full.weights, rtol=RTOL)
    assert_allclose(by_means.means, full.means, rtol=RTOL)
    for new in (by_weights, by_means):
        assert_array_equal(new.variances, theta.variances)
    assert_array_equal(by_weights.means, theta.means)
    assert_array_equal(by_means.weights, theta.weights)
    # Variances: the spread about the held means, straight from the formula.
    for k in range(theta.n_components):
        col = gamma[:, k]
        want = math.fsum(col * (y - theta.means[k]) ** 2) / math.fsum(col)
        assert math.isclose(by_variances.variances[k], want, rel_tol=RTOL)
    assert_array_equal(by_variances.weights, theta.weights)
    assert_array_equal(by_variances.means, theta.means)


def test_conditional_m_step_maximises_q_over_its_block(data):
    y, theta = data
    gamma = emlib.e_step(y, theta)
    rng = np.random.default_rng(0)
    for block in emlib.variants.BLOCKS:
        new = emlib.conditional_m_step(y, gamma, theta, block)
        best = emlib.q_function(y, gamma, new)
        assert best > emlib.q_function(y, gamma, theta)
        for _ in range(20):
            parts = {
                "weights": new.weights,
                "means": new.means,
                "variances": new.variances,
            }
            step = rng.normal(0.0, 0.05, theta.n_components)
            if block == "weights":
                w = new.weights * np.exp(step)
                parts[block] = w / w.sum()
            elif block == "means":
                parts[block] = new.means + step
            else:
                parts[block] = new.variances * np.exp(step)
            assert emlib.q_function(y, gamma, emlib.GMM(**parts)) < best


def test_conditional_m_step_rejects_bad_input_and_keeps_its_arguments(data):
    y, theta = data
    gamma = emlib.e_step(y, theta)
    y_before, gamma_before = y.copy(), gamma.copy()
    with pytest.raises(ValueError, match="block must be one of"):
        emlib.conditional_m_step(y, gamma, theta, "mean")
    with pytest.raises(ValueError, match=r"gamma must have shape \(61, 3\)"):
        emlib.conditional_m_step(y, gamma[:, :2], theta, "means")
    with pytest.raises(TypeError, match=r"emlib\.GMM"):
        emlib.conditional_m_step(y, gamma, (1.0, 0.0, 1.0), "means")
    emlib.conditional_m_step(y, gamma, theta, "variances")
    assert_array_equal(y, y_before)
    assert_array_equal(gamma, gamma_before)


def test_conditional_m_step_reports_an_empty_component():
    y = np.array([0.0, 1.0, 2.0])
    gamma = np.array([[1.0, 0.0]] * 3)
    theta = emlib.GMM([0.5, 0.5], [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="component 1 has no responsibility"):
        emlib.conditional_m_step(y, gamma, theta, "weights")


@pytest.mark.parametrize(("n", "n_blocks"), [(61, 1), (61, 4), (61, 61), (5, 3)])
def test_blocks_are_those_of_array_split(n, n_blocks):
    edges = _block_edges(n, n_blocks)
    want = np.array_split(np.arange(n), n_blocks)
    assert [list(range(a, b)) for a, b in itertools.pairwise(edges)] == [
        list(w) for w in want
    ]


def test_incremental_start_is_one_em_iteration(data):
    y, theta = data
    state = emlib.incremental_em_start(y, theta, 4)
    gamma = emlib.e_step(y, theta)
    assert_array_equal(state.q, gamma)
    full = emlib.m_step(y, gamma)
    for name in ("weights", "means", "variances"):
        assert_allclose(getattr(state.theta, name), getattr(full, name), rtol=RTOL)
    assert state.block_counts.shape == (4, 3)


def test_incremental_step_refreshes_one_block_and_raises_f(data):
    y, theta = data
    state = emlib.incremental_em_start(y, theta, 4)
    edges = _block_edges(y.size, 4)
    for t in range(12):
        b = t % 4
        old_q = state.q.copy()
        new = emlib.incremental_em_step(y, state, b)
        a, e = edges[b], edges[b + 1]
        # Partial E-step: block b's rows at the old theta, the others kept.
        assert_array_equal(new.q[a:e], emlib.e_step(y[a:e], state.theta))
        assert_array_equal(
            np.delete(new.q, np.s_[a:e], axis=0), np.delete(old_q, np.s_[a:e], axis=0)
        )
        assert_array_equal(state.q, old_q)  # the input state is untouched
        # The running statistics give the M-step of the whole new q.
        fresh = emlib.m_step(y, new.q)
        for name in ("weights", "means", "variances"):
            assert_allclose(getattr(new.theta, name), getattr(fresh, name), rtol=RTOL)
        # F rises on both half-steps.
        f_old = emlib.elbo(y, state.q, state.theta)
        f_e = emlib.elbo(y, new.q, state.theta)
        f_m = emlib.elbo(y, new.q, new.theta)
        assert f_e >= f_old - _slack(f_old)
        assert f_m >= f_e - _slack(f_e)
        state = new


def test_one_block_is_plain_em(data):
    y, theta = data
    state = emlib.incremental_em_start(y, theta, 1)
    new = emlib.incremental_em_step(y, state, 0)
    plain = emlib.m_step(y, emlib.e_step(y, state.theta))
    for name in ("weights", "means", "variances"):
        assert_allclose(getattr(new.theta, name), getattr(plain, name), rtol=RTOL)


def test_incremental_rejects_bad_input(data):
    y, theta = data
    for bad in (0, 62):
        with pytest.raises(ValueError, match="n_blocks must satisfy"):
            emlib.incremental_em_start(y, theta, bad)
    for bad in (True, 2.0):
        with pytest.raises(TypeError, match="n_blocks must be an int"):
            emlib.incremental_em_start(y, theta, bad)
    state = emlib.incremental_em_start(y, theta, 4)
    with pytest.raises(ValueError, match="block must satisfy"):
        emlib.incremental_em_step(y, state, 4)
    with pytest.raises(TypeError, match="block must be an int"):
        emlib.incremental_em_step(y, state, 1.0)
    with pytest.raises(ValueError, match="made from other data"):
        emlib.incremental_em_step(y[:-1], state, 0)
    with pytest.raises(TypeError, match="IncrementalEM"):
        emlib.incremental_em_step(y, tuple(state), 0)
    broken = state._replace(block_m2=state.block_m2[:, :2])
    with pytest.raises(ValueError, match="block moments"):
        emlib.incremental_em_step(y, broken, 0)


# The bad inputs every public function must reject (tests/test_bad_input.py),
# in the variants too.
VARIANT_Y_TAKERS = {
    "conditional_m_step": lambda y: emlib.conditional_m_step(y, GAMMA, THETA, "means"),
    "incremental_em_start": lambda y: emlib.incremental_em_start(y, THETA, 2),
    "incremental_em_step": lambda y: emlib.incremental_em_step(
        y, emlib.incremental_em_start(Y, THETA, 2), 0
    ),
}


@pytest.mark.parametrize(
    ("y", "error", "match"),
    [case[1:] for case in BAD_Y],
    ids=[case[0] for case in BAD_Y],
)
@pytest.mark.parametrize("call", VARIANT_Y_TAKERS.values(), ids=VARIANT_Y_TAKERS.keys())
def test_variants_reject_bad_y(call, y, error, match):
    with pytest.raises(error, match=match):
        call(y)


@pytest.mark.parametrize(
    ("rows", "error", "match"),
    [case[1:] for case in BAD_ROWS],
    ids=[case[0] for case in BAD_ROWS],
)
def test_conditional_m_step_rejects_bad_gamma(rows, error, match):
    with pytest.raises(error, match=match.format(name="gamma")):
        emlib.conditional_m_step(Y, rows, THETA, "variances")


@pytest.mark.parametrize(
    "theta", [c[1] for c in NOT_A_GMM], ids=[c[0] for c in NOT_A_GMM]
)
@pytest.mark.parametrize(
    "call",
    [
        lambda theta: emlib.conditional_m_step(Y, GAMMA, theta, "weights"),
        lambda theta: emlib.incremental_em_start(Y, theta, 2),
    ],
    ids=["conditional_m_step", "incremental_em_start"],
)
def test_variants_reject_theta_not_a_gmm(call, theta):
    with pytest.raises(TypeError, match=r"^theta must be an emlib.GMM\("):
        call(theta)
