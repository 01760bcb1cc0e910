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

import numbers
from dataclasses import dataclass

import numpy as np

from emlib._checks import as_real_array, check_stopping_rule, read_only
from emlib.fit import EMResult

_LOG_2PI = np.log(2.0 * np.pi)

# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PPCA:
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

    def __post_init__(self):
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
        noise = self.noise_variance
        if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
            raise TypeError(
                f"noise_variance must be a real number, got {type(noise).__name__}."
            )
        noise = float(noise)
        if not (np.isfinite(noise) and noise > 0):
            raise ValueError(f"noise_variance must be finite and > 0, got {noise}.")
        object.__setattr__(self, "W", read_only(W))
        object.__setattr__(self, "mean", read_only(mean))
        object.__setattr__(self, "noise_variance", noise)

    @property
    def n_features(self):
        """D, the dimension of x."""
        return self.W.shape[0]

    @property
    def n_latent(self):
        """q, the dimension of z."""
        return self.W.shape[1]

    def covariance(self):
        """C = W W^T + sigma^2 I_D, the covariance of x; shape (D, D)."""
        cov = self.W @ self.W.T
        cov[np.diag_indices_from(cov)] += self.noise_variance
        return cov

    def __repr__(self):
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


def _as_data(X, n_features=None):
    """Validate X: shape (N, D), finite, N >= 1; return a float64 copy."""
    X = as_real_array(X, "X")
    if X.ndim != 2:
        hint = " (pass one point per row, X.reshape(-1, 1) for D = 1)"
        raise ValueError(f"X must be 2-D, shape (N, D){hint}; got shape {X.shape}.")
    if X.shape[0] == 0:
        raise ValueError("X is empty; PPCA needs at least one observation.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"X has D = {X.shape[1]} columns but theta has D = {n_features}."
        )
    return X


# ---------------------------------------------------------------------------
# Densities
# ---------------------------------------------------------------------------


def _cholesky(cov, what):
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"{what} is not positive definite in float64; rescale the data."
        ) from None


def log_likelihood(X, theta):
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
    X = _as_data(X, theta.n_features)
    chol = _cholesky(theta.covariance(), "W W^T + sigma^2 I")
    # Triangular solve by numpy's general solver on the (D, D) factor: D is
    # small, and L^-1 (X - mean)^T is (D, N).
    whitened = np.linalg.solve(chol, (X - theta.mean).T)
    n, d = X.shape
    log_det = 2.0 * np.log(np.diag(chol)).sum()
    return float(-0.5 * (n * (d * _LOG_2PI + log_det) + np.sum(whitened**2)))


def posterior(X, theta):
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
    X = _as_data(X, theta.n_features)
    m = _latent_precision(theta.W, theta.noise_variance)
    means = np.linalg.solve(m, theta.W.T @ (X - theta.mean).T).T
    return means, theta.noise_variance * np.linalg.inv(m)


def _latent_precision(W, noise_variance):
    """M = W^T W + sigma^2 I_q, shape (q, q).

    sigma^2 M^-1 is the posterior covariance of z given x.
    """
    m = W.T @ W
    m[np.diag_indices_from(m)] += noise_variance
    return m


# ---------------------------------------------------------------------------
# EM
# ---------------------------------------------------------------------------


def _check_n_latent(q, d):
    if isinstance(q, bool) or not isinstance(q, int | np.integer):
        raise TypeError(f"n_latent must be an int, got {type(q).__name__}.")
    if not 1 <= q < d:
        raise ValueError(
            f"n_latent q must satisfy 1 <= q < D = {d} (with q = D the noise "
            f"variance is not identifiable); got {q}."
        )
    return int(q)


def _moments(X):
    """Sample mean (D,) and covariance S (D, D), normalised by N, from centred data."""
    mean = X.mean(axis=0)
    centred = X - mean
    return mean, centred.T @ centred / X.shape[0]


def initial_theta(X, n_latent):
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
    X = _as_data(X)
    q = _check_n_latent(n_latent, X.shape[1])
    mean, s = _moments(X)
    return _start(mean, s, q)


def _start(mean, s, q):
    variances = np.diag(s)
    if not variances.max() > 0:
        raise ValueError(
            "all observations are equal (sample covariance 0); PPCA needs data "
            "with some spread."
        )
    axes = np.argsort(-variances, kind="stable")[:q]
    W = np.zeros((s.shape[0], q))
    W[axes, np.arange(q)] = np.sqrt(variances[axes])
    return PPCA(W, mean, variances.mean())


