r"""Scalar pretraining (the paper's Fig. 1b): train the backbone ``g`` with an invariant scalar head, then fine-tune.

.. math::
    \hat y = s\,\mathrm{MLP}(\mathrm{pool}_i\, h_i) + \mu, \qquad
    \mathcal L = \mathrm{Huber}_\delta(\hat y - y)

The frame is not applied to a scalar, and ``g`` sees only canonical vectors ``Fᵀ r``, so the scalar model is
O(3)-invariant. Fine-tuning (``goectp train --init-from CKPT`` or :func:`backbone_state`) copies every backbone
tensor into a tensor-head model and leaves the new head freshly initialised; all parameters are then trained.

The paper pretrains on 133k Materials Project formation energies (jarvis-tools ``megnet2``, lr 1e-3, 500 epochs)
and fine-tunes with lr 1e-2 for 40 epochs. The scalar sets (:data:`SCALAR_DATASETS`: what works here without a
download; ``megnet2`` for users with internet; a scalar JSON file) live in :mod:`goectp.training.scalar_sets`, whose
public names are re-exported here.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from torch_geometric.loader import DataLoader

from goectp.checkpoint import load_checkpoint
from goectp.data.splits import random_split
from goectp.device import default_device
from goectp.models import GoeCTP, GoeCTPConfig
from goectp.training.config import TrainConfig
from goectp.training.loop import evaluate_mae, set_seed, train
from goectp.training.scalar_sets import (
    SCALAR_DATASETS,
    ScalarRecord,
    ScalarSet,
    featured_scalar_set,
    load_scalar_set,
    records_from_megnet,
    scalar_graphs,
    write_scalar_json,
)

__all__ = [
    "HEAD_PREFIXES",
    "SCALAR_DATASETS",
    "ScalarRecord",
    "ScalarSet",
    "backbone_state",
    "featured_scalar_set",
    "init_checkpoint",
    "load_scalar_set",
    "pretrain",
    "records_from_megnet",
    "scalar_graphs",
    "scalar_model_config",
    "write_scalar_json",
]

logger = logging.getLogger(__name__)


def scalar_model_config(model_cfg: GoeCTPConfig) -> GoeCTPConfig:
    """The same backbone with the invariant scalar head (no symmetrisation or PD constraint: they are tensor-only)."""
    return replace(model_cfg, head="scalar", symmetrize=False, positive_definite=False)


def pretrain(
    scalar_set: ScalarSet,
    model_cfg: GoeCTPConfig,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    resume: bool = True,
    run_meta: dict | None = None,
) -> dict:
    """Pretrain a scalar-head model on an 80/10/10 split (``cfg.split_seed``) of ``scalar_set``.

    ``run_meta``: more checkpoint metadata (the CLI's ``run_config``).

    Writes ``best.pt`` (best validation MAE; load its backbone with :func:`backbone_state`), ``last.pt``,
    ``history.json`` and ``metrics.json`` (validation/test MAE in the label's units, timing).
    """
    out = Path(out_dir)
    parts = {k: scalar_set.subset(v) for k, v in random_split(len(scalar_set), cfg.split_seed).items()}
    mcfg = scalar_model_config(model_cfg)
    set_seed(cfg.seed)
    model = GoeCTP(mcfg)
    t0 = time.perf_counter()
    hist = train(
        model,
        parts["train"].graphs,
        parts["val"].graphs,
        cfg,
        out,
        resume=resume,
        meta={"pretrain_dataset": scalar_set.name, "source_sha256": scalar_set.source_sha256, **(run_meta or {})},
    )
    seconds = time.perf_counter() - t0
    best = load_checkpoint(out / "best.pt")
    device = default_device(cfg.device)
    test_mae = evaluate_mae(best.to(device), DataLoader(parts["test"].graphs, batch_size=cfg.batch_size), device)
    summary = {
        "dataset": scalar_set.name,
        "source_sha256": scalar_set.source_sha256,
        "n": len(scalar_set),
        "n_train": len(parts["train"]),
        "n_val": len(parts["val"]),
        "n_test": len(parts["test"]),
        "label_std": float(np.std(scalar_set.values)),
        "model_config": mcfg.to_dict(),
        "train_config": cfg.to_dict(),
        "best_epoch": hist["best_epoch"],
        "best_val_mae": hist["best_val_mae"],
        "test_mae": test_mae,
        "seconds_this_call": seconds,
        "seconds_total": float(sum(h["seconds"] for h in hist["history"])),
        "epoch_seconds_median": float(np.median([h["seconds"] for h in hist["history"]])),
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=1))
    return summary


#: State-dict prefixes of the heads, which fine-tuning re-initialises (everything else is the backbone).
HEAD_PREFIXES = ("head.", "ionic_head.")


def backbone_state(
    checkpoint: str | os.PathLike,
    model_cfg: GoeCTPConfig,
    verbose: bool = True,
    split_seed: int | None = None,
    data_sha256: str | None = None,
) -> dict:
    """The backbone tensors of a (pretrained) checkpoint for ``model_cfg``: every tensor except the heads'
    (``head.*``, and ``ionic_head.*`` of ``decompose``).

    The one weight-transfer helper (``goectp train --init-from`` and the benchmarks use it). Pass the result as
    ``init_state`` to :func:`goectp.training.run_split`; the head stays freshly initialised. ``split_seed`` and
    ``data_sha256`` name the split about to be trained: a checkpoint fine-tuned on *another* split of the same data
    file is refused, because its weights have seen that split's test crystals.

    Raises:
        ValueError: any backbone tensor of the new model is missing from the checkpoint or has another shape
            (a different ``hidden``/``variant``/``num_rbf``/node features): fine-tuning from a half-loaded
            backbone would silently train from scratch; or the checkpoint was fine-tuned on another split.
    """
    loaded = load_checkpoint(checkpoint)
    if not isinstance(loaded, GoeCTP):
        raise ValueError(f"{checkpoint}: a sum of two networks (ε∞ + ionic), not one backbone; initialise from a part")
    trained_on = loaded.meta.get("split_seed")
    same_data = loaded.meta.get("data_sha256") in (None, data_sha256)
    if split_seed is not None and trained_on is not None and same_data and int(trained_on) != split_seed:
        raise ValueError(
            f"{checkpoint}: fine-tuned on split {trained_on} of this data; initialising split {split_seed} from it "
            f"would train on crystals of that split's test set (give the ensemble folder to start each split from "
            f"its own member)"
        )
    src = loaded.state_dict()
    own = GoeCTP(model_cfg).state_dict()
    backbone = [k for k in own if not k.startswith(HEAD_PREFIXES)]
    missing = [k for k in backbone if k not in src]
    mismatched = [
        f"{k} {tuple(src[k].shape)} vs {tuple(own[k].shape)}"
        for k in backbone
        if k in src and src[k].shape != own[k].shape
    ]
    extra = [k for k in src if not k.startswith(HEAD_PREFIXES) and k not in own]
    if missing or mismatched or extra:
        parts = [f"{len(mismatched)} of other shape (checkpoint vs model): {', '.join(mismatched[:4])}"] * bool(
            mismatched
        )
        parts += [f"{len(missing)} missing from the checkpoint: {', '.join(missing[:4])}"] * bool(missing)
        parts += [f"{len(extra)} not in the model: {', '.join(extra[:4])}"] * bool(extra)
        raise ValueError(
            f"{checkpoint}: its backbone does not fit the model configuration ({'; '.join(parts)}); "
            "use the --variant/--hidden/--layers/--node-features the checkpoint was trained with"
        )
    if verbose:
        logger.info("initialised all %d backbone tensors from %s (head re-initialised)", len(backbone), checkpoint)
    return {k: src[k] for k in backbone}


def init_checkpoint(init_from: str | os.PathLike, split_seed: int) -> Path:
    """The file ``--init-from`` means for one split: a file as given; an ensemble (a folder or a shipped name) →
    its member fine-tuned on that split, so each split starts from weights that never saw its test crystals."""
    from goectp.checkpoint import read_checkpoint
    from goectp.registry import ensemble_members, resolve_model_path

    path = resolve_model_path(init_from)
    if path.is_file():
        return path
    seeds = {}
    for _, file in ensemble_members(path):
        seeds[file] = read_checkpoint(file).get("meta", {}).get("split_seed")
        if seeds[file] == split_seed:
            return file
    raise ValueError(
        f"{init_from}: no member fine-tuned on split {split_seed} (its members' splits: "
        f"{sorted({s for s in seeds.values() if s is not None}) or 'none recorded'})"
    )
