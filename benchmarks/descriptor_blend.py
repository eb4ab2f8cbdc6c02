"""Does a model of a different kind rank ε̄ better together with the default? A descriptor blend on the 5 splits.

Two learners that do not share the graph network's errors, each fitted per split on that split's training set:

- **gbm**: gradient-boosted trees (scikit-learn ``HistGradientBoostingRegressor``) on log ε̄ from the 115
  descriptors of :func:`goectp.features.descriptors.crystal_descriptors` (composition statistics of element
  properties, volume per atom, density, space group, packing, oxidation-state guesses with charges and ionic radii,
  coordination shells);
- **knn**: k nearest training records (k = 5, cosine distance) in the pooled-feature space of each of the split's
  default members, averaged over the members.

Blend: log ε̄ = (1 − w) log ε̄_default + w log ε̄_other, w on a grid of 0.05, chosen by the mean **validation** ε̄
Spearman over the splits; the test column is read after. Only ε̄'s rank is blended (the tensor is not changed).

    python benchmarks/descriptor_blend.py

Member predictions come from (and are cached like) :func:`goectp.calibration.heldout_predictions`; the descriptors
are cached in ``runs/descriptors.npz``.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from goectp.calibration import heldout_predictions, split_means, split_members
from goectp.data import DIELECTRIC_FILE, data_dir, split_masks
from goectp.features.descriptors import crystal_descriptors
from goectp.tensor_stats import mean_eigenvalue


def descriptor_matrix(data_file: Path, cache: Path) -> tuple[np.ndarray, list[str]]:
    from monty.json import MontyDecoder

    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return z["X"], list(z["ids"])
    with gzip.open(data_file, "rt") as fh:
        raw = json.load(fh)
    rows = [crystal_descriptors(MontyDecoder().process_decoded(r["structure"])) for r in raw.values()]
    cache.parent.mkdir(parents=True, exist_ok=True)
    X = np.array(rows, float)
    np.savez(cache, X=X, ids=np.array(list(raw)))
    return X, list(raw)


def split_log_mean(held: dict, test: np.ndarray) -> np.ndarray:
    """``[S, N]`` log ε̄ of each split's sub-ensemble (the members whose test set is split k's) on every record."""
    return np.log(np.clip(mean_eigenvalue(split_means(held, test)), 1e-3, None))


def blend_table(base: np.ndarray, other: np.ndarray, true: np.ndarray, val, test) -> tuple[float, float, float, float]:
    """(w, val ρ, test ρ, test ρ of ``other`` alone) with w chosen on the mean validation ε̄ Spearman."""
    grid = np.round(np.arange(0, 1.0001, 0.05), 2)

    def rho(rows, w):
        return np.mean(
            [spearmanr((1 - w) * base[k][r] + w * other[k][r], true[r]).statistic for k, r in enumerate(rows)]
        )

    on_val = [rho(val, w) for w in grid]
    best = grid[int(np.argmax(on_val))]
    return float(best), float(max(on_val)), float(rho(test, best)), float(rho(test, 1.0))


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.neighbors import KNeighborsRegressor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--cache", type=Path, default=Path("runs/descriptors.npz"))
    args = ap.parse_args()
    held = heldout_predictions(args.model)
    X, ids = descriptor_matrix(data_dir() / DIELECTRIC_FILE, args.cache)
    if ids != list(held["ids"]):
        raise SystemExit("descriptors and predictions are not of the same records in the same order")
    true = mean_eigenvalue(held["true"])
    masks = split_masks(len(ids))
    base = split_log_mean(held, masks["test"])
    gbm, knn = np.zeros_like(base), np.zeros_like(base)
    members = split_members(held, masks["test"])
    for k, train in enumerate(masks["train"]):
        trees = HistGradientBoostingRegressor(
            max_iter=600,
            learning_rate=0.05,
            max_leaf_nodes=31,
            min_samples_leaf=10,
            l2_regularization=1.0,
            random_state=0,
        )
        gbm[k] = trees.fit(X[train], np.log(true[train])).predict(X)
        votes = []
        for i in members[k]:
            z = held["pooled"][i].astype(float)
            z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-12
            votes.append(KNeighborsRegressor(5, weights="distance").fit(z[train], np.log(true[train])).predict(z))
        knn[k] = np.mean(votes, 0)
    ref = np.mean([spearmanr(base[k][r], true[r]).statistic for k, r in enumerate(masks["test"])])
    ref_val = np.mean([spearmanr(base[k][r], true[r]).statistic for k, r in enumerate(masks["val"])])
    print(f"`{args.model}` alone: val ε̄ Spearman {ref_val:.4f}, test {ref:.4f}\n")
    print("| blended with | w (chosen on val) | val ε̄ Spearman | test ε̄ Spearman | test, the other alone |")
    print("|---|---|---|---|---|")
    for name, other in (("gbm", gbm), ("knn", knn), ("mean of gbm and knn", (gbm + knn) / 2)):
        w, v, t, alone = blend_table(base, other, true, masks["val"], masks["test"])
        print(f"| {name} | {w:.2f} | {v:.4f} | {t:.4f} | {alone:.4f} |")


if __name__ == "__main__":
    main()
