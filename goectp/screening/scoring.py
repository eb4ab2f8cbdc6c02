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

#: The six independent components of a symmetric tensor, in the reference CSVs' order (11, 12, 13, 22, 23, 33).
VOIGT_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
COMPONENT_NAMES = tuple(f"{i + 1}{j + 1}" for i, j in VOIGT_PAIRS)


def symmetrize(tensors: np.ndarray) -> np.ndarray:
    """``(X + Xᵀ) / 2`` over the last two axes."""
    return 0.5 * (tensors + np.swapaxes(tensors, -1, -2))


def anisotropy_ratio(eigenvalues: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``λmax / λmin`` of ascending eigenvalues ``[..., 3]``.

    Returns ``(ratio, nonpositive)``; ratio is ``inf`` where ``λmin <= 0`` (flagged in ``nonpositive``).
    """
    lam_min, lam_max = eigenvalues[..., 0], eigenvalues[..., -1]
    nonpositive = lam_min <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(nonpositive, np.inf, lam_max / np.where(nonpositive, 1.0, lam_min))
    return ratio, nonpositive


def ensemble_statistics(members: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of member predictions ``[M, n, 3, 3]`` (a single model: ``[n, 3, 3]``, read as ``M = 1``).

    Returns arrays keyed by name: ``mean`` ``[n,3,3]``, ``std`` ``[n,3,3]``, ``eigenvalues`` ``[n,3]`` (ascending,
    of the symmetrised mean), ``eps_mean`` ``[n]``, ``eps_mean_std`` ``[n]``, ``anisotropy`` ``[n]``,
    ``anisotropy_std`` ``[n]``, ``nonpositive`` ``[n]`` (mean tensor has λmin <= 0),
    ``members_nonpositive`` ``[n]`` (number of members with λmin <= 0), ``n_members`` ``[n]``.
    """
    members = np.asarray(members, dtype=np.float64)
    if members.ndim == 3:
        members = members[None]
    if members.ndim != 4 or members.shape[-2:] != (3, 3):
        raise ValueError(f"expected member predictions of shape [M, n, 3, 3], got {members.shape}")
    if not np.all(np.isfinite(members)):
        raise ValueError("member predictions contain NaN or infinite values")
    members = symmetrize(members)
    mean = members.mean(axis=0)
    std = members.std(axis=0)
    eig = np.linalg.eigvalsh(mean)
    alpha, nonpositive = anisotropy_ratio(eig)
    member_eig = np.linalg.eigvalsh(members)  # [M, n, 3]
    member_alpha, member_nonpos = anisotropy_ratio(member_eig)
    member_eps = np.trace(members, axis1=-2, axis2=-1) / 3.0  # [M, n]
    any_nonpos = member_nonpos.any(axis=0)
    with np.errstate(invalid="ignore"):
        alpha_std = np.where(any_nonpos, np.inf, np.where(any_nonpos, 0.0, member_alpha).std(axis=0))
    return {
        "mean": mean,
        "std": std,
        "eigenvalues": eig,
        "eps_mean": np.trace(mean, axis1=-2, axis2=-1) / 3.0,
        "eps_mean_std": member_eps.std(axis=0),
        "anisotropy": alpha,
        "anisotropy_std": alpha_std,
        "nonpositive": nonpositive,
        "members_nonpositive": member_nonpos.sum(axis=0),
        "n_members": np.full(mean.shape[0], members.shape[0]),
    }


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
