"""A variational autoencoder with MLP encoder and decoder, gradients by hand.

The model (Kingma and Welling 2014, "Auto-encoding variational Bayes",
ICLR): z ~ N(0, I_q), x | z ~ N(g(z), sigma^2 I_D) with g the decoder
network. The encoder network maps x to the mean mu(x) and log-variances
l(x) of a diagonal Gaussian q(z | x). Per point, with z = mu + s * eps,
s = exp(l / 2), eps ~ N(0, I_q) (the reparameterisation)::

    ELBO-hat(x) = log N(x | g(z), sigma^2 I) - KL(q(z | x) || N(0, I)),
    KL = 1/2 sum_j (mu_j^2 + s_j^2 - 1 - l_j)             (their eq. 10),

an unbiased estimate of the ELBO whose gradient is an unbiased estimate of
the ELBO's gradient. With r = x - g(z), its derivatives are::

    d/dg  = r / sigma^2,
    d/dmu = (dz-gradient) - mu,  d/dl = (dz-gradient) * eps * s / 2 - (s^2 - 1) / 2,
    d/d log sigma^2 = -D / 2 + |r|^2 / (2 sigma^2),

where the dz-gradient is d/dg backpropagated through the decoder
(:func:`emlib.neural.mlp_backward` returns it as the input gradient). The
importance-weighted bound of Burda, Grosse and Salakhutdinov (2016,
"Importance weighted autoencoders", ICLR) uses the log-weights
log p(x, z_i) - log q(z_i | x) of k draws (:func:`log_weights`).
Notebook 87 checks every formula here against finite differences, SciPy
densities, and probabilistic PCA's exact log-likelihood.
"""

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import as_real_array, check_generator, check_int, check_widths
from emlib._mlp import backward, flatten, forward, unflatten
from emlib._numerics import LOG_2PI
from emlib.neural import MLP, Adam, init_mlp


class VAE(NamedTuple):
    """The parameters of the model and of its encoder.

    Attributes
    ----------
    encoder : MLP
        Sizes (D, ..., 2q): the first q outputs are mu(x), the last q are
        l(x) = log s^2(x).
    decoder : MLP
        Sizes (q, ..., D): g(z), the mean of p(x | z).
    log_noise_variance : ndarray, shape ()
        log sigma^2 of p(x | z).
    """

    encoder: MLP
    decoder: MLP
    log_noise_variance: np.ndarray

    @property
    def n_latent(self) -> int:
        """q, the dimension of z."""
        return self.decoder.sizes[0]


def init_vae(
    n_features: int, n_latent: int, hidden: tuple[int, ...], rng: np.random.Generator
) -> VAE:
    """Random networks (:func:`emlib.neural.init_mlp`) and sigma^2 = 1.

    Parameters
    ----------
    n_features, n_latent : int
        D and q.
    hidden : tuple of int
        Hidden widths of both networks; () makes both linear.
    rng : numpy.random.Generator

    Returns
    -------
    VAE
    """
    d = check_int(n_features, "n_features")
    q = check_int(n_latent, "n_latent")
    hidden = check_widths(hidden, "hidden")
    encoder = init_mlp((d, *hidden, 2 * q), rng)
    decoder = init_mlp((q, *hidden[::-1], d), rng)
    return VAE(encoder, decoder, np.array(0.0))


def _check(vae, X):
    if not isinstance(vae, VAE):
        raise TypeError(f"vae must be an emlib.vae.VAE, got {type(vae).__name__}.")
    X = as_real_array(X, "X")
    d = vae.encoder.sizes[0]
    if X.ndim != 2 or X.shape[1] != d or X.shape[0] == 0:
        raise ValueError(
            f"X must have shape (N, {d}) with N >= 1, one row per point; got {X.shape}."
        )
    return X


