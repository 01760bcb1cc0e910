"""emlib: expectation-maximisation for Gaussian mixtures, in numpy.

Other models have modules of their own: D-dimensional mixtures with
scikit-learn's covariance types (``emlib.multivariate``) and the choice of
their number and covariance type by BIC, AIC or ICL (``emlib.selection``),
online EM over mini-batches (``emlib.online_em``),
the three-coin model (``emlib.three_coins``), hidden Markov models with
categorical or Gaussian emissions (``emlib.hmm``), probabilistic PCA and
its linear VAE (``emlib.ppca``, ``emlib.linear_vae``), diffusion on a
Gaussian-mixture data distribution (``emlib.diffusion``), and the learned
models measured against those exact answers: a small numpy MLP
(``emlib.neural``) and a nonlinear VAE (``emlib.vae``).

The numeric side of the suite: every formula here is derived with SymPy in
the notebooks, which check it against this library on data.
"""

from emlib import (
    diffusion,
    hmm,
    linear_vae,
    multivariate,
    neural,
    ppca,
    selection,
    three_coins,
    vae,
)
from emlib._checks import RecomputeWarning
from emlib._core import ConvergenceWarning, EMResult, aitken_limit
from emlib.bound import elbo, entropy, kl_divergence, q_function
from emlib.fit import em, initial_theta
from emlib.gaussian import gaussian_kl
from emlib.gmm import GMM
from emlib.information import observed_information
from emlib.model import e_step, log_likelihood, m_step
from emlib.online import online_em
from emlib.variants import (
    IncrementalEM,
    conditional_m_step,
    incremental_em_start,
    incremental_em_step,
)

__all__ = [
    "GMM",
    "ConvergenceWarning",
    "EMResult",
    "IncrementalEM",
    "RecomputeWarning",
    "aitken_limit",
    "conditional_m_step",
    "diffusion",
    "e_step",
    "elbo",
    "em",
    "entropy",
    "gaussian_kl",
    "hmm",
    "incremental_em_start",
    "incremental_em_step",
    "initial_theta",
    "kl_divergence",
    "linear_vae",
    "log_likelihood",
    "m_step",
    "multivariate",
    "neural",
    "observed_information",
    "online_em",
    "ppca",
    "q_function",
    "selection",
    "three_coins",
    "vae",
]
