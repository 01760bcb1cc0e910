"""emlib.multivariate's k-means++ start and scale-free singularity check (issue 19).

References are independent of emlib: scikit-learn's GaussianMixture (its own
k-means start, or emlib's start fed in through ``weights_init``, ``means_init``
and ``precisions_init``), scipy's multivariate normal density, the true labels
of simulated data, and numpy's sample covariances.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.linalg import cholesky, solve_triangular
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture
from test_multivariate import full_covariances, sklearn_rounds

from emlib import multivariate as mv

TYPES = ["full", "tied", "diag", "spherical"]


def issue_clusters(seed=0, n=200, sd=0.3):
    """The issue's data: three round clusters at (-4, 4), (0, 0), (4, -4)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-4.0, 4.0], [0.0, 0.0], [4.0, -4.0]])
    X = np.concatenate([rng.normal(c, sd, (n, 2)) for c in centres])
    return X, np.repeat(np.arange(3), n)


def scipy_log_likelihood(X, theta):
    """log P(X | theta) by scipy's Cholesky factors, from theta's arrays only.

    (scipy.stats.multivariate_normal refuses covariances whose eigenvalues
    span more than 1/eps, such as diag(1e8, 1e-8), so the density is written
    out: log N = -(D log 2 pi + log det Sigma + |L^-1 (x - mu)|^2) / 2.)
    """
    d = X.shape[1]
    log_joint = []
    for w, m, c in zip(
        theta.weights, theta.means, full_covariances(theta), strict=True
    ):
        chol = cholesky(c, lower=True)
        z = solve_triangular(chol, (X - m).T, lower=True)
        log_det = 2 * np.log(np.diagonal(chol)).sum()
        log_joint.append(np.log(w) - 0.5 * (d * np.log(2 * np.pi) + log_det
                                            + (z * z).sum(axis=0)))  # fmt: skip
    return logsumexp(np.column_stack(log_joint), axis=1).sum()


def found_every_cluster(gamma, truth):
    """True if argmax_k gamma_jk maps each true cluster to its own component."""
    labels = gamma.argmax(axis=1)
    k = truth.max() + 1
    table = np.zeros((k, gamma.shape[1]), dtype=int)
    np.add.at(table, (truth, labels), 1)
    # Each true cluster's points all in one component, distinct components.
    return bool(np.all((table > 0).sum(axis=1) == 1)) and bool(
        np.all((table > 0).sum(axis=0) <= 1)
    )


# ---------------------------------------------------------------------------
# The start finds the clusters
# ---------------------------------------------------------------------------


