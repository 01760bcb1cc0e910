"""emlib.em on Dask arrays: threads against one thread, and data on disk.

Run with ``make bench``. Two measurements, K = 5, the same data-generating
mixture and start as bench_em.py:

1. N = 20,000,000 in memory, as a Dask array in chunks of 1,000,000: time
   per iteration with Dask's synchronous scheduler (one thread), with its
   threaded scheduler on 2 threads, and of in-memory ``emlib.em``. Targets:
   threads >= 1.6x faster than one thread (numpy releases the GIL in its
   kernels), and no slower than in-memory. Two threads cannot be more than
   2x faster than one on 2 cores: a larger ratio flags a disturbed
   measurement, and the script says so.
2. N = 200,000,000 (1.6 GB of float64) in a .npy file on disk, read chunk by
   chunk (1,000,000 points, 8 MB, per task) on 2 threads. Targets: time per
   point per iteration within 1.5x of in-memory ``emlib.em``'s, and the
   process's peak resident memory under 1 GB.

Times are marginal per iteration, (t(2n) - t(n)) / n, so Dask's graph set-up
and the one validation pass are not counted, as in bench_em.py; each is the
median over REPEATS repeats.

4. ``--overhead``: the per-iteration overhead of the Dask path, at 1,000,
   2,000, 4,000 and 8,000 chunks of 4 points each (so the time is the
   graph's and the scheduler's, not arithmetic), persisted, on the
   synchronous scheduler, for emlib.em (K = 2) and multivariate.em (D = 2,
   K = 2, "full"). Targets: 8,000 chunks cost at most 10x what 1,000 cost
   (linear growth is 8x) and under 2 s per iteration. Marginal time per
   iteration, (t(3) - t(1)) / 2, median of 3 repeats, in CPU seconds of
   this process (the synchronous scheduler runs in it, so CPU time is the
   work done, whatever else loads the machine) and in wall seconds.

5. ``--multivariate``: multivariate.em, N = 10,000,000 points in D = 4,
   K = 5, "full", chunks of 1,000,000 rows: in memory, Dask synchronous,
   Dask on 2 threads (marginal seconds per iteration, median of 3); then
   N = 100,000,000 x 2 (1.6 GB) in a .npy file, streamed chunk by chunk on 2
   threads: one ppca.em (one pass) and one multivariate.em iteration, with
   this process's peak resident memory (target < 1 GB).

6. ``--online``: emlib.online_em against batch EM on N = 10,000,000 points
   from three overlapping components, from the same start: the gap to the
   maximum (nats per point) after 1, 2 and 3 passes of online EM (batches
   of 1,000, gamma_t = t^-0.6), and the passes batch EM needs to come
   within 1e-3 (target: online EM within 1e-3 in at most 3 passes).

3. ``--scaling FILE``: time per iteration and memory held against N, in
   memory, on Dask threads (data read from disk) and on a 2-process
   ``distributed.LocalCluster`` (data persisted on the workers), in chunks of
   SCALING_CHUNK points, written as CSV for the figure of
   notebooks/90-em-at-scale.ipynb. With a fixed chunk size the memory the
   Dask path holds stops growing with N once there are many more chunks than
   threads. Each time is the median of SCALING_REPEATS repeats (fewer than
   parts 1 and 2: the table has 12 timings per N).
"""

import argparse
import csv
import itertools
import logging
import os
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import dask
import dask.array as da
import distributed
import numpy as np
from bench_em import REPEATS, per_iteration

import emlib
from emlib import multivariate, ppca

K, SEED, CHUNK = 5, 0, 1_000_000
N_MEMORY, N_DISK = 20_000_000, 200_000_000


def sample(rng, n):
    """n points from a well-separated K-component mixture (as in bench_em.py)."""
    return rng.normal(4.0 * rng.integers(K, size=n), 1.0)


