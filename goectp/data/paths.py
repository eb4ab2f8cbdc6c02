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
    """The data directory — the one resolver used by the library, the CLI, the explorer and the tests.

    The first of these that is *given* is the answer: ``explicit`` (``--data-dir``), ``$GOECTP_DATA``,
    ``<repo>/../shared/data``. A given but missing folder is never skipped silently.

    Args:
        explicit: a folder named by the caller, or ``None``.
        must_exist: raise ``FileNotFoundError`` (naming the folder and where it came from) when the folder does not
            exist; with ``False`` return it anyway (for defaults shown in ``--help``; see also
            :func:`find_data_dir`).
    """
    env = os.environ.get("GOECTP_DATA")
    if explicit:
        path, origin = Path(explicit), "the given data directory"
    elif env:
        path, origin = Path(env), "$GOECTP_DATA"
    else:
        path, origin = repo_root().parent / "shared" / "data", "the default data directory"
    if path.is_dir():
        return path.resolve()
    if must_exist:
        raise FileNotFoundError(
            f"no data directory: {origin} {path} does not exist; pass --data-dir, set GOECTP_DATA, or fetch data "
            "with `goectp data fetch-matminer`"
        )
    return path


def find_data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """:func:`data_dir` when that folder exists, else ``None`` (for optional data: the explorer's dataset browser)."""
    path = data_dir(explicit, must_exist=False)
    return path if path.is_dir() else None


def cache_dir() -> Path:
    """``$GOECTP_CACHE`` or ``~/.cache/goectp`` (created on demand)."""
    path = Path(os.environ.get("GOECTP_CACHE") or Path.home() / ".cache" / "goectp")
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The sha256 of a regular file (a device such as ``/dev/zero`` or a pipe would be read forever: refused)."""
    if not Path(path).is_file():
        raise ValueError(f"{path}: not a regular file")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
