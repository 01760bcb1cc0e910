"""Parallel-in-time HMM inference: associative scans over S x S matrices.

The forward recursion alpha_t = alpha_{t-1} A diag(b(o_t)) makes

.. math::

    P(O \\mid \\lambda) = \\alpha_1 M_2 M_3 \\cdots M_T \\mathbf 1, \\qquad
    M_t = A \\operatorname{diag}(b(o_t)),

a product of matrices, and matrix products are associative, so the product
can be formed pairwise in ceil(log2 T) rounds, each one batched matmul over
all pairs (Sarkka and Garcia-Fernandez 2021, "Temporal parallelization of
Bayesian smoothers", IEEE TAC 66(1); dynamax's parallel HMM filter). Here
alpha_1 = pi * b(o_1) enters as the rank-one first leaf M_1 = 1 alpha_1 (every
row alpha_1), as in dynamax, so that every prefix M_1 ... M_t has alpha_t in
every row.

* Up-sweep: level 0 holds the leaves M_1, ..., M_T; level k + 1 the products
  of neighbouring pairs of level k (an odd last one is carried up). Every
  product is divided by its largest entry and the log of that divisor kept,
  so the entries stay in (0, 1] and the log scales add: the root's log scale
  plus log of its row sum is log P(O | lambda). Work: T - 1 products, O(S^3 T);
  depth ceil(log2 T).
* Down-sweeps (Blelloch's second half): going down the same tree, the
  normalised row vector of everything before a node (left child: its
  parent's; right child: its parent's times the left sibling) gives every
  alpha_t up to a positive factor, and the column vector of everything after a
  node gives every beta_t. Vector-matrix products only: O(S^2 T) work.
* gamma_t and xi_t are then alpha_t beta_t and alpha_t(i) a_ij b_j beta_{t+1}(j)
  renormalised at each t: their sums over states equal P(O | lambda) at every
  t, so the unknown positive factor of each vector cancels exactly.
* Viterbi is the same up-sweep in the (max, +) semiring on log M_t, with the
  maximising middle state of every product stored; the path is read back from
  the root down (each node knows its first and last state; the argmax gives
  its children's shared one).

Everything is vectorised over a batch of N sequences of the same length T:
the arrays carry a leading axis N.

Underflow: the normalised products keep every entry <= 1; a product entry is
exact to S eps relative unless some of its terms fell below the smallest
normal float, which cannot change it by more than S eps relative when the
entry itself is >= tiny / eps. Each batch function therefore returns per
sequence whether every leaf and every product entry (before normalising) was
>= tiny / eps; where not, the caller uses the sequential recursion, which has
its own log-space fallback. Models with zeros in the leaves therefore go to
the sequential recursion, except in Viterbi, which works in log space.
"""

import numpy as np

# Entries below this may have lost terms to underflow (tiny / eps ~ 1e-292).
_SAFE = np.finfo(np.float64).tiny / np.finfo(np.float64).eps


def _leaves(start, transition, emitted):
    """M_1 = 1 (pi * b(o_1)) and M_t = A diag(b(o_t)), shape (N, T, S, S).

    ``emitted`` (N, T, S) holds b_j(o_t) (up to a positive factor per t).
    """
    leaves = transition[None, None, :, :] * emitted[:, :, None, :]
    leaves[:, 0] = (start * emitted[:, 0])[:, None, :]  # every row alpha_1
    return leaves


def _normalise(products):
    """Divide each (S, S) matrix by its largest entry; return it and log(largest).

    ``products`` (N, n, S, S) with a positive largest entry (the caller
    checks that every entry is >= _SAFE).
    """
    # Reducing one flattened axis is several times faster than axis=(2, 3).
    largest = products.reshape(*products.shape[:2], -1).max(axis=-1)
    # A zero matrix (an impossible symbol) gives NaN here, but only in a
    # sequence already flagged not exact, whose results the caller discards.
    with np.errstate(divide="ignore", invalid="ignore"):
        products /= largest[:, :, None, None]
        return products, np.log(largest)


