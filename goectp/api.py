"""Public entry points: ``build_model``, ``load_model``, ``predict``, and the ensemble wrapper.

Checkpoint I/O, :class:`Ensemble` and the shipped-model registry live in :mod:`goectp.checkpoint` and are
re-exported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch

from goectp.calibration import calibration_for, element_symbols, predict_members_and_embeddings
from goectp.canonical import uses_canonical_cell
from goectp.checkpoint import (  # noqa: F401 - re-exported public API
    CheckpointError,
    Ensemble,
    assets_dir,
    available_models,
    default_device,
    load_checkpoint,
    load_model,
    prediction_target,
    save_checkpoint,
)
from goectp.graph import build_crystal_graph
from goectp.models import GoeCTP, GoeCTPConfig, SumOfParts
from goectp.structures import load_structures
from goectp.tensor_stats import ensemble_statistics, summary_records


def build_model(variant: str = "goectp", **config: Any) -> GoeCTP:
    """Build a GoeCTP model: ``variant`` is 'goectp', 'mat' or 'icom'; other keywords go to :class:`GoeCTPConfig`."""
    return GoeCTP(GoeCTPConfig(variant=variant, **config))


def graphs_for(structures: Any, model: nn.Module, max_sites: int = 500) -> list:
    """Validated structures → crystal graphs with the model's neighbour count, and the pretrained node features
    (``x_extra``) when the model uses any (``config.node_features``, e.g. CHGNet: needs ``[foundation]``)."""
    k = model.config.k_neighbors
    canonical = uses_canonical_cell(model.config)  # the canonical cell and its frames: exact cell-choice invariance
    loaded = load_structures(structures, max_sites)
    graphs = [build_crystal_graph(s, k=k, validate=False, canonical=canonical) for s in loaded]  # validated above
    name = getattr(model.config, "node_features", None)
    if name and graphs:
        from goectp.features import with_node_features

        graphs = with_node_features(graphs, None if canonical else loaded, name)
    return graphs


@torch.no_grad()
def predict_graphs(
    graphs: list,
    model: nn.Module,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    use_frame: bool | None = None,
) -> np.ndarray:
    """Predict from prebuilt graphs: ``[n, 3, 3]`` (or ``[M, n, 3, 3]`` for an ensemble)."""
    dev = default_device(device)
    model = model.to(dev).eval()
    if len(graphs) == 0:  # nothing to predict: an empty array of the right shape
        shape = (0,) if model.config.head == "scalar" else (0, 3, 3)
        return np.zeros((len(model.members), *shape) if isinstance(model, Ensemble) else shape)
    outs = [model(batch, use_frame=use_frame).double().cpu() for batch in _batches(graphs, batch_size, dev)]
    return _finite(torch.cat(outs, dim=1 if isinstance(model, Ensemble) else 0).numpy())


def _batches(graphs: list, batch_size: int, device: torch.device):
    """The graphs in order, ``batch_size`` at a time, each chunk one ``Batch`` on ``device``."""
    for start in range(0, len(graphs), batch_size):
        yield Batch.from_data_list(graphs[start : start + batch_size]).to(device)


def _finite(out: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(out)):
        raise FloatingPointError("the model produced NaN or infinite values for at least one structure")
    return out


@torch.no_grad()
def predict_graphs_and_parts(
    graphs: list, model: nn.Module, device: str | torch.device | None = None, batch_size: int = 64
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`predict_graphs`, and the ε∞ and ionic parts of the model's *sum* members
    (:class:`~goectp.models.SumOfParts`) apart, from one pass: ``{"electronic": [S, n, 3, 3], "ionic": [S, n, 3, 3]}``
    over its ``S`` sum members (``{}`` when it has none). A sum member's prediction is the sum of its parts."""
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    sums = [i for i, m in enumerate(members) if isinstance(m, SumOfParts)]
    if not sums or not graphs:
        return predict_graphs(graphs, model, device=device, batch_size=batch_size), {}
    dev = default_device(device)
    model = model.to(dev).eval()
    outs: list[list[torch.Tensor]] = [[] for _ in members]
    parts: dict[str, list[list[torch.Tensor]]] = {}
    for batch in _batches(graphs, batch_size, dev):
        for i, member in enumerate(members):
            if i not in sums:
                outs[i].append(member(batch).double().cpu())
                continue
            split = member.forward_parts(batch)  # {"electronic": [B, 3, 3], "ionic": [B, 3, 3]}
            outs[i].append(sum(split.values()).double().cpu())
            for name, value in split.items():
                parts.setdefault(name, [[] for _ in sums])[sums.index(i)].append(value.double().cpu())
    out = _finite(torch.stack([torch.cat(o) for o in outs]).numpy())
    split_parts = {name: torch.stack([torch.cat(v) for v in per]).numpy() for name, per in parts.items()}
    return (out if isinstance(model, Ensemble) else out[0]), split_parts


