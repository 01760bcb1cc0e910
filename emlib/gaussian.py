"""The Kullback-Leibler divergence between diagonal Gaussians, in closed form.

The VAE's ELBO (notebooks/80-ppca-to-vae.ipynb) and the diffusion ELBO
(notebooks/85-diffusion-elbo.ipynb) are sums of such terms; the closed form
is derived there with SymPy from the integral.
"""

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import as_real_array

# Below this |d|, d - log1p(d) is summed from its Taylor series: the two terms
# are each about |d| and their difference about d^2 / 2, so subtracting them
# would lose about log10(1 / |d|) digits.
_SERIES_BELOW = 1e-2


def _r_minus_1_minus_log_r(var_q, var_p):
    """r - 1 - log r for r = var_q / var_p, accurate for every r > 0.

    d = r - 1 is formed as (var_q - var_p) / var_p, exact-ish also when the
    variances are close. For |d| < 1e-2 the result is summed from the series
    d - log1p(d) = sum_{m >= 2} (-1)^m d^m / m (terms after m = 10 are below
    1e-22 relative to the first). Otherwise it is d - log r, with log r from
    log1p(d) while r >= 1/2, and from log var_q - log var_p below: there d
    has lost r (it rounds to -1 once r < 1e-16) and log1p(d) would be -inf.
    """
    d = (var_q - var_p) / var_p
    small = np.abs(d) < _SERIES_BELOW
    # The series only where it is used: on a huge d its d^10 would overflow.
    d_small = np.where(small, d, 0.0)
    series = np.zeros_like(d_small)
    for m in range(10, 1, -1):  # Horner: d^2 (1/2 - d (1/3 - d (1/4 - ...)))
        series = 1.0 / m - d_small * series
    series *= d_small * d_small
    near = d > -0.5
    log_r = np.where(
        near,
        np.log1p(np.where(near, d, 0.0)),
        np.log(var_q) - np.log(var_p),
    )
    return np.where(small, series, d - log_r)


def gaussian_kl(
    mean_q: ArrayLike, var_q: ArrayLike, mean_p: ArrayLike, var_p: ArrayLike
) -> float:
    """KL(q || p) between diagonal Gaussians q = N(mean_q, var_q), p = N(mean_p, var_p).

    The four arguments broadcast against each other; every entry of the
    broadcast shape is one independent coordinate, and the result is the sum
    of the per-coordinate divergences (the KL of the product distributions).

    Parameters
    ----------
    mean_q, var_q : array_like
        Means and variances (> 0) of q.
    mean_p, var_p : array_like
        Means and variances (> 0) of p.

    Returns
    -------
    float
        KL(q || p) >= 0, in nats.

    Raises
    ------
    TypeError
        If an argument is not real numbers.
    ValueError
        If a value is not finite, a variance is not positive, or the shapes
        do not broadcast.

    Notes
    -----
    Per coordinate, with r = var_q / var_p,

    .. math::

        \\mathrm{KL}(q \\,\\|\\, p) = \\frac{1}{2}\\left[
            \\frac{(\\mu_q - \\mu_p)^2}{\\sigma_p^2} + r - 1 - \\log r \\right].

    r - 1 - log r is evaluated as d - log1p(d) with d = (var_q - var_p) / var_p,
    by its series when abs(d) is small, so nearly equal variances keep full
    relative precision (the naive form returns 0 or noise there); for
    r < 1/2, log r is taken from the variances' logs, so that a tiny ratio
    (below 1e-16, where d rounds to -1) still gives a finite, accurate value.

    Examples
    --------
    >>> gaussian_kl(0.0, 1.0, 0.0, 1.0)
    0.0
    >>> round(gaussian_kl([0.0, 1.0], 1.0, 0.0, 2.0), 12)
    0.44314718056
    """
    arrays = [
        as_real_array(a, name)
        for a, name in (
            (mean_q, "mean_q"),
            (var_q, "var_q"),
            (mean_p, "mean_p"),
            (var_p, "var_p"),
        )
    ]
    for arr, name in ((arrays[1], "var_q"), (arrays[3], "var_p")):
        if np.any(arr <= 0):
            raise ValueError(
                f"{name} must hold variances > 0; got minimum {arr.min():.3g}."
            )
    try:
        mq, vq, mp, vp = np.broadcast_arrays(*arrays)
    except ValueError:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise ValueError(
            "mean_q, var_q, mean_p and var_p must broadcast to one shape; "
            f"got shapes {shapes}."
        ) from None
    # The mean term as ((mu_q - mu_p) / sigma_p)^2, so it cannot overflow
    # before the division does.
    scaled = (mq - mp) / np.sqrt(vp)
    per_coordinate = 0.5 * (scaled * scaled + _r_minus_1_minus_log_r(vq, vp))
    return float(per_coordinate.sum())
