"""Sample weights and model selection (issue 20), each against an independent fit.

Weights: an integer weight w_j is row j repeated w_j times, a zero weight is
the row dropped, and scaling every weight changes nothing; each is checked
against EM on the expanded or reduced data, which never sees a weight.
Selection: the parameter counts and BIC/AIC against scikit-learn's
``GaussianMixture`` on the same theta.

Runs are FIXED = 30 iterations (tol=0), compared iterate by iterate.
Tolerances (1e-10 relative unless stated): a weighted sum and the sum over
repeated rows differ only in the order of summation, a few ulps of each
sum, and EM's iterations carry the difference without amplifying it
(measured: at most 5e-13 relative over the four covariance types on Old
Faithful, run to convergence).
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

import emlib
from embook.data import old_faithful
from emlib import multivariate as mv
from emlib import selection

RTOL = 1e-10
FIXED = {"tol": 0.0, "max_iter": 30}
X = old_faithful()
Y = X[:, 0]
# Integer weights 0..3: some rows dropped, some repeated.
W = np.random.default_rng(0).integers(0, 4, X.shape[0])


def assert_same_mixture(a, b, rtol=RTOL):
    assert_allclose(a.weights, b.weights, rtol=rtol)
    assert_allclose(a.means, b.means, rtol=rtol)
    covariances = a.variances if isinstance(a, emlib.GMM) else a.covariances
    other = b.variances if isinstance(b, emlib.GMM) else b.covariances
    assert_allclose(covariances, other, rtol=rtol)


# ---------------------------------------------------------------------------
# 1-D mixture
# ---------------------------------------------------------------------------


def test_1d_integer_weights_are_repeated_rows():
    start = emlib.GMM([0.4, 0.6], [2.0, 4.3], [0.2, 0.3])
    weighted = emlib.em(Y, start, sample_weight=W, **FIXED)
    repeated = emlib.em(np.repeat(Y, W), start, **FIXED)
    assert_allclose(weighted.log_likelihoods, repeated.log_likelihoods, rtol=RTOL)
    assert_same_mixture(weighted.theta, repeated.theta)


def test_1d_steps_with_weights_are_steps_on_repeated_rows():
    theta = emlib.GMM([0.4, 0.6], [2.0, 4.3], [0.2, 0.3])
    y_rep = np.repeat(Y, W)
    assert_allclose(
        emlib.log_likelihood(Y, theta, sample_weight=W),
        emlib.log_likelihood(y_rep, theta),
        rtol=RTOL,
    )
    gamma = emlib.e_step(Y, theta)
    assert_same_mixture(
        emlib.m_step(Y, gamma, sample_weight=W),
        emlib.m_step(y_rep, np.repeat(gamma, W, axis=0)),
    )


def test_1d_zero_weight_drops_the_row_and_scale_changes_nothing():
    keep = W > 0
    dropped = emlib.em(Y[keep], 2, **FIXED)
    weighted = emlib.em(Y, 2, sample_weight=keep.astype(float), **FIXED)
    assert_same_mixture(weighted.theta, dropped.theta)
    scaled = emlib.em(Y, 2, sample_weight=3.7 * W, **FIXED)
    assert_same_mixture(scaled.theta, emlib.em(Y, 2, sample_weight=W, **FIXED).theta)


# ---------------------------------------------------------------------------
# D-dimensional mixture
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", mv.COVARIANCE_TYPES)
def test_integer_weights_are_repeated_rows(covariance_type):
    start = mv.initial_theta(X, 3, covariance_type, random_state=1)
    kwargs = {"covariance_type": covariance_type, **FIXED}
    weighted = mv.em(X, start, sample_weight=W, **kwargs)
    repeated = mv.em(np.repeat(X, W, axis=0), start, **kwargs)
    assert_allclose(weighted.log_likelihoods, repeated.log_likelihoods, rtol=RTOL)
    assert_same_mixture(weighted.theta, repeated.theta)


@pytest.mark.parametrize("covariance_type", mv.COVARIANCE_TYPES)
def test_steps_with_weights_are_steps_on_repeated_rows(covariance_type):
    theta = mv.initial_theta(X, 3, covariance_type, random_state=1)
    gamma = mv.e_step(X, theta)
    assert_same_mixture(
        mv.m_step(X, gamma, covariance_type, sample_weight=W),
        mv.m_step(
            np.repeat(X, W, axis=0), np.repeat(gamma, W, axis=0), covariance_type
        ),
    )
    assert_allclose(
        mv.log_likelihood(X, theta, sample_weight=W),
        mv.log_likelihood(np.repeat(X, W, axis=0), theta),
        rtol=RTOL,
    )


def test_zero_weight_drops_the_row_and_scale_changes_nothing():
    keep = W > 0
    # An int start: the k-means++ start is drawn from the rows that count.
    dropped = mv.em(X[keep], 3, random_state=5, **FIXED)
    weighted = mv.em(X, 3, random_state=5, sample_weight=keep * 1.0, **FIXED)
    assert_same_mixture(weighted.theta, dropped.theta)
    scaled = mv.em(X, 3, random_state=5, sample_weight=W * 1e-3, **FIXED)
    unscaled = mv.em(X, 3, random_state=5, sample_weight=W, **FIXED)
    assert_same_mixture(scaled.theta, unscaled.theta)


# ---------------------------------------------------------------------------
# Bad weights
# ---------------------------------------------------------------------------

BAD_WEIGHTS = [
    (-np.ones(272), "must be >= 0"),
    (np.r_[np.ones(271), np.nan], "sample_weight contains NaN"),
    (np.ones(271), r"shape \(N,\) = \(272,\)"),
    (np.zeros(272), "sums to 0"),
    (np.full(272, 1e308), "sums to more than float64"),
]


@pytest.mark.parametrize(("weights", "message"), BAD_WEIGHTS)
def test_bad_weights_are_refused_and_left_alone(weights, message):
    theta1 = emlib.GMM([0.5, 0.5], [2.0, 4.0], [0.3, 0.3])
    theta = mv.initial_theta(X, 2, random_state=0)
    gamma = mv.e_step(X, theta)
    calls = [
        lambda w: emlib.em(Y, 2, sample_weight=w),
        lambda w: emlib.m_step(Y, emlib.e_step(Y, theta1), sample_weight=w),
        lambda w: emlib.log_likelihood(Y, theta1, sample_weight=w),
        lambda w: mv.em(X, 2, sample_weight=w),
        lambda w: mv.m_step(X, gamma, sample_weight=w),
        lambda w: mv.log_likelihood(X, theta, sample_weight=w),
    ]
    for call in calls:
        copy = weights.copy()
        with pytest.raises(ValueError, match=message):
            call(copy)
        np.testing.assert_array_equal(copy, weights)


# ---------------------------------------------------------------------------
# Model selection
# ---------------------------------------------------------------------------


def sklearn_mixture(theta):
    """A GaussianMixture holding theta, as its fit would store it."""
    gm = GaussianMixture(theta.n_components, covariance_type=theta.covariance_type)
    gm.weights_, gm.means_ = np.array(theta.weights), np.array(theta.means)
    gm.covariances_ = np.array(theta.covariances)
    gm.precisions_cholesky_ = _compute_precision_cholesky(
        gm.covariances_, theta.covariance_type
    )
    return gm


@pytest.mark.parametrize("covariance_type", mv.COVARIANCE_TYPES)
def test_n_parameters_bic_aic_match_scikit_learn(covariance_type):
    for k in range(1, 5):
        for d in range(1, 5):
            gm = GaussianMixture(k, covariance_type=covariance_type)
            gm.means_ = np.zeros((k, d))
            assert selection.n_parameters(k, d, covariance_type) == gm._n_parameters()
    theta = mv.em(X, 3, covariance_type=covariance_type, random_state=0, **FIXED)
    gm = sklearn_mixture(theta.theta)
    theta = theta.theta
    assert_allclose(selection.bic(X, theta), gm.bic(X), rtol=RTOL)
    assert_allclose(selection.aic(X, theta), gm.aic(X), rtol=RTOL)


def test_icl_is_bic_plus_twice_the_entropy():
    from scipy.special import entr  # -x log x, 0 at 0

    theta = mv.em(X, 3, covariance_type="tied", random_state=0, **FIXED).theta
    gm = sklearn_mixture(theta)
    gamma = gm.predict_proba(X)
    assert_allclose(
        selection.icl(X, theta), gm.bic(X) + 2 * entr(gamma).sum(), rtol=RTOL
    )
    hard = -np.log(gamma.max(axis=1)).sum()
    assert_allclose(selection.icl(X, theta, "map"), gm.bic(X) + 2 * hard, rtol=RTOL)


def test_select_finds_three_clusters():
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    data = np.concatenate([c + rng.normal(size=(40, 2)) for c in centres])
    result = selection.select(
        data, range(1, 5), ("full", "spherical"), random_state=0, tol=1e-6
    )
    assert result.n_components == 3
    assert result.fit.theta.n_components == 3
    assert result.covariance_type == result.fit.theta.covariance_type
    table = {(r.covariance_type, r.n_components): r for r in result.table}
    assert len(table) == 8
    best = table[(result.covariance_type, 3)]
    assert best.criterion == min(r.criterion for r in result.table)
    assert_allclose(best.criterion, selection.bic(data, result.fit.theta), rtol=RTOL)


def test_select_records_failed_fits():
    # Three distinct points, each twice: K = 3 puts a component on each pair,
    # whose covariance is singular; K = 7 > N = 6 cannot be fitted at all.
    data = np.repeat([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], 2, axis=0)
    result = selection.select(data, [1, 3, 7], ("full",), random_state=0)
    rows = {r.n_components: r for r in result.table}
    assert rows[1].error is None
    assert result.n_components == 1
    assert "singular" in rows[3].error
    assert np.isnan(rows[3].criterion)
    assert "K must satisfy" in rows[7].error
    assert np.isnan(rows[7].log_likelihood)


def test_select_refuses_bad_arguments():
    with pytest.raises(ValueError, match="criterion must be one of"):
        selection.select(X, [1], criterion="BIC")
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        selection.select(X, [1], ("VVV",))
    with pytest.raises(ValueError, match="every fit of the grid failed"):
        selection.select(X[:2], [3])
