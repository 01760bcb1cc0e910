"""A small multilayer perceptron in numpy, with hand-derived gradients, and Adam.

The learned models of notebooks 86 (a denoiser) and 87 (a VAE) are built
from it. A network with layer sizes D_0, ..., D_L maps inputs u of shape
(N, D_0) to outputs of shape (N, D_L):

    h_0 = u,   a_l = h_{l-1} W_l + b_l,   h_l = tanh(a_l) for l < L,

and the output is a_L (the last layer is linear). Backpropagation is the
chain rule taken one layer at a time from the top: given g_L = dLoss/da_L,

    dLoss/dW_l = h_{l-1}^T g_l,   dLoss/db_l = sum over rows of g_l,
    dLoss/dh_{l-1} = g_l W_l^T,   g_{l-1} = dLoss/dh_{l-1} * (1 - h_{l-1}^2),

since tanh' = 1 - tanh^2. :func:`mlp_backward` implements exactly these
lines; ``tests/test_neural.py`` and the notebooks check them against
central finite differences.
"""

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import (
    as_real_array,
    check_generator,
    check_real,
    check_widths,
)
from emlib._mlp import backward, forward, from_parameter_arrays, parameter_arrays


class MLP(NamedTuple):
    """The parameters of a tanh multilayer perceptron with a linear output.

    Attributes
    ----------
    weights : tuple of ndarray
        W_l of shape (D_{l-1}, D_l), l = 1..L.
    biases : tuple of ndarray
        b_l of shape (D_l,), l = 1..L.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """(D_0, D_1, ..., D_L), the layer widths."""
        return (self.weights[0].shape[0], *(w.shape[1] for w in self.weights))


def init_mlp(sizes: Sequence[int], rng: np.random.Generator) -> MLP:
    """Random weights W_l ~ N(0, 1 / D_{l-1}) entrywise, zero biases.

    The 1 / fan-in variance (LeCun et al. 1998, "Efficient BackProp") keeps
    each pre-activation of order 1 when the inputs are.

    Parameters
    ----------
    sizes : sequence of int
        (D_0, ..., D_L), at least two entries, each >= 1.
    rng : numpy.random.Generator

    Returns
    -------
    MLP
    """
    sizes = check_widths(sizes, "sizes")
    if len(sizes) < 2:
        raise ValueError(
            f"sizes must list the input width and at least one layer, got {sizes}."
        )
    check_generator(rng)
    weights = tuple(
        rng.standard_normal((d_in, d_out)) / np.sqrt(d_in)
        for d_in, d_out in itertools.pairwise(sizes)
    )
    return MLP(weights, tuple(np.zeros(d) for d in sizes[1:]))


def _check_inputs(net, u):
    u = as_real_array(u, "u")
    if u.ndim != 2 or u.shape[1] != net.sizes[0]:
        raise ValueError(
            f"u must have shape (N, {net.sizes[0]}) (one row per input), got "
            f"shape {u.shape}."
        )
    return u


def mlp_forward(net: MLP, u: ArrayLike) -> tuple[np.ndarray, list[np.ndarray]]:
    """The output a_L and the layer values h_0 = u, h_1, ..., h_{L-1}.

    Parameters
    ----------
    net : MLP
    u : array_like, shape (N, D_0)

    Returns
    -------
    output : ndarray, shape (N, D_L)
    hidden : list of ndarray
        h_0, ..., h_{L-1}, what :func:`mlp_backward` needs.
    """
    return forward(net, _check_inputs(net, u))


def mlp_backward(
    net: MLP, hidden: list[np.ndarray], grad_output: np.ndarray
) -> tuple[MLP, np.ndarray]:
    """Gradients of a scalar loss, given its gradient with respect to the output.

    Parameters
    ----------
    net : MLP
    hidden : list of ndarray
        From :func:`mlp_forward` on the same inputs.
    grad_output : ndarray, shape (N, D_L)
        g_L = dLoss / da_L.

    Returns
    -------
    grads : MLP
        dLoss/dW_l and dLoss/db_l, shaped like ``net``.
    grad_input : ndarray, shape (N, D_0)
        dLoss/du.
    """
    g = as_real_array(grad_output, "grad_output")
    want = (hidden[0].shape[0], net.sizes[-1])
    if g.shape != want:
        raise ValueError(
            f"grad_output must have shape (N, D_L) = {want}, one row per input "
            f"of the forward pass that made hidden; got {g.shape}."
        )
    return backward(net, hidden, g)


def to_arrays(*nets: MLP) -> list[np.ndarray]:
    """The parameters of one or more networks as one flat list (what Adam steps).

    Parameters
    ----------
    *nets : MLP

    Returns
    -------
    list of ndarray
        For each net in turn, W_1, b_1, ..., W_L, b_L (the arrays themselves,
        not copies).
    """
    return [a for net in nets for a in parameter_arrays(net)]


def from_arrays(arrays: Sequence[np.ndarray], *like: MLP) -> list[MLP]:
    """Inverse of :func:`to_arrays`: networks shaped like ``like`` from a flat list.

    Parameters
    ----------
    arrays : sequence of ndarray
    *like : MLP
        The networks whose layer counts split ``arrays``.

    Returns
    -------
    list of MLP
    """
    nets, start = [], 0
    for net in like:
        part = arrays[start : start + 2 * len(net.weights)]
        nets.append(from_parameter_arrays(part, net))
        start += len(part)
    return nets


def _check_decay(value, name):
    value = check_real(value, name, 0.0, high=1.0)
    if value == 1.0:
        raise ValueError(f"{name} must lie in [0, 1) (a decay rate), got 1.")
    return value


class Adam:
    """Kingma and Ba's Adam (ICLR 2015, Algorithm 1) on a list of arrays.

    For each parameter array with gradient g, at step s = 1, 2, ...:
    m <- beta1 m + (1 - beta1) g, v <- beta2 v + (1 - beta2) g^2, and the
    parameter moves by -lr m_hat / (sqrt(v_hat) + epsilon) with the
    bias-corrected m_hat = m / (1 - beta1^s), v_hat = v / (1 - beta2^s).

    Parameters
    ----------
    params : list of ndarray
        The initial parameters (:func:`to_arrays`); only their shapes are read.
    learning_rate : float
        lr > 0.
    beta1, beta2 : float
        Decay rates in [0, 1).
    epsilon : float
        > 0, keeps the step finite where v_hat is 0.
    """

    def __init__(
        self,
        params: Sequence[np.ndarray],
        learning_rate: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
    ) -> None:
        self.learning_rate = check_real(
            learning_rate, "learning_rate", 0.0, strict=True
        )
        self.beta1, self.beta2 = (
            _check_decay(beta1, "beta1"),
            _check_decay(beta2, "beta2"),
        )
        self.epsilon = check_real(epsilon, "epsilon", 0.0, strict=True)
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.n_steps = 0

    def step(
        self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """New parameters (new arrays) after one step down the gradients ``grads``.

        Raises
        ------
        ValueError
            If ``params`` or ``grads`` does not hold one array of each
            parameter's shape (checked before the moments change).
        """
        shapes = [m.shape for m in self.m]
        for name, arrays in (("params", params), ("grads", grads)):
            got = [np.shape(a) for a in arrays]
            if got != shapes:
                raise ValueError(
                    f"{name} must be {len(shapes)} arrays of shapes {shapes}, the "
                    f"parameters Adam was built for; got shapes {got}."
                )
        self.n_steps += 1
        b1, b2 = self.beta1, self.beta2
        lr_hat = self.learning_rate / (1 - b1**self.n_steps)  # m's correction
        v_scale = 1 - b2**self.n_steps  # v's correction
        moved = []
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g**2
            moved.append(p - lr_hat * m / (np.sqrt(v / v_scale) + self.epsilon))
        return moved
