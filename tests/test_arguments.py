"""No public function modifies its arguments, or hands back a view of them.

Every call gets fresh writeable float64 arrays (the kind a function could
write into without a copy), and they are compared with copies afterwards.
"""

import numpy as np
import problems
import pytest
from numpy.testing import assert_array_equal

import emlib


def fresh():
    """Writeable arrays: y, gamma, q, p, and a GMM's arrays, N = 40, K = 3."""
    rng = np.random.default_rng(0)
    y = problems.mixture_sample(rng, 40, [0.3, 0.3, 0.4], [-3.0, 0.0, 4.0], [1.0] * 3)
    return {
        "y": y,
        "column": y[:, None].copy(),
        "gamma": problems.random_row_stochastic(rng, 40, 3, zero_fraction=0.0),
        "q": problems.random_row_stochastic(rng, 40, 3),
        "p": problems.random_row_stochastic(rng, 40, 3, zero_fraction=0.0),
        "weights": np.array([0.2, 0.3, 0.5]),
        "means": np.array([-2.0, 0.5, 3.0]),
        "variances": np.array([1.0, 2.0, 0.5]),
    }


def gmm(a):
    return emlib.GMM(a["weights"], a["means"], a["variances"])


CALLS = {
    "GMM": gmm,
    "log_likelihood": lambda a: emlib.log_likelihood(a["y"], gmm(a)),
    "log_likelihood-column": lambda a: emlib.log_likelihood(a["column"], gmm(a)),
    "e_step": lambda a: emlib.e_step(a["y"], gmm(a)),
    "e_step-column": lambda a: emlib.e_step(a["column"], gmm(a)),
    "m_step": lambda a: emlib.m_step(a["y"], a["gamma"]),
    "m_step-column": lambda a: emlib.m_step(a["column"], a["gamma"]),
    "q_function": lambda a: emlib.q_function(a["y"], a["gamma"], gmm(a)),
    "q_function-column": lambda a: emlib.q_function(a["column"], a["gamma"], gmm(a)),
    "entropy": lambda a: emlib.entropy(a["q"]),
    "entropy-1d": lambda a: emlib.entropy(a["q"][0]),
    "kl_divergence": lambda a: emlib.kl_divergence(a["q"], a["p"]),
    "kl_divergence-1d": lambda a: emlib.kl_divergence(a["q"][0], a["p"][0]),
    "elbo": lambda a: emlib.elbo(a["y"], a["q"], gmm(a)),
    "elbo-column": lambda a: emlib.elbo(a["column"], a["q"], gmm(a)),
    "em-theta": lambda a: emlib.em(a["y"], gmm(a), tol=0, max_iter=3),
    "em-k": lambda a: emlib.em(a["y"], 3, tol=0, max_iter=3),
    "em-column": lambda a: emlib.em(a["column"], gmm(a), tol=0, max_iter=3),
    "em-blocked": lambda a: emlib.em(np.tile(a["y"], 300), gmm(a), tol=0, max_iter=2),
    "initial_theta": lambda a: emlib.initial_theta(a["y"], 3),
    "initial_theta-column": lambda a: emlib.initial_theta(a["column"], 3),
    "observed_information": lambda a: emlib.observed_information(a["y"], gmm(a)),
    "observed_information-column": lambda a: emlib.observed_information(
        a["column"], gmm(a)
    ),
}


def arrays_in(result):
    """Every ndarray a result holds (GMM, EMResult, ndarray, float)."""
    if isinstance(result, np.ndarray):
        return [result]
    if isinstance(result, emlib.GMM):
        return [result.weights, result.means, result.variances]
    if isinstance(result, emlib.EMResult):
        return [*arrays_in(result.theta), result.log_likelihoods]
    return []


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_arguments_are_not_modified(call):
    args = fresh()
    before = {name: a.copy() for name, a in args.items()}
    result = call(args)
    for name, array in args.items():
        assert_array_equal(array, before[name], err_msg=name)
        assert array.flags.writeable, name
        for held in arrays_in(result):
            assert not np.shares_memory(held, array), name


def test_em_does_not_modify_its_start():
    args = fresh()
    start = gmm(args)
    copies = [start.weights.copy(), start.means.copy(), start.variances.copy()]
    result = emlib.em(args["y"], start, tol=0, max_iter=3)
    assert result.theta is not start
    for held, copy in zip(
        [start.weights, start.means, start.variances], copies, strict=True
    ):
        assert_array_equal(held, copy)


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_read_only_arguments_are_accepted(call):
    """The functions never need to write: read-only inputs work as well."""
    args = fresh()
    for array in args.values():
        array.flags.writeable = False
    call(args)
