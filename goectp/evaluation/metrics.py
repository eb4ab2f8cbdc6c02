"""Error metrics for predicted 3x3 tensors.

- MAE: mean over structures of the mean |Δ| over the 9 components (the paper's metric).
- Frobenius: mean over structures of ‖Δ‖_F.
- EwT(t): fraction of structures with ‖Δ‖_F / ‖ε‖_F < t (energy-within-threshold style, t = 25/10/5 %).
- ε̄ (mean eigenvalue) and eigenvalue MAEs (both rotation invariant).

The headline metrics of the shipped ensembles (:func:`headline_metrics`, used by
``benchmarks/accuracy/evaluate_ensemble.py`` and the model cards): component MAE (all records; records with every
|component| < 100), MAE per true-ε̄ bin (:data:`EPS_BINS`), ε̄ Spearman, the recall of the true top-5 % ε̄ among the
predicted top-5 %, and the MAE per crystal system. :func:`mean_spearman`, :func:`rank_error_share` and
:func:`split_scores` are their per-split forms.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import rankdata, spearmanr

from goectp.data.splits import CRYSTAL_SYSTEMS, random_split
from goectp.tensor_stats import anisotropy, eigenvalues, mean_eigenvalue, refractive_indices

if TYPE_CHECKING:
    from goectp.data.dataset import GraphSet

EWT_THRESHOLDS = (0.25, 0.10, 0.05)
#: true-ε̄ bins of the headline table: < 10, 10-30, 30-100, ≥ 100
EPS_BINS = ((0, 10), (10, 30), (30, 100), (100, np.inf))
#: "filtered" results leave out records with any |component| >= this (the DTNet/GoeCTP filter)
OUTLIER_ABS = 100.0


# ε̄, eigenvalues and α (inf when λmin <= 0) come from the one tensor-statistics module.
__all__ = [
    "EPS_BINS",
    "EWT_THRESHOLDS",
    "OUTLIER_ABS",
    "all_and_filtered_metrics",
    "anisotropy",
    "eigenvalues",
    "headline_metrics",
    "inlier_mask",
    "mean_eigenvalue",
    "mean_spearman",
    "mean_tensor_baseline",
    "per_system_mae",
    "rank_error_share",
    "split_scores",
    "summarize_splits",
    "tensor_metrics",
]


def tensor_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """The metrics of the module docstring for ``[n, 3, 3]`` predictions and targets: ``n``, ``mae``,
    ``frobenius``, ``mae_eps_mean``, ``mae_eigenvalues`` and ``ewt_25``/``ewt_10``/``ewt_5`` (fractions)."""
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


def inlier_mask(true: np.ndarray) -> np.ndarray:
    """``[n]`` bool: the records of ``true`` ``[n, 3, 3]`` with every |component| < :data:`OUTLIER_ABS`."""
    return np.abs(true).max(axis=(1, 2)) < OUTLIER_ABS


def all_and_filtered_metrics(pred: np.ndarray, true: np.ndarray, systems: list[str]) -> dict[str, dict]:
    """:func:`tensor_metrics` plus ``"per_system"`` (:func:`per_system_mae`) on all records (``"all"``) and on
    those of :func:`inlier_mask` (``"filtered"``); ``systems`` is the crystal system of each record."""
    keep = inlier_mask(true)
    return {
        "all": {**tensor_metrics(pred, true), "per_system": per_system_mae(pred, true, systems)},
        "filtered": {
            **tensor_metrics(pred[keep], true[keep]),
            "per_system": per_system_mae(pred[keep], true[keep], [s for s, k in zip(systems, keep) if k]),
        },
    }


def summarize_splits(per_split: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and std over splits of each metric present in every split."""
    keys = set.intersection(*(set(d) for d in per_split))
    return {k: (float(np.mean([d[k] for d in per_split])), float(np.std([d[k] for d in per_split]))) for k in keys}


