"""Reader for the DTNet/GoeCTP ``mp_dielectric.json`` schema (Monty JSON, optionally gzipped).

``{id: {"structure": Structure.as_dict(), "electronic": 3x3, "ionic": 3x3, "total": 3x3, "band_gap": float|null,
...}}``. The paper's original file and ``mp_dielectric_open.json.gz`` both read unchanged.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from goectp.text_values import finite_float

Target = Literal["total", "electronic", "ionic"]
TARGETS: tuple[str, ...] = ("total", "electronic", "ionic")


@dataclass
class DielectricRecord:
    """One crystal with its DFPT dielectric tensors (relative permittivities, dimensionless)."""

    id: str
    structure: Any  # pymatgen Structure
    tensors: dict[str, np.ndarray]
    band_gap: float | None = None
    material_id: str | None = None
    source: str | None = None
    extra: dict = field(default_factory=dict)

    def target(self, name: str = "total") -> np.ndarray:
        if name not in self.tensors:
            raise KeyError(f"record {self.id} has no {name!r} tensor (has {sorted(self.tensors)})")
        return self.tensors[name]


#: A dataset file larger than this once decompressed is refused (a 2 MB gzip can expand to gigabytes; the open set's
#: file is 20 MB decompressed).
MAX_DATASET_BYTES = 500_000_000


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``' ``object_pairs_hook``: an object naming a key twice is refused (``json`` would keep the last
    value silently: a record, or a tensor, lost without a word)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {key[:80]!r} appears twice in one object (duplicate id or field)")
            seen.add(key)
    return out


def load_json_file(path: str | os.PathLike, what: str = "JSON", max_bytes: int = MAX_DATASET_BYTES) -> Any:
    """The JSON value of a plain or gzipped file, read within ``max_bytes`` (decompressed); a ``ValueError`` naming
    the file for anything unreadable: not JSON, not UTF-8, a corrupt archive, nesting too deep, too large, a key
    given twice in one object."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ValueError(f"more than {max_bytes:,} bytes once decompressed")
        return json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys)
    except RecursionError as exc:
        raise ValueError(f"{path}: not a readable {what} file (nested too deeply)") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})"[:400]) from exc
    except (OSError, EOFError, ValueError, zlib.error) as exc:  # a bad archive, not UTF-8, too large
        raise ValueError(f"{path}: not a readable {what} file ({exc})"[:400]) from exc


#: No relative permittivity is this large (the open set's largest component is 427): a unit or parsing error.
MAX_COMPONENT = 1.0e5


def _tensor(value: Any, key: str, rid: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: a 400-digit integer
        raise ValueError(f"record {rid}: {key} tensor is not a matrix of numbers ({exc})"[:300]) from exc
    if arr.shape == (6,):  # Voigt-like order 11 22 33 23 13 12 is NOT assumed: refuse ambiguity
        raise ValueError(f"record {rid}: {key} tensor has 6 components; give the full 3x3 matrix")
    if arr.shape != (3, 3):
        raise ValueError(f"record {rid}: {key} tensor must be 3x3, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"record {rid}: {key} tensor contains NaN or infinite values")
    if np.abs(arr).max() > MAX_COMPONENT:
        raise ValueError(
            f"record {rid}: {key} tensor has a component of {np.abs(arr).max():.3g}, beyond ±{MAX_COMPONENT:g}"
        )
    return 0.5 * (arr + arr.T)


def _band_gap(value: Any, rid: str) -> float | None:
    """A record's band gap (eV): ``None``, or a finite number >= 0 (NaN, ±inf, a negative gap or a number too large
    for a float are refused: downstream they would silently mean "unknown" or "metal")."""
    gap = finite_float(value)
    if value is not None and (gap is None or gap < 0):
        shown = str(value)[:40]
        raise ValueError(f"record {rid}: band_gap must be a number or null (a finite gap >= 0 eV), not {shown!r}")
    return gap


def parse_dielectric_dict(data: dict[str, dict]) -> list[DielectricRecord]:
    """Parse the in-memory schema (structures may be dicts or Structures)."""
    from goectp.structures import structure_from_dict

    records = []
    for rid, entry in data.items():
        if not isinstance(entry, dict):
            raise ValueError(
                f"record {rid}: expected an object with 'structure' and tensors, not a {type(entry).__name__}"
            )
        if "structure" not in entry:
            raise ValueError(f"record {rid}: missing 'structure'")
        struct = entry["structure"]
        if isinstance(struct, dict):
            struct = structure_from_dict(struct, f"record {str(rid)[:80]!r}")
        elif not hasattr(struct, "lattice"):  # neither a Structure nor its dict
            raise ValueError(
                f"record {rid}: 'structure' must be a pymatgen Structure dict, not a {type(struct).__name__}"
            )
        tensors = {k: _tensor(entry[k], k, rid) for k in TARGETS if entry.get(k) is not None}
        if not tensors:
            raise ValueError(f"record {rid}: no dielectric tensor among {TARGETS}")
        gap = _band_gap(entry.get("band_gap"), rid)
        known = {"structure", *TARGETS, "band_gap", "material_id", "source"}
        extra = {k: v for k, v in entry.items() if k not in known}
        records.append(
            DielectricRecord(
                str(rid),
                struct,
                tensors,
                gap,
                entry.get("material_id"),
                entry.get("source"),
                extra,
            )
        )
    return records


def read_dielectric_json(path: str | os.PathLike) -> list[DielectricRecord]:
    """Read a DTNet/GoeCTP-schema JSON file (``.json`` or ``.json.gz``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():  # a folder, a device such as /dev/zero, a pipe
        raise ValueError(f"{path}: not a regular file")
    data = load_json_file(path, "dielectric-dataset JSON")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by id (DTNet schema), got {type(data).__name__}")
    from goectp.structures import StructureError

    try:
        return parse_dielectric_dict(data)
    except StructureError as exc:  # name the file: "record x: ..." alone does not say which dataset
        raise StructureError(f"{path}: {exc}", exc.code) from exc
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def filter_records(
    records: list[DielectricRecord], target: str = "total", max_abs: float | None = None, min_value: float | None = None
) -> list[DielectricRecord]:
    """Keep records whose ``target`` tensor has every |component| < ``max_abs`` and every component >= ``min_value``.

    The DTNet/GoeCTP loaders use ``max_abs=100`` (drops ferroelectric-like soft-mode outliers).
    """
    out = []
    for r in records:
        t = r.target(target)
        if max_abs is not None and np.abs(t).max() >= max_abs:
            continue
        if min_value is not None and t.min() < min_value:
            continue
        out.append(r)
    return out


def write_dielectric_json(records: list[DielectricRecord], path: str | os.PathLike) -> None:
    """Write records in the same schema (gzipped if the name ends in .gz)."""
    out = {}
    for r in records:
        entry = {
            "structure": r.structure.as_dict(),
            "band_gap": r.band_gap,
            "material_id": r.material_id,
            "source": r.source,
        }
        entry.update({k: v.tolist() for k, v in r.tensors.items()})
        out[r.id] = entry
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        json.dump(out, f)
