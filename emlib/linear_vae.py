"""The linear variational autoencoder: probabilistic PCA with an amortised posterior.

The decoder is probabilistic PCA's, p(z) = N(0, I_q) and
p(x | z) = N(W z + mean, sigma^2 I_D); the encoder is an affine map with a
diagonal covariance, q(z | x) = N(V x + b, diag(s^2)). The evidence lower bound
of N points (one point's, derived with SymPy in
notebooks/80-ppca-to-vae.ipynb, summed there and checked against this) is

    ELBO = sum_n E_q[log p(x_n | z)] - KL(q(z | x_n) || p(z))

and, because the encoder is affine, it depends on the data only through N,
the sample mean xbar and the sample covariance S (normalised by N):

    ELBO / N = -(D/2) log(2 pi sigma^2)
               - (rbar^T rbar + tr(A S A^T) + sum_k (W^T W)_kk s_k^2) / (2 sigma^2)
               - (mbar^T mbar + tr(V S V^T) + sum_k (s_k^2 - 1 - log s_k^2)) / 2,

with mbar = V xbar + b (the mean encoding), rbar = xbar - W mbar - mean (the
mean residual) and A = I_D - W V. Every evaluation costs O(D^2 q) whatever N
is. ELBO <= log P(X | W, mean, sigma^2), with equality exactly when each
q(z | x_n) is the exact posterior (possible only when W^T W is diagonal, since
the posterior covariance is sigma^2 (W^T W + sigma^2 I)^-1).
"""

from dataclasses import dataclass
from typing import Any, NamedTuple, cast

import numpy as np
from numpy.typing import ArrayLike

from emlib import ppca
from emlib._checks import Parameters, as_real_array, is_int, read_only
from emlib._core import run_em
from emlib._latent_linear import (
    as_data,
    check_n_latent,
    latent_precision,
    log_likelihood_from_moments,
    sample_moments,
)
from emlib._numerics import LOG_2PI, r_minus_1_minus_log_r
from emlib.ppca import PPCA

# How far the ELBO may fall in a step and still count as its rounding: it is
# evaluated from the moments (N, xbar, S) by O(D^2 q) operations, each with
# relative error about 1e-16, so its rounding is a few hundred eps |ELBO|.
_ROUNDING_SLACK = 1e-13

# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LinearVAE(Parameters):
    """Decoder (W, mean, sigma^2) and encoder (V, b, s^2) of the linear VAE.

    Instances are immutable: the arrays are read-only copies of the inputs.

    Parameters
    ----------
    W : array_like, shape (D, q)
        Decoder loading matrix, 1 <= q <= D.
    mean : array_like, shape (D,)
        Decoder offset.
    noise_variance : real
        sigma^2 > 0, the decoder's isotropic noise variance.
    V : array_like, shape (q, D)
        Encoder weights: the mean of q(z | x) is V x + b.
    b : array_like, shape (q,)
        Encoder offset.
    encoder_variance : array_like, shape (q,)
        s^2 > 0, the diagonal of q(z | x)'s covariance (the same for every x).

    Raises
    ------
    TypeError
        If an argument is not real numbers.
    ValueError
        If shapes disagree, a value is not finite, or a variance is <= 0.
    """

    W: np.ndarray
    mean: np.ndarray
    noise_variance: float
    V: np.ndarray
    b: np.ndarray
    encoder_variance: np.ndarray

    def __post_init__(self) -> None:
        decoder = PPCA(self.W, self.mean, self.noise_variance)  # validates these
        d, q = decoder.W.shape
        V = as_real_array(self.V, "V")
        b = as_real_array(self.b, "b")
        s2 = as_real_array(self.encoder_variance, "encoder_variance")
        for arr, name, shape in (
            (V, "V", (q, d)),
            (b, "b", (q,)),
            (s2, "encoder_variance", (q,)),
        ):
            if arr.shape != shape:
                raise ValueError(
                    f"{name} must have shape {shape} to match W of shape {(d, q)}, "
                    f"got shape {arr.shape}."
                )
        if not np.all(s2 > 0):
            raise ValueError(
                f"encoder_variance must hold variances > 0; got minimum {s2.min():.3g}."
            )
        object.__setattr__(self, "W", decoder.W)
        object.__setattr__(self, "mean", decoder.mean)
        object.__setattr__(self, "noise_variance", decoder.noise_variance)
        object.__setattr__(self, "V", read_only(V))
        object.__setattr__(self, "b", read_only(b))
        object.__setattr__(self, "encoder_variance", read_only(s2))

    @property
    def decoder(self) -> PPCA:
        """The generative model p(x) as a :class:`emlib.ppca.PPCA`."""
        return PPCA(self.W, self.mean, self.noise_variance)

    @property
    def n_features(self) -> int:
        """D, the dimension of x."""
        return self.W.shape[0]

    @property
    def n_latent(self) -> int:
        """q, the dimension of z."""
        return self.W.shape[1]

    def __repr__(self) -> str:
        return (
            f"LinearVAE(D={self.n_features}, q={self.n_latent}, "
            f"noise_variance={self.noise_variance:.6g})"
        )


