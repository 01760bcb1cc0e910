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

import numbers
from dataclasses import dataclass, field

import numpy as np

from emlib._checks import (
    SUM_TOL,
    Y_MAGNITUDE_RANGE,
    as_real_array,
    as_responsibilities,
    check_stopping_rule,
    read_only,
)
from emlib.fit import EMResult, check_n_components
from emlib.model import check_finite_rows, divide_where_mass, log_sum_exp_rows

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# Symmetric means |Sigma - Sigma^T| <= this times max |Sigma| entrywise.
_SYMMETRY_RTOL = 1e-12
_LOG_2PI = np.log(2.0 * np.pi)
_EPS = np.finfo(np.float64).eps
_TINY = np.finfo(np.float64).tiny
# A covariance is numerically singular when a conditional standard deviation
# (a diagonal entry of its Cholesky factor) falls within this many units in
# the last place of the component's mean, or its conditional variance below
# this many eps of its largest variance (condition number beyond ~3e14).
_COLLAPSE_ULPS = 16
# Points per block in em: the (K, D, block) temporaries stay in cache.
_BLOCK_ELEMENTS = 2**16


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def as_points(X):
    """Validate data ``X``: shape (N, D), finite, N >= 1, D >= 1.

    Returns
    -------
    ndarray, shape (N, D)
        A float64 copy.
    """
    arr = as_real_array(X, "X")
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
    low, high = Y_MAGNITUDE_RANGE
    magnitude = np.abs(arr).max()
    if magnitude > high or 0 < magnitude < low:
        raise ValueError(
            f"X has magnitude {magnitude:.3g}, outside [{low:g}, {high:g}] where "
            "squared deviations are representable in float64; rescale X (for "
            "example divide each column by its standard deviation) and fit again."
        )
    return arr


def _check_covariance_type(covariance_type):
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {', '.join(map(repr, COVARIANCE_TYPES))};"
            f" got {covariance_type!r}."
        )
    return covariance_type


def _check_reg_covar(reg_covar):
    if isinstance(reg_covar, bool) or not isinstance(reg_covar, numbers.Real):
        raise TypeError(
            f"reg_covar must be a real number, got {type(reg_covar).__name__}."
        )
    try:
        finite = np.isfinite(float(reg_covar))
    except OverflowError:  # an int beyond float range
        finite = False
    if not (finite and reg_covar >= 0):
        raise ValueError(f"reg_covar must be finite and >= 0, got {reg_covar}.")
    return float(reg_covar)


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
    chol = np.empty_like(sigma)
    for k in range(sigma.shape[0]):
        try:
            chol[k] = np.linalg.cholesky(sigma[k])
        except np.linalg.LinAlgError:
            raise ValueError(
                f"{what(k)} is not positive definite (its Cholesky factorisation "
                "fails); a covariance must be symmetric with all eigenvalues > 0."
            ) from None
    return chol


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
class GMM:
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

    def __post_init__(self):
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
        covariances = _symmetrised(covariances, cov_type)
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
    def n_components(self):
        """Number of components K."""
        return self.weights.size

    @property
    def n_features(self):
        """Dimension D of each observation."""
        return self.means.shape[1]

    def full_covariances(self):
        """Sigma_k as a new array of shape (K, D, D), whatever the type."""
        return np.array(
            _as_full(
                self.covariances,
                self.covariance_type,
                self.n_components,
                self.n_features,
            )
        )

    def __repr__(self):
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
        log_weights - 0.5 * theta.n_features * _LOG_2PI + theta._log_det_precision_chol
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


