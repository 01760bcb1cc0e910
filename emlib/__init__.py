"""emlib: expectation-maximisation for Gaussian mixtures, in numpy.

Other models have modules of their own: D-dimensional mixtures with
scikit-learn's covariance types (``emlib.multivariate``), the three-coin model
(``emlib.three_coins``) and categorical hidden Markov models (``emlib.hmm``).

The numeric side of the suite: every formula here is derived with SymPy in
the notebooks, which check it against this library on data.
"""

from emlib import hmm, multivariate, three_coins
from emlib.bound import elbo, entropy, kl_divergence, q_function
from emlib.fit import EMResult, em, initial_theta
from emlib.gmm import GMM
from emlib.information import observed_information
from emlib.model import e_step, log_likelihood, m_step
from emlib.variants import (
    IncrementalEM,
    conditional_m_step,
    incremental_em_start,
    incremental_em_step,
)

__all__ = [
    "GMM",
    "EMResult",
    "IncrementalEM",
    "conditional_m_step",
    "e_step",
    "elbo",
    "em",
    "entropy",
    "hmm",
    "incremental_em_start",
    "incremental_em_step",
    "initial_theta",
    "kl_divergence",
    "log_likelihood",
    "m_step",
    "multivariate",
    "observed_information",
    "q_function",
    "three_coins",
]
