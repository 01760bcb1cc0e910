"""Time per EM iteration: emlib.em against scikit-learn, N = 1,000,000, K = 5.

Run with ``make bench``. Both fit the same data from the same start for the
same number of iterations (no early stop), in one process; the floor is one
``np.exp`` over an N x K float64 array, the one transcendental pass an E-step
cannot avoid. Times are the best of a few repeats (least disturbed by other
load), divided by the iteration count.
"""

import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import emlib

N, K, N_ITER, REPEATS, SEED = 1_000_000, 5, 20, 3, 0


def best_time(run):
    """Best wall-clock time of ``REPEATS`` calls of ``run``, in seconds."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def make_data(rng):
    """N points from a well-separated K-component mixture, and a start theta^(0)."""
    true_means = np.arange(K) * 4.0
    y = rng.normal(true_means[rng.integers(K, size=N)], 1.0)
    return y, emlib.initial_theta(y, K)


def sklearn_fit(y, theta):
    """scikit-learn's EM for exactly N_ITER iterations from theta."""
    gm = GaussianMixture(
        n_components=K,
        covariance_type="spherical",
        reg_covar=0.0,
        tol=0.0,
        max_iter=N_ITER,
        weights_init=theta.weights,
        means_init=theta.means[:, None],
        precisions_init=1.0 / theta.variances,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0 never converges
        gm.fit(y[:, None])
    return gm


def main():
    y, theta0 = make_data(np.random.default_rng(SEED))
    block = np.empty((N, K))
    t_floor = best_time(lambda: np.exp(block, out=block))
    t_emlib = best_time(lambda: emlib.em(y, theta0, tol=0, max_iter=N_ITER)) / N_ITER
    t_sklearn = best_time(lambda: sklearn_fit(y, theta0)) / N_ITER
    print(f"EM on N = {N:,} points, K = {K}, {N_ITER} iterations, best of {REPEATS}")
    print(f"{'':30s}{'ms / iteration':>16s}{'x floor':>10s}")
    for name, t in [
        ("np.exp over N x K (floor)", t_floor),
        ("emlib.em", t_emlib),
        ("sklearn GaussianMixture", t_sklearn),
    ]:
        print(f"{name:30s}{1e3 * t:16.1f}{t / t_floor:10.2f}")
    print(
        f"emlib is {t_sklearn / t_emlib:.1f}x faster than scikit-learn (target: >= 3x)"
    )


if __name__ == "__main__":
    main()
