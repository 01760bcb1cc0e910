"""q_function, entropy, kl_divergence and elbo: reference values and identities.

Tolerance: 1e-12 relative against the naive reference (the same formulas, a
few roundings per term, sums of at most a few hundred terms). The identities
add or subtract quantities of different magnitudes, so their rounding scales
with the magnitudes of the terms, not of the result: they are checked to
1e-12 times the sum of the absolute values of the terms.
"""

import itertools
import math

import numpy as np
import pytest
import reference
import scipy.stats
from numpy.testing import assert_allclose
from problems import PROBLEMS, make_problem, mixture_sample, random_row_stochastic

import emlib

RTOL = 1e-12


def random_q(problem, seed=0, zero_fraction=0.3):
    rng = np.random.default_rng(seed)
    return random_row_stochastic(
        rng, problem.y.size, problem.weights.size, zero_fraction
    )


def assert_identity(lhs, *terms):
    """lhs == sum(terms) to 1e-12 of the terms' total magnitude."""
    scale = abs(lhs) + sum(abs(t) for t in terms)
    assert abs(lhs - math.fsum(terms)) <= RTOL * scale


def test_q_function_matches_reference(problem):
    gamma = random_q(problem)
    got = emlib.q_function(problem.y, gamma, problem.theta)
    want = reference.q_function(
        problem.y, gamma, problem.weights, problem.means, problem.variances
    )
    assert type(got) is float
    assert_allclose(got, want, rtol=RTOL, atol=0)


def test_q_function_at_the_e_step_matches_reference(problem):
    """Q(theta, theta^(i)) with gamma the E-step at theta^(i) != theta."""
    theta_i = make_problem(1234, 1, problem.weights.size).theta
    gamma = emlib.e_step(problem.y, theta_i)
    got = emlib.q_function(problem.y, gamma, problem.theta)
    want = reference.q_function(
        problem.y, gamma, problem.weights, problem.means, problem.variances
    )
    assert_allclose(got, want, rtol=RTOL, atol=0)


def test_q_function_zero_weight_component():
    """0 log 0 = 0 where gamma_jk = 0 = alpha_k; -inf where gamma_jk > 0 = alpha_k."""
    theta = emlib.GMM([0.0, 1.0], [0.0, 1.0], [1.0, 2.0])
    y = [0.0, 0.5, 2.0]
    gamma = np.array([[0.0, 1.0]] * 3)
    want = reference.q_function(y, gamma, [0.0, 1.0], [0.0, 1.0], [1.0, 2.0])
    assert_allclose(emlib.q_function(y, gamma, theta), want, rtol=RTOL)
    gamma[0] = [0.5, 0.5]
    assert emlib.q_function(y, gamma, theta) == -math.inf


def test_entropy_matches_reference(problem):
    q = random_q(problem)
    got = emlib.entropy(q)
    assert type(got) is float
    assert_allclose(got, reference.entropy(q), rtol=RTOL, atol=0)


@pytest.mark.parametrize(
    ("q", "want"),
    [
        ([1.0], 0.0),
        ([0.5, 0.5], math.log(2)),
        ([0.25, 0.0, 0.75], -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))),
        ([[1.0, 0.0], [0.0, 1.0]], 0.0),
        (
            [[0.5, 0.5], [0.2, 0.8]],
            math.log(2) - 0.2 * math.log(0.2) - 0.8 * math.log(0.8),
        ),
        (np.full((6, 4), 0.25), 6 * math.log(4)),
    ],
    ids=["point", "coin", "zero-entry", "one-hot-rows", "two-rows", "uniform-rows"],
)
def test_entropy_closed_forms(q, want):
    """One distribution (K,) or a product of rows (N, K): sum of row entropies."""
    assert_allclose(emlib.entropy(q), want, rtol=RTOL, atol=0)


def test_kl_divergence_matches_reference(problem):
    q = random_q(problem, seed=1)
    p = random_q(problem, seed=2, zero_fraction=0.0)
    got = emlib.kl_divergence(q, p)
    assert type(got) is float
    assert_allclose(got, reference.kl_divergence(q, p), rtol=RTOL, atol=0)
    assert got >= 0


