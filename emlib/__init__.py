"""emlib: expectation-maximisation for 1-D Gaussian mixtures, in numpy.

The numeric side of the suite: every formula here is derived with SymPy in
the notebooks, which check it against this library on data.
"""

from emlib import diffusion, ppca, three_coins
from emlib.bound import elbo, entropy, kl_divergence, q_function
from emlib.fit import EMResult, em, initial_theta
from emlib.gaussian import gaussian_kl
from emlib.gmm import GMM
from emlib.model import e_step, log_likelihood, m_step

__all__ = [
    "GMM",
    "EMResult",
    "diffusion",
    "e_step",
    "elbo",
    "em",
    "entropy",
    "gaussian_kl",
    "initial_theta",
    "kl_divergence",
    "log_likelihood",
    "m_step",
    "ppca",
    "q_function",
    "three_coins",
]
