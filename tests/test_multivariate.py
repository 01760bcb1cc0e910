"""emlib.multivariate against naive references, scikit-learn and the 1-D API.

The references here are written out plainly (scipy's multivariate normal
density, the M-step formulas as sums), never calling emlib's internals.

scikit-learn is started from emlib's theta^(0) with ``weights_init``,
``means_init`` and ``precisions_init`` (Sigma^-1, or 1 / variances), which
replace everything its initialisation computes; ``tol=0`` makes it run all
``max_iter`` E-step/M-step rounds (it then warns ``ConvergenceWarning``), so
its parameters after ``fit`` are theta^(n) for n = ``max_iter``, the same
count as ``em(..., tol=0, max_iter=n)``. Both add ``reg_covar`` to every
variance in each M-step (not to the start). Tolerance 1e-10 relative, the
issue's figure: scikit-learn forms "tied", "diag" and "spherical"
covariances from raw moments (E[x^2] - mu^2), which on unit-scale data near
the origin costs a few digits at most, and adds 10 eps to each n_k.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import emlib
from emlib import multivariate as mv

RTOL = 1e-10
EPS = np.finfo(np.float64).eps
TYPES = ["full", "tied", "diag", "spherical"]


def three_clusters(seed=0, n=(120, 80, 50)):
    """Points from three elongated, overlapping 2-D clusters."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            rng.normal([0.0, 0.0], [1.0, 0.5], (n[0], 2)),
            rng.normal([3.0, 1.0], [0.7, 1.2], (n[1], 2)),
            rng.normal([-2.0, 3.0], 1.0, (n[2], 2)) @ [[1.0, 0.4], [0.0, 1.0]],
        ]
    )


def full_covariances(theta):
    """Sigma_k of any covariance type as (K, D, D), expanded here."""
    cov, k, d = theta.covariances, theta.n_components, theta.n_features
    if theta.covariance_type == "full":
        return cov
    if theta.covariance_type == "tied":
        return np.repeat(cov[None], k, axis=0)
    if theta.covariance_type == "diag":
        return np.array([np.diag(c) for c in cov])
    return cov[:, None, None] * np.eye(d)


def naive_log_joint(X, theta):
    """log alpha_k + log N(x_j | mu_k, Sigma_k) by scipy, shape (N, K)."""
    return np.column_stack(
        [
            np.log(w) + multivariate_normal(m, c).logpdf(X)
            for w, m, c in zip(
                theta.weights, theta.means, full_covariances(theta), strict=True
            )
        ]
    )


def naive_m_step(X, gamma, covariance_type, reg_covar):
    """The M-step's closed forms as plain sums: (weights, means, covariances)."""
    nk = gamma.sum(axis=0)
    means = gamma.T @ X / nk[:, None]
    dev = X[None, :, :] - means[:, None, :]  # (K, N, D)
    sigma = np.einsum("jk,kjd,kje->kde", gamma, dev, dev) / nk[:, None, None]
    eye = np.eye(X.shape[1])
    covariances = {
        "full": sigma + reg_covar * eye,
        "tied": np.einsum("k,kde->de", nk, sigma) / X.shape[0] + reg_covar * eye,
        "diag": np.diagonal(sigma, axis1=1, axis2=2) + reg_covar,
        "spherical": np.diagonal(sigma, axis1=1, axis2=2).mean(axis=1) + reg_covar,
    }[covariance_type]
    return nk / X.shape[0], means, covariances


