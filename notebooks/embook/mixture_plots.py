"""A 1-D Gaussian mixture's density, as numbers for figures, over a histogram.

emlib works in log space and never returns densities; the figures of
notebooks 40 and 41 draw them. :func:`component_densities` is checked against
``emlib.log_likelihood``, ``emlib.e_step`` and ``scipy.stats.norm`` in
``tests/test_embook_mixture_plots.py``.
"""

import numpy as np

from embook.params import gmm_args


def component_densities(x, theta):
    """alpha_k phi(x | theta_k) for each component k and point x.

    Parameters
    ----------
    x : array_like, shape (M,)
        Points.
    theta : emlib.GMM
        K components.

    Returns
    -------
    ndarray, shape (K, M)
        Row k is alpha_k phi(x | mu_k, sigma_k^2); the column sums are the
        mixture density P(x | theta).
    """
    alpha, mu, sigma = (a[:, None] for a in gmm_args(theta))
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"x must be a 1-D array of points, got shape {x.shape}.")
    z = (x[None, :] - mu) / sigma
    return alpha * np.exp(-0.5 * z**2) / (np.sqrt(2 * np.pi) * sigma)


def histogram_axes(data, bins, figsize=(8, 4)):
    """New axes holding a density histogram of ``data`` (shape (N,)), in grey."""
    import matplotlib.pyplot as plt  # here: the rest of the module needs none of it

    _, ax = plt.subplots(figsize=figsize)
    ax.hist(data, bins=bins, density=True, color="0.85", edgecolor="0.6", label="data")
    return ax


def plot_density(ax, x, theta, **style):
    """Draw the mixture density P(x | theta) over the points ``x`` on ``ax``."""
    return ax.plot(x, component_densities(x, theta).sum(axis=0), **style)
