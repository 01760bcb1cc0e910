"""Denoising diffusion (Ho, Jain and Abbeel 2020) on a 1-D Gaussian mixture, exactly.

The forward process adds Gaussian noise in T steps,

    q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t),   t = 1..T,

so that q(x_t | x_0) = N(sqrt(abar_t) x_0, 1 - abar_t) with abar_t =
prod_{s <= t} (1 - beta_s) (Ho et al., eq. 4). When the data follow a
Gaussian mixture theta, every distribution the model needs is available in
closed form: q(x_t) is again a mixture (:func:`noised_mixture`), the
posterior of x_0 given x_t is a mixture whose weights are the E-step's
responsibilities under q(x_t) (:func:`denoising_posterior`), and its mean is
the optimal denoiser E[x_0 | x_t] (:func:`optimal_denoiser`). The formulas
are derived with SymPy in notebooks/85-diffusion-elbo.ipynb.

Arrays over steps are 0-based: entry ``t - 1`` holds step t = 1..T, as in
the paper's 1-based notation.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import (
    as_observations,
    as_real_array,
    check_generator,
    check_int,
    check_real,
    check_widths,
    read_only,
)
from emlib._mlp import backward, flatten, forward, unflatten
from emlib._numerics import LOG_2PI, log_sum_exp_rows
from emlib.gaussian import gaussian_kl, kl_per_coordinate
from emlib.gmm import GMM
from emlib.model import check_theta, e_step, log_joint
from emlib.neural import MLP, Adam, init_mlp

# ---------------------------------------------------------------------------
# The noise schedule
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """The variances beta_1..beta_T of the forward process's steps.

    Immutable: ``betas`` is a read-only copy of the input. Build Ho et al.'s
    linear schedule with :meth:`linear`.

    Parameters
    ----------
    betas : array_like, shape (T,)
        beta_t in (0, 1) for t = 1..T, T >= 1 (entry t - 1 is step t).

    Raises
    ------
    TypeError
        If ``betas`` is not real numbers.
    ValueError
        If ``betas`` is not 1-D and non-empty, or a value is outside (0, 1).
    """

    betas: np.ndarray

    def __post_init__(self) -> None:
        betas = as_real_array(self.betas, "betas")
        if betas.ndim != 1 or betas.size == 0:
            raise ValueError(
                f"betas must be 1-D with one entry per step (T >= 1), got shape "
                f"{betas.shape}."
            )
        if np.any(betas <= 0) or np.any(betas >= 1):
            raise ValueError(
                "every beta_t must lie in (0, 1) (a step's noise variance); got "
                f"values from {betas.min():.3g} to {betas.max():.3g}."
            )
        object.__setattr__(self, "betas", read_only(betas))

    @classmethod
    def linear(cls, n_steps: int) -> "NoiseSchedule":
        """Ho et al.'s linear schedule, rescaled to ``n_steps`` steps.

        Ho et al. (section 4) use T = 1000 and beta_t rising linearly from
        1e-4 to 0.02. For other T, the betas are scaled by 1000 / T, as in
        Nichol and Dhariwal's ``get_named_beta_schedule("linear", T)``
        (improved DDPM, 2021), so that sum_t beta_t stays about 10 and abar_T
        stays near 0: 2.0e-5 at T = 100, 3.0e-5 at T = 200, 4.0e-5 at
        T = 1000 (each step's beta grows as T shrinks, so the product
        prod (1 - beta_t) falls below exp(-sum beta_t) by more).

        Parameters
        ----------
        n_steps : int
            T, with 21 <= T (below 21 steps the last beta would reach 1).

        Returns
        -------
        NoiseSchedule
        """
        n_steps = check_int(
            n_steps,
            "n_steps",
            21,
            rule="be >= 21 (in the rescaled linear schedule beta_T = "
            "20 / n_steps must stay below 1)",
        )
        scale = 1000.0 / n_steps
        return cls(np.linspace(scale * 1e-4, scale * 0.02, n_steps))

    @property
    def n_steps(self) -> int:
        """T, the number of steps."""
        return self.betas.size

    @property
    def alphas(self) -> np.ndarray:
        """alpha_t = 1 - beta_t, shape (T,)."""
        return 1.0 - self.betas

    @property
    def alpha_bars(self) -> np.ndarray:
        """abar_t = prod_{s <= t} alpha_s, shape (T,), decreasing from alpha_1."""
        return np.cumprod(self.alphas)

    @property
    def posterior_variances(self) -> np.ndarray:
        """beta-tilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t, shape (T,).

        The variance of q(x_{t-1} | x_t, x_0) (Ho et al., eq. 7), with
        abar_0 = 1, so beta-tilde_1 = 0: given x_1 and x_0, x_0 is known.
        """
        bars = self.alpha_bars
        previous = np.concatenate([[1.0], bars[:-1]])
        return (1.0 - previous) / (1.0 - bars) * self.betas

    def __repr__(self) -> str:
        return (
            f"NoiseSchedule(T={self.n_steps}, beta_1={self.betas[0]:.6g}, "
            f"beta_T={self.betas[-1]:.6g})"
        )


def _check_schedule(schedule):
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(
            "schedule must be an emlib.diffusion.NoiseSchedule, "
            f"got {type(schedule).__name__}."
        )


def _check_alpha_bar(alpha_bar):
    # The signal fraction abar_t; 1 means no noise.
    return check_real(alpha_bar, "alpha_bar", 0.0, strict=True, high=1.0)


def _check_step(t, schedule):
    return check_int(
        t, "t", 1, schedule.n_steps, rule=f"be a step 1 <= t <= T = {schedule.n_steps}"
    )


def _check_n_samples(n_samples):
    return check_int(n_samples, "n_samples")


# ---------------------------------------------------------------------------
# Closed forms: the forward posterior, q(x_t), and the posterior of x_0
# ---------------------------------------------------------------------------


class Gaussian(NamedTuple):
    """A 1-D Gaussian N(mean, variance), or an array of them.

    Attributes
    ----------
    mean : ndarray, shape (N,)
    variance : float
    """

    mean: np.ndarray
    variance: float


def forward_posterior(
    x_0: ArrayLike, x_t: ArrayLike, schedule: NoiseSchedule, t: int
) -> Gaussian:
    """q(x_{t-1} | x_t, x_0) = N(mu-tilde_t, beta-tilde_t) (Ho et al., eqs. 6-7).

    .. math::

        \\tilde\\mu_t = \\frac{\\sqrt{\\bar\\alpha_{t-1}}\\beta_t}{1-\\bar\\alpha_t} x_0
                     + \\frac{\\sqrt{\\alpha_t}(1-\\bar\\alpha_{t-1})}{1-\\bar\\alpha_t}
                       x_t,
        \\qquad
        \\tilde\\beta_t = \\frac{1-\\bar\\alpha_{t-1}}{1-\\bar\\alpha_t}\\beta_t,

    with abar_0 = 1 (at t = 1 the mean is x_0 and the variance 0).

    Parameters
    ----------
    x_0, x_t : array_like, shape (N,)
        Clean and noised values, paired row by row.
    schedule : NoiseSchedule
    t : int
        The step, 1 <= t <= T.

    Returns
    -------
    Gaussian
        ``mean`` of shape (N,), ``variance`` beta-tilde_t.
    """
    x_0 = as_observations(x_0)
    x_t = as_observations(x_t)
    if x_0.shape != x_t.shape:
        raise ValueError(
            f"x_0 and x_t must be paired, one x_t per x_0; got shapes {x_0.shape} "
            f"and {x_t.shape}."
        )
    _check_schedule(schedule)
    t = _check_step(t, schedule)
    x0_coef, xt_coef = _posterior_coefficients(schedule)
    mean = x0_coef[t - 1] * x_0 + xt_coef[t - 1] * x_t
    return Gaussian(mean, float(schedule.posterior_variances[t - 1]))


def _posterior_coefficients(schedule):
    """The coefficients of x_0 and x_t in mu-tilde_t, each of shape (T,)."""
    bars = schedule.alpha_bars
    previous = np.concatenate([[1.0], bars[:-1]])
    x0_coef = np.sqrt(previous) * schedule.betas / (1.0 - bars)
    xt_coef = np.sqrt(schedule.alphas) * (1.0 - previous) / (1.0 - bars)
    return x0_coef, xt_coef


def noised_mixture(theta: GMM, alpha_bar: float) -> GMM:
    """q(x_t) for data x_0 ~ theta: again a Gaussian mixture.

    With x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, component k becomes
    N(sqrt(abar_t) mu_k, abar_t sigma_k^2 + 1 - abar_t), with the same weight.

    Parameters
    ----------
    theta : GMM
        The data distribution q(x_0), K components.
    alpha_bar : float
        abar_t in (0, 1]; 1 returns theta itself.

    Returns
    -------
    GMM
    """
    check_theta(theta)
    alpha_bar = _check_alpha_bar(alpha_bar)
    return GMM(
        theta.weights,
        np.sqrt(alpha_bar) * theta.means,
        alpha_bar * theta.variances + (1.0 - alpha_bar),
    )


class DenoisingPosterior(NamedTuple):
    """The posterior q(x_0 | x_t) of a Gaussian mixture: again a mixture.

    q(x_0 | x_t) = sum_k r_jk N(x_0 | m_jk, s_k^2) for each noised value x_t[j].

    Attributes
    ----------
    weights : ndarray, shape (N, K)
        r_jk = P(component k | x_t[j]), the E-step's responsibilities under
        the noised mixture q(x_t).
    means : ndarray, shape (N, K)
        m_jk = E[x_0 | x_t[j], component k].
    variances : ndarray, shape (K,)
        s_k^2 = Var[x_0 | x_t, component k] (the same for every x_t).
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    def mean(self) -> np.ndarray:
        """E[x_0 | x_t] = sum_k r_jk m_jk, shape (N,): the optimal denoiser."""
        return np.einsum("jk,jk->j", self.weights, self.means)

    def variance(self) -> np.ndarray:
        """Var[x_0 | x_t] = sum_k r_jk (s_k^2 + (m_jk - E[x_0 | x_t])^2), shape (N,).

        The law of total variance, with deviations taken about the mixture
        mean (never E[x^2] - E[x]^2, which cancels).
        """
        deviation = self.means - self.mean()[:, None]
        return np.einsum("jk,jk->j", self.weights, self.variances + deviation**2)


