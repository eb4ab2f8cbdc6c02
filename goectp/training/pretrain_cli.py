"""``goectp pretrain``: scalar pretraining of the backbone (then ``goectp train --init-from RUN/best.pt``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_pretrain(args: argparse.Namespace) -> int:
    from goectp.models import GoeCTPConfig
    from goectp.training.config import TrainConfig
    from goectp.training.pretrain import load_scalar_set, pretrain, with_node_features

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    ss = load_scalar_set(args.dataset, args.data_dir, limit=args.limit, progress=True)
    print(f"{ss.name}: {len(ss)} structures, label mean {ss.values.mean():.4f} std {ss.values.std():.4f}")
    features = {}
    if args.node_features:
        from goectp.features import feature_dim

        ss = with_node_features(ss, args.node_features)
        features = {"node_features": args.node_features, "node_feature_dim": feature_dim(args.node_features)}
    mcfg = GoeCTPConfig(variant=args.variant, hidden=args.hidden, num_layers=args.layers, pooling=args.pooling,
                        **features)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, split_seed=args.split_seed,
                      seed=args.split_seed, device=args.device, progress=not args.quiet)
    out = Path(args.out or f"runs/pretrain/{ss.name}")
    res = pretrain(ss, mcfg, cfg, out, resume=not args.no_resume)
    print(f"pretrained on {ss.name}: best epoch {res['best_epoch']}, val MAE {res['best_val_mae']:.4f}, "
          f"test MAE {res['test_mae']:.4f} (label std {res['label_std']:.4f}), {res['seconds_total']:.0f} s "
          f"-> {out / 'best.pt'}\nfine-tune with: goectp train --init-from {out / 'best.pt'} --hidden {args.hidden} "
          f"--variant {args.variant} --pooling {args.pooling}" + (f" --layers {args.layers}" if args.layers else ""))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from goectp.training.pretrain import SCALAR_DATASETS

    names = "; ".join(f"{k}: {v[0]}" for k, v in SCALAR_DATASETS.items())
    p = subparsers.add_parser(
        "pretrain", help="pretrain the backbone with an invariant scalar head (paper Fig. 1b)",
        description="Pretrain the GoeCTP backbone on a scalar label with an invariant head and Huber loss. "
                    f"Datasets from the screening pool: {names}. 'megnet2': 133k MP formation energies (eV/atom), "
                    "downloaded once with jarvis-tools. Or a JSON file {id: {structure, value}}. Then fine-tune with "
                    "`goectp train --init-from OUT/best.pt` and the same --variant/--hidden/--layers.")
    p.add_argument("--dataset", default="perov5-formation",
                   help=f"{', '.join(SCALAR_DATASETS)}, megnet2, or a scalar JSON file (default perov5-formation)")
    p.add_argument("--data-dir", default=None, help="data directory (default: $GOECTP_DATA or ../shared/data)")
    p.add_argument("--variant", default="goectp", choices=["goectp", "mat", "icom"])
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=None, help="message layers (default: 1 goectp, 4 mat/icom)")
    p.add_argument("--pooling", default="mean", choices=["sum", "mean"])
    p.add_argument("--node-features", default=None, choices=["chgnet", "sevennet"],
                   help="add foundation-model per-atom features to the node inputs (pip install '.[foundation]')")
    p.add_argument("--epochs", type=int, default=500, help="paper: 500")
    p.add_argument("--lr", type=float, default=1e-3, help="paper: 1e-3")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--split-seed", type=int, default=0, help="80/10/10 split of the scalar set (val picks best.pt)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N structures (quick runs)")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default=None, help="run folder (default runs/pretrain/<dataset>)")
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar; print every 10 epochs")
    p.set_defaults(func=cmd_pretrain)
