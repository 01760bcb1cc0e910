"""emlib.linear_vae: the ELBO against Monte Carlo and log p, its gradient, training."""

import dataclasses

import numpy as np
import pytest
from sklearn.datasets import load_iris

from emlib import gaussian_kl, ppca
from emlib import linear_vae as lv
from emlib.linear_vae import LinearVAE

IRIS = load_iris().data  # (150, 4), shipped inside scikit-learn
NAMES = ("W", "mean", "noise_variance", "V", "b", "encoder_variance")


def random_vae(rng, d=4, q=2):
    return LinearVAE(
        rng.normal(size=(d, q)),
        rng.normal(size=d),
        rng.uniform(0.3, 2.0),
        rng.normal(size=(q, d)),
        rng.normal(size=q),
        rng.uniform(0.2, 2.0, size=q),
    )


def replaced(vae, name, value):
    fields = {f: getattr(vae, f) for f in NAMES}
    fields[name] = value
    return LinearVAE(**fields)


def ml_solution(X, q):
    """Tipping and Bishop's maximum: W = U_q (L_q - s2 I)^(1/2), orthogonal columns."""
    mean, s = X.mean(axis=0), np.cov(X.T, bias=True)
    eigenvalues, vectors = np.linalg.eigh(s)
    eigenvalues, vectors = eigenvalues[::-1], vectors[:, ::-1]
    s2 = eigenvalues[q:].mean()
    return ppca.PPCA(vectors[:, :q] * np.sqrt(eigenvalues[:q] - s2), mean, s2)


def test_gradient_matches_central_differences():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)) @ rng.normal(size=(4, 4))
    vae = random_vae(rng)
    grad = lv.elbo_gradient(X, vae)
    for name in NAMES:
        value = np.array(getattr(vae, name), dtype=float)
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            h = 1e-6 * max(1.0, abs(value[idx]))
            plus, minus = value.copy(), value.copy()
            plus[idx] += h
            minus[idx] -= h
            up = lv.elbo(X, replaced(vae, name, plus if plus.shape else float(plus)))
            down = lv.elbo(X, replaced(vae, name, minus if minus.shape else minus[()]))
            numeric[idx] = (up - down) / (2 * h)
        # Central differences: truncation h^2 |f'''| and rounding
        # eps |ELBO| / h, about 1e-7 relative to the gradient's scale here.
        scale = np.abs(numeric).max()
        np.testing.assert_allclose(getattr(grad, name), numeric, atol=1e-6 * scale)


def test_elbo_matches_monte_carlo():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 4))
    vae = random_vae(rng)
    means, variances = lv.encode(X, vae)
    z = means + np.sqrt(variances) * rng.normal(size=(4000, *means.shape))
    residual = X - z @ vae.W.T - vae.mean
    log_lik = -0.5 * (
        4 * np.log(2 * np.pi * vae.noise_variance)
        + (residual**2).sum(axis=-1) / vae.noise_variance
    )
    per_draw = log_lik.sum(axis=1)  # one Monte Carlo draw of the summed term
    estimate = per_draw.mean() - gaussian_kl(means, variances, 0.0, 1.0)
    standard_error = per_draw.std(ddof=1) / np.sqrt(per_draw.size)
    assert abs(lv.elbo(X, vae) - estimate) < 4 * standard_error


def test_elbo_is_log_likelihood_at_the_exact_posterior():
    # The ML solution has W^T W diagonal, so the best diagonal encoder is the
    # exact posterior and the bound is tight.
    theta = ml_solution(IRIS, 2)
    vae = lv.best_encoder(theta)
    means, cov = ppca.posterior(IRIS, theta)
    np.testing.assert_allclose(lv.encode(IRIS, vae)[0], means, rtol=1e-12)
    np.testing.assert_allclose(vae.encoder_variance, np.diag(cov), rtol=1e-13)
    assert lv.elbo(IRIS, vae) == pytest.approx(
        ppca.log_likelihood(IRIS, theta), rel=1e-13
    )


