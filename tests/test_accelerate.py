"""SQUAREM and Aitken's stopping rule in the EM core, for every model.

The SQUAREM step is checked against the paper's formulas (Varadhan and Roland
2008, scheme S3) re-implemented here in a few lines of numpy, on a linear map
F(theta) = A theta + b whose fixed point (I - A)^-1 b is known in closed form;
for A = lambda I one cycle with alpha = -1 / (1 - lambda) lands exactly on
it. On the models, plain and accelerated runs must reach the same
log-likelihood (EM's fixed point), the accelerated log-likelihoods must not
fall, and on a slow fit SQUAREM must need far fewer E-passes.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import load_iris

import emlib
from emlib import hmm, multivariate, ppca, three_coins
from emlib._core import rounding_allowance, run_em

# The package's step-length rule (SQUAREM in R: stepmax0 = 1, mstep = 4).
STEP_MAX_START, STEP_MAX_FACTOR = 1.0, 4.0


def linear_em(a, b, log_lik=lambda theta: 0.0):
    """A fake model whose EM map is F(theta) = A theta + b."""
    return dict(
        e_pass=lambda theta: (log_lik(theta), None),
        m_step=lambda theta, _statistics: a @ theta + b,
        to_vector=lambda theta: theta,
        from_vector=lambda vector, like: vector,
    )


def run_linear(model, theta0, cycles):
    return run_em(
        model["e_pass"],
        model["m_step"],
        theta0,
        n=1,
        tol=0.0,
        max_iter=cycles,
        accelerate="squarem",
        to_vector=model["to_vector"],
        from_vector=model["from_vector"],
    )


def squarem_by_the_formulas(f, theta, cycles):
    """Scheme S3 straight from the paper, with the package's step bounds."""
    step_max = STEP_MAX_START
    for _ in range(cycles):
        theta1 = f(theta)
        theta2 = f(theta1)
        r = theta1 - theta
        v = theta2 - 2 * theta1 + theta
        alpha = max(-step_max, min(-1.0, -np.linalg.norm(r) / np.linalg.norm(v)))
        if alpha == -step_max:
            step_max *= STEP_MAX_FACTOR
        # alpha = -1 is two plain EM steps, taken without stabilising.
        extrapolated = theta - 2 * alpha * r + alpha**2 * v
        theta = theta2 if alpha > -1.01 else f(extrapolated)
    return theta


def test_one_cycle_solves_a_map_with_a_single_rate_in_closed_form():
    # F(theta) = lambda theta + b: e_i = theta_i - theta* obeys e -> lambda e,
    # and with alpha = -1 / (1 - lambda), I - alpha (A - I) = 0, so theta' =
    # theta* exactly. The step bound lets alpha reach -10 only at cycle 3:
    # cycle 1 is two EM steps (alpha = -1), cycle 2 has alpha = -4.
    lam, b, theta0 = 0.9, np.array([1.0, -2.0, 0.5]), np.array([3.0, 3.0, 3.0])
    fixed = b / (1 - lam)
    model = linear_em(lam * np.eye(3), b)
    e0 = theta0 - fixed
    after = {
        1: lam**2 * e0,
        2: lam * (1 - 4 * (1 - lam)) ** 2 * lam**2 * e0,
        3: 0 * e0,
    }
    for cycles, error in after.items():
        result = run_linear(model, theta0, cycles)
        assert_allclose(result.theta - fixed, error, rtol=1e-13, atol=1e-13)
    # E-passes: the start, then theta_1 and theta_2 (cycle 1), theta_1,
    # theta' and F(theta') (cycles 2 and 3).
    assert result.n_evaluations == 1 + 2 + 3 + 3


def test_the_core_follows_the_papers_formulas_on_a_linear_map():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    a = q @ np.diag([0.99, 0.95, 0.8, 0.3]) @ q.T  # the EM map's rates
    b = rng.normal(size=4)
    theta0 = rng.normal(size=4)
    model = linear_em(a, b)
    for cycles in (1, 2, 5, 8):
        expected = squarem_by_the_formulas(lambda t: a @ t + b, theta0, cycles)
        got = run_linear(model, theta0, cycles).theta
        assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    # 30 cycles reach (I - A)^-1 b; plain EM would be at 0.99^60 = 0.55 of
    # the start's distance.
    fixed = np.linalg.solve(np.eye(4) - a, b)
    assert_allclose(run_linear(model, theta0, 30).theta, fixed, rtol=1e-10)


def test_an_infeasible_extrapolation_falls_back_to_the_two_em_steps():
    lam, b, theta0 = 0.9, np.zeros(2), np.array([1.0, 2.0])

    def from_vector(vector, like):
        raise ValueError("outside the parameter space")

    model = linear_em(lam * np.eye(2), b) | {"from_vector": from_vector}
    result = run_linear(model, theta0, 4)
    assert_allclose(result.theta, lam**8 * theta0, rtol=1e-14)
    # Cycle 1 is plain (2 E-passes); cycles 2-4 compute theta_1, refuse
    # theta' before its E-pass, and take theta_2 (2 E-passes each).
    assert result.n_evaluations == 1 + 4 * 2


