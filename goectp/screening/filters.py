"""Filters: exclusion of training data, and the selection rules of the two top lists.

**Training exclusion.** A candidate is excluded when it is (or may be) in the training data, by either rule:

1. *identity*: its ``id`` or ``material_id`` equals a training record's id or ``material_id``
   (``alex-mp-123`` has ``material_id`` ``mp-123`` and is caught through it);
2. *cheap structure key* (no StructureMatcher): same reduced formula, same number of sites, and cell volume
   within ``volume_tol`` (1 %) of a training record's volume: ``|V - V_train| <= 0.01 · V_train``.

Rule 2 catches relabelled copies of a training structure (different id, same cell); it can also exclude a
genuinely different polymorph with the same formula, site count and volume (rare, and erring towards novelty).

**High-κ list**: scored, ``band_gap > min_gap`` (1.8 eV). Candidates with *unknown* band gap are excluded from this
list (they are still scored and ranked in the full table). **Anisotropy list**: scored, finite ``score_aniso``
(mean and every member positive definite), and a known insulator: ``band_gap > aniso_min_gap`` (default
0.5 eV; candidates with unknown gap are left out, because the pools hold many intermetallics without a gap,
whose static dielectric tensor is meaningless; pass a negative value to disable the rule). Both lists are sorted
by their acquisition score, ties by id.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from goectp.screening.jsonstream import iter_json_items

VOLUME_TOL = 0.01


@dataclass
class TrainingIndex:
    """Ids and (reduced formula, n_sites) → volumes of the training set, small enough to ship to every worker."""

    ids: set[str] = field(default_factory=set)
    volumes: dict[tuple[str, int], list[tuple[float, str]]] = field(default_factory=dict)
    volume_tol: float = VOLUME_TOL
    source: str | None = None

    def __len__(self) -> int:
        return len({rid for vols in self.volumes.values() for _, rid in vols})

    def add(self, record_id: str, material_id: str | None, formula: str, n_sites: int, volume: float) -> None:
        self.ids.add(str(record_id))
        if material_id:
            self.ids.add(str(material_id))
        self.volumes.setdefault((formula, int(n_sites)), []).append((float(volume), str(record_id)))

    def match(self, cid: str, material_id: str | None, formula: str, n_sites: int, volume: float) -> str | None:
        """Why the candidate counts as training data (a sentence), or None when it does not."""
        for key in (cid, material_id):
            if key and key in self.ids:
                return f"{key} is in the training data (id/material_id)"
        for vol, rid in self.volumes.get((formula, int(n_sites)), ()):
            if abs(volume - vol) <= self.volume_tol * vol:
                return (
                    f"same reduced formula {formula}, {n_sites} sites and volume within "
                    f"{self.volume_tol:.0%} ({volume:.2f} vs {vol:.2f} Å^3) as training record {rid}"
                )
        return None


def formula_sites_volume(structure_dict: dict) -> tuple[str, int, float]:
    """``(reduced formula, n_sites, volume)`` read straight from a ``Structure.as_dict()`` (no Structure built)."""
    from pymatgen.core import Composition

    amounts: dict[str, float] = defaultdict(float)
    for site in structure_dict["sites"]:
        for species in site["species"]:
            amounts[species["element"]] += float(species.get("occu", 1.0))
    volume = float(abs(np.linalg.det(np.asarray(structure_dict["lattice"]["matrix"], dtype=float))))
    return Composition(amounts).reduced_formula, len(structure_dict["sites"]), volume


def load_training_index(path: str | os.PathLike, volume_tol: float = VOLUME_TOL) -> TrainingIndex:
    """Build a :class:`TrainingIndex` from a dataset like ``mp_dielectric_open.json.gz`` (dict or list of records)."""
    index = TrainingIndex(volume_tol=volume_tol, source=str(path))
    for key, rec in iter_json_items(Path(path)):
        if not isinstance(rec, dict) or not isinstance(rec.get("structure"), dict):
            raise ValueError(f"{path}: record {key!r} has no 'structure'; not a training dataset")
        try:
            formula, n_sites, volume = formula_sites_volume(rec["structure"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # OverflowError: a 400-digit number
            raise ValueError(f"{path}: record {key!r} has a malformed structure ({exc})"[:400]) from exc
        index.add(rec.get("id") or str(key), rec.get("material_id"), formula, n_sites, volume)
    return index


def known_gap_above(band_gap: pd.Series, threshold: float) -> pd.Series:
    """True where the band gap is known and strictly above ``threshold``."""
    return band_gap.notna() & (band_gap > threshold)


def high_k_mask(table: pd.DataFrame, min_gap: float) -> pd.Series:
    return known_gap_above(table["band_gap"], min_gap) & np.isfinite(table["score"])


def anisotropy_mask(table: pd.DataFrame, aniso_min_gap: float | None) -> pd.Series:
    finite = pd.Series(np.isfinite(table["score_aniso"].to_numpy(dtype=float)), index=table.index)
    if aniso_min_gap is None or aniso_min_gap < 0:
        return finite
    return finite & known_gap_above(table["band_gap"], aniso_min_gap)


def top_n(table: pd.DataFrame, mask: pd.Series, score_column: str, n: int) -> pd.DataFrame:
    """The ``n`` rows of ``table[mask]`` with the highest ``score_column`` (ties broken by id), with a 1-based rank."""
    out = table[mask].sort_values([score_column, "id"], ascending=[False, True], kind="mergesort").head(n).copy()
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out.reset_index(drop=True)
