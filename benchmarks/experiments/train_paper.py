"""Run the paper's training protocol (and our ablations) on the shared open MP dielectric set.

Each experiment is a named pair of model/training settings; each (experiment, split) trains in
``runs/<experiment>/split<k>/`` (resumable) and writes ``metrics.json`` and ``test_predictions.npz``.
``--report`` aggregates everything found under ``runs/`` into ``runs/report.md``/``.json`` in the paper's Table 2
layout, adding the mean-tensor baseline computed on the same splits.

    python benchmarks/experiments/train_paper.py --experiments base --splits 0 1 2 3 4 --epochs 100
    python benchmarks/experiments/train_paper.py --report
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from goectp.data import DIELECTRIC_FILE, data_dir, load_graph_set, sha256_file
from goectp.evaluation import metrics_markdown, table2_markdown, write_report
from goectp.evaluation.metrics import mean_tensor_baseline, summarize_splits
from goectp.models import GoeCTPConfig
from goectp.training import TrainConfig, run_split

#: The paper's model as the recorded sweep ran it (docs/changelog.md, "Everything on split 0"): the input cell's frame,
#: sum pooling, no symmetrisation and no frame averaging (added later). Pinned here, not taken from
#: :class:`GoeCTPConfig`'s defaults, which have since become the shipped settings (primitive cell, mean pooling, …).
PAPER = {"variant": "goectp", "cell_reduction": "none", "pooling": "sum", "symmetrize": False, "frame_average": False}
BEST = {"pooling": "mean", "symmetrize": True}

EXPERIMENTS: dict[str, tuple[dict, dict]] = {
    "base": (PAPER, {}),
    "niggli": (PAPER | {"cell_reduction": "niggli"}, {}),
    "mean_pool": (PAPER | {"pooling": "mean"}, {}),
    "symmetrize": (PAPER | {"symmetrize": True}, {}),
    "pos_def": (PAPER | {"positive_definite": True}, {}),
    "best": (PAPER | BEST | {"cell_reduction": "niggli"}, {}),
    "best_prim": (PAPER | BEST | {"cell_reduction": "primitive"}, {}),
    "noframe_aug": (PAPER | {"use_frame": False}, {"augment_rotations": True}),
    "best_noframe_aug": (PAPER | BEST | {"use_frame": False}, {"augment_rotations": True}),
    "mat": (PAPER | {"variant": "mat"}, {}),
    "icom": (PAPER | {"variant": "icom"}, {}),
    "filter100": (PAPER, {"max_abs": 100.0}),
}


def report(runs: Path, gs) -> None:
    results: dict[str, dict[int, dict]] = {}
    for f in sorted(runs.glob("*/split*/metrics.json")):
        results.setdefault(f.parent.parent.name, {})[int(f.parent.name[5:])] = json.loads(f.read_text())
    all_splits = sorted({s for r in results.values() for s in r})
    results["mean_tensor_baseline"] = {s: {"test": mean_tensor_baseline(gs, s)} for s in all_splits}
    sections, data = {}, {}
    for subset in ("all", "filtered"):
        t2, mt = {}, {}
        for name, per in results.items():
            splits = sorted(per)
            label = f"{name} ({len(splits)} split{'s' * (len(splits) > 1)}"
            ep = [per[s].get("train_config", {}).get("epochs") for s in splits]
            label += f", {'/'.join(map(str, ep))} epochs)" if None not in ep else ")"
            t2[label] = summarize_splits([per[s]["test"][subset]["per_system"] for s in splits])
            mt[label] = summarize_splits(
                [{k: v for k, v in per[s]["test"][subset].items() if k != "per_system"} for s in splits]
            )
        what = "all test structures" if subset == "all" else "test structures with every |component| < 100"
        sections[f"MAE per crystal system — {what}"] = table2_markdown(t2)
        sections[f"All metrics — {what}"] = metrics_markdown(mt)
        data[subset] = {"per_system": t2, "metrics": mt}
    times = {
        n: float(np.median([p["epoch_seconds_median"] for p in per.values()]))
        for n, per in results.items()
        if all("epoch_seconds_median" in p for p in per.values())
    }
    sections["Median epoch time (s, this machine, shared CPU)"] = "\n".join(f"- {k}: {v:.2f}" for k, v in times.items())
    write_report(runs / "report", "GoeCTP on the open MP dielectric set (total tensor)", sections, data)
    print((runs / "report.md").read_text())


def main() -> None:
    from goectp.logs import setup_logging

    setup_logging()  # the library's progress messages (resumed from…, epoch lines) on stderr
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiments", nargs="*", default=[], choices=sorted(EXPERIMENTS))
    ap.add_argument("--splits", nargs="*", type=int, default=[0])
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--runs", type=Path, default=Path("runs"))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    path = data_dir(args.data_dir) / DIELECTRIC_FILE
    gs = load_graph_set(path, progress=False)
    sha = sha256_file(path)
    for name in args.experiments:
        mcfg, tcfg = EXPERIMENTS[name]
        for split in args.splits:
            out = args.runs / name / f"split{split}"
            if (out / "metrics.json").exists():
                print(f"{name} split {split}: done already")
                continue
            cfg = TrainConfig(epochs=args.epochs, split_seed=split, seed=split, progress=False, **tcfg)
            res = run_split(gs, GoeCTPConfig(**mcfg), cfg, out, data_sha256=sha)
            print(
                f"{name} split {split}: test MAE {res['test']['all']['mae']:.4f} "
                f"(filtered {res['test']['filtered']['mae']:.4f}), best epoch {res['best_epoch']}",
                flush=True,
            )
    if args.report:
        report(args.runs, gs)


if __name__ == "__main__":
    main()
