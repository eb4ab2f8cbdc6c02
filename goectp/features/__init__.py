"""Pretrained invariant per-atom features from open universal potentials, as extra node inputs of GoeCTP.

DTNet's gain came from the features of PFP, a closed commercial potential. Open universal potentials whose wheels ship
their weights give the same kind of pretrained, O(3)-invariant per-atom descriptors. GoeCTP adds them to its node
inputs (``GoeCTPConfig(node_features='chgnet', node_feature_dim=128)``, graphs carry ``x_extra`` ``[N, D]``); the
polar frame keeps the whole model exactly equivariant because the features are invariant.

- :func:`structure_features` — features for any structures (no cache).
- :func:`load_featured_graph_set` — a dielectric dataset's graphs with cached features attached.
- :func:`with_node_features` — add them to graphs built elsewhere (:func:`goectp.api.graphs_for` builds graphs for
  new structures with the features a model needs).
- :data:`EXTRACTORS` (in :mod:`goectp.features.registry`) — the known extractors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from goectp.canonical import CANONICAL_CELL_VERSION
from goectp.features.cache import attach_features, compute_features, dataset_features, feature_cache_path
from goectp.features.registry import EXTRACTORS, feature_dim, get_extractor, max_atomic_number, structure_features
from goectp.graph import graph_structure


def load_featured_graph_set(
    path: str | os.PathLike,
    name: str = "chgnet",
    k: int = 16,
    progress: bool = True,
    use_cache: bool = True,
    canonical: bool = False,
):
    """:func:`goectp.data.load_graph_set` with ``x_extra`` attached to every graph (features cached on disk).

    Returns ``(GraphSet, info)`` with ``info`` = cache path, hit or miss, ms per structure of a miss.
    """
    from goectp.data import load_graph_set, read_dielectric_json

    gs = load_graph_set(path, k=k, use_cache=use_cache, progress=progress, canonical=canonical)
    if canonical:  # features of the cells the graphs were built from
        structures = lambda: {i: graph_structure(g) for i, g in zip(gs.ids, gs.graphs)}  # noqa: E731
    else:
        structures = lambda: {r.id: r.structure for r in read_dielectric_json(path)}  # noqa: E731
    stored = dataset_features(
        path,
        gs.ids,
        structures,
        name,
        progress=progress,
        use_cache=use_cache,
        cells=f"canonical{CANONICAL_CELL_VERSION}" if canonical else "input",
    )
    gs.graphs = attach_features(gs.graphs, gs.ids, stored)
    return gs, {k_: stored[k_] for k_ in ("cache", "hit", "ms_per_structure", "extractor")}


def with_node_features(graphs: Sequence[Any], structures: Sequence[Any] | None, name: str) -> list:
    """Copies of ``graphs`` (built from ``structures``, same order) with ``name`` features as ``x_extra``.

    ``structures=None``: the cells the graphs hold (:func:`goectp.graph.graph_structure`), e.g. canonical cells."""
    if structures is None:
        structures = [graph_structure(g) for g in graphs]
    limit = max_atomic_number(name)
    for s in structures if limit else ():
        heavy = next((site.specie for site in s if limit < site.specie.Z), None)
        if heavy is not None:
            from goectp.structures import StructureError

            raise StructureError(
                f"{s.composition.reduced_formula}: {heavy} (Z = {heavy.Z}) is heavier than any element the model's "
                f"{name} node features know (Z ≤ {limit}); use a model without node features (e.g. --model fast)",
                code="unknown_element",
            )
    ids = [str(i) for i in range(len(graphs))]
    stored = {
        "features": dict(zip(ids, structure_features(structures, name))),
        "z": {i: [site.specie.Z for site in s] for i, s in zip(ids, structures)},
    }
    return attach_features(graphs, ids, stored)


__all__ = [
    "EXTRACTORS",
    "attach_features",
    "compute_features",
    "dataset_features",
    "feature_cache_path",
    "feature_dim",
    "get_extractor",
    "load_featured_graph_set",
    "structure_features",
    "with_node_features",
]
