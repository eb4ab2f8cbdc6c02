"""``goectp train``: random 80/10/10 splits, one run each (the paper's protocol); ``--init-from`` a backbone."""

from __future__ import annotations

import argparse
from pathlib import Path

from goectp.canonical import uses_canonical_cell
from goectp.cli.common import add_data_options, data_file, graph_set


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``train`` with every GoeCTPConfig / TrainConfig option and ``--config FILE``."""
    from goectp.cli.config import add_training_options

    p = sub.add_parser(
        "train",
        help="train on random 80/10/10 splits (the paper's protocol)",
        description="Train GoeCTP on random 80/10/10 splits of a dielectric data set (the paper's "
        "protocol). Every GoeCTPConfig and TrainConfig field has an option; --config FILE "
        "sets a whole run (TOML or YAML).",
    )
    add_data_options(p, target_and_device=False)
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
    add_training_options(p, "train")  # every GoeCTPConfig / TrainConfig field, and --config FILE
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """Train one model per split seed (resuming finished or interrupted runs); print each split's test MAE."""
    from goectp.cli.config import run_config_record, training_configs
    from goectp.training import TrainConfig
    from goectp.training.parallel import sequential_or_parallel

    mcfg, train_values = training_configs(args, "train")  # command line > --config file > dataclass defaults
    path = data_file(args)
    graph_set(path, mcfg.node_features, k=mcfg.k_neighbors, canonical=uses_canonical_cell(mcfg))  # fills the cache
    splits = args.splits  # --splits, else a single --split-seed, else the paper's five splits
    if splits is None:
        splits = [train_values["split_seed"]] if "split_seed" in train_values else [0, 1, 2, 3, 4]
    if args.init_from:  # fails here, before any training, on a mismatch or a checkpoint of another split
        from goectp.data import sha256_file

        for split in splits:
            init_from(args.init_from, mcfg, split, sha256_file(path))
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


def init_from(ckpt: str, mcfg, split_seed: int | None = None, data_sha256: str | None = None) -> dict:
    """Backbone weights of a (pretrained) checkpoint, or of an ensemble's member of ``split_seed``; raises on any
    mismatch and on a checkpoint fine-tuned on another split. The head is left fresh."""
    from goectp.training.pretrain import backbone_state, init_checkpoint

    source = init_checkpoint(ckpt, split_seed) if split_seed is not None else ckpt
    state = backbone_state(source, mcfg, verbose=False, split_seed=split_seed, data_sha256=data_sha256)
    print(f"split {split_seed}: all {len(state)} backbone tensors from {source} (head re-initialised)")
    return state
