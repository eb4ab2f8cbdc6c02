"""The screening funnel: how much of the full default screen's top lists does ``fast`` + a re-score recover?

Runs ``goectp screen --model fast --rescore-model default --rescore-top N_max`` on the shared pool (resumable, in
``--out``), then, for each ``N ≤ N_max``, replays the funnel exactly from its two score tables: the union of the
``N`` best candidates of ``fast``'s two lists, re-scored by the default (its scores from the run), top ``--top``
drawn from those. Recall = the share of the full default screen's top lists (``assets/screening/top_high_k.csv``,
``top_anisotropy.csv``, made by scoring every candidate with the default) that the funnel's lists contain. Cost =
candidates the default scores, and the wall time of each stage (from the run's summary).

    python benchmarks/accuracy/funnel_recall.py --out runs/funnel --rescore-top 600 --sizes 60 120 240 400 600
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from goectp.screening.engine import ScreeningOptions
from goectp.screening.ranking import rank_candidates
from goectp.screening.run import run_screening
from goectp.screening.store import WorkDir, deduplicate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", default="../shared/data/screening_candidates.json.gz")
    p.add_argument("--training", default="../shared/data/mp_dielectric_open.json.gz")
    p.add_argument("--reference", default="assets/screening")
    p.add_argument("--out", default="runs/funnel")
    p.add_argument("--rescore-top", type=int, default=600)
    p.add_argument("--sizes", type=int, nargs="+", default=[60, 120, 240, 400, 600])
    p.add_argument("--top", type=int, default=60)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()

    opts = ScreeningOptions(
        pool=args.pool,
        model="fast",
        out_dir=args.out,
        exclude_training=args.training,
        rescore_model="default",
        rescore_top=args.rescore_top,
        top=args.top,
        workers=args.workers,
        progress=False,
    )
    run = run_screening(opts)
    first = deduplicate(WorkDir(Path(args.out) / "work").read_parts())[0]  # fast's scores, every candidate
    second = deduplicate(WorkDir(Path(args.out) / "rescore" / "work").read_parts())[0].set_index("id")
    reference = {
        name: set(pd.read_csv(Path(args.reference) / f"top_{name}.csv")["id"]) for name in ("high_k", "anisotropy")
    }
    stage = {k: run.summary.get(k) for k in ("seconds_this_run", "structures_per_s_this_run")}
    print(f"stage 1 (fast, whole pool) and stage 2 (default on the top {args.rescore_top}): {json.dumps(stage)}")
    print(f"rescore summary: {json.dumps(run.rescore)}\n")
    print("| re-scored per list N | candidates the default scores | high-κ top-60 recall | anisotropy top-60 recall |")
    print("|---|---|---|---|")
    for n in sorted(args.sizes):
        chosen = rank_candidates(first, opts.kappa, n, opts.min_gap, opts.aniso_min_gap)
        ids = set(chosen.top_high_k["id"]) | set(chosen.top_anisotropy["id"])
        table = pd.concat(
            [
                first[~first["id"].isin(ids)].assign(scored_by="fast"),
                second.loc[sorted(ids & set(second.index))].reset_index().assign(scored_by="default"),
            ],
            ignore_index=True,
        )
        lists = rank_candidates(table, opts.kappa, args.top, opts.min_gap, opts.aniso_min_gap, list_from="default")
        recall = {
            "high_k": len(set(lists.top_high_k["id"]) & reference["high_k"]) / len(reference["high_k"]),
            "anisotropy": len(set(lists.top_anisotropy["id"]) & reference["anisotropy"]) / len(reference["anisotropy"]),
        }
        print(f"| {n} | {len(ids)} | {recall['high_k']:.2f} | {recall['anisotropy']:.2f} |")


if __name__ == "__main__":
    main()
