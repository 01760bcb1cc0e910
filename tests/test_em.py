"""em: equal to explicit e_step / m_step rounds, its stopping rule, its start.

em fuses the E- and M-steps and runs over the data in blocks of 65536 rows
(emlib._statistics._BLOCK), so it is checked against the plain functions with N
below, above and not a multiple of the block size. Those tests set the block
to 256 rows (the ``blocks`` fixture): the loop only steps by the number, so
every boundary is reached with a few hundred points instead of 131072, and
the fixture counts the blocks each E-pass merges, to show they were there.

Tolerance for em against explicit rounds: 1e-12 relative (means: 1e-12 of
the data's scale, as a mean near 0 has no relative accuracy). One iteration
agrees to a few ulps; the two differ only in the order of summation (blocks
and a pairwise merge of moments against one dot product), and after n
iterations those differences have gone through the EM map n times, which
contracts near a fixed point but can amplify them early on.
"""

import math

import numpy as np
import problems
import pytest
import reference
from numpy.testing import assert_allclose, assert_array_equal

import emlib

RTOL = 1e-12
BLOCK = 256  # rows per block under the blocks fixture (emlib's own: 65536)


@pytest.fixture
def blocks(monkeypatch):
    """em's E-pass in blocks of BLOCK rows; returns the list of blocks merged.

    ``chunk_statistics`` reads ``emlib._statistics._BLOCK`` and calls
    ``merge_statistics`` through its module when it runs, so both can be
    replaced here: the block size, and the merge by one that records each
    block's statistics before merging them into the running total. Every
    E-pass over N points then merges ceil(N / BLOCK) blocks.
    """
    merged = []
    merge = emlib._statistics.merge_statistics

    def recording_merge(total, block):
        merged.append(block)
        return merge(total, block)

    monkeypatch.setattr(emlib._statistics, "_BLOCK", BLOCK)
    monkeypatch.setattr(emlib._statistics, "merge_statistics", recording_merge)
    return merged


def assert_blocked(merged, result, n):
    """Each of the run's E-passes merged ceil(n / BLOCK) blocks."""
    assert len(merged) == result.n_evaluations * math.ceil(n / BLOCK)


def explicit_rounds(y, theta, n):
    """theta^(0..n) and their log-likelihoods from n rounds of e_step and m_step."""
    thetas = [theta]
    for _ in range(n):
        thetas.append(emlib.m_step(y, emlib.e_step(y, thetas[-1])))
    return thetas, np.array([emlib.log_likelihood(y, t) for t in thetas])


def assert_same_theta(got, want, y_scale, rtol=RTOL):
    assert_allclose(got.weights, want.weights, rtol=rtol, atol=0)
    assert_allclose(got.means, want.means, rtol=0, atol=rtol * y_scale)
    assert_allclose(got.variances, want.variances, rtol=rtol, atol=0)


def three_clusters(seed, n, offset=0.0):
    rng = np.random.default_rng(seed)
    y = problems.mixture_sample(
        rng, n, [0.3, 0.5, 0.2], [-4.0, 0.0, 5.0], [1.0, 2.0, 0.5]
    )
    return offset + y


START = emlib.GMM([0.2, 0.3, 0.5], [-1.0, 0.5, 2.0], [1.0, 3.0, 2.0])


@pytest.mark.parametrize(
    "n",
    [10, 50, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK, 20_000],
    ids=lambda n: f"N{n}",
)
def test_em_equals_explicit_rounds(blocks, n):
    """N below, at and above the block size, two full blocks, and 79 blocks.

    The blocks are merged one by one into a running total, so two full blocks
    take every path that more would (a full block merged into a total that
    already has mass); BLOCK + 1 adds a partial last block, and 20000 = 78
    full blocks and a partial one.
    """
    y = three_clusters(n, n)
    n_iter = 8
    result = emlib.em(y, START, tol=0, max_iter=n_iter)
    assert_blocked(blocks, result, n)
    thetas, log_liks = explicit_rounds(y, START, n_iter)
    assert result.n_iter == n_iter
    assert_same_theta(result.theta, thetas[-1], np.abs(y).max())
    assert_allclose(result.log_likelihoods, log_liks, rtol=RTOL, atol=0)


def test_em_equals_explicit_rounds_many_iterations(blocks):
    """40 iterations, each merging 8 blocks (7 full, a partial last one).

    The differences of summation order go through the EM map 40 times
    (measured: at most 7e-15 relative; 1.1e-14 with N = 20000 in one block,
    which took four times the CPU).
    """
    y = three_clusters(1, 2000)
    result = emlib.em(y, START, tol=0, max_iter=40)
    assert_blocked(blocks, result, y.size)
    thetas, log_liks = explicit_rounds(y, START, 40)
    assert_same_theta(result.theta, thetas[-1], np.abs(y).max())
    assert_allclose(result.log_likelihoods, log_liks, rtol=RTOL, atol=0)


