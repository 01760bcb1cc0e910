"""The contract every model's EM keeps, checked over all of them at once.

Models: the 1-D mixture (``emlib``), ``multivariate``, ``hmm``, ``ppca``,
``three_coins`` and ``linear_vae`` (whose ``fit`` runs through the same
core). For each: arguments are never modified (arrays inside parameter
objects and lists of sequences included); bad arguments raise TypeError or
ValueError naming the argument; ``tol=0`` runs exactly ``max_iter``
iterations, stops on "max_iter" and warns nothing; without regularisation the
log-likelihood never falls beyond rounding (hypothesis, on random data and
starts); results have the documented shapes; parameter objects survive
pickling (multiprocessing and Dask send them between processes).
"""

import dataclasses
import pickle
import warnings
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, reject, settings
from hypothesis import strategies as st

import emlib
from emlib import hmm, linear_vae, multivariate, ppca, three_coins
from emlib._core import STOP_REASONS, rounding_allowance


class Model(NamedTuple):
    """How to call one model's functions on its data.

    ``data(rng)`` draws a data set; ``start(data)`` gives a parameter object
    (the model's ``initial_theta``); ``fit(data, init, **kw)`` is its ``em``
    (``linear_vae.fit``); ``evaluate(data, theta)`` its log-likelihood (the
    ELBO for the VAE) and ``posterior(data, theta)`` its posterior function.
    ``name`` is the data argument's name; ``n(data)`` the N of ``tol * N``.
    """

    data: Any
    start: Any
    fit: Any
    evaluate: Any
    posterior: Any
    name: str
    n: Any
    theta_class: type


