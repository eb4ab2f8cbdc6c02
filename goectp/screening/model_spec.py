"""The ensemble used for screening: checkpoint files → a picklable :class:`ModelSpec` → a cached :class:`Ensemble`.

The spec carries the checkpoint *bytes*, so workers of a remote Dask cluster need no shared file system; each
worker process builds the ensemble once and keeps it in :data:`_ENSEMBLE_CACHE`, keyed by the checkpoints'
sha256s and the device.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field

import torch

from goectp.checkpoint import load_checkpoint, self_contained_bytes
from goectp.device import default_device
from goectp.models import Ensemble
from goectp.registry import ensemble_members, folder_calibration, resolve_model_path
from goectp.uncertainty import CALIBRATION_FILE, Calibration


@dataclass(frozen=True)
class ModelSpec:
    """Names, sha256 and bytes of the member checkpoints (sorted by file name, as ``load_model`` orders them)."""

    names: tuple[str, ...]
    sha256s: tuple[str, ...]
    blobs: tuple[bytes, ...] = field(repr=False)
    origin: str = ""
    #: the ensemble folder's calibration (``Calibration.to_dict()``), checked against these weights; ``None``: σ is
    #: the raw member spread and there are no OOD flags
    calibration: dict | None = field(default=None, repr=False)

    @property
    def key(self) -> tuple[str, ...]:
        return self.sha256s


def load_model_spec(name_or_path: str | os.PathLike, check: bool = True) -> ModelSpec:
    """The spec of a model; with ``check`` every member is loaded once here (``weights_only=True``), so a file
    that is not a usable checkpoint fails before anything is scored (:class:`~goectp.checkpoint.CheckpointError`,
    naming the file), and so does a model of anything but the total (static) tensor."""
    names, files = zip(*ensemble_members(name_or_path))  # a name never resolves to the working directory
    data = [f.read_bytes() for f in files]  # each file read once: its sha256 and the bytes the workers get
    blobs = tuple(self_contained_bytes(f, d) for f, d in zip(files, data))  # a shared part travels inlined
    folder = resolve_model_path(name_or_path)
    calibration = None
    if check or (folder / CALIBRATION_FILE).is_file():
        ensemble = Ensemble([load_checkpoint(blob, name=str(f)) for f, blob in zip(files, blobs)])
        found = folder_calibration(folder, ensemble) if folder.is_dir() else None
        calibration = None if found is None else found.to_dict()
    if check and ensemble.target != "total":  # the high-κ list ranks the static ε̄; ε∞ or the ionic part alone is not it
        raise ValueError(
            f"screening ranks the static dielectric tensor (electronic + ionic), but {name_or_path} predicts the "
            f"{ensemble.target} tensor only; choose a model of the total tensor (e.g. default)"
        )
    return ModelSpec(
        names=tuple(names),
        sha256s=tuple(hashlib.sha256(d).hexdigest() for d in data),  # the files' own, for provenance
        blobs=blobs,
        origin=str(name_or_path),
        calibration=calibration,
    )


_ENSEMBLE_CACHE: dict[tuple, Ensemble] = {}
_CACHE_LOCK = threading.Lock()


def cached_ensemble(spec: ModelSpec, device: str | torch.device | None = None) -> Ensemble:
    """The spec's ensemble on ``device`` (CUDA when available), built at most once per process."""
    dev = default_device(device)
    key = (spec.key, str(dev))
    with _CACHE_LOCK:
        if key not in _ENSEMBLE_CACHE:
            members = [load_checkpoint(blob) for blob in spec.blobs]  # weights_only=True: data, never code
            ensemble = Ensemble(members, list(spec.names)).to(dev).eval()
            ensemble.calibration = None if spec.calibration is None else Calibration.from_dict(spec.calibration)
            _ENSEMBLE_CACHE[key] = ensemble
        return _ENSEMBLE_CACHE[key]


def clear_cache() -> None:
    with _CACHE_LOCK:
        _ENSEMBLE_CACHE.clear()
