"""The resumable work directory: one Parquet part file per finished chunk, plus a manifest.

.. code-block:: text

    <out>/work/manifest.json                      # what the parts were computed with (models, pool, limits)
    <out>/work/parts/part-<run>-<seq>.parquet     # one per chunk, written atomically (tmp file + rename)

An id counts as done when any part holds it with a status other than ``failed``; a restarted run skips done ids.
Parts computed with other models, another pool or another size limit are refused rather than silently mixed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

RETRY_STATUSES = {"failed"}
STATUS_PRIORITY = {"scored": 0, "excluded": 1, "rejected": 2, "failed": 3}


class ScreeningError(RuntimeError):
    """A screening run that cannot proceed; the message says why and what to do."""


class WorkDir:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.parts_dir = self.path / "parts"
        self.manifest_path = self.path / "manifest.json"
        self.run_token = uuid.uuid4().hex[:8]
        self._seq = 0

    def prepare(self, manifest: dict, fresh: bool = False) -> None:
        """Create the directory, or check that existing parts were computed with the same ``manifest``."""
        if fresh and self.path.exists():
            shutil.rmtree(self.path)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        if self.manifest_path.exists() and self.part_files():
            old = self.read_manifest()
            diff = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
            if diff:
                raise ScreeningError(
                    f"{self.path} holds results computed with different settings ({', '.join(diff)} differ); "
                    "rerun with --fresh to discard them, or choose another --out"
                )
        tmp = self.manifest_path.with_name(f".{self.manifest_path.name}.{self.run_token}.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(tmp, self.manifest_path)  # atomic: a reader sees the old manifest or the new one, never half

    def read_manifest(self) -> dict:
        """The manifest; a :class:`ScreeningError` naming the file when it is torn or not a JSON object."""
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ScreeningError(
                f"{self.manifest_path}: damaged ({type(exc).__name__}: {exc}); rerun with --fresh to start again"[:400]
            ) from exc
        if not isinstance(manifest, dict):
            raise ScreeningError(f"{self.manifest_path}: damaged (not a JSON object); rerun with --fresh")
        return manifest

    def part_files(self) -> list[Path]:
        return sorted(self.parts_dir.glob("part-*.parquet")) if self.parts_dir.exists() else []

    def done_ids(self) -> set[str]:
        done: set[str] = set()
        for f in self.part_files():
            t = pq.read_table(f, columns=["id", "status"]).to_pandas()
            done.update(t.loc[~t["status"].isin(RETRY_STATUSES), "id"].astype(str))
        return done

    def write_part(self, frame: pd.DataFrame) -> Path:
        """Write one chunk's rows atomically; returns the part path."""
        self._seq += 1
        final = self.parts_dir / f"part-{self.run_token}-{self._seq:06d}.parquet"
        tmp = final.with_suffix(".parquet.tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, final)
        return final

    def read_parts(self) -> pd.DataFrame:
        files = self.part_files()
        if not files:
            return pd.DataFrame()
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def deduplicate(parts: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One row per id, preferring scored > excluded > rejected > failed (then the earliest part). Returns the count
    of dropped duplicate rows too."""
    if parts.empty:
        return parts, 0
    priority = parts["status"].map(STATUS_PRIORITY).fillna(9)
    ordered = parts.assign(_priority=priority).sort_values(["id", "_priority"], kind="mergesort")
    unique = ordered.drop_duplicates("id", keep="first").drop(columns="_priority")
    return unique, len(parts) - len(unique)
