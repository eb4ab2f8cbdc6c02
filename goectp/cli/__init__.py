"""Command line: ``goectp train | evaluate | predict | data | screen``. Run ``goectp <command> --help``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from goectp.canonical import uses_canonical_cell
from goectp.logs import setup_logging

# --------------------------------------------------------------------------------------------------------- predict
#: How ``goectp predict`` names the tensor a model predicts.
TARGET_LABELS = {
    "total": "static ε (electronic + ionic)",
    "electronic": "ε∞ (electronic, high-frequency)",
    "ionic": "ionic part of ε",
}


def cmd_predict(args: argparse.Namespace) -> int:
    from goectp.api import default_device, load_model, predict, predict_summary, prediction_target
    from goectp.isolation import load_checked, shared_pool
    from goectp.structures import StructureError, load_structures
    from goectp.tensor_stats import anisotropy, eigenvalues, mean_eigenvalue, refractive_indices

    device = default_device(args.device)  # a clear error for --device cuda without CUDA, before any work
    pool = shared_pool()
    pool.warm()  # the file worker starts while the model loads
    model = load_model(args.model)
    target = prediction_target(model)  # total, or electronic (ε∞: its eigenvalues give the refractive indices)
    canonical = uses_canonical_cell(model.config)
    rows = []
    for path in args.structures:
        try:  # read and checked in a worker with a memory and a time limit: no file can take this process down
            struct = pool.run(load_checked, str(path), args.max_sites, canonical, name=path)
            struct = load_structures(struct, max_sites=args.max_sites)[0]
            summary = None
            if args.no_frame:
                mean, std = predict(
                    struct, model, device=device, return_std=True, max_sites=args.max_sites, use_frame=False
                )
            else:  # ε̄ ± σ, α ± σ (calibrated σ when the ensemble ships a calibration) and OOD flags
                summary = predict_summary(struct, model, device=device, max_sites=args.max_sites)[0]
                mean, std = np.array([summary["tensor"]]), np.array([summary["tensor_std"]])
        except (StructureError, FileNotFoundError, ValueError, ArithmeticError, OSError) as exc:
            code = reason_code(exc)
            print(f"error: {_named(exc, path)} [{code}]", file=sys.stderr)
            rows.append({"file": str(path), "error": _one_line(exc), "code": code})
            continue
        eps, sd = mean[0], std[0]
        rows.append(
            {
                "file": str(path),
                "formula": struct.composition.reduced_formula,
                "tensor": eps.tolist(),
                "std": sd.tolist(),
                "eigenvalues": eigenvalues(eps).tolist(),
                "eps_mean": float(mean_eigenvalue(eps)),
                "anisotropy": float(anisotropy(eps)),
                "target": target,
            }
        )
        if target == "electronic":  # n_i = √λ_i of ε∞ (optical frequencies, below the gap)
            rows[-1]["refractive_indices"] = refractive_indices(eps).tolist()
        if summary is not None:
            rows[-1].update(
                {k: summary[k] for k in ("eps_mean_std", "anisotropy_std", "eigenvalues_std", "calibrated", "ood")}
            )
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            if "error" in r:
                continue
            print(f"{r['file']}  ({r['formula']})  {TARGET_LABELS[r['target']]}")
            for i, line in enumerate(r["tensor"]):
                sd = "  ± " + " ".join(f"{v:6.3f}" for v in r["std"][i]) if np.any(r["std"]) else ""
                print("  [" + " ".join(f"{v:9.3f}" for v in line) + " ]" + sd)
            print("  eigenvalues: " + ", ".join(f"{v:.3f}" for v in r["eigenvalues"]))
            if "refractive_indices" in r:
                print("  refractive indices n = √λ(ε∞): " + ", ".join(f"{v:.3f}" for v in r["refractive_indices"]))
            if "eps_mean_std" in r:
                kind = "calibrated σ" if r["calibrated"] else "raw member std (no calibration)"
                print(
                    f"  mean eigenvalue ε̄ = {r['eps_mean']:.3f} ± {r['eps_mean_std']:.3f}   anisotropy "
                    f"λmax/λmin = {r['anisotropy']:.3f} ± {r['anisotropy_std']:.3f}   (± = {kind})"
                )
                if r["ood"] and r["ood"]["flag"]:
                    print("  WARNING out of distribution: " + "; ".join(r["ood"]["reasons"]))
                elif r["ood"]:
                    print("  in distribution (no OOD flag)")
            else:
                print(f"  mean eigenvalue ε̄ = {r['eps_mean']:.3f}   anisotropy λmax/λmin = {r['anisotropy']:.3f}")
    return 1 if any("error" in r for r in rows) else 0


# --------------------------------------------------------------------------------------------------------- train
def _shipped() -> str:
    """The shipped models' names for ``--help`` (a damaged registry file is reported when a model is loaded)."""
    try:
        from goectp.api import available_models

        return ", ".join(available_models()) or "none shipped"
    except Exception as exc:  # --help must work whatever the assets hold
        return f"unreadable: {_one_line(exc, 120)}"