def test_gap_is_the_kl_to_the_posterior():
    rng = np.random.default_rng(2)
    theta = ml_solution(IRIS, 2)
    exact = lv.best_encoder(theta)
    vae = replaced(
        replaced(exact, "V", exact.V + 0.1 * rng.normal(size=(2, 4))),
        "encoder_variance",
        exact.encoder_variance * np.array([0.5, 3.0]),
    )
    post_means, post_cov = ppca.posterior(IRIS, theta)
    means, variances = lv.encode(IRIS, vae)
    kl = gaussian_kl(means, variances, post_means, np.diag(post_cov))
    gap = ppca.log_likelihood(IRIS, theta) - lv.elbo(IRIS, vae)
    assert gap == pytest.approx(kl, rel=1e-10)


def test_best_encoder_is_stationary_and_leaves_a_gap_off_diagonal():
    rng = np.random.default_rng(3)
    theta = ppca.PPCA(rng.normal(size=(4, 2)), rng.normal(size=4), 0.5)
    vae = lv.best_encoder(theta)
    grad = lv.elbo_gradient(IRIS, vae)
    # The decoder's gradient (about 3e3 here) sets the scale; the encoder's
    # is rounding, measured below 3e-12.
    scale = np.abs(grad.W).max()
    assert scale > 1e3
    for name in ("V", "b", "encoder_variance"):
        np.testing.assert_allclose(getattr(grad, name), 0.0, atol=1e-14 * scale)
    # W^T W is not diagonal: no diagonal Gaussian is the posterior. The gap is
    # then (N/2)(sum_k log M_kk - log det M) > 0 (Hadamard's inequality).
    m = theta.W.T @ theta.W + 0.5 * np.eye(2)
    want = 0.5 * len(IRIS) * (np.log(np.diag(m)).sum() - np.linalg.slogdet(m)[1])
    gap = ppca.log_likelihood(IRIS, theta) - lv.elbo(IRIS, vae)
    assert want > 1
    assert gap == pytest.approx(want, rel=1e-10)


def test_fit_climbs_and_reaches_the_ppca_maximum():
    fit = lv.fit(IRIS, 2, tol=0, max_iter=400)
    assert fit.n_iter == 400
    assert not fit.converged
    assert np.all(np.diff(fit.elbos) >= 0)
    # The default start is the exact posterior: the bound starts tight.
    assert fit.elbos[0] == pytest.approx(fit.log_likelihoods[0], rel=1e-13)
    slack = 1e-13 * np.abs(fit.log_likelihoods)
    assert np.all(fit.log_likelihoods - fit.elbos >= -slack)
    # Linear convergence: after 400 steps log P is within 2e-7 relative of
    # its maximum (measured), and the gap has closed as far.
    best = ppca.log_likelihood(IRIS, ml_solution(IRIS, 2))
    assert fit.log_likelihoods[-1] == pytest.approx(best, rel=1e-6)
    assert fit.elbos[-1] == pytest.approx(best, rel=1e-6)


def test_fit_stays_at_the_maximum():
    start = lv.best_encoder(ml_solution(IRIS, 2))
    fit = lv.fit(IRIS, start, tol=0, max_iter=5)
    np.testing.assert_allclose(
        fit.vae.decoder.covariance(), start.decoder.covariance(), atol=1e-13
    )
    assert fit.elbos[-1] == pytest.approx(fit.elbos[0], rel=1e-14)


def test_stopping_rule():
    fit = lv.fit(IRIS, 1)
    assert fit.converged
    assert fit.elbos[-1] - fit.elbos[-2] < 1e-10 * len(IRIS)
    # The documented start: fit is deterministic given its start, so one step
    # from each, equal bit for bit, shows that fit(X, q) starts there.
    by_q = lv.fit(IRIS, 1, tol=0, max_iter=1)
    documented = lv.best_encoder(ppca.initial_theta(IRIS, 1))
    again = lv.fit(IRIS, documented, tol=0, max_iter=1)
    np.testing.assert_array_equal(again.elbos, by_q.elbos)
    assert by_q.elbos[0] == fit.elbos[0]
    for name in NAMES:
        np.testing.assert_array_equal(getattr(again.vae, name), getattr(by_q.vae, name))