def _up_sweep(leaves):
    """The tree of normalised pairwise products (the scan's reduction half).

    Parameters
    ----------
    leaves : ndarray, shape (N, T, S, S)
        M_1, ..., M_T of N sequences; overwritten.

    Returns
    -------
    levels : list of ndarray
        levels[k] has shape (N, n_k, S, S), n_0 = T, n_{k+1} = ceil(n_k / 2),
        the last of shape (N, 1, S, S); each matrix has largest entry 1.
    log_scale : ndarray, shape (N,)
        log of the factor the root was divided by: log P(O) = log_scale +
        log(root row sum).
    exact : ndarray of bool, shape (N,)
        Whether every leaf and every product entry (before normalising) was
        >= _SAFE, so that no term lost to underflow can matter.
    """
    exact = leaves.reshape(leaves.shape[0], -1).min(axis=-1) >= _SAFE
    level, log_scale = _normalise(leaves)
    levels = [level]
    while level.shape[1] > 1:
        pairs = level.shape[1] // 2
        # Products of neighbours 2m, 2m + 1, all in one batched matmul; the
        # factors divided out of the two multiply, so their logs add.
        products = level[:, 0 : 2 * pairs : 2] @ level[:, 1 : 2 * pairs : 2]
        exact &= products.reshape(products.shape[0], -1).min(axis=-1) >= _SAFE
        products, log_largest = _normalise(products)
        scales = log_scale[:, 0 : 2 * pairs : 2] + log_scale[:, 1 : 2 * pairs : 2]
        scales += log_largest
        if level.shape[1] % 2:  # the odd last one goes up as it is
            products = np.concatenate([products, level[:, -1:]], axis=1)
            scales = np.concatenate([scales, log_scale[:, -1:]], axis=1)
        level, log_scale = products, scales
        levels.append(level)
    return levels, log_scale[:, 0], exact


def log_likelihood(start, transition, emitted):
    """log P(O | lambda) of N sequences of one length, by the up-sweep alone.

    Parameters
    ----------
    start : ndarray, shape (S,)
        pi.
    transition : ndarray, shape (S, S)
        A.
    emitted : ndarray, shape (N, T, S)
        b_j(o_t) of each sequence.

    Returns
    -------
    log_lik : ndarray, shape (N,)
    exact : ndarray of bool, shape (N,)
        False where an entry fell below _SAFE: use the sequential recursion
        for that sequence.
    """
    levels, log_scale, exact = _up_sweep(_leaves(start, transition, emitted))
    # Every row of the root is alpha_T divided by exp(log_scale).
    with np.errstate(divide="ignore"):  # a zero row sum only where not exact
        return log_scale + np.log(levels[-1][:, 0, 0].sum(axis=-1)), exact


def _unit_max(vectors):
    """Divide each vector (last axis) by its largest entry, in place."""
    with np.errstate(divide="ignore", invalid="ignore"):  # as in _normalise
        vectors /= vectors.max(axis=-1, keepdims=True)
    return vectors


