"""Probabilistic PCA (Tipping and Bishop 1999), fitted by EM.

The model: a latent z ~ N(0, I_q) and x = W z + mean + noise, with noise
~ N(0, sigma^2 I_D), so that x ~ N(mean, C) with C = W W^T + sigma^2 I_D.
The posterior of z given x is Gaussian,

    z | x ~ N(M^-1 W^T (x - mean), sigma^2 M^-1),   M = W^T W + sigma^2 I_q,

and EM's updates (Tipping and Bishop, eqs. 29-30, with S the sample
covariance) are

    W_new       = S W (sigma^2 I_q + M^-1 W^T S W)^-1,
    sigma^2_new = tr(S - S W M^-1 W_new^T) / D.

They are derived with SymPy in notebooks/80-ppca-to-vae.ipynb. The mean's
maximum-likelihood estimate is the sample mean, whatever W and sigma^2 are,
so ``em`` fixes it once; every iteration then touches only the D x D matrix
S, never the N points.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import (
    Parameters,
    as_real_array,
    check_real,
    is_dask_array,
    is_int,
    read_only,
)
from emlib._core import EMResult, run_em
from emlib._latent_linear import (
    as_data,
    axis_start,
    check_n_latent,
    cholesky,
    latent_precision,
    log_likelihood_from_moments,
    sample_moments,
)
from emlib._numerics import EPS, LOG_2PI

# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PPCA(Parameters):
    """Parameters (W, mean, sigma^2) of probabilistic PCA.

    Instances are immutable: the arrays are read-only copies of the inputs.

    Parameters
    ----------
    W : array_like, shape (D, q)
        Loading matrix, 1 <= q <= D.
    mean : array_like, shape (D,)
        Mean of x.
    noise_variance : real
        sigma^2 > 0, the variance of the isotropic noise.

    Raises
    ------
    TypeError
        If an argument is not real numbers.
    ValueError
        If shapes disagree, a value is not finite, or sigma^2 <= 0.
    """

    W: np.ndarray
    mean: np.ndarray
    noise_variance: float

    def __post_init__(self) -> None:
        W = as_real_array(self.W, "W")
        mean = as_real_array(self.mean, "mean")
        if W.ndim != 2 or W.shape[1] < 1 or W.shape[0] < W.shape[1]:
            raise ValueError(
                f"W must have shape (D, q) with 1 <= q <= D, got shape {W.shape}."
            )
        if mean.shape != (W.shape[0],):
            raise ValueError(
                f"mean must have shape (D,) = ({W.shape[0]},) to match W, "
                f"got shape {mean.shape}."
            )
        noise = check_real(self.noise_variance, "noise_variance", 0.0, strict=True)
        object.__setattr__(self, "W", read_only(W))
        object.__setattr__(self, "mean", read_only(mean))
        object.__setattr__(self, "noise_variance", noise)

    @property
    def n_features(self) -> int:
        """D, the dimension of x."""
        return self.W.shape[0]

    @property
    def n_latent(self) -> int:
        """q, the dimension of z."""
        return self.W.shape[1]

    def covariance(self) -> np.ndarray:
        """C = W W^T + sigma^2 I_D, the covariance of x; shape (D, D)."""
        cov = self.W @ self.W.T
        cov[np.diag_indices_from(cov)] += self.noise_variance
        return cov

    def __repr__(self) -> str:
        return (
            f"PPCA(D={self.n_features}, q={self.n_latent}, "
            f"noise_variance={self.noise_variance:.6g})"
        )


def _check_theta(theta):
    if not isinstance(theta, PPCA):
        raise TypeError(
            "theta must be an emlib.ppca.PPCA(W, mean, noise_variance), "
            f"got {type(theta).__name__}."
        )


# ---------------------------------------------------------------------------
# Densities
# ---------------------------------------------------------------------------


def log_likelihood(X: ArrayLike, theta: PPCA) -> float:
    """log P(X | theta) = sum_n log N(x_n | mean, W W^T + sigma^2 I).

    Parameters
    ----------
    X : array_like, shape (N, D)
        Observations, one per row.
    theta : PPCA

    Returns
    -------
    float

    Notes
    -----
    With C = L L^T (Cholesky), log det C = 2 sum_i log L_ii and the
    quadratic form (x - mean)^T C^-1 (x - mean) = v^T v with v = L^-1 (x - mean); no
    inverse or determinant is formed.

    Examples
    --------
    >>> import numpy as np
    >>> from emlib import ppca
    >>> theta = ppca.PPCA(W=[[1.0], [0.5], [0.0]], mean=[0, 0, 0], noise_variance=0.1)
    >>> X = [[1.0, 0.6, 0.1], [-0.8, -0.3, 0.0], [0.2, 0.0, -0.2]]
    >>> print(f"{ppca.log_likelihood(X, theta):.6f}")
    -2.962848
    """
    _check_theta(theta)
    X = as_data(X, theta.n_features)
    chol = cholesky(theta.covariance(), "W W^T + sigma^2 I")
    # Triangular solve by numpy's general solver on the (D, D) factor: D is
    # small, and L^-1 (X - mean)^T is (D, N).
    whitened = np.linalg.solve(chol, (X - theta.mean).T)
    n, d = X.shape
    log_det = 2.0 * np.log(np.diag(chol)).sum()
    return float(-0.5 * (n * (d * LOG_2PI + log_det) + np.sum(whitened**2)))


def posterior(X: ArrayLike, theta: PPCA) -> tuple[np.ndarray, np.ndarray]:
    """The exact posterior of z given each x_n: N(m_n, Sigma_z).

    Parameters
    ----------
    X : array_like, shape (N, D)
    theta : PPCA

    Returns
    -------
    means : ndarray, shape (N, q)
        m_n = M^-1 W^T (x_n - mean), with M = W^T W + sigma^2 I_q.
    covariance : ndarray, shape (q, q)
        Sigma_z = sigma^2 M^-1, the same for every point.

    Examples
    --------
    >>> from emlib import ppca
    >>> theta = ppca.PPCA(W=[[1.0], [0.5], [0.0]], mean=[0, 0, 0], noise_variance=0.1)
    >>> means, covariance = ppca.posterior([[1.0, 0.6, 0.1], [-0.8, -0.3, 0.0]], theta)
    >>> print(means.round(4).ravel(), covariance.round(4))
    [ 0.963  -0.7037] [[0.0741]]
    """
    _check_theta(theta)
    X = as_data(X, theta.n_features)
    m = latent_precision(theta.W, theta.noise_variance)
    means = np.linalg.solve(m, theta.W.T @ (X - theta.mean).T).T
    return means, theta.noise_variance * np.linalg.inv(m)


# ---------------------------------------------------------------------------
# EM
# ---------------------------------------------------------------------------


def initial_theta(X: ArrayLike, n_latent: int) -> PPCA:
    """The deterministic start used by ``em(X, q)``.

    The mean is the sample mean; the q columns of W point along the q
    coordinate axes of largest sample variance, each scaled to that axis's
    standard deviation; sigma^2 is the average variance per coordinate,
    tr(S) / D.

    Parameters
    ----------
    X : array_like, shape (N, D)
    n_latent : int
        q, with 1 <= q < D.

    Returns
    -------
    PPCA
    """
    X = as_data(X)
    q = check_n_latent(n_latent, X.shape[1])
    mean, s = sample_moments(X)
    W, noise_variance = axis_start(s, q)
    return PPCA(W, mean, noise_variance)


def _expected_statistics(s, theta):
    """The E-step in matrix form: S W and M = W^T W + sigma^2 I_q.

    With them, M^-1 W^T S W is the (scaled) second moment
    sum_n E[z_n] E[z_n]^T / N and sigma^2 M^-1 the posterior covariance.
    """
    return s @ theta.W, latent_precision(theta.W, theta.noise_variance)


def _m_step(s, theta, statistics):
    """Tipping and Bishop's eqs. 29-30 from the E-step's S W and M.

    Returns
    -------
    PPCA
        With W_new = S W (sigma^2 I + M^-1 W^T S W)^-1 and sigma^2_new =
        tr(S - S W M^-1 W_new^T) / D; the mean is kept (the sample mean).

    Raises
    ------
    ValueError
        When sigma^2 falls to rounding of tr(S) / D.
    """
    sw, m = statistics
    W, noise_variance = theta.W, theta.noise_variance
    d, q = W.shape
    inner = np.linalg.solve(m, W.T @ sw)  # M^-1 W^T S W, a new array
    inner.flat[:: q + 1] += noise_variance  # its diagonal
    W_new = np.linalg.solve(inner.T, sw.T).T  # S W (sigma^2 I + M^-1 W^T S W)^-1
    # tr(S W M^-1 W_new^T) = tr(W_new^T S W M^-1)
    explained = np.linalg.solve(m.T, W_new.T @ sw).trace()
    trace_s = s.trace()
    noise = (trace_s - explained) / d
    if not noise > EPS * trace_s / d:
        raise ValueError(
            f"the noise variance fell to {noise:.3g}: the data lie (to "
            f"rounding) in a {q}-dimensional affine subspace; use a smaller "
            "n_latent."
        )
    return PPCA(W_new, theta.mean, noise)


def theta_to_vector(theta: PPCA) -> np.ndarray:
    """(W, sigma^2) as the flat vector SQUAREM extrapolates: (W, log sigma^2).

    The mean is left out: EM keeps it at the sample mean. The log makes
    every real vector a positive noise variance; W is unconstrained.

    Parameters
    ----------
    theta : PPCA

    Returns
    -------
    ndarray, shape (D q + 1,)
    """
    return np.append(theta.W.ravel(), np.log(theta.noise_variance))


def vector_to_theta(vector: np.ndarray, like: PPCA) -> PPCA:
    """The PPCA of a :func:`theta_to_vector` vector, with ``like``'s mean.

    Parameters
    ----------
    vector : ndarray, shape (D q + 1,)
    like : PPCA
        Supplies D, q and the mean.

    Returns
    -------
    PPCA

    Raises
    ------
    ValueError
        If sigma^2 = exp(vector[-1]) underflows to 0 or overflows.
    """
    with np.errstate(over="ignore"):
        noise_variance = np.exp(vector[-1])
    return PPCA(vector[:-1].reshape(like.W.shape), like.mean, noise_variance)


def em(
    X: ArrayLike,
    init: PPCA | int,
    *,
    tol: float = 1e-10,
    max_iter: int = 1000,
    accelerate: Literal["squarem"] | None = None,
    stop: Literal["gain", "aitken"] = "gain",
) -> EMResult:
    """Fit probabilistic PCA by expectation-maximisation.

    Parameters
    ----------
    X : array_like or dask.array.Array, shape (N, D)
        Observations, one per row. A Dask array (chunked by rows, one chunk
        of columns) is read once, on Dask's active scheduler: each chunk is
        reduced to its count, mean and centred scatter, merged exactly, and
        the iterations then use only N, the mean and S.
    init : PPCA or int
        The start theta^(0), whose mean is replaced by the sample mean (the
        mean's maximum-likelihood estimate for every W and sigma^2); or the
        latent dimension q (1 <= q < D), in which case the start is
        :func:`initial_theta` ``(X, q)``.
    tol : float, default 1e-10
        Stop when an iteration raises the log-likelihood by less than
        ``tol * N``. With ``tol=0`` exactly ``max_iter`` iterations run
        (unless the log-likelihood falls).
    max_iter : int, default 1000
        Maximum number of iterations (>= 1).
    accelerate : {None, "squarem"}, default None
        "squarem": SQUAREM with the monotonicity safeguard, extrapolating
        (W, log sigma^2) (:func:`theta_to_vector`); as in :func:`emlib.em`.
    stop : {"gain", "aitken"}, default "gain"
        The stopping rule, as in :func:`emlib.em`.

    Returns
    -------
    EMResult
        ``theta`` is a :class:`PPCA`; ``log_likelihoods`` holds
        log P(X | theta^(i)) for i = 0..n_iter.

    Raises
    ------
    TypeError
        If ``init`` is neither a :class:`PPCA` nor an int.
    ValueError
        On bad input, or when sigma^2 falls to 0 (the data lie in a
        q-dimensional affine subspace: use a smaller q).

    Warns
    -----
    emlib.ConvergenceWarning
        If the run stops on ``max_iter`` with tol > 0, or on a decrease.

    Notes
    -----
    Every iteration touches only the D x D sample covariance S, never the
    N points.

    Examples
    --------
    >>> import numpy as np
    >>> from emlib import ppca
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(200, 1))  # one latent coordinate per point
    >>> X = z @ [[2.0, 1.0, 0.0]] + 0.5 * rng.normal(size=(200, 3))
    >>> fit = ppca.em(X, 1)
    >>> print(fit.converged, f"sigma^2 = {fit.theta.noise_variance:.4f}")
    True sigma^2 = 0.2628
    """
    if is_dask_array(X):
        from emlib import _dask  # Dask is optional: imported only when used

        n, mean, s = _dask.sample_moments(X)
    else:
        X = as_data(X)
        n = X.shape[0]
        mean, s = sample_moments(X)
    d = s.shape[0]
    if is_int(init):
        # initial_theta(X, q), from the moments already computed.
        W, noise_variance = axis_start(s, check_n_latent(init, d, "init"))
        init = PPCA(W, mean, noise_variance)
    if not isinstance(init, PPCA):
        raise TypeError(
            "init must be an emlib.ppca.PPCA(W, mean, noise_variance) start or a "
            f"latent dimension q (int), got {type(init).__name__}."
        )
    if init.n_features != d or init.n_latent >= d:
        raise ValueError(
            f"init.W has shape {init.W.shape}; with D = {d} it must be ({d}, q) "
            f"with 1 <= q < {d}."
        )
    theta = PPCA(init.W, mean, init.noise_variance)

    def e_pass(theta):
        log_lik = log_likelihood_from_moments(n, s, theta.W, theta.noise_variance)
        return log_lik, _expected_statistics(s, theta)

    return run_em(
        e_pass,
        lambda theta, statistics: _m_step(s, theta, statistics),
        theta,
        n=n,
        tol=tol,
        max_iter=max_iter,
        accelerate=accelerate,
        stop=stop,
        to_vector=theta_to_vector,
        from_vector=vector_to_theta,
    )
