"""Held-out predictions: each record predicted by the members that did not train on it (:mod:`goectp.uncertainty`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from goectp.canonical import uses_canonical_cell
from goectp.tensor_stats import anisotropy_ratio, mean_eigenvalue, symmetrize
from goectp.uncertainty.calibration import Calibration, ensemble_fingerprint
from goectp.uncertainty.ood import element_counts, embedding_stats
from goectp.uncertainty.sigma import coverage, fit_propagated, fit_quantity, propagated_alpha_sigma, tau_hat


def _member_meta(path: Path) -> dict:
    from goectp.checkpoint import read_checkpoint

    return read_checkpoint(path)["meta"]  # weights_only=True


def training_masks(n: int, metas: Sequence[dict], targets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(trained [M, n], test [M, n])`` booleans from each member's split seed and ``max_abs`` filter."""
    from goectp.data import random_split

    trained = np.zeros((len(metas), n), bool)
    test = np.zeros((len(metas), n), bool)
    for m, meta in enumerate(metas):
        tc = meta.get("train_config") or {}
        seed = meta.get("split_seed", tc.get("split_seed"))
        if seed is None:
            raise ValueError(f"member {m} has no split_seed in its checkpoint metadata: cannot tell what it saw")
        idx = random_split(n, int(seed))
        tr = idx["train"]
        if tc.get("max_abs") is not None and targets is not None:
            tr = tr[np.abs(targets[tr]).max(axis=(1, 2)) < tc["max_abs"]]
        trained[m, tr] = True
        test[m, idx["test"]] = True
    return trained, test


def heldout_predictions(
    model: str | Path,
    data_file: str | Path | None = None,
    cache: str | Path | None = "runs/calibration",
    progress: bool = False,
) -> dict[str, Any]:
    """Member predictions and pooled embeddings of every record of the training data, with who trained on what.

    Cached in ``cache/<model folder name>-<hash of members and data>.npz``. Returns ``members [M,N,3,3]``,
    ``pooled [M,N,D]``, ``true [N,3,3]``, ``trained``/``test`` ``[M,N]``, ``ids``, ``elements`` (list of sets).
    """
    from goectp.data import DIELECTRIC_FILE, data_dir, sha256_file
    from goectp.registry import ensemble_members, load_model, resolve_model_path

    folder = resolve_model_path(model)  # a folder, or a shipped name / alias (never the working directory)
    names, files = zip(*ensemble_members(folder))  # raises when the folder holds no members
    data_file = Path(data_file) if data_file else data_dir() / DIELECTRIC_FILE
    # "frames-v2": predictions on canonical cells (metric-averaged lattice, refitted translations) and their frames
    key = hashlib.sha256(("".join(sha256_file(f) for f in [*files, data_file]) + "frames-v2").encode()).hexdigest()[:16]
    cached = Path(cache) / f"{folder.name}-{key}.npz" if cache else None
    metas = [_member_meta(f) for f in files]
    if cached is not None and cached.exists():
        z = np.load(cached, allow_pickle=False)  # arrays of numbers and strings only
        out = {k: z[k] for k in z.files}
        out["ids"] = list(out["ids"])
        out["elements"] = [set(e.split()) for e in out["elements"]]
    else:
        ens = load_model(folder)
        cfg = ens.config
        if getattr(cfg, "node_features", None):
            from goectp.features import load_featured_graph_set

            gs, _ = load_featured_graph_set(
                data_file,
                name=cfg.node_features,
                k=cfg.k_neighbors,
                progress=progress,
                canonical=uses_canonical_cell(cfg),
            )
        else:
            from goectp.data import load_graph_set

            gs = load_graph_set(data_file, k=cfg.k_neighbors, progress=progress, canonical=uses_canonical_cell(cfg))
        from goectp.inference import run_model

        run = run_model(gs.graphs, ens)
        members, pooled = run.predictions, run.embeddings
        elements = [" ".join(symbols) for symbols in run.elements]
        out = {
            "members": members,
            "pooled": pooled.astype(np.float32),
            "true": gs.targets(cfg_target(metas)),
            "ids": np.array(gs.ids),
            "elements": np.array(elements),
        }
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, **out)
            tmp.replace(cached)
        out["ids"] = list(out["ids"])
        out["elements"] = [set(e.split()) for e in out["elements"]]
    out["trained"], out["test"] = training_masks(len(out["ids"]), metas, out["true"])
    out["model"] = folder.name
    out["fingerprint"] = ensemble_fingerprint(load_model(folder))
    out["files"] = list(names)
    return out


