"""Scratch vs scalar-pretrained vs foundation-feature (CHGNet) GoeCTP on the shipped model's splits of the MP set.

Every route uses the shipped architecture (:data:`BASE`: primitive-cell frame, mean pooling, symmetrisation), the
same splits (``random_split`` seeds), epochs and training settings; only the starting point or the node inputs
differ. Runs land in ``runs/pretrain/<route>/split<k>/`` (resumable); ``--report`` writes
``runs/pretrain/report.md``/``.json`` with paired differences to scratch and the cost of each route.

    python benchmarks/experiments/pretraining.py --splits 0 1 --epochs 40 --pretrain-epochs 100 --threads 1
    python benchmarks/experiments/pretraining.py --report

``--layers 2`` runs every route with two message layers (run folders end in ``-layers2``), as the two-layer shipped
families were trained with ``goectp pretrain`` / ``goectp train --layers 2``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from goectp.data import DIELECTRIC_FILE, data_dir, load_graph_set, sha256_file
from goectp.evaluation import metrics_markdown, table2_markdown, write_report
from goectp.evaluation.compare import (
    BASE,
    collect_split_metrics,
    layers_suffix,
    model_config,
    paired_comparison,
    route_name,
    route_order,
)
from goectp.evaluation.metrics import summarize_splits
from goectp.evaluation.report import write_section
from goectp.models import GoeCTPConfig
from goectp.training import TrainConfig, run_split
from goectp.training.pretrain import backbone_state, featured_scalar_set, load_scalar_set, pretrain

#: feature-model routes → the extractor whose features they add to the node inputs
ROUTE_FEATURES = {"chgnet": "chgnet", "pretrained_chgnet": "chgnet", "sevennet": "sevennet"}


def features_step(path: Path, runs: Path, name: str) -> object:
    from goectp.features import load_featured_graph_set

    t0 = time.perf_counter()
    gs, info = load_featured_graph_set(path, name, progress=False)
    info = {**info, "cache": str(info["cache"]), "seconds_this_call": time.perf_counter() - t0, "n": len(gs)}
    record = runs / f"features_{name}.json"
    if not info["hit"] or not record.exists():  # keep the timing of the run that computed them
        record.write_text(json.dumps(info, indent=1))
    print(f"{name} features: {json.loads(record.read_text())}", flush=True)
    return gs


def _cpu_ms(fn, n: int, repeats: int = 1) -> float:
    """Median CPU time (``time.process_time``: robust to other jobs on the machine) of ``fn()`` per item, in ms."""
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return 1e3 * float(np.median(times)) / n


def time_features(path: Path, n: int, runs: Path, names: tuple[str, ...] = ("chgnet", "sevennet")) -> dict:
    """CPU time per structure (median of repeats) of each foundation-feature extractor, of GoeCTP's own graph
    construction and of the model's forward pass (batches of 64) with and without the features, on ``n`` structures
    spread over the set, all in one process so that the ratios compare like with like."""
    from goectp.api import graphs_for, predict_graphs
    from goectp.data import read_dielectric_json
    from goectp.features import feature_dim, get_extractor
    from goectp.graph import build_crystal_graph
    from goectp.models import GoeCTP

    recs = read_dielectric_json(path)
    structs = [recs[i].structure for i in np.linspace(0, len(recs) - 1, n).astype(int)]
    res = {
        "n": n,
        "atoms_mean": float(np.mean([len(st) for st in structs])),
        "threads": torch.get_num_threads(),
        "graph_cpu_ms_per_structure": _cpu_ms(lambda: [build_crystal_graph(st) for st in structs], n, 3),
    }
    for name in names:
        extractor = get_extractor(name)
        extractor(structs[:2])  # warm-up
        res[f"{name}_cpu_ms_per_structure"] = _cpu_ms(lambda: extractor(structs), n, 3)  # noqa: B023
    for label in ("scratch", *names):
        extra = {} if label == "scratch" else {"node_features": label, "node_feature_dim": feature_dim(label)}
        model = GoeCTP(GoeCTPConfig(**BASE, **extra)).eval()
        graphs = graphs_for(structs, model)
        predict_graphs(graphs[:8], model)  # warm-up
        res[f"forward_{label}_cpu_ms_per_structure"] = _cpu_ms(
            lambda g=graphs, m=model: predict_graphs(g, m, batch_size=64), n, repeats=5
        )
    (runs / "features_timing.json").write_text(json.dumps(res, indent=1))
    print(res, flush=True)
    return res


def pretrain_step(dataset: str, epochs: int, runs: Path, node_features: str | None = None, layers: int = 1) -> Path:
    name = f"pretrain-{dataset}-e{epochs}" + (f"-{node_features}" if node_features else "") + layers_suffix(layers)
    out = runs / name
    if (out / "metrics.json").exists() and json.loads((out / "metrics.json").read_text())["train_config"][
        "epochs"
    ] == epochs:
        print(f"pretraining on {dataset}: done already", flush=True)
        return out / "best.pt"
    t0 = time.perf_counter()
    ss = load_scalar_set(dataset, progress=False)
    mcfg = model_config(node_features, layers)
    if node_features:
        ss = featured_scalar_set(ss, node_features, progress=False)
    graph_seconds = time.perf_counter() - t0
    res = pretrain(ss, mcfg, TrainConfig(epochs=epochs, progress=False), out)
    res["graphs_and_features_seconds_or_cache_load"] = graph_seconds
    (out / "metrics.json").write_text(json.dumps(res, indent=1))
    print(
        f"pretrained on {dataset} ({len(ss)}): val MAE {res['best_val_mae']:.4f}, test MAE {res['test_mae']:.4f} "
        f"(label std {res['label_std']:.4f}), {res['seconds_total']:.0f} s",
        flush=True,
    )
    return out / "best.pt"


def run_route(route: str, split: int, args: argparse.Namespace, gs, featured, ckpts: dict, sha: str) -> None:
    name = route_name(route, args.pretrain_dataset, args.pretrain_epochs, args.finetune_lr, args.layers)
    out = args.runs / name / f"split{split}"
    if (out / "metrics.json").exists():
        print(f"{name} split {split}: done already", flush=True)
        return
    mcfg, init, lr, data = model_config(layers=args.layers), None, 1e-3, gs
    if route in ROUTE_FEATURES:
        name_ = ROUTE_FEATURES[route]
        mcfg, data = model_config(name_, args.layers), featured[name_]
    if route.startswith("pretrained"):
        ckpt = ckpts[route]
        init, lr = backbone_state(ckpt, mcfg), args.finetune_lr
        out.mkdir(parents=True, exist_ok=True)
        (out / "init_from.json").write_text(
            json.dumps(
                {"checkpoint": str(ckpt), "pretrain_metrics": json.loads((ckpt.parent / "metrics.json").read_text())},
                indent=1,
            )
        )
    cfg = TrainConfig(epochs=args.epochs, lr=lr, split_seed=split, seed=split, progress=False)
    res = run_split(data, mcfg, cfg, out, data_sha256=sha, init_state=init)
    print(
        f"{name} split {split}: test MAE {res['test']['all']['mae']:.4f} (filtered "
        f"{res['test']['filtered']['mae']:.4f}), best epoch {res['best_epoch']}",
        flush=True,
    )


def report(runs: Path, reference: Path | None, benchmarks: Path | None = None) -> None:
    results = collect_split_metrics(runs, reference)
    order = route_order(results)
    sections, data = {}, {"routes": {}}
    for subset in ("all", "filtered"):
        t2, mt = {}, {}
        for name in order:
            per = results[name]
            label = f"{name} ({len(per)} split{'s' * (len(per) > 1)}: {', '.join(map(str, sorted(per)))})"
            t2[label] = summarize_splits([per[s]["test"][subset]["per_system"] for s in sorted(per)])
            mt[label] = summarize_splits(
                [{k: v for k, v in per[s]["test"][subset].items() if k != "per_system"} for s in sorted(per)]
            )
        what = "all test structures" if subset == "all" else "test structures with every |component| < 100"
        sections[f"MAE per crystal system (mean ± std over splits) — {what}"] = table2_markdown(t2)
        sections[f"All metrics — {what}"] = metrics_markdown(mt)
        data[subset] = {"per_system": t2, "metrics": mt}
    # each route is compared with the scratch run of the same setting (ours, or the reference run)
    lines, data["routes"] = paired_comparison(results)
    sections["Paired comparison with the scratch run of the same setting (test MAE)"] = "\n".join(lines)
    cost = ["| item | value |", "|---|---|"]
    timing = runs / "features_timing.json"
    if timing.exists():
        t = json.loads(timing.read_text())
        names = [
            k[: -len("_cpu_ms_per_structure")]
            for k in t
            if k.endswith("_cpu_ms_per_structure") and not k.startswith(("graph", "forward"))
        ]
        cost.append(
            f"| GoeCTP graph construction, CPU time ({t['n']} structures, mean {t['atoms_mean']:.1f} atoms, "
            f"{t['threads']} thread) | {t['graph_cpu_ms_per_structure']:.1f} ms/structure |"
        )
        for name in names:
            cost.append(
                f"| {name} features, CPU time (same structures) | "
                f"{t[f'{name}_cpu_ms_per_structure']:.1f} ms/structure |"
            )
        for label in ("scratch", *names):
            if f"forward_{label}_cpu_ms_per_structure" in t:
                cost.append(
                    f"| model forward pass, {label} model, batch 64, CPU time (same structures) | "
                    f"{t[f'forward_{label}_cpu_ms_per_structure']:.2f} ms/structure |"
                )
        plain = t["graph_cpu_ms_per_structure"] + t["forward_scratch_cpu_ms_per_structure"]
        for name in names:
            if f"forward_{name}_cpu_ms_per_structure" in t:
                featured = (
                    t["graph_cpu_ms_per_structure"]
                    + t[f"{name}_cpu_ms_per_structure"]
                    + t[f"forward_{name}_cpu_ms_per_structure"]
                )
                cost.append(
                    f"| **prediction cost ratio** (graph + features + forward), {name} model / scratch "
                    f"model | **{featured / plain:.1f}x** |"
                )
    for feat in sorted(runs.glob("features_*.json")):
        if feat.name == "features_timing.json":
            continue
        f = json.loads(feat.read_text())
        cost.append(
            f"| {f['extractor']} feature extraction of the whole set ({f['n']} structures, wall time on the "
            f"loaded machine, once; then cached) | {f['ms_per_structure']:.1f} ms/structure |"
        )
    scratch_epoch = np.median([p["epoch_seconds_median"] for p in results.get("scratch", {}).values()] or [np.nan])

    def fine_tuning_ratio(seconds: float) -> str:
        return f"; {seconds / (40 * scratch_epoch):.1f}x a 40-epoch scratch run" if np.isfinite(scratch_epoch) else ""

    for p in sorted(runs.glob("pretrain-*/metrics.json")):
        m = json.loads(p.read_text())
        with_features = m.get("model_config", {}).get("node_features")
        cost.append(
            f"| pretraining on {m['dataset']}{f' with {with_features} features' if with_features else ''} "
            f"({m['n_train']} train structures, "
            f"{m['train_config']['epochs']} epochs) | {m['seconds_total'] / 60:.1f} min "
            f"({m['epoch_seconds_median']:.1f} s/epoch; val MAE {m['best_val_mae']:.3f}, test MAE "
            f"{m['test_mae']:.3f}, label std {m['label_std']:.3f}){fine_tuning_ratio(m['seconds_total'])} |"
        )
    for name in order:
        secs = [p["epoch_seconds_median"] for p in results[name].values() if "epoch_seconds_median" in p]
        if secs:
            cost.append(f"| {name}: median fine-tuning epoch | {np.median(secs):.2f} s |")
    sections["Cost (this machine: 2 shared CPU cores, runs niced with 1 thread)"] = "\n".join(cost)
    write_report(runs / "report", "Pretraining and foundation features (GoeCTP, total tensor)", sections, data)
    print((runs / "report.md").read_text())
    if benchmarks is not None:
        body = " ".join(
            [
                "Scratch vs scalar-pretrained vs CHGNet / SevenNet-0 node features, 40 epochs each, same random",
                "80/10/10 splits (seeds = split numbers) of `mp_dielectric_open.json.gz`, total tensor, test MAE.",
                "Each route is compared with the scratch run of the same setting on the same splits (Δ < 0: better).",
                "Details, per-crystal-system tables and the reading: [docs/pretraining.md](docs/pretraining.md).",
            ]
        )
        command = " ".join(
            [
                "Command: `python benchmarks/experiments/pretraining.py --splits 0 1 2 3 4 --routes scratch chgnet",
                "pretrained pretrained_chgnet sevennet --epochs 40 --pretrain-epochs 100 --threads 1`, then",
                "`python benchmarks/experiments/pretraining.py --routes --time-features 100 --threads 1 --report",
                "--benchmarks BENCHMARKS.md`; the e15 rows (splits 0-1 only) add `--pretrain-epochs 15`",
                "(and `--finetune-lr 0.01`).",
            ]
        )
        body += "\n\n" + "\n".join(lines) + "\n\n" + "\n".join(cost) + "\n\n" + command
        write_section(benchmarks, "## Pretraining and foundation features", body)


def main() -> None:
    from goectp.logs import setup_logging

    setup_logging()  # the library's progress messages (resumed from…, epoch lines) on stderr
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--routes",
        nargs="*",
        default=["scratch", "pretrained", "chgnet"],
        choices=["scratch", "pretrained", "chgnet", "pretrained_chgnet", "sevennet"],
    )
    ap.add_argument("--splits", nargs="*", type=int, default=[0, 1])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--pretrain-dataset", default="perov5-formation")
    ap.add_argument("--pretrain-epochs", type=int, default=100)
    ap.add_argument("--finetune-lr", type=float, default=1e-3, help="paper: 1e-2")
    ap.add_argument("--runs", type=Path, default=Path("runs/pretrain"))
    ap.add_argument("--reference", type=Path, default=Path("runs/sweep40/base"))
    ap.add_argument("--layers", type=int, default=1, help="message layers of every route (the paper: 1)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--time-features", type=int, default=0, help="time the feature extractors on N structures")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--benchmarks", type=Path, default=None, help="also write the summary into this BENCHMARKS.md")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.runs.mkdir(parents=True, exist_ok=True)
    path = data_dir() / DIELECTRIC_FILE
    if args.time_features:
        time_features(path, args.time_features, args.runs)
    if args.routes and args.splits:
        gs = load_graph_set(path, progress=False)
        sha = sha256_file(path)
        featured = {
            name: features_step(path, args.runs, name)
            for name in sorted({ROUTE_FEATURES[r] for r in args.routes if r in ROUTE_FEATURES})
        }
        ckpts = {
            route: pretrain_step(
                args.pretrain_dataset,
                args.pretrain_epochs,
                args.runs,
                "chgnet" if route == "pretrained_chgnet" else None,
                args.layers,
            )
            for route in args.routes
            if route.startswith("pretrained")
        }
        for split in args.splits:  # split-major: every route of split 0 first
            for route in args.routes:
                run_route(route, split, args, gs, featured, ckpts, sha)
    if args.report:
        report(args.runs, args.reference, args.benchmarks)


if __name__ == "__main__":
    main()