def predict(
    structures: Any,
    model: nn.Module | str | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    return_std: bool = False,
    use_frame: bool | None = None,
    max_sites: int = 500,
    calibrated: bool = True,
):
    """Predict dielectric tensors.

    Args:
        structures: a pymatgen ``Structure``, ASE ``Atoms``, CIF/POSCAR/extxyz path, or a list of them.
        model: a model, an :class:`Ensemble`, or a name/path for :func:`load_model` (default: ``"default"``).
        device: torch device; CUDA is used when available and nothing is given.
        return_std: for an ensemble, also return σ of each component: the **calibrated** σ when the ensemble
            ships a ``calibration.json`` (:mod:`goectp.calibration`), else the raw member std (population std).
        calibrated: ``False`` returns the raw member std even for a calibrated ensemble.
        use_frame: ``False`` runs the non-equivariant backbone alone (for demonstrations).

    Returns:
        ``(n, 3, 3)`` array (the ensemble mean for an ensemble), and ``(n, 3, 3)`` std if ``return_std``.
    """
    if model is None or isinstance(model, (str, Path)):
        model = load_model(model or "default")
    graphs = graphs_for(structures, model, max_sites=max_sites)
    out = predict_graphs(graphs, model, device=device, batch_size=batch_size, use_frame=use_frame)
    if isinstance(model, Ensemble):
        mean, std = out.mean(axis=0), out.std(axis=0)
    else:
        mean, std = out, np.zeros_like(out)
    cal = calibration_for(model) if (return_std and calibrated and isinstance(model, Ensemble)) else None
    if cal is not None:  # the prediction is unchanged; only σ is rescaled
        std = cal.sigma("tensor", std, mean, out.shape[0])
    return (mean, std) if return_std else mean


def predict_summary(
    structures: Any,
    model: nn.Module | str | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    max_sites: int = 500,
    calibrated: bool = True,
) -> list[dict[str, Any]]:
    """ε̄ ± σ, α ± σ, eigenvalues ± σ and the tensor ± σ of each structure, with out-of-distribution flags.

    All statistics come from :func:`goectp.tensor_stats.ensemble_statistics` (α = inf and ``nonpositive`` when
    λmin <= 0); σ is calibrated when the ensemble ships a calibration (``"calibrated": True`` in each record; the
    raw member spreads are kept as ``eps_mean_std_raw``/``anisotropy_std_raw``). ``"ood"`` is
    ``{"flag", "reasons", "embedding_score"}`` (``None`` without a calibration: nothing to compare against).
    The means equal :func:`predict`'s.
    """
    if model is None or isinstance(model, (str, Path)):
        model = load_model(model or "default")
    cal = calibration_for(model) if calibrated else None
    graphs = graphs_for(structures, model, max_sites=max_sites)
    model = model.to(default_device(device)).eval()
    members, pooled = predict_members_and_embeddings(graphs, model, batch_size=batch_size, device=device)
    stats = ensemble_statistics(members, calibration=cal)
    records = summary_records(stats)
    flags = (
        cal.ood([element_symbols(g.z.tolist()) for g in graphs], stats, pooled)
        if cal is not None
        else [None] * len(records)
    )
    for rec, flag in zip(records, flags):
        rec["ood"] = flag
    return records
