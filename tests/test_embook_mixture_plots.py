"""embook.mixture_plots: the densities drawn are emlib's mixture."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.stats import norm

import emlib
from embook.mixture_plots import (
    component_densities,
    histogram_axes,
    plot_density,
)

THETA = emlib.GMM([0.3, 0.7], [-1.0, 2.5], [0.5, 2.0])
X = np.linspace(-4.0, 6.0, 41)


def test_rows_are_weighted_normal_densities():
    want = THETA.weights[:, None] * norm.pdf(
        X[None, :], THETA.means[:, None], np.sqrt(THETA.variances)[:, None]
    )
    assert_allclose(component_densities(X, THETA), want, rtol=1e-14, atol=0)


def test_columns_give_emlib_log_likelihood_and_responsibilities():
    """Summed in log: emlib's log-space log P(Y | theta) to 1e-12 relative.

    A different computation of the same number: sums of 41 terms, each
    rounded to a few ulps, stay far below 1e-12.
    """
    parts = component_densities(X, THETA)
    log_lik = np.log(parts.sum(axis=0)).sum()
    assert_allclose(log_lik, emlib.log_likelihood(X, THETA), rtol=1e-12, atol=0)
    gamma = (parts / parts.sum(axis=0)).T
    assert_allclose(gamma, emlib.e_step(X, THETA), rtol=1e-12, atol=1e-300)


def test_old_faithful_start_as_notebook_40_checked_it():
    """The check notebook 40 made before this helper existed, kept here."""
    from embook.data import old_faithful

    y = old_faithful()[:, 0]
    theta_0 = emlib.initial_theta(y, 2)
    log_lik = np.log(component_densities(y, theta_0).sum(axis=0)).sum()
    assert np.isclose(log_lik, emlib.log_likelihood(y, theta_0), rtol=1e-12, atol=0)


def test_bad_points_raise():
    with pytest.raises(ValueError, match="1-D array of points"):
        component_densities(X[:, None], THETA)


def test_plot_density_draws_the_mixture_over_a_histogram():
    # pyplot (0.5 s of CPU) is imported here, by the only test that draws,
    # not at the top, where every xdist worker imported it to collect.
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    mpl.use("Agg")
    ax = histogram_axes(X, bins=5, figsize=(3, 2))
    (line,) = plot_density(ax, X, THETA, color="k")
    assert_allclose(line.get_ydata(), component_densities(X, THETA).sum(axis=0))
    assert len(ax.patches) == 5
    plt.close(ax.figure)
