"""No function loads a Dask array silently (issues 19 and 22).

np.array on a Dask array computes all of it in memory. Every public function
that takes data must refuse one with a TypeError that names emlib.em, the
first of the functions that fit Dask arrays chunk by chunk (emlib.em,
multivariate.em and ppca.em: tests/test_dask.py). Each case below passes a
Dask array of valid data (computed, it would be accepted), so the refusal is
about the type, not the values.
"""

import numpy as np
import pytest

import emlib
from emlib import diffusion, hmm, linear_vae, multivariate, ppca, three_coins

da = pytest.importorskip("dask.array")

RNG = np.random.default_rng(0)
Y = RNG.normal(size=20)
X = RNG.normal(size=(20, 3))
GAMMA = np.full((20, 2), 0.5)
THETA = emlib.GMM([0.5, 0.5], [-1.0, 1.0], [1.0, 1.0])
MV_THETA = multivariate.initial_theta(X, 2, random_state=0)
PPCA = ppca.initial_theta(X, 1)
VAE = linear_vae.best_encoder(PPCA)
TOSSES = (RNG.random(20) < 0.5).astype(float)
COINS = three_coins.ThreeCoins(0.4, 0.6, 0.7)
SEQ = RNG.integers(0, 2, 20)
HMM = hmm.HMM([0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]], [[0.7, 0.3], [0.1, 0.9]])
SCHEDULE = diffusion.NoiseSchedule.linear(30)
INCREMENTAL = emlib.incremental_em_start(Y, THETA, 2)


def lazy(a):
    return da.from_array(a, chunks=5)


# (name, call taking a converter applied to one data argument). The fits run
# one iteration: that the in-memory call is accepted needs no more.
CASES = [
    ("emlib.initial_theta", lambda d: emlib.initial_theta(d(Y), 2)),
    ("emlib.log_likelihood", lambda d: emlib.log_likelihood(d(Y), THETA)),
    ("emlib.e_step", lambda d: emlib.e_step(d(Y), THETA)),
    ("emlib.m_step y", lambda d: emlib.m_step(d(Y), GAMMA)),
    ("emlib.m_step gamma", lambda d: emlib.m_step(Y, d(GAMMA))),
    ("emlib.q_function", lambda d: emlib.q_function(d(Y), GAMMA, THETA)),
    ("emlib.entropy", lambda d: emlib.entropy(d(GAMMA))),
    ("emlib.kl_divergence", lambda d: emlib.kl_divergence(d(GAMMA), GAMMA)),
    ("emlib.elbo", lambda d: emlib.elbo(d(Y), GAMMA, THETA)),
    ("emlib.observed_information", lambda d: emlib.observed_information(d(Y), THETA)),
    (
        "emlib.conditional_m_step",
        lambda d: emlib.conditional_m_step(d(Y), GAMMA, THETA, "means"),
    ),
    (
        "emlib.incremental_em_start",
        lambda d: emlib.incremental_em_start(d(Y), THETA, 2),
    ),
    (
        "emlib.incremental_em_step",
        lambda d: emlib.incremental_em_step(d(Y), INCREMENTAL, 0),
    ),
    ("emlib.gaussian_kl", lambda d: emlib.gaussian_kl(d(Y), 1.0, 0.0, 1.0)),
    ("multivariate.initial_theta", lambda d: multivariate.initial_theta(d(X), 2)),
    (
        "multivariate.log_likelihood",
        lambda d: multivariate.log_likelihood(d(X), MV_THETA),
    ),
    ("multivariate.e_step", lambda d: multivariate.e_step(d(X), MV_THETA)),
    ("multivariate.m_step", lambda d: multivariate.m_step(d(X), GAMMA)),
    ("ppca.initial_theta", lambda d: ppca.initial_theta(d(X), 1)),
    ("ppca.log_likelihood", lambda d: ppca.log_likelihood(d(X), PPCA)),
    ("ppca.posterior", lambda d: ppca.posterior(d(X), PPCA)),
    ("linear_vae.fit", lambda d: linear_vae.fit(d(X), 1, tol=0, max_iter=1)),
    ("linear_vae.elbo", lambda d: linear_vae.elbo(d(X), VAE)),
    ("linear_vae.elbo_gradient", lambda d: linear_vae.elbo_gradient(d(X), VAE)),
    ("linear_vae.encode", lambda d: linear_vae.encode(d(X), VAE)),
    ("hmm.log_likelihood", lambda d: hmm.log_likelihood(d(SEQ), HMM)),
    ("hmm.log_likelihood list", lambda d: hmm.log_likelihood([d(SEQ), SEQ], HMM)),
    ("hmm.posteriors", lambda d: hmm.posteriors(d(SEQ), HMM)),
    ("hmm.viterbi", lambda d: hmm.viterbi(d(SEQ), HMM)),
    ("hmm.baum_welch", lambda d: hmm.baum_welch(d(SEQ), HMM, tol=0, max_iter=1)),
    ("three_coins.em", lambda d: three_coins.em(d(TOSSES), COINS)),
    (
        "three_coins.log_likelihood",
        lambda d: three_coins.log_likelihood(d(TOSSES), COINS),
    ),
    ("three_coins.e_step", lambda d: three_coins.e_step(d(TOSSES), COINS)),
    ("three_coins.m_step", lambda d: three_coins.m_step(d(TOSSES), np.full(20, 0.5))),
    (
        "diffusion.forward_posterior",
        lambda d: diffusion.forward_posterior(d(Y), Y, SCHEDULE, 3),
    ),
    (
        "diffusion.denoising_posterior",
        lambda d: diffusion.denoising_posterior(d(Y), THETA, 0.5),
    ),
    (
        "diffusion.optimal_denoiser",
        lambda d: diffusion.optimal_denoiser(d(Y), THETA, 0.5),
    ),
]


@pytest.mark.parametrize(("name", "call"), CASES, ids=[c[0] for c in CASES])
def test_dask_array_is_refused_naming_emlib_em(name, call):
    call(lambda a: a)  # valid data in memory: accepted
    with pytest.raises(TypeError, match=r"is a Dask array.*only emlib\.em"):
        call(lazy)


def test_emlib_em_still_fits_dask_arrays():
    fit = emlib.em(lazy(Y), THETA, tol=0, max_iter=2)
    want = emlib.em(Y, THETA, tol=0, max_iter=2)
    np.testing.assert_allclose(fit.log_likelihoods, want.log_likelihoods, rtol=1e-12)
