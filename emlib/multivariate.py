"""The D-dimensional Gaussian mixture: EM with scikit-learn's four covariance types.

x_j in R^D (``X`` of shape (N, D)), theta = (alpha_k, mu_k, Sigma_k), and
Lambda_k = Sigma_k^{-1}. The density

.. math::

    P(x \\mid \\theta) = \\sum_k \\alpha_k
        (2\\pi)^{-D/2} \\det(\\Sigma_k)^{-1/2}
        \\exp\\!\\big(-\\tfrac12 (x - \\mu_k)^T \\Sigma_k^{-1} (x - \\mu_k)\\big)

is evaluated through Cholesky factors only: Sigma_k = L_k L_k^T, and the
precision's factor U_k = L_k^{-T} (upper triangular, by substitution, never an
explicit inverse of Sigma_k), so the quadratic form is v^T v, v = U_k^T (x - mu_k), and
-(1/2) log det Sigma_k = sum_i log U_k[i, i]. Responsibilities are formed in
log space (log-sum-exp), and the M-step's covariances from centred moments
(the corrected two-pass update, merged block by block), so data far from the
origin keeps its precision. The M-step formulas are derived with SymPy in
notebooks/60-multivariate-gmm.ipynb.

Covariances come in scikit-learn's shapes (``covariance_type``):

=========== ========= ========================================
type        shape     Sigma_k
=========== ========= ========================================
"full"      (K, D, D) covariances[k]
"tied"      (D, D)    covariances, shared by every component
"diag"      (K, D)    diag(covariances[k])
"spherical" (K,)      covariances[k] * I
=========== ========= ========================================
"""

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from emlib import _missing
from emlib._checks import (
    SUM_TOL,
    Parameters,
    as_generator,
    as_real_array,
    as_responsibilities,
    as_sample_weight,
    check_int,
    check_magnitude,
    check_n_components,
    check_real,
    check_stopping_rule,
    is_dask_array,
    is_int,
    read_only,
)
from emlib._core import EMResult, run_em
from emlib._numerics import (
    EPS,
    LOG_2PI,
    TINY,
    check_finite_rows,
    divide_where_mass,
    log_sum_exp_rows,
)

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# Symmetric means |Sigma - Sigma^T| <= this times max |Sigma| entrywise.
_SYMMETRY_RTOL = 1e-12
# A covariance is numerically singular when a standard deviation falls within
# this many units in the last place of its coordinate's mean, or a coordinate's
# variance unexplained by the others within this many eps of its variance
# (_is_singular).
_COLLAPSE_ULPS = 16
# At most this many Lloyd iterations refine the k-means++ seeds in
# initial_theta (fewer if the assignment stops changing).
_LLOYD_ITERATIONS = 20
# Points per block in em: the (K, D, block) temporaries stay in cache.
_BLOCK_ELEMENTS = 2**16


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def as_points(X: ArrayLike, *, allow_missing: bool = False) -> np.ndarray:
    """Validate data ``X``: shape (N, D), finite, N >= 1, D >= 1.

    With ``allow_missing``, NaN entries are accepted as missing values
    (emlib._missing), provided every column has an observed value.

    Returns
    -------
    ndarray, shape (N, D)
        A float64 copy.
    """
    arr = _missing.as_real_array_with_nan(X) if allow_missing else as_real_array(X, "X")
    if arr.ndim == 1:
        raise ValueError(
            f"X must be 2-D, one row per observation, shape (N, D); got a 1-D "
            f"array of shape {arr.shape}. For one-dimensional data pass a "
            "column, X.reshape(-1, 1), of shape (N, 1) (or use emlib.em)."
        )
    if arr.ndim != 2:
        raise ValueError(f"X must have shape (N, D), got shape {arr.shape}.")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"X has shape {arr.shape}; EM needs at least one observation (N >= 1) "
            "of at least one coordinate (D >= 1)."
        )
    if allow_missing:
        _missing.check_no_empty_column(arr)
    check_magnitude(
        np.nanmax(np.abs(arr)), "X", "divide each column by its standard deviation"
    )
    return arr


def _check_covariance_type(covariance_type):
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {', '.join(map(repr, COVARIANCE_TYPES))};"
            f" got {covariance_type!r}."
        )
    return covariance_type


def _check_theta(theta, n_features):
    if not isinstance(theta, GMM):
        raise TypeError(
            "theta must be an emlib.multivariate.GMM(weights, means, covariances, "
            f"covariance_type), got {type(theta).__name__}."
        )
    if theta.means.shape[1] != n_features:
        raise ValueError(
            f"X has D = {n_features} coordinates but theta's means have "
            f"D = {theta.means.shape[1]}."
        )


# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------


def _lower_cholesky(sigma, what):
    """Lower Cholesky factors of SPD matrices, raising with ``what(k)`` named.

    Parameters
    ----------
    sigma : ndarray, shape (K, D, D)
    what : callable
        ``what(k)`` names matrix k for the message, e.g. "component 2's covariance".

    Returns
    -------
    ndarray, shape (K, D, D)
    """
    try:
        # One call for the stack: LAPACK factors each matrix as it would alone.
        return np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        failed = next(k for k in range(sigma.shape[0]) if not _factors(sigma[k]))
    raise ValueError(
        f"{what(failed)} is not positive definite (its Cholesky factorisation "
        "fails); a covariance must be symmetric with all eigenvalues > 0."
    )


def _factors(matrix):
    """Whether one matrix has a Cholesky factor (is numerically positive definite)."""
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return False
    return True


def _precision_cholesky(chol):
    """U_k = L_k^{-T}, upper triangular, by forward substitution on L_k U_k^T = I.

    Then Lambda_k = Sigma_k^{-1} = U_k U_k^T and (x - mu)^T Lambda_k (x - mu)
    = |(x - mu) U_k|^2.

    Parameters
    ----------
    chol : ndarray, shape (K, D, D)
        Lower Cholesky factors L_k of the covariances.

    Returns
    -------
    ndarray, shape (K, D, D)
    """
    d = chol.shape[1]
    inv_lower = np.zeros_like(chol)  # L_k^{-1}, lower triangular
    eye = np.eye(d)
    for i in range(d):
        rhs = eye[i] - np.einsum("kl,klc->kc", chol[:, i, :i], inv_lower[:, :i, :])
        inv_lower[:, i, :] = rhs / chol[:, i, i, None]
    return inv_lower.transpose(0, 2, 1).copy()


def _as_full(covariances, covariance_type, n_components, n_features):
    """The K covariance matrices Sigma_k, shape (K, D, D), from any type's shape."""
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features))
    eye = np.eye(n_features)
    if covariance_type == "diag":
        return covariances[:, :, None] * eye
    return covariances[:, None, None] * eye  # spherical


