"""EM on Dask arrays equals the in-memory fit, on threads and on a cluster.

emlib.em (1-D mixture), multivariate.em (four covariance types) and ppca.em
reduce each chunk to its statistics with the same per-chunk pass as the
in-memory fit and merge them up a tree, so each agrees with its in-memory fit
up to the order of floating-point summation: 1e-12 relative for every
log-likelihood and parameter (means: of the data's scale), as in test_em.py;
the measured differences are below 1e-14.
"""

import multiprocessing
import multiprocessing.forkserver
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import emlib
from emlib import multivariate, ppca

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
flatten = pytest.importorskip("dask.core").flatten

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


def four_clusters(n, seed=0):
    """n points in R^3 from four well-separated correlated Gaussians."""
    rng = np.random.default_rng(seed)
    centres = 5.0 * np.array([[0, 0, 0], [1, 0, 1], [0, 1, -1], [1, 1, 0]])
    mixing = np.array([[1.0, 0.3, 0.0], [0.0, 0.8, 0.4], [0.2, 0.0, 0.6]])
    return centres[rng.integers(4, size=n)] + rng.normal(size=(n, 3)) @ mixing


def mv_start(X, covariance_type):
    """The start a Dask user would take: k-means++ on a sample of rows."""
    return multivariate.initial_theta(X[::10], 4, covariance_type, random_state=0)


def assert_same_mixture(got, want, x_scale):
    assert got.n_iter == want.n_iter
    assert_allclose(got.log_likelihoods, want.log_likelihoods, rtol=RTOL, atol=0)
    assert_allclose(got.theta.weights, want.theta.weights, rtol=RTOL, atol=0)
    assert_allclose(got.theta.means, want.theta.means, rtol=0, atol=RTOL * x_scale)
    covariance_scale = np.abs(want.theta.covariances).max()
    assert_allclose(
        got.theta.covariances,
        want.theta.covariances,
        rtol=0,
        atol=RTOL * covariance_scale,
    )


def assert_same_ppca(got, want):
    assert got.n_iter == want.n_iter
    assert_allclose(got.log_likelihoods, want.log_likelihoods, rtol=RTOL, atol=0)
    assert_allclose(got.theta.mean, want.theta.mean, rtol=0, atol=RTOL * 5.0)
    assert_allclose(got.theta.W, want.theta.W, rtol=0, atol=RTOL * 5.0)
    assert_allclose(got.theta.noise_variance, want.theta.noise_variance, rtol=RTOL)


@pytest.fixture
def chunk_by_chunk(monkeypatch):
    """Each chunk reduced on its own and the parts merged up the tree.

    On threads, emlib._dask reduces in-memory chunks of at most _SMALL_ROWS
    rows in all as one array, their concatenation: exactly the in-memory
    fit's arithmetic (the two agree to the last bit), so the merge of the
    chunks' statistics would go untested on threads. Reduced one by one, as
    the chunks a cluster holds are, they differ by rounding (measured below
    5e-15).
    """
    monkeypatch.setattr("emlib._dask._SMALL_ROWS", 0)


# Uneven chunks, a chunk of one point, and chunks smaller than K = 3.
CHUNKINGS = [
    (5000, 3000, 1, 2, 9997),
    (20_000,),
    (1, 1, 19_998),
]


@pytest.mark.usefixtures("chunk_by_chunk")
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


@pytest.mark.usefixtures("chunk_by_chunk")
def test_far_from_the_origin_keeps_its_precision():
    # Centred statistics: data offset by 1e6 fits as well as data near 0.
    y = three_clusters(6000, seed=2, offset=1e6)
    start = emlib.GMM(START.weights, 1e6 + START.means, START.variances)
    want = emlib.em(y, start, tol=0, max_iter=N_ITER)
    got = emlib.em(da.from_array(y, chunks=1000), start, tol=0, max_iter=N_ITER)
    assert_same_fit(got, want, y_scale=1e6)


def test_a_nan_in_chunk_7_names_its_global_index():
    y = three_clusters(10_000, seed=5)
    y[7 * 1000 + 123] = np.nan
    with pytest.raises(ValueError, match=r"y\[7123\] is nan"):
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
        (da.from_array(np.ones(2), chunks=1), START, ValueError, "1 <= K <= N = 2"),
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


# ---------------------------------------------------------------------------
# multivariate.em and ppca.em
# ---------------------------------------------------------------------------

# Uneven row chunks with a chunk of one row and chunks of fewer rows than
# K = 4 components.
MV_CHUNKS = ((1, 2, 1999, 1, 2997),)


@pytest.mark.usefixtures("chunk_by_chunk")
@pytest.mark.parametrize("covariance_type", multivariate.COVARIANCE_TYPES)
def test_multivariate_on_threads_equals_in_memory(covariance_type):
    X = four_clusters(sum(MV_CHUNKS[0]), seed=10)
    start = mv_start(X, covariance_type)
    want = multivariate.em(X, start, covariance_type=covariance_type, tol=0, max_iter=6)
    X_dask = da.from_array(X, chunks=(*MV_CHUNKS, 3))
    got = multivariate.em(
        X_dask, start, covariance_type=covariance_type, tol=0, max_iter=6
    )
    assert_same_mixture(got, want, x_scale=5.0)


