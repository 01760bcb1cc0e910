"""The forward pass of an MLP on inputs already checked: one definition for every model.

:func:`emlib.neural.mlp_forward` checks its inputs and calls this; the
learned denoiser (``emlib.diffusion``) and the VAE (``emlib.vae``) call it in
their training loops on arrays they have checked once.
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
        h = np.tanh(h @ w + b)
    hidden.append(h)
    return h @ net.weights[-1] + net.biases[-1], hidden
