"""Small files for the explorer's screening map (``assets/screening/``).

- ``screening_results.csv``: one row per scored candidate (:data:`EXPLORER_COLUMNS`), ``has_structure`` marks the
  rows whose structure is in ``top_structures.json.gz`` (clickable in the map);
- ``top_high_k.csv``, ``top_anisotropy.csv``: the two top lists with tensors, std and provenance;
- ``training_set.csv``: the DFT training data on the same axes (ε̄, α of the *total* DFT tensor, band gap,
  crystal system from ``SpacegroupAnalyzer(symprec=0.1)``);
- ``top_structures.json.gz``: gzip JSON ``{id: compact Structure.as_dict()}`` for both top lists first, then the best
  remaining candidates by either score, until the file would exceed ``max_bytes`` (default 1.9 MB);
- ``screening_summary.json``: provenance and counts.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from goectp.csvsafe import write_csv
from goectp.screening.jsonstream import iter_json_items
from goectp.screening.scoring import anisotropy_ratio

EXPLORER_COLUMNS = [
    "id",
    "formula",
    "source",
    "band_gap",
    "n_sites",
    "crystal_system",
    "spacegroup",
    "eps_mean",
    "eps_mean_std",
    "anisotropy",
    "anisotropy_std",
    "score",
    "score_aniso",
    "material_id",
    "eps_eig1",
    "eps_eig2",
    "eps_eig3",
    "rank_high_k",
    "rank_anisotropy",
    "ood_flag",
    "ood_reason",
    "calibrated",
]
TRAINING_COLUMNS = [
    "id",
    "formula",
    "band_gap",
    "eps_mean",
    "anisotropy",
    "crystal_system",
    "n_sites",
    "source",
    "material_id",
    "eps_eig1",
    "eps_eig2",
    "eps_eig3",
]
DROP_FROM_TOP = ["worker", "device", "status", "reason_code", "reason"]
MAX_STRUCTURE_BYTES = 1_900_000
FLOAT_FORMAT = "%.6g"


def compact_structure_dict(d: dict) -> dict:
    """A ``Structure.as_dict()`` with what ``from_dict`` needs only: the lattice matrix (rounded to 1e-12 Å, which
    drops float noise such as 6.6e-16 that compresses badly), each site's species and fractional coordinates, and
    site or structure properties and a charge when there are any (no Cartesian ``xyz``, no derived ``a, b, c``,
    angles or volume, no site labels)."""
    sites = []
    for site in d["sites"]:
        compact = {"species": site["species"], "abc": site["abc"]}
        if site.get("properties"):
            compact["properties"] = site["properties"]
        sites.append(compact)
    out = {"lattice": {"matrix": [[round(float(x), 12) for x in row] for row in d["lattice"]["matrix"]]}}
    out["sites"] = sites
    out.update({key: d[key] for key in ("charge", "properties") if d.get(key)})
    return out


def structure_priority(results: pd.DataFrame, top_high_k: pd.DataFrame, top_anisotropy: pd.DataFrame) -> list[str]:
    """Ids in the order their structures are worth shipping: both top lists, then alternately the next best by
    ``score`` and by (finite) ``score_aniso``."""
    by_score = results.sort_values(["score", "id"], ascending=[False, True])["id"].tolist()
    finite = results[np.isfinite(results["score_aniso"].to_numpy(float))]
    by_aniso = finite.sort_values(["score_aniso", "id"], ascending=[False, True])["id"].tolist()
    interleaved = [i for pair in itertools.zip_longest(by_score, by_aniso) for i in pair if i is not None]
    return list(dict.fromkeys([*top_high_k["id"], *top_anisotropy["id"], *interleaved]))


def gzip_json_size(obj: dict) -> int:
    return len(gzip.compress(json.dumps(obj, separators=(",", ":")).encode(), compresslevel=9))


def fit_structures(
    structures: dict[str, dict], priority: list[str], max_bytes: int, required: int = 0
) -> dict[str, dict]:
    """The longest prefix of ``priority`` (with a structure) whose gzip JSON fits in ``max_bytes``; the first
    ``required`` are kept even if they alone exceed it."""
    ids = [i for i in priority if i in structures]
    lo, hi = min(required, len(ids)), len(ids)
    if gzip_json_size({i: structures[i] for i in ids}) <= max_bytes:
        return {i: structures[i] for i in ids}
    while lo < hi:  # largest n with size(n) <= max_bytes
        mid = (lo + hi + 1) // 2
        if gzip_json_size({i: structures[i] for i in ids[:mid]}) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    return {i: structures[i] for i in ids[:lo]}


def collect_structures(pool, ids: set[str]) -> dict[str, dict]:
    """Structure dicts of ``ids`` from a pool (a second, streaming pass; file candidates are parsed here)."""
    from goectp.screening.worker import Rejected, parse_candidate

    found: dict[str, dict] = {}
    for rec in pool:
        if rec["id"] in ids and rec["id"] not in found:
            try:
                found[rec["id"]] = compact_structure_dict(parse_candidate(rec).as_dict())
            except Rejected:
                continue
            if len(found) == len(ids):
                break
    return found


def training_table(path: str | os.PathLike, symprec: float = 0.1) -> pd.DataFrame:
    """ε̄ and α of the DFT *total* tensors of a training dataset, with crystal systems (SpacegroupAnalyzer)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from goectp.structures import structure_from_dict

    rows = []
    for key, rec in iter_json_items(Path(path)):
        structure = structure_from_dict(rec["structure"], f"{Path(path).name}: record {str(key)[:80]!r}")
        total = np.asarray(rec["total"], dtype=float)
        eig = np.linalg.eigvalsh(0.5 * (total + total.T))
        alpha, _ = anisotropy_ratio(eig[None])
        try:
            crystal_system = SpacegroupAnalyzer(structure, symprec=symprec).get_crystal_system()
        except Exception:
            crystal_system = None
        rows.append(
            {
                "id": rec.get("id") or str(key),
                "formula": structure.composition.reduced_formula,
                "band_gap": rec.get("band_gap"),
                "eps_mean": eig.mean(),
                "anisotropy": float(alpha[0]),
                "crystal_system": crystal_system,
                "n_sites": len(structure),
                "source": rec.get("source"),
                "material_id": rec.get("material_id"),
                "eps_eig1": eig[0],
                "eps_eig2": eig[1],
                "eps_eig3": eig[2],
            }
        )
    return pd.DataFrame(rows, columns=TRAINING_COLUMNS)


