"""emlib.em on Dask arrays equals the in-memory fit, on threads and on a cluster.

The Dask path reduces each chunk to its statistics with the same per-chunk
pass as the in-memory fit and merges them pairwise up a tree, so the two
agree up to the order of floating-point summation: 1e-12 relative for every
log-likelihood and parameter (means: of the data's scale), as in test_em.py.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import emlib

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

RTOL = 1e-12
START = emlib.GMM([0.2, 0.3, 0.5], [-1.0, 0.5, 2.0], [1.0, 3.0, 2.0])
N_ITER = 6


def three_clusters(n, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    component = rng.choice(3, size=n, p=[0.3, 0.5, 0.2])
    means, sds = np.array([-4.0, 0.0, 5.0]), np.array([1.0, 2.0, 0.5])
    return offset + rng.normal(means[component], sds[component])


def assert_same_fit(got, want, y_scale):
    assert got.n_iter == want.n_iter
    assert got.converged == want.converged
    assert_allclose(got.log_likelihoods, want.log_likelihoods, rtol=RTOL, atol=0)
    assert_allclose(got.theta.weights, want.theta.weights, rtol=RTOL, atol=0)
    assert_allclose(got.theta.means, want.theta.means, rtol=0, atol=RTOL * y_scale)
    assert_allclose(got.theta.variances, want.theta.variances, rtol=RTOL, atol=0)


# Module scope, not session: an idle cluster still costs about 0.13 s of CPU
# a second (heartbeats, the nannies' memory monitors), which the rest of a
# session's tests would pay for.
@pytest.fixture(scope="module")
def cluster():
    """One 2-worker LocalCluster of processes (each under a nanny) for this module."""
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port: never 8787, which another may hold
        silence_logs=50,
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster, set_as_default=False) as client:
        yield client


# Uneven chunks, a chunk of one point, and chunks smaller than K = 3.
CHUNKINGS = [
    (5000, 3000, 1, 2, 9997),
    (20_000,),
    (1, 1, 19_998),
]


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=lambda c: f"{len(c)}chunks")
def test_threads_equal_in_memory(chunks):
    y = three_clusters(sum(chunks))
    want = emlib.em(y, START, tol=0, max_iter=N_ITER)
    with_dask = emlib.em(
        da.from_array(y, chunks=(chunks,)), START, tol=0, max_iter=N_ITER
    )
    assert_same_fit(with_dask, want, y_scale=5.0)


def test_stopping_rule_is_the_same():
    y = three_clusters(4000, seed=1)
    want = emlib.em(y, START)
    got = emlib.em(da.from_array(y, chunks=700), START)
    assert want.converged
    assert_same_fit(got, want, y_scale=5.0)


def test_far_from_the_origin_keeps_its_precision():
    # Centred statistics: data offset by 1e6 fits as well as data near 0.
    y = three_clusters(6000, seed=2, offset=1e6)
    start = emlib.GMM(START.weights, 1e6 + START.means, START.variances)
    want = emlib.em(y, start, tol=0, max_iter=N_ITER)
    got = emlib.em(da.from_array(y, chunks=1000), start, tol=0, max_iter=N_ITER)
    assert_same_fit(got, want, y_scale=1e6)


@pytest.mark.cluster
def test_local_cluster_equals_in_memory(client):
    y = three_clusters(12_000, seed=3)
    want = emlib.em(y, START, tol=0, max_iter=N_ITER)
    y_dask = client.persist(da.from_array(y, chunks=(4000, 1, 7999)))
    with client.as_current():
        got = emlib.em(y_dask, START, tol=0, max_iter=N_ITER)
    assert_same_fit(got, want, y_scale=5.0)


@pytest.mark.cluster
def test_a_worker_killed_mid_fit_does_not_lose_the_fit(cluster, client):
    y = three_clusters(20_000, seed=4)
    n_iter = 20  # long enough to be running when the worker dies (asserted)
    want = emlib.em(y, START, tol=0, max_iter=n_iter)
    y_dask = client.persist(da.from_array(y, chunks=2000))
    result = {}

    def fit():
        with client.as_current():
            result["fit"] = emlib.em(y_dask, START, tol=0, max_iter=n_iter)

    thread = threading.Thread(target=fit)
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive(), "the fit ended before a worker could be killed"
    nanny = next(iter(cluster.workers.values()))
    victim = nanny.worker_address
    # SIGKILL: the worker process dies at once, with the chunks it held. Its
    # nanny starts a new one, and the scheduler recomputes the lost chunks
    # from the graph.
    os.kill(nanny.pid, signal.SIGKILL)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert victim not in client.scheduler_info()["workers"]
    assert_same_fit(result["fit"], want, y_scale=5.0)


def test_a_nan_in_chunk_7_names_its_global_index():
    y = three_clusters(10_000, seed=5)
    y[7 * 1000 + 123] = np.nan
    with pytest.raises(ValueError, match=r"y\[7123\] \(in chunk 7\) is nan"):
        emlib.em(da.from_array(y, chunks=1000), START, max_iter=2)


def test_zero_density_names_its_global_index():
    # sigma = 1e-150: a point 1e5 from the mean is (y - mu)^2 / (2 sigma^2)
    # = inf away in log space, a density of exactly 0; the others are not.
    y = three_clusters(3000, seed=6)
    narrow = emlib.GMM([1.0], [0.0], [1e-300])
    y[2500] = 1e5
    with pytest.raises(ValueError, match="observation 2500 has zero density"):
        emlib.em(da.from_array(y, chunks=1000), narrow, max_iter=2)


@pytest.mark.parametrize(
    ("y", "init", "error", "match"),
    [
        (da.ones((10, 2), chunks=5), START, ValueError, r"shape \(N,\) or a column"),
        (da.from_array(np.array(["a", "b"])), START, TypeError, "real numbers"),
        (da.ones(10, chunks=5), 3, TypeError, "init must be an emlib.GMM start"),
        (da.ones(0, chunks=5), START, ValueError, "empty"),
        (da.full(10, 1e200, chunks=5), START, ValueError, "rescale y"),
        (da.full(10, -1e200, chunks=5), START, ValueError, "rescale y"),
        (da.ones(2, chunks=1), START, ValueError, "1 <= K <= N = 2"),
    ],
)
def test_bad_input_gets_a_clear_error(y, init, error, match):
    with pytest.raises(error, match=match):
        emlib.em(y, init)


def test_column_input_is_accepted():
    y = three_clusters(3000, seed=7)
    want = emlib.em(y, START, tol=0, max_iter=3)
    got = emlib.em(
        da.from_array(y[:, None], chunks=(1000, 1)), START, tol=0, max_iter=3
    )
    assert_array_equal(got.n_iter, want.n_iter)
    assert_allclose(got.log_likelihoods, want.log_likelihoods, rtol=RTOL)


def test_emlib_imports_and_fits_without_dask():
    # A fresh interpreter in which importing dask fails.
    code = (
        "import sys\n"
        "sys.modules['dask'] = None\n"
        "import emlib, numpy as np\n"
        "fit = emlib.em(np.r_[np.zeros(50), np.ones(50)] + np.arange(100) * 1e-3, 2)\n"
        "assert fit.converged\n"
        "assert 'dask.array' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sample_weight_is_refused_with_a_clear_error():
    y = da.from_array(three_clusters(1000), chunks=300)
    with pytest.raises(ValueError, match="sample_weight is not supported with a Dask"):
        emlib.em(y, START, sample_weight=np.ones(1000))