def encode(vae: VAE, X: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's q(z | x_n) = N(mu_n, diag(exp(l_n))).

    Parameters
    ----------
    vae : VAE
    X : array_like, shape (N, D)

    Returns
    -------
    means, log_variances : ndarray, shape (N, q)
    """
    X = _check(vae, X)
    out, _ = forward(vae.encoder, X)
    q = vae.n_latent
    return out[:, :q], out[:, q:]


def decode(vae: VAE, Z: ArrayLike) -> np.ndarray:
    """g(z), the mean of p(x | z), for each row of Z.

    Parameters
    ----------
    vae : VAE
    Z : array_like, shape (M, q)

    Returns
    -------
    ndarray, shape (M, D)
    """
    if not isinstance(vae, VAE):
        raise TypeError(f"vae must be an emlib.vae.VAE, got {type(vae).__name__}.")
    Z = as_real_array(Z, "Z")
    if Z.ndim != 2 or Z.shape[1] != vae.n_latent:
        raise ValueError(
            f"Z must have shape (M, q) = (M, {vae.n_latent}), one latent point "
            f"per row; got {Z.shape}."
        )
    return forward(vae.decoder, Z)[0]


def _log_normal_isotropic(x, mean, log_var):
    """log N(x | mean, exp(log_var) I), summed over the last axis."""
    d = x.shape[-1]
    r2 = np.sum((x - mean) ** 2, axis=-1)
    return -0.5 * (d * (LOG_2PI + log_var) + r2 * np.exp(-log_var))


def elbo_and_gradient(vae: VAE, X: ArrayLike, eps: ArrayLike) -> tuple[float, VAE]:
    """The reparameterised ELBO estimate, averaged over the rows, and its gradient.

    Parameters
    ----------
    vae : VAE
    X : array_like, shape (N, D)
    eps : array_like, shape (N, q)
        The standard normal draws of z = mu + s * eps (one per point).

    Returns
    -------
    elbo : float
        (1/N) sum_n ELBO-hat(x_n), in nats per point.
    gradient : VAE
        Its gradient in every parameter, shaped like ``vae``.
    """
    X = _check(vae, X)
    eps = as_real_array(eps, "eps")
    if eps.shape != (X.shape[0], vae.n_latent):
        raise ValueError(
            f"eps must have shape (N, q) = {(X.shape[0], vae.n_latent)}; "
            f"got {eps.shape}."
        )
    return _elbo_and_gradient(vae, X, eps)


def _elbo_and_gradient(vae, X, eps):
    enc_out, enc_hidden = forward(vae.encoder, X)
    q = vae.n_latent
    elbo, d_mu, d_log_var, dec_grads, d_lam = _local_terms(
        vae, X, enc_out[:, :q], enc_out[:, q:], eps
    )
    enc_grads, _ = backward(vae.encoder, enc_hidden, np.hstack([d_mu, d_log_var]))
    return elbo, VAE(enc_grads, dec_grads, np.array(d_lam))


def _local_terms(vae, X, mu, log_var, eps):
    """The mean ELBO estimate given q's parameters, and its gradients (over N)."""
    n, d = X.shape
    s = np.exp(0.5 * log_var)
    z = mu + s * eps
    g, dec_hidden = forward(vae.decoder, z)
    lam = float(vae.log_noise_variance)
    r = X - g
    r2 = np.sum(r**2, axis=1)
    log_lik = -0.5 * (d * (LOG_2PI + lam) + r2 * np.exp(-lam))
    kl = 0.5 * np.sum(mu**2 + s**2 - 1.0 - log_var, axis=1)
    elbo = float(np.mean(log_lik - kl))
    # Gradients of the mean ELBO (ascent directions), hence the 1/N.
    dec_grads, dz = backward(vae.decoder, dec_hidden, r * (np.exp(-lam) / n))
    d_mu = dz - mu / n
    d_log_var = dz * eps * s / 2 - (s**2 - 1.0) / (2 * n)
    d_lam = np.mean(-0.5 * d + 0.5 * r2 * np.exp(-lam))
    return elbo, d_mu, d_log_var, dec_grads, d_lam


def local_elbo_and_gradient(
    vae: VAE, X: ArrayLike, means: ArrayLike, log_variances: ArrayLike, eps: ArrayLike
) -> tuple[float, np.ndarray, np.ndarray]:
    """The ELBO estimate with free per-point q(z | x_n) = N(m_n, diag exp(l_n)).

    The encoder is bypassed: these are free variational parameters, one set
    per point, as in the amortisation gap of Cremer, Li and Duvenaud (2018,
    "Inference suboptimality in variational autoencoders", ICML).

    Parameters
    ----------
    vae : VAE
        Only its decoder and sigma^2 are used.
    X : array_like, shape (N, D)
    means, log_variances, eps : array_like, shape (N, q)

    Returns
    -------
    elbo : float
        (1/N) sum_n ELBO-hat(x_n).
    d_means, d_log_variances : ndarray, shape (N, q)
        Its gradient in the variational parameters.
    """
    X = _check(vae, X)
    arrays = [
        as_real_array(a, name)
        for a, name in (
            (means, "means"),
            (log_variances, "log_variances"),
            (eps, "eps"),
        )
    ]
    for a, name in zip(arrays, ("means", "log_variances", "eps"), strict=True):
        if a.shape != (X.shape[0], vae.n_latent):
            raise ValueError(
                f"{name} must have shape (N, q) = {(X.shape[0], vae.n_latent)}; "
                f"got {a.shape}."
            )
    elbo, d_mu, d_log_var, _, _ = _local_terms(vae, X, *arrays)
    return elbo, d_mu, d_log_var


def log_weights(vae: VAE, X: ArrayLike, eps: ArrayLike) -> np.ndarray:
    """log p(x_n, z_ni) - log q(z_ni | x_n) at z_ni = mu_n + s_n * eps_ni.

    Parameters
    ----------
    vae : VAE
    X : array_like, shape (N, D)
    eps : array_like, shape (N, k, q)
        k standard normal draws per point.

    Returns
    -------
    ndarray, shape (N, k)
        Their mean over i is an unbiased estimate of the ELBO (with a Monte
        Carlo KL); log-mean-exp over i is the IWAE bound of :func:`iwae_bound`.
    """
    X = _check(vae, X)
    eps = as_real_array(eps, "eps")
    n, q = X.shape[0], vae.n_latent
    if eps.ndim != 3 or eps.shape[0] != n or eps.shape[2] != q or eps.shape[1] == 0:
        raise ValueError(
            f"eps must have shape (N, k, q) = ({n}, k, {q}) with k >= 1; "
            f"got {eps.shape}."
        )
    mu, log_var = encode(vae, X)
    z = mu[:, None, :] + np.exp(0.5 * log_var)[:, None, :] * eps
    g = decode(vae, z.reshape(-1, q)).reshape(n, -1, X.shape[1])
    log_lik = _log_normal_isotropic(X[:, None, :], g, float(vae.log_noise_variance))
    log_prior = -0.5 * np.sum(LOG_2PI + z**2, axis=2)
    log_q = -0.5 * np.sum(LOG_2PI + log_var[:, None, :] + eps**2, axis=2)
    return log_lik + log_prior - log_q


def iwae_bound(log_w: ArrayLike) -> np.ndarray:
    """The importance-weighted bound log (1/k) sum_i w_i, per row (Burda et al., eq. 8).

    Computed as max + log mean exp(log_w - max), so no weight overflows.

    Parameters
    ----------
    log_w : array_like, shape (N, k)

    Returns
    -------
    ndarray, shape (N,)
    """
    log_w = as_real_array(log_w, "log_w")
    if log_w.ndim != 2 or log_w.shape[1] == 0:
        raise ValueError(
            "log_w must have shape (N, k) with k >= 1, one row of log-weights per "
            f"point (from emlib.vae.log_weights); got {log_w.shape}."
        )
    top = log_w.max(axis=1, keepdims=True)
    return top[:, 0] + np.log(np.mean(np.exp(log_w - top), axis=1))


class VAEFit(NamedTuple):
    """The result of :func:`fit`.

    Attributes
    ----------
    vae : VAE
    elbos : ndarray, shape (n_iter,)
        The ELBO estimate of each minibatch, before its step, nats per point.
    """

    vae: VAE
    elbos: np.ndarray


def fit(
    X: ArrayLike,
    vae: VAE,
    rng: np.random.Generator,
    n_iter: int = 2000,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
) -> VAEFit:
    """Maximise the ELBO by Adam on reparameterised minibatch gradients.

    Each iteration draws a minibatch of rows (with replacement) and one eps
    per row, and steps up :func:`elbo_and_gradient`; the step size decays
    linearly to 0.

    Parameters
    ----------
    X : array_like, shape (N, D)
    vae : VAE
        The start (:func:`init_vae`).
    rng : numpy.random.Generator
    n_iter, batch_size : int
    learning_rate : float

    Returns
    -------
    VAEFit
    """
    X = _check(vae, X)
    check_generator(rng)
    n_iter = check_int(n_iter, "n_iter")
    batch_size = check_int(batch_size, "batch_size")
    encoder, decoder = vae.encoder, vae.decoder
    # Adam is elementwise, so it steps every parameter as one vector (one
    # update instead of one per array): the encoder's weights and biases, the
    # decoder's, then log sigma^2; the networks' arrays are views into it.
    encoder_params = flatten(encoder)
    n_encoder = encoder_params.size
    params = np.concatenate(
        [encoder_params, flatten(decoder), np.ravel(vae.log_noise_variance)]
    )
    adam = Adam([params], learning_rate)
    elbos = np.empty(n_iter)
    for i in range(n_iter):
        rows = X[rng.integers(X.shape[0], size=batch_size)]
        eps = rng.standard_normal((batch_size, vae.n_latent))
        elbos[i], grad = _elbo_and_gradient(vae, rows, eps)
        flat = np.concatenate(
            [flatten(grad.encoder), flatten(grad.decoder), [grad.log_noise_variance]]
        )
        adam.learning_rate = learning_rate * (1.0 - i / n_iter)
        (params,) = adam.step([params], [-flat])  # down the negative ELBO
        vae = VAE(
            unflatten(params[:n_encoder], encoder),
            unflatten(params[n_encoder:-1], decoder),
            params[-1:].reshape(()),
        )
    return VAEFit(vae, elbos)
