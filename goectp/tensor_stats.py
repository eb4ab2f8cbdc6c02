r"""Tensor statistics in one place: ε̄, eigenvalues, anisotropy α and their ensemble spread σ.

Used by evaluation (:mod:`goectp.evaluation.metrics`), screening (:mod:`goectp.screening.scoring`), the public API
(:func:`goectp.predict_summary`) and the explorer. Conventions (the only ones in the project):

- tensors are symmetrised, ``(X + Xᵀ)/2``, before any eigen-decomposition; eigenvalues ascending
  :math:`\lambda_1 \le \lambda_2 \le \lambda_3`;
- :math:`\bar\epsilon = \tfrac13 \operatorname{tr}\varepsilon` (the mean eigenvalue);
- :math:`\alpha = \lambda_3/\lambda_1`; **when** :math:`\lambda_1 \le 0` **the ratio is meaningless**: α is
  ``inf`` and the boolean flag ``nonpositive`` is set (never NaN, never a finite number);
- refractive indices ``n = √λ`` of ε∞ (:func:`refractive_indices`, also the explorer's): an eigenvalue
  ``λ < 0`` (no real index) gives ``n = 0``, never NaN, so that every output stays finite (``--json``);
- ensemble spreads are population standard deviations over the members (``ddof=0``, as :func:`goectp.predict`
  returns) of the member-wise quantities: σ(ε̄) = std over m of ε̄⁽ᵐ⁾, σ(λᵢ) = std over m of λᵢ⁽ᵐ⁾,
  σ(α) = std over m of α⁽ᵐ⁾ **over all members** — if any member has λ₁⁽ᵐ⁾ ≤ 0, σ(α) is ``inf`` (no
  positive-only subset);
- calibrated σ (see :mod:`goectp.uncertainty`) rescales these raw spreads; the predictions never change.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "anisotropy",
    "anisotropy_ratio",
    "eigenvalues",
    "ensemble_statistics",
    "mean_eigenvalue",
    "refractive_indices",
    "summary_records",
    "symmetrize",
]


def symmetrize(tensors: np.ndarray) -> np.ndarray:
    """``(X + Xᵀ) / 2`` over the last two axes (float64)."""
    t = np.asarray(tensors, dtype=np.float64)
    return 0.5 * (t + np.swapaxes(t, -1, -2))


def eigenvalues(tensors: np.ndarray) -> np.ndarray:
    """Ascending eigenvalues of the symmetrised tensors ``[..., 3, 3]`` → ``[..., 3]``."""
    return np.linalg.eigvalsh(symmetrize(tensors))


def refractive_indices(tensors: np.ndarray) -> np.ndarray:
    """Principal refractive indices n = √λ of ε∞ tensors ``[..., 3, 3]`` → ``[..., 3]``, ascending (λ < 0 → 0)."""
    return np.sqrt(np.clip(eigenvalues(tensors), 0.0, None))


def mean_eigenvalue(tensors: np.ndarray) -> np.ndarray:
    """ε̄ = tr(ε)/3 = mean eigenvalue, ``[..., 3, 3]`` → ``[...]``."""
    return np.trace(np.asarray(tensors, dtype=np.float64), axis1=-2, axis2=-1) / 3.0


def anisotropy_ratio(eigvals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``λmax / λmin`` of ascending eigenvalues ``[..., 3]``.

    Returns ``(ratio, nonpositive)``: ratio is ``inf`` where ``λmin <= 0``, flagged in ``nonpositive``.
    """
    eigvals = np.asarray(eigvals, dtype=np.float64)
    lam_min, lam_max = eigvals[..., 0], eigvals[..., -1]
    nonpositive = lam_min <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(nonpositive, np.inf, lam_max / np.where(nonpositive, 1.0, lam_min))
    return ratio, nonpositive


def anisotropy(tensors: np.ndarray) -> np.ndarray:
    """α = λmax/λmin of tensors ``[..., 3, 3]`` (``inf`` where λmin <= 0)."""
    return anisotropy_ratio(eigenvalues(tensors))[0]


def ensemble_statistics(members: np.ndarray, calibration: Any = None) -> dict[str, np.ndarray]:
    """Statistics of member predictions ``[M, n, 3, 3]`` (a single model ``[n, 3, 3]`` reads as ``M = 1``).

    Returns arrays keyed by name: ``mean`` ``[n,3,3]``, ``std`` ``[n,3,3]``, ``eigenvalues`` ``[n,3]`` (of the
    symmetrised mean), ``eigenvalues_std`` ``[n,3]``, ``eps_mean`` ``[n]``, ``eps_mean_std`` ``[n]``,
    ``anisotropy`` ``[n]``, ``anisotropy_std`` ``[n]``, ``nonpositive`` ``[n]`` (mean tensor has λmin <= 0),
    ``members_nonpositive`` ``[n]`` (members with λmin <= 0), ``n_members`` ``[n]``.

    With ``calibration`` (a :class:`goectp.uncertainty.Calibration`), every ``*_std`` is the calibrated σ and the
    raw member spreads are kept as ``*_std_raw``.
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
    eig = np.linalg.eigvalsh(mean)
    alpha, nonpositive = anisotropy_ratio(eig)
    member_eig = np.linalg.eigvalsh(members)  # [M, n, 3]
    member_alpha, member_nonpos = anisotropy_ratio(member_eig)
    any_nonpos = member_nonpos.any(axis=0)
    with np.errstate(invalid="ignore"):
        alpha_std = np.where(any_nonpos, np.inf, np.where(member_nonpos, 0.0, member_alpha).std(axis=0))
    out = {
        "mean": mean,
        "std": members.std(axis=0),
        "eigenvalues": eig,
        "eigenvalues_std": member_eig.std(axis=0),
        "eps_mean": np.trace(mean, axis1=-2, axis2=-1) / 3.0,
        "eps_mean_std": mean_eigenvalue(members).std(axis=0),
        "anisotropy": alpha,
        "anisotropy_std": alpha_std,
        "nonpositive": nonpositive,
        "members_nonpositive": member_nonpos.sum(axis=0),
        "n_members": np.full(mean.shape[0], members.shape[0]),
    }
    if calibration is not None:
        out = calibration.apply(out)
    return out


def summary_records(stats: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Per-structure dicts from :func:`ensemble_statistics`: ε̄ ± σ, α ± σ, eigenvalues ± σ, tensor ± σ (lists)."""
    out = []
    for i in range(len(stats["eps_mean"])):
        rec: dict[str, Any] = {
            "eps_mean": float(stats["eps_mean"][i]),
            "eps_mean_std": float(stats["eps_mean_std"][i]),
            "anisotropy": float(stats["anisotropy"][i]),
            "anisotropy_std": float(stats["anisotropy_std"][i]),
            "nonpositive": bool(stats["nonpositive"][i]),
            "eigenvalues": stats["eigenvalues"][i].tolist(),
            "eigenvalues_std": stats["eigenvalues_std"][i].tolist(),
            "tensor": stats["mean"][i].tolist(),
            "tensor_std": stats["std"][i].tolist(),
            "calibrated": bool(stats.get("calibrated", False)),
        }
        for key in ("eps_mean_std_raw", "anisotropy_std_raw"):
            if key in stats:
                rec[key] = float(stats[key][i])
        out.append(rec)
    return out
