"""Generalised EM: steps that raise Q or F without the full EM iteration.

Two variants of the iteration of :mod:`emlib.fit`, both derived in
notebooks/15-free-energy.ipynb:

- :func:`conditional_m_step`, a conditional maximisation (the CM-step of
  Meng and Rubin's ECM): Q(theta, theta^(i)) is maximised over one block of
  theta (the weights, the means or the variances) with the others held. It
  never lowers Q, so EM's monotonicity theorem still applies (generalised
  EM).
- :func:`incremental_em_start` and :func:`incremental_em_step`, Neal and
  Hinton's incremental EM: refresh the responsibilities of one block of
  observations, update running sufficient statistics, take the M-step. Each
  half-step raises F(q, theta) = L(q, theta); the log-likelihood itself need
  not rise.
"""

import itertools
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from emlib._checks import as_observations, as_row_stochastic, check_int
from emlib._numerics import divide_where_mass, weighted_moments
from emlib.gmm import GMM
from emlib.model import check_components, check_theta, e_step

BLOCKS = ("weights", "means", "variances")


def _moments_about(y, gamma, centres):
    """n_k, the weighted mean of y - c_k, and the spread about that mean.

    Returns
    -------
    nk, shift, variance : ndarray, shape (K,)
        n_k = sum_j gamma_jk; shift_k = sum_j gamma_jk (y_j - c_k) / n_k, so
        the weighted mean of y is c_k + shift_k; variance_k = sum_j gamma_jk
        (y_j - c_k - shift_k)^2 / n_k.
    """
    return weighted_moments(gamma.T, y[None, :] - centres[:, None])


def conditional_m_step(
    y: ArrayLike,
    gamma: ArrayLike,
    theta: GMM,
    block: Literal["weights", "means", "variances"],
) -> GMM:
    """Maximise Q(theta, theta^(i)) over one block of theta, the others held.

    With n_k = sum_j gamma_jk, the conditional maximisers are

    .. math::

        \\alpha_k = \\frac{n_k}{N}, \\quad
        \\mu_k = \\frac{\\sum_j \\gamma_{jk} y_j}{n_k}, \\quad
        \\sigma_k^2 = \\frac{\\sum_j \\gamma_{jk} (y_j - \\mu_k)^2}{n_k},

    the first two those of the full M-step; the variances are the spread
    about the *held* means mu_k of ``theta``, not about the new ones. The
    result never has a lower Q than ``theta`` (a generalised EM step).

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Observations.
    gamma : array_like, shape (N, K)
        Responsibilities of the E-step at theta^(i), each row summing to 1.
    theta : GMM
        K components: the held values of the other blocks (usually theta^(i)).
    block : {"weights", "means", "variances"}
        The block to maximise over.

    Returns
    -------
    GMM
        ``theta`` with ``block`` replaced by its conditional maximiser.

    Raises
    ------
    ValueError
        On an unknown ``block``, shapes that disagree, or when a component
        has n_k = 0 or its new variance collapses onto a point.
    """
    y = as_observations(y)
    check_theta(theta)
    gamma = as_row_stochastic(gamma, (y.size, theta.n_components), "gamma")
    if block not in BLOCKS:
        raise ValueError(
            f"block must be one of {', '.join(map(repr, BLOCKS))}; got {block!r}."
        )
    nk, shift, spread_about_mean = _moments_about(y, gamma, theta.means)
    new = {
        "weights": theta.weights,
        "means": theta.means,
        "variances": theta.variances,
    }
    if block == "weights":
        new["weights"] = nk / nk.sum()
    elif block == "means":
        new["means"] = theta.means + shift
    else:
        # About the held mean: the spread about the weighted mean plus the
        # squared distance between the two (both terms >= 0).
        new["variances"] = spread_about_mean + shift * shift
    check_components(nk, new["means"], new["variances"])
    return GMM(new["weights"], new["means"], new["variances"])


class IncrementalEM(NamedTuple):
    """The state of Neal and Hinton's incremental EM.

    The N observations are split into B contiguous blocks of nearly equal
    size (those of ``np.array_split(np.arange(N), B)``). Invariant:
    ``theta`` is the M-step of ``q``, the maximiser of F(q, theta).

    Attributes
    ----------
    theta : GMM
        The current parameters, K components.
    q : ndarray, shape (N, K)
        The current responsibilities; block b's rows were last refreshed at
        the theta of that time, so q is in general no single theta's E-step.
    block_counts : ndarray, shape (B, K)
        n_bk = sum_{j in block b} q_jk.
    block_means : ndarray, shape (B, K)
        sum_{j in b} q_jk y_j / n_bk (0 where n_bk = 0).
    block_m2 : ndarray, shape (B, K)
        sum_{j in b} q_jk (y_j - block_means_bk)^2.
    """

    theta: GMM
    q: np.ndarray
    block_counts: np.ndarray
    block_means: np.ndarray
    block_m2: np.ndarray


