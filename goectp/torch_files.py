"""Torch files read and written safely: :func:`safe_load` is ``torch.load(..., weights_only=True)`` with the
archive's sizes checked first, so a file can only hold tensors and plain containers and any failure is a one-line
:class:`CheckpointError` naming the file; :func:`atomic_save` never leaves a partial file; :func:`load_cache` reads
goectp's own data caches (graphs, features) the same way. What a checkpoint holds: :mod:`goectp.checkpoint`.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from goectp.graph import CrystalGraph

Source = str | os.PathLike | bytes | io.BytesIO


class CheckpointError(ValueError):
    """A file that is not a usable GoeCTP checkpoint; the message names the file and the problem."""


# ------------------------------------------------------------------------------------------------ writing
def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace``: readers never see a partial
    file, and an interrupted write leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ------------------------------------------------------------------------------------------------ reading
def describe_source(source: Source) -> str:
    """How a message names ``source``: its path, or ``<checkpoint bytes>``."""
    if isinstance(source, (bytes, bytearray, io.BytesIO)):
        return "<checkpoint bytes>"
    return str(source)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    if "Weights only load failed" in line:  # torch's long message: keep the reason only
        body = str(exc)
        for marker in ("Unsupported global:", "Unsupported operand", "WeightsUnpickler error:"):
            i = body.find(marker)
            if i >= 0:
                line = body[i:].splitlines()[0]
                break
    return f"{type(exc).__name__}: {line}"[:300]


def safe_load(
    source: Source, map_location: str | torch.device | None = "cpu", allow: Iterable[Any] = (), name: str | None = None
) -> Any:
    """``torch.load(source, weights_only=True)``; any failure becomes a one-line :class:`CheckpointError`.

    ``allow`` lists extra classes the file may hold (e.g. cached graphs): they are reconstructed from data,
    never called as arbitrary code. ``name`` is used in messages (default: the path).
    """
    name = name or describe_source(source)
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    elif not isinstance(source, io.BytesIO):
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"{name}: no such checkpoint file")
        if path.stat().st_size == 0:
            raise CheckpointError(f"{name}: the file is empty, not a checkpoint")
    # a .pt is a zip archive: its declared sizes are read before anything is decompressed. torch.save stores its
    # entries uncompressed; compressed entries may inflate to at most 256 MiB in all (a zip bomb: gigabytes).
    import zipfile

    inflate_limit = 256 * 2**20
    try:
        opened = source if isinstance(source, io.BytesIO) else open(source, "rb")  # noqa: SIM115 - closed below
        try:
            if zipfile.is_zipfile(opened):
                entries = zipfile.ZipFile(opened).infolist()
                inflated = sum(e.file_size for e in entries if e.compress_type != zipfile.ZIP_STORED)
                lying = [
                    e.filename
                    for e in entries
                    if e.compress_type == zipfile.ZIP_STORED and e.file_size != e.compress_size
                ]
                if inflated > inflate_limit or lying:
                    raise CheckpointError(
                        f"{name}: refused before decompressing: its compressed entries declare {inflated:,} bytes, "
                        f"more than the limit of {inflate_limit:,} (a zip bomb?)"
                        if not lying
                        else f"{name}: refused: stored entry {lying[0][:80]!r} declares a size it does not have"
                    )
        finally:
            if opened is source:
                source.seek(0)
            else:
                opened.close()
    except CheckpointError:
        raise
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise CheckpointError(f"{name}: not a valid checkpoint ({_first_line(exc)})") from exc
    try:
        allow = list(allow)
        if allow:
            with torch.serialization.safe_globals(allow):
                return torch.load(source, map_location=map_location, weights_only=True)
        return torch.load(source, map_location=map_location, weights_only=True)
    except (OSError, MemoryError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError)):
            raise CheckpointError(f"{name}: cannot read the file ({_first_line(exc)})") from exc
        raise CheckpointError(f"{name}: not a valid checkpoint ({_first_line(exc)})") from exc
    except Exception as exc:  # UnpicklingError, RuntimeError (truncated zip), EOFError, ValueError, ...
        raise CheckpointError(
            f"{name}: not a valid checkpoint, or one holding code, which is never loaded ({_first_line(exc)})"
        ) from exc


def cache_safe_globals() -> list[Any]:
    """The classes goectp's own data caches hold besides tensors (crystal graphs, NumPy arrays): data only."""
    import numpy as np
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    dtypes = [type(np.dtype(t)) for t in ("f4", "f8", "i4", "i8", "u1", "b1", "U1", "c16")]
    return [CrystalGraph, GlobalStorage, DataEdgeAttr, DataTensorAttr, np.ndarray, np.dtype, _reconstruct, *dtypes]


def load_cache(path: str | os.PathLike) -> Any:
    """A goectp data cache (graphs, features) written with ``torch.save``, loaded with ``weights_only=True`` and
    :func:`cache_safe_globals` allowed."""
    return safe_load(path, map_location=None, allow=cache_safe_globals())
