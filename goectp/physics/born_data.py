"""Reader for the DFPT Born-charge set (``mp_born_charges.json.gz``): one ``Z*`` per site and the piezoelectric
tensor, keyed by the ids of the dielectric set.

``{id: {"structure": Structure.as_dict(), "born_charges": N x 3 x 3, "piezoelectric": 3 x 6,
"same_structure_as_record": bool, "origin": str}}`` (see the data README). Structures are read as plain data
(:func:`goectp.structures.structure_from_dict`); each record is checked (shapes, finite values, one charge per site)
and a damaged one raises a ``ValueError`` naming the file and the record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from goectp.data.dielectric import load_json_file
from goectp.physics.ionic import acoustic_sum_rule_error

#: records whose |Σ_i Z*_i| exceeds this (e) are damaged in the source (14 of 2,125 above 1, 105 above 0.1)
SUM_RULE_TOLERANCE = 0.1


@dataclass(frozen=True)
class BornRecord:
    """One crystal's DFPT Born effective charges (e, ``[N, 3, 3]``, site order of ``structure``)."""

    id: str
    structure: Any
    born_charges: np.ndarray
    piezoelectric: np.ndarray | None
    same_structure_as_record: bool
    origin: str

    @property
    def sum_rule_error(self) -> float:
        """``max |Σ_i Z*_i|`` (e)."""
        return acoustic_sum_rule_error(self.born_charges)

    @property
    def sum_rule_holds(self) -> bool:
        return self.sum_rule_error < SUM_RULE_TOLERANCE

    def charges_on(self, cell: Any) -> np.ndarray | None:
        """These charges on the sites of ``cell`` (e.g. the canonical primitive cell of ``structure``), ``[N, 3, 3]``
        as stored (the sum rule not enforced), by :func:`cell_mapping`; ``None`` when the sites do not map."""
        weights = cell_mapping(cell.lattice.matrix.T, cell.frac_coords, [s.specie.Z for s in cell], self.structure)
        if weights is None:
            return None
        return (weights @ self.born_charges.reshape(len(self.structure), 9)).reshape(-1, 3, 3)


def parse_born_record(key: str, raw: Any, source: str = "<dict>") -> BornRecord:
    """One record of the schema above, validated."""
    from goectp.structures import StructureError, structure_from_dict

    where = f"{source}: record {key}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is not an object")
    try:
        structure = structure_from_dict(raw.get("structure"))
    except (StructureError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: unreadable structure ({exc})"[:400]) from exc
    try:
        born = np.asarray(raw.get("born_charges"), dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: born_charges is not an array of numbers") from exc
    if born.shape != (len(structure), 3, 3):
        raise ValueError(f"{where}: born_charges must be [{len(structure)}, 3, 3] (one per site), got {born.shape}")
    if not np.all(np.isfinite(born)):
        raise ValueError(f"{where}: born_charges contain NaN or infinite values")
    piezo = raw.get("piezoelectric")
    if piezo is not None:
        piezo = np.asarray(piezo, dtype=float)
        if piezo.shape != (3, 6) or not np.all(np.isfinite(piezo)):
            raise ValueError(f"{where}: piezoelectric must be 3 x 6 finite numbers, got shape {piezo.shape}")
    return BornRecord(
        id=str(key),
        structure=structure,
        born_charges=born,
        piezoelectric=piezo,
        same_structure_as_record=bool(raw.get("same_structure_as_record", True)),
        origin=str(raw.get("origin", "")),
    )


def read_born_charges(path: str | os.PathLike) -> dict[str, BornRecord]:
    """All records of a Born-charge file (gzipped or plain JSON), validated, keyed by id."""
    path = Path(path)
    data = load_json_file(path, "Born-charge JSON")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object keyed by record id, got {type(data).__name__}")
    return {str(k): parse_born_record(k, v, str(path)) for k, v in data.items()}


def cell_mapping(
    lattice_cols: np.ndarray, frac: np.ndarray, numbers, structure: Any, tol: float = 0.1
) -> np.ndarray | None:
    """``A [N_cell, N_sites]``: atom ``i`` of a (primitive, canonical) cell is the average of the sites ``j`` of
    ``structure`` with ``A[i, j] > 0`` — the sites that are the same atom up to a lattice vector of the cell and one
    common origin shift, same species, within ``tol`` Å. ``None`` when no shift maps every site.

    Per-site quantities of a record given in a conventional cell (``born_charges``) move onto the canonical cell
    with ``A @ values`` (translation-equivalent sites carry the same value, up to the DFT noise).
    """
    lattice_cols = np.asarray(lattice_cols, float)
    inverse = np.linalg.inv(lattice_cols)
    cell_cart = np.asarray(frac, float) @ lattice_cols.T  # [N, 3]
    site_cart = structure.cart_coords  # [M, 3]
    z_cell = np.asarray(numbers)
    z_site = np.array([s.specie.Z for s in structure])
    n, m = len(z_cell), len(z_site)
    if m % n or sorted(np.repeat(z_cell, m // n).tolist()) != sorted(z_site.tolist()):
        return None
    for j in np.flatnonzero(z_site == z_cell[0]):
        shift = cell_cart[0] - site_cart[j]
        diff = ((site_cart + shift)[None, :, :] - cell_cart[:, None, :]) @ inverse.T  # [N, M, 3] fractional
        diff -= np.rint(diff)
        dist = np.linalg.norm(diff @ lattice_cols.T, axis=-1)
        dist[z_cell[:, None] != z_site[None, :]] = np.inf
        owner = dist.argmin(axis=0)  # [M]
        if dist[owner, np.arange(m)].max() > tol or np.bincount(owner, minlength=n).tolist() != [m // n] * n:
            continue
        weights = np.zeros((n, m))
        weights[owner, np.arange(m)] = n / m
        return weights
    return None