def sklearn_rounds(X, theta, n_iter, reg_covar):
    """scikit-learn's theta^(n_iter) from theta = theta^(0)."""
    cov = theta.covariances
    precisions = (
        np.linalg.inv(cov)
        if cov.ndim == 3 or (theta.covariance_type == "tied")
        else 1.0 / cov
    )
    gm = GaussianMixture(
        n_components=theta.n_components,
        covariance_type=theta.covariance_type,
        reg_covar=reg_covar,
        tol=0.0,
        max_iter=n_iter,
        n_init=1,
        weights_init=theta.weights,
        means_init=theta.means,
        precisions_init=precisions,
        init_params="random_from_data",
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gm.fit(X)
    assert gm.n_iter_ == n_iter
    return gm


# ---------------------------------------------------------------------------
# Against the naive references
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", TYPES)
def test_density_and_e_step_match_scipy(covariance_type):
    X = three_clusters()
    theta = mv.initial_theta(X, 3, covariance_type, random_state=0)
    log_joint = naive_log_joint(X, theta)
    assert_allclose(
        mv.log_likelihood(X, theta), logsumexp(log_joint, axis=1).sum(), rtol=1e-13
    )
    gamma = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    assert_allclose(mv.e_step(X, theta), gamma, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reg_covar", [0.0, 1e-6])
@pytest.mark.parametrize("covariance_type", TYPES)
def test_m_step_matches_plain_sums(covariance_type, reg_covar):
    X = three_clusters()
    gamma = np.random.default_rng(1).dirichlet(np.ones(3), size=X.shape[0])
    theta = mv.m_step(X, gamma, covariance_type, reg_covar)
    weights, means, covariances = naive_m_step(X, gamma, covariance_type, reg_covar)
    assert theta.covariance_type == covariance_type
    assert_allclose(theta.weights, weights, rtol=1e-13)
    assert_allclose(theta.means, means, rtol=1e-13)
    assert_allclose(theta.covariances, covariances, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_fused_em_equals_alternating_steps(covariance_type):
    X = three_clusters()
    theta = mv.initial_theta(X, 3, covariance_type, random_state=0)
    fit = mv.em(X, theta, covariance_type=covariance_type, tol=0, max_iter=4)
    for i in range(4):
        assert_allclose(fit.log_likelihoods[i], mv.log_likelihood(X, theta), rtol=1e-13)
        theta = mv.m_step(X, mv.e_step(X, theta), covariance_type)
    assert_allclose(fit.theta.means, theta.means, rtol=1e-12)
    assert_allclose(fit.theta.covariances, theta.covariances, rtol=1e-12)


def test_far_from_origin_keeps_precision():
    # Shifting by 1e6 is exact back and forth here (Sterbenz), so both fits
    # see the same points; a raw-moment E[x^2] - mu^2 would lose ~1e12 * eps.
    offset = 1e6
    X = three_clusters() + offset
    centred = X - offset
    gamma = mv.e_step(centred, mv.initial_theta(centred, 3, random_state=0))
    for covariance_type in TYPES:
        far = mv.m_step(X, gamma, covariance_type)
        near = mv.m_step(centred, gamma, covariance_type)
        assert_allclose(far.means - offset, near.means, rtol=1e-8)
        assert_allclose(far.covariances, near.covariances, rtol=1e-9)


# ---------------------------------------------------------------------------
# Against scikit-learn
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("reg_covar", [0.0, 1e-6])
@pytest.mark.parametrize("covariance_type", TYPES)
def test_matches_sklearn_after_n_iterations(covariance_type, reg_covar):
    X = three_clusters()
    theta0 = mv.initial_theta(X, 3, covariance_type, random_state=0)
    n_iter = 6
    fit = mv.em(
        X, theta0, covariance_type=covariance_type, reg_covar=reg_covar,
        tol=0, max_iter=n_iter,
    )  # fmt: skip
    gm = sklearn_rounds(X, theta0, n_iter, reg_covar)
    assert fit.n_iter == n_iter
    assert_allclose(fit.theta.weights, gm.weights_, rtol=RTOL)
    assert_allclose(fit.theta.means, gm.means_, rtol=RTOL)
    assert_allclose(fit.theta.covariances, gm.covariances_, rtol=RTOL)
    # Its lower_bounds_[i] is the mean log-likelihood at theta^(i), i < n.
    assert_allclose(gm.lower_bounds_, fit.log_likelihoods[:-1] / len(X), rtol=RTOL)


# ---------------------------------------------------------------------------
# D = 1 is the 1-D API
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_one_dimension_agrees_with_1d_api(covariance_type):
    # "tied" (one variance shared by all components) is another model.
    # Both from the 1-D quantile start (the D-dimensional default start is
    # k-means++, random).
    y = three_clusters()[:, 0]
    start = emlib.initial_theta(y, 2)
    one_d = emlib.em(y, start, tol=0, max_iter=8)
    cov = {"full": start.variances[:, None, None], "diag": start.variances[:, None],
           "spherical": start.variances}[covariance_type]  # fmt: skip
    theta0 = mv.GMM(start.weights, start.means[:, None], cov, covariance_type)
    fit = mv.em(y[:, None], theta0, covariance_type=covariance_type, tol=0, max_iter=8)
    assert_allclose(fit.log_likelihoods, one_d.log_likelihoods, rtol=1e-12)
    assert_allclose(fit.theta.means[:, 0], one_d.theta.means, rtol=1e-12)
    variances = full_covariances(fit.theta)[:, 0, 0]
    assert_allclose(variances, one_d.theta.variances, rtol=1e-12)


# ---------------------------------------------------------------------------
# Monotone log-likelihood
# ---------------------------------------------------------------------------


@st.composite
def data_and_start(draw):
    """(X, theta^(0), covariance_type): 2-D data, K <= 3, a random SPD start."""
    seed = draw(st.integers(0, 2**32 - 1))
    covariance_type = draw(st.sampled_from(TYPES))
    rng = np.random.default_rng(seed)
    n, k = draw(st.integers(8, 60)), draw(st.integers(1, 3))
    X = rng.normal(size=(n, 2)) * draw(st.floats(0.1, 100.0))
    spread = X.std(axis=0).mean()
    a = rng.normal(size=(k, 2, 2)) * spread
    full = a @ a.transpose(0, 2, 1) + 0.1 * spread**2 * np.eye(2)
    covariances = {
        "full": full,
        "tied": full[0],
        "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
        "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1),
    }[covariance_type]
    theta = mv.GMM(rng.dirichlet(np.full(k, 5.0)), X[:k].copy(), covariances,
                   covariance_type)  # fmt: skip
    return X, theta


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data_and_start())
def test_log_likelihood_never_decreases(case):
    # reg_covar = 0: with reg_covar > 0 EM maximises a penalised likelihood,
    # and the likelihood itself need not be monotone.
    X, theta = case
    try:
        fit = mv.em(X, theta, covariance_type=theta.covariance_type, tol=0, max_iter=15)
    except ValueError as err:  # a collapse is reported, as it must be
        if "became singular" not in str(err) and "n_k = 0" not in str(err):
            raise
        reject()
    # Rounding allowance: 1e3 eps per point and per unit of log-likelihood.
    slack = 1e3 * EPS * (len(X) + np.abs(fit.log_likelihoods).max())
    assert np.all(np.diff(fit.log_likelihoods) >= -slack)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def good_theta(covariance_type="full"):
    return mv.initial_theta(three_clusters(), 2, covariance_type, random_state=0)


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        (np.arange(5.0), ValueError, r"pass a column.*\(N, 1\)"),
        (np.zeros((2, 2, 2)), ValueError, r"shape \(N, D\)"),
        (np.zeros((0, 2)), ValueError, "at least one observation"),
        # NaN is a missing value for em and log_likelihood (test_missing.py).
        (np.array([[0.0, np.inf]]), ValueError, "infinite values"),
        (np.array([["a", "b"]]), TypeError, "real numbers"),
        (np.array([[1e200, 0.0]]), ValueError, "rescale X"),
    ],
)
def test_bad_data(X, error, match):
    for call in (
        lambda: mv.log_likelihood(X, good_theta()),
        lambda: mv.e_step(X, good_theta()),
        lambda: mv.em(X, 2),
        lambda: mv.initial_theta(X, 1),
    ):
        with pytest.raises(error, match=match):
            call()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weights": [0.5, 0.6]}, "sum to 1"),
        ({"weights": [1.5, -0.5]}, "sum to 1"),
        ({"weights": [[0.5, 0.5]]}, r"shape \(K,\)"),
        ({"means": np.zeros(2)}, r"shape \(K, D\)"),
        ({"covariances": np.eye(2)}, r"shape \(2, 2, 2\)"),
        ({"covariances": [np.eye(2), [[1.0, 2.0], [2.0, 1.0]]]}, "component 1's"),
        ({"covariances": [np.eye(2), [[1.0, 0.5], [0.4, 1.0]]]}, "not symmetric"),
        ({"covariances": [np.eye(2), [[np.inf, 0.0], [0.0, 1.0]]]}, "NaN or infinite"),
        ({"covariance_type": "diagonal"}, "covariance_type must be one of"),
    ],
)
def test_bad_gmm(kwargs, match):
    args = {"weights": [0.5, 0.5], "means": np.zeros((2, 2)),
            "covariances": np.stack([np.eye(2)] * 2)} | kwargs  # fmt: skip
    with pytest.raises(ValueError, match=match):
        mv.GMM(**args)


