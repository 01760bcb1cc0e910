"""GMM: what it holds, and that nobody can change it afterwards."""

import dataclasses

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import emlib


def make_arrays():
    return np.array([0.25, 0.75]), np.array([-1.0, 3.0]), np.array([0.5, 2.0])


def test_attributes_are_float64_1d_arrays_of_the_inputs():
    theta = emlib.GMM([1, 0], [2, -3], [4, 5])  # ints become floats
    for name, want in [("weights", [1, 0]), ("means", [2, -3]), ("variances", [4, 5])]:
        got = getattr(theta, name)
        assert isinstance(got, np.ndarray)
        assert got.dtype == np.float64
        assert got.shape == (2,)
        assert_array_equal(got, want)
    assert theta.n_components == 2


def test_single_component():
    theta = emlib.GMM([1.0], [0.0], [1.0])
    assert theta.n_components == 1


@pytest.mark.parametrize("name", ["weights", "means", "variances"])
def test_arrays_are_read_only(name):
    theta = emlib.GMM(*make_arrays())
    array = getattr(theta, name)
    assert not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        array[0] = 0.5
    with pytest.raises(ValueError, match="read-only"):
        array += 1.0


@pytest.mark.parametrize("name", ["weights", "means", "variances", "n_components"])
def test_attributes_cannot_be_rebound_or_deleted(name):
    theta = emlib.GMM(*make_arrays())
    with pytest.raises(AttributeError):
        setattr(theta, name, np.array([0.5, 0.5]))
    with pytest.raises(AttributeError):
        delattr(theta, name)


def test_is_a_frozen_dataclass():
    theta = emlib.GMM(*make_arrays())
    with pytest.raises(dataclasses.FrozenInstanceError):
        theta.weights = np.array([0.5, 0.5])
    with pytest.raises(AttributeError):
        theta.extra = 1  # no new attributes either (frozen)


def test_holds_copies_of_the_callers_arrays():
    weights, means, variances = make_arrays()
    theta = emlib.GMM(weights, means, variances)
    for mine, held in [(weights, theta.weights), (means, theta.means)]:
        assert not np.shares_memory(mine, held)
    assert not np.shares_memory(variances, theta.variances)
    weights[:] = [0.5, 0.5]
    means[:] = 0.0
    variances[:] = 9.0
    assert_array_equal(theta.weights, [0.25, 0.75])
    assert_array_equal(theta.means, [-1.0, 3.0])
    assert_array_equal(theta.variances, [0.5, 2.0])


def test_leaves_the_callers_arrays_writeable_and_unchanged():
    arrays = make_arrays()
    copies = [a.copy() for a in arrays]
    emlib.GMM(*arrays)
    for array, copy in zip(arrays, copies, strict=True):
        assert array.flags.writeable
        assert_array_equal(array, copy)


def test_copies_even_float64_arrays_that_could_be_used_as_is():
    """A view of the caller's buffer would let later writes through."""
    buffer = np.array([0.5, 0.5, 0.0, 1.0, 1.0, 1.0])
    theta = emlib.GMM(buffer[:2], buffer[2:4], buffer[4:])
    buffer[:] = -7.0
    assert_array_equal(theta.weights, [0.5, 0.5])


def test_accepts_its_own_read_only_arrays():
    theta = emlib.GMM(*make_arrays())
    again = emlib.GMM(theta.weights, theta.means, theta.variances)
    assert_array_equal(again.means, theta.means)
    assert not np.shares_memory(again.means, theta.means)


def test_replace_validates_too():
    theta = emlib.GMM(*make_arrays())
    with pytest.raises(ValueError, match=r"^variances must be > 0"):
        dataclasses.replace(theta, variances=[1.0, -1.0])
    moved = dataclasses.replace(theta, means=[0.0, 1.0])
    assert not moved.means.flags.writeable
    assert_array_equal(theta.means, [-1.0, 3.0])


def test_zero_weight_is_allowed():
    theta = emlib.GMM([0.0, 1.0], [0.0, 1.0], [1.0, 1.0])
    assert_array_equal(theta.weights, [0.0, 1.0])


def test_repr_shows_the_parameters_without_numpy_reprs():
    """Notebooks print it, and nbval compares the text: no np.float64(...)."""
    text = repr(emlib.GMM([0.25, 0.75], [-1.0, 3.0], [0.5, 2.0]))
    assert text.startswith("GMM(weights=")
    assert "np." not in text
    assert "array(" not in text
    for value in ["0.25", "0.75", "-1", "3", "0.5", "2"]:
        assert value in text
