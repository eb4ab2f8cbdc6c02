"""Paired comparison of the tail experiments (``benchmarks/experiments/tail_experiments.sh``) against their baseline.

For each variant and split: the best validation MAE (the only number used to choose; for ``--max-abs`` runs,
which select on a filtered validation set, recomputed on the whole one) and the test MAE of that checkpoint, from
``<runs>/<variant>/split<k>/metrics.json``; the paired difference to the baseline on the same split (mean, splits
better, paired t-test). Then, from ``<runs>/evaluation.json`` (``evaluate_ensemble.py``), the test metrics the
issue asks for: component MAE per ε̄ bin, ε̄ Spearman and the top-5 % recall, members on their own test splits
(mean of 5) and the ensemble of held-out members.

    python benchmarks/experiments/tail_report.py --runs runs/tail
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path

import numpy as np
from scipy.stats import ttest_rel

BIN_KEYS = ("bin 0-10", "bin 10-30", "bin 30-100", "bin 100-inf")
BIN_HEAD = ("ε̄ < 10", "10–30", "30–100", "≥ 100")


@cache
def _canonical_graphs(k: int):
    """The open set's canonical-cell graphs, read once per report (every ``--max-abs`` split needs them)."""
    from goectp.data import DIELECTRIC_FILE, data_dir, load_graph_set

    return load_graph_set(data_dir() / DIELECTRIC_FILE, k=k, progress=False, canonical=True)


def whole_validation_mae(checkpoint: Path, train_config: dict) -> float:
    """Validation MAE of a checkpoint on its split's *whole* validation set (``--max-abs`` runs select on a filtered
    one, whose MAE is not comparable with the other variants')."""
    from goectp.api import predict_graphs
    from goectp.checkpoint import load_checkpoint
    from goectp.training import TrainConfig
    from goectp.training.experiment import split_graphs

    model = load_checkpoint(checkpoint)
    gs = _canonical_graphs(model.config.k_neighbors)
    cfg = TrainConfig(**{**train_config, "max_abs": None})
    val = split_graphs(gs, cfg)["val"]
    pred = predict_graphs(val.graphs, model, device="cpu")
    return float(np.abs(pred - val.targets(cfg.target)).mean())


def split_metrics(run: Path) -> dict[int, dict]:
    """``{split: {"val", "test", "test_filtered", "best_epoch", "seconds"}}`` of one variant's finished splits;
    ``val`` is always on the whole validation set."""
    out = {}
    for path in sorted(run.glob("split*/metrics.json")):
        m = json.loads(path.read_text())
        val = m["best_val_mae"]
        if m["train_config"].get("max_abs") is not None:
            val = whole_validation_mae(path.parent / "best.pt", m["train_config"])
        out[int(m["split_seed"])] = {
            "val": val,
            "test": m["test"]["all"]["mae"],
            "test_filtered": m["test"]["filtered"]["mae"],
            "best_epoch": m["best_epoch"],
            "seconds": m["epoch_seconds_median"],
            "epochs": m["train_config"]["epochs"],
        }
    return out


def paired(variant: dict[int, dict], baseline: dict[int, dict], key: str) -> str:
    common = sorted(set(variant) & set(baseline))
    if not common:
        return "–"
    delta = np.array([variant[s][key] - baseline[s][key] for s in common])
    better = int((delta < 0).sum())
    p = ""
    if len(common) > 2:
        p = f", p = {ttest_rel([variant[s][key] for s in common], [baseline[s][key] for s in common]).pvalue:.2f}"
    return f"{delta.mean():+.3f} ({better}/{len(common)} better{p})"


def report(runs: Path, baseline: str = "baseline") -> str:
    variants = sorted((p.name for p in runs.iterdir() if (p / "split0").is_dir()), key=lambda n: (n != baseline, n))
    metrics = {v: split_metrics(runs / v) for v in variants}
    base = metrics[baseline]
    lines = [
        "| variant | splits done | best epochs | val MAE | Δ val vs baseline (paired) | test MAE | Δ test vs baseline "
        "(paired) | test MAE (\\|ε\\| < 100) | s / epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        m = metrics[v]
        if not m:
            continue
        splits = sorted(m)
        mean = {k: np.mean([m[s][k] for s in splits]) for k in ("val", "test", "test_filtered", "seconds")}
        lines.append(
            f"| {v} | {len(splits)} ({m[splits[0]]['epochs']} epochs) | "
            + ", ".join(str(m[s]["best_epoch"]) for s in splits)
            + f" | {mean['val']:.3f} | {paired(m, base, 'val') if v != baseline else '–'} | {mean['test']:.3f} | "
            + f"{paired(m, base, 'test') if v != baseline else '–'} | {mean['test_filtered']:.3f} | "
            + f"{mean['seconds']:.1f} |"
        )
    evaluation = runs / "evaluation.json"
    if evaluation.exists():
        results = json.loads(evaluation.read_text())
        head = ["component MAE", *(f"MAE {b}" for b in BIN_HEAD), "ε̄ Spearman", "top-5 % recall"]
        lines += ["", "| variant | evaluated as | " + " | ".join(head) + " |", "|---" * (len(head) + 2) + "|"]
        keys = ["mae", *BIN_KEYS, "spearman_eps_mean", "top5_recall"]
        for r in results:
            name = Path(r["model"]).name
            cells = [f"{np.nanmean([s[k] for s in r['per_split']]):.3f}" for k in keys]
            lines.append(f"| {name} | members, own test split (mean of 5) | " + " | ".join(cells) + " |")
            e = r["ensemble"]
            lines.append(f"| {name} | ensemble of held-out members | " + " | ".join(f"{e[k]:.3f}" for k in keys) + " |")
        e = results[0]["ensemble"]
        lines += [
            "",
            "Records per ε̄ bin (ensemble rows): "
            + ", ".join(f"{h}: {e['n ' + k]}" for h, k in zip(BIN_HEAD, BIN_KEYS))
            + ". Median predicted/true ε̄ per bin (ensemble rows): "
            + "; ".join(
                f"{Path(r['model']).name} " + ", ".join(f"{r['ensemble']['eps ratio ' + k[4:]]:.2f}" for k in BIN_KEYS)
                for r in results
            )
            + ".",
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=Path("runs/tail"))
    ap.add_argument("--baseline", default="baseline")
    args = ap.parse_args()
    text = report(args.runs, args.baseline)
    print(text)


if __name__ == "__main__":
    main()