def split_members(held: dict[str, Any], test_sets: np.ndarray) -> list[list[int]]:
    """For each split's test mask, the indices of the members of ``held`` (from :func:`heldout_predictions`) whose
    test set it is; raises when a split has no member."""
    out = []
    for k, test in enumerate(test_sets):
        own = [i for i, t in enumerate(held["test"]) if np.array_equal(t, test)]
        if not own:
            raise ValueError(f"{held.get('model', 'model')}: no member was tested on split {k}")
        out.append(own)
    return out


def split_means(held: dict[str, Any], test_sets: np.ndarray) -> np.ndarray:
    """``[S, N, 3, 3]``: for each split, the mean prediction of its :func:`split_members`."""
    return np.stack([held["members"][own].mean(axis=0) for own in split_members(held, test_sets)])


def cfg_target(metas: Sequence[dict]) -> str:
    return (metas[0].get("train_config") or {}).get("target", "total") if metas else "total"


# ---------------------------------------------------------------------------------------------------- sub-ensembles
def subensemble_stats(members: np.ndarray, use: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and population spread over the members marked in ``use [M, N]`` of each record.

    Returns ``n [N]``, tensor ``mean``/``std`` ``[N,3,3]``, ``eps_mean``/``eps_mean_std`` ``[N]``,
    ``anisotropy``/``anisotropy_std`` ``[N]`` (α of the sub-ensemble mean; σ(α) inf when a used member has
    λmin <= 0) — the same definitions as :func:`goectp.tensor_stats.ensemble_statistics`, restricted to ``use``.
    """
    members = symmetrize(members)
    w = use.astype(np.float64)
    n = w.sum(axis=0)
    safe = np.maximum(n, 1)
    wt = w[..., None, None]
    mean = (wt * members).sum(axis=0) / safe[:, None, None]
    std = np.sqrt((wt * (members - mean) ** 2).sum(axis=0) / safe[:, None, None])
    eps_m = mean_eigenvalue(members)
    eps = (w * eps_m).sum(axis=0) / safe
    eps_std = np.sqrt((w * (eps_m - eps) ** 2).sum(axis=0) / safe)
    eig_m = np.linalg.eigvalsh(members)
    eig = np.linalg.eigvalsh(mean)
    eig_std = np.sqrt(
        (w[..., None] * (eig_m - (w[..., None] * eig_m).sum(axis=0) / safe[:, None]) ** 2).sum(axis=0) / safe[:, None]
    )
    alpha_m, nonpos_m = anisotropy_ratio(eig_m)
    alpha, _ = anisotropy_ratio(eig)
    any_nonpos = (nonpos_m & use).any(axis=0)
    am = np.where(nonpos_m, 0.0, alpha_m)
    a_mean = (w * am).sum(axis=0) / safe
    a_std = np.where(any_nonpos, np.inf, np.sqrt((w * (am - a_mean) ** 2).sum(axis=0) / safe))
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "eps_mean": eps,
        "eps_mean_std": eps_std,
        "anisotropy": alpha,
        "anisotropy_std": a_std,
        "eigenvalues": eig,
        "eigenvalues_std": eig_std,
    }


def calibration_points(
    held: dict[str, Any], records: np.ndarray | None = None, use: np.ndarray | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """Residuals, τ̂ and μ of the unseen sub-ensembles (``|U| >= 2``) per quantity (tensor = diagonal components).

    ``records``: restrict to these record indices; ``use [M, N]``: the members to use (default: not trained on).
    """
    unseen = ~held["trained"] if use is None else use
    sub = subensemble_stats(held["members"], unseen)
    ok = sub["n"] >= 2
    if records is not None:
        ok &= np.isin(np.arange(len(ok)), records)
    true = symmetrize(held["true"])
    n = sub["n"][ok]
    diag = np.arange(3)
    t_alpha, _ = anisotropy_ratio(np.linalg.eigvalsh(true))
    return {
        "tensor": {
            "err": (sub["mean"][ok][:, diag, diag] - true[ok][:, diag, diag]).ravel(),
            "tau": tau_hat(sub["std"][ok][:, diag, diag], n[:, None]).ravel(),
            "mu": sub["mean"][ok][:, diag, diag].ravel(),
        },
        "eps_mean": {
            "err": sub["eps_mean"][ok] - mean_eigenvalue(true[ok]),
            "tau": tau_hat(sub["eps_mean_std"][ok], n),
            "mu": sub["eps_mean"][ok],
        },
        "anisotropy": {
            "err": sub["anisotropy"][ok] - t_alpha[ok],
            "alpha": sub["anisotropy"][ok],
            "tau": tau_hat(sub["anisotropy_std"][ok], n),
            "eig": sub["eigenvalues"][ok],
            "eig_std": sub["eigenvalues_std"][ok],
            "n": n,
        },
    }


def fit_calibration(held: dict[str, Any], seed: int = 0, records: np.ndarray | None = None) -> Calibration:
    """Fit the σ model (:func:`fit_quantity` per quantity) and the OOD statistics from :func:`heldout_predictions`
    (``records``: fit the σ model on these record indices only, for cross-fitted benchmarks)."""
    pts = calibration_points(held, records)
    quantities = {
        q: fit_quantity(pts[q]["err"], pts[q]["tau"], pts[q]["mu"], seed=seed) for q in ("tensor", "eps_mean")
    }
    a = pts["anisotropy"]
    base = propagated_alpha_sigma(quantities["tensor"], a["alpha"], a["eig"], a["eig_std"], a["n"])
    quantities["anisotropy"] = fit_propagated(a["err"], base, seed=seed)
    raw = a["tau"] * np.sqrt((5 - 1) / 5)
    quantities["anisotropy"]["coverage_raw"] = {
        "1sigma": coverage(a["err"], raw, 1),
        "2sigma": coverage(a["err"], raw, 2),
    }
    ev = pts["eps_mean"]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = ev["tau"] / np.abs(ev["mu"])
    union = held["trained"].any(axis=0)
    n_cal = int((~held["trained"]).sum(axis=0).__ge__(2).sum())
    return Calibration(
        quantities=quantities,
        element_counts=element_counts(held["elements"], union),
        embedding=embedding_stats(held["pooled"], held["trained"]),
        disagreement_p99=float(np.percentile(rel[np.isfinite(rel)], 99)),
        meta={
            "model": held.get("model"),
            "members": held.get("files"),
            "n_records": len(held["ids"]),
            "fingerprint": held.get("fingerprint"),
            "n_calibration_records": n_cal,
            "method": "unseen sub-ensembles (members whose training set excludes the record, |U| >= 2); "
            "sigma_cal^2 = (s*tau_hat)^2 + (c*|mu|)^2, tau_hat = ddof-1 member std; "
            "form 'scale' (s: +-2 sigma covers 95.4 %) or 'scale+relative' (s, c fitted to the coverage bands "
            "+-2 sigma 90-97 %, +-1 sigma 60-75 %), chosen by 5-fold out-of-fold band coverage, then NLL; "
            "anisotropy: propagated from the eigenvalue sigmas times a fitted factor",
        },
    )
