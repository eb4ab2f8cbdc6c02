"""Scalar-label data sets for pretraining (:mod:`goectp.training.pretrain`) and their crystal graphs.

A scalar set is one of :data:`SCALAR_DATASETS` (subsets of the shared screening pool, ``screening_candidates.json.gz``;
no download, no dielectric labels), ``megnet2`` (jarvis-tools: 133k Materials Project formation energies, eV/atom;
needs internet) or a scalar JSON file ``{id: {"structure": Structure.as_dict(), "value": float}}``.
:func:`load_scalar_set` turns it into a :class:`ScalarSet` (graphs with ``y`` ``[1]``), cached by the source file's
sha256.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from goectp.checkpoint import CheckpointError, atomic_save, load_cache
from goectp.data.paths import CANDIDATES_FILE, cache_dir, data_dir, sha256_file
from goectp.graph import CrystalGraph, build_crystal_graph
from goectp.text_values import finite_float

logger = logging.getLogger(__name__)

SCALAR_CACHE_VERSION = 1
MEGNET2_FILE = "megnet2_formation_energy.json.gz"


@dataclass
class ScalarRecord:
    """A structure with one scalar label."""

    id: str
    structure: Any  # pymatgen Structure
    value: float


# ------------------------------------------------------------------------------------------- scalar datasets
def _from_pool(sources: tuple[str, ...], value: Callable[[dict], float | None]) -> Callable[[list[dict]], list]:
    def select(entries: list[dict]) -> list[tuple[str, dict, float]]:
        out = []
        for e in entries:
            v = finite_float(value(e)) if e["source"].startswith(sources) else None
            if v is not None:
                out.append((e["id"], e["structure"], v))
        return out

    return select


def _log_modulus(key: str) -> Callable[[dict], float | None]:
    """log10 of a positive elastic modulus in ``extra[key]`` (GPa); None where absent or not positive."""

    def value(e: dict) -> float | None:
        extra = e.get("extra")
        m = finite_float(extra.get(key)) if isinstance(extra, dict) else None
        return math.log10(m) if m is not None and m > 0 else None

    return value


#: Scalar sets cut from the shared screening pool: name → (description with units, selector).
SCALAR_DATASETS: dict[str, tuple[str, Callable[[list[dict]], list]]] = {
    "perov5-formation": (
        "perov_5 (Castelli 2012 via CDVAE) heat of formation `heat_ref` in eV as given; the source does not state "
        "the normalisation, but every cell has 5 atoms, so per cell and per atom differ by a constant factor and "
        "the standardised target is the same (~7.6k 5-atom ABX3 perovskite cells)",
        _from_pool(("cdvae-perov_5",), lambda e: e.get("formation_energy")),
    ),
    "wbm-formation": (
        "WBM corrected formation energy, eV/atom (matcalc; ~1k diverse structures)",
        _from_pool(("matcalc-wbm",), lambda e: e.get("formation_energy")),
    ),
    "band-gap": (
        "band gap, eV (GLLB-SC for perov_5, PBE for MP/WBM/Alexandria; ~8.8k, most perov_5 gaps are 0)",
        _from_pool(("",), lambda e: e.get("band_gap")),
    ),
    "log-bulk-modulus": (
        "log10 of the VRH bulk modulus in GPa (matcalc MP binaries, PBE; ~3.6k diverse binaries)",
        _from_pool(("matcalc-mp-binary",), _log_modulus("bulk_modulus_vrh")),
    ),
    "log-shear-modulus": (
        "log10 of the VRH shear modulus in GPa (matcalc MP binaries, PBE; the same ~3.6k structures)",
        _from_pool(("matcalc-mp-binary",), _log_modulus("shear_modulus_vrh")),
    ),
}


def read_candidate_pool(path: str | os.PathLike) -> list[dict]:
    """The screening pool: a gzipped JSON list of ``{"id", "structure", "source", "formation_energy", ...}``; a
    ``ValueError`` naming the file for one that is unreadable, too large once decompressed, or not such a list."""
    from goectp.data.dielectric import load_json_file

    entries = load_json_file(path, "candidate-pool JSON")
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of candidates with 'id', 'structure' and 'source'")
    for i, e in enumerate(entries):
        if not (isinstance(e, dict) and isinstance(e.get("structure"), dict)):
            raise ValueError(f"{path}: candidate {i} is not an object with a 'structure' object")
        if not (isinstance(e.get("id"), str) and isinstance(e.get("source"), str)):
            raise ValueError(f"{path}: candidate {i} needs a string 'id' and 'source'")
    return entries


def records_from_megnet(entries: Iterable[dict]) -> list[ScalarRecord]:
    """Parse jarvis-tools ``megnet2`` (``formation_energy_per_atom``) or ``megnet`` (``e_form``) entries, eV/atom."""
    from goectp.data.loaders import structure_from_jarvis_atoms

    out = []
    for i, e in enumerate(entries):
        value = e.get("formation_energy_per_atom", e.get("e_form"))
        if value in (None, "na") or not math.isfinite(float(value)):
            continue
        rid = str(e.get("id") or e.get("jid") or f"megnet-{i}")
        out.append(ScalarRecord(rid, structure_from_jarvis_atoms(e["atoms"]), float(value)))
    return out


def write_scalar_json(records: list[ScalarRecord], path: str | os.PathLike) -> Path:
    """Write ``{id: {"structure": ..., "value": ...}}`` (gzipped when the name ends in .gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        json.dump({r.id: {"structure": r.structure.as_dict(), "value": r.value} for r in records}, f)
    return path


def read_scalar_json(path: str | os.PathLike) -> list[ScalarRecord]:
    """Read a scalar JSON file written by :func:`write_scalar_json` (within the library's size limit once
    decompressed; a ``ValueError`` naming the file and the record for a value that is not a finite number)."""
    from goectp.data.dielectric import load_json_file
    from goectp.structures import structure_from_dict

    path = Path(path)
    data = load_json_file(path, "scalar-dataset JSON")
    if not isinstance(data, dict) or any(not isinstance(v, dict) or "value" not in v for v in data.values()):
        raise ValueError(f"{path}: expected {{id: {{'structure': ..., 'value': float}}}}")
    bad = next((k for k, v in data.items() if finite_float(v["value"]) is None), None)
    if bad is not None:
        shown = str(data[bad]["value"])[:40]
        raise ValueError(f"{path}: record {bad[:80]!r}: 'value' must be a finite number, not {shown!r}")
    return [
        ScalarRecord(
            str(k), structure_from_dict(v.get("structure"), f"{path.name}: record {k!r}"), finite_float(v["value"])
        )
        for k, v in data.items()
    ]


def fetch_megnet2(out: str | os.PathLike | None = None) -> Path:
    """Download jarvis-tools ``megnet2`` (133k MP formation energies, eV/atom) into a scalar JSON file.

    Needs internet and ``pip install jarvis-tools`` (the ``loaders`` extra).
    """
    try:
        from jarvis.db.figshare import data as jarvis_data
    except ImportError as exc:
        raise RuntimeError("megnet2 needs jarvis-tools: pip install 'goectp-explorer[loaders]'") from exc
    return write_scalar_json(records_from_megnet(jarvis_data("megnet2")), out or cache_dir() / MEGNET2_FILE)


# ------------------------------------------------------------------------------------------- graphs
@dataclass
class ScalarSet:
    """Graphs (each with ``y`` ``[1]``) and their labels."""

    name: str
    ids: list[str]
    graphs: list[CrystalGraph]
    values: np.ndarray
    source_sha256: str | None = None
    source_path: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, idx: Iterable[int]) -> ScalarSet:
        idx = [int(i) for i in idx]
        return ScalarSet(
            self.name,
            [self.ids[i] for i in idx],
            [self.graphs[i] for i in idx],
            self.values[idx],
            self.source_sha256,
            self.source_path,
        )


