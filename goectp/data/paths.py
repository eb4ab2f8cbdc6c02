"""Where data and caches live: ``$GOECTP_DATA`` / ``--data-dir``, else ``../shared/data`` next to the repository."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

DIELECTRIC_FILE = "mp_dielectric_open.json.gz"
CANDIDATES_FILE = "screening_candidates.json.gz"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def data_dir(explicit: str | os.PathLike | None = None, must_exist: bool = True) -> Path:
    """Resolve the data directory: an explicit path, ``$GOECTP_DATA``, or ``<repo>/../shared/data``."""
    for cand in (explicit, os.environ.get("GOECTP_DATA"), repo_root().parent / "shared" / "data"):
        if cand and Path(cand).is_dir():
            return Path(cand).resolve()
    if must_exist:
        raise FileNotFoundError(
            "no data directory: pass --data-dir, set GOECTP_DATA, or fetch data with `goectp data fetch-matminer`"
        )
    return Path(explicit or os.environ.get("GOECTP_DATA") or repo_root().parent / "shared" / "data")


def cache_dir() -> Path:
    """``$GOECTP_CACHE`` or ``~/.cache/goectp`` (created on demand)."""
    path = Path(os.environ.get("GOECTP_CACHE") or Path.home() / ".cache" / "goectp")
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
