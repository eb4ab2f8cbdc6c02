"""Loaders that fetch real dielectric data and write the DTNet/GoeCTP schema.

All network access is in these functions; the parsing of each source's records is a separate function that the
tests exercise on small fixtures. The packages (``matminer``, ``mp-api``, ``jarvis-tools``) are optional extras
(``pip install goectp-explorer[loaders]``), imported only when a loader is called.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from goectp.data.dielectric import DielectricRecord, filter_records, write_dielectric_json

#: DTNet's filter: keep records whose every total component lies in [-10, 100].
DTNET_RANGE = (-10.0, 100.0)


def _sym(x: Any) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return 0.5 * (a + a.T)


def _isotropic(value: float) -> np.ndarray:
    return float(value) * np.eye(3)


# ----------------------------------------------------------------------------------------------- matminer
def records_from_matminer_frame(df: Any) -> list[DielectricRecord]:
    """Parse matminer's ``dielectric_constant`` DataFrame.

    The dataset stores scalar ``poly_electronic``/``poly_total`` and, in recent versions, ``e_electronic`` /
    ``e_total`` 3x3 tensors; ``ionic = total - electronic``.
    """
    out = []
    for _, row in df.iterrows():
        if "e_total" in row and row["e_total"] is not None:
            total, elec = _sym(row["e_total"]), _sym(row["e_electronic"])
        else:
            total, elec = _isotropic(row["poly_total"]), _isotropic(row["poly_electronic"])
        out.append(
            DielectricRecord(
                str(row["material_id"]),
                row["structure"],
                {"total": total, "electronic": elec, "ionic": total - elec},
                float(row["band_gap"]) if "band_gap" in row else None,
                str(row["material_id"]),
                "matminer-dielectric_constant",
            )
        )
    return out


def fetch_matminer(out: str | Path) -> Path:
    """Download matminer's ``dielectric_constant`` (Petousis 2017) and write it in the DTNet schema."""
    from matminer.datasets import load_dataset

    records = records_from_matminer_frame(load_dataset("dielectric_constant"))
    write_dielectric_json(records, out)
    return Path(out)


# ----------------------------------------------------------------------------------------------- Materials Project
def records_from_mp_docs(docs: Iterable[Any]) -> list[DielectricRecord]:
    """Parse ``mp_api`` dielectric summary docs (``material_id``, ``structure``, ``e_electronic``, ``e_ionic``,
    ``e_total``, ``band_gap``) into records; docs without tensors are skipped."""
    out = []
    for d in docs:
        get = d.get if isinstance(d, dict) else lambda k, _d=d: getattr(_d, k, None)
        if get("e_total") is None or get("e_electronic") is None:
            continue
        total, elec = _sym(get("e_total")), _sym(get("e_electronic"))
        ionic = _sym(get("e_ionic")) if get("e_ionic") is not None else total - elec
        mid = str(get("material_id"))
        gap = get("band_gap")
        out.append(
            DielectricRecord(
                mid,
                get("structure"),
                {"total": total, "electronic": elec, "ionic": ionic},
                None if gap is None else float(gap),
                mid,
                "materials-project",
            )
        )
    return out


def fetch_materials_project(out: str | Path, api_key: str | None = None, dtnet_filter: bool = True) -> Path:
    """Query the Materials Project (``MP_API_KEY``) for all DFPT dielectric tensors, apply DTNet's filter
    (every total component in [-10, 100]) and write the DTNet schema."""
    import os

    from mp_api.client import MPRester

    key = api_key or os.environ.get("MP_API_KEY")
    if not key:
        raise RuntimeError("set MP_API_KEY (or pass api_key) to query the Materials Project")
    fields = ["material_id", "structure", "e_electronic", "e_ionic", "e_total", "band_gap"]
    with MPRester(key) as mpr:
        docs = mpr.materials.summary.search(has_props=["dielectric"], fields=fields)
    records = records_from_mp_docs(docs)
    if dtnet_filter:
        lo, hi = DTNET_RANGE
        records = [r for r in records if r.tensors["total"].min() >= lo and r.tensors["total"].max() <= hi]
    write_dielectric_json(records, out)
    return Path(out)


# ----------------------------------------------------------------------------------------------- JARVIS (GMTNet)
def structure_from_jarvis_atoms(atoms: dict) -> Any:
    """JARVIS ``atoms`` dict (``lattice_mat``, ``coords``, ``elements``, ``cartesian``) → pymatgen Structure."""
    from pymatgen.core import Lattice, Structure

    return Structure(
        Lattice(atoms["lattice_mat"]),
        atoms["elements"],
        atoms["coords"],
        coords_are_cartesian=bool(atoms.get("cartesian", False)),
    )


def records_from_jarvis(entries: Iterable[dict], key: str = "dielectric") -> list[DielectricRecord]:
    """Parse GMTNet's ``jarvis_diele_piezo.pkl`` entries (``atoms`` dict + ``dielectric`` 3x3 total tensor)."""
    out = []
    for i, e in enumerate(entries):
        if e.get(key) is None:
            continue
        t = np.asarray(e[key], dtype=np.float64)
        if t.shape != (3, 3) or not np.all(np.isfinite(t)):
            continue
        rid = str(e.get("jid") or e.get("JARVIS_ID") or e.get("id") or f"jarvis-{i}")
        gap = e.get("optb88vdw_bandgap")
        out.append(
            DielectricRecord(
                rid,
                structure_from_jarvis_atoms(e["atoms"]),
                {"total": _sym(t)},
                None if gap in (None, "na") else float(gap),
                None,
                "jarvis-gmtnet",
            )
        )
    return out


def read_jarvis_pickle(path: str | Path, max_abs: float | None = None) -> list[DielectricRecord]:
    """Read GMTNet's ``jarvis_diele_piezo.pkl`` (a list of dicts) without running code from it.

    The file is read by :func:`goectp.data.safe_pickle.load_plain_pickle`: lists, dicts, numbers, strings and numpy
    arrays only; a pickle naming anything else (a class, a function) raises before it is called.
    """
    from goectp.data.safe_pickle import load_plain_pickle

    data = load_plain_pickle(path)
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        kind = type(data).__name__
        raise ValueError(f"{path}: expected a list of dicts (GMTNet's jarvis_diele_piezo.pkl), not a {kind}")
    records = records_from_jarvis(data)
    return filter_records(records, "total", max_abs=max_abs) if max_abs else records


def fetch_jarvis(out: str | Path, dataset: str = "dft_3d") -> Path:
    """Download JARVIS-DFT with jarvis-tools and keep entries with a DFPT dielectric tensor (``epsx/y/z`` only are
    scalars there; the full tensor is in ``dfpt_piezo_max_dielectric`` for some records)."""
    from jarvis.db.figshare import data as jarvis_data

    entries = []
    for e in jarvis_data(dataset):
        diel = e.get("dfpt_piezo_max_dielectric")
        if isinstance(diel, (list, tuple)) and np.asarray(diel).shape == (3, 3):
            entries.append({**e, "dielectric": diel})
    write_dielectric_json(records_from_jarvis(entries), out)
    return Path(out)
