"""Time per EM iteration: emlib.em against scikit-learn, N = 1,000,000, K = 5.

Run with ``make bench``. Both fit the same data from the same start for the
same number of iterations (no early stop), in one process; the floor is one
``np.exp`` over an N x K float64 array, the one transcendental pass an E-step
cannot avoid. The time per iteration is the marginal one, (t(2n) - t(n)) / n
for runs of n and 2n iterations, so set-up that is not EM (input checks,
scikit-learn's initialisation, which runs even when every parameter is given)
is not counted for either. Each figure is the median of REPEATS repeats
(each repeat times n and 2n iterations back to back and takes their
difference), so one disturbed run moves it little and no figure rests on
a single difference of two one-shot timings.
"""

import statistics
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import emlib

N, K, N_ITER, REPEATS, SEED = 1_000_000, 5, 10, 5, 0


def seconds(run):
    """Wall-clock seconds of one call of ``run``."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def median_time(run, repeats=REPEATS):
    """Median wall-clock time of ``repeats`` calls of ``run``, in seconds."""
    return statistics.median(seconds(run) for _ in range(repeats))


def make_data(rng):
    """N points from a well-separated K-component mixture, and a start theta^(0)."""
    true_means = np.arange(K) * 4.0
    y = rng.normal(true_means[rng.integers(K, size=N)], 1.0)
    return y, emlib.initial_theta(y, K)


def per_iteration(fit, n_iter=N_ITER, repeats=REPEATS):
    """Marginal seconds per EM iteration: the median over ``repeats`` repeats of
    (t(2 n_iter) - t(n_iter)) / n_iter, t(n) the time of ``fit(n)``."""
    return statistics.median(
        (seconds(lambda: fit(2 * n_iter)) - seconds(lambda: fit(n_iter))) / n_iter
        for _ in range(repeats)
    )


def sklearn_fit(y, theta, n_iter):
    """scikit-learn's EM for exactly n_iter iterations from theta."""
    gm = GaussianMixture(
        n_components=K,
        covariance_type="spherical",
        reg_covar=0.0,
        tol=0.0,
        max_iter=n_iter,
        # The *_init arguments below replace the start; this only keeps the
        # initialisation scikit-learn runs anyway cheap and deterministic.
        init_params="random_from_data",
        random_state=SEED,
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
    # Log densities' range (<= 0), exponentiated into a second array, so that
    # repeated timings exponentiate the same values and never overflow.
    block = -np.random.default_rng(SEED).random((N, K))
    out = np.empty_like(block)
    t_floor = median_time(lambda: np.exp(block, out=out))
    t_emlib = per_iteration(lambda n: emlib.em(y, theta0, tol=0, max_iter=n))
    t_sklearn = per_iteration(lambda n: sklearn_fit(y, theta0, n))
    print(
        f"EM on N = {N:,} points, K = {K}: (t({2 * N_ITER} iterations) - "
        f"t({N_ITER})) / {N_ITER}, median of {REPEATS}"
    )
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
