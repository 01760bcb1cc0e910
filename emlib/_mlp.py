"""An MLP's passes on inputs already checked, and its parameters as one vector.

:func:`emlib.neural.mlp_forward` and :func:`emlib.neural.mlp_backward` check
their inputs and call :func:`forward` and :func:`backward`; the learned
denoiser (``emlib.diffusion``) and the VAE (``emlib.vae``) call them in their
training loops on arrays they have checked once. :func:`flatten` and
:func:`unflatten` let a training loop step every parameter as one array.
"""

import numpy as np


def forward(net, h):
    """The output a_L and the layer values h_0 = h, h_1, ..., h_{L-1}.

    Parameters
    ----------
    net : emlib.neural.MLP
        Weights W_l of shape (D_{l-1}, D_l) and biases of shape (D_l,).
    h : ndarray, shape (N, D_0)
        Finite inputs (not checked here).

    Returns
    -------
    output : ndarray, shape (N, D_L)
        h_{L-1} W_L + b_L: the last layer is linear.
    hidden : list of ndarray
        h_0, ..., h_{L-1}, with h_l = tanh(h_{l-1} W_l + b_l).
    """
    hidden = []
    for w, b in zip(net.weights[:-1], net.biases[:-1], strict=True):
        hidden.append(h)
        a = h @ w
        a += b  # in place: the same sums as h @ w + b, one array fewer
        h = np.tanh(a, out=a)
    hidden.append(h)
    out = h @ net.weights[-1]
    out += net.biases[-1]
    return out, hidden


def backward(net, hidden, g):
    """Gradients of a scalar loss, given g = dLoss/da_L (shapes not checked here).

    Parameters
    ----------
    net : emlib.neural.MLP
    hidden : list of ndarray
        From :func:`forward` on the same inputs.
    g : ndarray, shape (N, D_L)
        dLoss / da_L.

    Returns
    -------
    grads : emlib.neural.MLP
        dLoss/dW_l = h_{l-1}^T g_l and dLoss/db_l = the column sums of g_l.
    grad_input : ndarray, shape (N, D_0)
        dLoss/dh_0.
    """
    grad_w, grad_b = [], []
    for layer in range(len(net.weights) - 1, -1, -1):
        h = hidden[layer]
        grad_w.append(h.T @ g)
        grad_b.append(g.sum(axis=0))
        g = g @ net.weights[layer].T  # dLoss/dh_{layer}
        if layer > 0:
            slope = h * h  # through h = tanh(a): tanh' = 1 - h^2, formed in place
            np.subtract(1.0, slope, out=slope)
            g *= slope
    return net._replace(weights=tuple(grad_w[::-1]), biases=tuple(grad_b[::-1])), g


def parameter_arrays(net):
    """W_1, b_1, ..., W_L, b_L: the network's own arrays (not copies), in order."""
    return [a for pair in zip(*net, strict=True) for a in pair]


def from_parameter_arrays(arrays, like):
    """The network shaped like ``like`` from :func:`parameter_arrays`' list."""
    return like._replace(weights=tuple(arrays[0::2]), biases=tuple(arrays[1::2]))


def flatten(net):
    """:func:`parameter_arrays` raveled into one new vector, shape (P,)."""
    return np.concatenate([a.ravel() for a in parameter_arrays(net)])


def unflatten(flat, like):
    """The network shaped like ``like`` whose arrays are views into ``flat``.

    The inverse of :func:`flatten`: ``unflatten(flatten(net), net)`` equals
    ``net``, and writing into ``flat`` changes the returned network.
    """
    views, start = [], 0
    for a in parameter_arrays(like):
        views.append(flat[start : start + a.size].reshape(a.shape))
        start += a.size
    return from_parameter_arrays(views, like)
