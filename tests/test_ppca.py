"""emlib.ppca: the density, the posterior, EM against the closed-form optimum."""

import dataclasses
import functools

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.datasets import load_iris
from sklearn.decomposition import PCA

from emlib import ppca
from emlib.ppca import PPCA

IRIS = load_iris().data  # (150, 4), shipped inside scikit-learn


def random_theta(rng, d=4, q=2):
    return PPCA(rng.normal(size=(d, q)), rng.normal(size=d), rng.uniform(0.1, 2.0))


def closed_form_covariance(X, q):
    """Tipping and Bishop's maximum-likelihood C = U_q (L_q - s2 I) U_q^T + s2 I.

    From the eigendecomposition of the sample covariance S (normalised by N):
    s2 is the mean of the D - q smallest eigenvalues.
    """
    centred = X - X.mean(axis=0)
    eigenvalues, vectors = np.linalg.eigh(centred.T @ centred / X.shape[0])
    eigenvalues, vectors = eigenvalues[::-1], vectors[:, ::-1]
    s2 = eigenvalues[q:].mean()
    u = vectors[:, :q]
    return u @ np.diag(eigenvalues[:q] - s2) @ u.T + s2 * np.eye(X.shape[1])


def spread_spectrum_sample():
    """200 points in D = 4; the sample covariance's eigenvalues are 7.5, 3.6, 2.1, 1.1.

    EM's rate on PPCA is about 1 - 2 sigma^2 / lambda_1 (notebook 80), slow on
    iris, where the noise variance is a small fraction of the top eigenvalue:
    EM needs about 540, 1220 and 2590 iterations there for q = 1, 2, 3;
    notebook 80 (section 3) runs part of them and SQUAREM the rest, and checks
    against the same closed form and scikit-learn to 1e-13 and 1e-12. Here the
    spectrum is spread, so that EM reaches rounding quickly and the tests stay
    cheap.
    """
    rng = np.random.default_rng(0)
    rotation = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    z = rng.normal(size=(200, 4)) * np.sqrt([8.0, 4.0, 2.0, 1.0])
    return z @ rotation + [1.0, -2.0, 0.5, 3.0]


SPREAD = spread_spectrum_sample()


@functools.cache
def fit_to_rounding(q):
    """ppca.em on SPREAD for 300 iterations, once per q in the module.

    The error in C falls below 1e-14 after 63, 90 and 164 iterations for
    q = 1, 2, 3 (measured), and stays at rounding after. The fit is
    deterministic and the tests only read it, so the closed-form and the
    scikit-learn tests share the q = 2 fit instead of running it twice.
    """
    return ppca.em(SPREAD, q, tol=0, max_iter=300)


def test_log_likelihood_matches_scipy():
    rng = np.random.default_rng(0)
    theta = random_theta(rng)
    X = rng.normal(size=(30, 4))
    want = multivariate_normal(theta.mean, theta.covariance()).logpdf(X).sum()
    assert ppca.log_likelihood(X, theta) == pytest.approx(want, rel=1e-13)


def test_posterior_is_bayes_rule_for_the_joint_gaussian():
    # (z, x) is jointly Gaussian with Cov(z, x) = W^T and Cov(x) = C, so
    # E[z | x] = W^T C^-1 (x - mean) and Cov(z | x) = I - W^T C^-1 W.
    rng = np.random.default_rng(1)
    theta = random_theta(rng, d=5, q=3)
    X = rng.normal(size=(7, 5))
    means, cov = ppca.posterior(X, theta)
    c_inv_w = np.linalg.solve(theta.covariance(), theta.W)
    np.testing.assert_allclose(means, (X - theta.mean) @ c_inv_w, rtol=1e-12)
    np.testing.assert_allclose(cov, np.eye(3) - theta.W.T @ c_inv_w, atol=1e-13)


@pytest.mark.parametrize("q", [1, 2, 3])
def test_em_reaches_the_closed_form_maximum(q):
    fit = fit_to_rounding(q)
    want = closed_form_covariance(SPREAD, q)
    np.testing.assert_allclose(fit.theta.covariance(), want, rtol=0, atol=1e-13)
    np.testing.assert_allclose(fit.theta.mean, SPREAD.mean(axis=0), rtol=1e-15)


