"""The shipped high-κ list with the physics term: ``assets/screening/top_high_k.csv`` re-ranked by the physics stage.

Runs :func:`goectp.screening.physics_stage.physics_rerank` (the shipped ``physics`` model) on the ``--top`` best rows
of the shipped list, reading their structures from the pool, and writes the list back with the stage's columns
(``eps_mean_physics``, ``physics_used``, ``physics_note``, ``score_physics``, ``rank_physics``); the stage's summary
goes into ``screening_summary.json`` under ``"physics"``. What ``goectp screen --physics-top N`` does at the end of
a screen, applied to the screen that ships.

    python benchmarks/recipes/physics_top_list.py --top 60
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def main() -> None:
    from goectp.csvsafe import write_csv
    from goectp.registry import assets_dir
    from goectp.screening.physics_stage import PHYSICS_COLUMNS, physics_rerank
    from goectp.screening.pool import open_pool

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--top", type=int, default=60)
    p.add_argument("--pool", default="../shared/data/screening_candidates.json.gz")
    args = p.parse_args()
    folder = assets_dir() / "screening"
    summary_path = folder / "screening_summary.json"
    summary = json.loads(summary_path.read_text())
    top = pd.read_csv(folder / "top_high_k.csv").sort_values("rank", kind="stable")
    top = top.drop(columns=[c for c in PHYSICS_COLUMNS if c in top.columns]).reset_index(drop=True)
    kappa = float(summary["provenance"].get("kappa", 1.0))
    reranked, info = physics_rerank(top, open_pool(Path(args.pool)), args.top, kappa)
    write_csv(reranked, folder / "top_high_k.csv", index=False)
    summary["physics"] = {**info, "command": f"python benchmarks/recipes/physics_top_list.py --top {args.top}"}
    summary_path.write_text(json.dumps(summary, indent=2, default=str))
    shown = ["rank_physics", "rank", "id", "formula", "n_sites", "eps_mean", "eps_mean_physics", "physics_note"]
    print(reranked[shown].head(args.top).to_string(index=False))
    print(json.dumps(info))


if __name__ == "__main__":
    main()