def test_an_extrapolation_that_lowers_the_objective_is_refused():
    lam, b, theta0 = 0.9, np.ones(2), np.zeros(2)
    fixed = b / (1 - lam)

    # The objective is flat except near theta*, where it is lower: only the
    # exact extrapolation of cycle 3 lands there.
    def log_lik(theta):
        return -1.0 if np.linalg.norm(theta - fixed) < 1e-9 else 0.0

    model = linear_em(lam * np.eye(2), b, log_lik)
    two_cycles = run_linear(model, theta0, 2)
    three = run_linear(model, theta0, 3)
    assert_allclose(three.theta - fixed, lam**2 * (two_cycles.theta - fixed))
    assert three.n_evaluations == two_cycles.n_evaluations + 4
    np.testing.assert_array_equal(three.log_likelihoods, 0.0)


def test_aitken_limit_is_exact_on_a_geometric_sequence():
    # l_i = l* - A c^i: every estimate is l*.
    ll = -100.0 - 3.0 * 0.7 ** np.arange(8)
    assert_allclose(emlib.aitken_limit(ll), -100.0, rtol=1e-14)
    # Gains that grow, vanish or change sign: the latest value, no NaN.
    odd = np.array([0.0, 1.0, 3.0, 3.0, 2.5, 2.6])
    np.testing.assert_array_equal(emlib.aitken_limit(odd), odd[2:])
    with pytest.raises(ValueError, match="at least 3 values"):
        emlib.aitken_limit([1.0, 2.0])


def test_bad_options_name_the_argument():
    with pytest.raises(ValueError, match="accelerate must be one of None, 'squarem'"):
        emlib.em([0.0, 1.0, 5.0], 2, accelerate="aitken")
    with pytest.raises(ValueError, match="stop must be one of 'gain', 'aitken'"):
        emlib.em([0.0, 1.0, 5.0], 2, stop="delta")


def overlapping_mixture():
    """Notebook 41's y_syn (N = 1000) and its poor start: EM's rate is 0.95."""
    truth = emlib.GMM([0.3, 0.4, 0.3], [-6.0, 0.0, 5.0], [1.0, 0.5, 0.8])
    rng = np.random.default_rng(2024)
    z = rng.choice(3, size=1000, p=truth.weights)
    y = rng.normal(truth.means[z], np.sqrt(truth.variances[z]))
    return y, emlib.GMM([1 / 3] * 3, [-6.5, -5.5, 2.5], [1.0] * 3)


IRIS = load_iris().data
rng = np.random.default_rng(5)
SEQUENCE = hmm.HMM(
    [0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]]
)


def hmm_sample(hmm_, length, rng):
    states = [rng.choice(2, p=hmm_.start)]
    for _ in range(length - 1):
        states.append(rng.choice(2, p=hmm_.transition[states[-1]]))
    return np.array([rng.choice(3, p=hmm_.emission[s]) for s in states])


# The HMMs' sequences are short because an E-pass costs time linear in
# their length and what is checked does not depend on it: on these 80
# symbols plain EM takes 75 iterations to Aitken's 1e-12 N and SQUAREM 11
# cycles, on the 60 steps below 59 and 15 (200 and 150 cost 0.5 s more).
OBS = hmm_sample(SEQUENCE, 80, rng)
COINS = (rng.random(50) < 0.6).astype(float)
# A Gaussian-emission HMM fitted to a 2-D signal with two regimes, 60 steps.
GAUSSIAN = hmm.GaussianHMM(
    [0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [[0.0, 0.0], [1.5, 1.0]], [[1.0, 1.0]] * 2
)
# Regime labels: whether the categorical chain above emits a symbol other than 0.
REGIMES = hmm_sample(SEQUENCE, 60, rng) > 0
SIGNAL = GAUSSIAN.means[REGIMES.astype(int)] + rng.normal(size=(60, 2))
FITS = {  # name: (fit with keyword arguments, N)
    "1-D, slow": (lambda **kw: emlib.em(*overlapping_mixture(), **kw), 1000),
    "full": (lambda **kw: multivariate.em(IRIS, 3, random_state=0, **kw), 150),
    "hmm": (lambda **kw: hmm.em(OBS, SEQUENCE, **kw), OBS.size),
    "gaussian hmm": (lambda **kw: hmm.em(SIGNAL, GAUSSIAN, **kw), len(SIGNAL)),
    "ppca": (lambda **kw: ppca.em(IRIS, 2, **kw), 150),
    "three coins": (
        lambda **kw: three_coins.em(COINS, three_coins.initial_theta(COINS), **kw),
        COINS.size,
    ),
}


@pytest.mark.parametrize("name", FITS)
def test_squarem_reaches_ems_fixed_point_without_falling(name):
    fit, n = FITS[name]
    # Plain EM stops on Aitken's estimate of l* - l_i < 1e-12 N, which its
    # linear convergence makes reliable; SQUAREM's gains are not geometric,
    # so it stops on the gain of a cycle < 1e-12 N. Both end far inside the
    # 1e-9 relative asked for.
    plain = fit(tol=1e-12, stop="aitken", max_iter=5000)
    fast = fit(tol=1e-12, max_iter=5000, accelerate="squarem")
    assert plain.converged
    assert fast.converged
    assert_allclose(fast.log_likelihoods[-1], plain.log_likelihoods[-1], rtol=1e-9)
    ll = fast.log_likelihoods
    assert np.all(np.diff(ll) >= -rounding_allowance(ll[:-1], n))
    if name == "1-D, slow":  # EM's rate 0.95 here: 684 E-passes against 121
        assert fast.n_evaluations * 5 < plain.n_evaluations