@pytest.mark.parametrize(
    ("covariance_type", "covariances", "match"),
    [
        ("tied", [[1.0, 2.0], [2.0, 1.0]], "the tied covariance"),
        ("diag", [[1.0, 1.0], [1.0, 0.0]], "component 1's covariance"),
        ("spherical", [1.0, -1.0], "component 1's covariance"),
    ],
)
def test_non_positive_definite_names_component(covariance_type, covariances, match):
    with pytest.raises(ValueError, match=match + ".* not positive definite"):
        mv.GMM([0.5, 0.5], np.zeros((2, 2)), covariances, covariance_type)


def collinear_and_cluster():
    """Five points on the line x2 = 2 x1, and a cloud far from them."""
    t = np.arange(5.0)
    cloud = np.random.default_rng(0).normal(100.0, 1.0, (20, 2))
    X = np.concatenate([np.column_stack([t, 2 * t]), cloud])
    theta = mv.GMM([0.2, 0.8], [[2.0, 4.0], [100.0, 100.0]], np.stack([np.eye(2)] * 2))
    return X, theta


def test_singular_covariance_in_em_names_component_and_reg_covar():
    X, theta = collinear_and_cluster()
    with pytest.raises(ValueError, match="component 0's covariance became singular"):
        mv.em(X, theta)
    with pytest.raises(ValueError, match=r"reg_covar > 0"):
        mv.m_step(X, mv.e_step(X, theta))
    fit = mv.em(X, theta, reg_covar=1e-6, max_iter=5)  # the suggested fix works
    assert np.all(np.isfinite(fit.log_likelihoods))