def test_multivariate_stopping_rule_is_the_same():
    X = four_clusters(3000, seed=11)
    start = mv_start(X, "diag")
    want = multivariate.em(X, start, covariance_type="diag", tol=1e-6)
    got = multivariate.em(
        da.from_array(X, chunks=(700, 3)), start, covariance_type="diag", tol=1e-6
    )
    assert want.converged
    assert_same_mixture(got, want, x_scale=5.0)


def test_ppca_reads_an_unpersisted_array_once_and_equals_in_memory():
    X = four_clusters(5000, seed=12) + 1e6  # far from the origin: centred merges
    want = ppca.em(X, 2, tol=0, max_iter=8)
    reads = []

    def counted(block):
        reads.append(block.shape[0])
        return block

    X_lazy = da.from_array(X, chunks=(*MV_CHUNKS, 3)).map_blocks(counted, meta=X[:0])
    got = ppca.em(X_lazy, 2, tol=0, max_iter=8)  # no RecomputeWarning (error)
    assert sorted(reads) == sorted(MV_CHUNKS[0])  # each chunk read once, not 9 times
    assert got.n_iter == want.n_iter
    assert_allclose(got.log_likelihoods, want.log_likelihoods, rtol=RTOL, atol=0)
    assert_allclose(got.theta.mean, want.theta.mean, rtol=RTOL, atol=0)
    assert_allclose(got.theta.W, want.theta.W, rtol=0, atol=RTOL * 5.0)
    assert_allclose(got.theta.noise_variance, want.theta.noise_variance, rtol=RTOL)


def test_an_unpersisted_input_warns_and_a_persisted_one_does_not():
    X = four_clusters(400, seed=14)
    start = mv_start(X, "spherical")
    lazy = da.from_array(X, chunks=(100, 3)) * 1.0  # chunks made by tasks
    with pytest.warns(emlib.RecomputeWarning, match=r"X is not persisted: 4 of its"):
        multivariate.em(lazy, start, covariance_type="spherical", max_iter=2, tol=0)
    with pytest.warns(emlib.RecomputeWarning, match=r"y = y.persist\(\)"):
        emlib.em(lazy[:, 0], START, max_iter=2, tol=0)
    multivariate.em(
        lazy.persist(), start, covariance_type="spherical", max_iter=2, tol=0
    )


X_BAD = four_clusters(40, seed=15)
MV_START = mv_start(X_BAD, "full")


def with_nan():
    X = X_BAD.copy()
    X[23, 2] = np.nan
    return da.from_array(X, chunks=(10, 3))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: multivariate.em(
                da.from_array(X_BAD, chunks=10), MV_START, sample_weight=np.ones(40)
            ),
            ValueError,
            "sample_weight is not supported with a Dask array X",
        ),
        (
            lambda: multivariate.em(with_nan(), MV_START),
            ValueError,
            r"X\[23, 2\] is nan; .*missing values are not supported",
        ),
        (
            lambda: multivariate.em(da.from_array(X_BAD, chunks=10), 4),
            TypeError,
            "init must be an emlib.multivariate.GMM start",
        ),
        (
            lambda: multivariate.em(da.from_array(X_BAD, chunks=(10, 1)), MV_START),
            ValueError,
            r"chunked along its columns .* X.rechunk\(\{1: -1\}\)",
        ),
        (
            lambda: multivariate.em(da.from_array(X_BAD[:, 0], chunks=10), MV_START),
            ValueError,
            r"X must have shape \(N, D\)",
        ),
        (
            lambda: multivariate.em(
                da.from_array(X_BAD, chunks=10), MV_START, covariance_type="diag"
            ),
            ValueError,
            "init has covariance_type='full'",
        ),
        (
            lambda: ppca.em(with_nan(), 1),
            ValueError,
            r"X\[23, 2\] is nan",
        ),
    ],
    ids=["weights", "nan", "int-init", "column-chunks", "1-D", "type", "ppca-nan"],
)
def test_multivariate_and_ppca_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------------
# On a cluster of worker processes
# ---------------------------------------------------------------------------

# One 2-worker LocalCluster for the module's cluster tests, which come last:
# a module-scoped fixture lives until the module's last test, so the cluster
# lives only while they run. Its settings change how its processes start and
# what they do while they wait, not what they compute. Waiting: each server
# (the scheduler, two nannies, two workers) checked its event loop's health
# 50 times a second and each worker sampled its own stack 100 times a second
# for a profile nobody reads, 0.13 s of CPU per second of an idle cluster;
# now 0.02 s. Starting: each worker is forked from one process, started here
# once (it stays, idle, until this process ends), that has imported what a
# worker runs (distributed, and emlib._dask for the reductions; the persisted
# chunks of da.from_array are plain data, which need no dask.array), where a
# fresh interpreter per worker spent about 1 s of CPU importing them, the one
# a nanny starts after a kill too.
CLUSTER_CONFIG = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.worker.profile.enabled": False,
    "distributed.worker.multiprocessing-method": "forkserver",
}


