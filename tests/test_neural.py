"""emlib.neural: the backward pass against central finite differences, Adam
against its definition, and bad inputs."""

import numpy as np
import pytest

from emlib import neural

SIZES = (3, 5, 4, 2)


def quadratic_loss(net, u, target):
    """0.5 sum (output - target)^2 and its gradient in the output."""
    out, hidden = neural.mlp_forward(net, u)
    return 0.5 * np.sum((out - target) ** 2), out - target, hidden


def central_difference(f, x, h=1e-6):
    """d f / d x entry by entry, for an array x that f reads (x is restored)."""
    slope = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        keep = x[idx]
        x[idx] = keep + h
        up = f()
        x[idx] = keep - h
        down = f()
        x[idx] = keep
        slope[idx] = (up - down) / (2 * h)
    return slope


def test_backward_matches_finite_differences_for_every_parameter_and_input():
    rng = np.random.default_rng(0)
    net = neural.init_mlp(SIZES, rng)
    net = neural.MLP(net.weights, tuple(rng.normal(size=b.shape) for b in net.biases))
    u, target = rng.normal(size=(7, SIZES[0])), rng.normal(size=(7, SIZES[-1]))
    _, grad_out, hidden = quadratic_loss(net, u, target)
    grads, grad_u = neural.mlp_backward(net, hidden, grad_out)
    arrays = neural.to_arrays(net)  # the net's own arrays: editing them edits net
    for array, grad in zip(arrays, neural.to_arrays(grads), strict=True):
        slope = central_difference(lambda: quadratic_loss(net, u, target)[0], array)
        # measured at most ~1e-10 (h^2 truncation and rounding / h)
        assert np.allclose(grad, slope, rtol=1e-7, atol=1e-8)
    slope_u = central_difference(lambda: quadratic_loss(net, u, target)[0], u)
    assert np.allclose(grad_u, slope_u, rtol=1e-7, atol=1e-8)


def test_forward_is_the_composition_written_out():
    rng = np.random.default_rng(1)
    net = neural.init_mlp((2, 3, 1), rng)
    u = rng.normal(size=(4, 2))
    (w1, w2), (b1, b2) = net.weights, net.biases
    want = np.tanh(u @ w1 + b1) @ w2 + b2
    assert np.allclose(neural.mlp_forward(net, u)[0], want, rtol=1e-15, atol=0)
    assert net.sizes == (2, 3, 1)


def test_to_and_from_arrays_round_trip_two_nets():
    rng = np.random.default_rng(2)
    a, b = neural.init_mlp((2, 3, 1), rng), neural.init_mlp((1, 4, 4, 2), rng)
    back = neural.from_arrays(neural.to_arrays(a, b), a, b)
    for net, again in zip((a, b), back, strict=True):
        for x, y in zip(neural.to_arrays(net), neural.to_arrays(again), strict=True):
            assert x is y


def test_adam_first_step_is_lr_times_the_sign():
    # At step 1, m_hat = g and v_hat = g^2: the move is lr g / (|g| + eps).
    params, grads = [np.array([1.0, -2.0, 0.5])], [np.array([3.0, -0.01, 0.0])]
    moved = neural.Adam(params, learning_rate=0.1, epsilon=1e-8).step(params, grads)
    want = params[0] - 0.1 * grads[0] / (np.abs(grads[0]) + 1e-8)
    assert np.allclose(moved[0], want, rtol=1e-15, atol=0)
    assert params[0].tolist() == [1.0, -2.0, 0.5]  # the caller's array is untouched


def test_adam_second_step_uses_bias_corrected_moments():
    params = [np.array([0.0])]
    adam = neural.Adam(
        params, learning_rate=0.1, beta1=0.9, beta2=0.999, epsilon=1e-300
    )
    params = adam.step(params, [np.array([1.0])])
    params = adam.step(params, [np.array([3.0])])
    m = (0.9 * 0.1 + 0.1 * 3.0) / (1 - 0.9**2)
    v = (0.999 * 0.001 + 0.001 * 9.0) / (1 - 0.999**2)
    assert np.isclose(params[0][0], -0.1 - 0.1 * m / np.sqrt(v), rtol=1e-14)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: neural.init_mlp((3,), np.random.default_rng()), ValueError, "sizes"),
        (lambda: neural.init_mlp((3, 2), 0), TypeError, "Generator"),
        (
            lambda: neural.mlp_forward(
                neural.init_mlp((3, 2), np.random.default_rng()), np.ones((4, 2))
            ),
            ValueError,
            r"shape \(N, 3\)",
        ),
        (lambda: neural.Adam([np.zeros(2)], beta1=1.0), ValueError, r"\[0, 1\)"),
        (lambda: neural.Adam([np.zeros(2)], learning_rate=0.0), ValueError, "> 0"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize(
    ("params", "grads", "name"),
    [
        ([np.zeros(2), np.zeros(3)], [np.zeros(2)], "grads"),  # a gradient missing
        ([np.zeros(2), np.zeros(3)], [np.zeros(2), np.zeros(1)], "grads"),  # broadcast
        ([np.zeros(2)], [np.zeros(2), np.zeros(3)], "params"),
    ],
)
def test_adam_refuses_mismatched_arrays_before_moving_its_moments(params, grads, name):
    adam = neural.Adam([np.zeros(2), np.zeros(3)])
    with pytest.raises(ValueError, match=rf"^{name} must be 2 arrays of shapes"):
        adam.step(params, grads)
    assert adam.n_steps == 0
    assert all(not m.any() for m in adam.m + adam.v)
