"""The book's shared helpers (embook) do what the notebooks rely on."""

import numpy as np
import pytest
import sympy as sp

import emlib
from embook.data import DATA_DIR, old_faithful
from embook.params import from_vector, gmm_args, to_vector
from embook.sym import canon, split_sums, to_numpy

j, k, N, K = sp.symbols("j k N K", integer=True, positive=True)
y, alpha = sp.IndexedBase("y"), sp.IndexedBase("alpha")


def test_to_numpy_reads_one_based_indices_from_zero_based_arrays():
    expr = sp.Sum(alpha[k] * y[j] ** k, (j, 1, N), (k, 1, K))
    fn = to_numpy(expr, y, alpha, N, K)
    y_num, alpha_num = np.array([0.5, 2.0, -1.0]), np.array([0.25, 0.75])
    want = sum(
        alpha_num[kk - 1] * y_num[jj - 1] ** kk
        for jj in range(1, 4)
        for kk in range(1, 3)
    )
    assert fn(y_num, alpha_num, 3, 2) == pytest.approx(want, rel=1e-15)


def test_canon_equates_regrouped_logs_and_sums():
    a, b = sp.symbols("a b", positive=True)
    lhs = sp.Sum(sp.log(a * y[j] ** 2 * b), (j, 1, N))
    rhs = N * sp.log(a) + N * sp.log(b) + 2 * sp.Sum(sp.log(y[j]), (j, 1, N))
    # canon leaves Sum(1, (j, 1, N)) as it is; doit turns it into N.
    assert sp.expand((canon(lhs) - canon(rhs)).doit()) == 0
    assert sp.expand((canon(lhs) - canon(rhs + 1)).doit()) != 0


def test_split_sums_splits_terms_and_pulls_out_constants():
    c = sp.Symbol("c", positive=True)
    split = split_sums(sp.Sum(c * y[j] + sp.log(c * y[j]), (j, 1, N)))
    want = (
        c * sp.Sum(y[j], (j, 1, N))
        + sp.log(c) * sp.Sum(1, (j, 1, N))
        + sp.Sum(sp.log(y[j]), (j, 1, N))
    )
    assert sp.expand(split - want) == 0


def test_vector_round_trip_and_order():
    theta = emlib.GMM([0.2, 0.3, 0.5], [-1.0, 0.0, 4.0], [1.0, 2.0, 0.5])
    v = to_vector(theta)
    np.testing.assert_array_equal(v, [0.2, 0.3, -1.0, 0.0, 4.0, 1.0, 2.0, 0.5])
    back = from_vector(v, 3)
    np.testing.assert_allclose(back.weights, theta.weights, rtol=0, atol=1e-16)
    np.testing.assert_array_equal(back.means, theta.means)
    np.testing.assert_array_equal(back.variances, theta.variances)
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        from_vector(v[:-1], 3)


def test_gmm_args_gives_standard_deviations():
    theta = emlib.GMM([1.0], [3.0], [4.0])
    weights, means, sds = gmm_args(theta)
    assert (weights[0], means[0], sds[0]) == (1.0, 3.0, 2.0)


def test_old_faithful_is_the_shipped_csv():
    data = old_faithful()
    assert data.shape == (272, 2)
    assert (DATA_DIR / "old_faithful.csv").is_file()
    assert data[0].tolist() == [3.6, 79.0]
