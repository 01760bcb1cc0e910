"""log_likelihood, e_step and m_step against the naive reference, and at the edges.

Tolerance: 1e-12 relative throughout. Both sides evaluate the same formulas in
float64 with a few roundings per entry (the reference through scipy's density
and correctly rounded sums), so they agree to within a few ulps; 1e-12 leaves
room for the ~1e3 ulps that summing N terms of mixed rounding can accumulate.
The data are drawn so that every log-density is negative (variances >= 0.5),
so the log-likelihood sums terms of one sign and its relative error stays small.
"""

import math

import numpy as np
import pytest
import reference
from numpy.testing import assert_allclose, assert_array_equal
from problems import PROBLEMS, make_problem, random_row_stochastic
from scipy.stats import norm

import emlib

RTOL = 1e-12


def test_log_likelihood_matches_reference(problem):
    got = emlib.log_likelihood(problem.y, problem.theta)
    want = reference.log_likelihood(
        problem.y, problem.weights, problem.means, problem.variances
    )
    assert type(got) is float
    assert_allclose(got, want, rtol=RTOL, atol=0)


def test_log_likelihood_is_a_sum_over_points_not_a_mean(problem):
    each = [emlib.log_likelihood([yj], problem.theta) for yj in problem.y]
    assert_allclose(
        emlib.log_likelihood(problem.y, problem.theta), math.fsum(each), rtol=RTOL
    )


def test_e_step_matches_reference(problem):
    gamma = emlib.e_step(problem.y, problem.theta)
    want = reference.e_step(
        problem.y, problem.weights, problem.means, problem.variances
    )
    assert gamma.shape == (problem.y.size, problem.weights.size)
    assert gamma.dtype == np.float64
    # Entries range down to ~1e-9; each is exp of a log computed to ~1e-15
    # absolute, hence relative accuracy ~1e-15 even for the smallest.
    assert_allclose(gamma, want, rtol=RTOL, atol=0)
    assert_allclose(gamma.sum(axis=1), 1.0, rtol=0, atol=4e-16 * gamma.shape[1])


# m_step needs N >= 2: one point always collapses its component.
M_STEP_PROBLEMS = [p for p in PROBLEMS if p[1] >= 2]


@pytest.mark.parametrize("seed_n_k", M_STEP_PROBLEMS)
def test_m_step_matches_reference(seed_n_k):
    problem = make_problem(*seed_n_k)
    rng = np.random.default_rng(99)
    n, k = problem.y.size, problem.weights.size
    gamma = random_row_stochastic(rng, n, k, zero_fraction=0.0)
    theta = emlib.m_step(problem.y, gamma)
    weights, means, variances = reference.m_step(problem.y, gamma)
    assert isinstance(theta, emlib.GMM)
    assert_allclose(theta.weights, weights, rtol=RTOL, atol=0)
    # Means to 1e-12 of max(1, largest |mean|): a mean can sit near 0, where
    # a relative comparison would measure only the cancellation in sum gamma y.
    assert_allclose(theta.means, means, rtol=0, atol=RTOL * (1 + np.abs(means).max()))
    assert_allclose(theta.variances, variances, rtol=RTOL, atol=0)


@pytest.mark.parametrize("seed_n_k", M_STEP_PROBLEMS)
def test_m_step_at_the_e_step_matches_reference(seed_n_k):
    problem = make_problem(*seed_n_k)
    gamma = emlib.e_step(problem.y, problem.theta)
    theta = emlib.m_step(problem.y, gamma)
    weights, means, variances = reference.m_step(problem.y, gamma)
    assert_allclose(theta.weights, weights, rtol=RTOL, atol=0)
    assert_allclose(theta.means, means, rtol=0, atol=RTOL * (1 + np.abs(means).max()))
    assert_allclose(theta.variances, variances, rtol=RTOL, atol=0)


def test_m_step_with_hard_assignments_gives_cluster_moments():
    """One-hot gamma: each component gets the plain mean and variance of its points."""
    y = np.array([1.0, 2.0, 4.0, 10.0, 11.0, 15.0, 16.0])
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    theta = emlib.m_step(y, np.eye(2)[labels])
    assert_allclose(theta.weights, [3 / 7, 4 / 7], rtol=RTOL)
    assert_allclose(theta.means, [7 / 3, 13.0], rtol=RTOL)
    assert_allclose(theta.variances, [np.var([1, 2, 4]), 6.5], rtol=RTOL)


def test_m_step_weights_lie_on_the_simplex():
    rng = np.random.default_rng(7)
    y = rng.normal(size=101)
    theta = emlib.m_step(y, random_row_stochastic(rng, 101, 4))
    assert np.all(theta.weights > 0)
    assert abs(math.fsum(theta.weights) - 1.0) <= 4e-16


# Thetas whose components all sit near 0, to be evaluated 1e6 away.
FAR_THETAS = {
    "widest-wins": ([0.2, 0.3, 0.5], [-1.0, 0.0, 2.0], [1.0, 0.5, 2.0]),
    "equal-components": ([0.3, 0.7], [5.0, 5.0], [1.0, 1.0]),
    "equal-variances": ([0.5, 0.5], [0.0, 1e-6], [1.0, 1.0]),
}