def denoising_posterior(
    x_t: ArrayLike, theta: GMM, alpha_bar: float
) -> DenoisingPosterior:
    """q(x_0 | x_t) for data x_0 ~ theta and x_t ~ q(x_t | x_0) at level abar_t.

    Within component k, (x_0, x_t) is jointly Gaussian, so

    .. math::

        m_k = \\mu_k + \\frac{\\sqrt{\\bar\\alpha}\\,\\sigma_k^2}{v_k}
              (x_t - \\sqrt{\\bar\\alpha}\\,\\mu_k),
        \\qquad
        s_k^2 = \\frac{(1-\\bar\\alpha)\\,\\sigma_k^2}{v_k},
        \\qquad v_k = \\bar\\alpha\\sigma_k^2 + 1 - \\bar\\alpha,

    and the component weights are the responsibilities of x_t under
    :func:`noised_mixture` (``emlib.e_step``).

    Parameters
    ----------
    x_t : array_like, shape (N,) or (N, 1)
        Noised values.
    theta : GMM
        The data distribution, K components.
    alpha_bar : float
        abar_t in (0, 1].

    Returns
    -------
    DenoisingPosterior
    """
    x_t = as_observations(x_t)
    noised = noised_mixture(theta, alpha_bar)
    return _denoising_posterior(x_t, theta, _check_alpha_bar(alpha_bar), noised)


