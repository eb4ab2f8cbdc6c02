"""Split-0 comparison table of every training run under runs/ (same split, same test set), as Markdown.

python scripts/results_table.py runs/sweep20 runs/sweep40 runs/paper50 runs/paper
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from goectp.data import DIELECTRIC_FILE, data_dir, load_graph_set
from goectp.evaluation.metrics import mean_tensor_baseline


def main() -> None:
    rows = []
    for root in map(Path, sys.argv[1:]):
        for f in sorted(root.glob("*/split0/metrics.json")):
            m = json.loads(f.read_text())
            cfg = m["model_config"]
            cell = {"none": "input", "niggli": "Niggli", "primitive": "primitive Niggli"}[cfg["cell_reduction"]]
            opts = [f"{cfg['pooling']} pool", f"frame of {cell} cell" if cfg["use_frame"] else "no frame"]
            opts += ["symmetrised"] if cfg["symmetrize"] else []
            opts += ["pos.-def."] if cfg["positive_definite"] else []
            opts += ["rotation aug."] if m["train_config"]["augment_rotations"] else []
            t = m["test"]
            rows.append(
                (
                    f.parent.parent.name,
                    cfg["variant"],
                    ", ".join(opts),
                    m["train_config"]["epochs"],
                    t["all"]["mae"],
                    t["filtered"]["mae"],
                    t["all"]["mae_eps_mean"],
                    t["all"]["ewt_25"],
                    m["epoch_seconds_median"],
                )
            )
    base = mean_tensor_baseline(load_graph_set(data_dir() / DIELECTRIC_FILE, progress=False), 0)
    print("| run | backbone | settings | epochs | test MAE | MAE (\\|ε\\|<100) | MAE ε̄ | EwT 25% | s/epoch |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| mean-tensor baseline | – | training-set mean tensor | – | {base['all']['mae']:.3f} | "
        f"{base['filtered']['mae']:.3f} | {base['all']['mae_eps_mean']:.3f} | {base['all']['ewt_25']:.3f} | – |"
    )
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.3f} | {r[5]:.3f} | {r[6]:.3f} | {r[7]:.3f} | {r[8]:.1f} |")


if __name__ == "__main__":
    main()