@pytest.mark.parametrize(
    ("q", "p", "want"),
    [
        ([0.5, 0.5], [0.5, 0.5], 0.0),
        ([1.0, 0.0], [0.25, 0.75], math.log(4)),
        ([0.0, 1.0], [1.0, 0.0], math.inf),
        ([0.5, 0.5], [0.25, 0.75], 0.5 * math.log(2) + 0.5 * math.log(2 / 3)),
        ([[1.0, 0.0], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]], math.log(2)),
    ],
    ids=["equal", "q-zero", "p-zero-under-q", "coins", "rows"],
)
def test_kl_divergence_closed_forms(q, p, want):
    assert_allclose(emlib.kl_divergence(q, p), want, rtol=RTOL, atol=0)


def test_kl_divergence_of_a_distribution_with_itself_is_zero(problem):
    q = random_q(problem, seed=3)
    assert emlib.kl_divergence(q, q) == 0.0


def test_elbo_matches_reference(problem):
    q = random_q(problem, seed=4)
    got = emlib.elbo(problem.y, q, problem.theta)
    want = reference.elbo(
        problem.y, q, problem.weights, problem.means, problem.variances
    )
    assert type(got) is float
    assert_allclose(got, want, rtol=RTOL, atol=0)


SEEDS = range(8)


@pytest.mark.parametrize("seed_n_k", PROBLEMS)
@pytest.mark.parametrize("seed", SEEDS)
def test_elbo_identity_for_random_q(seed_n_k, seed):
    """log P(Y | theta) = L(q, theta) + KL(q || P(Z | Y, theta)), for every q.

    q has about 30% zero entries (seed 0: 60%), so 0 log 0 is exercised.
    """
    problem = make_problem(*seed_n_k)
    q = random_q(problem, seed=seed, zero_fraction=0.6 if seed == 0 else 0.3)
    y, theta = problem.y, problem.theta
    lower = emlib.elbo(y, q, theta)
    gap = emlib.kl_divergence(q, emlib.e_step(y, theta))
    assert gap >= 0
    assert_identity(emlib.log_likelihood(y, theta), lower, gap)


def test_elbo_identity_with_one_hot_q(problem):
    """Hard assignments: H(q) = 0 and the gap is -sum_j log gamma_j,z_j."""
    rng = np.random.default_rng(5)
    q = np.eye(problem.weights.size)[
        rng.integers(problem.weights.size, size=problem.y.size)
    ]
    y, theta = problem.y, problem.theta
    assert emlib.entropy(q) == 0.0
    assert_identity(
        emlib.log_likelihood(y, theta),
        emlib.elbo(y, q, theta),
        emlib.kl_divergence(q, emlib.e_step(y, theta)),
    )


def test_elbo_is_tight_at_the_posterior(problem):
    """At q = P(Z | Y, theta) the gap is 0 and L = Q + H = log-likelihood."""
    y, theta = problem.y, problem.theta
    gamma = emlib.e_step(y, theta)
    log_lik = emlib.log_likelihood(y, theta)
    assert abs(emlib.kl_divergence(gamma, gamma)) == 0.0
    assert_identity(log_lik, emlib.elbo(y, gamma, theta))
    assert_identity(log_lik, emlib.q_function(y, gamma, theta), emlib.entropy(gamma))


def test_elbo_is_q_plus_h(problem):
    q = random_q(problem, seed=6)
    y, theta = problem.y, problem.theta
    assert_identity(
        emlib.elbo(y, q, theta), emlib.q_function(y, q, theta), emlib.entropy(q)
    )


@pytest.mark.parametrize("fn", ["q_function", "elbo"])
def test_column_input_gives_the_same_result(fn):
    problem = make_problem(21, 12, 3)
    q = random_q(problem, seed=7)
    flat = getattr(emlib, fn)(problem.y, q, problem.theta)
    assert getattr(emlib, fn)(problem.y[:, None], q, problem.theta) == flat
    assert getattr(emlib, fn)(problem.y.tolist(), q.tolist(), problem.theta) == flat