def export_assets(
    run,
    pool,
    out_dir: str | os.PathLike,
    training_path: str | os.PathLike | None = None,
    max_bytes: int = MAX_STRUCTURE_BYTES,
) -> dict[str, Path]:
    """Write the explorer's files for a finished :class:`~goectp.screening.run.ScreeningRun`; returns their paths."""
    rk = run.rankings
    if rk is None:
        raise ValueError("the screening run was interrupted: nothing to export (rerun to finish it first)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    priority = structure_priority(rk.results, rk.top_high_k, rk.top_anisotropy)
    required = len(set(rk.top_high_k["id"]) | set(rk.top_anisotropy["id"]))
    structures = collect_structures(pool, set(priority))
    shipped = fit_structures(structures, priority, max_bytes, required=required)
    paths: dict[str, Path] = {}
    results = rk.results.assign(has_structure=rk.results["id"].isin(shipped))
    paths["screening_results"] = out / "screening_results.csv"
    write_csv(
        results.reindex(columns=[*EXPLORER_COLUMNS, "has_structure"]),
        paths["screening_results"],
        index=False,
        float_format=FLOAT_FORMAT,
    )
    for name, frame in (("top_high_k", rk.top_high_k), ("top_anisotropy", rk.top_anisotropy)):
        paths[name] = out / f"{name}.csv"
        write_csv(
            run.provenance.stamp(frame.drop(columns=[c for c in DROP_FROM_TOP if c in frame])),
            paths[name],
            index=False,
            float_format=FLOAT_FORMAT,
        )
    paths["top_structures"] = out / "top_structures.json.gz"
    with gzip.open(paths["top_structures"], "wt", encoding="utf-8", compresslevel=9) as fh:
        json.dump(shipped, fh, separators=(",", ":"))
    if training_path is not None:
        paths["training_set"] = out / "training_set.csv"
        write_csv(training_table(training_path), paths["training_set"], index=False, float_format=FLOAT_FORMAT)
    summary = {
        **run.summary,
        "provenance": {**run.provenance.as_dict(), "pool": Path(run.provenance.pool).name},
        "structures_shipped": len(shipped),
    }
    summary.pop("options", None)
    paths["screening_summary"] = out / "screening_summary.json"
    paths["screening_summary"].write_text(json.dumps(summary, indent=2, default=str))
    return paths
