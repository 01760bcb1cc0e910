"""theta = (alpha_k, mu_k, sigma_k^2): a 1-D Gaussian mixture's parameters."""

from dataclasses import dataclass

import numpy as np

from emlib._checks import SUM_TOL, Parameters, as_real_array, read_only


def _read_only(name, values):
    arr = as_real_array(values, name)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D (one entry per component), got shape {arr.shape}."
        )
    return read_only(arr)


@dataclass(frozen=True, eq=False)
class GMM(Parameters):
    """Parameters theta of a K-component 1-D Gaussian mixture.

    The density is P(y | theta) = sum_k alpha_k phi(y | mu_k, sigma_k^2).
    Instances are immutable: the arrays are read-only copies of the inputs.

    Parameters
    ----------
    weights : array_like, shape (K,)
        Mixing weights alpha_k >= 0, summing to 1 (within 1e-9).
    means : array_like, shape (K,)
        Component means mu_k.
    variances : array_like, shape (K,)
        Component variances sigma_k^2 > 0.

    Raises
    ------
    TypeError
        If an argument is not real numbers.
    ValueError
        If shapes differ, K < 1, a value is not finite, the weights are off
        the simplex, or a variance is not positive.
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    def __post_init__(self) -> None:
        weights = _read_only("weights", self.weights)
        means = _read_only("means", self.means)
        variances = _read_only("variances", self.variances)
        if not weights.size == means.size == variances.size:
            raise ValueError(
                "weights, means and variances must have one entry per component; "
                f"got lengths {weights.size}, {means.size}, {variances.size}."
            )
        if weights.size < 1:
            raise ValueError("a mixture needs K >= 1 components; got K = 0.")
        if np.any(weights < 0) or abs(weights.sum() - 1.0) > SUM_TOL:
            raise ValueError(
                "weights must be >= 0 and sum to 1 (they are the probabilities "
                f"alpha_k); got sum {weights.sum():.12g}, min {weights.min():.3g}."
            )
        if np.any(variances <= 0):
            k = int(np.argmin(variances))
            raise ValueError(
                f"variances must be > 0; component {k} has variance {variances[k]:.3g}."
            )
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "variances", variances)

    @property
    def n_components(self) -> int:
        """Number of components K."""
        return self.weights.size

    def __repr__(self) -> str:
        def fmt(a):
            return "[" + ", ".join(f"{v:.6g}" for v in a) + "]"

        return (
            f"GMM(weights={fmt(self.weights)}, means={fmt(self.means)}, "
            f"variances={fmt(self.variances)})"
        )