def headline_metrics(pred: np.ndarray, true: np.ndarray, systems: np.ndarray | None = None) -> dict:
    """Component MAE, per-ε̄-bin and per-system MAE, ε̄ Spearman and top-5 % recall of ``pred`` vs ``true``.

    ``pred`` and ``true`` are ``[n, 3, 3]``; ``systems`` (optional) the crystal system of each record. Keys: ``n``,
    ``mae``, ``mae_filtered`` (records with every |component| < 100), ``spearman_eps_mean``, ``top5_recall`` (the
    share of the true top-5 % ε̄ found in the predicted top-5 %), ``n_mae`` (mean |Δn| of the sorted principal
    refractive indices n = √λ, meaningful for ε∞ models), and per bin ``lo-hi`` of :data:`EPS_BINS`:
    ``bin lo-hi`` (MAE), ``n bin lo-hi`` (records) and ``eps ratio lo-hi`` (median predicted/true ε̄); per crystal
    system its MAE (NaN when absent).
    """
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    err = np.abs(pred - true).mean(axis=(1, 2))
    eps_true, eps_pred = mean_eigenvalue(true), mean_eigenvalue(pred)
    keep = inlier_mask(true)
    top = max(1, round(0.05 * len(true)))
    true_top, pred_top = set(np.argsort(-eps_true)[:top]), set(np.argsort(-eps_pred)[:top])
    out = {
        "n": len(true),
        "mae": float(err.mean()),
        "mae_filtered": float(err[keep].mean()),
        "spearman_eps_mean": float(spearmanr(eps_pred, eps_true).statistic),
        "top5_recall": len(true_top & pred_top) / top,
        "n_mae": float(np.abs(refractive_indices(pred) - refractive_indices(true)).mean()),
    }
    for lo, hi in EPS_BINS:
        sel = (eps_true >= lo) & (eps_true < hi)
        out[f"bin {lo}-{hi}"] = float(err[sel].mean()) if sel.any() else float("nan")
        out[f"n bin {lo}-{hi}"] = int(sel.sum())
        out[f"eps ratio {lo}-{hi}"] = float(np.median(eps_pred[sel] / eps_true[sel])) if sel.any() else float("nan")
    if systems is not None:
        systems = np.asarray(systems)
        for s in CRYSTAL_SYSTEMS:
            sel = systems == s
            out[s] = float(err[sel].mean()) if sel.any() else float("nan")
    return out


def split_scores(preds: list[np.ndarray], true: np.ndarray, sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(MAE, ε̄ Spearman) per split of the mean of ``preds`` (each ``[S, N, 3, 3]``, member k = split k), split k
    scored on the records ``sets[k]`` (a boolean ``[S, N]`` mask: its validation or test set)."""
    mean = np.mean(preds, axis=0)
    mae, rho = [], []
    for k, rows in enumerate(sets):
        p, t = mean[k][rows], true[rows]
        mae.append(np.abs(p - t).mean())
        rho.append(spearmanr(mean_eigenvalue(p), mean_eigenvalue(t)).statistic)
    return np.array(mae), np.array(rho)


def mean_spearman(pred: np.ndarray, true: np.ndarray, test_sets: np.ndarray) -> float:
    """Mean over splits of the ε̄ Spearman of ``pred [S, N, 3, 3]`` (split k on its test set) against ``true``."""
    rhos = [
        spearmanr(mean_eigenvalue(pred[k][rows]), mean_eigenvalue(true[rows])).statistic
        for k, rows in enumerate(test_sets)
    ]
    return float(np.mean(rhos))


def rank_error_share(pred: np.ndarray, true: np.ndarray, test_sets: np.ndarray) -> list[float]:
    """Share of Σd² (d = ε̄ rank difference of a record) from each true-ε̄ bin of :data:`EPS_BINS`, mean over
    splits; a perfect ranking has no error to share (all zeros)."""
    shares = []
    for k, rows in enumerate(test_sets):
        t = mean_eigenvalue(true[rows])
        d2 = (rankdata(mean_eigenvalue(pred[k][rows])) - rankdata(t)) ** 2
        total = d2.sum() or 1.0
        shares.append([d2[(t >= lo) & (t < hi)].sum() / total for lo, hi in EPS_BINS])
    return np.mean(shares, axis=0).tolist()


def mean_tensor_baseline(gs: GraphSet, split_seed: int, target: str = "total") -> dict[str, dict]:
    """The training split's mean tensor predicted for every test record of split ``split_seed`` of the graph set
    ``gs``, scored by :func:`all_and_filtered_metrics`: the reference row of the result tables."""
    idx = random_split(len(gs), split_seed)
    train_mean = gs.subset(idx["train"]).targets(target).mean(axis=0)
    test = gs.subset(idx["test"])
    true = test.targets(target)
    pred = np.broadcast_to(train_mean, true.shape)
    return all_and_filtered_metrics(pred, true, test.crystal_systems)