def write_npy_in_pieces(path, n, rng):
    """A float64 .npy of n points, written a piece at a time (bounded memory)."""
    header = {"descr": "<f8", "fortran_order": False, "shape": (n,)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, n, 10 * CHUNK):
            sample(rng, min(n, start + 10 * CHUNK) - start).tofile(f)


def peak_resident_bytes(run):
    """Peak resident memory of this process while ``run()`` runs (Linux).

    Writing 5 to /proc/self/clear_refs resets the kernel's high-water mark
    (VmHWM), so what ran before does not count.
    """
    Path("/proc/self/clear_refs").write_text("5")
    run()
    status = Path("/proc/self/status").read_text().splitlines()
    (kib,) = (line.split()[1] for line in status if line.startswith("VmHWM"))
    return int(kib) * 1024


def npy_as_dask(path, chunk):
    """A .npy file as a Dask array whose tasks read their chunk with np.fromfile.

    Each task reads its 8-byte floats into fresh memory and lets it go, so
    the process holds only the chunks being worked on (a memory map would
    keep the file's pages mapped and counted as resident).
    """
    mm = np.load(path, mmap_mode="r")
    n, offset = mm.shape[0], mm.offset
    del mm

    def read(start, count):
        return np.fromfile(
            path, dtype=np.float64, count=count, offset=offset + 8 * start
        )

    pieces = [
        da.from_delayed(
            dask.delayed(read)(start, min(chunk, n - start)),
            shape=(min(chunk, n - start),),
            dtype=np.float64,
        )
        for start in range(0, n, chunk)
    ]
    return da.concatenate(pieces)


def fit_seconds(y, theta0, n_iter, repeats=REPEATS, **dask_config):
    """Marginal seconds per iteration of emlib.em on y under a Dask config,
    the median of ``repeats`` repeats."""
    with dask.config.set(**dask_config):
        return per_iteration(
            lambda n: emlib.em(y, theta0, tol=0, max_iter=n), n_iter, repeats
        )


def in_memory(theta0):
    """Part 1: returns in-memory emlib.em's seconds per iteration at N_MEMORY."""
    y = sample(np.random.default_rng(SEED), N_MEMORY)
    y_dask = da.from_array(y, chunks=CHUNK)
    t_memory = fit_seconds(y, theta0, 3)
    t_sync = fit_seconds(y_dask, theta0, 3, scheduler="synchronous")
    t_threads = fit_seconds(y_dask, theta0, 3, scheduler="threads", num_workers=2)
    print(f"N = {N_MEMORY:,}, K = {K}, chunks of {CHUNK:,}: seconds per iteration")
    print(f"  in-memory emlib.em        {t_memory:8.3f}")
    print(f"  Dask, synchronous         {t_sync:8.3f}")
    print(f"  Dask, 2 threads           {t_threads:8.3f}")
    print(
        f"  threads vs one thread: {t_sync / t_threads:.2f}x faster (target >= 1.6x);"
        f" vs in-memory: {t_memory / t_threads:.2f}x (target >= 1)"
    )
    if max(t_sync, t_memory) / t_threads > 2:
        print("  a speed-up over 2x on 2 threads: the machine was busy; rerun")
    return t_memory


