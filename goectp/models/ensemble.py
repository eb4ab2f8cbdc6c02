"""An ensemble of GoeCTP models read from the same graphs, and what its members predict.

``Ensemble.outputs`` runs every member once on a batch and returns the member predictions, pooled embeddings and the
ε∞/ionic parts of members that have them (:class:`EnsembleOutput`): the one pass that
:func:`goectp.inference.run_model` turns into means, σ and out-of-distribution flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from goectp.canonical import uses_canonical_cell
from goectp.models.goectp import GoeCTP, GoeCTPConfig, ModelOutput
from goectp.models.sum import PARTS, SumOfParts

#: the DFPT tensors a member can predict (as :data:`goectp.data.dielectric.TARGETS`)
TARGETS: tuple[str, ...] = ("total", "electronic", "ionic")


class EnsembleOutput(NamedTuple):
    """One pass of every member over a batch.

    Attributes:
        predictions: ``[M, B, 3, 3]`` member predictions.
        embeddings: ``[M, B, d]`` member pooled embeddings (see :class:`~goectp.models.goectp.ModelOutput`).
        parts: ``{"electronic", "ionic"}`` → ``[S, B, 3, 3]`` over the ``S`` members that predict the two apart
            (sum members and ``decompose`` networks); ``{}`` when none does.
    """

    predictions: torch.Tensor
    embeddings: torch.Tensor
    parts: dict[str, torch.Tensor]


def has_parts(output: ModelOutput) -> bool:
    """Whether a member's output carries the ε∞ and ionic parts apart."""
    return sorted(output.parts) == sorted(PARTS)


def graph_config(configs: Sequence[GoeCTPConfig], names: Sequence[str]) -> GoeCTPConfig:
    """The config whose graphs all ``configs`` can read (see :class:`Ensemble`); raises on members that cannot
    share graphs."""

    def graph_key(c: GoeCTPConfig) -> tuple:
        return (c.k_neighbors, uses_canonical_cell(c), c.cell_reduction if not uses_canonical_cell(c) else None)

    features = {c.node_features for c in configs if c.node_features}
    if len(features) > 1 or len({graph_key(c) for c in configs}) > 1:
        described = ", ".join(
            f"{n} (k={c.k_neighbors}, canonical cell {uses_canonical_cell(c)}, node features {c.node_features})"
            for n, c in zip(names, configs)
        )
        raise ValueError(f"ensemble members need different graphs and cannot be combined: {described}")
    return next((c for c in configs if c.node_features), configs[0])


def member_target(model: nn.Module) -> str:
    """Which DFPT tensor one member predicts (``total``, ``electronic`` = ε∞ or ``ionic``), from its checkpoint
    metadata (``meta["train_config"]["target"]``, or ``meta["target"]``); ``total`` when the metadata is silent."""

    meta = getattr(model, "meta", None) or {}
    config = (meta.get("train_config") or {}) if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not isinstance(config, dict):
        raise ValueError("the model's checkpoint metadata (meta, meta['train_config']) is not a dict")
    for where in (meta, config):
        value = where.get("target")
        if isinstance(value, str):
            if value not in TARGETS:
                raise ValueError(f"unknown prediction target {value!r} (expected one of {TARGETS})")
            return value
    return "total"


def networks(model: nn.Module) -> list[GoeCTP]:
    """Every :class:`GoeCTP` inside a model: itself, an ensemble's members, and the parts of sum members."""
    found = []
    for member in getattr(model, "members", [model]):
        found += member.networks() if isinstance(member, SumOfParts) else [member]
    return found


def prediction_target(model: nn.Module) -> str:
    """Which DFPT tensor a model or an :class:`Ensemble` predicts (members of an ensemble always agree)."""
    return model.target if isinstance(model, Ensemble) else member_target(model)


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Two state dicts with the same names, dtypes and bit-identical tensors."""
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def _same_network(a: GoeCTP, b: GoeCTP) -> bool:
    """Same class, config and bit-identical weights (so the same output for any input)."""
    return type(a) is type(b) and a.config == b.config and same_weights(a.state_dict(), b.state_dict())


def share_identical_parts(members: Sequence[nn.Module]) -> int:
    """Let sum members whose parts are the same network (e.g. the ``electronic`` member of split k inside both
    decomposed families of the default) hold one module, so that :meth:`Ensemble.outputs` runs it once per batch.
    Returns how many part modules were replaced; predictions are unchanged (bit-identical weights)."""
    kept: dict[tuple, list[GoeCTP]] = {}  # by a cheap key (class and first weight tensor); equal only within one
    replaced = 0
    for member in members:
        if not isinstance(member, SumOfParts):
            continue
        for name, part in list(member.parts.items()):
            first = next(iter(part.state_dict().values()), torch.zeros(0))
            key = (type(part), tuple(first.shape), tuple(first.flatten()[:8].tolist()))
            twin = next((k for k in kept.get(key, []) if k is part or _same_network(k, part)), None)
            if twin is None:
                kept.setdefault(key, []).append(part)
            elif twin is not part:
                member.parts[name] = twin
                replaced += 1
    return replaced


class Ensemble(nn.Module):
    """Several models that read the same graphs; ``forward`` returns the member predictions ``[M, B, 3, 3]``.

    Members may differ in their weights, training and whether they use foundation-model node features (e.g. the
    shipped ``combined`` ensemble: CHGNet-feature members next to plain ones); they must agree on how the graph is
    built (``k_neighbors``, the canonical cell), on which node features, if any, and on the tensor they predict
    (``target``). ``config`` is that of a member with node features when there is one, so callers build graphs
    every member can read (plain members ignore the extra features).
    """

    def __init__(self, members: Sequence[GoeCTP], names: Sequence[str] | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        share_identical_parts(members)  # a network that several sum members hold runs once per batch
        self.members = nn.ModuleList(members)
        self.names = list(names or [f"member{i}" for i in range(len(members))])
        self.config = graph_config([m.config for m in members], self.names)
        targets = {n: member_target(m) for n, m in zip(self.names, members)}
        if len(set(targets.values())) > 1:
            described = ", ".join(f"{n}: {t}" for n, t in targets.items())
            raise ValueError(f"ensemble members predict different tensors and cannot be averaged: {described}")
        #: the DFPT tensor every member predicts: "total", "electronic" (ε∞) or "ionic"
        self.target = next(iter(targets.values()))
        #: the :class:`goectp.uncertainty.Calibration` of σ, set by :func:`goectp.registry.load_model` from the
        #: ensemble folder's ``calibration.json`` (``None``: σ is the raw member spread)
        self.calibration = None

    def forward(self, batch, use_frame: bool | None = None) -> torch.Tensor:
        return self.outputs(batch, use_frame).predictions

    def outputs(self, batch, use_frame: bool | None = None) -> EnsembleOutput:
        """Every member once (a part that several sum members share, once): predictions, embeddings and parts
        (:class:`EnsembleOutput`)."""
        memo: dict[int, ModelOutput] = {}
        outs = [
            m.outputs(batch, use_frame, memo) if isinstance(m, SumOfParts) else m.outputs(batch, use_frame)
            for m in self.members
        ]
        split = [o for o in outs if has_parts(o)]
        parts = {name: torch.stack([o.parts[name] for o in split]) for name in PARTS} if split else {}
        return EnsembleOutput(
            torch.stack([o.prediction for o in outs]), torch.stack([o.embedding for o in outs]), parts
        )

    def backbone_prediction(self, batch) -> torch.Tensor:
        return self.forward(batch, use_frame=False)