def test_issue_three_clusters_reach_sklearn():
    # Before: "covariance became singular" (quantile start); with
    # reg_covar=1e-6, weights (0, 1, 0) and -1881 against scikit-learn's -916.
    X, truth = issue_clusters()
    fit = mv.em(X, 3, random_state=0)
    gm = GaussianMixture(3, tol=1e-10, max_iter=1000, random_state=0).fit(X)
    want = gm.score(X) * len(X)
    # Both stop once a per-point gain falls below 1e-10; EM's linear rate is
    # below 0.9 here, so what is left to gain is below 9 times the last gain:
    # 10 * 1e-10 * N bounds the distance between the two stopping points.
    assert abs(fit.log_likelihoods[-1] - want) < 10 * 1e-10 * len(X)
    assert_allclose(fit.log_likelihoods[-1], scipy_log_likelihood(X, fit.theta),
                    rtol=1e-13)  # fmt: skip
    assert found_every_cluster(mv.e_step(X, fit.theta), truth)
    assert_allclose(np.sort(fit.theta.weights), [1 / 3] * 3, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_start_is_the_clusters_sample_moments(covariance_type):
    # Well separated: Lloyd ends with the true partition, so theta^(0) is each
    # cluster's share, mean and (biased) sample covariance, + c I.
    X, truth = issue_clusters(n=50)
    c = 1e-3
    theta = mv.initial_theta(X, 3, covariance_type, reg_covar=c, random_state=1)
    order = np.argsort(theta.means[:, 0])  # true clusters run left to right
    parts = [X[truth == k] for k in range(3)]
    assert_allclose(theta.weights[order], [1 / 3] * 3, rtol=1e-15)
    assert_allclose(theta.means[order], [p.mean(axis=0) for p in parts], rtol=1e-13)
    sample = np.array([np.cov(p.T, bias=True) for p in parts])
    want = {
        "full": sample + c * np.eye(2),
        "tied": sample.mean(axis=0) + c * np.eye(2),  # equal n_k
        "diag": np.diagonal(sample, axis1=1, axis2=2) + c,
        "spherical": np.trace(sample, axis1=1, axis2=2) / 2 + c,
    }[covariance_type]
    got = theta.covariances if covariance_type == "tied" else theta.covariances[order]
    assert_allclose(got, want, rtol=1e-12)


def test_single_point_cluster_gets_the_data_covariance():
    # A far outlier is its own k-means cluster; one point has no covariance,
    # so its component starts with the data's (numpy's biased np.cov).
    X, _ = issue_clusters(n=30)
    X = np.vstack([X, [40.0, 40.0]])
    theta = mv.initial_theta(X, 4, random_state=0)
    alone = int(np.argmin(theta.weights))
    assert_allclose(theta.weights[alone], 1 / len(X), rtol=1e-15)
    assert_allclose(theta.means[alone], [40.0, 40.0], rtol=1e-15)
    assert_allclose(theta.covariances[alone], np.cov(X.T, bias=True), rtol=1e-12)


@st.composite
def separated_clusters(draw):
    """(X, truth, K, seed): K round clusters whose centres are far apart.

    K in 2..5 clusters in D in 1..3 dimensions, 20 to 80 points each, standard
    deviations sigma_k in [0.5, 2]. "Separated": every two centres are more
    than c * max_k sigma_k apart, c = 12. Why 12: a point lies within 4 sigma
    of its centre in each coordinate but for a 1-in-15000 normal draw, so two
    clusters' points are then at least (12 - 2 * 4 sqrt(D)) max sigma > 0
    apart (D <= 3) and nearest-centre assignment cannot merge them once each
    has a seed; and a point of a cluster with no seed yet has a squared
    distance to the seeds of over 25 times that of a covered cluster's
    points, so greedy k-means++ puts the next seed there almost surely.
    """
    seed = draw(st.integers(0, 2**32 - 1))
    k = draw(st.integers(2, 5))
    d = draw(st.integers(1, 3))
    rng = np.random.default_rng(seed)
    sds = rng.uniform(0.5, 2.0, k)
    gap = 12 * sds.max()
    centres = [rng.uniform(-1, 1, d)]
    while len(centres) < k:  # rejection: a box wide enough to fit K centres
        c = rng.uniform(-1, 1, d) * gap * k
        if min(np.linalg.norm(c - o) for o in centres) > gap:
            centres.append(c)
    sizes = rng.integers(20, 81, k)
    X = np.concatenate(
        [rng.normal(c, s, (m, d)) for c, s, m in zip(centres, sds, sizes, strict=True)]
    )
    truth = np.repeat(np.arange(k), sizes)
    return X, truth, k, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(separated_clusters())
def test_default_call_finds_separated_clusters(case):
    X, truth, k, seed = case
    fit = mv.em(X, k, random_state=seed)
    assert found_every_cluster(mv.e_step(X, fit.theta), truth)


def test_n_init_keeps_the_best_of_its_starts():
    # The starts of n_init=3 are those drawn in turn from one Generator:
    # replay them with scikit-learn from each start and compare the best.
    X, _ = issue_clusters(n=40, sd=1.5)
    n_iter = 10
    fit = mv.em(X, 3, tol=0, max_iter=n_iter, n_init=3, random_state=3)
    rng = np.random.default_rng(3)
    starts = [mv.initial_theta(X, 3, random_state=rng) for _ in range(3)]
    best = max(sklearn_rounds(X, s, n_iter, 0.0).score(X) * len(X) for s in starts)
    assert_allclose(fit.log_likelihoods[-1], best, rtol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_init": 0}, ValueError, "n_init must be >= 1"),
        ({"n_init": 2.0}, TypeError, "n_init must be an int"),
        ({"random_state": 1.5}, TypeError, "random_state must be an int seed"),
        ({"random_state": -1}, ValueError, "random_state must be a seed >= 0"),
        ({"random_state": np.random.RandomState(0)}, TypeError, "random_state"),
    ],
)
def test_bad_start_arguments(kwargs, error, match):
    X, _ = issue_clusters(n=10)
    with pytest.raises(error, match=match):
        mv.em(X, 3, **kwargs)


