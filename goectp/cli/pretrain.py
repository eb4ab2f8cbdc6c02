"""``goectp pretrain``: scalar pretraining of the backbone (then ``goectp train --init-from RUN/best.pt``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_pretrain(args: argparse.Namespace) -> int:
    from goectp.cli.config import run_config_record, training_configs
    from goectp.training.config import TrainConfig
    from goectp.training.pretrain import featured_scalar_set, load_scalar_set, pretrain

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    mcfg, train_values = training_configs(args, "pretrain")  # command line > --config file > defaults
    ss = load_scalar_set(args.dataset, args.data_dir, k=mcfg.k_neighbors, limit=args.limit, progress=True)
    print(f"{ss.name}: {len(ss)} structures, label mean {ss.values.mean():.4f} std {ss.values.std():.4f}")
    if mcfg.node_features:
        ss = featured_scalar_set(ss, mcfg.node_features)
    cfg = TrainConfig(**{"seed": train_values.get("split_seed", 0), **train_values})  # seed follows the split seed
    out = Path(args.out or f"runs/pretrain/{ss.name}")
    res = pretrain(ss, mcfg, cfg, out, resume=not args.no_resume, run_meta={"run_config": run_config_record(args)})
    print(
        f"pretrained on {ss.name}: best epoch {res['best_epoch']}, val MAE {res['best_val_mae']:.4f}, "
        f"test MAE {res['test_mae']:.4f} (label std {res['label_std']:.4f}), {res['seconds_total']:.0f} s "
        f"-> {out / 'best.pt'}\nfine-tune with: goectp train --init-from {out / 'best.pt'} --hidden {mcfg.hidden} "
        f"--variant {mcfg.variant} --pooling {mcfg.pooling} --num-layers {mcfg.num_layers}"
        + (f" --node-features {mcfg.node_features}" if mcfg.node_features else "")
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from goectp.training.pretrain import SCALAR_DATASETS

    names = "; ".join(f"{k}: {v[0]}" for k, v in SCALAR_DATASETS.items())
    p = subparsers.add_parser(
        "pretrain",
        help="pretrain the backbone with an invariant scalar head (paper Fig. 1b)",
        description="Pretrain the GoeCTP backbone on a scalar label with an invariant head and Huber loss. "
        f"Datasets from the screening pool: {names}. 'megnet2': 133k MP formation energies (eV/atom), "
        "downloaded once with jarvis-tools. Or a JSON file {id: {structure, value}}. Then fine-tune with "
        "`goectp train --init-from OUT/best.pt` and the same --variant/--hidden/--layers.",
    )
    p.add_argument(
        "--dataset",
        default="perov5-formation",
        help=f"{', '.join(SCALAR_DATASETS)}, megnet2, or a scalar JSON file (default perov5-formation)",
    )
    p.add_argument("--data-dir", default=None, help="data directory (default: $GOECTP_DATA or ../shared/data)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N structures (quick runs)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default=None, help="run folder (default runs/pretrain/<dataset>)")
    p.add_argument("--no-resume", action="store_true")
    from goectp.cli.config import add_training_options

    add_training_options(p, "pretrain")  # GoeCTPConfig / TrainConfig fields (epochs: 500), --config FILE
    p.set_defaults(func=cmd_pretrain)