def _block_edges(n, n_blocks):
    """Start and end rows of each block, as np.array_split(np.arange(n), B)."""
    sizes = np.full(n_blocks, n // n_blocks)
    sizes[: n % n_blocks] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def _block_moments(y_block, q_block):
    """Count, mean and M2 of one block, for each component: three (K,) arrays."""
    nk, mean, variance = _moments_about(y_block, q_block, np.zeros(q_block.shape[1]))
    return nk, mean, nk * variance


def _m_step_from_blocks(counts, means, m2):
    """The M-step from per-block moments, merged (Chan, Golub and LeVeque).

    n_k = sum_b n_bk, mu_k = sum_b n_bk m_bk / n_k and
    sum_j q_jk (y_j - mu_k)^2 = sum_b [M2_bk + n_bk (m_bk - mu_k)^2]: every
    term is >= 0, so the variance has no cancellation.
    """
    nk = counts.sum(axis=0)
    mu = divide_where_mass(np.einsum("bk,bk->k", counts, means), nk)
    m2_total = (m2 + counts * (means - mu) ** 2).sum(axis=0)
    variances = divide_where_mass(m2_total, nk)
    check_components(nk, mu, variances)
    return GMM(nk / nk.sum(), mu, variances)


def incremental_em_start(y: ArrayLike, theta: GMM, n_blocks: int) -> IncrementalEM:
    """Full E-step at ``theta``, each block's moments, then the M-step.

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        Observations.
    theta : GMM
        The start theta^(0), K components.
    n_blocks : int
        B, with 1 <= B <= N.

    Returns
    -------
    IncrementalEM
        q = e_step(y, theta), and theta^(1) its M-step (one full EM
        iteration).
    """
    y = as_observations(y)
    check_theta(theta)
    n_blocks = check_int(
        n_blocks, "n_blocks", 1, y.size, rule=f"satisfy 1 <= n_blocks <= N = {y.size}"
    )
    q = e_step(y, theta)
    edges = _block_edges(y.size, n_blocks)
    moments = [_block_moments(y[a:b], q[a:b]) for a, b in itertools.pairwise(edges)]
    counts, means, m2 = (np.array(m) for m in zip(*moments, strict=True))
    return IncrementalEM(_m_step_from_blocks(counts, means, m2), q, counts, means, m2)


def _check_state(state, n):
    if not isinstance(state, IncrementalEM):
        raise TypeError(
            "state must be an emlib.IncrementalEM from incremental_em_start, "
            f"got {type(state).__name__}."
        )
    check_theta(state.theta)
    k = state.theta.n_components
    q = state.q
    if not isinstance(q, np.ndarray) or q.shape != (n, k):
        raise ValueError(
            f"state.q must have shape ({n}, {k}) (one row per observation of y); "
            f"got {getattr(q, 'shape', type(q).__name__)}. Was the state made "
            "from other data?"
        )
    shapes = {a.shape for a in (state.block_counts, state.block_means, state.block_m2)}
    if len(shapes) != 1 or (shape := shapes.pop())[1:] != (k,) or shape[0] > n:
        raise ValueError(
            "state's block moments must all have shape (B, K) with B <= N; "
            "make the state with incremental_em_start."
        )


def incremental_em_step(
    y: ArrayLike, state: IncrementalEM, block: int
) -> IncrementalEM:
    """Refresh the responsibilities of one block of observations, then M-step.

    Partial E-step: q_j = P(z_j | y_j, theta) for the rows j of ``block``,
    at the state's theta; that block's moments replace its old ones in the
    running sufficient statistics. M-step: theta from the statistics. Each
    half-step maximises F(q, theta) over its argument (the rows of one block
    of q, then theta), so F never falls; log P(Y | theta) may.

    Parameters
    ----------
    y : array_like, shape (N,) or (N, 1)
        The observations the state was started with.
    state : IncrementalEM
        The current state; it is not modified.
    block : int
        b, with 0 <= b < B.

    Returns
    -------
    IncrementalEM
        The new state; F(new.q, state.theta) is the F after the partial
        E-step, F(new.q, new.theta) after the M-step.
    """
    y = as_observations(y)
    _check_state(state, y.size)
    n_blocks = state.block_counts.shape[0]
    block = check_int(
        block, "block", 0, n_blocks - 1, rule=f"satisfy 0 <= block < B = {n_blocks}"
    )
    edges = _block_edges(y.size, n_blocks)
    a, b = edges[block], edges[block + 1]
    q = state.q.copy()
    q[a:b] = e_step(y[a:b], state.theta)
    counts, means, m2 = (
        arr.copy() for arr in (state.block_counts, state.block_means, state.block_m2)
    )
    counts[block], means[block], m2[block] = _block_moments(y[a:b], q[a:b])
    return IncrementalEM(_m_step_from_blocks(counts, means, m2), q, counts, means, m2)
