"""DatasetIndex: the explorer's read-only view of the DFPT data set (``mp_dielectric_open.json.gz`` in
``$GOECTP_DATA``), searched by formula or id.

The file is read as the library reads it (:func:`goectp.data.dielectric.load_json_file`: within a size limit once
decompressed, a corrupt archive or an id given twice refused) and every record's sites are checked before the
index is kept; a chosen record is parsed by :func:`goectp.data.dielectric.parse_dielectric_dict` (tensors 3x3 and
finite, band gap a number). Whatever is wrong is a ``ValueError`` naming the file and the record, which the loader
shows as its error: a damaged data file never raises out of a widget callback.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from explorer.paths import DATASET_FILE, data_dir
from goectp.data.dielectric import MAX_DATASET_BYTES, load_json_file


def _occupancy(value: Any) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    try:
        occu = float(value) if ok else math.nan
    except OverflowError:  # a 400-digit integer
        occu = math.nan
    if not (math.isfinite(occu) and occu > 0):
        raise ValueError(f"a site occupancy must be a finite number above 0, not {str(value)[:40]!r}")
    return occu


def species_counts(record: Any) -> dict[str, float]:
    """Element → amount in a record's ``structure`` dict (``ValueError`` for anything but a list of sites, each with
    a list of ``{"element": str, "occu": number}``)."""
    structure = record.get("structure") if isinstance(record, dict) else None
    sites = structure.get("sites") if isinstance(structure, dict) else None
    if not isinstance(sites, list) or not sites:
        raise ValueError("no 'structure' with a non-empty list of 'sites'")
    counts: dict[str, float] = {}
    for site in sites:
        species = site.get("species") if isinstance(site, dict) else None
        if not isinstance(species, list) or not species:
            raise ValueError("a site without a list of 'species'")
        for sp in species:
            element = sp.get("element") if isinstance(sp, dict) else None
            if not isinstance(element, str) or not element:
                raise ValueError(f"a species without an element name: {str(sp)[:60]!r}")
            counts[element] = counts.get(element, 0.0) + _occupancy(sp.get("occu"))
    return counts


def read_index(path: Path, max_bytes: int = MAX_DATASET_BYTES) -> tuple[dict[str, dict], dict[str, str]]:
    """``(records, {id: reduced formula})`` of a data file; a ``ValueError`` naming the file for any problem."""
    from pymatgen.core import Composition

    records = load_json_file(path, "dielectric-dataset JSON", max_bytes)
    if not isinstance(records, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by id (DTNet schema), got {type(records).__name__}")
    formulas = {}
    for key, rec in records.items():
        try:
            formulas[key] = Composition(species_counts(rec)).reduced_formula
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # Composition: an unknown element
            raise ValueError(f"{path}: record {key[:80]!r}: {exc}"[:400]) from exc
    return records, formulas


class DatasetIndex:
    """Lazy view of ``mp_dielectric_open.json.gz``: loaded on first use, then kept (about 1 s to load). A file that
    cannot be used raises the same ``ValueError`` at every use until it changes (it is not read again per search)."""

    #: Largest data file read, once decompressed (the open set is 20 MB).
    max_bytes = MAX_DATASET_BYTES

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory else data_dir()
        self._records: dict[str, dict] | None = None
        self._formulas: dict[str, str] = {}
        self._failed: tuple[tuple[int, int], str] | None = None  # (the file's mtime and size, the problem)

    @property
    def path(self) -> Path | None:
        return self.directory / DATASET_FILE if self.directory else None

    @property
    def available(self) -> bool:
        return self.path is not None and self.path.is_file()

    @property
    def loaded(self) -> bool:
        return self._records is not None

    def _load(self) -> dict[str, dict]:
        if self._records is None:
            if not self.available:
                raise FileNotFoundError(f"dataset not found: {self.path} (set GOECTP_DATA to its directory)")
            stat = os.stat(self.path)
            version = (stat.st_mtime_ns, stat.st_size)
            if self._failed is not None and self._failed[0] == version:
                raise ValueError(self._failed[1])
            try:
                self._records, self._formulas = read_index(self.path, self.max_bytes)
            except ValueError as exc:
                self._failed = (version, str(exc))
                raise
        return self._records

    def __len__(self) -> int:
        return len(self._load())

    def search(self, query: str, limit: int = 50) -> list[tuple[str, str, int]]:
        """Records whose id or reduced formula matches ``query``: ``[(id, formula, n_sites)]``.

        An exact id, an exact formula (in any order, e.g. ``O3SrTi`` = ``SrTiO3``) or a substring of either.
        """
        records = self._load()
        q = query.strip()
        if not q:
            return []
        try:
            from pymatgen.core import Composition

            canonical = Composition(q).reduced_formula
        except Exception:
            canonical = None
        ql = q.lower()
        exact, partial = [], []
        for key, formula in self._formulas.items():
            if key.lower() == ql or formula == canonical:
                exact.append(key)
            elif ql in key.lower() or ql in formula.lower():
                partial.append(key)
        hits = (exact + partial)[:limit]
        return [(k, self._formulas[k], len(records[k]["structure"]["sites"])) for k in hits]

    def record(self, key: str) -> tuple[Any, dict[str, Any]]:
        """``(Structure, reference)`` with reference = DFT tensors ``electronic/ionic/total`` (3x3), band gap, id; a
        ``ValueError`` naming the file for a record that cannot be shown."""
        from goectp.data.dielectric import TARGETS, parse_dielectric_dict

        records = self._load()
        if key not in records:
            raise KeyError(f"no record {key!r} in {DATASET_FILE}")
        try:
            (parsed,) = parse_dielectric_dict({key: records[key]})
        except ValueError as exc:  # a StructureError too
            raise ValueError(f"{self.path}: {exc}"[:400]) from exc
        missing = [name for name in TARGETS if name not in parsed.tensors]
        if missing:
            raise ValueError(f"{self.path}: record {key[:80]!r} has no {' / '.join(missing)} tensor")
        reference: dict[str, Any] = dict(parsed.tensors)
        reference.update(
            id=key,
            band_gap=parsed.band_gap,
            source=parsed.source if isinstance(parsed.source, str) else "",
            material_id=parsed.material_id,
        )
        return parsed.structure, reference
