"""emlib.hmm's Gaussian emissions and Dirichlet priors (issue 23).

Checked against hmmlearn 0.3.3 (GaussianHMM with its covariance and mean
priors turned off, CategoricalHMM with Dirichlet priors), against brute-force
sums over all S^T state paths, and against the Dirichlet log-density written
out here. hmmlearn's GaussianHMM stores ``covars_`` as full (S, D, D)
matrices for ``covariance_type="diag"``: the variances are their diagonals.
"""

import itertools
import math
import pickle

import numpy as np
import pytest
from hmmlearn.hmm import CategoricalHMM
from hmmlearn.hmm import GaussianHMM as HmmlearnGaussian

from emlib import hmm
from emlib.hmm import GaussianHMM

# Against hmmlearn: the issue asks for 1e-8. Measured <= 1.4e-14 relative
# (means, variances, A after six iterations) and 5e-13 absolute on Viterbi's
# log-probability (about 3e2 in size); the margin covers the two libraries'
# different orders of summation (hmmlearn expands sum gamma (x - mu)^2).
RTOL_HMMLEARN = 1e-10
# Against the brute-force path sums (a handful of operations per path).
RTOL = 1e-12

TRUTH = GaussianHMM(
    [0.5, 0.3, 0.2],
    [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]],
    [[0.0, 0.0], [3.0, 1.0], [-2.0, 4.0]],
    [[1.0, 0.5], [0.7, 1.2], [1.0, 1.0]],
)


def sample(rng, model, size):
    """A (T, D) sequence drawn from a GaussianHMM."""
    state, out = rng.choice(model.n_states, p=model.start), []
    for _ in range(size):
        out.append(rng.normal(model.means[state], np.sqrt(model.variances[state])))
        state = rng.choice(model.n_states, p=model.transition[state])
    return np.array(out)


@pytest.fixture(scope="module")
def data():
    # Lengths 80, 80 go to the parallel scan as one batch; 150 alone too;
    # the single vector to the sequential recursion.
    rng = np.random.default_rng(0)
    sequences = [sample(rng, TRUTH, n) for n in (150, 1, 80, 80)]
    return sequences, hmm.initial_theta(sequences, 3, random_state=1)


def hmmlearn_gaussian(init, n_iter, **priors):
    model = HmmlearnGaussian(
        init.n_states,
        covariance_type="diag",
        min_covar=0,
        covars_prior=0,
        covars_weight=1,
        means_weight=0,
        means_prior=0,
        init_params="",
        params="stmc",
        implementation="scaling",
        n_iter=n_iter,
        tol=-np.inf,  # never stops early: exactly n_iter iterations
        **{"startprob_prior": 1.0, "transmat_prior": 1.0, **priors},
    )
    model.startprob_ = np.array(init.start)
    model.transmat_ = np.array(init.transition)
    model.means_ = np.array(init.means)
    model.covars_ = np.array(init.variances)  # (S, D) in, (S, D, D) out
    return model


def close(actual, expected, rtol=RTOL_HMMLEARN):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=0)


@pytest.mark.parametrize("n_iter", [1, 6])
def test_gaussian_baum_welch_matches_hmmlearn(data, n_iter):
    sequences, init = data
    x, lengths = np.concatenate(sequences), [len(s) for s in sequences]
    model = hmmlearn_gaussian(init, n_iter).fit(x, lengths)
    fit = hmm.em(sequences, init, tol=0, max_iter=n_iter)
    close(fit.theta.start, model.startprob_)
    close(fit.theta.transition, model.transmat_)
    close(fit.theta.means, model.means_)
    close(fit.theta.variances, np.diagonal(model.covars_, axis1=1, axis2=2))
    # Every iterate's log-likelihood: hmmlearn's history holds i < n_iter.
    close(fit.log_likelihoods, [*model.monitor_.history, model.score(x, lengths)])


def test_gaussian_inference_matches_hmmlearn(data):
    sequences, _ = data
    model = hmmlearn_gaussian(TRUTH, 1)
    for seq in sequences[:2]:  # the scan (T = 150) and the loop (T = 1)
        (gamma,), _ = hmm.posteriors(seq, TRUTH)
        np.testing.assert_allclose(gamma, model.predict_proba(seq), atol=1e-13)
        (path,), (log_p,) = hmm.viterbi(seq, TRUTH)
        log_p_ref, path_ref = model.decode(seq)
        np.testing.assert_array_equal(path, path_ref)
        assert math.isclose(log_p, log_p_ref, rel_tol=RTOL_HMMLEARN)
        assert math.isclose(
            hmm.log_likelihood(seq, TRUTH), model.score(seq), rel_tol=RTOL_HMMLEARN
        )


def brute_force(seq, model):
    """log sum over all paths of P(O, I), and the best path, from the definition."""
    z = (seq[:, None, :] - model.means) ** 2 / model.variances
    log_b = -0.5 * (np.log(2 * np.pi * model.variances).sum(1) + z.sum(-1))
    scores = {}
    for path in itertools.product(range(model.n_states), repeat=len(seq)):
        s = math.log(model.start[path[0]]) + log_b[0, path[0]]
        for t in range(1, len(seq)):
            s += math.log(model.transition[path[t - 1], path[t]]) + log_b[t, path[t]]
        scores[path] = s
    values = np.array(list(scores.values()))
    peak = values.max()
    return peak + math.log(np.exp(values - peak).sum()), max(scores, key=scores.get)


