"""Accuracy per cost: which ensemble earns its place as the default.

Every candidate is a set of five-split families. Accuracy is read per split from the held-out member predictions
(:func:`goectp.uncertainty.heldout_predictions`, cached under ``runs/calibration``; the default's families are
slices of ``combined``'s): the mean of the candidate's
members trained on split ``k``, on split ``k``'s validation set (the choice) and test set (read after it); mean over
the 5 splits. Coverage is the calibrated out-of-fold ±2σ coverage of ε̄ from the model's ``calibration.json`` (only
for folders that have one). Cost is ``goectp.predict_summary`` on the same structures with one thread (graphs,
node features, every network, statistics), the median of ``--repeats`` runs, and its ratio to ``fast`` from the
same run.

    python benchmarks/accuracy/accuracy_per_cost.py                       # the shipped families
    python benchmarks/accuracy/accuracy_per_cost.py --extra runs/distill/ensemble   # plus a folder of split*.pt
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

#: candidate label → the families (shipped names or folders) whose members it averages
FAMILIES = {
    "bmc": "pretrained-bulk-modulus-chgnet",
    "bm-l2": "pretrained-bulk-modulus-layers2",
    "bmc-l2": "pretrained-bulk-modulus-chgnet-layers2",
    "dec-bmc-l2": "decomposed-bulk-modulus-chgnet-layers2",
    "dec-bm-l2": "decomposed-bulk-modulus-layers2",
}
#: candidates that ship as their own folder (their calibration.json gives the coverage)
SHIPPED_AS = {"combined (all five)": "combined"}
CANDIDATES = {
    "fast": ["fast"],
    "bm-l2": ["bm-l2"],
    "bmc": ["bmc"],
    "bmc-l2": ["bmc-l2"],
    "dec-bmc-l2": ["dec-bmc-l2"],
    "dec-bm-l2": ["dec-bm-l2"],
    "dec-bmc-l2 + dec-bm-l2": ["dec-bmc-l2", "dec-bm-l2"],
    "combined-15 (bmc + bm-l2 + bmc-l2)": ["bmc", "bm-l2", "bmc-l2"],
    "combined (all five)": ["bmc", "bm-l2", "bmc-l2", "dec-bmc-l2", "dec-bm-l2"],
}


#: the model menu's descriptions (``--write-catalog``), by shipped folder
DESCRIPTIONS = {
    "combined": "the default: 25 members of five families (CHGNet features, bulk-modulus pretraining, ε∞ + ionic "
    "sums); the most accurate on validation, the slowest",
    "fast": "5 plain GoeCTP members (the paper's model, no CHGNet): the cheapest, for large pools and funnels",
    "electronic": "ε∞ (high-frequency) and refractive indices n = √λ; 5 members (test MAE of ε∞ 0.437)",
    "pretrained-bulk-modulus-chgnet": "family of the default: CHGNet features, bulk-modulus pretraining, 1 layer",
    "pretrained-bulk-modulus-chgnet-layers2": "family of the default: CHGNet features, bulk-modulus pretraining, "
    "2 layers",
    "pretrained-bulk-modulus-layers2": "family of the default: bulk-modulus pretraining, 2 layers, no CHGNet",
    "decomposed-bulk-modulus-chgnet-layers2": "family of the default: ε∞ model + an ionic-only network (CHGNet "
    "features) per member",
    "decomposed-bulk-modulus-layers2": (
        "family of the default: ε∞ model (CHGNet features, shared with electronic) + an ionic-only network without "
        "CHGNet per member"
    ),
}


def write_catalog(rows: list, names: dict[str, str], path: Path) -> None:
    """``assets/models/catalog.json``: every shipped folder's description and this run's numbers."""
    by_folder = {}
    fast_ms = next(r[3] for r in rows if r[0] == "fast")
    for label, _, acc, ms, cov in rows:
        folder = SHIPPED_AS.get(label) or names.get(label)
        if folder is None:
            continue
        by_folder[Path(folder).name] = {
            "val_mae": round(float(acc["val"]), 4),
            "test_mae": round(float(acc["test"]), 4),
            "spearman": round(float(acc["rho"]), 4),
            "coverage": None if cov is None else round(float(cov), 4),
            "ms_per_structure": None if ms is None else round(ms, 1),
            "cost_vs_fast": None if ms is None else round(ms / fast_ms, 2),
        }
    catalog = {name: {"description": text, **by_folder.get(name, {})} for name, text in DESCRIPTIONS.items()}
    path.write_text(json.dumps(catalog, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")


def coverage(folder: Path) -> float | None:
    path = folder / "calibration.json"
    if not path.exists():
        return None
    q = json.loads(path.read_text())["quantities"]["eps_mean"]
    return q["selection"][q["form"]]["coverage_2sigma_oof"]


def accuracy(specs: list[str], held: dict) -> dict:
    from goectp.data import split_masks
    from goectp.evaluation.metrics import split_scores

    true = next(iter(held.values()))["true"]
    masks = split_masks(len(true))
    preds = [held[s]["members"] for s in specs]
    val, _ = split_scores(preds, true, masks["val"])
    test, rho = split_scores(preds, true, masks["test"])
    return {"val": val.mean(), "test": test.mean(), "test_std": test.std(), "rho": rho.mean()}


def cost(specs: list[str], structures: list, repeats: int) -> float:
    import goectp
    from goectp.models import Ensemble
    from goectp.registry import load_model

    models = [load_model(s) for s in specs]
    model = models[0] if len(models) == 1 else Ensemble([m for e in models for m in e.members])
    goectp.predict_summary(structures[:4], model=model)  # warm-up (CHGNet load, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        goectp.predict_summary(structures, model=model)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / len(structures) * 1e3


def refresh_coverage(path: Path) -> None:
    """Only the ``coverage`` of each catalog entry, from its (re-fitted) ``calibration.json``: a re-calibration
    changes no prediction, so the accuracy and cost columns stand."""
    from goectp.registry import resolve_model_path

    catalog = json.loads(path.read_text(encoding="utf-8"))
    for name, entry in catalog.items():
        if "coverage" in entry:
            cov = coverage(resolve_model_path(name))
            new = None if cov is None else round(float(cov), 4)
            print(f"{name:45s} coverage {entry['coverage']} -> {new}")
            entry["coverage"] = new
    path.write_text(json.dumps(catalog, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--extra", nargs="*", default=[], help="folders of split*.pt members to add as candidates")
    p.add_argument("--structures", type=int, default=150, help="test-split-0 structures timed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-cost", action="store_true")
    p.add_argument("--write-catalog", action="store_true", help="write assets/models/catalog.json (the model menu)")
    p.add_argument("--coverage-only", action="store_true", help="refresh only the catalog's coverage column")
    args = p.parse_args()
    if args.coverage_only:
        from goectp.catalog import CATALOG_FILE
        from goectp.registry import assets_dir

        refresh_coverage(assets_dir() / "models" / CATALOG_FILE)
        return

    import torch

    from goectp.data import DIELECTRIC_FILE, data_dir, read_dielectric_json, split_masks
    from goectp.registry import ensemble_members, resolve_model_path
    from goectp.uncertainty import heldout_predictions

    torch.set_num_threads(1)
    names = {**FAMILIES, "fast": "fast", **{Path(e).name: e for e in args.extra}}
    candidates = {**CANDIDATES, **{Path(e).name: [Path(e).name] for e in args.extra}}
    combined = heldout_predictions("combined")  # the families of the default: slices of its members
    member_names = [n for n, _ in ensemble_members("combined")]
    held = {}
    for label, spec in names.items():
        rows_of = [i for i, n in enumerate(member_names) if n.rsplit("-split", 1)[0] == spec]
        held[label] = {**combined, "members": combined["members"][rows_of]} if rows_of else heldout_predictions(spec)
    records = read_dielectric_json(data_dir() / DIELECTRIC_FILE)
    test0 = np.flatnonzero(split_masks(len(records))["test"][0])[: args.structures]
    structures = [records[i].structure for i in test0]
    rows = []
    for label, parts in candidates.items():
        acc = accuracy(parts, held)
        ms = None if args.no_cost else cost([names[s] for s in parts], structures, args.repeats)
        folder = SHIPPED_AS.get(label, names[parts[0]] if len(parts) == 1 else None)
        cov = coverage(resolve_model_path(folder)) if folder else None
        rows.append((label, 5 * len(parts), acc, ms, cov))
    fast_ms = next(r[3] for r in rows if r[0] == "fast")
    print(f"{len(structures)} test structures of split 0 timed, one thread, median of {args.repeats}\n")
    print("| candidate | members | val MAE | test MAE | test ε̄ Spearman | ±2σ coverage (ε̄) | ms / structure | × fast |")
    print("|---|---|---|---|---|---|---|---|")
    for label, n, acc, ms, cov in sorted(rows, key=lambda r: r[2]["val"]):
        cost_cols = "– | –" if ms is None else f"{ms:.1f} | {ms / fast_ms:.2f}"
        cov_col = "–" if cov is None else f"{100 * cov:.1f} %"
        print(
            f"| {label} | {n} | {acc['val']:.3f} | {acc['test']:.3f} ± {acc['test_std']:.3f} | {acc['rho']:.3f} | "
            f"{cov_col} | {cost_cols} |"
        )
    if args.write_catalog:
        from goectp.catalog import CATALOG_FILE
        from goectp.registry import assets_dir

        write_catalog(rows, names, assets_dir() / "models" / CATALOG_FILE)


if __name__ == "__main__":
    main()
