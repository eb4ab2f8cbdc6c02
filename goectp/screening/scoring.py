r"""Ensemble statistics of predicted dielectric tensors, and the acquisition scores used for ranking.

For member predictions :math:`\varepsilon^{(m)} \in \mathbb{R}^{3\times 3}`, :math:`m = 1..M`, of one structure:

.. math::

    \bar{\varepsilon}_{ij} = \frac{1}{M}\sum_m \varepsilon^{(m)}_{ij}, \qquad
    \sigma_{ij} = \Big(\frac{1}{M}\sum_m (\varepsilon^{(m)}_{ij} - \bar{\varepsilon}_{ij})^2\Big)^{1/2}

(population std, ``ddof=0``, as :func:`goectp.predict` uses), with eigenvalues
:math:`\lambda_1 \le \lambda_2 \le \lambda_3` of the symmetrised mean tensor, and

.. math::

    \bar\epsilon = \tfrac13 (\lambda_1 + \lambda_2 + \lambda_3) = \tfrac13 \operatorname{tr} \bar{\varepsilon},
    \qquad \alpha = \lambda_3 / \lambda_1 \quad (\alpha = \infty \text{ and flagged if } \lambda_1 \le 0).

Uncertainties are the spreads over members of the member-wise quantities: ``eps_mean_std`` = std over ``m`` of
:math:`\tfrac13\operatorname{tr}\varepsilon^{(m)}`, ``anisotropy_std`` = std over ``m`` of
:math:`\lambda^{(m)}_3/\lambda^{(m)}_1` (infinite when a member's smallest eigenvalue is :math:`\le 0`).
Acquisition scores (upper confidence bounds): ``score = eps_mean + κ·eps_mean_std`` and
``score_aniso = anisotropy + κ·anisotropy_std``.
"""

from __future__ import annotations

import numpy as np

from goectp.tensor_stats import anisotropy_ratio, symmetrize
from goectp.tensor_stats import ensemble_statistics as _ensemble_statistics

__all__ = [
    "COMPONENT_NAMES",
    "VOIGT_PAIRS",
    "acquisition_score",
    "anisotropy_ratio",
    "ensemble_statistics",
    "symmetrize",
    "tensor_components",
    "tensors_from_components",
]

#: The six independent components of a symmetric tensor, in the reference CSVs' order (11, 12, 13, 22, 23, 33).
VOIGT_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
COMPONENT_NAMES = tuple(f"{i + 1}{j + 1}" for i, j in VOIGT_PAIRS)


def ensemble_statistics(members: np.ndarray, calibration=None) -> dict[str, np.ndarray]:
    """Statistics of member predictions ``[M, n, 3, 3]``: see :func:`goectp.tensor_stats.ensemble_statistics`
    (the one implementation; ``calibration`` gives calibrated ``*_std``)."""
    return _ensemble_statistics(members, calibration=calibration)


def acquisition_score(mean: np.ndarray, std: np.ndarray, kappa: float) -> np.ndarray:
    """Upper confidence bound ``mean + κ·std`` (κ = 0: pure exploitation; infinite std gives an infinite score)."""
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    if kappa == 0:
        return mean.copy()
    with np.errstate(invalid="ignore"):
        return mean + kappa * std


def tensor_components(tensors: np.ndarray) -> np.ndarray:
    """``[n, 3, 3]`` → the six independent components ``[n, 6]`` in the order of :data:`COMPONENT_NAMES`."""
    return np.stack([tensors[..., i, j] for i, j in VOIGT_PAIRS], axis=-1)


def tensors_from_components(components: np.ndarray) -> np.ndarray:
    """Inverse of :func:`tensor_components`: ``[n, 6]`` → symmetric ``[n, 3, 3]``."""
    components = np.asarray(components, dtype=float)
    out = np.zeros(components.shape[:-1] + (3, 3))
    for k, (i, j) in enumerate(VOIGT_PAIRS):
        out[..., i, j] = out[..., j, i] = components[..., k]
    return out