def test_n_init_with_a_gmm_start_is_refused():
    X, _ = issue_clusters(n=10)
    theta = mv.initial_theta(X, 3, random_state=0)
    with pytest.raises(ValueError, match="n_init = 2 starts need init to be"):
        mv.em(X, theta, n_init=2)


def test_start_does_not_modify_x():
    X, _ = issue_clusters(n=10)
    before = X.copy()
    mv.em(X, 3, n_init=2, random_state=0)
    assert np.array_equal(X, before)


# ---------------------------------------------------------------------------
# Scale-free singularity
# ---------------------------------------------------------------------------

SCALES = np.array([1e4, 1e-4])


@pytest.mark.parametrize("covariance_type", TYPES)
def test_columns_on_scales_1e4_and_1e_minus_4_match_sklearn(covariance_type):
    # Before: refused as "singular" for every type (an absolute condition
    # number of 1e16). Same start, 20 rounds, reg_covar = 0 in both.
    X = np.random.default_rng(0).standard_normal((300, 2)) * SCALES
    theta0 = mv.initial_theta(X, 2, covariance_type, random_state=0)
    n_iter = 20
    fit = mv.em(X, theta0, covariance_type=covariance_type, tol=0, max_iter=n_iter)
    gm = sklearn_rounds(X, theta0, n_iter, 0.0)
    # Measured: 3e-16 relative in the log-likelihood, 3e-15 for parameters in
    # units of each column's scale (means / s_i, covariances / (s_i s_j));
    # 1e-12 leaves 300x for the rounding of other BLAS or platforms.
    assert_allclose(fit.log_likelihoods[-1], gm.score(X) * len(X), rtol=1e-12)
    assert_allclose(fit.theta.weights, gm.weights_, rtol=0, atol=1e-12)
    assert_allclose(fit.theta.means / SCALES, gm.means_ / SCALES, rtol=0, atol=1e-12)
    got, want = full_covariances(fit.theta), full_covariances(gm_as_gmm(gm))
    unit = (
        np.outer(SCALES, SCALES) if covariance_type != "spherical" else SCALES[0] ** 2
    )
    assert_allclose(got / unit, want / unit, rtol=0, atol=1e-12)


def gm_as_gmm(gm):
    """scikit-learn's fitted parameters as an emlib GMM (arrays only)."""
    return mv.GMM(gm.weights_, gm.means_, gm.covariances_, gm.covariance_type)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_scaled_columns_fit_from_the_default_start(covariance_type):
    X = np.random.default_rng(1).standard_normal((200, 2)) * SCALES
    fit = mv.em(X, 2, covariance_type=covariance_type, tol=0, max_iter=50,
                random_state=0)  # fmt: skip
    assert_allclose(fit.log_likelihoods[-1], scipy_log_likelihood(X, fit.theta),
                    rtol=1e-12)  # fmt: skip


@pytest.mark.parametrize("scale", [np.array([1.0, 1.0]), SCALES])
def test_points_on_a_line_still_raise_with_advice(scale):
    # Five points on the line x2 = 2 x1 and a cloud far away: component 0
    # collapses onto the line whatever the columns' units.
    t = np.arange(5.0)
    cloud = np.random.default_rng(0).normal(100.0, 1.0, (20, 2))
    X = np.concatenate([np.column_stack([t, 2 * t]), cloud]) * scale
    start = mv.GMM([0.2, 0.8], [[2.0, 4.0] * scale, [100.0, 100.0] * scale],
                   np.stack([np.diag(scale**2)] * 2))  # fmt: skip
    advice = r"became singular.*Pass reg_covar > 0 \(a variance in the data's units"
    with pytest.raises(ValueError, match="component 0's covariance " + advice):
        mv.em(X, start)


def test_diag_judges_only_variances():
    # Perfectly correlated columns are fine for "diag" (no correlations in
    # the model), as for scikit-learn, but not for "full".
    x = np.random.default_rng(0).normal(size=60)
    X = np.column_stack([x, 3 * x + 1])
    fit = mv.em(X, 1, covariance_type="diag", tol=0, max_iter=1)
    assert_allclose(fit.theta.covariances[0], X.var(axis=0), rtol=1e-13)
    with pytest.raises(ValueError, match="lower-dimensional subspace"):
        mv.em(X, 1)
