"""Does a model of a different kind rank ε̄ better together with the default? A descriptor blend on the 5 splits.

Two learners that do not share the graph network's errors, each fitted per split on that split's training set:

- **gbm**: gradient-boosted trees (scikit-learn ``HistGradientBoostingRegressor``) on log ε̄ from the 115
  descriptors of :func:`goectp.features.descriptors.crystal_descriptors` (composition statistics of element
  properties, volume per atom, density, space group, packing, oxidation-state guesses with charges and ionic radii,
  coordination shells);
- **knn**: k nearest training records (k = 5, cosine distance) in the pooled-feature space of each of the split's
  default members, averaged over the members.

Blend: log ε̄ = (1 − w) log ε̄_default + w log ε̄_other, w on a grid of 0.05, chosen by the mean **validation** ε̄
Spearman over the splits; the test column is read after. As a tensor, the blend is the default's tensor times the
scalar (ε̄_other / ε̄_default)^w: anisotropy and frame unchanged. The second table scores that tensor (component
MAE, MAE per true-ε̄ bin, top-5 % recall, per-split changes) for the gbm blend.

``--probes`` adds other learners on the same footing (each blended alone, w chosen on validation): boosted trees
also given the CHGNet features (mean and spread over the atoms), extra trees, an RBF support-vector regressor,
the mean of gbm and the SVR, trees on the descriptors plus five bond-valence descriptors (the global instability
index and the cations' under-bonding; :func:`bond_valence_descriptors`), and a blend of the **ionic** part only
(trees on log(1 + ionic ε̄) blended with the default's ε̄ minus the shipped ``electronic`` model's ε̄∞).

    python benchmarks/experiments/descriptor_blend.py [--probes]

Member predictions come from (and are cached like) :func:`goectp.uncertainty.heldout_predictions`; the descriptors
are cached in ``runs/descriptors.npz``.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from goectp.data import DIELECTRIC_FILE, data_dir, split_masks
from goectp.features.descriptors import crystal_descriptors
from goectp.tensor_stats import mean_eigenvalue
from goectp.uncertainty import heldout_predictions, split_means, split_members


def descriptor_matrix(data_file: Path, cache: Path) -> tuple[np.ndarray, list[str]]:
    from goectp.structures import structure_from_dict

    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return z["X"], list(z["ids"])
    with gzip.open(data_file, "rt") as fh:
        raw = json.load(fh)
    rows = [crystal_descriptors(structure_from_dict(r["structure"])) for r in raw.values()]
    cache.parent.mkdir(parents=True, exist_ok=True)
    X = np.array(rows, float)
    np.savez(cache, X=X, ids=np.array(list(raw)))
    return X, list(raw)


def bond_valence_descriptors(structure) -> list[float]:
    """Global instability index √⟨(|BVS| − |q|)²⟩, its largest term, the cations' smallest, mean and spread of
    |BVS| − |q| (negative: under-bonded, a rattling ion) with q pymatgen's first oxidation-state guess and
    O'Keeffe–Brese bond valences to neighbours within 3.6 Å; NaN where no guess or no bond-valence parameter exists."""
    from pymatgen.analysis.bond_valence import calculate_bv_sum

    try:
        guesses = structure.composition.reduced_composition.oxi_state_guesses(max_sites=-30)
    except ValueError:  # too many sites to enumerate
        guesses = []
    if not guesses:
        return [np.nan] * 5
    s = structure.copy()
    s.add_oxidation_state_by_element(guesses[0])
    dev, cation = [], []
    for site, neighbours in zip(s, s.get_all_neighbors(3.6)):
        try:
            d = abs(calculate_bv_sum(site, neighbours)) - abs(site.specie.oxi_state)
        except KeyError:  # an element without O'Keeffe–Brese parameters (Pt, noble gases, ...)
            return [np.nan] * 5
        dev.append(d)
        if site.specie.oxi_state > 0:
            cation.append(d)
    dev, cation = np.array(dev), np.array(cation or [0.0])
    return [float(np.sqrt(np.mean(dev**2))), float(np.abs(dev).max()), cation.min(), cation.mean(), cation.std()]


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


def per_split_fit(make, X: np.ndarray, y: np.ndarray, train_sets: np.ndarray) -> np.ndarray:
    """``[S, N]``: a learner fitted on each split's training records, predicting every record."""
    return np.stack([make().fit(X[train], y[train]).predict(X) for train in train_sets])


def boosted_trees():
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        max_iter=600, learning_rate=0.05, max_leaf_nodes=31, min_samples_leaf=10, l2_regularization=1.0, random_state=0
    )


def tensor_table(
    ensemble: np.ndarray, base: np.ndarray, other: np.ndarray, w: float, true_t: np.ndarray, masks
) -> None:
    """Scores of the blended tensor ε_k (ε̄_other / ε̄_k)^w against the default's ε_k (split sub-ensembles)."""
    true = mean_eigenvalue(true_t)
    bins = ((0, 10), (10, 30), (30, 100), (100, np.inf))
    print("| ε from | val MAE | test MAE | Δ test ε̄ Spearman per split | top-5 % recall | test MAE per ε̄ bin |")
    print("|---|---|---|---|---|---|")
    for label, weight in (("the default alone", 0.0), (f"blended with gbm, w = {w:.2f}", w)):
        pred = ensemble * np.exp(weight * (other - base))[..., None, None]
        mae = {
            part: np.mean([np.abs(pred[k][r] - true_t[r]).mean() for k, r in enumerate(masks[part])])
            for part in ("val", "test")
        }
        blended = (1 - weight) * base + weight * other
        d_rho = [
            spearmanr(blended[k][r], true[r]).statistic - spearmanr(base[k][r], true[r]).statistic
            for k, r in enumerate(masks["test"])
        ]
        recall, errors, truth = [], [], []
        for k, r in enumerate(masks["test"]):
            rows = np.flatnonzero(r)
            n = max(1, round(0.05 * len(rows)))
            top = set(np.argsort(-mean_eigenvalue(pred[k][rows]))[:n])
            recall.append(len(top & set(np.argsort(-true[rows])[:n])) / n)
            errors.append(np.abs(pred[k][rows] - true_t[rows]).mean((1, 2)))
            truth.append(true[rows])
        errors, truth = np.concatenate(errors), np.concatenate(truth)
        per_bin = " / ".join(f"{errors[(truth >= a) & (truth < b)].mean():.2f}" for a, b in bins)
        print(
            f"| {label} | {mae['val']:.4f} | {mae['test']:.4f} | {' '.join(f'{d:+.4f}' for d in d_rho)} | "
            f"{np.mean(recall):.3f} | {per_bin} |"
        )


