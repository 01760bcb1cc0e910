"""SymPy helpers shared by the derivation notebooks.

The notebooks write formulas with 1-based indices, y[j] for j = 1..N and
alpha[k] for k = 1..K, as the textbook does; numpy arrays are 0-based.
:func:`to_numpy` bridges the two, and :func:`canon` / :func:`split_sums` put
expressions with sums into a form where equal formulas compare equal.
"""

import sympy as sp


def to_numpy(expr, *args):
    """lambdify ``expr`` so that 1-based ``Indexed`` terms read 0-based arrays.

    Every ``base[i, ...]`` in ``expr`` becomes ``base[i - 1, ...]`` before
    lambdify, so a formula written with y[j], j = 1..N, evaluates on a numpy
    array ``y`` of shape (N,).

    Parameters
    ----------
    expr : sympy.Expr
        The formula, with ``IndexedBase`` terms indexed from 1.
    *args : sympy.Symbol or sympy.IndexedBase
        The arguments of the returned function, in order. Pass the
        ``IndexedBase`` itself (``y``, ``alpha``), not an element.

    Returns
    -------
    callable
        A numpy function of ``args``.

    Examples
    --------
    >>> import numpy as np
    >>> j, N = sp.symbols("j N", integer=True, positive=True)
    >>> y = sp.IndexedBase("y")
    >>> total = to_numpy(sp.Sum(y[j] ** 2, (j, 1, N)), y, N)
    >>> float(total(np.array([1.0, 2.0, 3.0]), 3))
    14.0
    """
    shifted = expr.replace(
        lambda e: isinstance(e, sp.Indexed),
        lambda e: e.base[tuple(i - 1 for i in e.indices)],
    )
    return sp.lambdify(args, shifted, modules="numpy")


def canon(expr):
    """Logs expanded, sums split term by term, index-free factors pulled out.

    Two formulas that differ only by how their logs and sums are grouped have
    the same ``canon``, so ``sp.expand(canon(a) - canon(b)) == 0`` proves
    them equal. ``expand_log`` runs with ``force=True``: the caller asserts
    that the arguments of the logs are positive (probabilities, densities).
    """
    return sp.factor_terms(sp.expand(sp.expand_log(expr, force=True)))


def split_sums(expr):
    """Split every ``Sum`` into one ``Sum`` per additive term, constants outside.

    ``expr`` is expanded (its logs too, with the positivity that the symbols'
    assumptions give), then each ``Sum(a + b + ...)`` becomes
    ``Sum(a) + Sum(b) + ...`` with factors free of the summation index pulled
    out by ``factor_terms``.
    """

    def split(s):
        terms = sp.Add.make_args(sp.expand(s.function))
        return sp.Add(*[sp.factor_terms(sp.Sum(term, *s.limits)) for term in terms])

    expr = sp.expand(sp.expand_log(sp.expand(expr)))
    return sp.expand(expr.replace(lambda e: isinstance(e, sp.Sum), split))