def _denoising_posterior(x_t, theta, alpha_bar, noised):
    """:func:`denoising_posterior` on checked arguments; noised is q(x_t)."""
    gain = np.sqrt(alpha_bar) * theta.variances / noised.variances
    means = theta.means + gain * (x_t[:, None] - noised.means)
    variances = (1.0 - alpha_bar) * theta.variances / noised.variances
    return DenoisingPosterior(e_step(x_t, noised), means, variances)


def optimal_denoiser(x_t: ArrayLike, theta: GMM, alpha_bar: float) -> np.ndarray:
    """E[x_0 | x_t], the minimum mean-squared-error estimate of the clean value.

    The responsibility-weighted average of the per-component posterior means
    (see :func:`denoising_posterior`).

    Parameters
    ----------
    x_t : array_like, shape (N,) or (N, 1)
    theta : GMM
        The data distribution.
    alpha_bar : float
        abar_t in (0, 1].

    Returns
    -------
    ndarray, shape (N,)
    """
    return denoising_posterior(x_t, theta, alpha_bar).mean()


# ---------------------------------------------------------------------------
# Ancestral sampling
# ---------------------------------------------------------------------------


def _draw_mixture(weights, means, variances, rng):
    """One draw per row from sum_k weights[j, k] N(means[j, k], variances[k])."""
    n = weights.shape[0]
    cumulative = np.cumsum(weights, axis=1)
    u = rng.random(n) * cumulative[:, -1]
    k = np.minimum((u[:, None] >= cumulative).sum(axis=1), weights.shape[1] - 1)
    rows = np.arange(n)
    return means[rows, k] + np.sqrt(variances[k]) * rng.standard_normal(n)


