"""Every public function rejects every kind of bad input, saying what was wrong.

Each case is (call, exception type, regex the message must match). The
regexes require the message to name the argument and the rule broken (and,
where emlib states it, what is expected), not merely to raise.
"""

import math
import tracemalloc
import warnings

import numpy as np
import pytest

import emlib
from emlib._checks import as_observations

Y = np.array([-1.2, 0.3, 0.9, 2.5, 3.1])
THETA = emlib.GMM([0.4, 0.6], [0.0, 2.0], [1.0, 1.5])
GAMMA = np.array([[0.9, 0.1], [0.7, 0.3], [0.5, 0.5], [0.2, 0.8], [0.1, 0.9]])

NAN_OR_INF = r"contains NaN or infinite values"
REAL_NUMBERS = r"must hold real numbers \(int or float\)"
RAGGED = r"must be an array of real numbers"


def with_value(array, index, value):
    """A copy of array with one entry replaced."""
    out = np.array(array, dtype=float)
    out[index] = value
    return out


# Bad data y, in every function that takes it: (label, y, exception, regex).
BAD_Y = [
    ("nan", with_value(Y, 2, math.nan), ValueError, r"^y " + NAN_OR_INF),
    ("inf", with_value(Y, 0, math.inf), ValueError, r"^y " + NAN_OR_INF),
    ("-inf", with_value(Y, 4, -math.inf), ValueError, r"^y " + NAN_OR_INF),
    ("empty", [], ValueError, r"^y is empty; EM needs at least one observation"),
    ("empty-column", np.empty((0, 1)), ValueError, r"^y is empty"),
    ("scalar", 2.5, ValueError, r"^y must be 1-D data .* got shape \(\)"),
    (
        "two-columns",
        np.column_stack([Y, Y]),
        ValueError,
        r"^y must be 1-D data of shape \(N,\) or a column \(N, 1\), got shape \(5, 2\)",
    ),
    ("row", Y[None, :], ValueError, r"^y must be 1-D data .* got shape \(1, 5\)"),
    ("3-d", Y[:, None, None], ValueError, r"^y must be 1-D .* got shape \(5, 1, 1\)"),
    ("strings", ["a", "b", "c", "d", "e"], TypeError, r"^y " + REAL_NUMBERS),
    ("numeric-strings", ["1", "2", "3", "4", "5"], TypeError, r"^y " + REAL_NUMBERS),
    ("none", None, TypeError, r"^y " + REAL_NUMBERS + ", got dtype object"),
    ("objects", [1.0, None, 2.0, 3.0, 4.0], TypeError, r"^y " + REAL_NUMBERS),
    ("complex", Y + 1j, TypeError, r"^y " + REAL_NUMBERS + ", got dtype complex"),
    ("ragged", [[1.0, 2.0], [3.0]], TypeError, r"^y " + RAGGED),
    ("huge", Y * 1e151, ValueError, r"^y has magnitude .* rescale y"),
    # Only the most negative point is out of range: max |y| comes from min(y).
    ("huge-negative", with_value(Y, 0, -1e151), ValueError, r"^y has magnitude"),
    ("tiny", Y * 1e-160, ValueError, r"^y has magnitude .* rescale y"),
]

# The functions that take y, each as call(y).
Y_TAKERS = {
    "log_likelihood": lambda y: emlib.log_likelihood(y, THETA),
    "e_step": lambda y: emlib.e_step(y, THETA),
    "m_step": lambda y: emlib.m_step(y, GAMMA),
    "q_function": lambda y: emlib.q_function(y, GAMMA, THETA),
    "elbo": lambda y: emlib.elbo(y, GAMMA, THETA),
    "em-theta": lambda y: emlib.em(y, THETA),
    "em-k": lambda y: emlib.em(y, 2),
    "initial_theta": lambda y: emlib.initial_theta(y, 2),
    "observed_information": lambda y: emlib.observed_information(y, THETA),
}