def _down_sweeps(levels):
    """Every alpha_t and beta_t up to a positive factor, from the up-sweep tree.

    Going down the tree, a node's *before* is the product of all leaves left
    of it applied to e_1 (row vector), its *after* the product of all leaves
    right of it applied to 1 (column vector). A left child's before is its
    parent's, a right child's is the parent's before times the left sibling;
    symmetrically for after. At the leaves, alpha_t = before_t M_t (alpha_1 =
    e_1 M_1, M_1 having alpha_1 in every row) and beta_t = after_t.

    Returns
    -------
    alpha : ndarray, shape (N, T, S)
        alpha_t(i) up to a positive factor per t (largest entry 1).
    beta : ndarray, shape (N, T, S)
        beta_t(i) up to a positive factor per t (largest entry 1).
    exact : ndarray of bool, shape (N,)
        Whether every vector-matrix product entry was >= _SAFE.
    """
    n_seq, _, n_states, _ = levels[-1].shape
    before = np.zeros((n_seq, 1, n_states))
    before[:, :, 0] = 1.0  # e_1: picks row 1 of the root
    after = np.ones((n_seq, 1, n_states))
    exact = np.ones(n_seq, dtype=bool)
    for level in reversed(levels[:-1]):
        n_nodes = level.shape[1]
        pairs = n_nodes // 2
        left, right = level[:, 0 : 2 * pairs : 2], level[:, 1 : 2 * pairs : 2]
        child_before = np.empty((n_seq, n_nodes, n_states))
        child_after = np.empty((n_seq, n_nodes, n_states))
        child_before[:, 0 : 2 * pairs : 2] = before[:, :pairs]
        child_after[:, 1 : 2 * pairs : 2] = after[:, :pairs]
        # before_right = before_parent M_left; after_left = M_right after_parent
        into = (before[:, :pairs, None, :] @ left)[:, :, 0]
        out_of = (right @ after[:, :pairs, :, None])[..., 0]
        exact &= into.min(axis=(1, 2)) >= _SAFE
        exact &= out_of.min(axis=(1, 2)) >= _SAFE
        child_before[:, 1 : 2 * pairs : 2] = _unit_max(into)
        child_after[:, 0 : 2 * pairs : 2] = _unit_max(out_of)
        if n_nodes % 2:  # the carried-up last node keeps its parent's vectors
            child_before[:, -1], child_after[:, -1] = before[:, -1], after[:, -1]
        before, after = child_before, child_after
    alpha = (before[:, :, None, :] @ levels[0])[:, :, 0]
    exact &= alpha.min(axis=(1, 2)) >= _SAFE
    return _unit_max(alpha), after, exact


def posteriors(start, transition, emitted):
    """gamma, the pair-count pieces and log P(O) of N sequences of one length.

    Parameters
    ----------
    start : ndarray, shape (S,)
    transition : ndarray, shape (S, S)
    emitted : ndarray, shape (N, T, S)
        b_j(o_t) of each sequence.

    Returns
    -------
    gamma : ndarray, shape (N, T, S)
        gamma_t(i) = alpha_t(i) beta_t(i) / sum_j alpha_t(j) beta_t(j).
    alpha : ndarray, shape (N, T, S)
        alpha_t up to a positive factor per t.
    after : ndarray, shape (N, T - 1, S)
        b_j(o_{t+1}) beta_{t+1}(j) up to a positive factor per t, so that
        xi_t(i, j) is alpha_t(i) a_ij after_t(j), divided by its sum over
        (i, j) (see :func:`pair_posteriors`, :func:`transition_counts`).
    log_lik : ndarray, shape (N,)
    exact : ndarray of bool, shape (N,)
    """
    levels, log_scale, exact = _up_sweep(_leaves(start, transition, emitted))
    with np.errstate(divide="ignore"):
        log_lik = log_scale + np.log(levels[-1][:, 0, 0].sum(axis=-1))
    alpha, beta, exact_down = _down_sweeps(levels)
    # sum_i alpha_t(i) beta_t(i) = P(O) for every t, so renormalising each t
    # removes the unknown factors of alpha_t and beta_t exactly.
    gamma = alpha * beta
    with np.errstate(divide="ignore", invalid="ignore"):  # as in _normalise
        gamma /= gamma.sum(axis=-1, keepdims=True)
    return gamma, alpha, emitted[:, 1:] * beta[:, 1:], log_lik, exact & exact_down


def _pair_normalisers(alpha, transition, after):
    """sum_ij alpha_t(i) a_ij after_t(j), shape (N, T - 1)."""
    return ((alpha[:, :-1] @ transition) * after).sum(axis=-1)


def pair_posteriors(alpha, transition, after):
    """xi_t(i, j), shape (N, T - 1, S, S), from :func:`posteriors`' pieces."""
    xi = alpha[:, :-1, :, None] * transition * after[:, :, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):  # as in _normalise
        xi /= _pair_normalisers(alpha, transition, after)[:, :, None, None]
    return xi