class ELBOGradient(NamedTuple):
    """The gradient of :func:`elbo` in each parameter of a :class:`LinearVAE`.

    Each attribute has the shape of the parameter it differentiates by:
    ``W`` (D, q), ``mean`` (D,), ``noise_variance`` (float, d/d sigma^2),
    ``V`` (q, D), ``b`` (q,), ``encoder_variance`` (q,) (d/d s_k^2).
    """

    W: np.ndarray
    mean: np.ndarray
    noise_variance: float
    V: np.ndarray
    b: np.ndarray
    encoder_variance: np.ndarray


class VAEFit(NamedTuple):
    """The outcome of :func:`fit`.

    Attributes
    ----------
    vae : LinearVAE
        The last iterate.
    elbos : ndarray, shape (n_iter + 1,)
        ELBO(X, vae^(i)) for i = 0..n_iter, the start included;
        non-decreasing up to rounding (1e-13 abs(ELBO) per step).
    log_likelihoods : ndarray, shape (n_iter + 1,)
        log P(X | decoder^(i)); ``log_likelihoods - elbos`` >= 0 is the gap,
        the summed KL from each q(z | x_n) to the exact posterior.
    n_iter : int
        Number of steps taken.
    converged : bool
        True exactly when ``stop_reason`` is "converged".
    stop_reason : {"converged", "max_iter"}
        As :class:`emlib.EMResult`'s, for the ELBO: "converged" when a step
        gained less than ``tol * N``, or when no step along the ascent
        direction raises the ELBO beyond its rounding (a stationary point);
        "max_iter" otherwise. "decrease" cannot occur: a step is accepted
        only if the ELBO does not fall beyond its rounding.
    """

    vae: LinearVAE
    elbos: np.ndarray
    log_likelihoods: np.ndarray
    n_iter: int
    converged: bool
    stop_reason: str


def _check_vae(vae, name="vae"):
    if not isinstance(vae, LinearVAE):
        what = " start or a latent dimension q (int)" if name == "init" else ""
        raise TypeError(
            f"{name} must be an emlib.linear_vae.LinearVAE(W, mean, noise_variance, "
            f"V, b, encoder_variance){what}, got {type(vae).__name__}."
        )


def _theta_of(vae):
    return (vae.W, vae.mean, vae.noise_variance, vae.V, vae.b, vae.encoder_variance)


# ---------------------------------------------------------------------------
# The ELBO and its gradient, from the sufficient statistics (N, xbar, S)
# ---------------------------------------------------------------------------


def _elbo_terms(n, xbar, s, theta):
    """ELBO and its gradient (both summed over the N points) at theta.

    theta = (W, mean, sigma^2, V, b, s^2) as arrays; returns
    (elbo, gradient tuple in the same order, R) where R is the expected
    squared reconstruction error averaged over the points.
    """
    W, mean, noise, V, b, s2 = theta
    d = W.shape[0]
    mbar = V @ xbar + b
    rbar = xbar - W @ mbar - mean
    A = -W @ V
    A.flat[:: d + 1] += 1.0  # the diagonal
    a_s = A @ s
    v_s = V @ s
    w_col_sq = np.einsum("ik,ik->k", W, W)  # diagonal of W^T W
    recon = rbar @ rbar + np.sum(a_s * A) + w_col_sq @ s2
    kl = 0.5 * (mbar @ mbar + np.sum(v_s * V) + np.sum(r_minus_1_minus_log_r(s2, 1.0)))
    elbo = n * (-0.5 * d * (LOG_2PI + np.log(noise)) - recon / (2.0 * noise) - kl)
    grad = (
        n * (np.outer(rbar, mbar) + a_s @ V.T - W * s2) / noise,
        n * rbar / noise,
        n * (recon / noise - d) / (2.0 * noise),
        n * ((W.T @ (np.outer(rbar, xbar) + a_s)) / noise - np.outer(mbar, xbar) - v_s),
        n * (W.T @ rbar / noise - mbar),
        n * 0.5 * (1.0 / s2 - 1.0 - w_col_sq / noise),
    )
    return float(elbo), grad, recon


