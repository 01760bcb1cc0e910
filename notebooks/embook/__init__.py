"""embook: the helpers the book's notebooks share, defined once.

As the d2l book collects the functions its chapters define into its own
library, every helper that more than one notebook needs lives here, tested in
``tests/test_embook.py``, and the notebooks import it. ``emlib`` stays the
numpy-only library under test; this package holds the book's plumbing.

It sits beside the notebooks, not in emlib's wheel: a notebook's kernel runs
in ``notebooks/``, so ``import embook`` finds it there (in JupyterLab, under
nbval and nbconvert, with no install), and the tests find it through
pytest's ``pythonpath`` (pyproject.toml).


- :mod:`embook.sym`: SymPy utilities (lambdify with 1-based indices, the
  canonical forms used to compare sums); imports SymPy.
- :mod:`embook.params`: a GMM as a flat parameter vector and back, and the
  (alpha, mu, sigma) triple the lambdified formulas take; numpy only.
- :mod:`embook.data`: the data sets shipped in ``data/``.
- :mod:`embook.em_runs`: one EM step as a map, its Jacobian by central
  differences, and a check that a run's iteration count does not hinge on
  rounding; numpy only.
- :mod:`embook.mixture_plots`: the mixture density as numbers and drawn over
  a histogram; numpy and matplotlib.
- :mod:`embook.mixture_reference`: the 1-D mixture's log-likelihood,
  responsibilities and information matrices (numerical Hessians) computed
  without emlib, the reference the notebooks check emlib against; numpy only.
"""