def exact_reverse_sample(
    theta: GMM, schedule: NoiseSchedule, n_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Ancestral samples of x_0 from the exact reverse process of the forward chain.

    x_T ~ q(x_T) (:func:`noised_mixture` at abar_T), then for t = T..1,
    x_{t-1} ~ q(x_{t-1} | x_t). The reverse step is a Gaussian mixture: x_t
    is x_{t-1} ~ q(x_{t-1}) noised by one step of signal fraction alpha_t,
    so q(x_{t-1} | x_t) is :func:`denoising_posterior` of the mixture
    q(x_{t-1}) at ``alpha_bar = alpha_t``. The output is distributed exactly
    as theta (up to the generator and rounding): a check of the closed forms,
    not a model.

    Parameters
    ----------
    theta : GMM
        The data distribution q(x_0).
    schedule : NoiseSchedule
    n_samples : int
        N >= 1.
    rng : numpy.random.Generator
        The source of randomness (pass ``np.random.default_rng(seed)``).

    Returns
    -------
    ndarray, shape (N,)
    """
    check_theta(theta)
    _check_schedule(schedule)
    n = _check_n_samples(n_samples)
    check_generator(rng)
    bars = np.concatenate([[1.0], schedule.alpha_bars])  # abar_0 .. abar_T
    top = noised_mixture(theta, bars[-1])
    x = _draw_mixture(
        np.broadcast_to(top.weights, (n, top.n_components)),
        np.broadcast_to(top.means, (n, top.n_components)),
        top.variances,
        rng,
    )
    for t in range(schedule.n_steps, 0, -1):
        previous = noised_mixture(theta, bars[t - 1])
        step = denoising_posterior(x, previous, schedule.alphas[t - 1])
        x = _draw_mixture(step.weights, step.means, step.variances, rng)
    return x


def _check_reverse_variances(reverse_variances, schedule):
    variances = as_real_array(reverse_variances, "reverse_variances")
    if variances.shape != (schedule.n_steps,):
        raise ValueError(
            "reverse_variances must hold one sigma_t^2 per step, shape "
            f"({schedule.n_steps},); got shape {variances.shape}."
        )
    if np.any(variances <= 0):
        raise ValueError(
            "reverse_variances must be > 0 (sigma_t^2 of p(x_{t-1} | x_t)); got "
            f"minimum {variances.min():.3g}. schedule.betas is Ho et al.'s choice."
        )
    return variances


Denoiser = Callable[[np.ndarray, int], np.ndarray]
"""x0-hat(x_t, t): maps x_t of shape (N,) at step t (1..T) to shape (N,)."""


def sample_reverse(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    reverse_variances: ArrayLike,
    n_samples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Ancestral samples from Ho et al.'s model with any denoiser (Algorithm 2).

    x_T ~ N(0, 1), then for t = T..1

        x_{t-1} ~ N(mu-tilde_t(x_t, x0-hat(x_t, t)), sigma_t^2),

    noise included at t = 1 (a continuous decoder p(x_0 | x_1); Ho et al.
    output the mean at t = 1 for their discrete images).

    Parameters
    ----------
    denoiser : callable
        ``denoiser(x_t, t)`` returns x0-hat, shape (N,), for x_t of shape (N,)
        and the step t (1..T): :func:`optimal_denoiser` at abar_t, a learned
        :class:`NoisePredictor`'s ``denoise``, or :func:`empirical_denoiser`.
    schedule : NoiseSchedule
    reverse_variances : array_like, shape (T,)
        sigma_t^2 > 0 for t = 1..T; Ho et al. use ``schedule.betas`` or
        ``schedule.posterior_variances`` (the latter is 0 at t = 1).
    n_samples : int
        N >= 1.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (N,)
    """
    _check_schedule(schedule)
    sigmas = np.sqrt(_check_reverse_variances(reverse_variances, schedule))
    n = _check_n_samples(n_samples)
    check_generator(rng)
    x0_coef, xt_coef = _posterior_coefficients(schedule)
    x = rng.standard_normal(n)
    for t in range(schedule.n_steps, 0, -1):
        x0_hat = np.asarray(denoiser(x, t), dtype=np.float64)
        # A (N, 1) or (1,) output would broadcast x to (N, N, ...), growing each step.
        if x0_hat.shape != (n,) or not np.all(np.isfinite(x0_hat)):
            raise ValueError(
                f"denoiser(x_t, {t}) must return one finite x0-hat per x_t, "
                f"shape ({n},); got shape {x0_hat.shape}, "
                f"{np.size(x0_hat) - np.sum(np.isfinite(x0_hat))} values not finite."
            )
        mean = x0_coef[t - 1] * x0_hat + xt_coef[t - 1] * x
        x = mean + sigmas[t - 1] * rng.standard_normal(n)
    return x


def ddpm_sample(
    theta: GMM,
    schedule: NoiseSchedule,
    reverse_variances: ArrayLike,
    n_samples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Ancestral samples from Ho et al.'s model with the optimal denoiser.

    The model p(x_{0:T}) = p(x_T) prod_t p(x_{t-1} | x_t) with p(x_T) =
    N(0, 1) and Gaussian reverse steps

        p(x_{t-1} | x_t) = N(mu-tilde_t(x_t, x0-hat(x_t)), sigma_t^2),

    x0-hat = :func:`optimal_denoiser` (equivalently, Ho et al.'s Algorithm 2
    with the optimal noise predictor), by :func:`sample_reverse`. Unlike
    :func:`exact_reverse_sample`, this is an approximation of the data
    distribution: the true reverse step is a mixture, not a Gaussian, and
    q(x_T) is not exactly N(0, 1).

    Parameters
    ----------
    theta : GMM
        The data distribution, which the denoiser knows exactly.
    schedule : NoiseSchedule
    reverse_variances : array_like, shape (T,)
        sigma_t^2 > 0 for t = 1..T.
    n_samples : int
        N >= 1.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (N,)
    """
    check_theta(theta)
    _check_schedule(schedule)
    bars = schedule.alpha_bars

    def denoiser(x, t):
        return optimal_denoiser(x, theta, bars[t - 1])

    return sample_reverse(denoiser, schedule, reverse_variances, n_samples, rng)


def empirical_denoiser(x_t: ArrayLike, data: ArrayLike, alpha_bar: float) -> np.ndarray:
    """E[x_0 | x_t] when x_0 is drawn uniformly from the points ``data``.

    The noised empirical distribution is the mixture of N equal-weight
    components N(sqrt(abar) y_j, 1 - abar), so the denoiser is the E-step's
    responsibilities under it times the points themselves,
    sum_j r_j(x_t) y_j. As abar -> 1 it returns the data point nearest x_t:
    the denoiser that memorises its training set.

    Equal points are one component with their count as weight (the same
    mixture, so the same denoiser up to rounding); data rounded to a few
    digits, such as Old Faithful's 272 eruption times with 126 distinct
    values, then cost half the work.

    Parameters
    ----------
    x_t : array_like, shape (M,) or (M, 1)
    data : array_like, shape (N,) or (N, 1)
        The points y_j.
    alpha_bar : float
        abar_t in (0, 1) (at 1 the components would have no variance).

    Returns
    -------
    ndarray, shape (M,)
    """
    x_t = as_observations(x_t)
    data = as_observations(data)
    alpha_bar = _check_alpha_bar(alpha_bar)
    if alpha_bar == 1.0:
        raise ValueError(
            "alpha_bar must be < 1 for the empirical denoiser (at 1 there is no "
            "noise and the noised points have no density)."
        )
    points, counts = np.unique(data, return_counts=True)
    noised = GMM(
        counts / data.size,
        np.sqrt(alpha_bar) * points,
        np.full(points.size, 1.0 - alpha_bar),
    )
    return e_step(x_t, noised) @ points


# ---------------------------------------------------------------------------
# The variational bound, averaged over the data mixture
# ---------------------------------------------------------------------------


# The uniform grid reaches this many standard deviations beyond the outermost
# component on each side: the Gaussian tail there is below exp(-14^2 / 2),
# about 1e-43, so truncating the integral costs nothing in float64.
_GRID_HALF_WIDTH = 14.0
_MAX_GRID = 1_000_000


def _check_points_per_sd(points_per_sd):
    return check_int(
        points_per_sd, "points_per_sd", 2, 1000, rule="be between 2 and 1000"
    )


def mixture_expectation(
    f: Callable[[np.ndarray], ArrayLike], theta: GMM, points_per_sd: int = 8
) -> float:
    """E[f(x)] for x ~ theta, by the trapezoidal rule on a uniform grid.

    .. math::

        \\mathbb{E}f \\approx h \\sum_i p(x_i \\mid \\theta) f(x_i),
        \\qquad x_i = x_{\\min} + i h,

    with h = min_k sigma_k / ``points_per_sd`` and the grid reaching 14
    standard deviations beyond the outermost components. For an integrand
    that is analytic in a strip around the real line and decays like a
    Gaussian, the trapezoidal rule converges geometrically in 1 / h
    (Trefethen and Weideman 2014, "The exponentially convergent trapezoidal
    rule", SIAM Review 56, sec. 5): the mixture density times a smooth f whose
    features are no narrower than the components.

    Parameters
    ----------
    f : callable
        Maps an array of shape (M,) to an array of shape (M,).
    theta : GMM
    points_per_sd : int
        Grid points per standard deviation of the narrowest component,
        between 2 and 1000.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the grid would need more than 1e6 points (components whose scales
        differ by a factor of about 1e4 or more).
    """
    check_theta(theta)
    m = _check_points_per_sd(points_per_sd)
    sd = np.sqrt(theta.variances)
    lo = float(np.min(theta.means - _GRID_HALF_WIDTH * sd))
    hi = float(np.max(theta.means + _GRID_HALF_WIDTH * sd))
    h = float(sd.min()) / m
    size = int(np.ceil((hi - lo) / h)) + 1
    if size > _MAX_GRID:
        raise ValueError(
            f"the quadrature grid would need {size} points (the components' "
            "standard deviations differ too much for one uniform grid); lower "
            "points_per_sd or integrate component by component."
        )
    x = lo + h * np.arange(size)
    density = np.exp(log_sum_exp_rows(log_joint(x, theta)))
    values = np.asarray(f(x), dtype=np.float64)
    return float(h * (density @ values))


def mixture_entropy(theta: GMM, points_per_sd: int = 8) -> float:
    """H(theta) = -E[log p(x | theta)] for x ~ theta, in nats (quadrature).

    Parameters
    ----------
    theta : GMM
    points_per_sd : int
        Grid density of :func:`mixture_expectation`.

    Returns
    -------
    float
    """
    return -mixture_expectation(
        lambda x: log_sum_exp_rows(log_joint(x, theta)), theta, points_per_sd
    )


class DiffusionBound(NamedTuple):
    """Ho et al.'s bound L = L_T + sum_{t>1} L_{t-1} + L_0 (eq. 5), averaged over x_0.

    Each term is E over x_0 ~ theta (and x_t ~ q(x_t | x_0)), in nats; L is
    the negative ELBO, so E[log p(x_0)] >= -L for the model p.

    Attributes
    ----------
    prior : float
        L_T = E KL(q(x_T | x_0) || N(0, 1)).
    transitions : ndarray, shape (T - 1,)
        L_{t-1} = E KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) for
        t = 2..T (entry t - 2).
    decoder : float
        L_0 = E[-log p(x_0 | x_1)].
    mse : ndarray, shape (T,)
        mse_t = :func:`denoising_mse` of the model's denoiser at step t = 1..T
        (entry t - 1), from which the terms are computed.
    """

    prior: float
    transitions: np.ndarray
    decoder: float
    mse: np.ndarray

    @property
    def elbo(self) -> float:
        """The ELBO, -(L_T + sum L_{t-1} + L_0), averaged over x_0 ~ theta."""
        return -(self.prior + float(self.transitions.sum()) + self.decoder)


def denoising_mse(
    theta: GMM,
    alpha_bar: float,
    points_per_sd: int = 8,
    denoiser: Callable[[np.ndarray], np.ndarray] | None = None,
) -> float:
    """E[(x_0 - x0-hat(x_t))^2], a denoiser's mean squared error, over x_0 ~ theta.

    For the optimal denoiser E[x_0 | x_t] (the default) it equals
    E[Var(x_0 | x_t)] over x_t ~ q(x_t) by the law of total variance. For any
    other denoiser D, x_0 - D = (x_0 - E[x_0 | x_t]) + (E[x_0 | x_t] - D), and
    the cross term averages to 0 given x_t, so the error is
    E[Var(x_0 | x_t) + (E[x_0 | x_t] - D(x_t))^2]. Either way a 1-D integral
    of a closed form (:meth:`DenoisingPosterior.variance`) against the mixture
    :func:`noised_mixture`, done by :func:`mixture_expectation`.

    Parameters
    ----------
    theta : GMM
    alpha_bar : float
        abar_t in (0, 1].
    points_per_sd : int
        Grid density of :func:`mixture_expectation`; a denoiser that varies on
        a scale finer than the noised components needs more.
    denoiser : callable, optional
        D(x_t), shape (M,) to (M,), at this noise level; None for the optimal
        denoiser.

    Returns
    -------
    float
    """
    noised = noised_mixture(theta, alpha_bar)
    alpha_bar = _check_alpha_bar(alpha_bar)

    def squared_error(x_t):  # x_t: the quadrature grid, shape (M,)
        posterior = _denoising_posterior(x_t, theta, alpha_bar, noised)
        if denoiser is None:
            return posterior.variance()
        excess = posterior.mean() - np.asarray(denoiser(x_t), dtype=np.float64)
        return posterior.variance() + excess**2

    return mixture_expectation(squared_error, noised, points_per_sd)


def _at_step(denoiser: Denoiser, t: int, x: np.ndarray) -> np.ndarray:
    """``denoiser`` at step ``t``: the one-argument denoiser denoising_mse takes."""
    return denoiser(x, t)


def ddpm_bound(
    theta: GMM,
    schedule: NoiseSchedule,
    reverse_variances: ArrayLike,
    points_per_sd: int = 8,
    denoiser: Denoiser | None = None,
) -> DiffusionBound:
    """The terms of Ho et al.'s bound for the model of :func:`sample_reverse`.

    Given x_0 the KL terms are between Gaussians (``emlib.gaussian_kl``), and
    the model's mean differs from mu-tilde_t only through x0-hat, so

    .. math::

        L_{t-1} = \\tfrac12\\Big[\\frac{c_t^2\\,\\mathrm{mse}_t}{\\sigma_t^2}
                  + \\frac{\\tilde\\beta_t}{\\sigma_t^2} - 1
                  - \\log\\frac{\\tilde\\beta_t}{\\sigma_t^2}\\Big],
        \\quad
        L_0 = \\tfrac12\\log(2\\pi\\sigma_1^2) + \\frac{\\mathrm{mse}_1}{2\\sigma_1^2},
        \\quad
        L_T = \\tfrac12\\big[\\bar\\alpha_T\\mathbb{E}x_0^2 + (1 - \\bar\\alpha_T)
              - 1 - \\log(1 - \\bar\\alpha_T)\\big],

    with c_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t) the coefficient of x_0
    in mu-tilde_t and mse_t = :func:`denoising_mse` of the model's denoiser
    (by default the optimal one, the model of :func:`ddpm_sample`). L_T is exact;
    the mse_t are 1-D integrals of closed forms, by the trapezoidal rule
    (:func:`mixture_expectation`; about 1e-14 relative at the default grid).

    Parameters
    ----------
    theta : GMM
        The data distribution (the denoiser knows it exactly).
    schedule : NoiseSchedule
        T >= 2.
    reverse_variances : array_like, shape (T,)
        sigma_t^2 > 0 of the model's reverse steps.
    points_per_sd : int
        Grid density of :func:`mixture_expectation`.
    denoiser : callable, optional
        ``denoiser(x_t, t)`` as in :func:`sample_reverse`; None for
        :func:`optimal_denoiser`.

    Returns
    -------
    DiffusionBound
    """
    check_theta(theta)
    _check_schedule(schedule)
    if schedule.n_steps < 2:
        raise ValueError("the bound needs T >= 2 steps (L_T, L_{t-1}, L_0).")
    sigma2 = _check_reverse_variances(reverse_variances, schedule)
    bars = schedule.alpha_bars
    second_moment = float(theta.weights @ (theta.means**2 + theta.variances))
    # E_x0 KL(N(sqrt(abar_T) x_0, 1 - abar_T) || N(0, 1)): the mean term is
    # quadratic in x_0, so its average is that of a mean sqrt(abar_T E x_0^2).
    prior = gaussian_kl(np.sqrt(bars[-1] * second_moment), 1.0 - bars[-1], 0.0, 1.0)
    mse = np.array(
        [
            denoising_mse(
                theta,
                b,
                points_per_sd,
                None if denoiser is None else functools.partial(_at_step, denoiser, t),
            )
            for t, b in enumerate(bars, start=1)
        ]
    )
    if not np.all(np.isfinite(mse)):
        t_bad = int(np.argmin(np.isfinite(mse))) + 1
        raise ValueError(
            f"the denoiser's mean squared error at step t = {t_bad} is not finite; "
            "the denoiser must return finite values for finite x_t."
        )
    x0_coef, _ = _posterior_coefficients(schedule)
    beta_tilde = schedule.posterior_variances
    # gaussian_kl's terms for steps t = 2..T at once, on arguments checked here
    # (mse_t finite and >= 0; beta-tilde_t > 0 for t >= 2; sigma_t^2 > 0).
    transitions = kl_per_coordinate(
        x0_coef[1:] * np.sqrt(mse[1:]), beta_tilde[1:], 0.0, sigma2[1:]
    )
    decoder = 0.5 * (LOG_2PI + np.log(sigma2[0])) + mse[0] / (2.0 * sigma2[0])
    return DiffusionBound(prior, transitions, float(decoder), mse)


# ---------------------------------------------------------------------------
# A learned noise predictor
# ---------------------------------------------------------------------------


def _step_feature(t, alpha_bars):
    """tau_t = log(SNR_t) / 10, SNR_t = abar_t / (1 - abar_t): the noise level."""
    bars = alpha_bars[t - 1]
    return np.log(bars / (1.0 - bars)) / 10.0


@dataclass(frozen=True, eq=False)
class NoisePredictor:
    """Ho et al.'s eps_theta(x_t, t): a small network around the best linear guess.

    .. math::

        \\epsilon_\\theta(x_t, t) = \\sqrt{1-\\bar\\alpha_t}\\,x_t + f(x_t, \\tau_t),
        \\qquad \\tau_t = \\tfrac{1}{10}
        \\log\\frac{\\bar\\alpha_t}{1 - \\bar\\alpha_t},

    with f an :class:`emlib.neural.MLP` with inputs (x_t, tau_t) and one
    output; tau_t is the log signal-to-noise ratio, scaled to order 1. The
    linear part is the best predictor linear in x_t for data of mean 0 and
    variance 1 (notebook 85, section 5), so f learns the
    correction. The denoiser is x0-hat = (x_t - sqrt(1 - abar_t)
    eps_theta) / sqrt(abar_t) (Ho et al., eq. 15).

    Parameters
    ----------
    net : MLP
        Sizes (2, ..., 1).
    schedule : NoiseSchedule
        T >= 2.
    """

    net: MLP
    schedule: NoiseSchedule

    def __post_init__(self) -> None:
        _check_schedule(self.schedule)
        if self.schedule.n_steps < 2:
            raise ValueError("a noise predictor needs T >= 2 steps.")
        if not isinstance(self.net, MLP) or (self.net.sizes[0], self.net.sizes[-1]) != (
            2,
            1,
        ):
            raise ValueError(
                "net must be an emlib.neural.MLP with 2 inputs (x_t, tau_t) and 1 "
                "output, e.g. init_mlp((2, 32, 32, 1), rng)."
            )

    def _parts(self, x_t, t):
        x_t = as_observations(x_t)
        steps = np.asarray(t)
        if steps.shape not in ((), x_t.shape):
            raise ValueError(
                f"t must be one step or one per x_t, shape {x_t.shape}; got "
                f"shape {steps.shape}."
            )
        steps = np.broadcast_to(steps, x_t.shape)
        if not np.issubdtype(steps.dtype, np.integer) or np.any(
            (steps < 1) | (steps > self.schedule.n_steps)
        ):
            raise ValueError(
                f"t must be integer steps 1 <= t <= T = {self.schedule.n_steps}."
            )
        scale = np.sqrt(1.0 - self.schedule.alpha_bars[steps - 1])
        u = np.column_stack([x_t, _step_feature(steps, self.schedule.alpha_bars)])
        return x_t, steps, scale, u

    def _noise(self, x_t, scale, u):
        """eps_theta from the outputs of :meth:`_parts` (inputs already checked)."""
        return scale * x_t + forward(self.net, u)[0][:, 0]

    def predict_noise(self, x_t: ArrayLike, t: ArrayLike) -> np.ndarray:
        """eps_theta(x_t, t), shape (N,); ``t`` an int or one int per x_t."""
        x_t, _, scale, u = self._parts(x_t, t)
        return self._noise(x_t, scale, u)

    def denoise(self, x_t: ArrayLike, t: ArrayLike) -> np.ndarray:
        """x0-hat(x_t, t) = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t)."""
        x_t, steps, scale, u = self._parts(x_t, t)
        eps_hat = self._noise(x_t, scale, u)
        return (x_t - scale * eps_hat) / np.sqrt(self.schedule.alpha_bars[steps - 1])


def noise_loss(
    predictor: NoisePredictor, x_0: ArrayLike, t: ArrayLike, eps: ArrayLike
) -> tuple[float, MLP]:
    """Ho et al.'s L_simple on a batch, and its gradient in the network's weights.

    With x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, the loss is
    mean_j (eps_j - eps_theta(x_t_j, t_j))^2; its gradient with respect to the
    network's output f_j is 2 (eps_theta - eps)_j / B, passed to
    :func:`emlib.neural.mlp_backward`.

    Parameters
    ----------
    predictor : NoisePredictor
    x_0, t, eps : array_like, shape (B,)
        Clean values, integer steps 1..T and standard normal noise.

    Returns
    -------
    loss : float
    grads : MLP
        d loss / d (weights, biases), shaped like ``predictor.net``.
    """
    x_0, eps = as_observations(x_0), as_observations(eps)
    if eps.shape != x_0.shape:
        raise ValueError(
            f"eps must hold one noise draw per x_0, shape {x_0.shape}; got {eps.shape}."
        )
    steps = predictor._parts(x_0, t)[1]  # validates t
    bars = predictor.schedule.alpha_bars
    return _noise_loss(predictor.net, bars, _step_features(bars), x_0, steps, eps)


def _step_features(alpha_bars):
    """tau_t for t = 1..T, shape (T,): the network's second input, by step."""
    return _step_feature(np.arange(1, alpha_bars.size + 1), alpha_bars)


