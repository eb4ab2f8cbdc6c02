"""Candidates from a Materials Project query (online; ``mp-api`` is imported only when used).

Query: thermodynamically stable entries (``is_stable=True``) with a PBE band gap above zero
(``band_gap >= MIN_GAP_EV``), optionally restricted to a chemical system and to at most ``max_sites`` sites
(oversized cells would only be rejected later). The API key comes from ``MP_API_KEY``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from goectp.screening.candidates import PoolError, make_candidate

MIN_GAP_EV = 1e-4  # "band gap > 0": the smallest reported non-zero PBE gaps are ~1e-3 eV
MP_FIELDS = ["material_id", "formula_pretty", "structure", "band_gap", "energy_above_hull", "is_stable"]
MP_SOURCE = "materials-project"


def _get(doc: Any, name: str) -> Any:
    return doc.get(name) if isinstance(doc, dict) else getattr(doc, name, None)


def candidate_from_mp_doc(doc: Any, pool_index: int) -> dict:
    """Turn one ``SummaryDoc`` (or an equivalent dict) into a candidate record.

    ``material_id`` may be an ``MPID`` object; ``structure`` a pymatgen ``Structure`` or its dict.
    """
    mid = _get(doc, "material_id")
    if mid is None:
        return make_candidate(
            f"{MP_SOURCE}-{pool_index}",
            pool_index,
            source=MP_SOURCE,
            reject=("unparseable", "Materials Project document without a material_id"),
        )
    mid = str(mid)
    structure = _get(doc, "structure")
    if structure is not None and not isinstance(structure, dict):
        structure = structure.as_dict()
    reject = None if isinstance(structure, dict) else ("unparseable", f"{mid}: document has no structure")
    return make_candidate(
        mid,
        pool_index,
        source=MP_SOURCE,
        formula=_get(doc, "formula_pretty"),
        band_gap=_get(doc, "band_gap"),
        material_id=mid,
        structure=structure,
        reject=reject,
    )


@dataclass
class MaterialsProjectPool:
    """Stable, non-metallic Materials Project entries (needs network access and ``MP_API_KEY``)."""

    chemsys: str | None = None
    max_sites: int | None = None
    api_key: str | None = None

    def query(self) -> dict:
        q: dict[str, Any] = {"is_stable": True, "band_gap": (MIN_GAP_EV, 1e3)}
        if self.chemsys:
            q["chemsys"] = self.chemsys
        if self.max_sites:
            q["num_sites"] = (1, int(self.max_sites))
        return q

    @property
    def description(self) -> str:
        return f"Materials Project summary query {json.dumps(self.query(), sort_keys=True)}"

    def sha256(self) -> str:
        """Hash of the query (the database itself changes with MP releases; the date column records when)."""
        return hashlib.sha256(self.description.encode()).hexdigest()

    def count(self) -> int | None:
        return None

    def _docs(self) -> list:
        key = self.api_key or os.environ.get("MP_API_KEY")
        if not key:
            raise PoolError(
                "a Materials Project query needs an API key: set MP_API_KEY (https://next-gen.materialsproject.org/api)"
            )
        try:
            from mp_api.client import MPRester
        except ImportError as exc:
            raise PoolError("a Materials Project query needs mp-api: pip install mp-api") from exc
        try:
            with MPRester(key) as mpr:
                return list(mpr.materials.summary.search(**self.query(), fields=MP_FIELDS))
        except Exception as exc:  # network / auth errors come in many types
            raise PoolError(f"Materials Project query failed ({type(exc).__name__}: {exc})") from exc

    def __iter__(self) -> Iterator[dict]:
        for i, doc in enumerate(self._docs()):
            yield candidate_from_mp_doc(doc, i)