@pytest.mark.parametrize("params", FAR_THETAS.values(), ids=FAR_THETAS.keys())
def test_e_step_point_far_from_every_mean_gets_a_finite_row_summing_to_1(params):
    """y = +-1e6 with means near 0: every phi underflows, log space must not.

    A row normalised after the exp sums to 1 within a few ulps (K roundings),
    whatever the magnitude of the log densities; 1e-14 is well above that.
    """
    theta = emlib.GMM(*params)
    gamma = emlib.e_step([1e6, -1e6, 0.5], theta)
    assert np.all(np.isfinite(gamma))
    assert np.all(gamma >= 0)
    assert_allclose(gamma.sum(axis=1), 1.0, rtol=0, atol=1e-14)


def test_e_step_far_point_prefers_the_widest_component():
    theta = emlib.GMM(*FAR_THETAS["widest-wins"])
    gamma = emlib.e_step([1e6, -1e6], theta)
    # The others' share, about exp(-(1e6)^2 / 2 + (1e6)^2 / 4), underflows to 0.
    assert_array_equal(gamma, [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])


def test_e_step_far_point_with_equal_components_returns_the_weights():
    """Equal means and variances: gamma = alpha exactly, at any distance.

    The naive ratio is 0 / 0 = NaN at y = 1e6. Tolerance 1e-4 relative: the
    log joint densities there are about -5e11, whose float64 spacing is
    2**-14 = 6e-5, so log(alpha_k) (about -1) is only known to that absolute
    accuracy once added to them; an e_step that forms log alpha_k + log phi_k
    before subtracting the row maximum inherits this.
    """
    weights = [0.3, 0.7]
    theta = emlib.GMM(weights, [5.0, 5.0], [1.0, 1.0])
    gamma = emlib.e_step([1e6, -1e6, 5.0], theta)
    assert_allclose(gamma, [weights] * 3, rtol=1e-4, atol=0)
    assert_allclose(gamma[2], weights, rtol=RTOL, atol=0)


def test_m_step_accepts_the_e_step_of_data_with_a_far_outlier():
    """e_step's output is a valid gamma for m_step, even with a point 1e6 away."""
    rng = np.random.default_rng(3)
    y = np.append(rng.normal(size=50), 1e6)
    theta = emlib.GMM([0.3, 0.7], [0.0, 0.0], [1.0, 1.0])
    new = emlib.m_step(y, emlib.e_step(y, theta))
    assert np.all(np.isfinite(new.means))


def test_log_likelihood_far_point_is_finite_and_exact():
    theta = emlib.GMM([1.0], [0.0], [1.0])
    got = emlib.log_likelihood([1e6], theta)
    assert_allclose(got, norm.logpdf(1e6), rtol=RTOL)
    theta2 = emlib.GMM([0.25, 0.75], [3.0, 3.0], [2.0, 2.0])
    assert_allclose(
        emlib.log_likelihood([1e6], theta2),
        norm.logpdf(1e6, loc=3.0, scale=math.sqrt(2.0)),
        rtol=RTOL,
    )


@pytest.mark.parametrize(
    "fn", [emlib.e_step, emlib.log_likelihood], ids=["e_step", "log_likelihood"]
)
def test_narrow_component_far_from_a_point_gives_no_overflow_warning(fn):
    """A valid GMM (sigma_1^2 = 1e-305 > 0) and a point 1e3 from its mean.

    (y - mu_1)^2 / (2 sigma_1^2) = 5e310 overflows to inf, so log phi_1 = -inf:
    a correct result (the other component takes the point), but the overflow
    must not leak out as a RuntimeWarning. Warnings are errors here, as they
    are for a strict user, the notebooks under nbval included.
    """
    theta = emlib.GMM([0.5, 0.5], [0.0, 0.0], [1e-305, 1.0])
    fn([1e3, 1.0], theta)
    assert_array_equal(emlib.e_step([1e3], theta), [[0.0, 1.0]])


def test_zero_weight_component_gets_no_responsibility():
    theta = emlib.GMM([0.0, 1.0], [0.0, 0.0], [1.0, 2.0])
    gamma = emlib.e_step([0.0, 1.0, -3.0], theta)
    assert_array_equal(gamma, [[0.0, 1.0]] * 3)
    assert_allclose(
        emlib.log_likelihood([0.5], theta), norm.logpdf(0.5, scale=math.sqrt(2.0))
    )


def test_m_step_collapse_onto_a_point_raises_naming_the_component():
    """Component 1 responsible for the single point y = 50 only: sigma^2 = 0."""
    y = np.array([-3.0, -1.0, 0.0, 1.0, 3.0, 50.0])
    gamma = np.zeros((6, 2))
    gamma[:5, 0] = 1.0
    gamma[5, 1] = 1.0
    with pytest.raises(
        ValueError,
        match=r"component 1 collapsed onto a single point.*"
        r"more data, fewer components, or another start",
    ):
        emlib.m_step(y, gamma)


