"""Accuracy of a shipped ensemble as users get it: canonical cells, frame averaging, the model's own node features.

Two views on the 5 random 80/10/10 splits (seeds 0-4) of ``mp_dielectric_open.json.gz``:

- **members** (the paper's protocol): member k on the test set of split k; mean ± std over the 5 splits. An ensemble
  with several members per split (``combined``) is evaluated as its **split sub-ensembles**: the mean prediction of
  the members trained on split k, on the test set of split k.
- **ensemble, held-out members**: each record predicted by the mean of the members that did not train on it (its
  test or validation split for them; 0.2 of the records per member), over every record that at least one member
  did not train on. This is the ensemble a user gets, on crystals it has not seen, minus the members that have.

Metrics (:func:`goectp.evaluation.metrics.headline_metrics`): component MAE (all records; records with every
|component| < 100), MAE per ε̄ bin (< 10, 10-30, 30-100, ≥ 100; ε̄ = mean eigenvalue of the true tensor), ε̄
Spearman, the recall of the true top-5 % ε̄ among the predicted top-5 %, and the MAE per crystal system.

    python benchmarks/accuracy/evaluate_ensemble.py --model default fast [--write]

Member predictions come from (and are cached like) :func:`goectp.uncertainty.heldout_predictions`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from goectp.canonical import uses_canonical_cell
from goectp.data import DIELECTRIC_FILE, data_dir, load_graph_set
from goectp.data.splits import CRYSTAL_SYSTEMS
from goectp.evaluation.metrics import EPS_BINS, headline_metrics
from goectp.evaluation.report import write_section
from goectp.models import prediction_target
from goectp.registry import load_model, resolve_model_path
from goectp.uncertainty import heldout_predictions

BINS, SYSTEMS = EPS_BINS, CRYSTAL_SYSTEMS


def evaluate(name: str) -> dict:
    held = heldout_predictions(name)
    members, true, trained, test = held["members"], held["true"], held["trained"], held["test"]
    model = load_model(name)
    cfg = model.config
    gs = load_graph_set(
        data_dir() / DIELECTRIC_FILE, k=cfg.k_neighbors, progress=False, canonical=uses_canonical_cell(cfg)
    )
    system_of = dict(zip(gs.ids, gs.crystal_systems))
    systems = np.array([system_of[i] for i in held["ids"]])
    by_split: dict[bytes, list[int]] = {}  # members that share a split (same test set) form its sub-ensemble
    for m in range(len(members)):
        by_split.setdefault(test[m].tobytes(), []).append(m)
    per_split = []
    for ms in by_split.values():
        t = test[ms[0]]
        per_split.append(headline_metrics(members[ms][:, t].mean(axis=0), true[t], systems[t]))
    unseen = ~trained  # [M, N]
    have = unseen.any(axis=0)
    weights = unseen[:, have, None, None].astype(float)
    ens = (members[:, have] * weights).sum(axis=0) / weights.sum(axis=0)
    ensemble = headline_metrics(ens, true[have], systems[have])
    ensemble["members_per_record"] = float(unseen[:, have].sum(axis=0).mean())
    return {
        "model": name,
        "target": prediction_target(model),
        "folder": resolve_model_path(name).name,
        "per_split": per_split,
        "members_per_split": len(members) // len(per_split),
        "ensemble": ensemble,
    }


def _split_label(result: dict) -> str:
    per = result["members_per_split"]
    return "members" if per == 1 else f"split sub-ensembles ({per} members)"


def table(results: list[dict]) -> str:
    keys = ["mae", "mae_filtered", "spearman_eps_mean", "top5_recall"] + [f"bin {lo}-{hi}" for lo, hi in BINS]
    head = ["component MAE", "MAE (\\|ε\\| < 100)", "ε̄ Spearman", "top-5 % recall"] + [
        f"MAE ε̄ {lo}–{hi if np.isfinite(hi) else '∞'}" for lo, hi in BINS
    ]
    lines = ["| model | evaluated as | " + " | ".join(head) + " |", "|---" * (len(head) + 2) + "|"]
    for r in results:
        label = f"`{r['model']}`" + (f" ({r['folder']})" if r["folder"] != r["model"] else "")
        cells = []
        for k in keys:
            vals = np.array([s[k] for s in r["per_split"]])
            cells.append(f"{np.nanmean(vals):.3f} ± {np.nanstd(vals):.3f}")
        lines.append(
            f"| {label} | {_split_label(r)}, own test split ({len(r['per_split'])} splits) | "
            + " | ".join(cells)
            + " |"
        )
        e = r["ensemble"]
        lines.append(
            f"| {label} | ensemble of held-out members ({e['n']} records, "
            f"{e['members_per_record']:.1f} members each) | " + " | ".join(f"{e[k]:.3f}" for k in keys) + " |"
        )
    n_bins = results[0]["ensemble"]
    lines += [
        "",
        "Records per ε̄ bin (ensemble row): "
        + ", ".join(f"{lo}–{hi if np.isfinite(hi) else '∞'}: {n_bins[f'n bin {lo}-{hi}']}" for lo, hi in BINS)
        + ". Median predicted/true ε̄ per bin (ensemble row): "
        + "; ".join(
            f"`{r['model']}` " + ", ".join(f"{r['ensemble'][f'eps ratio {lo}-{hi}']:.2f}" for lo, hi in BINS)
            for r in results
        )
        + ".",
    ]
    for r in results:
        if r.get("target") == "electronic":
            per = np.array([s["n_mae"] for s in r["per_split"]])
            lines += [
                "",
                f"`{r['model']}` predicts ε∞: principal refractive indices n = √λ, mean |Δn| {per.mean():.3f} ± "
                f"{per.std():.3f} ({_split_label(r)}, own test split), {r['ensemble']['n_mae']:.3f} (ensemble of "
                "held-out members).",
            ]
    lines += ["", "| model | evaluated as | " + " | ".join(SYSTEMS) + " |", "|---" * (len(SYSTEMS) + 2) + "|"]
    for r in results:
        cells = [f"{np.nanmean([s[c] for s in r['per_split']]):.3f}" for c in SYSTEMS]
        lines.append(
            f"| `{r['model']}` | {_split_label(r)} (mean of {len(r['per_split'])} splits) | " + " | ".join(cells) + " |"
        )
        lines.append(
            f"| `{r['model']}` | ensemble of held-out members | "
            + " | ".join(f"{r['ensemble'][c]:.3f}" for c in SYSTEMS)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="+", default=["default", "fast"])
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    ap.add_argument("--json", type=Path, default=Path("runs/evaluate_ensemble.json"))
    args = ap.parse_args()
    results = [evaluate(name) for name in args.model]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    text = table(results)
    print(text)
    if args.write:
        cmd = f"Command: `python benchmarks/accuracy/evaluate_ensemble.py --model {' '.join(args.model)} --write`."
        write_section(
            Path("BENCHMARKS.md"),
            "## Shipped ensembles as users get them (canonical cell, frame averaging)",
            text + "\n\n" + cmd,
        )


if __name__ == "__main__":
    main()
