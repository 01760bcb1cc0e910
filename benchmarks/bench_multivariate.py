"""Time per EM iteration in D dimensions: emlib.multivariate.em against scikit-learn.

Run with ``make bench`` (after bench_em.py). N = 1,000,000 points in D = 2,
K = 5 components, covariance_type="full". Both fit the same data from the
same start (scikit-learn given ``weights_init``, ``means_init`` and
``precisions_init``) for the same number of iterations (``tol=0``, no early
stop), in one process. As in bench_em.py the time per iteration is the
marginal one, (t(2n) - t(n)) / n, the median of a few repeats, and the
floor is one ``np.exp`` over an N x K float64 array.
"""

import warnings

import numpy as np
from bench_em import REPEATS, median_time, per_iteration
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from emlib import multivariate

N, D, K, N_ITER, SEED = 1_000_000, 2, 5, 3, 0


def make_data(rng):
    """N points from K elongated, tilted 2-D clusters, and a start theta^(0)."""
    centres = np.column_stack([np.arange(K) * 4.0, (np.arange(K) % 2) * 3.0])
    shear = np.array([[1.0, 0.5], [0.0, 0.7]])
    X = centres[rng.integers(K, size=N)] + rng.normal(size=(N, D)) @ shear
    return X, multivariate.initial_theta(X, K, "full")


def sklearn_fit(X, theta, n_iter):
    """scikit-learn's EM for exactly n_iter iterations from theta."""
    gm = GaussianMixture(
        n_components=K,
        covariance_type="full",
        reg_covar=0.0,
        tol=0.0,
        max_iter=n_iter,
        # The *_init arguments replace the start; this only keeps the
        # initialisation scikit-learn runs anyway cheap and deterministic.
        init_params="random_from_data",
        random_state=SEED,
        weights_init=theta.weights,
        means_init=theta.means,
        precisions_init=np.linalg.inv(theta.covariances),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0 never converges
        gm.fit(X)
    return gm


def main():
    X, theta0 = make_data(np.random.default_rng(SEED))
    # Log densities' range (<= 0), exponentiated into a second array, so that
    # repeated timings exponentiate the same values and never overflow.
    block = -np.random.default_rng(SEED).random((N, K))
    out = np.empty_like(block)
    t_floor = median_time(lambda: np.exp(block, out=out))
    t_emlib = per_iteration(
        lambda n: multivariate.em(X, theta0, tol=0, max_iter=n), N_ITER
    )
    t_sklearn = per_iteration(lambda n: sklearn_fit(X, theta0, n), N_ITER)
    print(
        f"EM on N = {N:,} points, D = {D}, K = {K}, full covariances: "
        f"(t({2 * N_ITER} iterations) - t({N_ITER})) / {N_ITER}, median of {REPEATS}"
    )
    print(f"{'':30s}{'ms / iteration':>16s}{'x floor':>10s}")
    for name, t in [
        ("np.exp over N x K (floor)", t_floor),
        ("emlib.multivariate.em", t_emlib),
        ("sklearn GaussianMixture", t_sklearn),
    ]:
        print(f"{name:30s}{1e3 * t:16.1f}{t / t_floor:10.2f}")
    print(
        f"emlib.multivariate is {t_sklearn / t_emlib:.1f}x faster than "
        "scikit-learn (target: >= 8x)"
    )


if __name__ == "__main__":
    main()
