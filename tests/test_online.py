"""emlib.online_em: the recursion's inputs, and a first batch that replaces s_0.

Its recursion is checked step by step against an independent raw-sum
implementation in notebooks/90-em-at-scale.ipynb (section 6); here, that one
batch with gamma_1 = 1 is one EM step on that batch (the M-step of its
statistics, computed here by numpy from emlib.e_step), that Dask chunks are
accepted as batches, and that bad input gets a clear error.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import emlib

RNG = np.random.default_rng(0)
Y = np.concatenate([RNG.normal(-2.0, 1.0, 300), RNG.normal(2.0, 0.5, 200)])
START = emlib.GMM([0.5, 0.5], [-1.0, 1.0], [1.0, 1.0])


def test_one_batch_is_one_em_step_on_it():
    gamma = emlib.e_step(Y, START)
    nk = gamma.sum(axis=0)
    means = Y @ gamma / nk
    variances = ((Y[:, None] - means) ** 2 * gamma).sum(axis=0) / nk
    got = emlib.online_em([Y], START)
    assert_allclose(got.weights, nk / Y.size, rtol=1e-12)
    assert_allclose(got.means, means, rtol=1e-12)
    assert_allclose(got.variances, variances, rtol=1e-12)


def test_dask_chunks_are_batches():
    da = pytest.importorskip("dask.array")
    batches = np.split(Y, 5)
    want = emlib.online_em(batches, START, step_size=0.7)
    got = emlib.online_em(da.from_array(Y, chunks=100).blocks, START, step_size=0.7)
    assert_allclose(got.means, want.means, rtol=1e-12)
    assert_allclose(got.variances, want.variances, rtol=1e-12)


@pytest.mark.parametrize(
    ("batches", "init", "step_size", "error", "match"),
    [
        ([], START, 0.6, ValueError, "batches is empty"),
        ([Y], 2, 0.6, TypeError, "init must be an emlib.GMM"),
        ([Y], START, 1.5, ValueError, "step_size = 1.5 is above 1"),
        ([Y], START, 0.5, ValueError, "step_size"),
        ([Y], START, lambda t: 0.5, ValueError, "the first equal to 1"),
        ([Y, Y], START, lambda t: 1.0 if t == 1 else 2.0, ValueError, r"\(0, 1\]"),
        ([Y, [np.nan]], START, 0.6, ValueError, "NaN"),
    ],
)
def test_bad_input_gets_a_clear_error(batches, init, step_size, error, match):
    with pytest.raises(error, match=match):
        emlib.online_em(batches, init, step_size=step_size)
