"""Calibration benchmark of a shipped ensemble: coverage of ±1σ/±2σ before/after calibration, OOD flags vs error.

    python benchmarks/accuracy/bench_calibration.py --model default                 # prints the Markdown table
    python benchmarks/accuracy/bench_calibration.py --model default --write         # and writes it into BENCHMARKS.md

Works for any ensemble folder (``--model`` is a name under ``assets/models`` or a path). Member predictions are
cached in ``runs/calibration/`` (shared with ``goectp ensemble calibrate``): minutes the first time, seconds
after. What is measured (see :mod:`goectp.uncertainty` for why):

- **coverage**: held-out sub-ensembles (the members that did not train on a record, ``|U| >= 2``); σ before = the
  raw member std (population std, 5-member equivalent), after = calibrated σ **cross-fitted**: the calibration used
  for a record was fitted on the other 4 of 5 random folds of records (never on the record itself). Rows: all such
  records, and the subset whose sub-ensemble is made of members that had the record in their *test* split.
- **OOD flags on the 5 test splits**: member k on its own test split (truly unseen), flagged with member k's training
  elements and its own embedding statistics, and (where ≥ 2 members did not train on the record) the disagreement of
  those members; MAE = mean |Δ| over the 9 components.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from goectp.evaluation.report import write_section
from goectp.uncertainty import (
    calibrated_sigma,
    calibration_points,
    coverage,
    element_counts,
    fit_calibration,
    heldout_predictions,
    propagated_alpha_sigma,
    subensemble_stats,
)


def crossfit_coverage(held: dict, folds: int = 5, seed: int = 0) -> dict[str, dict[str, float]]:
    """Coverage rows keyed by ``"<subset> / <quantity>"``: before/after at ±1σ and ±2σ and the point count."""
    n_unseen = (~held["trained"]).sum(axis=0)
    records = np.flatnonzero(n_unseen >= 2)
    fold_of = np.full(len(held["ids"]), -1)
    fold_of[records] = np.random.default_rng(seed).permutation(len(records)) % folds
    test_only = (held["test"] & ~held["trained"]).sum(axis=0) >= 2
    rows: dict[str, dict[str, list]] = {}
    for f in range(folds):
        cal = fit_calibration(held, seed=seed, records=records[fold_of[records] != f])
        mine = records[fold_of[records] == f]
        for subset, recs in (("held-out sub-ensembles", mine), ("test-split members only", mine[test_only[mine]])):
            use = ~held["trained"] if subset.startswith("held") else (held["test"] & ~held["trained"])
            pts = calibration_points(held, recs, use=use)
            for q, label in (("eps_mean", "ε̄"), ("tensor", "diagonal components"), ("anisotropy", "α")):
                p = pts[q]
                if q == "anisotropy":
                    after = cal.quantities[q]["k"] * propagated_alpha_sigma(
                        cal.quantities["tensor"], p["alpha"], p["eig"], p["eig_std"], p["n"]
                    )
                else:
                    after = calibrated_sigma(cal.quantities[q], p["tau"] * np.sqrt(4 / 5), p["mu"], 5)
                before = p["tau"] * np.sqrt(4 / 5)
                r = rows.setdefault(f"{subset} / {label}", {"err": [], "before": [], "after": []})
                r["err"].append(p["err"])
                r["before"].append(before)
                r["after"].append(after)
    out = {}
    for key, r in rows.items():
        err, before, after = (np.concatenate(r[k]) for k in ("err", "before", "after"))
        out[key] = {
            "n": int(np.isfinite(err).sum()),
            "before1": coverage(err, before, 1),
            "before2": coverage(err, before, 2),
            "after1": coverage(err, after, 1),
            "after2": coverage(err, after, 2),
            "median_sigma_after": float(np.nanmedian(after[np.isfinite(after)])),
        }
    return out


def ood_on_test_splits(held: dict) -> dict[str, float]:
    """MAE of member k on its own test split, flagged vs unflagged (flags as the deployed ensemble computes them)."""
    cal = fit_calibration(held)
    sub = subensemble_stats(held["members"], ~held["trained"])
    err_all, flag_all, reasons_all = [], [], []
    for k in range(held["members"].shape[0]):
        test = np.flatnonzero(held["test"][k])
        ck = dataclasses.replace(
            cal, element_counts=element_counts(held["elements"], held["trained"][k]), embedding=[cal.embedding[k]]
        )
        n = sub["n"][test]
        stats = {
            "eps_mean": sub["eps_mean"][test],
            "n_members": n,
            "eps_mean_std_raw": np.where(n >= 2, sub["eps_mean_std"][test], 0.0),
        }
        flags = ck.ood([held["elements"][i] for i in test], stats, held["pooled"][k : k + 1, test])
        err_all.append(np.abs(held["members"][k, test] - held["true"][test]).mean(axis=(1, 2)))
        flag_all.append([f["flag"] for f in flags])
        reasons_all += [" ".join(f["reasons"]) for f in flags]
    err, flag = np.concatenate(err_all), np.concatenate(flag_all)
    out = {
        "n": len(err),
        "fraction_flagged": float(flag.mean()),
        "mae_flagged": float(err[flag].mean()) if flag.any() else float("nan"),
        "mae_unflagged": float(err[~flag].mean()),
        "n_flagged": int(flag.sum()),
    }
    for tag, word in (("element", "element"), ("embedding", "embedding"), ("disagreement", "disagree")):
        hit = np.array([word in r for r in reasons_all])
        out[f"n_{tag}"] = int(hit.sum())
        out[f"mae_{tag}"] = float(err[hit].mean()) if hit.any() else float("nan")
    return out


def markdown(name: str, cov: dict, ood: dict) -> str:
    lines = [
        f"Model `{name}`. Coverage of the true value by mean ± kσ (target: ±1σ 60-75 %, ±2σ 90-97 %).",
        "",
        "| records / quantity | n | raw ±1σ | raw ±2σ | calibrated ±1σ | calibrated ±2σ | median calibrated σ |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in cov.items():
        lines.append(
            f"| {key} | {r['n']} | {100 * r['before1']:.0f} % | {100 * r['before2']:.0f} % | "
            f"{100 * r['after1']:.0f} % | {100 * r['after2']:.0f} % | {r['median_sigma_after']:.2f} |"
        )
    lines += [
        "",
        "OOD flags on the 5 test splits (member k on its own test split; MAE = mean |Δ| of 9 components):",
        "",
        "| test predictions | flagged | MAE flagged | MAE unflagged | element flag (n, MAE) | embedding flag "
        "(n, MAE) | disagreement flag (n, MAE) |",
        "|---|---|---|---|---|---|---|",
        f"| {ood['n']} | {ood['n_flagged']} ({100 * ood['fraction_flagged']:.1f} %) | {ood['mae_flagged']:.2f} | "
        f"{ood['mae_unflagged']:.2f} | {ood['n_element']}, {ood['mae_element']:.2f} | {ood['n_embedding']}, "
        f"{ood['mae_embedding']:.2f} | {ood['n_disagreement']}, {ood['mae_disagreement']:.2f} |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--cache", default="runs/calibration")
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    ap.add_argument("--benchmarks", type=Path, default=Path("BENCHMARKS.md"))
    args = ap.parse_args()
    from goectp.registry import model_aliases

    args.model = model_aliases().get(args.model, args.model)  # one section per ensemble, under its own name
    held = heldout_predictions(args.model, data_file=args.data, cache=args.cache or None)
    table = markdown(held["model"], crossfit_coverage(held), ood_on_test_splits(held))
    print(table)
    if args.write:
        write_section(
            args.benchmarks,
            f"## Calibration and OOD flags: `{held['model']}`",
            table + "\n`python benchmarks/accuracy/bench_calibration.py --model " + held["model"] + " --write`\n",
        )


if __name__ == "__main__":
    main()
