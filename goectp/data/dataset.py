"""Graphs + targets for training, with an on-disk cache so graphs are built once per dataset file."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from goectp.canonical import CANONICAL_CELL_VERSION
from goectp.checkpoint import CheckpointError, atomic_save, load_cache
from goectp.data.dielectric import DielectricRecord, read_dielectric_json
from goectp.data.paths import cache_dir, sha256_file
from goectp.data.splits import crystal_system
from goectp.graph import CrystalGraph, build_crystal_graph

logger = logging.getLogger(__name__)

GRAPH_CACHE_VERSION = 2  # 2: own Niggli reduction, primitive_lattice, primitive-cell symmetry ops


@dataclass
class GraphSet:
    """Parallel lists: ids, graphs (each with ``y_total``/``y_electronic``/``y_ionic`` ``[1, 3, 3]``), metadata."""

    ids: list[str]
    graphs: list[CrystalGraph]
    crystal_systems: list[str]
    band_gaps: list[float | None]
    formulas: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def require_target(self, target: str = "total") -> None:
        """A ``ValueError`` naming the records without a ``target`` tensor, or an empty set."""
        if not self.graphs:
            raise ValueError("the dataset has no usable records")
        missing = [i for i, g in zip(self.ids, self.graphs) if not hasattr(g, f"y_{target}")]
        if missing:
            raise ValueError(f"{len(missing)} records have no {target!r} tensor (e.g. {missing[0]!r})")

    def with_target(self, target: str = "total") -> list[CrystalGraph]:
        """Graphs whose ``y`` is the chosen tensor (shallow copies; the cache is not modified)."""
        self.require_target(target)
        out = []
        for g in self.graphs:
            h = g.clone()
            h.y = getattr(g, f"y_{target}")
            out.append(h)
        return out

    def targets(self, target: str = "total") -> np.ndarray:
        self.require_target(target)
        return torch.cat([getattr(g, f"y_{target}") for g in self.graphs]).numpy()

    def subset(self, idx: np.ndarray) -> GraphSet:
        idx = [int(i) for i in idx]
        return GraphSet(
            [self.ids[i] for i in idx],
            [self.graphs[i] for i in idx],
            [self.crystal_systems[i] for i in idx],
            [self.band_gaps[i] for i in idx],
            [self.formulas[i] for i in idx],
        )


def graphs_from_records(
    records: list[DielectricRecord], k: int = 16, progress: bool = True, canonical: bool = False
) -> GraphSet:
    """Build graphs for records; records whose structure is unusable are dropped with a warning count.

    ``canonical``: graphs of the canonical cells (:func:`goectp.canonical.uses_canonical_cell` models)."""
    ids, graphs, systems, gaps, formulas, bad = [], [], [], [], [], []
    for r in tqdm(records, desc="graphs", disable=not progress, leave=False):
        try:
            g = build_crystal_graph(r.structure, k=k, canonical=canonical)
        except ValueError as exc:
            bad.append((r.id, str(exc)))
            continue
        for name, t in r.tensors.items():
            setattr(g, f"y_{name}", torch.from_numpy(np.asarray(t, dtype=np.float64))[None])
        ids.append(r.id)
        graphs.append(g)
        systems.append(crystal_system(r.structure))
        gaps.append(r.band_gap)
        formulas.append(r.structure.composition.reduced_formula)
    if bad:
        logger.warning("skipped %d unusable structures, e.g. %s: %s", len(bad), bad[0][0], bad[0][1])
    return GraphSet(ids, graphs, systems, gaps, formulas)


def load_graph_set(
    path: str | os.PathLike, k: int = 16, use_cache: bool = True, progress: bool = True, canonical: bool = False
) -> GraphSet:
    """Read a dielectric JSON file and return its graphs, from the cache when the file has not changed.

    ``canonical``: graphs of the canonical cells with their frames (see :mod:`goectp.canonical`), cached apart."""
    path = Path(path)
    tag = f"-canonical{CANONICAL_CELL_VERSION}" if canonical else ""
    key = hashlib.sha256(f"{sha256_file(path)}-k{k}-v{GRAPH_CACHE_VERSION}{tag}".encode()).hexdigest()[:20]
    cache = cache_dir() / f"graphs-{path.name.split('.')[0]}-{key}.pt"
    if use_cache and cache.exists():
        try:  # weights_only=True with the graph classes allowed; an unreadable cache is rebuilt
            return GraphSet(**load_cache(cache))
        except CheckpointError as exc:
            logger.warning("ignoring the unreadable cache %s: %s", cache, exc)
    gs = graphs_from_records(read_dielectric_json(path), k=k, progress=progress, canonical=canonical)
    if use_cache:
        atomic_save(gs.__dict__, cache)
    return gs