@dataclass(frozen=True, eq=False)
class GMM(Parameters):
    """Parameters theta of a K-component Gaussian mixture in D dimensions.

    P(x | theta) = sum_k alpha_k N(x | mu_k, Sigma_k). Instances are immutable:
    the arrays are read-only copies of the inputs.

    Parameters
    ----------
    weights : array_like, shape (K,)
        Mixing weights alpha_k >= 0, summing to 1 (within 1e-9).
    means : array_like, shape (K, D)
        Component means mu_k.
    covariances : array_like
        Sigma_k in scikit-learn's shapes: "full" (K, D, D), "tied" (D, D),
        "diag" (K, D), "spherical" (K,). Symmetric (within 1e-12 of the
        largest entry; stored symmetrised) and positive definite.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"

    Attributes
    ----------
    n_components : int
        K.
    n_features : int
        D.

    Raises
    ------
    TypeError
        If an argument is not real numbers.
    ValueError
        If a shape is wrong, a value is not finite, the weights are off the
        simplex, or a covariance is not symmetric positive definite (the
        message names the component).
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    covariance_type: str = "full"
    # U_k = L_k^{-T} (K, D, D) and sum_i log U_k[i, i] = -(1/2) log det Sigma_k.
    _precision_chol: np.ndarray = field(init=False, repr=False)
    _log_det_precision_chol: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        cov_type = _check_covariance_type(self.covariance_type)
        weights = as_real_array(self.weights, "weights")
        means = as_real_array(self.means, "means")
        covariances = as_real_array(self.covariances, "covariances")
        if weights.ndim != 1 or weights.size < 1:
            raise ValueError(
                f"weights must have shape (K,) with K >= 1, got shape {weights.shape}."
            )
        k = weights.size
        if means.ndim != 2 or means.shape[0] != k or means.shape[1] < 1:
            raise ValueError(
                f"means must have shape (K, D) = ({k}, D) with D >= 1, one row per "
                f"component; got shape {means.shape}."
            )
        d = means.shape[1]
        want = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}
        if covariances.shape != want[cov_type]:
            raise ValueError(
                f"covariances for covariance_type={cov_type!r} must have shape "
                f"{want[cov_type]} (K = {k}, D = {d}); got shape {covariances.shape}."
            )
        if np.any(weights < 0) or abs(weights.sum() - 1.0) > SUM_TOL:
            raise ValueError(
                "weights must be >= 0 and sum to 1 (they are the probabilities "
                f"alpha_k); got sum {weights.sum():.12g}, min {weights.min():.3g}."
            )
        self._store(weights, means, _symmetrised(covariances, cov_type))

    @classmethod
    def _from_m_step(cls, weights, means, covariances, covariance_type):
        """A GMM of arrays the M-step built, without validating them again.

        :func:`_m_step_from_moments` makes them fresh float64 arrays of the
        type's shapes: weights n_k / sum_k n_k with every n_k > 0 (on the
        simplex to rounding), full and tied covariances symmetric (averaged
        with their transposes), and means and covariances passed by
        :func:`_check_not_singular` (finite: a non-finite mean fails its
        resolution test; variances > 0). Every check of ``__post_init__``
        would pass and its symmetrisation would return the covariances
        unchanged ((S + S) / 2 = S exactly), so only the factorisation
        remains.
        """
        theta = object.__new__(cls)
        object.__setattr__(theta, "covariance_type", covariance_type)
        theta._store(weights, means, covariances)
        return theta

    def _store(self, weights, means, covariances):
        """Factor the validated covariances; store read-only copies of all."""
        k, d = means.shape
        cov_type = self.covariance_type
        full = _as_full(covariances, cov_type, k, d)
        if cov_type == "tied":
            chol = _lower_cholesky(full[:1], lambda _: "the tied covariance")
            chol = np.repeat(chol, k, axis=0)
        else:
            chol = _lower_cholesky(full, lambda j: f"component {j}'s covariance")
        precision_chol = _precision_cholesky(chol)
        if not np.all(np.isfinite(precision_chol)):
            j = int(np.argmin(np.isfinite(precision_chol).all(axis=(1, 2))))
            raise ValueError(
                f"component {j}'s covariance is too close to singular to invert "
                "in float64; rescale the data or add reg_covar."
            )
        for name, arr in [
            ("weights", weights),
            ("means", means),
            ("covariances", covariances),
            ("_precision_chol", precision_chol),
            (
                "_log_det_precision_chol",
                np.log(np.diagonal(precision_chol, axis1=1, axis2=2)).sum(axis=1),
            ),
        ]:
            object.__setattr__(self, name, read_only(arr))

    @property
    def n_components(self) -> int:
        """Number of components K."""
        return self.weights.size

    @property
    def n_features(self) -> int:
        """Dimension D of each observation."""
        return self.means.shape[1]

    def full_covariances(self) -> np.ndarray:
        """Sigma_k as a new array of shape (K, D, D), whatever the type."""
        return np.array(
            _as_full(
                self.covariances,
                self.covariance_type,
                self.n_components,
                self.n_features,
            )
        )

    def __repr__(self) -> str:
        return (
            f"GMM(weights={np.array2string(self.weights, precision=6)}, "
            f"means={np.array2string(self.means, precision=6)}, "
            f"covariances={np.array2string(self.covariances, precision=6)}, "
            f"covariance_type={self.covariance_type!r})"
        )


def _symmetrised(covariances, covariance_type):
    """Check a full or tied covariance is symmetric; return (S + S^T) / 2."""
    if covariance_type not in ("full", "tied"):
        if np.any(covariances <= 0):
            j = int(np.argmin(covariances.reshape(covariances.shape[0], -1).min(1)))
            raise ValueError(
                f"component {j}'s covariance is not positive definite: "
                f"{covariance_type} covariances must be > 0, got "
                f"{covariances[j].min():.3g}."
            )
        return covariances
    stack = covariances.reshape((-1, *covariances.shape[-2:]))
    asym = np.abs(stack - stack.transpose(0, 2, 1)).max(axis=(1, 2))
    scale = np.abs(stack).max(axis=(1, 2))
    if np.any(asym > _SYMMETRY_RTOL * scale):
        j = int(np.argmax(asym - _SYMMETRY_RTOL * scale))
        what = (
            "the tied covariance"
            if covariance_type == "tied"
            else f"component {j}'s covariance"
        )
        raise ValueError(
            f"{what} is not symmetric: |Sigma - Sigma^T| reaches {asym[j]:.3g}."
        )
    return ((stack + stack.transpose(0, 2, 1)) / 2).reshape(covariances.shape)


# ---------------------------------------------------------------------------
# Probability estimators
# ---------------------------------------------------------------------------


def _log_normalizers(theta):
    """log alpha_k - (D/2) log 2 pi - (1/2) log det Sigma_k, shape (K,)."""
    with np.errstate(divide="ignore"):
        log_weights = np.log(theta.weights)
    return (
        log_weights - 0.5 * theta.n_features * LOG_2PI + theta._log_det_precision_chol
    )


def _log_joint(X, theta):
    """log alpha_k + log N(x_j | mu_k, Sigma_k), shape (N, K)."""
    out = np.empty((X.shape[0], theta.n_components))
    log_norm = _log_normalizers(theta)
    for k in range(theta.n_components):
        # (x_j - mu_k) U_k: the difference first, so far from the origin the
        # quadratic form keeps its precision. A square overflowing to inf is a
        # density of 0, which log space represents.
        with np.errstate(over="ignore"):
            z = (X - theta.means[k]) @ theta._precision_chol[k]
            out[:, k] = log_norm[k] - 0.5 * np.einsum("jd,jd->j", z, z)
    return out


def log_likelihood(
    X: ArrayLike, theta: GMM, sample_weight: ArrayLike | None = None
) -> float:
    """log P(X | theta) = sum_j w_j log sum_k alpha_k N(x_j | mu_k, Sigma_k).

    A sum over the N points, not a mean; w_j = 1 without ``sample_weight``.
    With NaN entries (values missing at random) it is the observed-data
    log-likelihood: each row's term uses the marginal density of its observed
    coordinates, N(x_o | mu_k,o, Sigma_k,oo); a row with every value missing
    contributes 0.

    Parameters
    ----------
    X : array_like, shape (N, D)
        NaN marks a missing value; no column may be entirely NaN.
    theta : GMM
    sample_weight : array_like, shape (N,), optional
        w_j >= 0, not all 0: row j counts w_j times.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from emlib import multivariate
    >>> X = [[0.0, 0.4], [0.5, -0.2], [-0.3, 0.1], [2.0, 2.3], [2.4, 1.8], [1.7, 2.1]]
    >>> means = [[0.0, 0.0], [2.0, 2.0]]
    >>> theta = multivariate.GMM([0.5, 0.5], means, [np.eye(2), np.eye(2)])
    >>> print(f"{multivariate.log_likelihood(X, theta):.6f}")
    -15.522000
    """
    X = as_points(X, allow_missing=True)
    w = as_sample_weight(sample_weight, X.shape[0])
    _check_theta(theta, X.shape[1])
    if np.isnan(X).any():
        return _missing.Patterns(X, w).log_likelihood(theta)
    log_p = log_sum_exp_rows(_log_joint(X, theta))
    return float(log_p.sum() if w is None else w @ log_p)


def e_step(X: ArrayLike, theta: GMM) -> np.ndarray:
    """Responsibilities gamma-hat_jk = P(z_j = k | x_j, theta), by Bayes' rule.

    Computed in log space: exp(log_joint - max_k log_joint), normalised by
    its row sum, so a point far from every mean still gets a row summing to 1.

    Parameters
    ----------
    X : array_like, shape (N, D)
    theta : GMM

    Returns
    -------
    ndarray, shape (N, K)

    Examples
    --------
    >>> import numpy as np
    >>> from emlib import multivariate
    >>> X = [[0.0, 0.4], [0.5, -0.2], [-0.3, 0.1], [2.0, 2.3], [2.4, 1.8], [1.7, 2.1]]
    >>> means = [[0.0, 0.0], [2.0, 2.0]]
    >>> theta = multivariate.GMM([0.5, 0.5], means, [np.eye(2), np.eye(2)])
    >>> print(multivariate.e_step(X, theta).round(4))
    [[0.9608 0.0392]
     [0.9677 0.0323]
     [0.9879 0.0121]
     [0.01   0.99  ]
     [0.0121 0.9879]
     [0.0266 0.9734]]
    """
    X = as_points(X)
    _check_theta(theta, X.shape[1])
    log_p = _log_joint(X, theta)
    peak = log_p.max(axis=1, keepdims=True)
    check_finite_rows(peak[:, 0])
    weights = np.exp(log_p - peak)
    return weights / weights.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------
# M-step
# ---------------------------------------------------------------------------


class _Moments:
    """Weighted counts, means and scatter of K weightings, merged block by block.

    Each block is summarised by the corrected two-pass algorithm (Chan, Golub
    and LeVeque 1983, eq. 1.7) and merged with their pairwise update,
    M2 = M2_a + M2_b + n_a n_b / (n_a + n_b) delta delta^T, so every term is
    a centred moment: no E[x x^T] - mu mu^T cancellation.

    Values are deviations d = x - r_k from a reference point r_k per component;
    ``shift`` is then mu-hat_k - r_k.

    Parameters
    ----------
    n_components, n_features : int
    full : bool
        Accumulate the D x D scatter (full, tied) or only its diagonal.
    """

    def __init__(self, n_components, n_features, full):
        self.full = full
        self.nk = np.zeros(n_components)
        self.shift = np.zeros((n_components, n_features))
        shape = (n_features, n_features) if full else (n_features,)
        self.m2 = np.zeros((n_components, *shape))
        self.empty = True  # no block added yet: n, shift and M2 are zeros

    def add(self, w, d):
        """Merge one block.

        Parameters
        ----------
        w : ndarray, shape (K, n)
            gamma_jk for the block's points, one row per component.
        d : ndarray, shape (K, D, n)
            x_j - r_k. Overwritten.
        """
        nb = w.sum(axis=1)
        wcol = w[:, :, None]
        mean = divide_where_mass(np.matmul(d, wcol)[:, :, 0], nb[:, None])
        d -= mean[:, :, None]
        correction = divide_where_mass(np.matmul(d, wcol)[:, :, 0], nb[:, None])
        # A deviation beyond 1e154 squares to inf (only for a theta far from
        # the data); the covariance check reports it.
        with np.errstate(over="ignore", invalid="ignore"):
            if self.full:
                scatter = np.matmul(d * w[:, None, :], d.transpose(0, 2, 1))
                scatter -= (
                    nb[:, None, None] * correction[:, :, None] * correction[:, None, :]
                )
            else:
                np.square(d, out=d)
                scatter = np.matmul(d, wcol)[:, :, 0] - nb[:, None] * correction**2
        mean += correction
        if self.empty:
            # Merged into zeros, the block's moments gain exact zeros
            # (n_a = 0, so n_b / n = 1 and n_a n_b / n = 0): 0.0 + each, as
            # the update would give (it turns -0.0 into 0.0), without it.
            self.nk, self.shift, self.m2 = 0.0 + nb, 0.0 + mean, 0.0 + scatter
            self.empty = False
            return
        self.nk, self.shift, self.m2 = _merged_moments(
            (self.nk, self.shift, self.m2), (nb, mean, scatter), self.full
        )

    def merged(self, other):
        """The moments of the union with another set's (same r_k), as new moments.

        Parameters
        ----------
        other : _Moments
            Of disjoint points, about the same reference points r_k.

        Returns
        -------
        _Moments
        """
        out = _Moments(self.nk.size, self.shift.shape[1], self.full)
        out.nk, out.shift, out.m2 = _merged_moments(
            (self.nk, self.shift, self.m2), (other.nk, other.shift, other.m2), self.full
        )
        out.empty = self.empty and other.empty
        return out


def _merged_moments(a, b, full):
    """Chan, Golub and LeVeque's pairwise update in matrix form.

    With (n, shift, M2) per component for disjoint sets a and b, n = n_a + n_b
    and delta = shift_b - shift_a:

        shift = shift_a + delta n_b / n,
        M2 = M2_a + M2_b + (n_a n_b / n) delta delta^T

    (only the diagonal of delta delta^T when not ``full``); proved with SymPy
    in notebooks/90-em-at-scale.ipynb. A set with n = 0 is the identity.

    Parameters
    ----------
    a, b : tuple of ndarray
        (n, shift, M2) of shapes (K,), (K, D), and (K, D, D) if ``full``
        else (K, D).
    full : bool

    Returns
    -------
    tuple of ndarray
        (n, shift, M2) of the union, new arrays.
    """
    (n_a, shift_a, m2_a), (n_b, shift_b, m2_b) = a, b
    n = n_a + n_b
    frac = divide_where_mass(n_b, n)[:, None]  # n_b / n, 0 where neither has mass
    delta = shift_b - shift_a
    weight = (n_a * frac[:, 0])[:, None]  # n_a n_b / n
    if full:
        outer = weight[:, :, None] * delta[:, :, None] * delta[:, None, :]
    else:
        outer = weight * delta * delta
    return n, shift_a + delta * frac, m2_a + (m2_b + outer)


def _m_step_from_moments(reference, moments, covariance_type, reg_covar):
    """theta^(i+1) from accumulated moments, shared by ``m_step`` and ``em``.

    Parameters
    ----------
    reference : ndarray, shape (K, D)
        The points r_k the deviations were taken from.
    moments : _Moments
    covariance_type : str
    reg_covar : float
        c >= 0 added to every variance (c I to each covariance).
    """
    nk = moments.nk
    for k in range(nk.size):
        if not nk[k] > 0:
            raise ValueError(
                f"component {k} has no responsibility left (n_k = 0), so its mean "
                "is undefined; use fewer components or another start."
            )
    means = reference + moments.shift
    d = means.shape[1]
    # Sigma_k = sum_j gamma_jk (x_j - mu_k)(x_j - mu_k)^T / n_k (+ c I).
    scatter = moments.m2 / (nk[:, None, None] if moments.full else nk[:, None])
    if covariance_type == "full":
        covariances = scatter + reg_covar * np.eye(d)
    elif covariance_type == "tied":
        # sum_k n_k Sigma_k / N, one matrix for all components.
        covariances = moments.m2.sum(axis=0) / nk.sum() + reg_covar * np.eye(d)
    elif covariance_type == "diag":
        covariances = scatter + reg_covar
    else:
        covariances = scatter.mean(axis=1) + reg_covar
    if moments.full:
        covariances = (covariances + np.swapaxes(covariances, -1, -2)) / 2
    _check_not_singular(means, covariances, covariance_type)
    return GMM._from_m_step(nk / nk.sum(), means, covariances, covariance_type)


def _is_singular(covariance, magnitude, correlated):
    """Whether one covariance is singular in float64, judged in units of the data.

    Every test is invariant to rescaling a coordinate (x_i -> s x_i scales
    Sigma_ii by s^2 and |mu_i| by |s|), so columns on different scales are
    judged alike; no absolute condition number enters.

    - Each variance Sigma_ii must be a finite normal float64 (> the smallest,
      about 2.2e-308) and its standard deviation above 16 units in the last
      place of |mu_i|: a spread below the resolution of the component's own
      position is a collapse onto a point.
    - If ``correlated`` (full and tied), the correlation matrix
      R = D^{-1/2} Sigma D^{-1/2}, D = diag(Sigma), must have a Cholesky
      factor whose squared diagonal entries exceed 16 eps. Entry i squared is
      1 - rho_i^2, rho_i the multiple correlation of coordinate i with the
      coordinates before it: the share of its variance that they do not
      explain linearly. Below 16 eps, coordinate i is a linear combination
      of the others to rounding: the points lie on a lower-dimensional set.

    Parameters
    ----------
    covariance : ndarray, shape (D, D)
    magnitude : ndarray, shape (D,)
        |mu_i| (for a tied covariance the largest over the components).
    correlated : bool
        Test the correlations too (full and tied covariances).
    """
    return bool(_singular_each(covariance[None], magnitude[None], correlated)[0])


def _singular_each(covariances, magnitudes, correlated):
    """:func:`_is_singular` of each of K covariances at once, shape (K,) of bool.

    Parameters
    ----------
    covariances : ndarray, shape (K, D, D)
    magnitudes : ndarray, shape (K, D)
    correlated : bool
    """
    variances = np.diagonal(covariances, axis1=1, axis2=2)
    resolution = _COLLAPSE_ULPS * EPS * magnitudes
    spread = (variances > TINY) & (variances > resolution * resolution)
    singular = ~(np.isfinite(covariances).all(axis=(1, 2)) & spread.all(axis=1))
    if correlated and not singular.all():
        # Only where every variance is a finite normal number > 0.
        kept = covariances[~singular]
        inv_sd = 1.0 / np.sqrt(np.diagonal(kept, axis1=1, axis2=2))
        correlations = kept * inv_sd[:, :, None] * inv_sd[:, None, :]
        singular[~singular] = _correlations_singular(correlations)
    return singular


def _correlations_singular(correlations):
    """Whether each correlation matrix's Cholesky factor fails or has a squared
    diagonal entry <= 16 eps (:func:`_is_singular`), shape (K,) of bool.

    Parameters
    ----------
    correlations : ndarray, shape (K, D, D)
    """
    try:
        # One call for the stack: LAPACK factors each matrix as it would alone.
        chol = np.linalg.cholesky(correlations)
    except np.linalg.LinAlgError:  # some failed: which, one by one
        if correlations.shape[0] == 1:
            return np.ones(1, dtype=bool)
        return np.concatenate([_correlations_singular(r[None]) for r in correlations])
    unexplained = np.diagonal(chol, axis1=1, axis2=2) ** 2
    return ~np.all(unexplained > _COLLAPSE_ULPS * EPS, axis=1)


def _check_not_singular(means, covariances, covariance_type):
    """Raise, naming the component, if an M-step covariance is singular.

    Singular as :func:`_is_singular` judges it, in units of the data: the
    component collapsed onto a point or a lower-dimensional set, where the
    likelihood grows without bound. The first such component is named; a
    covariance that is not finite is reported as an overflow.
    """
    if covariance_type == "tied":
        full, magnitudes = covariances[None], np.abs(means).max(axis=0)[None]
    else:
        full = _as_full(covariances, covariance_type, *means.shape)
        magnitudes = np.abs(means)
    singular = _singular_each(full, magnitudes, covariance_type in ("full", "tied"))
    if not singular.any():
        return
    j = int(np.argmax(singular))
    what = (
        "the tied covariance"
        if covariance_type == "tied"
        else f"component {j}'s covariance"
    )
    if not np.all(np.isfinite(full[j])):
        raise ValueError(
            f"{what} overflows float64 in the M-step: theta lies too far from "
            "the data; start nearer it."
        )
    raise ValueError(
        f"{what} became singular in the M-step (the component collapsed "
        "onto a point or a lower-dimensional set, where the likelihood "
        "grows without bound). Pass reg_covar > 0 (a variance in the "
        "data's units, e.g. 1e-6 times the smallest column variance) to "
        "keep covariances positive definite, or use fewer components or "
        "another start."
    )


def m_step(
    X: ArrayLike,
    gamma: ArrayLike,
    covariance_type: str = "full",
    reg_covar: float = 0.0,
    sample_weight: ArrayLike | None = None,
) -> GMM:
    """Closed-form maximiser of Q(theta, theta^(i)) given responsibilities.

    .. math::

        \\hat\\alpha_k = \\frac{n_k}{N}, \\quad
        \\hat\\mu_k = \\frac{\\sum_j \\gamma_{jk} x_j}{n_k}, \\quad
        \\hat\\Sigma_k = \\frac{\\sum_j \\gamma_{jk} (x_j - \\hat\\mu_k)
                                (x_j - \\hat\\mu_k)^T}{n_k} + c I

    with n_k = sum_j gamma_jk and c = ``reg_covar``; with ``sample_weight``
    every gamma_jk becomes w_j gamma_jk and N becomes sum_j w_j (derived in
    notebooks/66-weights-and-model-selection.ipynb). "diag" keeps the diagonal
    of Sigma-hat_k, "spherical" the mean of that diagonal, "tied" the single
    matrix sum_k n_k Sigma-hat_k / N (then + c I); derived in
    notebooks/60-multivariate-gmm.ipynb.

    Parameters
    ----------
    X : array_like, shape (N, D)
    gamma : array_like, shape (N, K)
        Responsibilities, each row summing to 1.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    reg_covar : float, default 0.0
        c >= 0, added to each variance as scikit-learn's ``reg_covar`` is.
    sample_weight : array_like, shape (N,), optional
        w_j >= 0, not all 0 (default: every w_j = 1).

    Returns
    -------
    GMM

    Raises
    ------
    ValueError
        If a component has n_k = 0 or its covariance is singular.

    Examples
    --------
    >>> from emlib import multivariate
    >>> X = [[0.0, 0.4], [0.5, -0.2], [-0.3, 0.1], [2.0, 2.3], [2.4, 1.8], [1.7, 2.1]]
    >>> gamma = [[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]]  # a hard assignment
    >>> theta = multivariate.m_step(X, gamma, covariance_type="diag")
    >>> print(theta.means.round(4))
    [[0.0667 0.1   ]
     [2.0333 2.0667]]
    >>> print(theta.covariances.round(4))
    [[0.1089 0.06  ]
     [0.0822 0.0422]]
    """
    X = as_points(X)
    gamma = as_responsibilities(gamma, X.shape[0])
    w = as_sample_weight(sample_weight, X.shape[0])
    if w is not None:
        gamma *= w[:, None]  # w_j gamma_jk (gamma is a validated copy)
    covariance_type = _check_covariance_type(covariance_type)
    reg_covar = check_real(reg_covar, "reg_covar")
    k, d = gamma.shape[1], X.shape[1]
    # Deviations from the data mean (a reference r_k the same for every k).
    reference = np.broadcast_to(X.mean(axis=0), (k, d))
    moments = _Moments(k, d, full=covariance_type in ("full", "tied"))
    moments.add(gamma.T.copy(), np.repeat((X - reference[0]).T[None], k, axis=0))
    return _m_step_from_moments(reference, moments, covariance_type, reg_covar)


# ---------------------------------------------------------------------------
# EM
# ---------------------------------------------------------------------------


def _squared_distances(X, centres, sq_norms):
    """|x_j - c_k|^2 = |x_j|^2 - 2 x_j . c_k + |c_k|^2, shape (N, K).

    The expansion needs no (N, K, D) temporary; clipped at 0, where rounding
    can make it slightly negative. ``X`` should be centred (by its mean) so
    the three terms stay of the order of the distances themselves.
    """
    cross = X @ centres.T
    out = sq_norms[:, None] - 2.0 * cross + np.einsum("kd,kd->k", centres, centres)
    return np.maximum(out, 0.0, out=out)


def _kmeans_plusplus(X, n_clusters, sq_norms, rng):
    """k-means++ seeds (Arthur and Vassilvitskii 2007), greedy as in scikit-learn.

    The first seed is a point drawn uniformly; each next seed is drawn with
    probability proportional to its squared distance to the nearest seed so
    far (D^2 weighting). Greedy variant (scikit-learn's ``_kmeans_plusplus``):
    2 + floor(log K) candidates are drawn that way and the one leaving the
    smallest potential sum_j min_k |x_j - c_k|^2 is kept.

    Returns
    -------
    ndarray, shape (K, D)
        The seeds, rows of ``X``.
    """
    n = X.shape[0]
    n_trials = 2 + int(np.log(n_clusters))
    centres = np.empty((n_clusters, X.shape[1]))
    centres[0] = X[rng.integers(n)]
    closest = _squared_distances(X, centres[:1], sq_norms)[:, 0]
    for c in range(1, n_clusters):
        # Inverse-CDF draws: index j with probability closest_j / sum(closest).
        cumulative = np.cumsum(closest)
        ids = np.searchsorted(cumulative, rng.uniform(size=n_trials) * cumulative[-1])
        ids = np.minimum(ids, n - 1)  # a draw at the very top after rounding
        trials = np.minimum(closest[:, None], _squared_distances(X, X[ids], sq_norms))
        best = int(np.argmin(trials.sum(axis=0)))
        centres[c] = X[ids[best]]
        closest = trials[:, best]
    return centres


def _lloyd(X, centres, sq_norms):
    """Lloyd's k-means iterations from ``centres``; returns the labels, shape (N,).

    Each point goes to its nearest centre, each centre to the mean of its
    points, at most ``_LLOYD_ITERATIONS`` times or until no label changes. A
    cluster left empty takes the point farthest from its own centre among
    clusters of two or more points (as scikit-learn relocates empty
    clusters), so with K <= N every label is used.
    """
    n_clusters = centres.shape[0]
    labels = None
    for _ in range(_LLOYD_ITERATIONS):
        distances = _squared_distances(X, centres, sq_norms)
        new = distances.argmin(axis=1)
        counts = np.bincount(new, minlength=n_clusters)
        for c in np.flatnonzero(counts == 0):
            own = distances[np.arange(X.shape[0]), new]
            own[counts[new] < 2] = -1.0  # never empty another cluster
            j = int(own.argmax())
            counts[new[j]] -= 1
            new[j] = c
            counts[c] = 1
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        centres = np.zeros_like(centres)
        np.add.at(centres, labels, X)
        centres /= counts[:, None]
    return labels


def _cluster_covariances(X, labels, data_cov, covariance_type, reg_covar):
    """Covariances of hard clusters, in ``covariance_type``'s shape, + c I.

    A cluster of fewer than two points, or whose covariance (+ c I) is
    singular as :func:`_is_singular` judges it, gets the data's covariance
    ``data_cov`` (+ c I) instead: that is non-singular (checked before),
    in the data's units, and as wide as the data, so EM shrinks it onto the
    points the component wins, where a singular start would put EM at a point
    of unbounded likelihood.
    """
    n_clusters, d = labels.max() + 1, X.shape[1]
    counts = np.bincount(labels, minlength=n_clusters)
    means = np.zeros((n_clusters, d))
    np.add.at(means, labels, X)
    means /= counts[:, None]
    dev = X - means[labels]
    scatter = np.zeros((n_clusters, d, d))
    np.add.at(scatter, labels, dev[:, :, None] * dev[:, None, :])
    ridge = reg_covar * np.eye(d)
    if covariance_type == "tied":
        # sum_k n_k Sigma_k / N, the tied M-step with 0/1 responsibilities.
        tied = scatter.sum(axis=0) / X.shape[0] + ridge
        singular = _is_singular(tied, np.abs(means).max(axis=0), correlated=True)
        return means, data_cov + ridge if singular else tied
    # Each type's Sigma_k as a (D, D) matrix: the full one, its diagonal, or
    # the mean of that diagonal times I; the same for the fallback.
    keep = {
        "full": lambda s: s,
        "diag": lambda s: np.diag(np.diagonal(s)),
        "spherical": lambda s: np.trace(s) / d * np.eye(d),
    }[covariance_type]
    fallback = keep(data_cov + ridge)
    sigma = np.empty((n_clusters, d, d))
    for k in range(n_clusters):
        sigma[k] = keep(scatter[k] / counts[k] + ridge)
        if counts[k] < 2 or _is_singular(
            sigma[k], np.abs(means[k]), covariance_type == "full"
        ):
            sigma[k] = fallback
    if covariance_type == "full":
        return means, sigma
    diagonal = np.diagonal(sigma, axis1=1, axis2=2)
    return means, diagonal.copy() if covariance_type == "diag" else diagonal[:, 0]


def initial_theta(
    X: ArrayLike,
    n_components: int,
    covariance_type: str = "full",
    *,
    reg_covar: float = 0.0,
    random_state: int | np.random.Generator | None = None,
) -> GMM:
    """The start used by ``em(X, K)``: k-means++ seeds refined by Lloyd's k-means.

    1. Seeds by greedy k-means++ (Arthur and Vassilvitskii 2007; the variant of
       scikit-learn's ``_kmeans_plusplus``, 2 + floor(log K) candidates per
       seed): a seed far from the others is likely, so well-separated
       clusters each get one.
    2. At most 20 Lloyd iterations (nearest centre, then cluster means) from
       those seeds give K hard clusters.
    3. theta^(0) is their fit: alpha_k = n_k / N, mu_k the cluster mean,
       Sigma_k the cluster's covariance (divided by n_k) + c I in the shape
       of ``covariance_type`` ("tied": the pooled sum_k n_k Sigma_k / N). A
       cluster of fewer than two points, or with a singular covariance, gets
       the data's covariance (+ c I) instead.

    Distances are Euclidean in the units of ``X``, as in scikit-learn's
    k-means: standardise columns on very different scales first if the
    clusters differ along the small ones.

    Parameters
    ----------
    X : array_like, shape (N, D)
    n_components : int
        K, with 1 <= K <= N.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    reg_covar : float, default 0.0
        c >= 0 added to every starting variance, as ``em`` adds it in each
        M-step.
    random_state : int, numpy.random.Generator or None, default None
        The seeding's randomness: an int for a reproducible start, a
        Generator to continue its stream, None for fresh entropy.

    Returns
    -------
    GMM

    Raises
    ------
    ValueError
        If the data's covariance (+ c I) is singular (the points lie in a
        lower-dimensional subspace), since no start could then be given.
    """
    X = as_points(X)
    k = check_n_components(n_components, X.shape[0])
    covariance_type = _check_covariance_type(covariance_type)
    reg_covar = check_real(reg_covar, "reg_covar")
    rng = as_generator(random_state)
    mean = X.mean(axis=0)
    centred = X - mean
    data_cov = centred.T @ centred / X.shape[0]
    correlated = covariance_type in ("full", "tied")
    ridge = reg_covar * np.eye(X.shape[1])
    if _is_singular(data_cov + ridge, np.abs(mean), correlated):
        raise ValueError(
            "the data's covariance is singular: the points lie on a "
            "lower-dimensional subspace (a column is constant or a linear "
            "combination of others). Drop the redundant columns, or pass "
            "reg_covar > 0 (a variance in the data's units)."
        )
    sq_norms = np.einsum("jd,jd->j", centred, centred)
    labels = _lloyd(centred, _kmeans_plusplus(centred, k, sq_norms, rng), sq_norms)
    means, covariances = _cluster_covariances(
        X, labels, data_cov, covariance_type, reg_covar
    )
    weights = np.bincount(labels, minlength=k) / X.shape[0]
    return GMM(weights, means, covariances, covariance_type)


def theta_to_vector(theta: GMM) -> np.ndarray:
    """theta as the flat vector SQUAREM extrapolates.

    (alpha, mu, covariance coordinates), where the covariance coordinates
    are, for "full" and "tied", the lower Cholesky factor L of each Sigma
    (Sigma = L L^T) with its diagonal replaced by log L_ii, row by row; for
    "diag" and "spherical", the log variances. Every real vector maps back
    to symmetric positive definite covariances (L with a positive diagonal
    is invertible), so the extrapolation cannot leave the cone through them,
    and the map is one to one (the Cholesky factor with positive diagonal is
    unique). The weights stay on the simplex: an extrapolation is an affine
    combination of iterates (its coefficients sum to 1), so it keeps
    sum_k alpha_k = 1, and only alpha_k >= 0 needs the check
    :func:`vector_to_theta` makes.

    Parameters
    ----------
    theta : GMM

    Returns
    -------
    ndarray, shape (K + K D + C,)
        C = K D (D + 1) / 2 ("full"), D (D + 1) / 2 ("tied"), K D ("diag"),
        K ("spherical").
    """
    cov_type = theta.covariance_type
    if cov_type in ("diag", "spherical"):
        covariance = np.log(theta.covariances).ravel()
    else:
        sigma = theta.covariances[None] if cov_type == "tied" else theta.covariances
        chol = np.linalg.cholesky(sigma)
        rows, cols = np.tril_indices(theta.n_features)
        diagonal = rows == cols
        lower = chol[:, rows, cols]
        lower[:, diagonal] = np.log(lower[:, diagonal])
        covariance = lower.ravel()
    return np.concatenate([theta.weights, theta.means.ravel(), covariance])


def vector_to_theta(vector: np.ndarray, like: GMM) -> GMM:
    """The GMM of a :func:`theta_to_vector` vector.

    Parameters
    ----------
    vector : ndarray, shape (K + K D + C,)
    like : GMM
        A mixture with the same K, D and covariance type.

    Returns
    -------
    GMM
        Its weights divided by their sum (which differs from 1 only by the
        rounding of the extrapolation).

    Raises
    ------
    ValueError
        If a weight is negative, or a covariance overflows or is too close
        to singular for the GMM constructor (the vector lies outside the
        parameter space).
    """
    k, d, cov_type = like.n_components, like.n_features, like.covariance_type
    weights, means, covariance = np.split(vector, [k, k + k * d])
    with np.errstate(over="ignore"):
        if cov_type in ("diag", "spherical"):
            covariances = np.exp(covariance).reshape(like.covariances.shape)
        else:
            rows, cols = np.tril_indices(d)
            lower = covariance.reshape(-1, rows.size).copy()
            diagonal = rows == cols
            lower[:, diagonal] = np.exp(lower[:, diagonal])
            chol = np.zeros((lower.shape[0], d, d))
            chol[:, rows, cols] = lower
            covariances = chol @ chol.transpose(0, 2, 1)
            if cov_type == "tied":
                covariances = covariances[0]
    return GMM(weights / weights.sum(), means.reshape(k, d), covariances, cov_type)


def _e_pass(Xt, theta, sample_weight=None, offset=0):
    """E-step at theta fused with the M-step's moments, over blocks of points.

    Parameters
    ----------
    Xt : ndarray, shape (D, N)
        The data transposed (each coordinate contiguous).
    theta : GMM
    sample_weight : ndarray, shape (N,), optional
        Validated w_j: log P and the moments weight point j by w_j.
    offset : int, default 0
        Index of the first point in the whole data set, for error messages.

    Returns
    -------
    log_lik : float
        log P(X | theta).
    moments : _Moments
        Of the responsibilities at theta, about r_k = mu_k.
    """
    d, n = Xt.shape
    k = theta.n_components
    mu = theta.means[:, :, None]  # (K, D, 1)
    # (1/sqrt 2) U_k^T, so |(1/sqrt 2) U_k^T (x - mu_k)|^2 is half the
    # quadratic form.
    factor = theta._precision_chol.transpose(0, 2, 1) / np.sqrt(2.0)
    diagonal = theta.covariance_type in ("diag", "spherical")
    if diagonal:
        factor = np.diagonal(factor, axis1=1, axis2=2)[:, :, None].copy()
    log_norm = _log_normalizers(theta)[:, None]
    moments = _Moments(k, d, full=not diagonal)
    log_lik = 0.0
    block = max(256, _BLOCK_ELEMENTS // (k * d))
    dev = np.empty((k, d, min(block, n)))
    z = np.empty_like(dev)
    work = np.empty((k, dev.shape[2]))
    for start in range(0, n, block):
        xb = Xt[:, start : start + block]
        m = xb.shape[1]
        dv, zv, w = dev[:, :, :m], z[:, :, :m], work[:, :m]
        with np.errstate(over="ignore", invalid="ignore"):
            np.subtract(xb, mu, out=dv)  # x_j - mu_k
            if diagonal:
                np.multiply(dv, factor, out=zv)
            else:
                np.matmul(factor, dv, out=zv)
            np.square(zv, out=zv)
            np.sum(zv, axis=1, out=w)
        np.subtract(log_norm, w, out=w)  # log alpha_k + log N(x_j | theta_k)
        peak = w.max(axis=0)
        check_finite_rows(peak, offset + start)
        w -= peak
        np.exp(w, out=w)
        total = w.sum(axis=0)
        w /= total  # gamma_jk
        if sample_weight is None:
            log_lik += peak.sum() + np.log(total).sum()
        else:
            wb = sample_weight[start : start + block]
            log_lik += wb @ (peak + np.log(total))  # sum_j w_j log P(x_j)
            w *= wb  # w_j gamma_jk
        moments.add(w, dv)
    return float(log_lik), moments


def em(
    X: ArrayLike,
    init: GMM | int,
    *,
    covariance_type: str = "full",
    reg_covar: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 1000,
    n_init: int = 1,
    random_state: int | np.random.Generator | None = None,
    accelerate: Literal["squarem"] | None = None,
    stop: Literal["gain", "aitken"] = "gain",
    sample_weight: ArrayLike | None = None,
) -> EMResult:
    """Fit a D-dimensional Gaussian mixture by expectation-maximisation.

    Parameters
    ----------
    X : array_like or dask.array.Array, shape (N, D)
        A Dask array (chunked by rows, one chunk of columns; no NaN, no
        ``sample_weight``, a GMM ``init``) is fitted chunk by chunk on Dask's
        active scheduler: each chunk is reduced to its sufficient statistics
        and only those travel (``emlib._dask``); the result equals the
        in-memory fit up to the order of floating-point summation. Persist it
        first (``X.persist()``) if it fits in memory: every iteration reads
        every chunk.
        In memory, NaN marks a value missing at random (every covariance type): the
        E-step then takes each row's responsibilities from the marginal
        density of its observed coordinates and completes the sufficient
        statistics with the conditional mean and covariance of the missing
        ones given the observed (emlib._missing; derived in
        notebooks/65-missing-data.ipynb), and ``log_likelihoods`` are
        observed-data log-likelihoods. A row with every value missing carries
        no information and is dropped; a column with no observed value is
        refused.
    init : GMM or int
        The start theta^(0) (its ``covariance_type`` must be the one asked
        for), or a number of components K, in which case the start is
        :func:`initial_theta` ``(X, K, covariance_type, reg_covar=reg_covar,
        random_state=...)`` (with ``sample_weight``: of the rows of positive
        weight). With missing values that start is fitted to the rows
        observing something, each NaN replaced by its column's observed mean
        (always defined, where the complete rows may be fewer than K or none;
        mean imputation shrinks the spread, which only the start sees: EM
        then maximises the observed-data likelihood).
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    reg_covar : float, default 0.0
        c >= 0 added to every variance in each M-step (scikit-learn's
        ``reg_covar``; its default there is 1e-6).
    tol : float, default 1e-10
        Stop when an iteration raises the log-likelihood by less than
        ``tol * N`` (N = sum_j w_j with ``sample_weight``). With ``tol=0``
        exactly ``max_iter`` iterations run (unless the log-likelihood falls).
    max_iter : int, default 1000
        Maximum number of iterations (>= 1).
    n_init : int, default 1
        With an int ``init``: the number of k-means++ starts, each run to
        the end; the fit with the largest final log-likelihood is returned
        (the first of equals). Must be 1 with a GMM ``init``.
    random_state : int, numpy.random.Generator or None, default None
        The starts' randomness (one stream for all ``n_init`` starts); unused
        with a GMM ``init``.
    accelerate : {None, "squarem"}, default None
        "squarem": SQUAREM with the monotonicity safeguard, extrapolating in
        :func:`theta_to_vector`'s coordinates (Cholesky factors with log
        diagonals); as in :func:`emlib.em`.
    stop : {"gain", "aitken"}, default "gain"
        The stopping rule, as in :func:`emlib.em`.
    sample_weight : array_like, shape (N,), optional
        w_j >= 0, not all 0: EM maximises sum_j w_j log P(x_j | theta), so an
        integer w_j counts row j w_j times (from the same start), w_j = 0
        drops it, and scaling every w_j by c > 0 changes nothing.

    Returns
    -------
    EMResult
        ``theta`` is a :class:`GMM`.

    Warns
    -----
    emlib.ConvergenceWarning
        If the run stops on ``max_iter`` with tol > 0, or on a decrease (as
        ``reg_covar > 0`` can cause: the M-step then maximises a penalised
        log-likelihood, which this one can fall below).

    Raises
    ------
    ValueError
        On bad input (including a start whose ``covariance_type`` differs
        from the one asked for), or when a component empties or its
        covariance becomes singular (the message names it and suggests
        ``reg_covar``).

    Examples
    --------
    >>> from emlib import multivariate
    >>> X = [[0.0, 0.4], [0.5, -0.2], [-0.3, 0.1], [2.0, 2.3], [2.4, 1.8], [1.7, 2.1]]
    >>> means = [[0.0, 0.0], [2.0, 2.0]]
    >>> start = multivariate.GMM([0.5, 0.5], means, [1.0, 1.0], "spherical")
    >>> fit = multivariate.em(X, start, covariance_type="spherical")
    >>> print(fit.converged, fit.theta.weights.round(4), fit.theta.covariances.round(4))
    True [0.5 0.5] [0.0844 0.0622]
    >>> print(fit.theta.means.round(4))
    [[0.0667 0.1   ]
     [2.0333 2.0667]]
    """
    covariance_type = _check_covariance_type(covariance_type)
    reg_covar = check_real(reg_covar, "reg_covar")
    if is_dask_array(X):
        from emlib import _dask  # Dask is optional: imported only when used

        n, e_pass = _dask.mixture_e_pass(
            X, init, covariance_type, n_init, sample_weight
        )
        theta = init
    else:
        X = as_points(X, allow_missing=True)
        weights = as_sample_weight(sample_weight, X.shape[0])
        if isinstance(init, GMM):
            _check_start(init, X.shape[0], X.shape[1], covariance_type, n_init)
            theta = init
        elif is_int(init):
            rng = as_generator(random_state)
            check_stopping_rule(tol, max_iter)
            # The start sees which rows count, not how much (see sample_weight),
            # and NaN filled by column means (X itself when nothing is missing).
            counted = X if weights is None else X[weights > 0]
            start_data = _missing.mean_imputed(counted)
            fits = [
                em(
                    X,
                    initial_theta(
                        start_data,
                        init,
                        covariance_type,
                        reg_covar=reg_covar,
                        random_state=rng,
                    ),
                    covariance_type=covariance_type,
                    reg_covar=reg_covar,
                    tol=tol,
                    max_iter=max_iter,
                    accelerate=accelerate,
                    stop=stop,
                    sample_weight=weights,
                )
                for _ in range(check_int(n_init, "n_init"))
            ]
            return max(fits, key=lambda fit: fit.log_likelihoods[-1])
        else:
            raise TypeError(
                "init must be an emlib.multivariate.GMM start or a number of "
                f"components K (int), got {type(init).__name__}."
            )
        n, e_pass = _in_memory_e_pass(X, weights)

    def m_step_from_moments(theta, moments):
        # The E-pass took deviations about r_k = mu_k, theta's means.
        return _m_step_from_moments(theta.means, moments, covariance_type, reg_covar)

    return run_em(
        e_pass,
        m_step_from_moments,
        theta,
        n=n,
        tol=tol,
        max_iter=max_iter,
        accelerate=accelerate,
        stop=stop,
        to_vector=theta_to_vector,
        from_vector=vector_to_theta,
    )


def _in_memory_e_pass(X, weights):
    """N (or sum_j w_j) and the E-pass over validated X (NaN: missing values)."""
    if np.isnan(X).any():
        patterns = _missing.Patterns(X, weights)
        return patterns.n_rows, patterns.e_pass
    Xt = np.ascontiguousarray(X.T)
    n = X.shape[0] if weights is None else weights.sum()
    return n, lambda theta: _e_pass(Xt, theta, weights)


def _check_start(init, n_points, n_features, covariance_type, n_init):
    """Check a GMM start against the data's N and D and em's arguments."""
    _check_theta(init, n_features)
    check_n_components(init.n_components, n_points)
    if init.covariance_type != covariance_type:
        raise ValueError(
            f"init has covariance_type={init.covariance_type!r} but em was "
            f"asked for covariance_type={covariance_type!r}; pass "
            f"covariance_type={init.covariance_type!r} or a start of that type."
        )
    if n_init != 1:
        raise ValueError(
            f"n_init = {n_init} starts need init to be a number of components "
            "K (int); with a GMM start pass n_init=1."
        )
