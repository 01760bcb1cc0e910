"""EM for the D-dimensional Gaussian mixture with values missing at random.

``multivariate.em`` and ``multivariate.log_likelihood`` route here when X
holds NaN; a NaN entry is a value missing at random (MAR: whether it is
missing may depend on the row's observed values, not on the missing ones;
Little and Rubin, *Statistical Analysis with Missing Data*, 3rd ed. 2019,
sec. 1.3). Under MAR the missingness mechanism drops out of the likelihood,
and the observed-data log-likelihood is

.. math::

    \\log P(X_{obs} \\mid \\theta) = \\sum_j \\log \\sum_k \\alpha_k
        N(x_{j,o} \\mid \\mu_{k,o}, \\Sigma_{k,oo}),

o = o(j) the coordinates row j observes: a marginal of a Gaussian is the
Gaussian of the sub-vector and sub-matrix.

E-step (Ghahramani and Jordan 1994; Little and Rubin ch. 8 and 11), for a row
whose observed block is o and missing block m, given component k:

- gamma_jk is Bayes' rule with the marginal density N(x_o | mu_o, Sigma_oo);
- x_m | x_o, k is Gaussian with mean x-hat_m = mu_m + B_k (x_o - mu_o),
  B_k = Sigma_mo Sigma_oo^{-1}, and covariance the Schur complement
  C_k = Sigma_mm - Sigma_mo Sigma_oo^{-1} Sigma_om;
- so E[x | x_o, k] = x-hat (x_o with x-hat_m filled in) and
  E[(x - r)(x - r)^T | x_o, k] = (x-hat - r)(x-hat - r)^T + C_k padded with
  zeros outside the mm block.

The complete-data log-likelihood is linear in (1, x, x x^T) for each k, so Q
is the complete-data Q with these expectations in place of x and x x^T, and
each covariance family's M-step, a function of n_k, sum_j gamma_jk x_j and
sum_j gamma_jk x_j x_j^T only, applies unchanged to the completed statistics.
That holds for all four families ("tied" pools the K scatters, "diag" and
"spherical" keep their diagonal or its mean), so all four are supported. The
derivation is in notebooks/65-missing-data.ipynb.

Rows are grouped by missingness pattern, so each pattern's Cholesky factors,
regression coefficients and Schur complements are formed once per E-step.
A row with every value missing has marginal density 1 (log 0) and carries no
information: it is dropped (including it would return its gamma_jk = alpha_k,
E[x] = mu_k and E[x x^T] = Sigma_k + mu_k mu_k^T to the M-step, which leaves
EM's fixed points unchanged and only slows it).
"""

import numpy as np
from numpy.typing import ArrayLike

from emlib import multivariate as mv
from emlib._checks import as_array
from emlib._numerics import LOG_2PI, check_finite_rows

# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def as_real_array_with_nan(X: ArrayLike) -> np.ndarray:
    """``X`` as a new float64 array, NaN allowed (missing), infinities refused."""
    arr = as_array(X, "X")
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"X must hold real numbers (int or float, NaN for a missing value), "
            f"got dtype {arr.dtype}."
        )
    arr = arr.astype(np.float64, copy=False)
    if np.any(np.isinf(arr)):
        raise ValueError(
            "X contains infinite values; NaN marks a missing value, an infinity "
            "is not a value a Gaussian can have: remove it or mark it NaN."
        )
    return arr


def check_no_empty_column(X: np.ndarray) -> None:
    """Raise if a column of ``X`` (shape (N, D)) has no observed value."""
    empty = np.flatnonzero(np.isnan(X).all(axis=0))
    if empty.size:
        raise ValueError(
            f"column {empty[0]} of X has no observed value (every entry is NaN), "
            "so the data say nothing about that coordinate's mean or variance; "
            "drop the column."
        )


def mean_imputed(X: np.ndarray) -> np.ndarray:
    """The start's data: rows observing something, NaN -> the column's mean.

    Parameters
    ----------
    X : ndarray, shape (N, D)
        With NaN for missing values and no column entirely NaN.

    Returns
    -------
    ndarray, shape (N', D)
        The N' rows with at least one observed value, each NaN replaced by
        the mean of its column's observed values. ``X`` itself if nothing is
        missing.
    """
    missing = np.isnan(X)
    if not missing.any():
        return X
    rows = X[~missing.all(axis=1)]
    return np.where(np.isnan(rows), np.nanmean(X, axis=0), rows)


# ---------------------------------------------------------------------------
# The data grouped by missingness pattern
# ---------------------------------------------------------------------------


