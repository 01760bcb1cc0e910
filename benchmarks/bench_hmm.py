"""emlib.hmm against hmmlearn 0.3.3's CategoricalHMM (implementation="scaling").

Run with ``make bench``. Every time is the median of REPEATS calls, emlib
and hmmlearn interleaved call by call so that both see the same load. Wall
time is what the issue's targets name; CPU time (time.process_time, this
process's user + system time over all its threads) is printed beside it
because the 2-core machine is shared: under load the wall times measure the
other processes too. CPU time counts OpenBLAS's helper threads, which spin
while they wait, so it overstates emlib (numpy's matmul calls BLAS) against
hmmlearn (single-threaded C++). Cases
(issue 23): one sequence of T = 100,000 at S = 4, M = 8; 1,000 sequences of
length 100 at S = 4; one sequence of T = 10,000 at S = 64. Operations:
log_likelihood (hmmlearn ``score``), posteriors (``predict_proba``; emlib
also returns xi), viterbi (``decode``) and one Baum-Welch iteration (``fit``
with n_iter=1 from the same start).

The second table is the crossover that sets emlib.hmm._SCAN_MAX_STATES: the
parallel scan against emlib's sequential loop for log_likelihood on one
sequence, over S and T, in CPU time (both run in one thread: emlib._hmm_scan
keeps its products below OpenBLAS's threading threshold); it also writes
benchmarks/hmm_scaling.csv (time against T, S = 4; not committed, notebook
71 plots work and depth instead, which nbval can compare).
"""

import csv
import pathlib
import time
import warnings

import numpy as np
from hmmlearn.hmm import CategoricalHMM

from emlib import hmm

REPEATS, SEED, M = 7, 0, 8
CSV = pathlib.Path(__file__).with_name("hmm_scaling.csv")


def random_model(rng, n_states, n_symbols=M):
    """A dense random HMM (Dirichlet(1) rows)."""
    return hmm.HMM(
        rng.dirichlet(np.ones(n_states)),
        rng.dirichlet(np.ones(n_states), n_states),
        rng.dirichlet(np.ones(n_symbols), n_states),
    )


def hmmlearn_model(model, n_iter=1):
    """hmmlearn's CategoricalHMM holding ``model``, fitting exactly n_iter steps."""
    other = CategoricalHMM(
        model.n_states,
        n_features=model.n_symbols,
        n_iter=n_iter,
        tol=-np.inf,
        init_params="",
        implementation="scaling",
    )
    other.startprob_ = np.array(model.start)
    other.transmat_ = np.array(model.transition)
    other.emissionprob_ = np.array(model.emission)
    return other


def medians(*calls, repeats=REPEATS, clock=time.perf_counter):
    """Median seconds of each call, the calls interleaved repeat by repeat."""
    times = np.zeros((repeats, len(calls)))
    for r in range(repeats):
        for c, call in enumerate(calls):
            start = clock()
            call()
            times[r, c] = clock() - start
    return np.median(times, axis=0)


def wall_and_cpu(*calls):
    """Median wall seconds of each call, then median CPU seconds of each."""
    return medians(*calls), medians(*calls, clock=time.process_time)


def compare(name, model, sequences):
    """Rows (case, operation, wall emlib / hmmlearn s, CPU emlib / hmmlearn s)."""
    obs = sequences if len(sequences) > 1 else sequences[0]
    data = np.concatenate(sequences)[:, None]
    lengths = [len(s) for s in sequences]
    other = hmmlearn_model(model)

    def fit_other():
        with warnings.catch_warnings():  # tol=-inf: hmmlearn may warn
            warnings.simplefilter("ignore")
            hmmlearn_model(model).fit(data, lengths)

    operations = {
        "log_likelihood": (
            lambda: hmm.log_likelihood(obs, model),
            lambda: other.score(data, lengths),
        ),
        "posteriors": (
            lambda: hmm.posteriors(obs, model),
            lambda: other.predict_proba(data, lengths),
        ),
        "viterbi": (
            lambda: hmm.viterbi(obs, model),
            lambda: other.decode(data, lengths),
        ),
        "1 Baum-Welch iteration": (
            lambda: hmm.baum_welch(obs, model, tol=0, max_iter=1),
            fit_other,
        ),
    }
    rows = []
    for operation, (ours, theirs) in operations.items():
        wall, cpu = wall_and_cpu(ours, theirs)
        rows.append((name, operation, *wall, *cpu))
    return rows


def sequential_only(call):
    """``call`` with the scan switched off (every S above the crossover)."""
    saved = hmm._SCAN_MAX_STATES
    hmm._SCAN_MAX_STATES = 0  # S <= 0: never
    try:
        return call()
    finally:
        hmm._SCAN_MAX_STATES = saved


def crossover(rng):
    """Scan and sequential log_likelihood times over S and T (one sequence)."""
    rows = []
    for n_states in (2, 4, 8, 16, 32):
        model = random_model(rng, n_states)
        for length in (10, 100, 1_000, 10_000):
            obs = rng.integers(0, M, length)
            saved = hmm._SCAN_MAX_STATES
            saved_steps = hmm._SCAN_MIN_STEPS
            hmm._SCAN_MAX_STATES, hmm._SCAN_MIN_STEPS = 10**9, 0  # force the scan
            try:
                t_scan, t_loop = medians(
                    lambda: hmm.log_likelihood(obs, model),  # noqa: B023
                    lambda: sequential_only(
                        lambda: hmm.log_likelihood(obs, model)  # noqa: B023
                    ),
                    repeats=5,
                    clock=time.process_time,
                )
            finally:
                hmm._SCAN_MAX_STATES, hmm._SCAN_MIN_STEPS = saved, saved_steps
            rows.append((n_states, length, t_scan, t_loop))
    return rows


def main():
    rng = np.random.default_rng(SEED)
    model4, model64 = random_model(rng, 4), random_model(rng, 64)
    rows = compare("T=100000 S=4", model4, [rng.integers(0, M, 100_000)])
    rows += compare("1000 x 100 S=4", model4, list(rng.integers(0, M, (1000, 100))))
    rows += compare("T=10000 S=64", model64, [rng.integers(0, M, 10_000)])
    print(f"{'':41} {'wall time (s)':^25}   {'CPU time (s)':^25}")
    head = f"{'emlib':>8} {'hmmlearn':>8} {'ratio':>6}"
    print(f"{'case':16} {'operation':24} {head}   {head}")
    for case, operation, ours, theirs, cpu_ours, cpu_theirs in rows:
        print(
            f"{case:16} {operation:24} {ours:8.4f} {theirs:8.4f} "
            f"{ours / theirs:6.2f}   {cpu_ours:8.4f} {cpu_theirs:8.4f} "
            f"{cpu_ours / cpu_theirs:6.2f}"
        )

    print("\nscan vs sequential loop, log_likelihood, one sequence (median CPU s)")
    print(f"{'S':>3} {'T':>6} {'scan':>9} {'loop':>9} loop/scan")
    scaling = crossover(rng)
    for n_states, length, t_scan, t_loop in scaling:
        ratio = t_loop / t_scan
        print(f"{n_states:3} {length:6} {t_scan:9.5f} {t_loop:9.5f} {ratio:6.2f}")
    with CSV.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["n_states", "T", "scan_seconds", "loop_seconds"])
        out.writerows(
            (s, t, f"{a:.6g}", f"{b:.6g}") for s, t, a, b in scaling if s == 4
        )


if __name__ == "__main__":
    main()
