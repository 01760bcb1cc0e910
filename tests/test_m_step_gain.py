"""The M-step maximises the bound L(q^(i), theta): checks of emlib.m_step.

These were made in notebooks/10-em-lower-bound.ipynb, which takes the M-step's
maximality from notebook 30; they test emlib rather than the derivation, so
they live here. Data: notebook 10's N = 400 points from a three-component
mixture and its poor start theta^(0).
"""

import numpy as np
import reference
import sympy as sp
from numpy.testing import assert_allclose

import emlib
from embook.sym import split_sums


def first_iteration():
    """Notebook 10's data y, its start theta^(0), q^(0) = e_step and theta^(1)."""
    rng = np.random.default_rng(1010)
    truth = emlib.GMM([0.3, 0.4, 0.3], [-4.0, 0.0, 3.5], [1.0, 0.8, 1.5])
    z = rng.choice(3, size=400, p=truth.weights)
    y = rng.normal(truth.means[z], np.sqrt(truth.variances[z]))
    theta_0 = emlib.GMM([1 / 3] * 3, [-1.0, 0.5, 1.0], [4.0] * 3)
    q_0 = emlib.e_step(y, theta_0)
    return y, theta_0, q_0, emlib.m_step(y, q_0)


def test_m_step_beats_random_nearby_parameters():
    """L(q^(0), theta^(1)) exceeds L(q^(0), theta) at 200 random theta near theta^(1).

    Weights and variances move by a random factor exp(N(0, 0.1^2)), so they
    stay valid; means by N(0, 0.1^2).
    """
    y, _, q_0, theta_1 = first_iteration()
    best = emlib.elbo(y, q_0, theta_1)
    rng = np.random.default_rng(7)
    for _ in range(200):
        weights = theta_1.weights * np.exp(rng.normal(0, 0.1, 3))
        nearby = emlib.GMM(
            weights / weights.sum(),
            theta_1.means + rng.normal(0, 0.1, 3),
            theta_1.variances * np.exp(rng.normal(0, 0.1, 3)),
        )
        assert emlib.elbo(y, q_0, nearby) < best


def test_sum_of_squares_splits_at_the_weighted_mean():
    """sum_j g_j (y_j - mu)^2 = sum_j g_j (y_j - ybar)^2 + n (ybar - mu)^2, any N.

    With n = sum_j g_j and ybar = sum_j g_j y_j / n; used below for the gain
    of moving the means alone.
    """
    j, N = sp.symbols("j N", integer=True, positive=True)
    g, y = sp.IndexedBase("gamma", positive=True), sp.IndexedBase("y")
    mu, y_bar, n = sp.symbols("mu ybar n")
    squares = [sp.Sum(g[j] * (y[j] - c) ** 2, (j, 1, N)) for c in (mu, y_bar)]
    moments = {
        sp.Sum(g[j], (j, 1, N)): n,
        sp.Sum(g[j] * y[j], (j, 1, N)): n * y_bar,
    }
    split = split_sums(squares[0] - squares[1] - n * (y_bar - mu) ** 2)
    assert sp.expand(split.subs(moments)) == 0


def test_m_step_gains_at_least_the_means_only_update():
    """Moving only the means to the M-step's raises Q by sum_k n_k d_k^2 / (2 s_k^2).

    d_k = mu_k^(1) - mu_k^(0) and s_k^2 = sigma_k^2 at theta^(0). In Q the mean
    mu_k enters only through -sum_j gamma_jk (y_j - mu_k)^2 / (2 sigma_k^2),
    which splits as in the test above. The full M-step maximises Q, so it
    gains at least that much.

    Tolerance 1e-13 relative: Q_rise is a difference of two correctly rounded
    sums of about 1e3 nats whose terms carry a few ulps each, at most about
    1e-13 nats, against a gain of about 28 nats (measured 1.3e-15 relative).
    """
    y, theta_0, q_0, theta_1 = first_iteration()
    n_k = q_0.sum(axis=0)
    d_mu = theta_1.means - theta_0.means
    mean_gain = float(np.sum(n_k * d_mu**2 / (2 * theta_0.variances)))
    w, v = theta_0.weights, theta_0.variances
    q_rise = reference.q_function(y, q_0, w, theta_1.means, v) - reference.q_function(
        y, q_0, w, theta_0.means, v
    )
    assert_allclose(q_rise, mean_gain, rtol=1e-13, atol=0)
    gain = emlib.elbo(y, q_0, theta_1) - emlib.elbo(y, q_0, theta_0)
    assert gain >= mean_gain > 0
