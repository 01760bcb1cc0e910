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

Blocks. A tree over T single-step leaves multiplies T - 1 pairs of distinct
S x S matrices, which numpy does slowly (one small matmul each). By the same
associativity the product may be bracketed by blocks of L steps: each
block's product comes from the sequential matrix recursion P <- P A diag(b),
run across all K N blocks at once (one (K N S, S) x (S, S) matmul per step,
as A is shared), and only the K blocks and the T - K L tail steps go into the
tree. Inside the blocks, alpha_t and beta_t come from the scaled sequential
recursions run across all blocks from each block's before and after vectors.
Sequences of at most _WHOLE steps are one block each: the batch then needs
no tree (the loop runs across the N sequences), and Viterbi likewise.

Underflow: the normalised products keep every entry <= 1; a product entry is
exact to S eps relative unless some of its terms fell below the smallest
normal float, which cannot change it by more than S eps relative when the
entry itself is >= tiny / eps. Each batch function therefore returns per
sequence whether every leaf and every product entry (before normalising) was
>= tiny / eps (inside blocks, one check per step covers the whole batch, so
one such sequence flags its batch); where not, the caller uses the
sequential recursion, which has its own log-space fallback. Models with
zeros in the leaves therefore go to the sequential recursion, except in
Viterbi, which works in log space.
"""

import numpy as np

# Entries below this may have lost terms to underflow (tiny / eps ~ 1e-292).
_SAFE = np.finfo(np.float64).tiny / np.finfo(np.float64).eps


# OpenBLAS runs a matrix product on all its threads once m n k >= 262,144
# (its interface/gemm.c: SMP_THRESHOLD_MIN 65536 x GEMM_MULTITHREAD_THRESHOLD
# 4). A tall (n, S) x (S, S) product crosses that at n = 16,384 for S = 4, and
# on a shared 2-core machine the threads then wait for each other: measured
# 132 ms wall (32 ms CPU) at n = 100,000, S = 4, against 0.9 ms in one
# thread. Chunks of rows with m n k <= _GEMM_SIZE stay in one thread.
_GEMM_SIZE = 65_536


def _times(x, matrix):
    """x @ matrix for x (..., S) and matrix (S, S'), in single-threaded chunks."""
    flat = x.reshape(-1, x.shape[-1])
    rows = max(1, _GEMM_SIZE // matrix.size)
    if len(flat) <= rows:
        return x @ matrix
    out = np.empty((len(flat), matrix.shape[1]))
    for i in range(0, len(flat), rows):
        np.matmul(flat[i : i + rows], matrix, out=out[i : i + rows])
    return out.reshape(*x.shape[:-1], matrix.shape[1])


def gram(f, g):
    """f.T @ g for f (n, S), g (n, S'), summed over single-threaded chunks."""
    rows = max(1, _GEMM_SIZE // (f.shape[1] * g.shape[1]))
    total = np.zeros((f.shape[1], g.shape[1]))
    for i in range(0, len(f), rows):
        total += f[i : i + rows].T @ g[i : i + rows]
    return total


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


def _up_sweep(leaves, leaf_log_scale=0.0):
    """The tree of normalised pairwise products (the scan's reduction half).

    Parameters
    ----------
    leaves : ndarray, shape (N, n, S, S)
        The n leaves of N sequences (M_1, ..., M_T, or block products, see
        :func:`_block_leaves`); overwritten.
    leaf_log_scale : float or ndarray, shape (N, n)
        log of the factor each leaf was already divided by.

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
    log_scale += leaf_log_scale
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


# Block length L of the blocked scan (:func:`_block_leaves`): sequences up to
# _WHOLE steps are one block each (the loop runs across the batch), longer
# ones are cut into blocks of _BLOCK steps. Measured with
# benchmarks/bench_hmm.py: L = 32, 64, 128 within 10% of each other at
# T = 100,000, S = 4; 64 trades the loop's per-step numpy calls (about L)
# against the tree's batched 4 x 4 products (about T / L).
_BLOCK = 64
_WHOLE = 256


def _block_length(length):
    """L for sequences of ``length`` steps: the whole of a short one."""
    return length if length <= _WHOLE else _BLOCK


def _block_layout(emitted, block):
    """The first K L steps of ``emitted`` (N, T, S) as (L, K N, S), K = T // L.

    Entry [l, k N + n] is emitted[n, k L + l]: block-major, so that the
    first N columns are every sequence's first block, and each step l of all
    blocks is one contiguous (K N, S) slice.
    """
    n_seq, length, n_states = emitted.shape
    n_blocks = length // block
    body = emitted[:, : n_blocks * block].reshape(n_seq, n_blocks, block, n_states)
    return np.ascontiguousarray(body.transpose(2, 1, 0, 3)).reshape(
        block, n_blocks * n_seq, n_states
    )


def _from_block_layout(blocked, n_seq):
    """Inverse of :func:`_block_layout`: (L, K N, S) back to (N, K L, S)."""
    block, columns, n_states = blocked.shape
    n_blocks = columns // n_seq
    by_block = blocked.reshape(block, n_blocks, n_seq, n_states)
    return by_block.transpose(2, 1, 0, 3).reshape(n_seq, n_blocks * block, n_states)


def _block_leaves(start, transition, emitted, block):
    """The scan's leaves when sequences are cut into blocks of L steps.

    The product M_1 ... M_T may be bracketed as (block 1)(block 2)...(tail):
    K = T // L block products M_{kL+1} ... M_{kL+L}, then the T - K L
    remaining M_t one by one. Each block product comes from the sequential
    matrix recursion P <- P A diag(b(o_t)), run for all K N blocks at once:
    multiplying by the same A on the right is one (K N S, S) x (S, S) matmul
    per step, far cheaper in numpy than K N separate 4 x 4 products. Block 1
    of each sequence starts from the rank-one M_1 = 1 alpha_1.

    Parameters
    ----------
    start : ndarray, shape (S,)
    transition : ndarray, shape (S, S)
    emitted : ndarray, shape (N, T, S)
    block : int
        L, 1 <= L <= T (L = 1: every step its own leaf, the plain scan).

    Returns
    -------
    leaves : ndarray, shape (N, K + T - K L, S, S)
        Normalised block products (largest entry about 1), then the tail's M_t.
    log_scale : ndarray, shape (N, K + T - K L)
        log of what each leaf was divided by (0 for the tail).
    blocks : ndarray, shape (L, K N, S)
        emitted in :func:`_block_layout`.
    exact : bool
        Whether every entry of every P (before normalising) was >= _SAFE, in
        the whole batch (one check per step, not per sequence: a batch with
        one underflowing sequence goes to the sequential recursion whole).
    """
    n_seq, _, n_states = emitted.shape
    blocks = _block_layout(emitted, block)
    columns = blocks.shape[1]
    products = transition * blocks[0][:, None, :]  # M_{kL+1} = A diag(b)
    products[:n_seq] = (start * blocks[0, :n_seq])[:, None, :]  # M_1 = 1 alpha_1
    worst = products.min()
    totals = np.ones((block, columns))
    ones = np.ones(n_states * n_states)
    # One errstate for the loop (entering one costs more than a step's
    # arithmetic on small batches); zeros only where not exact, as in
    # _normalise.
    with np.errstate(divide="ignore", invalid="ignore"):
        for step, total in zip(blocks[1:], totals[1:], strict=True):
            products = _times(products, transition)
            products *= step[:, None, :]  # P A diag(b(o_t))
            worst = min(worst, products.min())
            # Dividing by the sum of the entries keeps them in (0, 1]; the
            # logs of the divisors add up to the block's log scale.
            np.matmul(products.reshape(columns, -1), ones, out=total)
            products /= total[:, None, None]
        log_scale = np.log(totals).sum(axis=0)
    n_blocks = columns // n_seq
    tail = transition * emitted[:, n_blocks * block :, None, :]  # M_t
    leaves = np.concatenate(
        [products.reshape(n_blocks, n_seq, n_states, n_states).swapaxes(0, 1), tail],
        axis=1,
    )
    scales = np.zeros(leaves.shape[:2])
    scales[:, :n_blocks] = log_scale.reshape(n_blocks, n_seq).T
    return leaves, scales, blocks, bool(worst >= _SAFE)


def log_likelihood(start, transition, emitted, block=None):
    """log P(O | lambda) of N sequences of one length, by the up-sweep alone.

    Parameters
    ----------
    start : ndarray, shape (S,)
        pi.
    transition : ndarray, shape (S, S)
        A.
    emitted : ndarray, shape (N, T, S)
        b_j(o_t) of each sequence.
    block : int, optional
        L, the block length (:func:`_block_leaves`); default the whole
        sequence up to _WHOLE steps, else _BLOCK. L >= T: the forward loop
        across the batch, no tree.

    Returns
    -------
    log_lik : ndarray, shape (N,)
    exact : ndarray of bool, shape (N,)
        False where an entry fell below _SAFE: use the sequential recursion
        for that sequence.
    """
    length = emitted.shape[1]
    block = _block_length(length) if block is None else min(block, length)
    if block == length:  # one block: the forward loop across the batch
        log_lik, _, worst = _forward_across(start, transition, emitted)
        return log_lik, np.full(len(emitted), worst >= _SAFE)
    leaves, leaf_log_scale, _, exact_blocks = _block_leaves(
        start, transition, emitted, block
    )
    levels, log_scale, exact = _up_sweep(leaves, leaf_log_scale)
    # Every row of the root is alpha_T divided by exp(log_scale).
    with np.errstate(divide="ignore"):  # a zero row sum only where not exact
        log_lik = log_scale + np.log(levels[-1][:, 0, 0].sum(axis=-1))
    return log_lik, exact & exact_blocks


def _unit_max(vectors):
    """Divide each vector (last axis) by its largest entry, in place."""
    with np.errstate(divide="ignore", invalid="ignore"):  # as in _normalise
        vectors /= vectors.max(axis=-1, keepdims=True)
    return vectors


def _down_sweeps(levels):
    """Every leaf's before and after vectors, from the up-sweep tree.

    Going down the tree, a node's *before* is the product of all leaves left
    of it applied to e_1 (row vector), its *after* the product of all leaves
    right of it applied to 1 (column vector). A left child's before is its
    parent's, a right child's is the parent's before times the left sibling;
    symmetrically for after. When the leaves are M_1, ..., M_T, alpha_t =
    before_t M_t (alpha_1 = e_1 M_1, M_1 having alpha_1 in every row) and
    beta_t = after_t.

    Returns
    -------
    before : ndarray, shape (N, n, S)
        Up to a positive factor per leaf (largest entry 1); e_1 for leaf 0.
    after : ndarray, shape (N, n, S)
        Up to a positive factor per leaf (largest entry 1).
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
    return before, after, exact


def posteriors(start, transition, emitted, block=None):
    """gamma, the pair-count pieces and log P(O) of N sequences of one length.

    Parameters
    ----------
    start : ndarray, shape (S,)
    transition : ndarray, shape (S, S)
    emitted : ndarray, shape (N, T, S)
        b_j(o_t) of each sequence.
    block : int, optional
        L, as in :func:`log_likelihood`.

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
    n_seq, length, n_states = emitted.shape
    block = _block_length(length) if block is None else min(block, length)
    if block == length:  # one block per sequence: no tree needed
        blocks = _block_layout(emitted, length)
        log_lik, alpha, worst = _forward_across(start, transition, emitted, blocks)
        beta, worst_beta = _backward_across(transition, blocks, np.ones(n_states))
        alpha = _from_block_layout(alpha, n_seq)
        beta = _from_block_layout(beta, n_seq)
        exact = np.full(n_seq, min(worst, worst_beta) >= _SAFE)
        return _gamma(alpha, beta), alpha, emitted[:, 1:] * beta[:, 1:], log_lik, exact
    leaves, leaf_log_scale, blocks, exact_blocks = _block_leaves(
        start, transition, emitted, block
    )
    levels, log_scale, exact = _up_sweep(leaves, leaf_log_scale)
    with np.errstate(divide="ignore"):
        log_lik = log_scale + np.log(levels[-1][:, 0, 0].sum(axis=-1))
    before, after, exact_down = _down_sweeps(levels)
    columns = blocks.shape[1]
    n_blocks = columns // n_seq
    # Inside the blocks, the sequential recursions run across all K N blocks
    # at once, from each block's before (alpha) and after (beta) vectors.
    starts = before[:, :n_blocks].swapaxes(0, 1).reshape(columns, n_states)
    ends = after[:, :n_blocks].swapaxes(0, 1).reshape(columns, n_states)
    _, alpha_blocks, worst = _forward_across(start, transition, emitted, blocks, starts)
    beta_blocks, worst_beta = _backward_across(transition, blocks, ends)
    worst = min(worst, worst_beta)
    # The tail's leaves are single steps: alpha_t = before_t M_t, beta_t = after_t.
    tail = levels[0][:, n_blocks:]
    alpha_tail = (before[:, n_blocks:, None, :] @ tail)[:, :, 0]
    worst = min(worst, alpha_tail.min(initial=np.inf))
    alpha = np.concatenate(
        [_from_block_layout(alpha_blocks, n_seq), _unit_max(alpha_tail)], axis=1
    )
    beta = np.concatenate(
        [_from_block_layout(beta_blocks, n_seq), after[:, n_blocks:]], axis=1
    )
    exact &= exact_down & exact_blocks & (worst >= _SAFE)
    return _gamma(alpha, beta), alpha, emitted[:, 1:] * beta[:, 1:], log_lik, exact


def _gamma(alpha, beta):
    """gamma_t from alpha_t and beta_t known up to positive factors per t.

    sum_i alpha_t(i) beta_t(i) = P(O) for every t, so renormalising each t
    removes the unknown factors exactly.
    """
    gamma = alpha * beta
    with np.errstate(divide="ignore", invalid="ignore"):  # as in _normalise
        gamma /= gamma.sum(axis=-1, keepdims=True)
    return gamma


def _forward_across(start, transition, emitted, blocks=None, starts=None):
    """The scaled forward recursion inside every block, all blocks at once.

    alpha_t = alpha_{t-1} A diag(b(o_t)), each alpha_t divided by its sum c_t
    (Rabiner's scaling), run over the L steps of the K N blocks together.

    Parameters
    ----------
    start : ndarray, shape (S,)
    transition : ndarray, shape (S, S)
    emitted : ndarray, shape (N, T, S)
    blocks : ndarray, shape (L, K N, S), optional
        emitted in :func:`_block_layout`; default one block of T steps.
    starts : ndarray, shape (K N, S), optional
        Each block's before vector (alpha at the step before it, up to a
        factor); each sequence's first block starts from alpha_1 = pi * b(o_1)
        whatever its entry here. Default: every block is a first block.

    Returns
    -------
    log_lik : ndarray, shape (N,)
        sum_t log c_t per sequence: log P(O) when each sequence is one block.
    alpha : ndarray, shape (L, K N, S)
        alpha_t / c_t.
    worst : float
        The smallest entry of any alpha_t before scaling.
    """
    n_seq = emitted.shape[0]
    if blocks is None:
        blocks = _block_layout(emitted, emitted.shape[1])
    ones = np.ones(transition.shape[0])
    alpha = np.empty_like(blocks)
    norms = np.empty(blocks.shape[:2])
    u = blocks[0] * start  # alpha_1 = pi * b(o_1)
    if starts is not None:  # alpha_{kL+1} = before M_{kL+1} for later blocks
        u[n_seq:] = _times(starts[n_seq:], transition) * blocks[0, n_seq:]
    worst = u.min()
    with np.errstate(divide="ignore", invalid="ignore"):  # as in _block_leaves
        for step in range(len(blocks)):
            if step:
                u = _times(alpha[step - 1], transition) * blocks[step]
                worst = min(worst, u.min())
            np.matmul(u, ones, out=norms[step])  # c_t
            np.divide(u, norms[step][:, None], out=alpha[step])
        log_c = np.log(norms)
    log_lik = log_c.sum(axis=0).reshape(-1, n_seq).sum(axis=0)
    return log_lik, alpha, worst


def _backward_across(transition, blocks, ends):
    """beta_t = A diag(b(o_{t+1})) beta_{t+1} inside every block, all at once.

    ``ends`` (K N, S) or (S,) is beta at each block's last step; returns beta
    (L, K N, S), each beta_t divided by its sum, and the smallest entry
    before dividing.
    """
    ones = np.ones(transition.shape[0])
    beta = np.empty_like(blocks)
    beta[-1] = ends
    worst = np.inf
    with np.errstate(divide="ignore", invalid="ignore"):  # as in _block_leaves
        for step in range(len(blocks) - 2, -1, -1):
            v = _times(blocks[step + 1] * beta[step + 1], transition.T)
            worst = min(worst, v.min())
            np.divide(v, (v @ ones)[:, None], out=beta[step])
    return beta, worst


def _pair_normalisers(alpha, transition, after):
    """sum_ij alpha_t(i) a_ij after_t(j), shape (N, T - 1)."""
    return np.einsum("nti,nti->nt", _times(alpha[:, :-1], transition), after)


def pair_posteriors(alpha, transition, after):
    """xi_t(i, j), shape (N, T - 1, S, S), from :func:`posteriors`' pieces."""
    # Dividing the (N, T - 1, S) factor by the normaliser first, then two
    # passes over the (N, T - 1, S, S) result, saves a pass and a temporary.
    # Unlike the other divisions here, the weights are not bounded by 1: a
    # flagged sequence's normaliser may be 0 or subnormal (1e-310 while its
    # alpha's entries are near 1), so they overflow, and inf 0 = NaN in the
    # products; the caller discards that sequence (as in _normalise).
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        weights = alpha[:, :-1] / _pair_normalisers(alpha, transition, after)[..., None]
        xi = np.multiply(weights[..., :, None], after[..., None, :])
        xi *= transition
    return xi


def transition_counts(alpha, transition, after):
    """sum_t xi_t(i, j) over t and the batch, shape (S, S), without forming xi.

    sum_t alpha_t(i) a_ij after_t(j) / z_t = a_ij (F^T G)_ij with
    F_t = alpha_t / z_t and G_t = after_t: one (S, NT) x (NT, S) matmul.
    """
    with np.errstate(divide="ignore", invalid="ignore"):  # as in _normalise
        weights = alpha[:, :-1] / _pair_normalisers(alpha, transition, after)[..., None]
    n_states = transition.shape[0]
    flat = gram(weights.reshape(-1, n_states), after.reshape(-1, n_states))
    return transition * flat


def viterbi(log_start, log_transition, log_emitted, block=None):
    """Most probable paths of N sequences of one length, by a (max, +) scan.

    Max-plus "products" (C_ik = max_j X_ij + Y_jk) are associative as
    matrix products are (+ distributes over max), so the blocks of
    :func:`_block_leaves` work here too: each block's max-plus product comes
    from Viterbi's recursion run from every state at once (across all
    blocks), the pairwise tree over the blocks and the tail gives each leaf's
    first and last states (:func:`_maxplus_tree`), and inside each block the
    recursion from its known previous state, with its argmaxes, is read back
    from its known last state. Ties go to the lowest state at each node and
    step, which may pick a different maximiser than the sequential backtrack.

    Parameters
    ----------
    log_start : ndarray, shape (S,)
    log_transition : ndarray, shape (S, S)
    log_emitted : ndarray, shape (N, T, S)
        log b_j(o_t); -inf allowed.
    block : int, optional
        L, the block length; default the whole sequence up to _WHOLE steps,
        else _BLOCK. L >= T: Viterbi's loop across the batch, no tree.

    Returns
    -------
    paths : ndarray of int, shape (N, T)
    log_probabilities : ndarray, shape (N,)
        -inf for a sequence with probability 0 (its path is then arbitrary).
    """
    n_seq, length, n_states = log_emitted.shape
    block = _block_length(length) if block is None else min(block, length)
    if block == length:
        return _viterbi_across(log_start, log_transition, log_emitted)
    blocks = _block_layout(log_emitted, block)
    columns = blocks.shape[1]
    n_blocks = columns // n_seq
    # Block products, row i: Viterbi's delta over the block from state i
    # before it (each sequence's first block: from pi, in every row).
    products = log_transition + blocks[0][:, None, :]
    products[:n_seq] = (log_start + blocks[0, :n_seq])[:, None, :]
    for step in blocks[1:]:
        products = _maxplus_step(products, log_transition) + step[:, None, :]
    tail = log_transition + log_emitted[:, n_blocks * block :, None, :]
    by_sequence = products.reshape(n_blocks, n_seq, n_states, n_states)
    first, last, log_probabilities = _maxplus_tree(
        np.concatenate([by_sequence.swapaxes(0, 1), tail], axis=1)
    )
    # Inside every block: delta from the state before it, then back from the
    # block's last state along the stored argmaxes.
    delta = log_transition[first[:, :n_blocks].T.reshape(columns)] + blocks[0]
    delta[:n_seq] = log_start + blocks[0, :n_seq]
    psi = np.zeros((block, columns, n_states), dtype=np.intp)
    into = np.ascontiguousarray(log_transition.T)  # row j: log a_ij over i
    for step in range(1, block):
        # (K N, j, i): the max over i reduces contiguous rows, and the value
        # is read at the argmax (half the time of a second reduction).
        candidates = delta[:, None, :] + into
        psi[step] = candidates.argmax(axis=2)
        best = np.take_along_axis(candidates, psi[step][:, :, None], 2)[:, :, 0]
        delta = best + blocks[step]
    inside = np.empty((block, columns), dtype=np.intp)
    inside[-1] = last[:, :n_blocks].T.reshape(columns)
    every = np.arange(columns)
    for step in range(block - 1, 0, -1):
        inside[step - 1] = psi[step, every, inside[step]]
    body = _from_block_layout(inside[:, :, None], n_seq)[:, :, 0]
    return np.concatenate([body, last[:, n_blocks:]], axis=1), log_probabilities


def _maxplus_step(products, log_transition):
    """C_ik = max_j P_ij + log a_jk for a batch of P (B, S, S): one max per j."""
    out = products[:, :, :1] + log_transition[0]
    for j in range(1, log_transition.shape[0]):
        np.maximum(out, products[:, :, j : j + 1] + log_transition[j], out=out)
    return out


def _maxplus_tree(level):
    """The (max, +) tree over leaves (N, n, S, S), read back down.

    Each product stores its maximising middle state j for every (i, k);
    going down, a node whose first and last states are (i, k) gives its left
    child (i, j) and its right child (j, k).

    Returns
    -------
    first, last : ndarray of int, shape (N, n)
        Each leaf's state before it (its row) and at its end (its column) on
        the best path through the whole product (first[:, 0] is 0: the first
        leaf's rows are all equal).
    log_probabilities : ndarray, shape (N,)
        The root's largest entry: max over paths of the log-probability.
    """
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
    return first, last, log_probabilities


def _viterbi_across(log_start, log_transition, log_emitted):
    """Viterbi's sequential recursion run across the batch, step by step.

    For sequences of at most _WHOLE steps, where T numpy calls on (N, S, S)
    arrays cost less than the tree: delta_t(j) = max_i [delta_{t-1}(i) +
    log a_ij] + log b_j(o_t), psi_t(j) its lowest maximising i (the
    sequential loop's tie rule), then the backtrack. Arguments and returns
    as :func:`viterbi`.
    """
    n_seq, length, n_states = log_emitted.shape
    delta = log_start + log_emitted[:, 0]
    psi = np.zeros((length, n_seq, n_states), dtype=np.intp)
    into = np.ascontiguousarray(log_transition.T)  # row j: log a_ij over i
    for t in range(1, length):
        candidates = delta[:, None, :] + into  # (N, j, i), as in viterbi
        psi[t] = candidates.argmax(axis=2)
        best = np.take_along_axis(candidates, psi[t][:, :, None], 2)[:, :, 0]
        delta = best + log_emitted[:, t]
    rows = np.arange(n_seq)
    paths = np.empty((n_seq, length), dtype=np.intp)
    paths[:, -1] = delta.argmax(axis=-1)
    for t in range(length - 1, 0, -1):
        paths[:, t - 1] = psi[t, rows, paths[:, t]]
    return paths, delta[rows, paths[:, -1]]
