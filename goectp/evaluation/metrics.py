"""Error metrics for predicted 3x3 tensors.

- MAE: mean over structures of the mean |Δ| over the 9 components (the paper's metric).
- Frobenius: mean over structures of ‖Δ‖_F.
- EwT(t): fraction of structures with ‖Δ‖_F / ‖ε‖_F < t (energy-within-threshold style, t = 25/10/5 %).
- ε̄ (mean eigenvalue) and eigenvalue MAEs (both rotation invariant).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from goectp.data.splits import CRYSTAL_SYSTEMS
from goectp.tensor_stats import anisotropy, eigenvalues, mean_eigenvalue

EWT_THRESHOLDS = (0.25, 0.10, 0.05)


# ε̄, eigenvalues and α (inf when λmin <= 0) come from the one tensor-statistics module.
__all__ = [
    "EWT_THRESHOLDS",
    "anisotropy",
    "eigenvalues",
    "mean_eigenvalue",
    "per_system_mae",
    "summarize_splits",
    "tensor_metrics",
]


def tensor_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """All metrics for ``[n, 3, 3]`` predictions and targets."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape or pred.shape[-2:] != (3, 3):
        raise ValueError(f"pred and true must both be [n, 3, 3], got {pred.shape} and {true.shape}")
    if not (np.all(np.isfinite(pred)) and np.all(np.isfinite(true))):
        raise ValueError("pred or true contains NaN or infinite values")
    diff = pred - true
    frob = np.linalg.norm(diff, axis=(-2, -1))
    rel = frob / np.maximum(np.linalg.norm(true, axis=(-2, -1)), 1e-12)
    out = {
        "n": int(len(pred)),
        "mae": float(np.abs(diff).mean()),
        "frobenius": float(frob.mean()),
        "mae_eps_mean": float(np.abs(mean_eigenvalue(pred) - mean_eigenvalue(true)).mean()),
        "mae_eigenvalues": float(np.abs(eigenvalues(pred) - eigenvalues(true)).mean()),
    }
    for t in EWT_THRESHOLDS:
        out[f"ewt_{int(t * 100)}"] = float((rel < t).mean())
    return out


def per_system_mae(pred: np.ndarray, true: np.ndarray, systems: list[str]) -> dict[str, float]:
    """MAE per crystal system (the paper's Table 2 columns), plus 'all'."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(systems):
        groups[s].append(i)
    err = np.abs(np.asarray(pred) - np.asarray(true)).mean(axis=(-1, -2))
    out = {s: float(err[groups[s]].mean()) for s in CRYSTAL_SYSTEMS if groups.get(s)}
    out["all"] = float(err.mean())
    return out


def summarize_splits(per_split: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and std over splits of each metric present in every split."""
    keys = set.intersection(*(set(d) for d in per_split))
    return {k: (float(np.mean([d[k] for d in per_split])), float(np.std([d[k] for d in per_split]))) for k in keys}