def far_from_the_origin():
    """Three clusters of spread ~1 around 1e6, N > block, and a start there."""
    y = three_clusters(2, 20_000, offset=1e6)
    return y, emlib.GMM(START.weights, START.means + 1e6, START.variances)


def test_em_far_from_the_origin_matches_the_reference_m_step(blocks):
    """Data at 1e6 with unit spread: the blocked moments must not cancel.

    Means to two ulps of 1e6 (2.3e-10 absolute): a digit lost relative to the
    spread would show; relative to 1e6 it would not. The reference sums the
    products with fsum, its own error ~1e-12 absolute.
    """
    y, start = far_from_the_origin()
    result = emlib.em(y, start, tol=0, max_iter=1)
    assert_blocked(blocks, result, y.size)
    gamma = emlib.e_step(y, start)
    weights, means, variances = reference.m_step(y, gamma)
    assert_allclose(result.theta.means, means, rtol=0, atol=2 * np.spacing(1e6))
    assert_allclose(result.theta.variances, variances, rtol=RTOL)
    assert_allclose(result.theta.weights, weights, rtol=RTOL)


def test_em_far_from_the_origin_equals_explicit_rounds(blocks):
    """Five rounds on data at 1e6: both paths use corrected two-pass moments.

    Means to 1e-9 absolute: ten ulps of 1e6, i.e. about 1e-9 of the unit
    spread, which is where a lost digit would show.
    """
    y, start = far_from_the_origin()
    result = emlib.em(y, start, tol=0, max_iter=5)
    assert_blocked(blocks, result, y.size)
    thetas, log_liks = explicit_rounds(y, start, 5)
    assert_allclose(result.theta.means, thetas[-1].means, rtol=0, atol=1e-9)
    assert_allclose(result.theta.variances, thetas[-1].variances, rtol=RTOL)
    assert_allclose(result.theta.weights, thetas[-1].weights, rtol=RTOL)
    assert_allclose(result.log_likelihoods, log_liks, rtol=RTOL, atol=0)


def test_em_equals_explicit_rounds_with_a_component_absent_from_a_block(blocks):
    """Sorted, well-separated clusters: some blocks give a component n_k = 0.

    exp(-(100)^2 / 2) underflows to 0, so the first block holds no
    responsibility at all for the component at +100, and the last two none
    for the one at -100; the blocked merge must skip empty blocks correctly.
    """
    rng = np.random.default_rng(3)
    # Each cluster fills a block: blocks of 256 left points, 15 left and 241
    # right, 18 right.
    n_left, n_right = BLOCK + 15, BLOCK + 3
    y = np.sort(
        np.concatenate([rng.normal(-100, 1, n_left), rng.normal(100, 2, n_right)])
    )
    start = emlib.GMM([0.5, 0.5], [-99.0, 99.0], [2.0, 2.0])
    assert np.all(emlib.e_step(y[:BLOCK], start)[:, 1] == 0)
    assert np.all(emlib.e_step(y[-BLOCK:], start)[:, 0] == 0)
    result = emlib.em(y, start, tol=0, max_iter=4)
    assert_blocked(blocks, result, y.size)
    thetas, log_liks = explicit_rounds(y, start, 4)
    assert_same_theta(result.theta, thetas[-1], np.abs(y).max())
    assert_allclose(result.log_likelihoods, log_liks, rtol=RTOL, atol=0)
    weights = np.array([n_left, n_right]) / y.size
    assert_allclose(result.theta.weights, weights, rtol=RTOL)


def test_em_one_iteration_matches_the_reference_m_step():
    """A single em iteration against the naive textbook M-step."""
    y = three_clusters(4, 200)
    result = emlib.em(y, START, tol=0, max_iter=1)
    gamma = reference.e_step(y, START.weights, START.means, START.variances)
    weights, means, variances = reference.m_step(y, gamma)
    assert_allclose(result.theta.weights, weights, rtol=RTOL)
    assert_allclose(result.theta.means, means, rtol=0, atol=RTOL * np.abs(y).max())
    assert_allclose(result.theta.variances, variances, rtol=RTOL)
    assert_allclose(
        result.log_likelihoods[0],
        reference.log_likelihood(y, START.weights, START.means, START.variances),
        rtol=RTOL,
    )


# ---------------------------------------------------------------- stopping rule


@pytest.mark.parametrize("max_iter", [1, 2, 7, 30])
def test_tol_zero_runs_exactly_max_iter(max_iter):
    y = three_clusters(5, 300)
    result = emlib.em(y, START, tol=0, max_iter=max_iter)
    assert result.n_iter == max_iter
    assert type(result.n_iter) is int
    assert result.converged is False
    assert result.log_likelihoods.shape == (max_iter + 1,)


