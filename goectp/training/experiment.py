"""One split of the paper's protocol: split, train, evaluate on the test set, save predictions and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from goectp.api import predict_graphs
from goectp.checkpoint import load_checkpoint
from goectp.data.dataset import GraphSet
from goectp.data.splits import random_split
from goectp.evaluation.metrics import all_and_filtered_metrics
from goectp.models import GoeCTP, GoeCTPConfig
from goectp.training.config import TrainConfig
from goectp.training.loop import set_seed, train


def split_graphs(gs: GraphSet, cfg: TrainConfig) -> dict[str, GraphSet]:
    """Random 80/10/10 split by ``cfg.split_seed`` → ``{"train", "val", "test"}``; ``cfg.max_abs`` filters train/val
    (the test set is kept whole). Raises ``ValueError`` when a part comes out empty."""
    idx = random_split(len(gs), cfg.split_seed)
    parts = {k: gs.subset(v) for k, v in idx.items()}
    if cfg.max_abs is not None:
        for k in ("train", "val"):
            keep = np.abs(parts[k].targets(cfg.target)).max(axis=(1, 2)) < cfg.max_abs
            parts[k] = parts[k].subset(np.flatnonzero(keep))
    empty = [k for k, part in parts.items() if len(part) == 0]
    if empty:  # a score on no records would read 0.0 and pick checkpoints at random
        raise ValueError(
            f"split {cfg.split_seed} leaves the {', '.join(empty)} set(s) empty: {len(gs)} usable records "
            "(at least 10 are needed for an 80/10/10 split)"
        )
    return parts


def evaluate_test(model: GoeCTP, test: GraphSet, target: str, device: str | None = None) -> dict:
    """``model``'s :func:`~goectp.evaluation.metrics.all_and_filtered_metrics` on ``test`` (``"all"``; ``"filtered"``:
    without the records with any |component| >= 100), with ``"pred"`` and ``"true"`` ``[n, 3, 3]``."""
    true = test.targets(target)
    pred = predict_graphs(test.graphs, model, device=device)
    return {**all_and_filtered_metrics(pred, true, test.crystal_systems), "pred": pred, "true": true}


def run_split(
    gs: GraphSet,
    model_cfg: GoeCTPConfig,
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = True,
    data_sha256: str | None = None,
    init_state: dict | None = None,
    run_meta: dict | None = None,
) -> dict:
    """Train on one split and evaluate its best-validation checkpoint on the test set.

    Writes, besides :func:`~goectp.training.loop.train`'s files, ``out_dir/test_predictions.npz`` (ids, pred, true,
    crystal_system) and ``out_dir/metrics.json``; returns the content of ``metrics.json``.
    ``init_state``: a state dict (e.g. a pretrained backbone) loaded before training (``strict=False``).
    ``run_meta``: more checkpoint metadata (the CLI's ``run_config``: the ``--config`` file and its content).
    """
    out = Path(out_dir)
    parts = split_graphs(gs, cfg)
    set_seed(cfg.seed)
    model = GoeCTP(model_cfg)
    if init_state is not None:
        model.load_state_dict(init_state, strict=False)
    meta = {
        "split_seed": cfg.split_seed,
        "data_sha256": data_sha256,
        "n_train": len(parts["train"]),
        "n_val": len(parts["val"]),
        "n_test": len(parts["test"]),
        **(run_meta or {}),
    }
    hist = train(
        model,
        parts["train"].with_target(cfg.target),
        parts["val"].with_target(cfg.target),
        cfg,
        out,
        resume=resume,
        meta=meta,
    )
    best = load_checkpoint(out / "best.pt")
    res = evaluate_test(best, parts["test"], cfg.target, device=cfg.device)
    np.savez_compressed(
        out / "test_predictions.npz",
        ids=np.array(parts["test"].ids),
        pred=res.pop("pred"),
        true=res.pop("true"),
        crystal_system=np.array(parts["test"].crystal_systems),
    )
    summary = {
        "model_config": model_cfg.to_dict(),
        "train_config": cfg.to_dict(),
        **meta,
        "best_epoch": hist["best_epoch"],
        "best_val_mae": hist["best_val_mae"],
        "epoch_seconds_median": float(np.median([h["seconds"] for h in hist["history"]])),
        "test": res,
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=1))
    return summary