def _noise_loss(net, alpha_bars, features, x_0, t, eps):
    """:func:`noise_loss` on validated arrays (the training loop's inner step).

    ``features`` is :func:`_step_features` of ``alpha_bars``, computed once.
    """
    bars = alpha_bars[t - 1]
    scale = np.sqrt(1.0 - bars)
    x_t = np.sqrt(bars) * x_0 + scale * eps
    f, hidden = forward(net, np.column_stack([x_t, features[t - 1]]))
    residual = scale * x_t + f[:, 0] - eps  # eps_theta - eps
    grads, _ = backward(net, hidden, (2.0 / eps.size) * residual[:, None])
    return float(np.mean(residual**2)), grads


class NoisePredictorFit(NamedTuple):
    """The result of :func:`fit_noise_predictor`.

    Attributes
    ----------
    predictor : NoisePredictor
    losses : ndarray, shape (n_iter,)
        L_simple of each minibatch, before its step.
    """

    predictor: NoisePredictor
    losses: np.ndarray


def fit_noise_predictor(
    x_0: ArrayLike,
    schedule: NoiseSchedule,
    rng: np.random.Generator,
    hidden: tuple[int, ...] = (32, 32),
    n_iter: int = 2000,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
) -> NoisePredictorFit:
    """Train eps_theta on L_simple by Adam (Ho et al.'s Algorithm 1).

    Each iteration draws a minibatch: x_0 from the data (with replacement),
    t uniform on 1..T, eps ~ N(0, 1); then one Adam step down the gradient
    of :func:`noise_loss`.

    Parameters
    ----------
    x_0 : array_like, shape (N,)
        The training data.
    schedule : NoiseSchedule
    rng : numpy.random.Generator
        Draws the initial weights and every minibatch.
    hidden : tuple of int
        Widths of the hidden layers.
    n_iter, batch_size : int
        >= 1.
    learning_rate : float
        Adam's step size.

    Returns
    -------
    NoisePredictorFit
    """
    data = as_observations(x_0)
    _check_schedule(schedule)
    check_generator(rng)
    n_iter = check_int(n_iter, "n_iter")
    batch_size = check_int(batch_size, "batch_size")
    net = init_mlp((2, *check_widths(hidden, "hidden"), 1), rng)
    # Adam is elementwise, so it steps all parameters as one vector (one
    # update instead of one per array); the network's arrays are views into it.
    params = flatten(net)
    adam = Adam([params], learning_rate)
    bars, n_steps = schedule.alpha_bars, schedule.n_steps
    features = _step_features(bars)
    losses = np.empty(n_iter)
    for i in range(n_iter):
        x0_batch = data[rng.integers(data.size, size=batch_size)]
        t_batch = rng.integers(1, n_steps + 1, size=batch_size)
        eps_batch = rng.standard_normal(batch_size)
        losses[i], grads = _noise_loss(
            unflatten(params, net), bars, features, x0_batch, t_batch, eps_batch
        )
        adam.learning_rate = learning_rate * (1.0 - i / n_iter)  # linear decay to 0
        (params,) = adam.step([params], [flatten(grads)])
    return NoisePredictorFit(NoisePredictor(unflatten(params, net), schedule), losses)