def log_likelihood(X, theta):
    """log P(X | theta) = sum_j log sum_k alpha_k N(x_j | mu_k, Sigma_k).

    A sum over the N points, not a mean.

    Parameters
    ----------
    X : array_like, shape (N, D)
    theta : GMM

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
    X = as_points(X)
    _check_theta(theta, X.shape[1])
    return float(log_sum_exp_rows(_log_joint(X, theta)).sum())


def e_step(X, theta):
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
        merged = self.nk + nb
        frac = divide_where_mass(nb, merged)[:, None]
        delta = mean - self.shift
        self.shift += delta * frac
        weight = (self.nk * frac[:, 0])[:, None]
        if self.full:
            self.m2 += (
                scatter + weight[:, :, None] * delta[:, :, None] * delta[:, None, :]
            )
        else:
            self.m2 += scatter + weight * delta * delta
        self.nk = merged


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
    return GMM(nk / nk.sum(), means, covariances, covariance_type)


def _check_not_singular(means, covariances, covariance_type):
    """Raise, naming the component, if an M-step covariance is (near) singular.

    A covariance is singular in float64 when a conditional standard deviation
    (a diagonal entry of its Cholesky factor) is within 16 ulps of the mean's
    largest coordinate, or its square below 16 eps of the largest variance:
    the component has collapsed onto a point or a lower-dimensional set, where
    the likelihood grows without bound.
    """
    k, d = means.shape
    full = _as_full(covariances, covariance_type, k, d)
    tied = covariance_type == "tied"
    for j in range(1 if tied else k):
        what = "the tied covariance" if tied else f"component {j}'s covariance"
        if not np.all(np.isfinite(full[j])):
            raise ValueError(
                f"{what} overflows float64 in the M-step: theta lies too far from "
                "the data; start nearer it."
            )
        try:
            chol = np.linalg.cholesky(full[j])
            diag = np.diagonal(chol)
        except np.linalg.LinAlgError:
            diag = np.zeros(d)
        resolution = (
            _COLLAPSE_ULPS * _EPS * np.abs(means[j:] if tied else means[j]).max()
        )
        floor = max(
            resolution * resolution,
            _COLLAPSE_ULPS * _EPS * np.diagonal(full[j]).max(),
            _TINY,
        )
        if not np.all(diag * diag > floor):
            raise ValueError(
                f"{what} became singular in the M-step (the component collapsed "
                "onto a point or a lower-dimensional set, where the likelihood "
                "grows without bound). Pass reg_covar > 0 (for example 1e-6) to "
                "keep covariances positive definite, or use fewer components or "
                "another start."
            )


def m_step(X, gamma, covariance_type="full", reg_covar=0.0):
    """Closed-form maximiser of Q(theta, theta^(i)) given responsibilities.

    .. math::

        \\hat\\alpha_k = \\frac{n_k}{N}, \\quad
        \\hat\\mu_k = \\frac{\\sum_j \\gamma_{jk} x_j}{n_k}, \\quad
        \\hat\\Sigma_k = \\frac{\\sum_j \\gamma_{jk} (x_j - \\hat\\mu_k)
                                (x_j - \\hat\\mu_k)^T}{n_k} + c I

    with n_k = sum_j gamma_jk and c = ``reg_covar``. "diag" keeps the diagonal
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
    covariance_type = _check_covariance_type(covariance_type)
    reg_covar = _check_reg_covar(reg_covar)
    k, d = gamma.shape[1], X.shape[1]
    # Deviations from the data mean (a reference r_k the same for every k).
    reference = np.broadcast_to(X.mean(axis=0), (k, d))
    moments = _Moments(k, d, full=covariance_type in ("full", "tied"))
    moments.add(gamma.T.copy(), np.repeat((X - reference[0]).T[None], k, axis=0))
    return _m_step_from_moments(reference, moments, covariance_type, reg_covar)


# ---------------------------------------------------------------------------
# EM
# ---------------------------------------------------------------------------