def transition_counts(alpha, transition, after):
    """sum_t xi_t(i, j) over t and the batch, shape (S, S), without forming xi.

    sum_t alpha_t(i) a_ij after_t(j) / z_t = a_ij (F^T G)_ij with
    F_t = alpha_t / z_t and G_t = after_t: one (S, NT) x (NT, S) matmul.
    """
    with np.errstate(divide="ignore", invalid="ignore"):  # as in _normalise
        weights = alpha[:, :-1] / _pair_normalisers(alpha, transition, after)[..., None]
    n_states = transition.shape[0]
    flat = weights.reshape(-1, n_states).T @ after.reshape(-1, n_states)
    return transition * flat


def viterbi(log_start, log_transition, log_emitted):
    """Most probable paths of N sequences of one length, by a (max, +) scan.

    Max-plus "products" (C_ik = max_j X_ij + Y_jk) are associative as
    matrix products are (max distributes over +), so the same pairwise tree
    gives delta at the root. Each product stores its maximising j; going down,
    a node whose first and last states are (i, k) gives its left child (i, j)
    and its right child (j, k), j the stored argmax, and leaf t's last state
    is the state at t. Ties go to the lowest j at each node, which may pick a
    different maximiser than the sequential backtrack does.

    Parameters
    ----------
    log_start : ndarray, shape (S,)
    log_transition : ndarray, shape (S, S)
    log_emitted : ndarray, shape (N, T, S)
        log b_j(o_t); -inf allowed.

    Returns
    -------
    paths : ndarray of int, shape (N, T)
    log_probabilities : ndarray, shape (N,)
        -inf for a sequence with probability 0 (its path is then arbitrary).
    """
    level = log_transition[None, None] + log_emitted[:, :, None, :]
    level[:, 0] = (log_start + log_emitted[:, 0])[:, None, :]  # every row delta_1
    levels, choices = [level], []
    while level.shape[1] > 1:
        pairs = level.shape[1] // 2
        # (N, pairs, i, j, k): X_ij + Y_jk, maximised over the middle state j.
        candidates = (
            level[:, 0 : 2 * pairs : 2, :, :, None]
            + level[:, 1 : 2 * pairs : 2, None, :, :]
        )
        middle = candidates.argmax(axis=3)
        products = np.take_along_axis(candidates, middle[:, :, :, None], 3)[:, :, :, 0]
        if level.shape[1] % 2:
            products = np.concatenate([products, level[:, -1:]], axis=1)
        choices.append(middle)
        level = products
        levels.append(level)
    n_seq = level.shape[0]
    rows = np.arange(n_seq)
    last = level[:, 0, 0].argmax(axis=-1)
    log_probabilities = level[rows, 0, 0, last]
    # Each node's (first, last) states; the root's first is row 0 (all equal).
    first, last = np.zeros((n_seq, 1), dtype=np.intp), last[:, None]
    for level, middle in zip(reversed(levels[:-1]), reversed(choices), strict=True):
        n_nodes, pairs = level.shape[1], level.shape[1] // 2
        nodes = np.arange(pairs)
        split = middle[rows[:, None], nodes, first[:, :pairs], last[:, :pairs]]
        child_first = np.empty((n_seq, n_nodes), dtype=np.intp)
        child_last = np.empty((n_seq, n_nodes), dtype=np.intp)
        child_first[:, 0 : 2 * pairs : 2] = first[:, :pairs]
        child_last[:, 0 : 2 * pairs : 2] = split
        child_first[:, 1 : 2 * pairs : 2] = split
        child_last[:, 1 : 2 * pairs : 2] = last[:, :pairs]
        if n_nodes % 2:
            child_first[:, -1], child_last[:, -1] = first[:, -1], last[:, -1]
        first, last = child_first, child_last
    return last, log_probabilities
