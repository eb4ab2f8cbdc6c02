"""``goectp evaluate``: a model's metrics, per-crystal-system table and parity plot on a data set."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from goectp.canonical import uses_canonical_cell
from goectp.cli.common import add_data_options, data_file, graph_set, shipped


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``evaluate``."""
    p = sub.add_parser("evaluate", help="evaluate a model: metrics, per-crystal-system table, parity plot")
    add_data_options(p)
    p.add_argument("--model", default="default", help=f"shipped model ({shipped()}) or checkpoint path")
    p.add_argument("--split-seed", type=int, default=None, help="evaluate on this split's test set only")
    p.add_argument("--out", default="runs/evaluation/report")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Write ``OUT.md``, ``OUT.json`` and ``OUT.png``; print the metrics as JSON."""
    from goectp.api import load_model, predict_graphs, prediction_target
    from goectp.data import random_split
    from goectp.evaluation import (
        metrics_markdown,
        parity_plot,
        per_system_mae,
        table2_markdown,
        tensor_metrics,
        write_report,
    )

    model = load_model(args.model)
    target = prediction_target(model)
    if args.target not in (None, target):
        raise ValueError(f"{args.model} predicts the {target} tensor; comparing it with the {args.target} one is wrong")
    gs = graph_set(
        data_file(args),
        model.config.node_features,
        k=model.config.k_neighbors,
        canonical=uses_canonical_cell(model.config),
    )
    if args.split_seed is not None:
        gs = gs.subset(random_split(len(gs), args.split_seed)["test"])
    true = gs.targets(target)
    pred = predict_graphs(gs.graphs, model, device=args.device)
    if pred.ndim == 4:
        pred = pred.mean(axis=0)
    out = Path(args.out)
    met = tensor_metrics(pred, true)
    per = per_system_mae(pred, true, gs.crystal_systems)
    png = parity_plot(pred, true, out.with_suffix(".png"), title=f"{args.model} on {len(gs)} structures")
    write_report(
        out,
        f"Evaluation of {args.model} ({target} tensor)",
        {
            "MAE per crystal system": table2_markdown({args.model: {k: (v, 0.0) for k, v in per.items()}}),
            "Metrics": metrics_markdown({args.model: {k: (v, 0.0) for k, v in met.items()}}),
            "Parity plot": f"![parity]({png.name})",
        },
        {"metrics": met, "per_system": per},
    )
    print(json.dumps({"metrics": met, "per_system": per}, indent=1))
    print(f"wrote {out.with_suffix('.md')}, {out.with_suffix('.json')}, {png}")
    return 0
