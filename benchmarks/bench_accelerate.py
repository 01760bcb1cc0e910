"""EM against SQUAREM: E-passes and time to reach the limit l*.

Run with ``make bench``. Two fits:

- "1-D slow": notebook 41's y_syn (N = 1000 points from
  0.3 N(-6, 1) + 0.4 N(0, 0.5) + 0.3 N(5, 0.8), seed 2024) from its poor
  start (means -6.5, -5.5, 2.5, variances 1), which climbs to a local
  maximum at EM's rate 0.95 (notebook 41, section 3);
- "2-D full": N = 2000 points from three overlapping 2-D Gaussians (seed 0),
  K = 3, covariance_type="full", from initial_theta's k-means++ start.

l* is the last log-likelihood of a plain run of 5,000 iterations (tol=0),
whose last gain is printed (it is at rounding level).
For each method the cost is the number of E-passes (EMResult.n_evaluations)
and the wall time of the shortest run whose last log-likelihood is within
1e-8 |l*| of l*: the run is repeated with max_iter = the first iteration
that gets there, and the time is the median of REPEATS runs (the machine is
shared, so medians, not minima of one run).
"""

import statistics
import time

import numpy as np

import emlib
from emlib import multivariate

REPEATS = 7
RELATIVE = 1e-8
LIMIT_ITER = 5000
SEARCH_ITER = {None: 5000, "squarem": 500}  # iterations, or SQUAREM cycles


def slow_mixture():
    truth = emlib.GMM([0.3, 0.4, 0.3], [-6.0, 0.0, 5.0], [1.0, 0.5, 0.8])
    rng = np.random.default_rng(2024)
    z = rng.choice(3, size=1000, p=truth.weights)
    y = rng.normal(truth.means[z], np.sqrt(truth.variances[z]))
    start = emlib.GMM([1 / 3] * 3, [-6.5, -5.5, 2.5], [1.0] * 3)
    return lambda **kw: emlib.em(y, start, **kw)


def full_covariance_mixture():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [2.0, 0.5], [0.5, 2.0]])
    X = centres[rng.integers(3, size=2000)] + rng.normal(size=(2000, 2))
    start = multivariate.initial_theta(X, 3, "full", random_state=0)
    return lambda **kw: multivariate.em(X, start, **kw)


def cost_to_reach(fit, limit, accelerate):
    """(E-passes, median seconds) of the shortest run within RELATIVE of l*."""
    long = fit(tol=0.0, max_iter=SEARCH_ITER[accelerate], accelerate=accelerate)
    within = long.log_likelihoods >= limit - RELATIVE * abs(limit)
    n_iter = int(np.argmax(within))
    assert within[n_iter], "never within reach of l*"
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run = fit(tol=0.0, max_iter=max(n_iter, 1), accelerate=accelerate)
        times.append(time.perf_counter() - start)
    return run.n_evaluations, statistics.median(times)


def main():
    print(f"E-passes and time to l* within {RELATIVE:g} |l*|, median of {REPEATS}")
    print(f"{'fit':10s} {'method':8s} {'E-passes':>9s} {'time (s)':>9s}")
    for name, fit in [
        ("1-D slow", slow_mixture()),
        ("2-D full", full_covariance_mixture()),
    ]:
        long = fit(tol=0.0, max_iter=LIMIT_ITER).log_likelihoods
        limit = long[-1]
        print(f"{name}: l* = {limit:.10f}, last gain {long[-1] - long[-2]:.1e}")
        costs = {m: cost_to_reach(fit, limit, m) for m in (None, "squarem")}
        for method, (evaluations, seconds) in costs.items():
            print(f"{name:10s} {method or 'EM':8s} {evaluations:9d} {seconds:9.4f}")
        (e0, t0), (e1, t1) = costs[None], costs["squarem"]
        print(f"{name:10s} {'ratio':8s} {e0 / e1:9.1f} {t0 / t1:9.1f}")


if __name__ == "__main__":
    main()