class Patterns:
    """Rows of X grouped by which coordinates they observe.

    Parameters
    ----------
    X : ndarray, shape (N, D)
        NaN marks a missing value. Rows entirely NaN are dropped.
    sample_weight : ndarray, shape (N,) or None
        Validated weights w_j >= 0 (row j counts w_j times), or None for 1.

    Attributes
    ----------
    groups : list of (observed, missing, rows, values)
        ``observed`` and ``missing`` index arrays (o and m, together
        0..D-1); ``rows`` the row numbers in X, shape (n_p,); ``values``
        x_o of those rows transposed, shape (|o|, n_p).
    n_rows : float
        The (weighted) number of rows observing at least one coordinate: the
        N of the stopping rule tol * N.
    """

    def __init__(self, X: np.ndarray, sample_weight: np.ndarray | None = None) -> None:
        self.n_features = X.shape[1]
        observed = ~np.isnan(X)
        masks, inverse = np.unique(observed, axis=0, return_inverse=True)
        self.groups = []
        for p, mask in enumerate(masks):
            if not mask.any():
                continue  # every value missing: log density 0, no information
            rows = np.flatnonzero(inverse.ravel() == p)
            o, m = np.flatnonzero(mask), np.flatnonzero(~mask)
            self.groups.append((o, m, rows, np.ascontiguousarray(X[rows][:, o].T)))
        self.weights = np.ones(X.shape[0]) if sample_weight is None else sample_weight
        self.n_rows = sum(self.weights[group[2]].sum() for group in self.groups)

    def _conditionals(self, theta, sigma, o, m):
        """Per component: log normaliser of x_o, U_k, B_k and C_k for one pattern.

        Parameters
        ----------
        theta : multivariate.GMM
        sigma : ndarray, shape (K, D, D)
            theta's covariances as full matrices.
        o, m : ndarray of int
            Observed and missing coordinates.

        Returns
        -------
        log_norm : ndarray, shape (K,)
            log alpha_k - (|o|/2) log 2 pi - (1/2) log det Sigma_k,oo.
        u : ndarray, shape (K, |o|, |o|)
            U_k = L_k^{-T} for Sigma_k,oo = L_k L_k^T, so Sigma_k,oo^{-1} = U_k U_k^T.
        coef : ndarray, shape (K, |m|, |o|)
            B_k = Sigma_k,mo Sigma_k,oo^{-1}.
        cond_cov : ndarray, shape (K, |m|, |m|)
            C_k = Sigma_k,mm - Sigma_k,mo Sigma_k,oo^{-1} Sigma_k,om.
        """
        # A principal sub-matrix of a positive definite matrix is positive
        # definite, so the factorisation succeeds wherever theta's did.
        u = mv._precision_cholesky(np.linalg.cholesky(sigma[:, o][:, :, o]))
        with np.errstate(divide="ignore"):
            log_weights = np.log(theta.weights)
        log_det_u = np.log(np.diagonal(u, axis1=1, axis2=2)).sum(axis=1)
        log_norm = log_weights - 0.5 * o.size * LOG_2PI + log_det_u
        # W_k = Sigma_mo U_k, so B_k = W_k U_k^T and Sigma_mo Sigma_oo^{-1}
        # Sigma_om = W_k W_k^T: the Schur complement stays symmetric.
        w_mo = sigma[:, m][:, :, o] @ u
        coef = w_mo @ u.transpose(0, 2, 1)
        cond_cov = sigma[:, m][:, :, m] - w_mo @ w_mo.transpose(0, 2, 1)
        return log_norm, u, coef, cond_cov

    @staticmethod
    def _log_joint(means, log_norm, u, o, values, rows):
        """x_o - mu_k,o (K, |o|, n) and log alpha_k + log N(x_o | .) (K, n)."""
        dev = values[None] - means[:, o, None]
        with np.errstate(over="ignore"):
            # |U_k^T (x_o - mu_k,o)|^2 = (x_o - mu_o)^T Sigma_oo^{-1} (x_o - mu_o).
            z = u.transpose(0, 2, 1) @ dev
            log_joint = log_norm[:, None] - 0.5 * np.einsum("kin,kin->kn", z, z)
        peak = log_joint.max(axis=0)
        if not np.all(np.isfinite(peak)):
            # Name the first such row by its number in X.
            peaks = np.zeros(rows.max() + 1)
            peaks[rows] = peak
            check_finite_rows(peaks)
        return dev, log_joint, peak

    def log_likelihood(self, theta: "mv.GMM") -> float:
        """log P(X_obs | theta), the observed-data log-likelihood, sum_j w_j (...)."""
        sigma, total = theta.full_covariances(), 0.0
        for o, m, rows, values in self.groups:
            log_norm, u, _, _ = self._conditionals(theta, sigma, o, m)
            _, log_joint, peak = self._log_joint(
                theta.means, log_norm, u, o, values, rows
            )
            row_terms = peak + np.log(np.exp(log_joint - peak).sum(axis=0))
            total += self.weights[rows] @ row_terms
        return float(total)

    def e_pass(self, theta: "mv.GMM") -> "tuple[float, mv._Moments]":
        """E-step at theta with the completed moments, about r_k = mu_k.

        Returns
        -------
        log_lik : float
            log P(X_obs | theta).
        moments : multivariate._Moments
            Counts n_k, means and scatter of the completed rows x-hat_jk under
            w_j gamma_jk, the scatter including sum_j w_j gamma_jk C_jk.
        """
        k, d = theta.n_components, self.n_features
        sigma = theta.full_covariances()
        moments = mv._Moments(k, d, full=theta.covariance_type in ("full", "tied"))
        log_lik = 0.0
        for o, m, rows, values in self.groups:
            log_norm, u, coef, cond_cov = self._conditionals(theta, sigma, o, m)
            dev, log_joint, peak = self._log_joint(
                theta.means, log_norm, u, o, values, rows
            )
            gamma = np.exp(log_joint - peak)
            total = gamma.sum(axis=0)
            log_lik += self.weights[rows] @ (peak + np.log(total))
            gamma *= self.weights[rows] / total  # w_j gamma-hat_jk
            # x-hat_jk - mu_k: x_o - mu_o observed, B_k (x_o - mu_o) missing.
            completed = np.empty((k, d, values.shape[1]))
            completed[:, o] = dev
            completed[:, m] = coef @ dev
            moments.add(gamma, completed)
            # + sum_j gamma_jk C_k on the mm block: the part of
            # E[(x - r)(x - r)^T | x_o, k] that x-hat misses. It does not
            # depend on r, so it adds to the merged scatter as it stands.
            mass = gamma.sum(axis=1)
            if moments.full:
                moments.m2[:, m[:, None], m] += mass[:, None, None] * cond_cov
            else:
                moments.m2[:, m] += mass[:, None] * np.diagonal(
                    cond_cov, axis1=1, axis2=2
                )
        return float(log_lik), moments