def elbo(X: ArrayLike, vae: LinearVAE) -> float:
    """The evidence lower bound of the linear VAE, summed over the points.

    Parameters
    ----------
    X : array_like, shape (N, D)
        Observations, one per row.
    vae : LinearVAE

    Returns
    -------
    float
        sum_n E_{q(z | x_n)}[log p(x_n | z)] - KL(q(z | x_n) || N(0, I_q)),
        which is <= ``emlib.ppca.log_likelihood(X, vae.decoder)``.
    """
    _check_vae(vae)
    X = as_data(X, vae.n_features)
    mean, s = sample_moments(X)
    return _elbo_terms(X.shape[0], mean, s, _theta_of(vae))[0]


def elbo_gradient(X: ArrayLike, vae: LinearVAE) -> ELBOGradient:
    """The exact gradient of :func:`elbo` in every parameter.

    Parameters
    ----------
    X : array_like, shape (N, D)
    vae : LinearVAE

    Returns
    -------
    ELBOGradient
        With mbar = V xbar + b, rbar = xbar - W mbar - mean, A = I - W V and
        R = rbar^T rbar + tr(A S A^T) + sum_k (W^T W)_kk s_k^2, divided by N:
        d/dW = (rbar mbar^T + A S V^T - W diag(s^2)) / sigma^2,
        d/dmean = rbar / sigma^2,
        d/dsigma^2 = (R / sigma^2 - D) / (2 sigma^2),
        d/dV = W^T (rbar xbar^T + A S) / sigma^2 - mbar xbar^T - V S,
        d/db = W^T rbar / sigma^2 - mbar,
        d/ds_k^2 = (1 / s_k^2 - 1 - (W^T W)_kk / sigma^2) / 2.
    """
    _check_vae(vae)
    X = as_data(X, vae.n_features)
    mean, s = sample_moments(X)
    grad = _elbo_terms(X.shape[0], mean, s, _theta_of(vae))[1]
    return ELBOGradient(grad[0], grad[1], float(grad[2]), *grad[3:])