def mixture_1d(rng, n=60):
    return np.concatenate([rng.normal(-2.0, 1.0, n // 2), rng.normal(2.0, 0.7, n // 2)])


def points(rng, n=60, d=4):
    """Correlated points in D dimensions with a full-rank covariance."""
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)


def mixture_2d(rng, n=60):
    centres = np.array([[-2.0, 0.0], [2.0, 1.0]])
    return centres[np.arange(n) % 2] + rng.normal(size=(n, 2))


def sequences(rng):
    """Two sequences of symbols in 0..2, as writeable arrays in a list.

    Drawn from two sticky regimes (switching with probability 0.1 a step)
    that emit 0 and 2, each with a 1 one time in five: data a 2-state HMM
    fits, on which EM from the random start converges in 20-100 iterations.
    On uniform random symbols the likelihood is nearly flat and EM crawls:
    300-1000 iterations, and for some seeds none converges within max_iter.
    """
    out = []
    for length in (25, 15):
        regime = np.cumsum(rng.random(length) < 0.1) % 2
        out.append(np.where(rng.random(length) < 0.8, 2 * regime, 1))
    return out


def tosses(rng, n=40):
    return rng.integers(0, 2, size=n).astype(float)


MODELS = {
    "gmm": Model(
        mixture_1d,
        lambda y: emlib.initial_theta(y, 2),
        emlib.em,
        emlib.log_likelihood,
        emlib.e_step,
        "y",
        len,
        emlib.GMM,
    ),
    "multivariate": Model(
        mixture_2d,
        lambda X: multivariate.initial_theta(X, 2),
        multivariate.em,
        multivariate.log_likelihood,
        multivariate.e_step,
        "X",
        len,
        multivariate.GMM,
    ),
    "hmm": Model(
        sequences,
        lambda obs: hmm.initial_theta(obs, 2, random_state=0),
        hmm.em,
        hmm.log_likelihood,
        hmm.posteriors,
        "obs",
        lambda obs: sum(len(s) for s in obs),
        hmm.HMM,
    ),
    "ppca": Model(
        points,
        lambda X: ppca.initial_theta(X, 2),
        ppca.em,
        ppca.log_likelihood,
        ppca.posterior,
        "X",
        len,
        ppca.PPCA,
    ),
    "three_coins": Model(
        tosses,
        three_coins.initial_theta,
        three_coins.em,
        three_coins.log_likelihood,
        three_coins.e_step,
        "y",
        len,
        three_coins.ThreeCoins,
    ),
    "linear_vae": Model(
        points,
        lambda X: linear_vae.initial_theta(X, 2),
        linear_vae.fit,
        linear_vae.elbo,
        linear_vae.encode,
        "X",
        len,
        linear_vae.LinearVAE,
    ),
}
# The models whose start can be a number (of components, states, latent
# dimensions); the three-coin model has exactly two components.
# (The HMM's start is random: the same seed as MODELS's.)
INT_INIT = {
    "gmm": {},
    "multivariate": {},
    "hmm": {"random_state": 0},
    "ppca": {},
    "linear_vae": {},
}

models = pytest.mark.parametrize("model", MODELS.values(), ids=MODELS.keys())


def history(result):
    """The objective's history: log-likelihoods, or the VAE's ELBOs."""
    return (
        result.elbos
        if isinstance(result, linear_vae.VAEFit)
        else (result.log_likelihoods)
    )


def theta_of(result):
    return result.vae if isinstance(result, linear_vae.VAEFit) else result.theta


def arrays_of(theta):
    """Every ndarray field of a parameter object (private caches included)."""
    if not dataclasses.is_dataclass(theta):
        return {}
    return {
        f.name: getattr(theta, f.name)
        for f in dataclasses.fields(theta)
        if isinstance(getattr(theta, f.name), np.ndarray)
    }


def assert_same_parameters(a, b):
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x == y, f.name


def data_arrays(data):
    return list(data) if isinstance(data, list) else [data]


# ---------------------------------------------------------------------------
# Arguments are never modified
# ---------------------------------------------------------------------------


@models
def test_arguments_are_never_modified(model):
    data = model.data(np.random.default_rng(0))
    start = model.start(data)
    data_before = [a.copy() for a in data_arrays(data)]
    held = data_arrays(data)  # the list's own elements, to check identity
    start_before = {k: v.copy() for k, v in arrays_of(start).items()}
    results = [
        model.fit(data, start, tol=0, max_iter=3),
        model.evaluate(data, start),
        model.posterior(data, start),
        model.start(data),
    ]
    for before, after in zip(data_before, data_arrays(data), strict=True):
        np.testing.assert_array_equal(after, before)
        assert after.flags.writeable
    if isinstance(data, list):
        assert all(a is b for a, b in zip(data_arrays(data), held, strict=True))
    for name, array in arrays_of(start).items():
        np.testing.assert_array_equal(array, start_before[name], err_msg=name)
    fitted = arrays_of(theta_of(results[0]))
    for array in data_arrays(data):
        for name, out in fitted.items():
            assert not np.shares_memory(out, array), name


@models
def test_parameter_arrays_are_read_only(model):
    start = model.start(model.data(np.random.default_rng(1)))
    for name, array in arrays_of(start).items():
        assert not array.flags.writeable, name


# ---------------------------------------------------------------------------
# Bad arguments name themselves
# ---------------------------------------------------------------------------


def bad_data(model):
    """(bad data, exception, regex) for the model's data argument."""
    name = model.name
    if name == "obs":
        return [
            ([0.5, 1.0], TypeError, r"^obs must hold integer symbols"),
            ([[0, 1], [0, 7]], ValueError, r"^obs\[1\]\[1\] = 7 is not a symbol"),
            ([], ValueError, r"^obs is empty"),
        ]
    cases = [
        (["a", "b"], TypeError, rf"^{name} must hold real numbers"),
        (None, TypeError, rf"^{name} must hold real numbers"),
    ]
    good = model.data(np.random.default_rng(2))
    with_nan = good.copy()
    if name == "X":
        # multivariate.em and log_likelihood take NaN as missing; never inf.
        with_nan[1] = np.inf
        cases.append((with_nan, ValueError, r"^X contains (NaN or )?infinite values"))
    else:
        with_nan[1] = np.nan
        cases.append(
            (with_nan, ValueError, rf"^{name} contains NaN or infinite values")
        )
    if model.theta_class is three_coins.ThreeCoins:
        cases.append(([0.0, 2.0], ValueError, r"^y must be coin tosses"))
    return cases


@models
def test_bad_arguments_raise_naming_the_argument(model):
    data = model.data(np.random.default_rng(2))
    start = model.start(data)
    for bad, error, match in bad_data(model):
        with pytest.raises(error, match=match):
            model.fit(bad, start)
    with pytest.raises(TypeError, match=r"^init must be an emlib\.[\w.]+(\(| start)"):
        model.fit(data, "start")
    with pytest.raises(TypeError, match=r"^init must be"):
        model.fit(data, 2.0)
    with pytest.raises(ValueError, match=r"^tol must be finite and >= 0, got -1"):
        model.fit(data, start, tol=-1)
    with pytest.raises(TypeError, match=r"^tol must be a real number, got str"):
        model.fit(data, start, tol="0")
    with pytest.raises(ValueError, match=r"^max_iter must be >= 1, got 0"):
        model.fit(data, start, max_iter=0)
    with pytest.raises(TypeError, match=r"^max_iter must be an int, got float"):
        model.fit(data, start, max_iter=3.0)
    with pytest.raises(TypeError, match=r"positional argument"):
        model.fit(data, start, 0.0, 3)


@pytest.mark.parametrize("key", INT_INIT.keys())
def test_a_number_as_init_is_the_documented_start(key):
    model = MODELS[key]
    data = model.data(np.random.default_rng(3))
    by_number = model.fit(data, 2, tol=0, max_iter=2, **INT_INIT[key])
    by_start = model.fit(data, model.start(data), tol=0, max_iter=2)
    np.testing.assert_array_equal(history(by_number), history(by_start))
    with pytest.raises(ValueError, match=r"must satisfy 1 <= "):
        model.fit(data, 0)


# ---------------------------------------------------------------------------
# The stopping rule and the result
# ---------------------------------------------------------------------------


@models
@pytest.mark.parametrize("max_iter", [1, 4])
def test_tol_zero_runs_exactly_max_iter_without_warning(model, max_iter):
    data = model.data(np.random.default_rng(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        result = model.fit(data, model.start(data), tol=0, max_iter=max_iter)
    assert result.n_iter == max_iter
    assert result.stop_reason == "max_iter"
    assert result.converged is False


@models
def test_result_shapes_and_kinds(model):
    data = model.data(np.random.default_rng(5))
    result = model.fit(data, model.start(data), tol=0, max_iter=3)
    assert type(result.n_iter) is int
    assert type(result.converged) is bool
    assert result.stop_reason in STOP_REASONS
    values = history(result)
    assert values.shape == (result.n_iter + 1,)
    assert values.dtype == np.float64
    assert result.log_likelihoods.shape == (result.n_iter + 1,)
    assert isinstance(theta_of(result), model.theta_class)
    # The history's last entry is the returned parameters' objective.
    np.testing.assert_allclose(
        values[-1], model.evaluate(data, theta_of(result)), rtol=1e-12
    )


@models
def test_default_tol_converges_or_says_why_not(model):
    data = model.data(np.random.default_rng(6))
    result = model.fit(data, model.start(data))
    assert result.stop_reason == "converged"
    assert result.converged is True
    values = history(result)
    assert values[-1] - values[-2] < 1e-10 * model.n(data) or result.n_iter == 0


@models
def test_parameter_objects_pickle(model):
    data = model.data(np.random.default_rng(7))
    start = model.start(data)
    result = model.fit(data, start, tol=0, max_iter=2)
    for theta in (start, theta_of(result)):
        again = pickle.loads(pickle.dumps(theta))
        assert_same_parameters(again, theta)
        for name, array in arrays_of(again).items():
            assert not array.flags.writeable, name
    again = pickle.loads(pickle.dumps(result))
    np.testing.assert_array_equal(history(again), history(result))


# ---------------------------------------------------------------------------
# Monotonicity without regularisation, on random problems
# ---------------------------------------------------------------------------

# Failures that are properties of a random problem, not of EM: a component
# or state that empties or collapses, a noise variance at 0.
DEGENERATE = "collapsed|no responsibility|singular|probability 0|fell to"


@models
@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(12, 80))
def test_the_objective_never_falls_beyond_rounding(model, seed, size):
    rng = np.random.default_rng(seed)
    data = model.data(rng) if model.name == "obs" else model.data(rng, size)
    try:
        result = model.fit(data, model.start(data), tol=0, max_iter=15)
    except ValueError as error:
        if not any(word in str(error) for word in DEGENERATE.split("|")):
            raise
        reject()
    values = history(result)
    falls = values[:-1] - values[1:]
    # The VAE's ELBO is evaluated from moments, with its own rounding (its
    # steps are accepted within 1e-13 |ELBO|); every log-likelihood is a sum.
    rounding = linear_vae._rounding if model.fit is linear_vae.fit else None
    allowance = [
        (rounding or rounding_allowance)(v, model.n(data)) for v in values[:-1]
    ]
    assert np.all(falls <= allowance)
    assert result.stop_reason == "max_iter"
