"""Paired comparison of training routes (scratch, pretrained, foundation features) split by split.

A *run folder* holds one folder per route with ``split<N>/metrics.json`` (:func:`goectp.training.run_split`). Each
route is compared with the scratch run of the same setting (pooling / frame / symmetrisation) on the splits both
have: Δ = MAE(route) − MAE(scratch), negative = better.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from goectp.models import GoeCTPConfig

#: The shipped setting (primitive-cell frame, mean pooling, point-group symmetrisation) that every route of the
#: pretraining comparison uses, spelled out so that a change of the config defaults cannot change it halfway.
BASE = {"variant": "goectp", "pooling": "mean", "cell_reduction": "primitive", "symmetrize": True}


def model_config(node_features: str | None = None, layers: int = 1) -> GoeCTPConfig:
    """The compared backbone: :data:`BASE` with ``layers`` message layers and optional extra node features."""
    extra = {"node_features": node_features, "node_feature_dim": 128} if node_features else {}
    return GoeCTPConfig(**BASE, num_layers=layers, **extra)


def layers_suffix(layers: int) -> str:
    """Run-name suffix of a depth other than the paper's one message layer (``-layers2``)."""
    return "" if layers == 1 else f"-layers{layers}"


def route_name(route: str, dataset: str, pretrain_epochs: int, lr: float, layers: int = 1) -> str:
    """The run folder of a route: ``scratch``/``chgnet`` as they are, a pretrained route with its pretraining set,
    epochs and (when not 1e-3) fine-tuning learning rate, e.g. ``pretrained-log-bulk-modulus-e100-layers2``."""
    if not route.startswith("pretrained"):
        return route + layers_suffix(layers)
    return f"{route}-{dataset}-e{pretrain_epochs}" + ("" if lr == 1e-3 else f"-lr{lr:g}") + layers_suffix(layers)


def collect_split_metrics(runs: str | Path, reference: str | Path | None = None) -> dict[str, dict[int, dict]]:
    """``{route: {split: metrics}}`` from ``runs/<route>/split<N>/metrics.json`` (and a reference scratch run)."""
    runs = Path(runs)
    results: dict[str, dict[int, dict]] = {}
    for f in sorted(runs.glob("*/split*/metrics.json")):
        results.setdefault(f.parent.parent.name, {})[int(f.parent.name[5:])] = json.loads(f.read_text())
    if reference is not None and Path(reference).exists():
        for f in sorted(Path(reference).glob("split*/metrics.json")):
            results.setdefault(f"scratch, paper setting ({reference})", {})[int(f.parent.name[5:])] = json.loads(
                f.read_text()
            )
    return results


def route_order(results: dict[str, dict]) -> list[str]:
    """Scratch routes first, then the others, each group sorted by name."""
    return sorted(results, key=lambda n: (not n.startswith("scratch"), n))


def setting(model_config: dict) -> str:
    """pooling/frame/symmetrisation of a model config, e.g. 'mean/primitive/sym' (defaults of the time filled in),
    and the depth when it is not the paper's ('mean/primitive/sym/2 layers'): routes pair with scratch of the same."""
    cfg = GoeCTPConfig(**{k: v for k, v in model_config.items() if k in GoeCTPConfig.__dataclass_fields__})
    depth = "" if cfg.num_layers == GoeCTPConfig(variant=cfg.variant).num_layers else f"/{cfg.num_layers} layers"
    return f"{cfg.pooling}/{cfg.cell_reduction}/{'sym' if cfg.symmetrize else 'nosym'}{depth}"


def paired_comparison(results: dict[str, dict[int, dict]]) -> tuple[list[str], dict[str, dict]]:
    """The Markdown table rows (header first) and ``{route: {"splits", "delta_vs_scratch": {subset: {split: Δ}}}}``.

    Raises ``ValueError`` when the splits of one route were run with different settings.
    """
    order = route_order(results)
    scratch_by_setting: dict[str, dict] = {}
    for name in (n for n in order if n.startswith("scratch")):
        scratch_by_setting.setdefault(setting(next(iter(results[name].values()))["model_config"]), results[name])
    lines = [
        "| route | setting | splits | test MAE per split | Δ vs scratch per split | mean Δ (all) "
        "| mean Δ (filtered) | better than scratch | best val MAE (mean) |",
        "|---" * 9 + "|",
    ]
    routes: dict[str, dict] = {}
    for name in order:
        per = results[name]
        cfgs = {setting(p["model_config"]) for p in per.values()}
        if len(cfgs) > 1:
            raise ValueError(f"{name}: splits were run with different settings {cfgs}")
        scratch = scratch_by_setting.get(next(iter(cfgs)), {})
        common = [s for s in sorted(per) if s in scratch]
        delta = {
            sub: [per[s]["test"][sub]["mae"] - scratch[s]["test"][sub]["mae"] for s in common]
            for sub in ("all", "filtered")
        }
        mean = {sub: f"{np.mean(d):+.3f}" if d else "" for sub, d in delta.items()}
        wins = (
            f"{sum(d < 0 for d in delta['all'])} of {len(common)} splits"
            if common and not name.startswith("scratch")
            else ""
        )
        lines.append(
            f"| {name} | {cfgs.pop()} | {','.join(map(str, sorted(per)))} | "
            + " ".join(f"{per[s]['test']['all']['mae']:.3f}" for s in sorted(per))
            + " | "
            + " ".join(f"{d:+.3f}" for d in delta["all"])
            + f" | {mean['all']} | {mean['filtered']} | {wins} | "
            + f"{np.mean([per[s]['best_val_mae'] for s in per]):.3f} |"
        )
        routes[name] = {
            "splits": sorted(per),
            "delta_vs_scratch": {sub: dict(zip(common, d)) for sub, d in delta.items()},
        }
    return lines, routes