def test_bad_arguments():
    X, theta = three_clusters(), good_theta()
    gamma = mv.e_step(X, theta)
    one_hot = np.column_stack([np.ones(len(X)), np.zeros(len(X))])
    cases = [
        (lambda: mv.em(X, theta, covariance_type="diag"), ValueError, "pass covari"),
        (lambda: mv.em(X, 2.0), TypeError, "init must be"),
        (lambda: mv.em(X, 0), ValueError, "1 <= K <= N"),
        (lambda: mv.em(X, 2, reg_covar=-1.0), ValueError, "reg_covar must be"),
        (lambda: mv.em(X, 2, reg_covar=True), TypeError, "reg_covar must be"),
        (lambda: mv.em(X, 2, tol=-1.0), ValueError, "tol must be"),
        (lambda: mv.em(X, 2, max_iter=0), ValueError, "max_iter must be"),
        (lambda: mv.em(X[:, :1], theta), ValueError, "D = 1 coordinates"),
        (lambda: mv.e_step(X, emlib.GMM([1.0], [0.0], [1.0])), TypeError, "theta"),
        (lambda: mv.m_step(X, gamma[:-1]), ValueError, "one row per observation"),
        (lambda: mv.m_step(X, gamma / 2), ValueError, "sum to 1"),
        (lambda: mv.m_step(X, gamma, "none"), ValueError, "covariance_type"),
        (lambda: mv.m_step(X[:1], gamma[:1]), ValueError, "at least K"),
        (lambda: mv.m_step(X, one_hot), ValueError, "component 1 has no resp"),
        (
            lambda: mv.initial_theta(np.column_stack([X[:, 0], 2 * X[:, 0]]), 2),
            ValueError,
            "lower-dimensional subspace",
        ),
    ]
    for call, error, match in cases:
        with pytest.raises(error, match=match):
            call()


def test_arguments_unchanged_and_theta_immutable():
    X = three_clusters()
    X_before = X.copy()
    cov = np.stack([np.eye(2)] * 2)
    theta = mv.GMM([0.5, 0.5], X[:2], cov)
    cov[0, 0, 0] = 5.0  # the caller's array is copied, not aliased
    assert theta.covariances[0, 0, 0] == 1.0
    gamma = mv.e_step(X, theta)
    gamma_before = gamma.copy()
    mv.m_step(X, gamma)
    mv.em(X, theta, tol=0, max_iter=3)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(gamma, gamma_before)
    with pytest.raises(ValueError, match="read-only"):
        theta.means[0, 0] = 1.0
    with pytest.raises(AttributeError):
        theta.weights = np.ones(2) / 2