def _graph_set(path: Path, node_features: str | None, k: int = 16, canonical: bool = False):
    """The data file's graphs (``k`` neighbours; canonical cells for models that average over their frames), with
    cached foundation-model node features when the model uses them."""
    from goectp.data import load_graph_set

    if not node_features:
        return load_graph_set(path, k=k, progress=True, canonical=canonical)
    from goectp.features import load_featured_graph_set

    gs, info = load_featured_graph_set(path, node_features, k=k, progress=True, canonical=canonical)
    print(f"{node_features} node features: {'cache hit' if info['hit'] else 'computed'} ({info['cache']})")
    return gs


def cmd_train(args: argparse.Namespace) -> int:
    from goectp.cli_config import run_config_record, training_configs
    from goectp.training import TrainConfig
    from goectp.training.parallel import sequential_or_parallel

    mcfg, train_values = training_configs(args, "train")  # command line > --config file > dataclass defaults
    path = _data_file(args)
    _graph_set(path, mcfg.node_features, k=mcfg.k_neighbors, canonical=uses_canonical_cell(mcfg))  # fills the cache
    splits = args.splits  # --splits, else a single --split-seed, else the paper's five splits
    if splits is None:
        splits = [train_values["split_seed"]] if "split_seed" in train_values else [0, 1, 2, 3, 4]
    if args.init_from:  # fails here, before any training, on a mismatch or a checkpoint of another split
        from goectp.data import sha256_file

        for split in splits:
            _init_from(args.init_from, mcfg, split, sha256_file(path))
    configs = [TrainConfig(**{"seed": split, **train_values, "split_seed": split}).to_dict() for split in splits]
    outs = [Path(args.out) / f"split{split}" for split in splits]
    results = sequential_or_parallel(
        path,
        mcfg.to_dict(),
        configs,
        outs,
        workers=args.workers,
        scheduler=args.scheduler,
        resume=not args.no_resume,
        init_from=args.init_from,
        run_meta={"run_config": run_config_record(args)},
    )
    for split, out, res in zip(splits, outs, results):
        t = res["test"]
        done = " (finished before: not trained again)" if res.get("skipped") else ""
        print(
            f"split {split}: best epoch {res['best_epoch']}, test MAE {t['all']['mae']:.4f} "
            f"(|component|<100: {t['filtered']['mae']:.4f}) -> {out / 'best.pt'}{done}"
        )
    print(f"the ensemble of these splits' best.pt: goectp predict FILE --model {args.out}")
    return 0


def _init_from(ckpt: str, mcfg, split_seed: int | None = None, data_sha256: str | None = None) -> dict:
    """Backbone weights of a (pretrained) checkpoint, or of an ensemble's member of ``split_seed``; raises on any
    mismatch and on a checkpoint fine-tuned on another split. The head is left fresh."""
    from goectp.training.pretrain import backbone_state, init_checkpoint

    source = init_checkpoint(ckpt, split_seed) if split_seed is not None else ckpt
    state = backbone_state(source, mcfg, verbose=False, split_seed=split_seed, data_sha256=data_sha256)
    print(f"split {split_seed}: all {len(state)} backbone tensors from {source} (head re-initialised)")
    return state


