"""The Kullback-Leibler divergence between diagonal Gaussians, in closed form.

The VAE's ELBO (notebooks/80-ppca-to-vae.ipynb) and the diffusion ELBO
(notebooks/85-diffusion-elbo.ipynb) are sums of such terms; the closed form
is derived there with SymPy from the integral.
"""

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import as_real_array
from emlib._numerics import r_minus_1_minus_log_r


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
    return float(kl_per_coordinate(mq, vq, mp, vp).sum())


def kl_per_coordinate(mq, vq, mp, vp):
    """The terms of :func:`gaussian_kl` before the sum, one per coordinate.

    The arguments are checked, broadcast arrays of one shape (or floats),
    variances > 0; no validation here. Returns an array of that shape.
    """
    # The mean term as ((mu_q - mu_p) / sigma_p)^2, so it cannot overflow
    # before the division does.
    scaled = (mq - mp) / np.sqrt(vp)
    return 0.5 * (scaled * scaled + r_minus_1_minus_log_r(vq, vp))