def test_tol_stops_at_the_first_small_gain():
    """Stop after the first iteration gaining less than tol * N, not before."""
    y = three_clusters(6, 500)
    tol = 1e-6
    result = emlib.em(y, START, tol=tol, max_iter=10_000)
    gains = np.diff(result.log_likelihoods)
    assert result.converged is True
    assert result.n_iter == gains.size < 10_000
    assert np.all(gains[:-1] >= tol * y.size)
    assert gains[-1] < tol * y.size
    # The same iterates as a run told to do exactly that many iterations.
    fixed = emlib.em(y, START, tol=0, max_iter=result.n_iter)
    assert_array_equal(fixed.log_likelihoods, result.log_likelihoods)


def test_tol_not_reached_within_max_iter_is_not_converged():
    y = three_clusters(7, 500)
    with pytest.warns(emlib.ConvergenceWarning, match=r"max_iter = 3 iterations"):
        result = emlib.em(y, START, tol=1e-6, max_iter=3)
    assert result.n_iter == 3
    assert result.converged is False
    assert result.stop_reason == "max_iter"
    assert np.all(np.diff(result.log_likelihoods) >= 1e-6 * y.size)


def test_default_tol_converges_on_well_separated_data():
    y = three_clusters(8, 400)
    result = emlib.em(y, 3)
    assert result.converged is True
    assert 1 <= result.n_iter < 1000
    assert np.diff(result.log_likelihoods)[-1] < 1e-10 * y.size


def test_result_fields():
    y = three_clusters(9, 100)
    result = emlib.em(y, START, tol=0, max_iter=4)
    assert isinstance(result, emlib.EMResult)
    theta, log_liks, n_iter, converged, stop_reason, n_evaluations = result
    assert isinstance(theta, emlib.GMM)
    assert log_liks.dtype == np.float64
    assert_allclose(log_liks[-1], emlib.log_likelihood(y, theta), rtol=RTOL)
    assert_allclose(log_liks[0], emlib.log_likelihood(y, START), rtol=RTOL)
    assert (n_iter, converged, stop_reason) == (4, False, "max_iter")
    assert n_evaluations == 5  # one E-pass per iterate, the start's included


def test_column_input_gives_the_same_result():
    y = three_clusters(10, 100)
    a = emlib.em(y, START, tol=0, max_iter=3)
    b = emlib.em(y[:, None], START, tol=0, max_iter=3)
    assert_array_equal(a.log_likelihoods, b.log_likelihoods)
    assert_array_equal(a.theta.means, b.theta.means)


# ---------------------------------------------------------------- collapse


def test_em_collapse_raises_naming_the_component():
    y = np.array([-3.0, -1.0, 0.0, 1.0, 3.0, 50.0])
    start = emlib.GMM([0.5, 0.5], [0.0, 50.0], [1.0, 1.0])
    with pytest.raises(
        ValueError,
        match=r"component 1 collapsed onto a single point.*"
        r"more data, fewer components, or another start",
    ):
        emlib.em(y, start)


def test_em_collapse_in_a_later_block_raises_naming_the_component(blocks):
    """N > block size, the lone outlier in block 59 of 79."""
    rng = np.random.default_rng(11)
    y = rng.normal(size=20_000)
    y[15_000] = 1e3
    start = emlib.GMM([0.5, 0.5], [0.0, 1e3], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"component 1 collapsed onto a single point"):
        emlib.em(y, start, max_iter=5)


def test_em_on_constant_data_with_a_start_collapses():
    with pytest.raises(ValueError, match=r"component 0 collapsed"):
        emlib.em([2.0, 2.0, 2.0], emlib.GMM([1.0], [0.0], [1.0]))


@pytest.mark.parametrize("n", [1000, 20_000])
@pytest.mark.parametrize("value", [1.75, 0.1])
@pytest.mark.parametrize("max_iter", [1, 3])
def test_em_on_identical_points_raises_collapse(n, value, max_iter):
    """Every y_j equal: the first M-step collapses both components onto it."""
    start = emlib.GMM([0.5, 0.5], [0.0, 0.0], [1.0, 1.5])
    with pytest.raises(ValueError, match=r"component \d collapsed onto a single point"):
        emlib.em(np.full(n, value), start, tol=0, max_iter=max_iter)


# ---------------------------------------------------------------- the start


def test_em_with_k_starts_from_initial_theta():
    y = three_clusters(12, 301)
    by_k = emlib.em(y, 3, tol=0, max_iter=5)
    by_theta = emlib.em(y, emlib.initial_theta(y, 3), tol=0, max_iter=5)
    assert_array_equal(by_k.log_likelihoods, by_theta.log_likelihoods)
    assert_array_equal(by_k.theta.means, by_theta.theta.means)
    assert_array_equal(by_k.theta.variances, by_theta.theta.variances)