def encode(X: ArrayLike, vae: LinearVAE) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's Gaussian q(z | x_n) = N(V x_n + b, diag(s^2)) for each point.

    Parameters
    ----------
    X : array_like, shape (N, D)
    vae : LinearVAE

    Returns
    -------
    means : ndarray, shape (N, q)
    variances : ndarray, shape (q,)
        s^2, the same for every point.
    """
    _check_vae(vae)
    X = as_data(X, vae.n_features)
    return X @ vae.V.T + vae.b, np.array(vae.encoder_variance)


def best_encoder(theta: PPCA) -> LinearVAE:
    """The encoder that maximises the ELBO for the decoder ``theta``.

    With M = W^T W + sigma^2 I_q, the exact posterior of z given x is
    N(M^-1 W^T (x - mean), sigma^2 M^-1). Among diagonal Gaussians the KL to
    it is smallest at its mean and at the variances s_k^2 = sigma^2 / M_kk
    (the reciprocal diagonal of its precision M / sigma^2). So V = M^-1 W^T,
    b = -V mean, s^2 = sigma^2 / diag(M); this is the exact posterior when
    W^T W is diagonal, and the ELBO then equals the log-likelihood.

    Parameters
    ----------
    theta : PPCA

    Returns
    -------
    LinearVAE
        Decoder ``theta``, encoder as above.
    """
    if not isinstance(theta, PPCA):
        raise TypeError(
            "theta must be an emlib.ppca.PPCA(W, mean, noise_variance), "
            f"got {type(theta).__name__}."
        )
    m = latent_precision(np.array(theta.W), theta.noise_variance)
    V = np.linalg.solve(m, theta.W.T)
    return LinearVAE(
        theta.W,
        theta.mean,
        theta.noise_variance,
        V,
        -V @ theta.mean,
        theta.noise_variance / np.diag(m),
    )


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def initial_theta(X: ArrayLike, n_latent: int) -> LinearVAE:
    """The deterministic start used by ``fit(X, q)``.

    The decoder :func:`emlib.ppca.initial_theta` ``(X, q)`` (W's columns on
    the coordinate axes of largest variance, so W^T W is diagonal) with
    :func:`best_encoder`, which is then the exact posterior: the ELBO starts
    equal to the log-likelihood.

    Parameters
    ----------
    X : array_like, shape (N, D)
    n_latent : int
        q, with 1 <= q < D.

    Returns
    -------
    LinearVAE
    """
    return best_encoder(ppca.initial_theta(X, n_latent))


def _ascent_direction(xbar, s, s_inv, theta, grad, recon, n):
    """The gradient scaled by the inverse curvature of each parameter block.

    Blocks: (W, mean) and (V, b) enter the ELBO quadratically, with Hessians
    -(G kron I_D) / sigma^2 and -(M kron [S + xbar xbar^T, xbar; xbar^T, 1]) /
    sigma^2, G = [V S V^T + diag(s^2) + mbar mbar^T, mbar; mbar^T, 1] and
    M = W^T W + sigma^2 I, so for them the step is Newton's. For log sigma^2
    and log s_k^2 it is the log of (block maximiser / current value), equal
    to Newton's step to first order. With length 1, each block's step alone
    would land on that block's maximiser with the others held. Returned as
    steps for (W, mean, log sigma^2, V, c, log s^2), where c = b + V xbar,
    the encoder's mean at xbar.
    """
    W, _, noise, V, b, s2 = theta
    q = W.shape[1]
    mbar = V @ xbar + b
    g = np.empty((q + 1, q + 1))
    g[:q, :q] = V @ s @ V.T
    g[:q, :q][np.diag_indices(q)] += s2
    g[:q, :q] += np.outer(mbar, mbar)
    g[:q, q] = g[q, :q] = mbar
    g[q, q] = 1.0
    grad_dec = np.column_stack([grad[0], grad[1]]) / n
    step_dec = noise * np.linalg.solve(g, grad_dec.T).T
    m = latent_precision(W, noise)
    # With c held fixed instead of b, d/dV becomes d/dV - (d/db) xbar^T, and
    # the (V, c) Hessian is block diagonal: -(M kron S) / sigma^2 and -M / sigma^2.
    grad_v = (grad[3] - np.outer(grad[4], xbar)) / n
    step_v = noise * np.linalg.solve(m, grad_v) @ s_inv
    step_c = noise * np.linalg.solve(m, grad[4] / n)
    # Each variance's own maximiser with the rest held is sigma^2 = R / D and
    # s_k^2 = sigma^2 / M_kk; the step is the log of target / current, which
    # is the Newton step in log space to first order but never overshoots.
    step_log_noise = np.log(recon / (W.shape[0] * noise))
    step_log_s2 = np.log(noise / (s2 * np.diag(m)))
    return step_dec[:, :q], step_dec[:, q], step_log_noise, step_v, step_c, step_log_s2


def fit(
    X: ArrayLike, init: LinearVAE | int, *, tol: float = 1e-10, max_iter: int = 1000
) -> VAEFit:
    """Train the linear VAE by block coordinate ascent on the exact ELBO.

    Parameters
    ----------
    X : array_like, shape (N, D)
        Observations, one per row; the sample covariance must be positive
        definite (the points must not lie in a lower-dimensional subspace).
    init : LinearVAE or int
        The start, or the latent dimension q (1 <= q < D), in which case the
        start is :func:`initial_theta` ``(X, q)``, whose encoder is the exact
        posterior: the ELBO starts equal to the log-likelihood.
    tol : float, default 1e-10
        Stop when a step raises the ELBO by less than ``tol * N``
        (``tol=0``: exactly ``max_iter`` steps).
    max_iter : int, default 1000
        Maximum number of steps (>= 1).

    Returns
    -------
    VAEFit

    Warns
    -----
    emlib.ConvergenceWarning
        If the run stops on ``max_iter`` with tol > 0.

    Notes
    -----
    Each step moves every parameter block (W and the mean, log sigma^2, V
    and c = b + V xbar, log s^2) at once towards that block's own maximiser
    with the others held (see ``_ascent_direction``): block coordinate ascent
    in its simultaneous (Jacobi) form, with step halving. For the variances
    the step is the log of the ratio of the block's maximiser to the current
    value, so that no step overshoots from a bad start. Plain gradient ascent
    converges too, but slowly: on iris (q = 2) the ELBO's Hessian per point
    at the maximum has a condition number of about 3.4e5
    (notebooks/80-ppca-to-vae.ipynb, section 5), so a fixed step needs
    hundreds of thousands of steps per decimal digit,
    where this takes a few hundred. The step length is 1, halved until
    the ELBO does not decrease by more than its rounding, 1e-13 abs(ELBO) (at
    most 50 halvings; then the fit stops as converged). The iteration,
    stopping rule and warnings are the EM core's (``emlib._core.run_em``):
    the "E-pass" evaluates the ELBO and its gradient, the "M-step" is this
    ascent step, which raises the ELBO but does not maximise it. Variances stay
    positive because they move in log space.
    A step of length 1 on one block alone would land on that block's
    maximiser with the others held: for (V, b) that is the best encoder.
    """
    X = as_data(X)
    n, d = X.shape
    xbar, s = sample_moments(X)
    try:
        chol_inv = np.linalg.inv(np.linalg.cholesky(s))
    except np.linalg.LinAlgError:
        raise ValueError(
            "the sample covariance is singular: the points lie in a subspace of "
            "dimension below D; drop redundant columns or use emlib.ppca.em."
        ) from None
    s_inv = chol_inv.T @ chol_inv
    if is_int(init):
        q = check_n_latent(init, d, "init")
        init = initial_theta(X, q)
    _check_vae(init, "init")
    init = cast(LinearVAE, init)  # _check_vae raised unless it is one
    if init.n_features != d or init.n_latent >= d:
        raise ValueError(
            f"init.W has shape {init.W.shape}; with D = {d} it must be ({d}, q) "
            f"with 1 <= q < {d}."
        )
    log_likelihoods = []  # log P(X | decoder), one per E-pass, so per iterate
    # The step's acceptance test evaluates the accepted candidate's ELBO terms;
    # the E-pass that follows on that candidate reuses them.
    accepted: list[Any] = [None, None]  # [candidate, its _elbo_terms]

    def e_pass(theta):
        if theta is accepted[0]:
            value, grad, recon = accepted[1]
        else:
            value, grad, recon = _elbo_terms(n, xbar, s, theta)
        log_likelihoods.append(_log_likelihood(n, s, xbar, theta))
        return value, (value, grad, recon)

    def ascent_step(theta, terms):
        value, grad, recon = terms
        direction = _ascent_direction(xbar, s, s_inv, theta, grad, recon, n)
        for _halving in range(50):
            candidate = _move(theta, direction, xbar)
            terms = _elbo_terms(n, xbar, s, candidate)
            # Near the maximum the ELBO changes by less than its own rounding
            # (about 1e-16 |ELBO| per operation); accept such steps, or the
            # parameters would stop at sqrt(eps) of the maximum.
            if terms[0] >= value - _rounding(value, n):
                accepted[:] = candidate, terms
                return candidate
            direction = tuple(0.5 * step for step in direction)
        return None  # no step raises the ELBO: stationary to rounding

    result = run_em(
        e_pass,
        ascent_step,
        _theta_of(init),  # read-only arrays: every step makes new ones
        n=n,
        tol=tol,
        max_iter=max_iter,
        allowance=_rounding,
        objective="ELBO",
    )
    return VAEFit(
        LinearVAE(*result.theta),
        result.log_likelihoods,
        np.array(log_likelihoods),
        result.n_iter,
        result.converged,
        result.stop_reason,
    )


def _rounding(value, n):
    """The ELBO's rounding at ``value``: the largest fall a step may make."""
    return _ROUNDING_SLACK * abs(value)


def _move(theta, direction, xbar):
    W, mean, noise, V, b, s2 = theta
    d_w, d_mean, d_log_noise, d_v, d_c, d_log_s2 = direction
    V_new = V + d_v
    c_new = V @ xbar + b + d_c
    return (
        W + d_w,
        mean + d_mean,
        noise * np.exp(d_log_noise),
        V_new,
        c_new - V_new @ xbar,
        s2 * np.exp(d_log_s2),
    )


def _log_likelihood(n, s, xbar, theta):
    """log P(X | W, mean, sigma^2) from (N, xbar, S)."""
    W, mean, noise = theta[:3]
    shift = xbar - mean
    return log_likelihood_from_moments(n, s + np.outer(shift, shift), W, noise)
