"""EM runs as the notebooks examine them: one step as a map, and its Jacobian.

Notebooks 40 and 41 study the EM map theta^(i+1) = M(theta^(i)) of
:func:`emlib.em` near its fixed points; both need the same single step, its
Jacobian by central differences, and a check that a printed iteration count
does not hinge on the last bits of a log-likelihood.
"""

import numpy as np

import emlib
from embook.params import from_vector, to_vector


def em_step(y, theta):
    """One EM iteration theta^(i) -> theta^(i+1): a one-step run of :func:`emlib.em`.

    Parameters
    ----------
    y : array_like, shape (N,)
    theta : emlib.GMM

    Returns
    -------
    emlib.GMM
    """
    return emlib.em(y, theta, tol=0, max_iter=1).theta


def central_jacobian(f, v, h=1e-6):
    """The Jacobian of ``f`` at ``v`` by central differences.

    Column i is ``(f(v + h_i e_i) - f(v - h_i e_i)) / (2 h_i)`` with
    ``h_i = h * max(1, |v_i|)``: its truncation error is O(h^2) and its
    rounding error about eps / h.

    Parameters
    ----------
    f : callable
        Maps an array of shape (n,) to an array of shape (m,).
    v : array_like, shape (n,)
    h : float, default 1e-6

    Returns
    -------
    ndarray, shape (m, n)
    """
    v = np.asarray(v, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"v must be a 1-D vector, got shape {v.shape}.")
    columns = []
    for i in range(v.size):
        step = np.zeros_like(v)
        step[i] = h * max(1.0, abs(v[i]))
        diff = np.asarray(f(v + step), dtype=float) - np.asarray(f(v - step))
        columns.append(diff / (2 * step[i]))
    return np.column_stack(columns)


def em_map_jacobian(y, theta, h=1e-6):
    """Jacobian of the EM map at ``theta``, in the coordinates of ``to_vector``.

    The coordinates are alpha_1..alpha_{K-1}, mu_1..mu_K, sigma_1^2..sigma_K^2
    (alpha_K = 1 - sum of the others), so the result has shape (3K - 1, 3K - 1).

    Parameters
    ----------
    y : array_like, shape (N,)
    theta : emlib.GMM
    h : float, default 1e-6
        Relative step of :func:`central_jacobian`.

    Returns
    -------
    ndarray, shape (3K - 1, 3K - 1)
    """
    k = theta.n_components

    def em_map(v):
        return to_vector(em_step(y, from_vector(v, k)))

    return central_jacobian(em_map, to_vector(theta), h)


def assert_count_robust(run, n_points, tol=1e-10, margin=0.01):
    """Assert that ``run`` stopped where it did with a margin on both sides.

    :func:`emlib.em` stops after the first iteration whose gain
    log P(Y | theta^(n)) - log P(Y | theta^(n-1)) is below ``tol * N``. The
    iteration count ``run.n_iter`` is reproducible on another machine, whose
    rounding may differ in the last bits, when the last gain lies below
    ``(1 - margin) * tol * N`` and the one before above
    ``(1 + margin) * tol * N``.

    Parameters
    ----------
    run : emlib.EMResult
        A run of ``emlib.em`` with ``tol`` as given here.
    n_points : int
        N, the number of observations of the run.
    tol, margin : float

    Raises
    ------
    AssertionError
        If the run did not converge, or a gain lies within the margin.
    """
    gains = np.diff(run.log_likelihoods)
    threshold = tol * n_points
    assert run.converged, "the run did not converge"
    assert gains.size >= 2, "a single iteration leaves no gain before the last"
    assert gains[-1] < (1 - margin) * threshold, (
        f"last gain {gains[-1]:.3e} within {margin:.0%} of tol * N = {threshold:.3e}"
    )
    assert gains[-2] > (1 + margin) * threshold, (
        f"gain before the last {gains[-2]:.3e} within {margin:.0%} of "
        f"tol * N = {threshold:.3e}"
    )
