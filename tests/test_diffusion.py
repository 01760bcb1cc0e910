"""emlib.diffusion against independent references: quadrature, Gaussian
conditioning, a case where the model is exact, and bad inputs."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

import emlib
from emlib import diffusion, neural
from emlib.diffusion import NoiseSchedule

THETA = emlib.GMM([0.3, 0.5, 0.2], [-1.5, 0.2, 1.8], [0.05, 0.3, 0.1])
STANDARD = emlib.GMM([1.0], [0.0], [1.0])  # q(x_t) = N(0, 1) for every t


def mixture_cdf(theta):
    sd = np.sqrt(theta.variances)
    return lambda x: stats.norm.cdf((x[:, None] - theta.means) / sd) @ theta.weights


def normal_pdf(x, mean, sd):
    # math, not scipy.stats: quad calls it thousands of times.
    return math.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def mixture_pdf(theta, x):
    components = zip(theta.weights, theta.means, np.sqrt(theta.variances), strict=True)
    return sum(w * normal_pdf(x, m, sd) for w, m, sd in components)


def by_quad(f):
    return integrate.quad(f, -12, 12, epsabs=0, epsrel=1e-12, limit=400)[0]


# ---------------------------------------------------------------------------
# The schedule
# ---------------------------------------------------------------------------


def rescaled_ho_betas(n_steps):
    """beta_t from 1e-4 to 0.02 in 1000 steps (Ho et al.), times 1000 / T."""
    scale = 1000 / n_steps
    return [scale * (1e-4 + (0.02 - 1e-4) * i / (n_steps - 1)) for i in range(n_steps)]


@pytest.mark.parametrize("n_steps", [1000, 100, 21])
def test_linear_schedule_is_ho_et_al_rescaled(n_steps):
    schedule = NoiseSchedule.linear(n_steps)
    want = rescaled_ho_betas(n_steps)
    np.testing.assert_allclose(schedule.betas, want, rtol=1e-13)
    # abar_T as a sum of logs, independently of the cumulative product.
    abar_T = math.exp(sum(math.log1p(-beta) for beta in want))
    assert schedule.alpha_bars[-1] == pytest.approx(abar_T, rel=1e-12)


def test_alpha_bars_and_posterior_variances():
    schedule = NoiseSchedule([0.1, 0.2, 0.3])
    np.testing.assert_allclose(
        schedule.alpha_bars, [0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.7], rtol=1e-15
    )
    bars = [1.0, 0.9, 0.72, 0.504]  # abar_0 .. abar_3
    want = [
        (1 - bars[t - 1]) / (1 - bars[t]) * [0.1, 0.2, 0.3][t - 1] for t in (1, 2, 3)
    ]
    np.testing.assert_allclose(schedule.posterior_variances, want, rtol=1e-14)
    assert schedule.posterior_variances[0] == 0.0


def test_schedule_is_immutable_and_copies_its_input():
    betas = np.array([0.1, 0.2])
    schedule = NoiseSchedule(betas)
    betas[0] = 0.5
    assert schedule.betas[0] == 0.1
    with pytest.raises(ValueError, match="read-only"):
        schedule.betas[0] = 0.3


# ---------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------


def test_forward_posterior_is_gaussian_conditioning():
    # (x_{t-1}, x_t) given x_0 is jointly Gaussian: condition on x_t directly.
    schedule = NoiseSchedule.linear(50)
    t = 7
    bar_prev, alpha = schedule.alpha_bars[t - 2], schedule.alphas[t - 1]
    x_0, x_t = np.array([0.3, -1.2]), np.array([1.1, 0.4])
    var_prev = 1 - bar_prev
    cov, var_t = math.sqrt(alpha) * var_prev, alpha * var_prev + (1 - alpha)
    mean_t = math.sqrt(alpha * bar_prev) * x_0
    want_mean = math.sqrt(bar_prev) * x_0 + cov / var_t * (x_t - mean_t)
    got = diffusion.forward_posterior(x_0, x_t, schedule, t)
    np.testing.assert_allclose(got.mean, want_mean, rtol=1e-13)
    assert got.variance == pytest.approx(var_prev - cov**2 / var_t, rel=1e-13)


def test_forward_posterior_at_t_1_is_x_0():
    schedule = NoiseSchedule.linear(50)
    got = diffusion.forward_posterior([0.5, -2.0], [1.0, 1.0], schedule, 1)
    np.testing.assert_allclose(got.mean, [0.5, -2.0], rtol=1e-15)
    assert got.variance == 0.0


@pytest.mark.parametrize("alpha_bar", [0.97, 0.4, 1e-3])
def test_noised_mixture_is_the_convolution(alpha_bar):
    noised = diffusion.noised_mixture(THETA, alpha_bar)
    for x in (-2.0, 0.1, 1.7):
        want = by_quad(
            lambda x0, x=x: (
                normal_pdf(x, math.sqrt(alpha_bar) * x0, math.sqrt(1 - alpha_bar))
                * mixture_pdf(THETA, x0)
            )
        )
        assert mixture_pdf(noised, x) == pytest.approx(want, rel=1e-9)


def test_noised_mixture_at_alpha_bar_1_is_theta():
    same = diffusion.noised_mixture(THETA, 1.0)
    for name in ("weights", "means", "variances"):
        np.testing.assert_array_equal(getattr(same, name), getattr(THETA, name))


@pytest.mark.parametrize("alpha_bar", [0.99, 0.5])
def test_denoising_posterior_moments_match_quadrature(alpha_bar):
    x_t = np.array([-1.3, 0.0, 0.9])
    post = diffusion.denoising_posterior(x_t, THETA, alpha_bar)
    mean, variance = post.mean(), post.variance()
    np.testing.assert_array_equal(
        diffusion.optimal_denoiser(x_t, THETA, alpha_bar), mean
    )
    for j, x in enumerate(x_t):

        def joint(x0, x=x):
            forward = normal_pdf(x, math.sqrt(alpha_bar) * x0, math.sqrt(1 - alpha_bar))
            return forward * mixture_pdf(THETA, x0)

        z = by_quad(joint)
        m1 = by_quad(lambda x0, joint=joint: x0 * joint(x0)) / z
        m2 = by_quad(lambda x0, joint=joint, m1=m1: (x0 - m1) ** 2 * joint(x0)) / z
        assert mean[j] == pytest.approx(m1, rel=1e-9, abs=1e-12)
        assert variance[j] == pytest.approx(m2, rel=1e-9)
    np.testing.assert_allclose(post.weights.sum(axis=1), 1.0, rtol=1e-15)


def test_denoising_posterior_does_not_modify_its_input():
    x_t = np.array([0.5, -0.5])
    diffusion.denoising_posterior(x_t, THETA, 0.5)
    np.testing.assert_array_equal(x_t, [0.5, -0.5])


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule", [NoiseSchedule.linear(40), NoiseSchedule([0.3, 0.5, 0.9])]
)
def test_exact_reverse_sampling_reproduces_the_mixture(schedule):
    # Exact for every schedule; with fixed seeds the p-values are fixed too.
    x = diffusion.exact_reverse_sample(THETA, schedule, 3000, np.random.default_rng(1))
    assert stats.kstest(x, mixture_cdf(THETA)).pvalue > 0.01


def test_sampling_is_reproducible_from_the_seed():
    schedule = NoiseSchedule.linear(30)
    runs = [
        diffusion.ddpm_sample(
            THETA, schedule, schedule.betas, 50, np.random.default_rng(3)
        )
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*runs)


def test_ddpm_is_exact_for_standard_normal_data():
    # For x_0 ~ N(0, 1), q(x_T) = N(0, 1) = p(x_T), and q(x_{t-1} | x_t) =
    # N(sqrt(alpha_t) x_t, beta_t) is exactly the model's step with
    # sigma_t^2 = beta_t: the samples are N(0, 1) and the ELBO is tight.
    schedule = NoiseSchedule.linear(40)
    x = diffusion.ddpm_sample(
        STANDARD, schedule, schedule.betas, 3000, np.random.default_rng(4)
    )
    assert stats.kstest(x, "norm").pvalue > 0.01
    bound = diffusion.ddpm_bound(STANDARD, schedule, schedule.betas)
    entropy = 0.5 * math.log(2 * math.pi * math.e)
    assert bound.elbo == pytest.approx(-entropy, rel=1e-12)
    assert diffusion.mixture_entropy(STANDARD) == pytest.approx(entropy, rel=1e-13)


# ---------------------------------------------------------------------------
# Quadrature and the bound
# ---------------------------------------------------------------------------


def test_mixture_expectation_of_polynomials():
    second = float(THETA.weights @ (THETA.means**2 + THETA.variances))
    assert diffusion.mixture_expectation(lambda x: x**2, THETA) == pytest.approx(
        second, rel=1e-14
    )
    assert diffusion.mixture_expectation(np.ones_like, THETA) == pytest.approx(
        1.0, rel=1e-14
    )


def test_entropy_and_denoising_mse_match_adaptive_quadrature():
    entropy = by_quad(
        lambda x: -mixture_pdf(THETA, x) * math.log(mixture_pdf(THETA, x))
    )
    assert diffusion.mixture_entropy(THETA) == pytest.approx(entropy, rel=1e-10)
    noised = diffusion.noised_mixture(THETA, 0.8)

    def weighted_variance(x):
        variance = diffusion.denoising_posterior([x], THETA, 0.8).variance()[0]
        return mixture_pdf(noised, x) * variance

    want = by_quad(weighted_variance)
    assert diffusion.denoising_mse(THETA, 0.8) == pytest.approx(want, rel=1e-10)


def test_bound_terms_by_monte_carlo_and_the_gap_is_positive():
    schedule = NoiseSchedule.linear(30)
    bound = diffusion.ddpm_bound(THETA, schedule, schedule.betas)
    rng = np.random.default_rng(5)
    k = rng.choice(3, size=20000, p=THETA.weights)
    x_0 = rng.normal(THETA.means[k], np.sqrt(THETA.variances[k]))
    t = 5
    bar = schedule.alpha_bars[t - 1]
    x_t = math.sqrt(bar) * x_0 + math.sqrt(1 - bar) * rng.standard_normal(x_0.size)
    q = diffusion.forward_posterior(x_0, x_t, schedule, t)
    x0_hat = diffusion.optimal_denoiser(x_t, THETA, bar)
    p_mean = diffusion.forward_posterior(x0_hat, x_t, schedule, t).mean
    r = q.variance / schedule.betas[t - 1]
    per_draw = 0.5 * (
        (q.mean - p_mean) ** 2 / schedule.betas[t - 1] + r - 1 - math.log(r)
    )
    se = per_draw.std(ddof=1) / math.sqrt(per_draw.size)
    assert abs(per_draw.mean() - bound.transitions[t - 2]) < 4 * se
    squared_error = (x_0 - x0_hat) ** 2  # the mse_t the bound was computed from
    se = squared_error.std(ddof=1) / math.sqrt(squared_error.size)
    assert abs(squared_error.mean() - bound.mse[t - 1]) < 4 * se
    assert -diffusion.mixture_entropy(THETA) - bound.elbo > 0.01


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: NoiseSchedule([0.1, 1.0]), ValueError, "lie in \\(0, 1\\)"),
        (lambda: NoiseSchedule([[0.1]]), ValueError, "must be 1-D"),
        (lambda: NoiseSchedule(["a"]), TypeError, "real numbers"),
        (lambda: NoiseSchedule.linear(20), ValueError, "n_steps must be >= 21"),
        (lambda: NoiseSchedule.linear(50.0), TypeError, "must be an int"),
        (lambda: diffusion.noised_mixture(THETA, 0.0), ValueError, "\\(0, 1\\]"),
        (lambda: diffusion.noised_mixture(THETA, True), TypeError, "real number"),
        (lambda: diffusion.noised_mixture("theta", 0.5), TypeError, "emlib.GMM"),
        (lambda: diffusion.optimal_denoiser([np.nan], THETA, 0.5), ValueError, "NaN"),
        (
            lambda: diffusion.forward_posterior(
                [1.0], [1.0, 2.0], NoiseSchedule.linear(30), 2
            ),
            ValueError,
            "paired",
        ),
        (
            lambda: diffusion.forward_posterior(
                [1.0], [1.0], NoiseSchedule.linear(30), 31
            ),
            ValueError,
            "1 <= t <= T = 30",
        ),
        (
            lambda: diffusion.exact_reverse_sample(
                THETA, NoiseSchedule.linear(30), 10, 3
            ),
            TypeError,
            "numpy Generator",
        ),
        (
            lambda: diffusion.exact_reverse_sample(
                THETA, NoiseSchedule.linear(30), 0, np.random.default_rng()
            ),
            ValueError,
            "n_samples must be >= 1",
        ),
        (
            lambda: diffusion.ddpm_sample(
                THETA, NoiseSchedule.linear(30), np.ones(29), 5, np.random.default_rng()
            ),
            ValueError,
            "one sigma_t\\^2 per step",
        ),
        (
            lambda: diffusion.ddpm_bound(THETA, NoiseSchedule.linear(30), np.zeros(30)),
            ValueError,
            "must be > 0",
        ),
        (
            lambda: diffusion.ddpm_bound(THETA, [0.1, 0.2], np.ones(2)),
            TypeError,
            "NoiseSchedule",
        ),
        (
            lambda: diffusion.ddpm_bound(THETA, NoiseSchedule([0.1]), np.ones(1)),
            ValueError,
            "T >= 2",
        ),
        (
            lambda: diffusion.mixture_expectation(np.sin, THETA, 1),
            ValueError,
            "between 2 and 1000",
        ),
        (
            lambda: diffusion.mixture_expectation(
                np.sin, emlib.GMM([0.5, 0.5], [0.0, 0.0], [1e-10, 1.0]), 1000
            ),
            ValueError,
            "would need",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------------
# Any denoiser: sampling, its error, the empirical and the learned denoisers
# ---------------------------------------------------------------------------


def test_sample_reverse_with_the_optimal_denoiser_is_ddpm_sample():
    schedule = NoiseSchedule.linear(30)
    bars = schedule.alpha_bars

    def denoiser(x, t):
        return diffusion.optimal_denoiser(x, THETA, bars[t - 1])

    rngs = np.random.default_rng(5), np.random.default_rng(5)
    got = diffusion.sample_reverse(denoiser, schedule, schedule.betas, 50, rngs[0])
    want = diffusion.ddpm_sample(THETA, schedule, schedule.betas, 50, rngs[1])
    assert np.array_equal(got, want)


@pytest.mark.parametrize("alpha_bar", [0.99, 0.5, 0.01])
def test_mse_of_a_constant_denoiser_is_the_second_moment_about_it(alpha_bar):
    # D(x_t) = c ignores x_t: E(x_0 - c)^2 = Var x_0 + (E x_0 - c)^2 exactly,
    # whatever alpha_bar; the excess decomposition must reproduce it.
    c = 0.7
    mean = THETA.weights @ THETA.means
    second = THETA.weights @ (THETA.means**2 + THETA.variances)
    got = diffusion.denoising_mse(
        THETA, alpha_bar, denoiser=lambda x: np.full_like(x, c)
    )
    assert np.isclose(got, second - 2 * c * mean + c**2, rtol=1e-12)


def test_empirical_denoiser_is_a_softmax_average_and_memorises():
    data = np.array([-1.0, 0.2, 0.25, 2.0])
    x = np.array([-3.0, 0.0, 0.21, 1.0])
    for level in (0.3, 0.9):
        logits = -((x[:, None] - np.sqrt(level) * data) ** 2) / (2 * (1 - level))
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        want = weights @ data / weights.sum(axis=1)
        got = diffusion.empirical_denoiser(x, data, level)
        assert np.allclose(got, want, rtol=1e-13, atol=1e-15)
    nearest = data[np.argmin(np.abs(x[:, None] - data), axis=1)]
    assert np.allclose(diffusion.empirical_denoiser(x, data, 1 - 1e-9), nearest)


def test_noise_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    schedule = NoiseSchedule.linear(30)
    net = neural.init_mlp((2, 6, 1), rng)
    batch = (rng.normal(size=9), rng.integers(1, 31, size=9), rng.normal(size=9))
    loss, grads = diffusion.noise_loss(diffusion.NoisePredictor(net, schedule), *batch)
    for array, grad in zip(neural.to_arrays(net), neural.to_arrays(grads), strict=True):
        slope = np.empty_like(array)
        for idx in np.ndindex(array.shape):
            keep, moved = array[idx], []
            for step in (1e-6, -1e-6):
                array[idx] = keep + step
                moved.append(
                    diffusion.noise_loss(
                        diffusion.NoisePredictor(net, schedule), *batch
                    )[0]
                )
            array[idx] = keep
            slope[idx] = (moved[0] - moved[1]) / 2e-6
        assert np.allclose(grad, slope, rtol=1e-7, atol=1e-9)
    # the loss itself, written out from x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps
    bars = schedule.alpha_bars[batch[1] - 1]
    x_t = np.sqrt(bars) * batch[0] + np.sqrt(1 - bars) * batch[2]
    predictor = diffusion.NoisePredictor(net, schedule)
    assert np.isclose(
        loss, np.mean((batch[2] - predictor.predict_noise(x_t, batch[1])) ** 2)
    )


def test_learned_denoise_inverts_the_noise_prediction():
    schedule = NoiseSchedule.linear(30)
    predictor = diffusion.NoisePredictor(
        neural.init_mlp((2, 4, 1), np.random.default_rng(4)), schedule
    )
    x_t, t = np.linspace(-2, 2, 5), 7
    level = schedule.alpha_bars[t - 1]
    eps_hat = predictor.predict_noise(x_t, t)
    x0_hat = predictor.denoise(x_t, t)
    assert np.allclose(
        np.sqrt(level) * x0_hat + np.sqrt(1 - level) * eps_hat, x_t, rtol=1e-13
    )


def test_training_lowers_the_loss():
    rng = np.random.default_rng(6)
    data = np.concatenate([rng.normal(-1, 0.2, 100), rng.normal(1, 0.2, 100)])
    fit = diffusion.fit_noise_predictor(
        data, NoiseSchedule.linear(30), np.random.default_rng(7), (8,), n_iter=300
    )
    assert fit.losses[-50:].mean() < 0.9 * fit.losses[:50].mean()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: diffusion.empirical_denoiser([0.0], [1.0, 2.0], 1.0),
            ValueError,
            "< 1",
        ),
        (
            lambda: diffusion.NoisePredictor(
                neural.init_mlp((3, 2, 1), np.random.default_rng()),
                NoiseSchedule.linear(30),
            ),
            ValueError,
            "2 inputs",
        ),
        (
            lambda: diffusion.NoisePredictor(
                neural.init_mlp((2, 2, 1), np.random.default_rng()),
                NoiseSchedule.linear(30),
            ).denoise([0.0, 1.0], 31),
            ValueError,
            "1 <= t <= T",
        ),
        (
            lambda: diffusion.noise_loss(
                diffusion.NoisePredictor(
                    neural.init_mlp((2, 2, 1), np.random.default_rng()),
                    NoiseSchedule.linear(30),
                ),
                [0.0, 1.0],
                [1, 2],
                [0.0],
            ),
            ValueError,
            "one noise draw per x_0",
        ),
    ],
)
def test_bad_input_to_the_learned_parts(call, error, match):
    with pytest.raises(error, match=match):
        call()
