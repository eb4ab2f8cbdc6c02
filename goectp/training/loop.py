"""The training loop: read :func:`train` top to bottom.

Best-validation checkpointing: ``best.pt`` holds the weights of the epoch with the lowest validation MAE (that is
the model evaluated and shipped; with ``ema_decay``, the weights' moving average is validated and saved instead);
``last.pt`` holds everything needed to resume (weights, optimiser, scheduler, epoch, RNG state, history, average);
``history.json`` one record per epoch.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as fn
from torch.optim.lr_scheduler import LambdaLR
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from goectp.checkpoint import load_training_state, save_checkpoint, save_training_state
from goectp.device import default_device
from goectp.models import GoeCTP
from goectp.training.augment import random_orthogonal, rotate_batch
from goectp.training.config import TrainConfig
from goectp.training.ema import ExponentialMovingAverage

logger = logging.getLogger(__name__)


def set_seed(seed: int) -> None:
    """Seed NumPy's and torch's global generators (the weights' initialisation draws from torch's)."""
    np.random.seed(seed)
    torch.manual_seed(seed)


def target_stats(graphs: list, attr: str = "y", log: bool = False) -> tuple[float, float]:
    """``(scale, shift)`` of the graphs' ``attr`` (``[1, 3, 3]`` per graph): shift = mean of ε̄
    (the isotropic part), scale = std of all components of ``y − shift·I``; with ``log`` those of the matrix
    logarithm (:func:`log_tensor`).

    Scalar targets (``y`` ``[1]`` per graph, for pretraining): shift = mean, scale = std (1 for a single graph).
    The scale is floored at 1e-3.
    """
    y = torch.cat([getattr(g, attr) for g in graphs]).double()
    if log:
        y = log_tensor(y)
    if y.dim() == 1:
        return max(y.std().item() if y.numel() > 1 else 1.0, 1e-3), y.mean().item()
    shift = torch.diagonal(y, dim1=-2, dim2=-1).mean().item()
    scale = (y - shift * torch.eye(3, dtype=y.dtype)).std().item()
    return max(scale, 1e-3), shift


@torch.no_grad()
def evaluate_mae(model: GoeCTP, loader: DataLoader, device: torch.device) -> float:
    """Mean over structures of the mean |Δ| over the 9 components (for scalar targets: the plain MAE)."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        err = (model(batch) - batch.y.to(torch.get_default_dtype())).abs()
        err = err.reshape(err.size(0), -1).mean(dim=1)  # [B]
        total += err.sum().item()
        count += err.numel()
    return total / max(count, 1)


