"""Candidate records, the unit of work of a screening run, and :class:`PoolError`.

A pool (:mod:`goectp.screening.pool`, :mod:`goectp.screening.materials_project`) yields plain picklable dicts that
can be shipped to Dask workers:

.. code-block:: text

    {"id": str, "pool_index": int, "source": str | None, "formula": str | None, "band_gap": float | None,
     "material_id": str | None,
     "structure": dict | None,          # pymatgen Structure.as_dict(), or
     "text": str | None, "fmt": str,    # file contents to parse on the worker (CIF / POSCAR / JSON)
     "reject_code": str, "reject_reason": str}   # only when the record is already known to be unusable
"""

from __future__ import annotations

from typing import Any

from goectp.text_values import finite_float


class PoolError(ValueError):
    """A pool that cannot be opened or read; the message says why."""


def _str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def make_candidate(
    cid: str,
    pool_index: int,
    *,
    source: str | None = None,
    formula: str | None = None,
    band_gap: Any = None,
    material_id: Any = None,
    structure: dict | None = None,
    text: str | None = None,
    fmt: str | None = None,
    reject: tuple[str, str] | None = None,
) -> dict:
    """Build one candidate record (see the module docstring for the fields)."""
    rec = {
        "id": str(cid),
        "pool_index": int(pool_index),
        "source": _str_or_none(source),
        "formula": _str_or_none(formula),
        "band_gap": finite_float(band_gap),
        "material_id": _str_or_none(material_id),
        "structure": structure,
        "text": text,
        "fmt": fmt,
    }
    if reject is not None:
        rec["reject_code"], rec["reject_reason"] = reject
    return rec