def cmd_sum(args: argparse.Namespace) -> int:
    from goectp.registry import sum_ensembles

    for path in sum_ensembles(args.electronic, args.ionic, args.out):
        print(f"{path}  ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"predict with: goectp predict FILE --model {args.out}")
    return 0


# --------------------------------------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
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
    gs = _graph_set(
        _data_file(args),
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


# --------------------------------------------------------------------------------------------------------- data
def _data_file(args: argparse.Namespace) -> Path:
    from goectp.data import DIELECTRIC_FILE, data_dir

    if getattr(args, "data_file", None):
        return Path(args.data_file)
    return data_dir(args.data_dir) / DIELECTRIC_FILE


def cmd_data(args: argparse.Namespace) -> int:
    from goectp.data import loaders

    if args.action == "info":
        from collections import Counter

        from goectp.data import read_dielectric_json

        path = _data_file(args)
        recs = read_dielectric_json(path)
        n_out = sum(np.abs(r.tensors["total"]).max() >= 100 for r in recs if "total" in r.tensors)
        print(
            f"{path}: {len(recs)} records; sources {dict(Counter(r.source for r in recs))}; "
            f"with band gap {sum(r.band_gap is not None for r in recs)}; any |total component| >= 100: {n_out}"
        )
        return 0
    out = Path(args.out)
    if args.action == "fetch-matminer":
        loaders.fetch_matminer(out)
    elif args.action == "fetch-mp":
        loaders.fetch_materials_project(out)
    elif args.action == "fetch-jarvis":
        loaders.fetch_jarvis(out)
    elif args.action == "convert-jarvis":
        from goectp.data import write_dielectric_json

        write_dielectric_json(loaders.read_jarvis_pickle(args.input), out)
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="goectp", description="GoeCTP: equivariant dielectric tensor prediction")
    ap.add_argument(
        "--debug",
        action="store_true",
        help="on an error, show the full traceback instead of a one-line message (also accepted after the subcommand)",
    )
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="predict the dielectric tensor of CIF/POSCAR/extxyz files")
    p.add_argument("structures", nargs="+", help="structure files")
    p.add_argument(
        "--model", default="default", help=f"shipped model ({_shipped()}) or checkpoint path (default: default)"
    )
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--max-sites", type=int, default=500)
    p.add_argument("--no-frame", action="store_true", help="run the non-equivariant backbone alone (for teaching)")
    p.set_defaults(func=cmd_predict)

    def data_opts(q: argparse.ArgumentParser, target_and_device: bool = True) -> None:
        q.add_argument("--data-dir", default=None, help="data directory (default: $GOECTP_DATA or ../shared/data)")
        q.add_argument("--data-file", default=None, help="a DTNet-schema JSON(.gz) file (overrides --data-dir)")
        if target_and_device:  # train: TrainConfig fields, generated below
            from goectp.data.dielectric import TARGETS

            q.add_argument(
                "--target",
                default=None,
                choices=TARGETS,
                help="DFPT tensor to compare with (default: the one the model predicts, from its checkpoint)",
            )
            q.add_argument("--device", default=None)

    p = sub.add_parser(
        "train",
        help="train on random 80/10/10 splits (the paper's protocol)",
        description="Train GoeCTP on random 80/10/10 splits of a dielectric data set (the paper's "
        "protocol). Every GoeCTPConfig and TrainConfig field has an option; --config FILE "
        "sets a whole run (TOML or YAML).",
    )
    data_opts(p, target_and_device=False)
    p.add_argument(
        "--splits",
        nargs="+",
        type=int,
        default=None,
        help="split seeds, one run each (default: --split-seed if given, else 0 1 2 3 4)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        help="start from a (pretrained) checkpoint's backbone; an ensemble folder or shipped name starts each "
        "split from its member fine-tuned on that split",
    )
    p.add_argument(
        "--out", default="runs/train", help="run folder, one split<N> subfolder per split (default: %(default)s)"
    )
    p.add_argument("--no-resume", action="store_true", help="start again instead of resuming from last.pt")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="train the splits in parallel on a local Dask cluster of this many single-threaded worker "
        "processes (default 1: one split after the other in this process)",
    )
    p.add_argument(
        "--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:8786) to train the splits on"
    )
    from goectp.cli_config import add_training_options

    add_training_options(p, "train")  # every GoeCTPConfig / TrainConfig field, and --config FILE
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "sum",
        help="one ensemble of the static tensor from an ε∞ ensemble and an ionic-only one (member k = ε∞ k + ionic k)",
        description="Pair the members of an ε∞ (--target electronic) ensemble and an ionic-only (--target ionic) "
        "one by split seed and write each pair as one sum checkpoint OUT/split<k>.pt: an ordinary ensemble for "
        "predict, evaluate, screen, calibration and the explorer. Both must be trained on the same data and splits.",
    )
    p.add_argument("electronic", help="the ε∞ ensemble (a shipped name, a folder of members or a training run's)")
    p.add_argument("ionic", help="the ionic-only ensemble (a shipped name, a folder of members or a training run's)")
    p.add_argument("--out", required=True, help="folder written with split<seed>.pt")
    p.set_defaults(func=cmd_sum)

    p = sub.add_parser("evaluate", help="evaluate a model: metrics, per-crystal-system table, parity plot")
    data_opts(p)
    p.add_argument("--model", default="default", help=f"shipped model ({_shipped()}) or checkpoint path")
    p.add_argument("--split-seed", type=int, default=None, help="evaluate on this split's test set only")
    p.add_argument("--out", default="runs/evaluation/report")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("data", help="inspect or fetch dielectric datasets")
    p.add_argument("action", choices=["info", "fetch-matminer", "fetch-mp", "fetch-jarvis", "convert-jarvis"])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--data-file", default=None)
    p.add_argument("--input", default=None, help="input file for convert-jarvis (jarvis_diele_piezo.pkl)")
    p.add_argument("--out", default="mp_dielectric.json.gz")
    p.set_defaults(func=cmd_data)

    from goectp.screening.cli import add_parser as add_screen
    from goectp.training.pretrain_cli import add_parser as add_pretrain

    add_screen(sub)
    add_pretrain(sub)
    return ap