def test_immutable_and_arguments_untouched():
    rng = np.random.default_rng(4)
    arrays = [rng.normal(size=(4, 2)), np.zeros(4), 1.0, np.ones((2, 4)), np.zeros(2)]
    s2 = np.ones(2)
    copies = [np.copy(a) for a in [*arrays, s2]]
    vae = LinearVAE(*arrays, s2)
    X = IRIS.copy()
    lv.elbo(X, vae), lv.elbo_gradient(X, vae), lv.encode(X, vae)
    lv.fit(X, vae, tol=0, max_iter=3)
    np.testing.assert_array_equal(X, IRIS)
    for a, c in zip([*arrays, s2], copies, strict=True):
        np.testing.assert_array_equal(a, c)
    with pytest.raises(dataclasses.FrozenInstanceError):
        vae.noise_variance = 2.0
    with pytest.raises(ValueError, match="read-only"):
        vae.V[0, 0] = 3.0


GOOD = dict(
    W=np.ones((3, 1)),
    mean=np.zeros(3),
    noise_variance=1.0,
    V=np.ones((1, 3)),
    b=np.zeros(1),
    encoder_variance=np.ones(1),
)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: LinearVAE(**{**GOOD, "V": np.ones((3, 1))}), ValueError, "V must"),
        (lambda: LinearVAE(**{**GOOD, "b": np.zeros(3)}), ValueError, "b must"),
        (
            lambda: LinearVAE(**{**GOOD, "encoder_variance": [0.0]}),
            ValueError,
            "encoder_variance must hold variances > 0",
        ),
        (lambda: LinearVAE(**{**GOOD, "noise_variance": -1.0}), ValueError, "> 0"),
        (lambda: LinearVAE(**{**GOOD, "V": [["a", "b", "c"]]}), TypeError, "V must"),
        (lambda: lv.elbo(IRIS, LinearVAE(**GOOD)), ValueError, "D = 4 columns"),
        (lambda: lv.elbo(IRIS, ppca.initial_theta(IRIS, 1)), TypeError, "LinearVAE"),
        (lambda: lv.best_encoder(LinearVAE(**GOOD)), TypeError, "emlib.ppca.PPCA"),
        (lambda: lv.fit(IRIS, 4), ValueError, "init must satisfy 1 <= q < D = 4"),
        (lambda: lv.fit(IRIS, 1.5), TypeError, "init must be .*LinearVAE.* or a"),
        (lambda: lv.fit(IRIS, 1, max_iter=0), ValueError, "max_iter must be >= 1"),
        (
            lambda: lv.fit(np.c_[IRIS, IRIS[:, 0] + IRIS[:, 1]], 2),
            ValueError,
            "sample covariance is singular",
        ),
        (
            lambda: lv.fit(IRIS[:, :3], lv.best_encoder(ml_solution(IRIS, 2))),
            ValueError,
            r"init.W has shape \(4, 2\); with D = 3 it must be \(3, q\)",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_fit_recovers_from_extreme_variances_without_warnings():
    # Variances far from their block maxima: the log-ratio steps land on
    # them in one move instead of overflowing exp (pytest turns warnings
    # into errors), and the fit still reaches the maximum.
    start = lv.best_encoder(ppca.initial_theta(IRIS, 2))
    start = dataclasses.replace(
        start, noise_variance=1e-8, encoder_variance=[1e-200, 1e100]
    )
    fit = lv.fit(IRIS, start, tol=0, max_iter=400)
    assert np.all(np.isfinite(fit.elbos))
    assert np.all(np.diff(fit.elbos) >= -1e-13 * np.abs(fit.elbos[1:]))
    best = ppca.log_likelihood(IRIS, ml_solution(IRIS, 2))
    assert fit.elbos[-1] == pytest.approx(best, rel=1e-6)
