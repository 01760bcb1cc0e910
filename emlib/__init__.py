"""emlib: expectation-maximisation for Gaussian mixtures, in numpy.

The numeric side of the suite: every formula here is derived with SymPy in
the notebooks, which check it against this library on data.
"""

from emlib import multivariate, three_coins
from emlib.bound import elbo, entropy, kl_divergence, q_function
from emlib.fit import EMResult, em, initial_theta
from emlib.gmm import GMM
from emlib.model import e_step, log_likelihood, m_step

__all__ = [
    "GMM",
    "EMResult",
    "e_step",
    "elbo",
    "em",
    "entropy",
    "initial_theta",
    "kl_divergence",
    "log_likelihood",
    "m_step",
    "multivariate",
    "q_function",
    "three_coins",
]