def scalar_graphs(
    items: Iterable[tuple[str, Any, float]],
    name: str,
    k: int = 16,
    progress: bool = True,
    source_sha256: str | None = None,
) -> ScalarSet:
    """``(id, structure or its dict, value)`` → :class:`ScalarSet`; unusable structures are skipped (counted)."""
    from goectp.structures import structure_from_dict

    ids, graphs, values, bad = [], [], [], []
    for rid, struct, value in tqdm(list(items), desc=f"graphs {name}", disable=not progress, leave=False):
        try:
            s = structure_from_dict(struct) if isinstance(struct, dict) else struct
            g = build_crystal_graph(s, k=k)
        except ValueError as exc:
            bad.append((rid, str(exc)))
            continue
        g.y = torch.tensor([value], dtype=torch.float64)
        ids.append(rid)
        graphs.append(g)
        values.append(value)
    if bad:
        logger.warning("skipped %d unusable structures, e.g. %s: %s", len(bad), bad[0][0], bad[0][1])
    return ScalarSet(name, ids, graphs, np.asarray(values, dtype=np.float64), source_sha256)


def load_scalar_set(
    dataset: str,
    data_dir_: str | os.PathLike | None = None,
    k: int = 16,
    use_cache: bool = True,
    progress: bool = True,
    limit: int | None = None,
) -> ScalarSet:
    """A named scalar set (:data:`SCALAR_DATASETS` from the screening pool, or ``megnet2``) or a scalar JSON file.

    Graphs are cached in the goectp cache directory, keyed by the source file's sha256. ``limit`` keeps the first
    ``limit`` records (quick runs and tests).
    """
    if dataset in SCALAR_DATASETS:
        source = data_dir(data_dir_) / CANDIDATES_FILE
    elif dataset == "megnet2":
        source = cache_dir() / MEGNET2_FILE
        if not source.exists():
            logger.info("megnet2 not in the cache: downloading it to %s (jarvis-tools, internet)", source)
            fetch_megnet2(source)
    elif Path(dataset).is_file():
        source = Path(dataset)
    else:
        raise ValueError(
            f"unknown scalar dataset {dataset!r}: choose one of {[*SCALAR_DATASETS, 'megnet2']} "
            "or give a scalar JSON file"
        )
    sha = sha256_file(source)
    name = dataset if dataset in SCALAR_DATASETS or dataset == "megnet2" else Path(dataset).name.split(".")[0]
    key = hashlib.sha256(f"{sha}-{name}-k{k}-n{limit}-v{SCALAR_CACHE_VERSION}".encode()).hexdigest()[:20]
    cache = cache_dir() / f"scalar-graphs-{name}-{key}.pt"
    if use_cache and cache.exists():
        try:  # weights_only=True with the graph classes allowed; an unreadable cache is rebuilt
            return replace(ScalarSet(**load_cache(cache)), source_path=str(source))
        except CheckpointError as exc:
            logger.warning("ignoring the unreadable cache %s: %s", cache, exc)
    if dataset in SCALAR_DATASETS:
        items = SCALAR_DATASETS[dataset][1](read_candidate_pool(source))
    else:
        items = [(r.id, r.structure, r.value) for r in read_scalar_json(source)]
    if not items:
        raise ValueError(f"{dataset}: no structures with a label in {source}")
    ss = replace(scalar_graphs(items[:limit], name, k=k, progress=progress, source_sha256=sha), source_path=str(source))
    if use_cache:
        atomic_save(ss.__dict__, cache)
    return ss


def featured_scalar_set(ss: ScalarSet, name: str = "chgnet", progress: bool = True) -> ScalarSet:
    """``ss`` with foundation features ``x_extra`` on its graphs, cached per source file (see
    :func:`goectp.features.dataset_features`), for pretraining a ``node_features`` model."""
    from goectp.features import attach_features, dataset_features
    from goectp.structures import structure_from_dict

    if ss.source_path is None:
        raise ValueError(f"scalar set {ss.name!r} does not know its source file: load it with load_scalar_set")

    def structures() -> dict:
        wanted = set(ss.ids)
        if ss.name in SCALAR_DATASETS:
            return {
                e["id"]: structure_from_dict(e["structure"])
                for e in read_candidate_pool(ss.source_path)
                if e["id"] in wanted
            }
        return {r.id: r.structure for r in read_scalar_json(ss.source_path) if r.id in wanted}

    stored = dataset_features(ss.source_path, ss.ids, structures, name, progress=progress)
    return replace(ss, graphs=attach_features(ss.graphs, ss.ids, stored))