def _log_likelihood_from_moments(n, s, W, noise_variance):
    """log P(X | theta) when theta's mean is the sample mean:
    -(N/2) (D log 2 pi + log det C + tr(C^-1 S))."""
    d = s.shape[0]
    cov = W @ W.T
    cov[np.diag_indices_from(cov)] += noise_variance
    chol = _cholesky(cov, "W W^T + sigma^2 I")
    half = np.linalg.solve(chol, s)  # L^-1 S, so tr(C^-1 S) = tr(L^-T L^-1 S)
    trace = np.trace(np.linalg.solve(chol.T, half))
    log_det = 2.0 * np.log(np.diag(chol)).sum()
    return float(-0.5 * n * (d * _LOG_2PI + log_det + trace))


def _em_step(s, W, noise_variance):
    """One EM iteration on the sample covariance S (Tipping and Bishop, eqs. 29-30).

    Returns
    -------
    W_new : ndarray, shape (D, q)
    noise_variance_new : float
    """
    d, q = W.shape
    m = _latent_precision(W, noise_variance)
    sw = s @ W
    # E-step statistics in matrix form: M^-1 W^T S W is the (scaled) second
    # moment sum_n E[z_n] E[z_n]^T / N, and sigma^2 M^-1 the posterior covariance.
    m_inv_wt_sw = np.linalg.solve(m, W.T @ sw)
    inner = m_inv_wt_sw.copy()
    inner[np.diag_indices(q)] += noise_variance
    W_new = np.linalg.solve(inner.T, sw.T).T  # S W (sigma^2 I + M^-1 W^T S W)^-1
    # tr(S W M^-1 W_new^T) = tr(W_new^T S W M^-1)
    explained = np.trace(np.linalg.solve(m.T, W_new.T @ sw).T)
    return W_new, (np.trace(s) - explained) / d


def em(X, n_latent, *, init=None, tol=1e-10, max_iter=1000):
    """Fit probabilistic PCA by expectation-maximisation.

    Parameters
    ----------
    X : array_like, shape (N, D)
        Observations, one per row.
    n_latent : int
        q, the latent dimension, 1 <= q < D.
    init : PPCA, optional
        The start theta^(0); its mean is replaced by the sample mean (the
        mean's maximum-likelihood estimate for every W and sigma^2). Default
        :func:`initial_theta` ``(X, n_latent)``.
    tol : float, default 1e-10
        Stop when an iteration raises the log-likelihood by less than
        ``tol * N``. With ``tol=0`` exactly ``max_iter`` iterations run.
    max_iter : int, default 1000
        Maximum number of iterations (>= 1).

    Returns
    -------
    EMResult
        ``theta`` is a :class:`PPCA`; ``log_likelihoods`` holds
        log P(X | theta^(i)) for i = 0..n_iter.

    Raises
    ------
    ValueError
        On bad input, or when sigma^2 falls to 0 (the data lie in a
        q-dimensional affine subspace: use a smaller q).

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
    X = _as_data(X)
    n, d = X.shape
    q = _check_n_latent(n_latent, d)
    check_stopping_rule(tol, max_iter)
    mean, s = _moments(X)
    if init is None:
        theta = _start(mean, s, q)
    else:
        _check_theta(init)
        if init.W.shape != (d, q):
            raise ValueError(
                f"init.W has shape {init.W.shape}; with D = {d} and "
                f"n_latent = {q} it must be ({d}, {q})."
            )
        theta = PPCA(init.W, mean, init.noise_variance)
    W, noise = np.array(theta.W), theta.noise_variance
    log_likelihoods = [_log_likelihood_from_moments(n, s, W, noise)]
    converged = False
    for _ in range(max_iter):
        W, noise = _em_step(s, W, noise)
        if not noise > np.finfo(np.float64).eps * np.trace(s) / d:
            raise ValueError(
                f"the noise variance fell to {noise:.3g}: the data lie (to "
                f"rounding) in a {q}-dimensional affine subspace; use a smaller "
                "n_latent."
            )
        log_likelihoods.append(_log_likelihood_from_moments(n, s, W, noise))
        if tol > 0 and log_likelihoods[-1] - log_likelihoods[-2] < tol * n:
            converged = True
            break
    return EMResult(
        PPCA(W, mean, noise),
        np.array(log_likelihoods),
        len(log_likelihoods) - 1,
        converged,
    )