def test_m_step_collapse_onto_repeated_point_raises():
    y = np.array([2.0, 2.0, 2.0, 7.0, 8.0, 9.5])
    gamma = np.eye(2)[[0, 0, 0, 1, 1, 1]]
    with pytest.raises(ValueError, match=r"component 0 collapsed onto a single point"):
        emlib.m_step(y, gamma)


@pytest.mark.parametrize("n", [39, 1000, 20_000])
@pytest.mark.parametrize("value", [1.75, -3.3, 7.0])
def test_m_step_on_identical_points_raises_collapse(n, value):
    """Every y_j equal: both components sit on that one point, sigma^2 -> 0.

    Whatever rounding leaves in sigma-hat_k^2 (here ~1e-30 to ~1e-24, noise
    of the mean's last bits) cannot separate points that are all equal; m_step
    must call it a collapse, not return it as a variance.
    """
    y = np.full(n, value)
    gamma = np.tile([0.3, 0.7], (n, 1))
    with pytest.raises(ValueError, match=r"component \d collapsed onto a single point"):
        emlib.m_step(y, gamma)


def test_m_step_empty_component_raises_naming_it():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    gamma = np.eye(3)[[0, 0, 2, 2]]
    with pytest.raises(ValueError, match=r"component 1 has no responsibility left"):
        emlib.m_step(y, gamma)


def test_e_step_then_m_step_collapse_from_a_far_start():
    """The E-step puts the outlier 50 alone on the component sitting on it."""
    y = np.array([-3.0, -1.0, 0.0, 1.0, 3.0, 50.0])
    theta = emlib.GMM([0.5, 0.5], [0.0, 50.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"component 1 collapsed"):
        emlib.m_step(y, emlib.e_step(y, theta))


@pytest.mark.parametrize("fn", ["log_likelihood", "e_step"])
def test_column_input_gives_the_same_result(fn):
    p = make_problem(11, 9, 3)
    flat = getattr(emlib, fn)(p.y, p.theta)
    column = getattr(emlib, fn)(p.y[:, None], p.theta)
    listed = getattr(emlib, fn)(p.y.tolist(), p.theta)
    assert_array_equal(column, flat)
    assert_array_equal(listed, flat)


def test_m_step_column_input_gives_the_same_result():
    p = make_problem(12, 9, 3)
    gamma = emlib.e_step(p.y, p.theta)
    a = emlib.m_step(p.y, gamma)
    b = emlib.m_step(p.y[:, None], gamma)
    for name in ("weights", "means", "variances"):
        assert_array_equal(getattr(b, name), getattr(a, name))


def test_integer_data_is_accepted_as_float():
    theta = emlib.GMM([0.5, 0.5], [0.0, 3.0], [1.0, 1.0])
    ints = np.array([0, 1, 2, 3, 4], dtype=np.int32)
    assert_array_equal(emlib.e_step(ints, theta), emlib.e_step(ints * 1.0, theta))


def test_narrow_cluster_beside_a_far_cluster_is_not_a_collapse():
    """Collapse is judged at each component's own mean, not the data's largest |y|.

    A cluster at 0 with spread 1e-10 is resolvable there (ulps near 0 are
    tiny) even though the other cluster sits at 1e6, where 1e-10 is one ulp.
    """
    rng = np.random.default_rng(7)
    y = np.concatenate([rng.normal(0.0, 1e-10, 50), rng.normal(1e6, 1.0, 50)])
    theta = emlib.GMM([0.5, 0.5], [0.0, 1e6], [1e-20, 1.0])
    step = emlib.m_step(y, emlib.e_step(y, theta))
    fit = emlib.em(y, theta, tol=0, max_iter=3)
    expected_variance = np.var(y[:50])
    assert step.variances[0] == pytest.approx(expected_variance, rel=1e-6)
    assert fit.theta.variances[0] == pytest.approx(expected_variance, rel=1e-6)


def test_em_with_extreme_but_valid_theta_gives_no_overflow_warning():
    """sigma^2 = 1e308 or y - mu near 1e308: inf is a density of 0, no warning.

    The far component gets no responsibility, which both paths report.
    """
    y = np.array([-1.0, 0.0, 0.5, 2.0])
    wide = emlib.GMM([0.5, 0.5], [0.0, 1.0], [1e308, 1.0])
    fit = emlib.em(y, wide, tol=0, max_iter=1)
    step = emlib.m_step(y, emlib.e_step(y, wide))
    np.testing.assert_allclose(fit.theta.means, step.means, rtol=1e-12)
    far = emlib.GMM([0.5, 0.5], [-1e308, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"^component 0 has no responsibility left"):
        emlib.em(y, far, tol=0, max_iter=1)
    with pytest.raises(ValueError, match=r"^component 0 has no responsibility left"):
        emlib.m_step(y, emlib.e_step(y, far))