def test_em_with_k_is_deterministic():
    y = three_clusters(13, 301)
    runs = [emlib.em(y.copy(), 3, tol=0, max_iter=5) for _ in range(3)]
    for run in runs[1:]:
        assert_array_equal(run.log_likelihoods, runs[0].log_likelihoods)
        assert_array_equal(run.theta.means, runs[0].theta.means)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [5, 8, 101])
def test_initial_theta_is_as_documented(n, k):
    """Weights 1/K, means at the (k + 1/2)/K quantiles, variances var(y).

    Quantiles linearly interpolated between order statistics (numpy's
    default, Hyndman and Fan's type 7); the data's variance is the
    population variance (divide by N), as for the M-step's sigma^2.
    """
    rng = np.random.default_rng(n * 10 + k)
    y = rng.normal(2.0, 3.0, size=n)
    theta = emlib.initial_theta(y, k)
    weights, means, variances = reference.initial_theta(y, k)
    assert_array_equal(theta.weights, weights)
    assert_allclose(theta.means, means, rtol=0, atol=RTOL * np.abs(y).max())
    assert_allclose(theta.variances, variances, rtol=RTOL)


def test_initial_theta_means_split_the_data_evenly():
    """Definition-free check: about (k + 1/2)/K of the data lie below mean k."""
    rng = np.random.default_rng(14)
    y = rng.standard_cauchy(size=10_001)
    theta = emlib.initial_theta(y, 4)
    below = np.array([np.mean(y < m) for m in theta.means])
    assert np.all(np.diff(theta.means) > 0)
    assert_allclose(below, (np.arange(4) + 0.5) / 4, rtol=0, atol=1 / y.size)


def test_initial_theta_single_component_is_median_and_variance():
    y = [4.0, -1.0, 7.0, 2.0, 0.5]
    theta = emlib.initial_theta(y, 1)
    assert theta.weights.tolist() == [1.0]
    assert theta.means.tolist() == [2.0]
    assert_allclose(theta.variances, [np.var(y)], rtol=RTOL)


def test_initial_theta_of_constant_data_raises():
    with pytest.raises(ValueError, match=r"all observations are equal \(variance 0\)"):
        emlib.initial_theta([3.0, 3.0, 3.0], 2)
    with pytest.raises(ValueError, match=r"all observations are equal"):
        emlib.em([3.0, 3.0, 3.0], 2)


def test_em_single_component_converges_to_the_sample_moments():
    y = three_clusters(15, 200)
    result = emlib.em(y, 1, tol=0, max_iter=1)
    assert result.theta.weights.tolist() == [1.0]
    assert_allclose(result.theta.means, [math.fsum(y) / y.size], rtol=RTOL)
    assert_allclose(result.theta.variances, [np.var(y)], rtol=RTOL)


def test_em_collapse_on_old_faithful_raises_the_stepwise_error():
    """Notebook 41's collapse: em raises what its one-step runs raise.

    A small third component at 5.05 minutes with sd 0.1 collapses onto the
    six eruptions of 4.8 minutes. em's iterations are one-step runs of em,
    bit for bit, so the error comes at the same step, word for word.
    """
    from embook.data import old_faithful

    y = old_faithful()[:, 0]
    start = emlib.GMM([0.3, 0.65, 0.05], [2.0, 4.3, 5.05], [0.05, 0.2, 0.01])
    theta, message = start, None
    for _ in range(100):
        try:
            theta = emlib.em(y, theta, tol=0, max_iter=1).theta
        except ValueError as error:
            message = str(error)
            break
    assert message is not None
    with pytest.raises(ValueError, match="component 2 collapsed") as raised:
        emlib.em(y, start)
    assert str(raised.value) == message


def test_em_equals_explicit_rounds_on_the_overview_data():
    """Notebook 00's fit: em's fused loop is the textbook e_step / m_step iteration.

    Moved from notebook 00: 2000 points from a two-component mixture, em from
    its default start to convergence, then the same number of explicit
    rounds. The two evaluate the same formulas in a different order (em
    accumulates each component's moments about its current mean in one pass),
    so they agree to rounding, not bit for bit: measured 1.6e-15 relative,
    checked to 1e-13.
    """
    rng = np.random.default_rng(20261125)
    z = rng.random(2000) < 0.7
    y = np.where(z, rng.normal(3.0, 1.5, z.size), rng.normal(-2.0, 1.0, z.size))
    fit = emlib.em(y, 2)
    thetas, _ = explicit_rounds(y, emlib.initial_theta(y, 2), fit.n_iter)
    for name in ("weights", "means", "variances"):
        got, want = getattr(thetas[-1], name), getattr(fit.theta, name)
        assert_allclose(got, want, rtol=1e-13, atol=0)
