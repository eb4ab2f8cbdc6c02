"""On-disk cache of per-atom foundation features for a dataset file, and attaching them to crystal graphs.

One file per (dataset file, extractor): ``<cache_dir>/features-<extractor>-<data stem>-<key>.pt`` with ``key`` a hash
of the data file's sha256 and the extractor's version. It holds ``{id: [N, D] float32}`` and each structure's
atomic numbers (checked against the graph when attaching, so features can never land on the wrong atoms). A cache
hit needs neither the network nor the extractor's package.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from goectp.checkpoint import CheckpointError, atomic_save, load_cache
from goectp.data.paths import cache_dir, sha256_file
from goectp.features.registry import extractor_version, get_extractor

logger = logging.getLogger(__name__)

FEATURE_CACHE_VERSION = 1


def feature_cache_path(data_file: str | os.PathLike, extractor_name: str, extractor_version: str) -> Path:
    data_file = Path(data_file)
    key = hashlib.sha256(f"{sha256_file(data_file)}-{extractor_version}-v{FEATURE_CACHE_VERSION}".encode())
    return cache_dir() / f"features-{extractor_name}-{data_file.name.split('.')[0]}-{key.hexdigest()[:20]}.pt"


def compute_features(
    structures: Sequence[Any], extractor: Callable, chunk: int = 64, progress: bool = True
) -> tuple[list[np.ndarray], float]:
    """Run ``extractor`` over ``structures`` in chunks; returns the arrays and the wall time in ms per structure."""
    feats: list[np.ndarray] = []
    t0 = time.perf_counter()
    for start in tqdm(range(0, len(structures), chunk), desc="features", disable=not progress, leave=False):
        feats.extend(extractor(structures[start : start + chunk]))
    return feats, 1e3 * (time.perf_counter() - t0) / max(len(structures), 1)


def dataset_features(
    data_file: str | os.PathLike,
    ids: Sequence[str],
    structures_fn: Callable[[], dict],
    extractor: str | Callable = "chgnet",
    progress: bool = True,
    use_cache: bool = True,
    cells: str = "input",
) -> dict[str, Any]:
    """Features of the structures of one data file, from the cache when it is there.

    Args:
        data_file: the dataset file (its sha256 keys the cache).
        ids: the record ids needed (those not in the cache yet are computed and added to it).
        structures_fn: called only on a cache miss; returns ``{id: Structure}``.
        extractor: a name from :data:`goectp.features.registry.EXTRACTORS` or an extractor object (with ``name``,
            ``version`` and ``__call__(structures) -> list[[N, D] arrays]``).

    Returns ``{"features": {id: [N, D] float32}, "z": {id: [N] int}, "ms_per_structure": float | None,
    "extractor": version, "cache": path, "hit": bool}``.
    """
    ids = [str(i) for i in ids]  # plain keys (NumPy strings would make the cache unreadable with weights_only)
    name = extractor if isinstance(extractor, str) else extractor.name
    version = extractor_version(name) if isinstance(extractor, str) else extractor.version
    # features of the canonical cells (atoms in another order) are cached apart from those of the input cells
    path = feature_cache_path(data_file, name, version if cells == "input" else f"{version}-{cells}")
    stored = {"features": {}, "z": {}}
    if use_cache and path.exists():
        try:  # weights_only=True (NumPy arrays allowed); an unreadable cache is recomputed
            stored = load_cache(path)
        except CheckpointError as exc:
            logger.warning("ignoring the unreadable feature cache %s: %s", path, exc)
        if all(i in stored["features"] for i in ids):
            return {**stored, "cache": path, "hit": True}
    missing = [i for i in dict.fromkeys(ids) if i not in stored["features"]]  # computed now, merged into the file
    ext = get_extractor(extractor) if isinstance(extractor, str) else extractor
    structures = structures_fn()
    unknown = [i for i in missing if i not in structures]
    if unknown:
        raise KeyError(f"{len(unknown)} ids have no structure in {data_file}, e.g. {unknown[0]!r}")
    feats, ms = compute_features([structures[i] for i in missing], ext, progress=progress)
    stored = {
        "features": {**stored["features"], **dict(zip(missing, feats))},
        "z": {**stored["z"], **{i: np.array([site.specie.Z for site in structures[i]]) for i in missing}},
        "ms_per_structure": ms,
        "extractor": ext.version,
    }
    if use_cache:
        atomic_save(stored, path)
    return {**stored, "cache": path, "hit": False}


def attach_features(graphs: Sequence[Any], ids: Sequence[str], stored: dict) -> list[Any]:
    """Copies of ``graphs`` with ``x_extra`` ``[N, D]`` (float32) from ``stored`` (see :func:`dataset_features`)."""
    out = []
    for g, i in zip(graphs, ids):
        x = np.asarray(stored["features"][i])
        z = np.asarray(stored["z"][i])
        if x.shape[0] != g.num_nodes or not np.array_equal(z, g.z.numpy()):
            raise ValueError(
                f"cached features of {i!r} do not match its graph (atoms {z.tolist()} vs "
                f"{g.z.tolist()}): delete {stored.get('cache', 'the feature cache')}"
            )
        h = g.clone()
        h.x_extra = torch.from_numpy(x.astype(np.float32))
        out.append(h)
    return out