def reason_code(exc: BaseException) -> str:
    """The reason code of an error: a :class:`~goectp.structures.StructureError`'s ``code``, else one per kind."""
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    for kind, name in (
        (FileNotFoundError, "not_found"),
        (PermissionError, "permission_denied"),
        (OSError, "io_error"),
        (MemoryError, "out_of_memory"),
        (ArithmeticError, "non_finite"),
    ):
        if isinstance(exc, kind):
            return name
    return "checkpoint_error" if type(exc).__name__ == "CheckpointError" else "invalid_input"


def _named(exc: BaseException, path: object) -> str:
    """:func:`_one_line` of ``exc``, prefixed with the file's name when the message does not name it already."""
    text, name = _one_line(exc), str(path)
    return text if Path(name).name in text or name in text else f"{name}: {text}"


def _one_line(exc: BaseException, limit: int = 400) -> str:
    """``exc`` as one line: its message's first line (with the type for errors that are not plain ValueErrors)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    if not isinstance(exc, (ValueError, FileNotFoundError)):  # ours say what is wrong; name the others' type
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. Any error ends with a one-line message and exit status 2 (130 when interrupted); ``--debug``
    (anywhere on the command line, or ``GOECTP_DEBUG=1``) shows the traceback instead."""
    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("GOECTP_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    setup_logging(debug)  # the library's progress messages (logging) on stderr
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"goectp {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        if getattr(args, "json", False):  # the reason code on stdout too, for scripts reading --json
            print(json.dumps({"error": _one_line(exc), "code": reason_code(exc)}))
        print(
            f"goectp {args.command}: error: {_one_line(exc)} [{reason_code(exc)}] (--debug shows the traceback)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