def on_disk(theta0, t_memory):
    """Part 2: N_DISK points from a .npy file, against the in-memory rate."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "y.npy"
        write_npy_in_pieces(path, N_DISK, np.random.default_rng(SEED + 1))
        y_disk = npy_as_dask(path, CHUNK)
        with dask.config.set(scheduler="threads", num_workers=2):
            peak = peak_resident_bytes(
                lambda: emlib.em(y_disk, theta0, tol=0, max_iter=1)
            )
        t_disk = fit_seconds(y_disk, theta0, 1, scheduler="threads", num_workers=2)
    ratio = (t_disk / N_DISK) / (t_memory / N_MEMORY)
    print(f"N = {N_DISK:,} from a .npy on disk, 2 threads: {t_disk:.2f} s/iteration")
    print(
        f"  time per point: {ratio:.2f}x in-memory emlib.em's (target <= 1.5x); "
        f"peak resident memory of this process during a fit {peak / 1e9:.2f} GB "
        "(target < 1 GB)"
    )


def traced_peak(y, theta0, **dask_config):
    """Peak bytes allocated (tracemalloc, which sees numpy) by 2 iterations on y."""
    tracemalloc.start()
    try:
        with dask.config.set(**dask_config):
            emlib.em(y, theta0, tol=0, max_iter=2)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


SCALING_N = (100_000, 300_000, 1_000_000, 3_000_000)
# 800 kB per chunk: 30 chunks at the largest N, many more than 2 threads.
SCALING_CHUNK, SCALING_REPEATS = 100_000, 3


def scaling(csv_path, theta0):
    """Part 3: per-iteration time and memory held against N, written to csv_path."""
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        for n in SCALING_N:
            y = sample(np.random.default_rng(SEED), n)
            path = Path(tmp) / f"y{n}.npy"
            np.save(path, y)
            chunk = SCALING_CHUNK
            y_disk = npy_as_dask(path, chunk)
            # The workers read their chunks from the file themselves, as on a
            # cluster with shared storage; the data never pass through here.
            y_workers = client.persist(npy_as_dask(path, chunk))
            with client.as_current():
                t_processes = fit_seconds(y_workers, theta0, 2, SCALING_REPEATS)
            del y_workers

            rows.append(
                {
                    "N": n,
                    "seconds_in_memory": fit_seconds(y, theta0, 2, SCALING_REPEATS),
                    "seconds_threads_from_disk": fit_seconds(
                        y_disk,
                        theta0,
                        2,
                        SCALING_REPEATS,
                        scheduler="threads",
                        num_workers=2,
                    ),
                    "seconds_processes": t_processes,
                    # The in-memory fit holds the data (8 N bytes) besides
                    # what it allocates; the Dask fit reads chunks from disk.
                    "bytes_in_memory": y.nbytes + traced_peak(y, theta0),
                    "bytes_threads_from_disk": traced_peak(
                        y_disk, theta0, scheduler="threads", num_workers=2
                    ),
                    # The machine's 1-minute load average after this row: above
                    # its core count, other work shared the cores and the times
                    # measure that too.
                    "load_average": os.getloadavg()[0],
                }
            )
            print(rows[-1])
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


OVERHEAD_CHUNKS, OVERHEAD_ROWS, OVERHEAD_REPEATS = (1000, 2000, 4000, 8000), 4, 3


def marginal_seconds(fit):
    """(t(3) - t(1)) / 2 in CPU and in wall seconds, t(n) the time of
    ``fit(n)``: each the median of OVERHEAD_REPEATS repeats."""

    def timed(n):
        cpu, wall = time.process_time(), time.perf_counter()
        fit(n)
        return np.array([time.process_time() - cpu, time.perf_counter() - wall])

    runs = [(timed(3) - timed(1)) / 2 for _ in range(OVERHEAD_REPEATS)]
    return np.median(runs, axis=0)


def overhead():
    """Part 4: per-iteration overhead against the number of chunks."""
    theta_1d = emlib.GMM([0.5, 0.5], [-1.0, 1.0], [1.0, 1.0])
    theta_mv = multivariate.GMM(
        [0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], np.eye(2)[None].repeat(2, 0)
    )
    rng = np.random.default_rng(SEED)
    print(
        f"Per-iteration overhead, chunks of {OVERHEAD_ROWS} points, persisted, "
        "synchronous scheduler; seconds per iteration (median of "
        f"{OVERHEAD_REPEATS}), CPU / wall"
    )
    print(f"{'chunks':>8} {'emlib.em':>17} {'multivariate.em':>17}")
    rows = []
    for n_chunks in OVERHEAD_CHUNKS:
        n = n_chunks * OVERHEAD_ROWS
        y = da.from_array(rng.normal(size=n), chunks=OVERHEAD_ROWS).persist()
        X = da.from_array(rng.normal(size=(n, 2)), chunks=(OVERHEAD_ROWS, 2)).persist()
        fits = [
            lambda m, y=y: emlib.em(y, theta_1d, tol=0, max_iter=m),
            lambda m, X=X: multivariate.em(X, theta_mv, tol=0, max_iter=m),
        ]
        with dask.config.set(scheduler="synchronous"):
            times = [marginal_seconds(f) for f in fits]
        rows.append(times)
        print(
            f"{n_chunks:>8} "
            + " ".join(f"{cpu:8.3f} /{wall:7.3f}" for cpu, wall in times)
        )
    for j, name in enumerate(("emlib.em", "multivariate.em")):
        first, last = rows[0][j][0], rows[-1][j][0]
        print(
            f"  {name}: {OVERHEAD_CHUNKS[-1]:,} chunks cost {last / first:.1f}x "
            f"{OVERHEAD_CHUNKS[0]:,} chunks (target <= 10x), {last:.2f} CPU s per "
            "iteration (target < 2 s)"
        )
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


MV_N, MV_D, MV_K, MV_CHUNK = 10_000_000, 4, 5, 1_000_000
OUT_OF_CORE_N = 100_000_000


def mv_sample(rng, n, d=MV_D):
    """n points in R^d from MV_K well-separated unit Gaussians."""
    centres = 6.0 * rng.standard_normal((MV_K, d))
    return centres[rng.integers(MV_K, size=n)] + rng.standard_normal((n, d))


def npy_rows_as_dask(path, chunk):
    """A 2-D .npy file as a Dask array whose tasks read their rows (np.fromfile)."""
    mm = np.load(path, mmap_mode="r")
    (n, d), offset = mm.shape, mm.offset
    del mm

    def read(start, count):
        values = np.fromfile(
            path, dtype=np.float64, count=count * d, offset=offset + 8 * d * start
        )
        return values.reshape(count, d)

    pieces = [
        da.from_delayed(
            dask.delayed(read)(start, min(chunk, n - start)),
            shape=(min(chunk, n - start), d),
            dtype=np.float64,
        )
        for start in range(0, n, chunk)
    ]
    return da.concatenate(pieces)


def multivariate_table():
    """Part 5: multivariate.em in memory, on Dask, and streamed from disk."""
    rng = np.random.default_rng(SEED)
    X = mv_sample(rng, MV_N)
    theta0 = multivariate.initial_theta(X[:: MV_N // 100_000], MV_K, random_state=0)
    X_dask = da.from_array(X, chunks=(MV_CHUNK, MV_D)).persist()

    def fit(data, **config):
        with dask.config.set(**config):
            return per_iteration(
                lambda n: multivariate.em(data, theta0, tol=0, max_iter=n), 1, 3
            )

    t_memory = fit(X)
    t_sync = fit(X_dask, scheduler="synchronous")
    t_threads = fit(X_dask, scheduler="threads", num_workers=2)
    print(f"multivariate.em, N = {MV_N:,}, D = {MV_D}, K = {MV_K}, full, chunks of")
    print(f"{MV_CHUNK:,} rows: seconds per iteration (median of 3)")
    print(f"  in memory                 {t_memory:8.3f}")
    print(f"  Dask, synchronous         {t_sync:8.3f}")
    print(f"  Dask, 2 threads           {t_threads:8.3f}")
    print(
        f"  threads vs one thread {t_sync / t_threads:.2f}x, vs in memory "
        f"{t_memory / t_threads:.2f}x; load average {os.getloadavg()[0]:.1f}"
    )
    del X, X_dask
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "X.npy"
        header = {"descr": "<f8", "fortran_order": False, "shape": (OUT_OF_CORE_N, 2)}
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            for start in range(0, OUT_OF_CORE_N, 10 * CHUNK):
                count = min(OUT_OF_CORE_N, start + 10 * CHUNK) - start
                mv_sample(rng, count, 2).tofile(f)
        X_disk = npy_rows_as_dask(path, CHUNK)
        theta2 = multivariate.initial_theta(
            X_disk[:100_000].compute(), MV_K, random_state=0
        )
        with dask.config.set(scheduler="threads", num_workers=2):
            start = time.perf_counter()
            peak_ppca = peak_resident_bytes(lambda: ppca.em(X_disk, 1, max_iter=100))
            t_ppca = time.perf_counter() - start
            start = time.perf_counter()
            peak_mv = peak_resident_bytes(
                lambda: multivariate.em(X_disk, theta2, tol=0, max_iter=1)
            )
            t_mv = time.perf_counter() - start
    print(f"N = {OUT_OF_CORE_N:,} x 2 from a .npy on disk (1.6 GB), 2 threads:")
    print(
        f"  ppca.em (one pass): {t_ppca:.1f} s, peak resident {peak_ppca / 1e9:.2f} GB"
    )
    print(
        f"  multivariate.em, 1 iteration (validation + 2 passes): {t_mv:.1f} s, "
        f"peak resident {peak_mv / 1e9:.2f} GB (target < 1 GB)"
    )


ONLINE_N, ONLINE_BATCH = 10_000_000, 1000


def online():
    """Part 6: online EM against batch EM on ONLINE_N points."""
    rng = np.random.default_rng(SEED)
    label = rng.choice(3, size=ONLINE_N, p=[0.3, 0.5, 0.2])
    y = rng.normal(np.array([-2.0, 0.5, 3.0])[label], np.array([1.0, 0.7, 1.2])[label])
    start = emlib.initial_theta(y[rng.choice(ONLINE_N, 100_000, replace=False)], 3)
    best = emlib.em(y, start, tol=1e-13, accelerate="squarem").log_likelihoods[-1]
    batches = np.split(y, ONLINE_N // ONLINE_BATCH)
    print(
        f"online EM on N = {ONLINE_N:,}, batches of {ONLINE_BATCH:,}, "
        "gamma_t = t^-0.6; gap to the maximum in nats per point:"
    )
    for passes in (1, 2, 3):
        t0 = time.process_time()
        theta = emlib.online_em(
            itertools.chain.from_iterable([batches] * passes), start, step_size=0.6
        )
        seconds = time.process_time() - t0
        gap = (best - emlib.log_likelihood(y, theta)) / ONLINE_N
        print(f"  {passes} pass(es): gap {gap:.2e} ({seconds:.1f} CPU s)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", emlib.ConvergenceWarning)
        run = emlib.em(y, start, tol=0, max_iter=200)
    gaps = (best - run.log_likelihoods) / ONLINE_N
    within = np.flatnonzero(gaps <= 1e-3)
    needed = f"{within[0]} passes" if within.size else "more than 200 passes"
    print(f"  batch EM: gap {gaps[3]:.2e} after 3 passes; within 1e-3 after {needed}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scaling", metavar="FILE", help="write the scaling CSV")
    parser.add_argument(
        "--overhead", action="store_true", help="only part 4: overhead per chunk"
    )
    parser.add_argument(
        "--multivariate", action="store_true", help="only part 5: multivariate"
    )
    parser.add_argument("--online", action="store_true", help="only part 6: online EM")
    args = parser.parse_args()
    # Parts 2, 3 and 5 stream .npy files from disk on purpose: every pass
    # reads the file again, which is what they measure.
    warnings.simplefilter("ignore", emlib.RecomputeWarning)
    if args.overhead or args.multivariate or args.online:
        for wanted, part in [
            (args.overhead, overhead),
            (args.multivariate, multivariate_table),
            (args.online, online),
        ]:
            if wanted:
                part()
        return
    # The start: emlib's default start on a sample, as a user of Dask would.
    theta0 = emlib.initial_theta(sample(np.random.default_rng(SEED + 2), 100_000), K)
    if args.scaling:
        scaling(args.scaling, theta0)
    else:
        on_disk(theta0, in_memory(theta0))
        overhead()
        multivariate_table()
        online()


if __name__ == "__main__":
    main()
