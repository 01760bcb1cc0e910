"""emlib.vae: gradients against central finite differences, log-weights
against PPCA's exact log-likelihood, the IWAE bound against logsumexp, and
bad inputs."""

import numpy as np
import pytest
from scipy import special

from emlib import neural, ppca
from emlib import vae as nvae

RNG = np.random.default_rng(0)
X = RNG.uniform(size=(6, 5))


def small_vae(hidden=(4,)):
    model = nvae.init_vae(5, 2, hidden, np.random.default_rng(1))
    return nvae.VAE(model.encoder, model.decoder, np.array(-0.5))


def central_difference(f, array, h=1e-6):
    slope = np.empty_like(array)
    for idx in np.ndindex(array.shape):
        keep = array[idx]
        array[idx] = keep + h
        up = f()
        array[idx] = keep - h
        down = f()
        array[idx] = keep
        slope[idx] = (up - down) / (2 * h)
    return slope


def test_elbo_gradient_matches_finite_differences_for_every_parameter():
    model, eps = small_vae(), RNG.normal(size=(6, 2))
    _, grad = nvae.elbo_and_gradient(model, X, eps)
    params = [*neural.to_arrays(model.encoder, model.decoder), model.log_noise_variance]
    grads = [*neural.to_arrays(grad.encoder, grad.decoder), grad.log_noise_variance]
    for array, g in zip(params, grads, strict=True):
        slope = central_difference(
            lambda: nvae.elbo_and_gradient(model, X, eps)[0], array
        )
        assert np.allclose(g, slope, rtol=1e-6, atol=1e-8)  # measured ~1e-9


def test_local_gradient_matches_finite_differences():
    model, eps = small_vae(), RNG.normal(size=(6, 2))
    means, log_vars = RNG.normal(size=(6, 2)), RNG.normal(size=(6, 2)) - 1
    _, d_means, d_log_vars = nvae.local_elbo_and_gradient(
        model, X, means, log_vars, eps
    )
    for array, g in ((means, d_means), (log_vars, d_log_vars)):
        slope = central_difference(
            lambda: nvae.local_elbo_and_gradient(model, X, means, log_vars, eps)[0],
            array,
        )
        assert np.allclose(g, slope, rtol=1e-6, atol=1e-8)


def exact_posterior_vae(theta):
    """A linear VAE whose decoder is theta and whose encoder is its posterior.

    theta's W has orthogonal columns, so the posterior covariance
    sigma^2 (W^T W + sigma^2 I)^-1 is diagonal and constant: the encoder's
    log-variance layer has zero weights and that log-variance as bias.
    """
    W, mean, s2 = theta.W, theta.mean, theta.noise_variance
    m = W.T @ W + s2 * np.eye(W.shape[1])
    V = np.linalg.solve(m, W.T)  # posterior mean = V (x - mean)
    log_var = np.log(s2 / np.diag(m))
    enc_w = np.hstack([V.T, np.zeros_like(V.T)])
    enc_b = np.concatenate([-V @ mean, log_var])
    encoder = neural.MLP((enc_w,), (enc_b,))
    decoder = neural.MLP((W.T.copy(),), (mean.copy(),))
    return nvae.VAE(encoder, decoder, np.array(np.log(s2)))


def test_log_weights_of_the_exact_posterior_are_log_p():
    # With q(z | x) the exact posterior, every weight p(x, z) / q(z | x) is p(x).
    q, _ = np.linalg.qr(RNG.normal(size=(5, 2)))
    theta = ppca.PPCA(q * [2.0, 0.7], RNG.normal(size=5), 0.3)
    log_w = nvae.log_weights(exact_posterior_vae(theta), X, RNG.normal(size=(6, 7, 2)))
    exact = [ppca.log_likelihood(x[None, :], theta) for x in X]
    assert np.allclose(log_w, np.array(exact)[:, None], rtol=1e-12, atol=1e-12)


def test_iwae_bound_is_log_mean_exp_without_overflow():
    log_w = RNG.normal(size=(4, 9)) * 50 + 800  # exp would overflow
    want = special.logsumexp(log_w, axis=1) - np.log(9)
    assert np.allclose(nvae.iwae_bound(log_w), want, rtol=1e-14)


def test_fit_raises_the_elbo():
    fit = nvae.fit(X, small_vae(), np.random.default_rng(2), n_iter=200, batch_size=6)
    assert fit.elbos[-20:].mean() > fit.elbos[:20].mean() + 1


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: nvae.encode(small_vae(), np.ones((3, 4))), ValueError, r"\(N, 5\)"),
        (lambda: nvae.encode("vae", X), TypeError, "VAE"),
        (
            lambda: nvae.elbo_and_gradient(small_vae(), X, np.ones((6, 3))),
            ValueError,
            "eps must have shape",
        ),
        (
            lambda: nvae.log_weights(small_vae(), X, np.ones((6, 2))),
            ValueError,
            r"\(N, k, q\)",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_elbo_estimate_averages_to_log_p_at_the_exact_posterior():
    # The analytic-KL estimate is unbiased for the ELBO, which equals log p(x)
    # when q is the posterior: a Monte Carlo check of the ELBO's value (the
    # finite-difference tests check only its derivatives).
    q, _ = np.linalg.qr(RNG.normal(size=(5, 2)))
    theta = ppca.PPCA(q * [2.0, 0.7], RNG.normal(size=5), 0.3)
    model, x = exact_posterior_vae(theta), np.tile(X[:1], (20000, 1))
    eps = np.random.default_rng(3).normal(size=(20000, 2))
    enc = nvae.encode(model, x)
    z = enc[0] + np.exp(enc[1] / 2) * eps
    log_lik = -0.5 * (
        5 * np.log(2 * np.pi * 0.3) + ((x - nvae.decode(model, z)) ** 2).sum(1) / 0.3
    )
    se = log_lik.std(ddof=1) / np.sqrt(20000)
    elbo = nvae.elbo_and_gradient(model, x, eps)[0]
    assert abs(elbo - ppca.log_likelihood(X[:1], theta)) < 4 * se  # a regression pin