def probes(held, X, ids, base, gbm, true, masks) -> None:
    """Other learners and inputs, each blended with the default alone (``--probes``)."""
    from sklearn.ensemble import ExtraTreesRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    from goectp.data.dielectric import read_dielectric_json
    from goectp.features.cache import dataset_features

    data_file = data_dir() / DIELECTRIC_FILE
    records = read_dielectric_json(data_file)
    structures = {r.id: r.structure for r in records}
    features = dataset_features(data_file, ids, lambda: structures, "chgnet", progress=False)["features"]
    chgnet = np.array([np.concatenate([np.asarray(features[i]).mean(0), np.asarray(features[i]).std(0)]) for i in ids])
    bv = np.array([bond_valence_descriptors(structures[i]) for i in ids])
    y, train = np.log(true), masks["train"]
    svr = per_split_fit(
        lambda: make_pipeline(StandardScaler(), SVR(C=3.0, epsilon=0.05)),
        np.nan_to_num(np.sign(X) * np.log1p(np.abs(X))),
        y,
        train,
    )
    ionic_true = mean_eigenvalue(np.array([r.target("ionic") for r in records]))
    ionic_trees = per_split_fit(boosted_trees, X, np.log1p(np.clip(ionic_true, 0, None)), train)
    eps_inf = mean_eigenvalue(split_means(heldout_predictions("electronic"), masks["test"]))
    net_ionic = np.log1p(np.clip(np.exp(base) - eps_inf, 0, None))
    learners = {
        "gbm, descriptors + CHGNet features": per_split_fit(boosted_trees, np.hstack([X, chgnet]), y, train),
        "extra trees": per_split_fit(
            lambda: ExtraTreesRegressor(400, min_samples_leaf=2, max_features=0.3, n_jobs=2, random_state=0),
            X,
            y,
            train,
        ),
        "SVR (RBF)": svr,
        "mean of gbm and SVR": (gbm + svr) / 2,
        "gbm, descriptors + bond valences": per_split_fit(boosted_trees, np.hstack([X, bv]), y, train),
    }
    print("\n| probe | w (chosen on val) | val ε̄ Spearman | test ε̄ Spearman | test, the other alone |")
    print("|---|---|---|---|---|")
    for name, other in learners.items():
        w, v, t, alone = blend_table(base, other, true, masks["val"], masks["test"])
        print(f"| {name} | {w:.2f} | {v:.4f} | {t:.4f} | {alone:.4f} |")
    # the ionic part only: log(1 + ionic) blended, ε̄ = ε̄∞ (electronic model) + the blended ionic part
    grid = np.round(np.arange(0, 1.0001, 0.05), 2)
    total = [np.log(eps_inf + np.expm1((1 - w) * net_ionic + w * ionic_trees)) for w in grid]

    def rho(pred, part):
        return np.mean([spearmanr(pred[k][r], true[r]).statistic for k, r in enumerate(masks[part])])

    best = int(np.argmax([rho(p, "val") for p in total]))
    ionic_rho = np.mean([spearmanr(ionic_trees[k][r], ionic_true[r]).statistic for k, r in enumerate(masks["test"])])
    net_rho = np.mean([spearmanr(net_ionic[k][r], ionic_true[r]).statistic for k, r in enumerate(masks["test"])])
    print(
        f"| ionic part only (test ionic ε̄ Spearman: trees {ionic_rho:.3f}, default − electronic {net_rho:.3f}) | "
        f"{grid[best]:.2f} | {rho(total[best], 'val'):.4f} | {rho(total[best], 'test'):.4f} | – |"
    )


def main() -> None:
    from sklearn.neighbors import KNeighborsRegressor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--cache", type=Path, default=Path("runs/descriptors.npz"))
    ap.add_argument("--probes", action="store_true", help="also score other learners and inputs (~3 min more)")
    args = ap.parse_args()
    held = heldout_predictions(args.model)
    X, ids = descriptor_matrix(data_dir() / DIELECTRIC_FILE, args.cache)
    if ids != list(held["ids"]):
        raise SystemExit("descriptors and predictions are not of the same records in the same order")
    true = mean_eigenvalue(held["true"])
    masks = split_masks(len(ids))
    base = split_log_mean(held, masks["test"])
    gbm, knn = per_split_fit(boosted_trees, X, np.log(true), masks["train"]), np.zeros_like(base)
    members = split_members(held, masks["test"])
    for k, train in enumerate(masks["train"]):
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
        if name == "gbm":
            w_gbm = w
    print()
    tensor_table(split_means(held, masks["test"]), base, gbm, w_gbm, held["true"], masks)
    if args.probes:
        probes(held, X, ids, base, gbm, true, masks)


if __name__ == "__main__":
    main()