@pytest.fixture(scope="module")
def distributed():
    """The distributed package, imported by the cluster tests only.

    Importing it takes 0.3 s of CPU; at the module's top, each xdist worker
    paid that to collect this module, the one that never runs it included.
    """
    return pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster(distributed):
    """A 2-worker LocalCluster of processes (each under a nanny)."""
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(["distributed", "emlib._dask"])
    multiprocessing.forkserver.ensure_running()
    with (
        dask.config.set(CLUSTER_CONFIG),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: never 8787, which another may hold
            silence_logs=50,
        ) as cluster,
    ):
        yield cluster


@pytest.fixture(scope="module")
def client(distributed, cluster):
    with distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.mark.cluster
def test_local_cluster_equals_in_memory(client):
    y = three_clusters(12_000, seed=3)
    want = emlib.em(y, START, tol=0, max_iter=N_ITER)
    y_dask = client.persist(da.from_array(y, chunks=(4000, 1, 7999)))
    with client.as_current():
        got = emlib.em(y_dask, START, tol=0, max_iter=N_ITER)
    assert_same_fit(got, want, y_scale=5.0)


@pytest.fixture(scope="module")
def kill_at_pass(distributed):
    """The class of a scheduler plugin, KillAtPass(at_pass, chunks), below.

    Defined here, not at the module's top, because its base class is
    distributed's (see the ``distributed`` fixture).
    """

    class KillAtPass(distributed.diagnostics.plugin.SchedulerPlugin):
        """Kill the worker to which the scheduler sends the fit's ``at_pass``-th pass.

        Each pass of a fit over the data (the check of the values, then one per
        EM iteration) is a reduction whose leaf tasks are named
        ``emlib-chunk-<token>``, a token per pass. When the first leaf of pass
        ``at_pass`` (1-based) is assigned to a worker, that worker's process is
        killed with SIGKILL, before the task reaches it: the fit is mid-way by
        construction, not by timing. ``chunks`` are the keys of the persisted
        data; ``lost`` counts those the victim held, which die with it.
        """

        name = "kill-at-pass"

        def __init__(self, at_pass, chunks):
            self.at_pass, self.chunks = at_pass, chunks
            self.passes, self.victim, self.lost = [], None, 0

        async def start(self, scheduler):
            self.scheduler = scheduler

        def transition(self, key, start, finish, *args, **kwargs):
            if finish != "processing" or not (
                isinstance(key, tuple) and key[0].startswith("emlib-chunk-")
            ):
                return
            if key[0] not in self.passes:
                self.passes.append(key[0])
            if self.victim is None and len(self.passes) == self.at_pass:
                worker = self.scheduler.tasks[key].processing_on
                self.victim = worker.address
                tasks = [self.scheduler.tasks[chunk] for chunk in self.chunks]
                self.lost = sum(worker in task.who_has for task in tasks)
                os.kill(worker.pid, signal.SIGKILL)

    return KillAtPass


@pytest.mark.cluster
def test_a_worker_killed_mid_fit_does_not_lose_the_fit(cluster, client, kill_at_pass):
    X = four_clusters(400, seed=4)
    start = mv_start(X, "full")
    want = multivariate.em(X, start, tol=0, max_iter=4)
    X_dask = client.persist(da.from_array(X, chunks=(100, 3)))
    chunks = list(flatten(X_dask.__dask_keys__()))
    client.register_plugin(kill_at_pass(at_pass=3, chunks=chunks))
    with client.as_current():
        got = multivariate.em(X_dask, start, tol=0, max_iter=4)
    killer = cluster.scheduler.plugins[kill_at_pass.name]
    client.unregister_scheduler_plugin(kill_at_pass.name)
    # Killed during the second iteration's pass (after the check of the
    # values and the first iteration), with chunks of X on it; passes ran
    # after it.
    assert killer.victim is not None
    assert killer.lost > 0
    assert len(killer.passes) > killer.at_pass
    assert killer.victim not in client.scheduler_info()["workers"]
    assert_same_mixture(got, want, x_scale=5.0)
    client.wait_for_workers(2, timeout=60)  # its nanny has started a new one


@pytest.mark.cluster
def test_multivariate_and_ppca_on_a_local_cluster_equal_in_memory(client):
    X = four_clusters(4000, seed=13)
    X_dask = client.persist(da.from_array(X, chunks=((1, 1999, 2000), 3)))
    for covariance_type in multivariate.COVARIANCE_TYPES:
        start = mv_start(X, covariance_type)
        want = multivariate.em(
            X, start, covariance_type=covariance_type, tol=0, max_iter=2
        )
        with client.as_current():
            got = multivariate.em(
                X_dask, start, covariance_type=covariance_type, tol=0, max_iter=2
            )
        assert_same_mixture(got, want, x_scale=5.0)
    with client.as_current():
        got = ppca.em(X_dask, 1, tol=0, max_iter=3)
    want = ppca.em(X, 1, tol=0, max_iter=3)
    assert_allclose(got.log_likelihoods, want.log_likelihoods, rtol=RTOL, atol=0)
    assert_allclose(got.theta.W, want.theta.W, rtol=0, atol=RTOL * 5.0)