@pytest.mark.parametrize(
    ("y", "error", "match"),
    [case[1:] for case in BAD_Y],
    ids=[case[0] for case in BAD_Y],
)
@pytest.mark.parametrize("call", Y_TAKERS.values(), ids=Y_TAKERS.keys())
def test_bad_y(call, y, error, match):
    with pytest.raises(error, match=match):
        call(y)


def test_validating_y_copies_it_once():
    """as_observations holds one float64 copy of y, not two (issue 18).

    Its peak is the copy (8N bytes) plus np.isfinite's boolean mask (N bytes),
    1.125 times y.nbytes; a second float temporary, such as np.abs(y), would
    make it 2.125. The bound 1.5 sits between the two.
    """
    y = np.random.default_rng(0).normal(size=1_000_000)
    tracemalloc.start()
    try:
        as_observations(y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert y.nbytes <= peak < 1.5 * y.nbytes


# theta that is not a GMM, in every function that takes one.
NOT_A_GMM = [
    ("tuple", (THETA.weights, THETA.means, THETA.variances)),
    ("dict", {"weights": [1.0], "means": [0.0], "variances": [1.0]}),
    ("none", None),
]
THETA_TAKERS = {
    "log_likelihood": lambda theta: emlib.log_likelihood(Y, theta),
    "e_step": lambda theta: emlib.e_step(Y, theta),
    "q_function": lambda theta: emlib.q_function(Y, GAMMA, theta),
    "elbo": lambda theta: emlib.elbo(Y, GAMMA, theta),
    "observed_information": lambda theta: emlib.observed_information(Y, theta),
}


@pytest.mark.parametrize(
    "theta", [c[1] for c in NOT_A_GMM], ids=[c[0] for c in NOT_A_GMM]
)
@pytest.mark.parametrize("call", THETA_TAKERS.values(), ids=THETA_TAKERS.keys())
def test_theta_not_a_gmm(call, theta):
    with pytest.raises(
        TypeError, match=r"^theta must be an emlib.GMM\(weights, means, variances\)"
    ):
        call(theta)


# Bad responsibilities gamma / distributions q: (label, matrix, error, regex),
# with {name} the argument's name. All for N = 5 observations, K = 2.
BAD_ROWS = [
    ("nan", with_value(GAMMA, (1, 0), math.nan), ValueError, r"^{name} " + NAN_OR_INF),
    ("inf", with_value(GAMMA, (1, 0), math.inf), ValueError, r"^{name} " + NAN_OR_INF),
    (
        "row-sum",
        with_value(GAMMA, (3, 1), 0.7),
        ValueError,
        r"^each row of {name} must sum to 1 .* off by 0.1\b",
    ),
    (
        "tiny-row-sum",
        with_value(GAMMA, (3, 1), 0.8 + 1e-6),
        ValueError,
        r"^each row of {name} must sum to 1",
    ),
    (
        "negative",
        with_value(with_value(GAMMA, (0, 0), 1.1), (0, 1), -0.1),
        ValueError,
        r"^{name} must hold probabilities in \[0, 1\]",
    ),
    (
        "all-ones",
        np.ones((5, 2)),
        ValueError,
        r"^each row of {name} must sum to 1",
    ),
    ("strings", GAMMA.astype(str), TypeError, r"^{name} " + REAL_NUMBERS),
    ("complex", GAMMA + 0j, TypeError, r"^{name} " + REAL_NUMBERS),
]

ROW_TAKERS = {
    "m_step-gamma": ("gamma", lambda g: emlib.m_step(Y, g)),
    "q_function-gamma": ("gamma", lambda g: emlib.q_function(Y, g, THETA)),
    "elbo-q": ("q", lambda q: emlib.elbo(Y, q, THETA)),
    "entropy-q": ("q", emlib.entropy),
    "kl_divergence-q": ("q", lambda q: emlib.kl_divergence(q, GAMMA)),
    "kl_divergence-p": ("p", lambda p: emlib.kl_divergence(GAMMA, p)),
}


@pytest.mark.parametrize(
    ("rows", "error", "match"),
    [case[1:] for case in BAD_ROWS],
    ids=[case[0] for case in BAD_ROWS],
)
@pytest.mark.parametrize(("name", "call"), ROW_TAKERS.values(), ids=ROW_TAKERS.keys())
def test_bad_rows(name, call, rows, error, match):
    with pytest.raises(error, match=match.format(name=name)):
        call(rows)


RAGGED_ROWS = [[1.0, 0.0]] * 4 + [[1.0]]


@pytest.mark.parametrize(
    ("name", "call"),
    [ROW_TAKERS[k] for k in ("m_step-gamma", "q_function-gamma", "elbo-q")],
    ids=["m_step-gamma", "q_function-gamma", "elbo-q"],
)
def test_ragged_rows(name, call):
    with pytest.raises(TypeError, match=r"^" + name + " " + RAGGED):
        call(RAGGED_ROWS)


@pytest.mark.parametrize(
    ("name", "call"),
    [ROW_TAKERS[k] for k in ("entropy-q", "kl_divergence-q", "kl_divergence-p")],
    ids=["entropy-q", "kl_divergence-q", "kl_divergence-p"],
)
def test_ragged_distributions(name, call):
    """entropy and kl_divergence, which also accept one distribution (K,).

    Either exception type will do, but the message must name the argument
    and say what is expected, as for every other argument.
    """
    with pytest.raises((TypeError, ValueError), match=r"^" + name + " " + RAGGED):
        call(RAGGED_ROWS)


# Shapes: each case a call and the regex its message must match.
WRONG_SHAPES = {
    "m_step-gamma-1d": (
        lambda: emlib.m_step(Y, GAMMA[:, 0] * 0 + 1),
        r"^gamma must have shape \(N, K\), got shape \(5,\)",
    ),
    "m_step-gamma-rows": (
        lambda: emlib.m_step(Y, GAMMA[:4]),
        r"^gamma must have one row per observation: 5 rows, got 4",
    ),
    "m_step-gamma-empty": (
        lambda: emlib.m_step(Y, np.empty((5, 0))),
        r"^gamma is empty",
    ),
    "m_step-gamma-3d": (
        lambda: emlib.m_step(Y, GAMMA[:, :, None]),
        r"^gamma must have shape \(N, K\), got shape \(5, 2, 1\)",
    ),
    "q_function-gamma-rows": (
        lambda: emlib.q_function(Y, GAMMA[:3], THETA),
        r"^gamma must have shape \(5, 2\), got shape \(3, 2\)",
    ),
    "q_function-gamma-columns": (
        lambda: emlib.q_function(Y, np.full((5, 4), 0.25), THETA),
        r"^gamma must have shape \(5, 2\), got shape \(5, 4\)",
    ),
    "elbo-q-rows": (
        lambda: emlib.elbo(Y, GAMMA[1:], THETA),
        r"^q must have shape \(5, 2\), got shape \(4, 2\)",
    ),
    "elbo-q-columns": (
        lambda: emlib.elbo(Y, np.ones((5, 1)), THETA),
        r"^q must have shape \(5, 2\), got shape \(5, 1\)",
    ),
    "elbo-q-1d": (
        lambda: emlib.elbo(Y, [0.5, 0.5], THETA),
        r"^q must have shape \(5, 2\), got shape \(2,\)",
    ),
    "entropy-3d": (
        lambda: emlib.entropy(GAMMA[None]),
        r"^q must have shape \(N, K\), got shape \(1, 5, 2\)",
    ),
    "entropy-empty": (lambda: emlib.entropy([]), r"^q is empty"),
    "entropy-scalar": (
        lambda: emlib.entropy(1.0),
        r"^q must have shape \(N, K\), got shape \(\)",
    ),
    "kl-shapes-differ": (
        lambda: emlib.kl_divergence(GAMMA, GAMMA[:3]),
        r"^q and p must have the same shape; got \(5, 2\) and \(3, 2\)",
    ),
    "kl-1d-vs-2d": (
        lambda: emlib.kl_divergence([0.5, 0.5], GAMMA),
        r"^q and p must have the same shape; got \(1, 2\) and \(5, 2\)",
    ),
    "kl-p-empty": (lambda: emlib.kl_divergence([1.0], []), r"^p is empty"),
}


@pytest.mark.parametrize(
    ("call", "match"), WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys()
)
def test_wrong_shapes(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# GMM(weights, means, variances): (label, kwargs, error, regex).
GOOD = {"weights": [0.4, 0.6], "means": [0.0, 2.0], "variances": [1.0, 1.5]}


def params(**changes):
    return {**GOOD, **changes}


BAD_GMM = [
    (
        "nan-weight",
        params(weights=[math.nan, 0.6]),
        ValueError,
        r"^weights " + NAN_OR_INF,
    ),
    ("nan-mean", params(means=[0.0, math.nan]), ValueError, r"^means " + NAN_OR_INF),
    ("inf-mean", params(means=[math.inf, 0.0]), ValueError, r"^means " + NAN_OR_INF),
    (
        "inf-variance",
        params(variances=[1.0, math.inf]),
        ValueError,
        r"^variances " + NAN_OR_INF,
    ),
    (
        "empty",
        {"weights": [], "means": [], "variances": []},
        ValueError,
        r"^a mixture needs K >= 1 components; got K = 0",
    ),
    (
        "2-d-means",
        params(means=[[0.0, 2.0]]),
        ValueError,
        r"^means must be 1-D \(one entry per component\), got shape \(1, 2\)",
    ),
    (
        "scalar-variances",
        params(variances=1.0),
        ValueError,
        r"^variances must be 1-D .* got shape \(\)",
    ),
    (
        "string-weights",
        params(weights=["a", "b"]),
        TypeError,
        r"^weights " + REAL_NUMBERS,
    ),
    ("none-means", params(means=None), TypeError, r"^means " + REAL_NUMBERS),
    (
        "complex-variances",
        params(variances=[1.0 + 0j, 1.5]),
        TypeError,
        r"^variances " + REAL_NUMBERS,
    ),
    ("ragged-means", params(means=[[0.0], [1.0, 2.0]]), TypeError, r"^means " + RAGGED),
    (
        "weights-sum-below-1",
        params(weights=[0.4, 0.5]),
        ValueError,
        r"^weights must be >= 0 and sum to 1 .*got sum 0.9\b",
    ),
    (
        "weights-sum-above-1",
        params(weights=[0.4, 0.6 + 1e-6]),
        ValueError,
        r"^weights must be >= 0 and sum to 1",
    ),
    (
        "negative-weight",
        params(weights=[-0.1, 1.1]),
        ValueError,
        r"^weights must be >= 0 and sum to 1 .*min -0.1\b",
    ),
    (
        "zero-variance",
        params(variances=[1.0, 0.0]),
        ValueError,
        r"^variances must be > 0; component 1 has variance 0\b",
    ),
    (
        "negative-variance",
        params(variances=[-2.0, 1.0]),
        ValueError,
        r"^variances must be > 0; component 0 has variance -2\b",
    ),
    (
        "lengths-differ",
        params(means=[0.0, 1.0, 2.0]),
        ValueError,
        r"^weights, means and variances must have one entry per component; "
        r"got lengths 2, 3, 2",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [case[1:] for case in BAD_GMM],
    ids=[case[0] for case in BAD_GMM],
)
def test_bad_gmm(kwargs, error, match):
    with pytest.raises(error, match=match):
        emlib.GMM(**kwargs)
    # Positionally too.
    with pytest.raises(error, match=match):
        emlib.GMM(kwargs["weights"], kwargs["means"], kwargs["variances"])


def test_gmm_weights_tolerance_is_about_1e_9():
    """Rounded weights pass (within 1e-9 of the simplex), 1e-8 off does not."""
    emlib.GMM([1 / 3] * 3, [0.0, 1.0, 2.0], [1.0] * 3)
    emlib.GMM([0.4, 0.6 + 1e-12], [0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"^weights must be >= 0 and sum to 1"):
        emlib.GMM([0.4, 0.6 + 1e-8], [0.0, 1.0], [1.0, 1.0])


# Number of components K, in em(y, K), initial_theta(y, K), and K of a GMM
# start or of gamma: 1 <= K <= N.
K_OUT_OF_RANGE = r"^the number of components K must satisfy 1 <= K <= N = 5; got {k}"
K_TAKERS = {
    "em": lambda k: emlib.em(Y, k),
    "initial_theta": lambda k: emlib.initial_theta(Y, k),
}


@pytest.mark.parametrize("k", [0, -1, 6, 100, np.int64(0), np.int32(6)])
@pytest.mark.parametrize("call", K_TAKERS.values(), ids=K_TAKERS.keys())
def test_k_out_of_range(call, k):
    with pytest.raises(ValueError, match=K_OUT_OF_RANGE.format(k=k)):
        call(k)


def test_em_start_with_more_components_than_points():
    start = emlib.GMM([0.25] * 4, [0.0, 1.0, 2.0, 3.0], [1.0] * 4)
    with pytest.raises(ValueError, match=r"1 <= K <= N = 3; got 4"):
        emlib.em(Y[:3], start)


def test_m_step_gamma_with_more_components_than_points():
    with pytest.raises(
        ValueError, match=r"^K = 3 components need at least K observations; got N = 2"
    ):
        emlib.m_step([0.0, 1.0], [[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]])


@pytest.mark.parametrize(
    "k", [2.0, "2", None, True, [2]], ids=["float", "str", "none", "bool", "list"]
)
def test_initial_theta_k_not_an_int(k):
    with pytest.raises(
        TypeError, match=r"^the number of components must be an int, got \w+"
    ):
        emlib.initial_theta(Y, k)


@pytest.mark.parametrize(
    "init",
    [2.0, "2", None, True, (THETA.weights, THETA.means, THETA.variances)],
    ids=["float", "str", "none", "bool", "tuple"],
)
def test_em_init_neither_gmm_nor_int(init):
    with pytest.raises(
        TypeError,
        match=r"^init must be an emlib.GMM start or a number of components K \(int\), "
        r"got \w+",
    ):
        emlib.em(Y, init)


@pytest.mark.parametrize(
    ("max_iter", "error", "match"),
    [
        (0, ValueError, r"^max_iter must be >= 1, got 0"),
        (-3, ValueError, r"^max_iter must be >= 1, got -3"),
        (np.int64(0), ValueError, r"^max_iter must be >= 1, got 0"),
        (2.0, TypeError, r"^max_iter must be an int, got float"),
        (True, TypeError, r"^max_iter must be an int, got bool"),
        ("10", TypeError, r"^max_iter must be an int, got str"),
        (None, TypeError, r"^max_iter must be an int, got NoneType"),
    ],
    ids=["zero", "negative", "np-zero", "float", "bool", "str", "none"],
)
def test_em_bad_max_iter(max_iter, error, match):
    with pytest.raises(error, match=match):
        emlib.em(Y, THETA, max_iter=max_iter)


@pytest.mark.parametrize(
    ("tol", "error", "match"),
    [
        (-1e-3, ValueError, r"^tol must be finite and >= 0, got -0.001"),
        (-1, ValueError, r"^tol must be finite and >= 0, got -1"),
        (math.nan, ValueError, r"^tol must be finite and >= 0, got nan"),
        (math.inf, ValueError, r"^tol must be finite and >= 0, got inf"),
        (np.float64(-1.0), ValueError, r"^tol must be finite and >= 0"),
        ("0.1", TypeError, r"^tol must be a real number, got str"),
        (None, TypeError, r"^tol must be a real number, got NoneType"),
        (True, TypeError, r"^tol must be a real number, got bool"),
        (1e-3 + 0j, TypeError, r"^tol must be a real number, got complex"),
        (np.complex128(1e-3), TypeError, r"^tol must be a real number, got complex"),
        (10**400, ValueError, r"^tol must be finite and >= 0"),
    ],
    ids=[
        "negative",
        "negative-int",
        "nan",
        "inf",
        "np-negative",
        "str",
        "none",
        "bool",
        "complex",
        "np-complex",
        "huge-int",
    ],
)
def test_em_bad_tol(tol, error, match):
    with pytest.raises(error, match=match):
        emlib.em(Y, THETA, tol=tol)


def test_em_tol_and_max_iter_are_keyword_only():
    with pytest.raises(TypeError, match=r"positional argument"):
        emlib.em(Y, THETA, 1e-3, 10)


def test_good_numeric_arguments_are_accepted():
    """The valid edges of the same rules: nothing above rejects them."""
    emlib.initial_theta(Y, 5)
    emlib.initial_theta(Y, np.int64(1))
    with warnings.catch_warnings():  # accepted, whether or not they converge
        warnings.simplefilter("ignore", emlib.ConvergenceWarning)
        emlib.em(Y, np.int32(2), tol=np.float64(1e-3), max_iter=np.int64(2))
        emlib.em(Y, THETA, tol=1, max_iter=1)
    emlib.em(Y, THETA, tol=0, max_iter=1)
    emlib.m_step(Y, np.ones((5, 1)))
    emlib.entropy([[1.0, 0.0]])
    emlib.kl_divergence([1.0, 0.0], [0.5, 0.5])


# The learned models and online EM (review of the session's new modules).


def _small_vae():
    return emlib.vae.init_vae(3, 2, (4,), np.random.default_rng(0))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        # A (3, 4) Z was reshaped to six latent points; a (4,) one to two.
        (
            lambda: emlib.vae.decode(_small_vae(), np.ones((3, 4))),
            ValueError,
            r"^Z must have shape \(M, q\) = \(M, 2\)",
        ),
        (
            lambda: emlib.vae.decode(_small_vae(), np.ones(4)),
            ValueError,
            r"^Z must have shape",
        ),
        (
            lambda: emlib.vae.decode("vae", np.ones((3, 2))),
            TypeError,
            r"^vae must be an emlib.vae.VAE",
        ),
        # N = 0 gave an ELBO of NaN with RuntimeWarnings.
        (
            lambda: emlib.vae.elbo_and_gradient(
                _small_vae(), np.ones((0, 3)), np.ones((0, 2))
            ),
            ValueError,
            r"^X must have shape \(N, 3\) with N >= 1",
        ),
        (
            lambda: emlib.vae.log_weights(
                _small_vae(), np.ones((2, 3)), np.ones((2, 0, 2))
            ),
            ValueError,
            r"^eps must have shape \(N, k, q\) = \(2, k, 2\) with k >= 1",
        ),
        # 1-D gave an AxisError, k = 0 a reduction error, 3-D a wrong shape.
        (
            lambda: emlib.vae.iwae_bound(np.zeros(4)),
            ValueError,
            r"^log_w must have shape \(N, k\) with k >= 1",
        ),
        (
            lambda: emlib.vae.iwae_bound(np.zeros((3, 0))),
            ValueError,
            r"^log_w must have shape",
        ),
        (
            lambda: emlib.vae.iwae_bound(np.zeros((2, 3, 4))),
            ValueError,
            r"^log_w must have shape",
        ),
        (
            lambda: emlib.vae.fit(np.ones((5, 3)), _small_vae(), 0, n_iter=1),
            TypeError,
            r"^rng must be a numpy Generator",
        ),
        # A cryptic matmul error before.
        (
            lambda: emlib.neural.mlp_backward(*_net_and_hidden(), np.ones((4, 3))),
            ValueError,
            r"^grad_output must have shape \(N, D_L\) = \(4, 1\)",
        ),
        (
            lambda: emlib.neural.mlp_backward(
                *_net_and_hidden(), np.full((4, 1), np.nan)
            ),
            ValueError,
            r"^grad_output " + NAN_OR_INF,
        ),
        # A single array was iterated as batches of one scalar each.
        (
            lambda: emlib.online_em(Y, THETA),
            TypeError,
            r"^batches must be an iterable of mini-batches, not one array",
        ),
        # The message named y, not which batch.
        (
            lambda: emlib.online_em([Y, np.array([])], THETA),
            ValueError,
            r"^batch 2 of batches: y is empty",
        ),
        (
            lambda: emlib.online_em([with_value(Y, 1, math.nan)], THETA),
            ValueError,
            r"^batch 1 of batches: y " + NAN_OR_INF,
        ),
    ],
)
def test_learned_models_and_online_em_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def _net_and_hidden():
    net = emlib.neural.init_mlp((2, 3, 1), np.random.default_rng(0))
    return net, emlib.neural.mlp_forward(net, np.ones((4, 2)))[1]


@pytest.mark.parametrize(
    ("denoiser", "match"),
    [
        # (N, 1) broadcast x to (N, N), then (N, N, N), ...: memory ran out.
        (lambda x, t: x[:, None], r"shape \(4,\); got shape \(4, 1\)"),
        # NaN went through to every sample.
        (lambda x, t: x * math.nan, r"got shape \(4,\), 4 values not finite"),
    ],
)
def test_sample_reverse_bad_denoiser_output(denoiser, match):
    schedule = emlib.diffusion.NoiseSchedule.linear(25)
    with pytest.raises(
        ValueError,
        match=r"^denoiser\(x_t, 25\) must return one finite x0-hat per x_t, .*" + match,
    ):
        emlib.diffusion.sample_reverse(
            denoiser, schedule, schedule.betas, 4, np.random.default_rng(0)
        )


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        # "object of type 'int' has no len()" and "Value after * must be an
        # iterable" before; "sizes[i]" did not say which width.
        (
            lambda: emlib.neural.init_mlp(5, np.random.default_rng(0)),
            TypeError,
            r"^sizes must be a sequence of layer widths",
        ),
        (
            lambda: emlib.neural.init_mlp((2, 3.0, 1), np.random.default_rng(0)),
            TypeError,
            r"^sizes\[1\] must be an int",
        ),
        (
            lambda: emlib.vae.init_vae(3, 2, 4, np.random.default_rng(0)),
            TypeError,
            r"^hidden must be a sequence of layer widths",
        ),
        (
            lambda: emlib.vae.init_vae(3, 2, (4, 0), np.random.default_rng(0)),
            ValueError,
            r"^hidden\[1\] must be >= 1",
        ),
        (
            lambda: emlib.diffusion.fit_noise_predictor(
                Y,
                emlib.diffusion.NoiseSchedule.linear(25),
                np.random.default_rng(0),
                4,
                n_iter=1,
            ),
            TypeError,
            r"^hidden must be a sequence of layer widths",
        ),
        # A broadcast_to error before.
        (
            lambda: emlib.diffusion.NoisePredictor(
                emlib.neural.init_mlp((2, 3, 1), np.random.default_rng(0)),
                emlib.diffusion.NoiseSchedule.linear(25),
            ).denoise(np.zeros(3), [1, 2]),
            ValueError,
            r"^t must be one step or one per x_t, shape \(3,\)",
        ),
    ],
)
def test_layer_widths_and_steps_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