def test_matches_scikit_learn_pca_up_to_its_n_minus_1():
    # scikit-learn's eigenvalues are of the covariance normalised by N - 1.
    n = SPREAD.shape[0]
    fit = fit_to_rounding(2)
    sklearn_cov = PCA(n_components=2).fit(SPREAD).get_covariance()
    np.testing.assert_allclose(
        fit.theta.covariance(), sklearn_cov * (n - 1) / n, rtol=1e-11
    )


def test_em_never_lowers_the_log_likelihood_and_reports_it():
    fit = ppca.em(IRIS, 2, tol=0, max_iter=200)
    assert fit.n_iter == 200
    assert not fit.converged
    # Rounding may give a gain of a few ulps of |log P| below 0 once converged.
    slack = 1e-13 * abs(fit.log_likelihoods[-1])
    assert np.all(np.diff(fit.log_likelihoods) >= -slack)
    assert fit.log_likelihoods[-1] > fit.log_likelihoods[0]
    assert fit.log_likelihoods[-1] == pytest.approx(
        ppca.log_likelihood(IRIS, fit.theta), rel=1e-13
    )


def test_stopping_rule_and_documented_start():
    fit = ppca.em(IRIS, 2)
    assert fit.converged
    assert fit.log_likelihoods[-1] - fit.log_likelihoods[-2] < 1e-10 * len(IRIS)
    start = ppca.initial_theta(IRIS, 2)
    variances = IRIS.var(axis=0)
    top = np.argsort(-variances)[:2]
    np.testing.assert_allclose(start.W[top, [0, 1]], np.sqrt(variances[top]))
    assert start.noise_variance == pytest.approx(variances.mean(), rel=1e-14)
    again = ppca.em(IRIS, start)
    np.testing.assert_array_equal(again.log_likelihoods, fit.log_likelihoods)


def test_ppca_is_immutable_and_covariance_is_w_wt_plus_noise():
    theta = PPCA([[1.0], [2.0]], [0.0, 0.0], 0.5)
    np.testing.assert_array_equal(theta.covariance(), [[1.5, 2.0], [2.0, 4.5]])
    with pytest.raises(dataclasses.FrozenInstanceError):
        theta.noise_variance = 1.0
    with pytest.raises(ValueError, match="read-only"):
        theta.W[0, 0] = 3.0


def test_functions_do_not_modify_their_arguments():
    X = IRIS.copy()
    theta = ppca.initial_theta(X, 2)
    ppca.em(X, 2, tol=0, max_iter=3)
    ppca.log_likelihood(X, theta)
    ppca.posterior(X, theta)
    np.testing.assert_array_equal(X, IRIS)


def test_data_in_a_q_dimensional_subspace_is_refused():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 2)) @ rng.normal(size=(2, 4))
    with pytest.raises(ValueError, match="2-dimensional affine subspace"):
        ppca.em(X, 2, max_iter=500)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: PPCA(np.ones(3), np.zeros(3), 1.0), ValueError, r"shape \(D, q\)"),
        (lambda: PPCA(np.ones((2, 3)), np.zeros(2), 1.0), ValueError, "q <= D"),
        (lambda: PPCA(np.ones((3, 1)), np.zeros(2), 1.0), ValueError, "mean must"),
        (lambda: PPCA(np.ones((3, 1)), np.zeros(3), 0.0), ValueError, "> 0"),
        (lambda: PPCA(np.ones((3, 1)), np.zeros(3), "1"), TypeError, "real number"),
        (lambda: ppca.em(IRIS[:, 0], 1), ValueError, r"X must be 2-D"),
        (lambda: ppca.em(IRIS, 4), ValueError, "init must satisfy 1 <= q < D = 4"),
        (lambda: ppca.initial_theta(IRIS, 4), ValueError, "n_latent must satisfy"),
        (lambda: ppca.initial_theta(IRIS, 1.5), TypeError, "n_latent must be an int"),
        (lambda: ppca.em(np.ones((5, 3)), 1), ValueError, "all observations are"),
        (lambda: ppca.em(IRIS, 1, tol=-1), ValueError, "tol must be"),
        (lambda: ppca.em(IRIS, 1.5), TypeError, r"init must be an emlib.ppca.PPCA\("),
        (
            lambda: ppca.log_likelihood(IRIS[:, :3], ppca.initial_theta(IRIS, 1)),
            ValueError,
            "D = 3 columns",
        ),
        (
            lambda: ppca.em(IRIS[:, :3], ppca.initial_theta(IRIS, 1)),
            ValueError,
            r"init.W has shape \(4, 1\); with D = 3 it must be \(3, q\)",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
