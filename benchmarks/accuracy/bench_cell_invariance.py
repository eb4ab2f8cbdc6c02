"""Cell-choice invariance of the *shipped* models on every structure of the open set.

The same infinite crystal, described by another unit cell, must get the same tensor. For each structure of
``mp_dielectric_open.json.gz`` this builds five other descriptions — a random unimodular basis change with det +1 and
one with det -1, a 2x1x1 and a 2x2x1 supercell, and all atoms translated by a random vector and wrapped — predicts
all six with each shipped model in float64, exactly as :func:`goectp.predict` does (canonical cell, frame averaging,
node features of the model), and records the largest component difference to the original cell's tensor.

    python benchmarks/accuracy/bench_cell_invariance.py --shard 0/2 &
    python benchmarks/accuracy/bench_cell_invariance.py --shard 1/2
    python benchmarks/accuracy/bench_cell_invariance.py --report            # merges the shards, prints the table

Shards land in ``runs/cell_invariance/``; ``--report --write`` puts the table into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure

from goectp.api import predict_graphs
from goectp.canonical import uses_canonical_cell
from goectp.checkpoint import load_checkpoint
from goectp.data import DIELECTRIC_FILE, data_dir, read_dielectric_json
from goectp.evaluation.cell_choice import change_basis, random_unimodular, supercell
from goectp.evaluation.report import write_section
from goectp.features import with_node_features
from goectp.graph import build_crystal_graph
from goectp.registry import available_models, checkpoint_files, model_aliases

PERTURBATIONS = ("unimodular det +1", "unimodular det -1", "supercell 2x1x1", "supercell 2x2x1", "translated + wrapped")
OUT = Path("runs/cell_invariance")
THRESHOLD = 1e-6
#: per-model summaries of every run written with ``--report --write`` (kept in the repository; ``runs/`` is not)
SUMMARY = Path(__file__).resolve().parent / "results" / "cell_invariance.json"


def perturbed(structure: Structure, kind: str, rng: np.random.Generator) -> Structure:
    if kind.startswith("unimodular"):
        u = random_unimodular(rng)
        if (np.linalg.det(u) > 0) != kind.endswith("+1"):
            u = u @ np.diag([1, 1, -1])
        return change_basis(structure, u)
    if kind == "supercell 2x1x1":
        return supercell(structure, (2, 1, 1))
    if kind == "supercell 2x2x1":
        return supercell(structure, (2, 2, 1))
    moved = structure.copy()
    moved.translate_sites(list(range(len(moved))), rng.random(3), frac_coords=True, to_unit_cell=True)
    return moved


def member_networks(models: list[str]) -> tuple[dict[str, list[Path]], dict[Path, torch.nn.Module]]:
    """Each model's member files, and one float64 network per distinct file: members shared between shipped models
    (``combined`` lists the decomposed families' files) are evaluated once per cell, not once per model."""
    files = {name: [f.resolve() for f in checkpoint_files(name)] for name in models}
    nets = {f: load_checkpoint(f).double().eval() for f in dict.fromkeys(f for fs in files.values() for f in fs)}
    for name, fs in files.items():
        if not all(uses_canonical_cell(nets[f].config) for f in fs):
            raise SystemExit(f"{name}: not a canonical-cell model, nothing to measure here")
    return files, nets


def run_shard(shard: int, shards: int, models: list[str], limit: int | None, ids: set[str] | None = None) -> Path:
    torch.set_num_threads(1)
    indexed = list(enumerate(read_dielectric_json(data_dir() / DIELECTRIC_FILE)))  # seeds follow the file order
    records = [(g, r) for g, r in indexed[shard::shards] if ids is None or r.id in ids][:limit]
    files, nets = member_networks(models)
    k = next(iter(nets.values())).config.k_neighbors
    feature_names = sorted({n.config.node_features for n in nets.values() if n.config.node_features})
    path = OUT / (f"shard{shard}of{shards}.json" if ids is None else f"subset-shard{shard}of{shards}.json")
    partial = path.with_suffix(".partial.json")
    rows = resumed_rows(partial, models, [r.id for _, r in records])
    t0 = time.perf_counter()
    for i, (seed, rec) in enumerate(records[len(rows) :], start=len(rows)):
        rng = np.random.default_rng(seed)  # fixed per structure
        cells = [rec.structure] + [perturbed(rec.structure, kind, rng) for kind in PERTURBATIONS]
        try:
            graphs = [build_crystal_graph(c, k=k, canonical=True, max_sites=2000) for c in cells]
        except Exception as exc:  # reported, never silently dropped
            rows.append({"id": rec.id, "error": f"{type(exc).__name__}: {exc}"})
            continue
        featured = {fname: with_node_features(graphs, None, fname) for fname in feature_names}
        member_pred = {  # [6, 3, 3] per distinct member file
            f: predict_graphs(featured[net.config.node_features] if net.config.node_features else graphs, net, "cpu")
            for f, net in nets.items()
        }
        row = {"id": rec.id, "n_sites": len(rec.structure), "frames": int(graphs[0].num_frame_ops)}
        for name, fs in files.items():
            pred = np.stack([member_pred[f] for f in fs]).mean(axis=0)  # the ensemble mean, as Ensemble gives it
            row[name] = [float(np.abs(p - pred[0]).max()) for p in pred[1:]]
        rows.append(row)
        if (i + 1) % 25 == 0:
            OUT.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps({"models": list(models), "rows": rows}))
            print(f"shard {shard}: {i + 1}/{len(records)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged_with_earlier(path, models, rows)))
    partial.unlink(missing_ok=True)
    return path


def resumed_rows(partial: Path, models: list[str], ids: list[str]) -> list[dict]:
    """Rows an interrupted run of the same models over the same structures already measured (else none)."""
    if not partial.exists():
        return []
    done = json.loads(partial.read_text())
    rows = done.get("rows", [])
    if done.get("models") != list(models) or [r["id"] for r in rows] != ids[: len(rows)]:
        return []
    print(f"resuming after {len(rows)} structures measured earlier ({partial})", flush=True)
    return rows


def merged_with_earlier(path: Path, models: list[str], rows: list[dict]) -> dict:
    """The shard's results, with the columns of other models kept from an earlier run of the same structures
    (so one new model is measured without re-running the others); a run with other structures replaces it."""
    shard = {"models": list(models), "perturbations": PERTURBATIONS, "rows": rows}
    if not path.exists():
        return shard
    old = json.loads(path.read_text())
    same = old.get("perturbations") == list(PERTURBATIONS) and [r["id"] for r in old["rows"]] == [r["id"] for r in rows]
    if not same:
        return shard
    kept = [m for m in old["models"] if m not in models]
    for new, earlier in zip(rows, old["rows"]):
        for m in kept:
            if m in earlier:
                new[m] = earlier[m]
    shard["models"] = kept + list(models)
    return shard


def summarize(rows: list[dict], name: str, perturbations: list[str]) -> dict:
    """One model's drift over the measured structures: per perturbation median, max and count above 1e-6."""
    drift = np.array([r[name] for r in rows])  # [n, 5]
    worst = sorted(rows, key=lambda r: -max(r[name]))[:3]
    return {
        "structures": len(rows),
        "measured": date.today().isoformat(),
        "perturbations": {
            kind: {
                "median": float(np.median(drift[:, j])),
                "max": float(drift[:, j].max()),
                "above_threshold": int((drift[:, j] > THRESHOLD).sum()),
            }
            for j, kind in enumerate(perturbations)
        },
        "worst": [[r["id"], max(r[name])] for r in worst],
    }


def report(write: bool, prefix: str = "") -> str:
    """The table of the shards in ``runs/cell_invariance``; with ``write``, merged into :data:`SUMMARY` (models
    measured in an earlier run keep their rows, with the date they were measured) and written to BENCHMARKS.md."""
    shards = [json.loads(p.read_text()) for p in sorted(OUT.glob(f"{prefix}shard*.json"))]
    models, perturbations = shards[0]["models"], list(shards[0]["perturbations"])
    rows = [r for s in shards for r in s["rows"]]
    errors = [r for r in rows if "error" in r]
    ok = [r for r in rows if "error" not in r]
    measured = {name: summarize(ok, name, perturbations) for name in models}
    if write:
        saved = json.loads(SUMMARY.read_text())["models"] if SUMMARY.exists() else {}
        measured = {**{k: v for k, v in saved.items() if k not in measured}, **measured}
        SUMMARY.write_text(json.dumps({"models": measured}, indent=1) + "\n")
    lines = [
        f"{len(ok)} structures of the open set ({len(errors)} could not be built: "
        f"{'; '.join(r['id'] + ': ' + r['error'][:80] for r in errors[:3]) or 'none'}); max |Δ| over the 9 "
        "components between the original cell and another description, float64, ensemble mean.",
        "",
        "| model | perturbation | median | max | structures > 1e-6 |",
        "|---|---|---|---|---|",
    ]
    for name, m in measured.items():
        for kind, d in m["perturbations"].items():
            lines.append(f"| {name} | {kind} | {d['median']:.1e} | {d['max']:.1e} | {d['above_threshold']} |")
        worst = ", ".join(f"{i} ({v:.1e})" for i, v in m["worst"])
        lines.append(f"| {name} | worst (measured {m['measured']}, {m['structures']} structures) | {worst} | | |")
    frames = np.array([r["frames"] for r in ok])
    lines += [
        "",
        f"Frames per structure (cosets of the lattice group by the point group): mean {frames.mean():.2f}, "
        + ", ".join(f"{k}: {c}" for k, c in zip(*np.unique(frames, return_counts=True))),
    ]
    table = "\n".join(lines)
    if write:
        cmd = (
            "Command: `python benchmarks/accuracy/bench_cell_invariance.py --shard 0/2 --models …` and "
            "`--shard 1/2 --models …` (in parallel; without `--models`, every shipped model), then "
            "`python benchmarks/accuracy/bench_cell_invariance.py --report --write`, which keeps the rows of models "
            "not re-measured from `benchmarks/accuracy/results/cell_invariance.json`."
        )
        write_section(
            Path("BENCHMARKS.md"), "## Cell-choice invariance of the shipped models (open set)", table + "\n\n" + cmd
        )
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shard", default="0/1", help="i/n: this process takes every n-th structure from i")
    ap.add_argument(
        "--models",
        nargs="*",
        default=None,
        help="shipped models to measure (default: every folder in assets/models); the columns of other models "
        "measured earlier on the same structures are kept",
    )
    ap.add_argument("--limit", type=int, default=None, help="at most this many structures per shard")
    ap.add_argument(
        "--ids",
        type=Path,
        default=None,
        help="JSON list of structure ids: measure only those (results in runs/cell_invariance/subset-*)",
    )
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--write", action="store_true", help="with --report: write the table into BENCHMARKS.md")
    args = ap.parse_args()
    if args.report:
        print(report(args.write and args.ids is None, prefix="subset-" if args.ids else ""))
        return
    i, n = (int(x) for x in args.shard.split("/"))
    ids = set(json.loads(args.ids.read_text())) if args.ids else None
    models = args.models or sorted(set(available_models()) - set(model_aliases()))
    print(run_shard(i, n, models, args.limit, ids))


if __name__ == "__main__":
    main()