@pytest.mark.parametrize("far", [0.0, 60.0])
def test_gaussian_is_the_path_sum_even_far_from_every_mean(far):
    # far = 60: x_1 lies 60+ standard deviations from every mean, where each
    # b_j(x_1) < 1e-700 underflows to 0 in float64 (the per-step factor
    # exp(m_t) of _emission_likelihoods keeps the recursion finite).
    rng = np.random.default_rng(3)
    seq = sample(rng, TRUTH, 5)
    seq[1] += far
    log_lik, best = brute_force(seq, TRUTH)
    assert math.isclose(hmm.log_likelihood(seq, TRUTH), log_lik, rel_tol=RTOL)
    assert tuple(hmm.viterbi(seq, TRUTH)[0][0]) == best


def test_initial_theta_is_reproducible_and_spreads_the_states(data):
    sequences, init = data
    again = hmm.initial_theta(sequences, 3, random_state=1)
    np.testing.assert_array_equal(init.means, again.means)
    # k-means finds the three well-separated emission laws: each true mean
    # has a start mean within one standard deviation (sorted by feature 1).
    order = np.argsort(init.means[:, 1])
    np.testing.assert_allclose(init.means[order], TRUTH.means[[0, 1, 2]], atol=1.0)
    fit = hmm.em(sequences, 3, random_state=1, tol=0, max_iter=2)
    assert isinstance(fit.theta, GaussianHMM)


def test_gaussian_hmm_is_immutable_and_pickles():
    means = np.array([[0.0], [1.0]])
    model = GaussianHMM([0.5, 0.5], np.eye(2), means, [[1.0], [2.0]])
    means[0, 0] = 5.0
    assert model.means[0, 0] == 0.0
    with pytest.raises(ValueError, match="read-only"):
        model.variances[0, 0] = 3.0
    copy = pickle.loads(pickle.dumps(model))
    assert repr(copy) == repr(model)
    assert not copy.means.flags.writeable
    assert (model.n_states, model.n_features) == (2, 1)


# ---------------------------------------------------------------------------
# Dirichlet priors (MAP-EM)
# ---------------------------------------------------------------------------

PRIORS = {
    "start_prior": np.array([2.0, 1.5]),
    "transition_prior": np.array([[3.0, 1.2], [1.1, 2.0]]),
    "emission_prior": 1.5,
}


@pytest.fixture(scope="module")
def symbols():
    rng = np.random.default_rng(5)
    # Symbols 0..2 only: symbol 3 is never seen in training.
    sequences = [rng.integers(0, 3, size=n) for n in (120, 40)]
    return sequences, hmm.initial_theta(sequences, 2, n_symbols=4, random_state=2)


def log_dirichlet_kernel(theta, alpha):
    """sum (alpha - 1) log theta: the Dirichlet log-density up to its constant."""
    return float(np.sum((np.broadcast_to(alpha, theta.shape) - 1) * np.log(theta)))


def test_map_em_matches_hmmlearn_and_raises_the_log_posterior(symbols):
    sequences, init = symbols
    x, lengths = np.concatenate(sequences)[:, None], [len(s) for s in sequences]
    model = CategoricalHMM(
        2,
        n_features=4,
        init_params="",
        n_iter=6,
        tol=-np.inf,
        implementation="scaling",
        startprob_prior=PRIORS["start_prior"],
        transmat_prior=PRIORS["transition_prior"],
        emissionprob_prior=PRIORS["emission_prior"],
    )
    model.startprob_, model.transmat_ = np.array(init.start), np.array(init.transition)
    model.emissionprob_ = np.array(init.emission)
    model.fit(x, lengths)
    fit = hmm.em(sequences, init, tol=0, max_iter=6, **PRIORS)
    close(fit.theta.start, model.startprob_)
    close(fit.theta.transition, model.transmat_)
    close(fit.theta.emission, model.emissionprob_)
    # The history is the log-posterior: hmmlearn's log-likelihood + log-prior.
    theta = fit.theta
    log_prior = sum(
        log_dirichlet_kernel(value, PRIORS[name])
        for value, name in [
            (theta.start, "start_prior"),
            (theta.transition, "transition_prior"),
            (theta.emission, "emission_prior"),
        ]
    )
    close(fit.log_likelihoods[-1], model.score(x, lengths) + log_prior)
    # It never decreases (the M-step maximises Q + log-prior), while the
    # log-likelihood (hmmlearn's history) falls here: MAP-EM does not raise it.
    assert np.all(np.diff(fit.log_likelihoods) > 0)
    assert np.any(np.diff(model.monitor_.history) < 0)


