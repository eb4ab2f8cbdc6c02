"""The one inference path: structures → crystal graphs (:func:`graphs_for`) → one pass of every member
(:func:`run_model`) → predictions, embeddings and parts.

Every prediction of the package goes through :func:`run_model` — :func:`goectp.api.predict`,
:func:`goectp.api.predict_summary`, the screening worker, the calibration's held-out predictions and the explorer —
so each member's message passing runs once per structure, and the ensemble statistics (mean, calibrated σ), the
out-of-distribution flag (which needs the pooled embedding) and the ε∞/ionic parts all come from that pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch

from goectp.canonical import uses_canonical_cell
from goectp.device import default_device
from goectp.elements import element_symbols
from goectp.graph import build_crystal_graph
from goectp.models import Ensemble, EnsembleOutput
from goectp.models.ensemble import has_parts
from goectp.structures import MAX_SITES, load_structures
from goectp.tensor_stats import ensemble_statistics, summary_records


@dataclass(frozen=True)
class MemberPredictions:
    """Member outputs for ``n`` structures (a single model reads as ``M = 1``).

    Attributes:
        predictions: ``[M, n, 3, 3]`` (scalar head: ``[M, n]``).
        embeddings: ``[M, n, d]`` pooled embeddings.
        parts: ``{"electronic", "ionic"}`` → ``[S, n, 3, 3]`` over the members that predict the parts apart.
        calibration: the ensemble's :class:`goectp.uncertainty.Calibration`, or ``None``.
        elements: the element symbols of each structure (for the OOD flag).
    """

    predictions: np.ndarray
    embeddings: np.ndarray
    parts: dict[str, np.ndarray] = field(default_factory=dict)
    calibration: Any = None
    elements: list[list[str]] = field(default_factory=list)

    def statistics(self, calibrated: bool = True) -> dict[str, np.ndarray]:
        """:func:`goectp.tensor_stats.ensemble_statistics` (σ calibrated when the model has a calibration)."""
        return ensemble_statistics(self.predictions, calibration=self.calibration if calibrated else None)

    def ood(self, stats: dict[str, np.ndarray] | None = None) -> list[dict[str, Any] | None]:
        """Per structure ``{"flag", "reasons", "embedding_score"}`` (``None`` without a calibration)."""
        if self.calibration is None:
            return [None] * len(self.elements)
        stats = self.statistics() if stats is None else stats
        return self.calibration.ood(self.elements, stats, self.embeddings)

    def summary(self, calibrated: bool = True) -> list[dict[str, Any]]:
        """ε̄ ± σ, α ± σ, eigenvalues ± σ, the tensor ± σ and ``"ood"`` per structure."""
        stats = self.statistics(calibrated)
        records = summary_records(stats)
        flags = self.ood(stats) if calibrated else [None] * len(records)
        for rec, flag in zip(records, flags):
            rec["ood"] = flag
        return records


def batches(graphs: Sequence, batch_size: int, device: torch.device) -> Iterator[Batch]:
    """The graphs in order, ``batch_size`` at a time, each chunk one ``Batch`` on ``device``."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    for start in range(0, len(graphs), batch_size):
        yield Batch.from_data_list(list(graphs[start : start + batch_size])).to(device)


def graphs_for(structures: Any, model: nn.Module, max_sites: int = MAX_SITES) -> list:
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
def run_model(
    graphs: Sequence,
    model: nn.Module,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    use_frame: bool | None = None,
) -> MemberPredictions:
    """One pass of ``model`` (a network, a sum member or an :class:`~goectp.models.Ensemble`) over ``graphs``.

    Raises ``FloatingPointError`` when a member produces NaN or infinite values.
    """
    dev = default_device(device)
    model = model.to(dev).eval()
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    calibration = getattr(model, "calibration", None) if isinstance(model, Ensemble) else None
    elements = [element_symbols(g.z.tolist()) for g in graphs]
    if len(graphs) == 0:
        shape = (0,) if model.config.head == "scalar" else (0, 3, 3)
        return MemberPredictions(np.zeros((len(members), *shape)), np.zeros((len(members), 0, 0)), {}, calibration)
    preds, embeds, parts = [], [], []
    for batch in batches(graphs, batch_size, dev):
        out = model.outputs(batch, use_frame)
        if not isinstance(model, Ensemble):  # one network or sum member: an ensemble of one
            split = {k: v[None] for k, v in out.parts.items()} if has_parts(out) else {}
            out = EnsembleOutput(out.prediction[None], out.embedding[None], split)
        preds.append(out.predictions)
        embeds.append(out.embeddings)
        parts.append(out.parts)
    predictions = torch.cat(preds, dim=1).double().cpu().numpy()
    if not np.all(np.isfinite(predictions)):
        raise FloatingPointError("the model produced NaN or infinite values for at least one structure")
    joined = {name: torch.cat([p[name] for p in parts], dim=1).double().cpu().numpy() for name in parts[0]}
    return MemberPredictions(
        predictions=predictions,
        embeddings=torch.cat(embeds, dim=1).double().cpu().numpy(),
        parts=joined,
        calibration=calibration,
        elements=elements,
    )