def training_loss(pred: torch.Tensor, target: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Mean over structures and components: Huber(δ) (the paper's) or the squared error (``cfg.loss``)."""
    if cfg.loss == "mse":
        return fn.mse_loss(pred, target)
    return fn.huber_loss(pred, target, delta=cfg.huber_delta)


#: Eigenvalues are clipped to this before a target's logarithm is taken (the data's smallest is 1.2).
MIN_LOG_EIGENVALUE = 1e-2


def log_tensor(eps: torch.Tensor) -> torch.Tensor:
    """Matrix logarithm of symmetric tensors ``[B, 3, 3]``: ``V diag(log λ) Vᵀ`` (λ clipped to ≥ 1e-2)."""
    lam, vec = torch.linalg.eigh(eps)
    return (vec * lam.clamp_min(MIN_LOG_EIGENVALUE).log().unsqueeze(-2)) @ vec.transpose(-1, -2)


def _check_loss_fits_head(model: GoeCTP, cfg: TrainConfig) -> None:
    """``relative_mean_weight`` needs the plain tensor head: a decomposed or log head predicts no ε to weigh."""
    if cfg.relative_mean_weight and (model.config.decompose or model.config.log_head):
        raise ValueError("relative_mean_weight needs the plain tensor head (not --decompose or --log-head)")


def model_loss(model: GoeCTP, batch: Batch, cfg: TrainConfig) -> torch.Tensor:
    """The training loss of one batch, on what the model's head predicts.

    - plain head: ``loss(ε, y)``, plus ``w · mean |tr ε − tr y| / tr y`` with ``w = cfg.relative_mean_weight``;
    - ``decompose``: ``loss(ε∞, y_electronic) + loss(ε_ionic, y_ionic)``;
    - ``log_head``: ``loss(log ε, log y)`` (matrix logarithms; the target's is taken without gradient).
    """
    if not (model.config.decompose or model.config.log_head):  # both imply the tensor head
        pred = model(batch)
        target = batch.y.to(pred.dtype)
        loss = training_loss(pred, target, cfg)
        if cfg.relative_mean_weight:
            true_trace = target.diagonal(dim1=-2, dim2=-1).sum(-1)  # 3 ε̄ > 0 for every DFPT record
            relative = (pred.diagonal(dim1=-2, dim2=-1).sum(-1) - true_trace).abs() / true_trace
            loss = loss + cfg.relative_mean_weight * relative.mean()
        return loss
    _check_loss_fits_head(model, cfg)
    parts = model.forward_parts(batch)
    if model.config.log_head:
        with torch.no_grad():
            target = log_tensor(batch.y.double()).to(parts["log"].dtype)
        return training_loss(parts["log"], target, cfg)
    return sum(training_loss(p, getattr(batch, f"y_{k}").to(p.dtype), cfg) for k, p in parts.items())


def fit_target_stats(model: GoeCTP, graphs: list) -> None:
    """Set the heads' target scale and mean from the training graphs (per part with ``decompose``)."""
    cfg = model.config
    if cfg.decompose:
        for part in ("electronic", "ionic"):
            model.set_target_stats(*target_stats(graphs, f"y_{part}"), part=part)
    else:
        model.set_target_stats(*target_stats(graphs, log=cfg.log_head))


def polynomial_decay(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> LambdaLR:
    """The learning rate per optimiser step ``s``: ``lr_s = lr_end + (lr − lr_end) (1 − min(s, S) / S)^p`` with
    ``S = total_steps`` and ``p = cfg.lr_power`` (1: linear), from ``cfg.lr`` down to ``cfg.lr_end``."""
    end_factor = cfg.lr_end / cfg.lr
    return LambdaLR(
        opt, lambda s: end_factor + (1 - end_factor) * (1 - min(s, total_steps) / total_steps) ** cfg.lr_power
    )


def train(
    model: GoeCTP,
    train_graphs: list,
    val_graphs: list,
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    meta: dict | None = None,
    stop_after: int | None = None,
    fit_stats: bool = True,
) -> dict:
    """Train ``model`` on graphs whose ``y`` is the target (tensor, or scalar for pretraining).

    Writes ``out_dir/best.pt`` (with ``meta`` as extra checkpoint metadata), ``last.pt`` and ``history.json``
    (see the module docstring). ``resume`` continues from ``out_dir/last.pt``; ``stop_after`` ends this call after
    that many epochs in total (a time-boxed job; the schedule still follows ``cfg.epochs``, and a later ``resume``
    continues it). ``fit_stats=False`` keeps the head's target scale and mean (fine-tuning a tensor model that
    already has them).

    Returns ``{"best_val_mae", "best_epoch" (1-based; -1 before any), "history": [{"epoch", "train_loss",
    "val_mae", "lr", "seconds"}, ...]}``.
    """
    # -- 1. check the settings fit the model, then data, seeds and device
    _check_loss_fits_head(model, cfg)  # before any folder is made
    if model.config.decompose and cfg.target != "total":
        raise ValueError(f"decompose learns the total tensor from its two parts, not the {cfg.target!r} one")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)
    device = default_device(cfg.device)
    loader_gen = torch.Generator().manual_seed(cfg.seed)
    train_loader = DataLoader(train_graphs, batch_size=cfg.batch_size, shuffle=True, generator=loader_gen)
    val_loader = DataLoader(val_graphs, batch_size=cfg.batch_size)
    if fit_stats:
        fit_target_stats(model, train_graphs)
    model.to(device)

    # -- 2. optimiser, learning-rate schedule, augmentation generator, weight average, progress record
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = polynomial_decay(opt, cfg, total_steps=cfg.epochs * math.ceil(len(train_graphs) / cfg.batch_size))
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
    state = {"epoch": 0, "best_val": float("inf"), "best_epoch": -1, "history": []}
    ema = ExponentialMovingAverage(model, cfg.ema_decay) if cfg.ema_decay is not None else None

    # -- 3. resume: restore everything ``last.pt`` holds
    if resume and (out / "last.pt").exists():
        ckpt = load_training_state(out / "last.pt", map_location=device)  # weights_only=True
        model.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        loader_gen.set_state(ckpt["rng"]["loader"].cpu())
        aug_gen.set_state(ckpt["rng"]["aug"].cpu())
        torch.set_rng_state(ckpt["rng"]["torch"].cpu())
        state = ckpt["state"]
        if ema is not None:
            if "ema" not in ckpt:
                raise ValueError(f"{out / 'last.pt'} holds no weight average: resume it without ema_decay")
            ema.load_state_dict(ckpt["ema"])
        logger.info("resumed from epoch %d (best val MAE %.4f)", state["epoch"], state["best_val"])

    # -- 4. the epochs: train, validate, checkpoint, report
    bar = tqdm(
        range(state["epoch"], cfg.epochs),
        desc="epochs",
        disable=not cfg.progress,
        initial=state["epoch"],
        total=cfg.epochs,
    )
    for epoch in bar:
        if stop_after is not None and epoch >= stop_after:
            break
        model.train()
        t0, losses = time.perf_counter(), []
        for batch in train_loader:  # one optimiser step per batch
            batch = batch.to(device)
            if cfg.augment_rotations:
                rotate_batch(batch, random_orthogonal(batch.num_graphs, aug_gen))
            loss = model_loss(model, batch, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            if ema is not None:
                ema.update(model)
            losses.append(loss.item())

        evaluated = ema.model if ema is not None else model  # the weights that are validated and saved
        val_mae = evaluate_mae(evaluated, val_loader, device)
        rec = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)),
            "val_mae": val_mae,
            "lr": sched.get_last_lr()[0],
            "seconds": time.perf_counter() - t0,
        }
        state["history"].append(rec)
        state["epoch"] = epoch + 1
        if val_mae < state["best_val"]:  # best.pt: the weights shipped
            state["best_val"], state["best_epoch"] = val_mae, epoch + 1
            save_checkpoint(
                out / "best.pt", evaluated, train_config=cfg.to_dict(), epoch=epoch + 1, val_mae=val_mae, **(meta or {})
            )
        save_training_state(  # last.pt: everything a resume needs
            out / "last.pt",
            model,
            opt,
            sched,
            state=state,
            rng={"loader": loader_gen.get_state(), "aug": aug_gen.get_state(), "torch": torch.get_rng_state()},
            ema=ema.state_dict() if ema is not None else None,
        )
        bar.set_postfix(loss=f"{rec['train_loss']:.3f}", val_mae=f"{val_mae:.3f}", best=f"{state['best_val']:.3f}")
        if not cfg.progress and ((epoch + 1) % 10 == 0 or epoch + 1 == cfg.epochs):
            logger.info(
                "epoch %d/%d loss %.4f val_mae %.4f best %.4f (%.1fs)",
                epoch + 1,
                cfg.epochs,
                rec["train_loss"],
                val_mae,
                state["best_val"],
                rec["seconds"],
            )

    # -- 5. the history
    (out / "history.json").write_text(json.dumps(state["history"], indent=1))
    return {"best_val_mae": state["best_val"], "best_epoch": state["best_epoch"], "history": state["history"]}
