"""Provenance of a screening run: which models, which pool, when, which code, which κ."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

import pandas as pd

PROVENANCE_COLUMNS = ["model_names", "model_sha256", "pool", "pool_sha256", "screened_on", "goectp_version", "kappa"]


@dataclass(frozen=True)
class Provenance:
    model_names: str  # ';'-joined member names
    model_sha256: str  # ';'-joined member checkpoint sha256s, same order
    pool: str
    pool_sha256: str
    screened_on: str  # ISO 8601 UTC time of the merge that produced the tables
    goectp_version: str
    kappa: float

    @classmethod
    def create(
        cls, model_names: tuple[str, ...], model_sha256s: tuple[str, ...], pool: str, pool_sha256: str, kappa: float
    ) -> Provenance:
        import goectp

        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
        return cls(
            ";".join(model_names), ";".join(model_sha256s), pool, pool_sha256, now, goectp.__version__, float(kappa)
        )

    def as_dict(self) -> dict:
        return asdict(self)

    def stamp(self, table: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``table`` with one constant column per provenance field."""
        out = table.copy()
        for key, value in self.as_dict().items():
            out[key] = value
        return out