def initial_theta(X, n_components, covariance_type="full"):
    """The deterministic start used by ``em(X, K)``.

    Equal weights 1/K; mean k at the (k + 1/2)/K quantile of each coordinate
    (k = 0..K-1, so the means start spread along the data's range in order;
    for D = 1 this is ``emlib.initial_theta``); every covariance the data's
    covariance (divided by N), in the shape of ``covariance_type``: its
    diagonal for "diag", the mean of that diagonal for "spherical".

    Parameters
    ----------
    X : array_like, shape (N, D)
    n_components : int
        K, with 1 <= K <= N.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"

    Returns
    -------
    GMM

    Raises
    ------
    ValueError
        If the data's covariance is singular (the points lie in a
        lower-dimensional subspace), since no start could then be given.
    """
    X = as_points(X)
    k = check_n_components(n_components, X.shape[0])
    covariance_type = _check_covariance_type(covariance_type)
    means = np.quantile(X, (np.arange(k) + 0.5) / k, axis=0)
    centred = X - X.mean(axis=0)
    cov = centred.T @ centred / X.shape[0]
    try:
        _check_not_singular(X.mean(axis=0)[None], cov, "tied")
    except ValueError:
        raise ValueError(
            "the data's covariance is singular: the points lie on a "
            "lower-dimensional subspace (a column is constant or a linear "
            "combination of others). Drop the redundant columns, or give em a "
            "GMM start whose covariances include a reg_covar."
        ) from None
    covariances = {
        "full": np.repeat(cov[None], k, axis=0),
        "tied": cov,
        "diag": np.repeat(np.diagonal(cov)[None], k, axis=0),
        "spherical": np.full(k, np.diagonal(cov).mean()),
    }[covariance_type]
    return GMM(np.full(k, 1.0 / k), means, covariances, covariance_type)


def _e_pass(Xt, theta):
    """E-step at theta fused with the M-step's moments, over blocks of points.

    Parameters
    ----------
    Xt : ndarray, shape (D, N)
        The data transposed (each coordinate contiguous).
    theta : GMM

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
        check_finite_rows(peak, start)
        w -= peak
        np.exp(w, out=w)
        total = w.sum(axis=0)
        log_lik += peak.sum() + np.log(total).sum()
        w /= total  # gamma_jk
        moments.add(w, dv)
    return float(log_lik), moments


def em(
    X,
    init,
    *,
    covariance_type="full",
    reg_covar=0.0,
    tol=1e-10,
    max_iter=1000,
):
    """Fit a D-dimensional Gaussian mixture by expectation-maximisation.

    Parameters
    ----------
    X : array_like, shape (N, D)
    init : GMM or int
        The start theta^(0) (its ``covariance_type`` must be the one asked
        for), or a number of components K, in which case the start is
        :func:`initial_theta` ``(X, K, covariance_type)``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    reg_covar : float, default 0.0
        c >= 0 added to every variance in each M-step (scikit-learn's
        ``reg_covar``; its default there is 1e-6).
    tol : float, default 1e-10
        Stop when an iteration raises the log-likelihood by less than
        ``tol * N``. With ``tol=0`` exactly ``max_iter`` iterations run.
    max_iter : int, default 1000
        Maximum number of iterations (>= 1).

    Returns
    -------
    EMResult
        ``theta`` is a :class:`GMM`.

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
    X = as_points(X)
    covariance_type = _check_covariance_type(covariance_type)
    reg_covar = _check_reg_covar(reg_covar)
    if isinstance(init, GMM):
        _check_theta(init, X.shape[1])
        check_n_components(init.n_components, X.shape[0])
        if init.covariance_type != covariance_type:
            raise ValueError(
                f"init has covariance_type={init.covariance_type!r} but em was "
                f"asked for covariance_type={covariance_type!r}; pass "
                f"covariance_type={init.covariance_type!r} or a start of that type."
            )
        theta = init
    elif isinstance(init, int | np.integer) and not isinstance(init, bool):
        theta = initial_theta(X, init, covariance_type)
    else:
        raise TypeError(
            "init must be an emlib.multivariate.GMM start or a number of "
            f"components K (int), got {type(init).__name__}."
        )
    check_stopping_rule(tol, max_iter)

    Xt = np.ascontiguousarray(X.T)
    log_lik, moments = _e_pass(Xt, theta)
    log_likelihoods = [log_lik]
    converged = False
    for _ in range(max_iter):
        theta = _m_step_from_moments(theta.means, moments, covariance_type, reg_covar)
        log_lik, moments = _e_pass(Xt, theta)
        log_likelihoods.append(log_lik)
        if tol > 0 and log_likelihoods[-1] - log_likelihoods[-2] < tol * X.shape[0]:
            converged = True
            break
    return EMResult(
        theta, np.array(log_likelihoods), len(log_likelihoods) - 1, converged
    )
