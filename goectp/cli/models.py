"""``goectp models``: the shipped models, one line each — what, how accurate, how costly."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``models``."""
    p = sub.add_parser("models", help="list the shipped models with a description, accuracy and cost")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from goectp.catalog import model_catalog
    from goectp.registry import available_models, model_aliases

    catalog, aliases = model_catalog(), model_aliases()
    rows = []
    for name in available_models():
        info = catalog.get(aliases.get(name, name))
        rows.append({"name": name, "alias_of": aliases.get(name), **(asdict(info) if info else {"description": ""})})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["name"]) for r in rows) if rows else 0
    for r in rows:
        alias = f"(= {r['alias_of']}) " if r["alias_of"] else ""
        info = catalog.get(r["alias_of"] or r["name"])
        print(f"{r['name']:<{width}}  {alias}{info.line() if info else 'no catalog entry'}")
    print(f"{'physics':<{width}}  {physics_line()}")
    return 0


def physics_line() -> str:
    """The ``physics`` model's line: what it is and its 5-split test numbers from ``assets/physics/physics.json``
    (test MAE, ε̄ Spearman, and the ±2σ coverage of ε̄ with its own σ)."""
    from goectp.physics.config import PHYSICS_FILE
    from goectp.registry import assets_dir

    line = (
        "the default corrected by the physics term (Born charges × SevenNet force constants; seconds per "
        "structure): goectp predict --model physics"
    )
    try:
        raw = json.loads((assets_dir() / PHYSICS_FILE).read_text(encoding="utf-8"))
        m = raw["metrics_5_split_mean"][raw["rule"]]
        line += f" — test MAE {float(m['mae']):.3f}, ε̄ Spearman {float(m['spearman_eps_mean']):.3f}"
        coverage = m.get("coverage_2sigma_mean_fitted")  # its own σ (sigma_scale), when fitted
        return line + (f", ±2σ {100 * float(coverage):.1f} %" if coverage is not None else "")
    except (OSError, ValueError, KeyError, TypeError):  # no description shipped: the line without numbers
        return line