def test_entropy_of_a_one_hot_q_is_positive_zero():
    """+0.0, not -0.0: notebooks print it, and nbval compares the text."""
    h = emlib.entropy([[1.0, 0.0], [0.0, 1.0]])
    assert h == 0.0
    assert math.copysign(1.0, h) == 1.0


def test_bound_quantities_match_their_definitions_over_all_assignments():
    """entropy, elbo, q_function, kl_divergence as sums over all K^N assignments z.

    Moved from notebook 20 (its section 5 kept Q itself): for q(z) =
    prod_j q_j(z_j), H(q) = -sum_z q log q, L = sum_z q log(P(y, z) / q),
    Q = sum_z q log P(y, z), KL(q || P(z | y)) = sum_z q log(q / P(z | y)), and
    log P(y) = L + KL, at N = 5, K = 3 (243 assignments), for the posterior
    rows and for random rows. KL of the posterior with itself is 0, so it is
    compared with an absolute slack of 1e-14 as well.
    """
    rng = np.random.default_rng(20)
    truth = emlib.GMM([0.5, 0.3, 0.2], [-2.0, 0.5, 3.0], [1.0, 0.25, 2.0])
    y = mixture_sample(rng, 5, truth.weights, truth.means, truth.variances)
    theta = emlib.GMM([0.2, 0.3, 0.5], [-1.0, 1.0, 2.0], [2.0, 1.0, 0.5])
    zs = np.array(list(itertools.product(range(3), repeat=5)))
    sd = np.sqrt(theta.variances)
    log_phi = scipy.stats.norm.logpdf(y, theta.means[zs], sd[zs])
    log_terms = np.log(theta.weights[zs]) + log_phi
    log_p = log_terms.sum(axis=1)
    posterior = np.exp(log_p) / np.exp(log_p).sum()
    gamma = emlib.e_step(y, theta)
    for rows in (gamma, rng.dirichlet(np.ones(3), size=5)):
        q_z = rows[np.arange(5), zs].prod(axis=1)
        assert_allclose(emlib.entropy(rows), -q_z @ np.log(q_z), rtol=RTOL)
        lower = emlib.elbo(y, rows, theta)
        assert_allclose(lower, q_z @ (log_p - np.log(q_z)), rtol=RTOL)
        assert_allclose(emlib.q_function(y, rows, theta), q_z @ log_p, rtol=RTOL)
        kl = emlib.kl_divergence(rows, gamma)
        assert_allclose(kl, q_z @ np.log(q_z / posterior), rtol=RTOL, atol=1e-14)
        assert_identity(emlib.log_likelihood(y, theta), lower, kl)


# Checks of emlib alone that notebooks/10-em-lower-bound.ipynb used to make;
# the notebook now proves the product rule for every N and cites these.


def test_kl_and_entropy_of_rows_are_those_of_the_product_distribution():
    """N = K = 3: the row sums equal KL and H over all 27 joint values."""
    rng = np.random.default_rng(2)
    q, p = rng.dirichlet(np.ones(3), size=3), rng.dirichlet(np.ones(3), size=3)
    states = np.array(list(itertools.product(range(3), repeat=3)))  # (27, N)
    q_joint = q[np.arange(3), states].prod(axis=1)
    p_joint = p[np.arange(3), states].prod(axis=1)
    want_kl = scipy.stats.entropy(q_joint, p_joint)
    assert_allclose(emlib.kl_divergence(q, p), want_kl, rtol=RTOL, atol=0)
    assert_allclose(emlib.entropy(q), scipy.stats.entropy(q_joint), rtol=RTOL, atol=0)


def test_kl_divergence_matches_scipy_and_is_zero_only_at_equality():
    rng = np.random.default_rng(3)
    q, p = rng.dirichlet(np.ones(4), size=2)
    want = scipy.stats.entropy(q, p)  # sum q log(q / p) when given two arguments
    assert_allclose(emlib.kl_divergence(q, p), want, rtol=RTOL, atol=0)
    assert emlib.kl_divergence(q, p) > 0
    assert emlib.kl_divergence(q, q) == 0