def test_map_em_gaussian_start_and_transition_priors_match_hmmlearn(data):
    sequences, init = data
    x, lengths = np.concatenate(sequences), [len(s) for s in sequences]
    model = hmmlearn_gaussian(init, 3, startprob_prior=2.0, transmat_prior=1.5)
    model.fit(x, lengths)
    fit = hmm.em(
        sequences, init, tol=0, max_iter=3, start_prior=2.0, transition_prior=1.5
    )
    close(fit.theta.start, model.startprob_)
    close(fit.theta.transition, model.transmat_)
    close(fit.theta.means, model.means_)


def test_unseen_symbol_gets_a_finite_held_out_likelihood(symbols):
    sequences, init = symbols
    held_out = [0, 3, 1]
    mle = hmm.em(sequences, init, tol=0, max_iter=6).theta
    assert np.all(mle.emission[:, 3] == 0)  # no counts: b_j(3) = 0
    assert hmm.log_likelihood(held_out, mle) == -np.inf
    map_fit = hmm.em(sequences, init, tol=0, max_iter=6, **PRIORS).theta
    assert np.all(map_fit.emission[:, 3] > 0)
    assert np.isfinite(hmm.log_likelihood(held_out, map_fit))


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

MODEL = GaussianHMM(
    [0.5, 0.5], np.eye(2) * 0.5 + 0.25, [[0, 0], [1, 1]], np.ones((2, 2))
)
GOOD = np.zeros((4, 2))
BAD_VECTORS = [
    (np.zeros(4), ValueError, r"obs must be a non-empty array of shape \(T, D\)"),
    (np.zeros((4, 3)), ValueError, r"shape \(T, D\) = \(T, 2\)"),
    (np.zeros((0, 2)), ValueError, "non-empty"),
    (np.zeros((4, 2), dtype=complex), TypeError, "obs must hold real numbers"),
    (np.array([["a", "b"]]), TypeError, "obs must hold real numbers"),
    (np.array([[0.0, np.nan]]), ValueError, r"obs\[0, 1\] is nan"),
    ([GOOD, np.full((2, 2), np.inf)], ValueError, r"obs\[1\]\[0, 0\] is inf"),
    ([GOOD, np.zeros((2, 3))], ValueError, r"obs\[1\] must be"),
]


@pytest.mark.parametrize(
    "function",
    [
        hmm.log_likelihood,
        hmm.posteriors,
        hmm.viterbi,
        lambda obs, m: hmm.em(obs, m, tol=0, max_iter=1),
    ],
    ids=["log_likelihood", "posteriors", "viterbi", "em"],
)
@pytest.mark.parametrize(("obs", "error", "match"), BAD_VECTORS)
def test_bad_vector_observations(function, obs, error, match):
    with pytest.raises(error, match=match):
        function(obs, MODEL)


@pytest.mark.parametrize(
    ("means", "variances", "error", "match"),
    [
        ([[0.0], [1.0]], [[1.0], [0.0]], ValueError, r"variances\[1, 0\] = 0"),
        ([[0.0], [1.0]], [[-1.0], [1.0]], ValueError, r"variances\[0, 0\] = -1"),
        ([[0.0], [np.nan]], [[1.0], [1.0]], ValueError, "means contains NaN"),
        ([[0.0], [1.0]], [[1.0, 1.0], [1.0, 1.0]], ValueError, "same shape"),
        ([0.0, 1.0], [1.0, 1.0], ValueError, r"means must have shape \(S, D\)"),
        ([[0.0], [1.0]], "ab", TypeError, "variances must hold real numbers"),
    ],
)
def test_bad_gaussian_parameters(means, variances, error, match):
    with pytest.raises(error, match=match):
        GaussianHMM([0.5, 0.5], np.eye(2), means, variances)


@pytest.mark.parametrize(
    ("priors", "error", "match"),
    [
        ({"start_prior": 0.0}, ValueError, "start_prior must hold .* > 0"),
        (
            {"transition_prior": [1.0, 2.0, 3.0]},
            ValueError,
            "transition_prior .* broadcast",
        ),
        ({"emission_prior": np.nan}, ValueError, "emission_prior contains NaN"),
        ({"start_prior": "a"}, TypeError, "start_prior must hold real numbers"),
        # 0.5 - 1 makes the count of unseen symbol 3 negative: no MAP estimate.
        ({"emission_prior": 0.5}, ValueError, r"emission_prior\[\d, 3\] = 0\.5 < 1"),
    ],
)
def test_bad_priors(symbols, priors, error, match):
    sequences, init = symbols
    with pytest.raises(error, match=match):
        hmm.em(sequences, init, tol=0, max_iter=2, **priors)


def test_emission_prior_is_for_categorical_models(data):
    sequences, init = data
    with pytest.raises(TypeError, match=r"emission_prior .* GaussianHMM has none"):
        hmm.em(sequences, init, emission_prior=2.0)


def test_inputs_are_not_modified(data, symbols):
    sequences, init = data
    before = [s.copy() for s in sequences]
    prior = np.array([2.0, 1.5, 1.0])
    hmm.em(sequences, init, tol=0, max_iter=1, start_prior=prior)
    hmm.viterbi(sequences, init)
    for seq, copy in zip(sequences, before, strict=True):
        np.testing.assert_array_equal(seq, copy)
    np.testing.assert_array_equal(prior, [2.0, 1.5, 1.0])
