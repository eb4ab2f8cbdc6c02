"""Checkpoints: one schema, safe loading and atomic writes (names and folders: :mod:`goectp.registry`).

Schema (``SCHEMA_VERSION`` 1; 2 for a sum naming a part by reference, below), a plain dict of tensors and
JSON-like values::

    {"schema_version": 1, "config": GoeCTPConfig.to_dict(), "state_dict": {name: Tensor}, "meta": {...}}

A *sum* member (:class:`~goectp.models.sum.SumOfParts`, the static tensor as ε∞ + ionic from two networks trained
on the same split) is one file too: ``{"schema_version": 1, "kind": "sum", "parts": {"electronic": <checkpoint
dict>, "ionic": <checkpoint dict>}, "meta": {...}}`` (:func:`sum_checkpoint_dict`). A part may instead name the
checkpoint file that holds it, ``{"file": "../electronic/split0.pt", "sha256": …}`` (a ``*.pt`` of the same or a
sibling folder, refused when its sha256 differs), so that members sharing an ε∞ network ship it once
(:func:`goectp.release.share_parts`); such a file declares ``SHARED_PARTS_VERSION`` (2), so that a goectp from
before says "upgrade goectp" instead of failing on the part. A Born-charge model
(:class:`~goectp.models.born.BornChargeModel`) is a GoeCTP checkpoint with ``"kind": "born"``.

Training resume files (``last.pt``) use the same ``state_dict`` key plus the optimiser / scheduler / RNG states
(ByteTensors) and the loop's bookkeeping (:func:`save_training_state`). Files written before the schema had a
version (no ``schema_version``; resume files with a ``model`` key instead of ``state_dict``) still load.

Every load goes through :func:`~goectp.torch_files.safe_load`: ``torch.load(..., weights_only=True)``, so a file
can only hold tensors and plain containers; a pickle that would run code, a text file or a truncated file raises
:class:`CheckpointError` (a ``ValueError``) whose one-line message names the file. Nothing in a checkpoint is ever
executed. Nor is anything in it trusted: a model's ``config`` is range-checked (:class:`GoeCTPConfig`), the model is
sized from the file's own weights before anything is allocated, and ``meta`` must be a dict of the expected types
(:func:`checked_meta`); each failure is a :class:`CheckpointError` naming the file and the field.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from goectp.models import PARTS, GoeCTP, GoeCTPConfig, SumOfParts
from goectp.models.born import BornChargeModel
from goectp.models.ensemble import graph_config, member_target
from goectp.torch_files import (  # noqa: F401 - re-exported: they were part of this module
    CheckpointError,
    Source,
    atomic_save,
    cache_safe_globals,
    describe_source,
    load_cache,
    safe_load,
)

#: Version of the checkpoint dict written by :func:`save_checkpoint` / :func:`save_training_state`.
SCHEMA_VERSION = 1
#: Version of a sum checkpoint that names a part by reference; the newest version this goectp reads.
SHARED_PARTS_VERSION = 2


def checkpoint_dict(model: GoeCTP | BornChargeModel, **meta: Any) -> dict:
    """The checkpoint dict of ``model`` (see the module docstring; a Born-charge model has ``"kind": "born"``)."""
    ckpt = {
        "schema_version": SCHEMA_VERSION,
        "config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "meta": meta,
    }
    if isinstance(model, BornChargeModel):
        ckpt["kind"] = "born"
    return ckpt


def save_checkpoint(path: str | os.PathLike, model: GoeCTP, **meta: Any) -> Path:
    """Save weights together with the config (and any metadata: metrics, seeds, epoch), atomically."""
    return atomic_save(checkpoint_dict(model, **meta), path)


def save_training_state(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: Any,
    scheduler: Any,
    rng: dict[str, torch.Tensor],
    state: dict,
    ema: dict | None = None,
) -> Path:
    """Everything needed to resume training (weights, optimiser, scheduler, RNG ByteTensors, loop state, and the
    weight average's state when there is one)."""
    return atomic_save(
        {
            "schema_version": SCHEMA_VERSION,
            "kind": "training_state",
            "state_dict": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": dict(rng),
            "state": state,
            **({"ema": ema} if ema is not None else {}),
        },
        path,
    )


#: Metadata keys goectp reads, and the type each must have when present and not ``None``.
META_TYPES: dict[str, type] = {
    "target": str,
    "split_seed": int,
    "data_sha256": str,
    "train_config": dict,
    "run_config": dict,
}
#: Keys of ``meta["train_config"]`` goectp reads, and their types.
TRAIN_CONFIG_TYPES: dict[str, type] = {"target": str, "split_seed": int}


def _check_types(values: dict, types: dict[str, type], name: str, where: str) -> None:
    """Each of ``types``' keys in ``values`` is ``None`` or of its type (an int is not a bool), else an error."""
    for key, kind in types.items():
        value = values.get(key)
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise CheckpointError(f"{name}: its {where}[{key!r}] is a {type(value).__name__}, not a {kind.__name__}")


def checked_meta(meta: Any, name: str) -> dict:
    """A checkpoint's ``meta``: a dict whose keys that goectp reads (:data:`META_TYPES`, and ``train_config``'s
    :data:`TRAIN_CONFIG_TYPES`) have the right types; absent or ``None`` → ``{}``. Else a :class:`CheckpointError`
    naming the file and the key."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise CheckpointError(f"{name}: its 'meta' is a {type(meta).__name__}, not a dict of metadata")
    _check_types(meta, META_TYPES, name, "meta")
    _check_types(meta.get("train_config") or {}, TRAIN_CONFIG_TYPES, name, "meta['train_config']")
    return meta


def read_checkpoint(
    source: Source,
    map_location: str | torch.device | None = "cpu",
    name: str | None = None,
    resolve_parts: bool = True,
) -> dict:
    """The checkpoint dict of any schema version, normalised to the current keys (``state_dict``, ``meta``); a sum
    checkpoint's parts given by reference are read from their files (``resolve_parts=False``: a sum is refused)."""
    name = name or describe_source(source)
    ckpt = safe_load(source, map_location=map_location, name=name)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{name}: not a GoeCTP checkpoint (holds a {type(ckpt).__name__}, not a dict)")
    version = ckpt.get("schema_version", 0)
    if not isinstance(version, int) or version > SHARED_PARTS_VERSION:
        raise CheckpointError(
            f"{name}: checkpoint schema version {version!r} is newer than this goectp "
            f"understands ({SHARED_PARTS_VERSION}); upgrade goectp"
        )
    if ckpt.get("kind") == "sum":
        if not resolve_parts:
            raise CheckpointError(f"{name}: a sum checkpoint cannot be a part of another one")
        folder = None if isinstance(source, (bytes, bytearray, io.BytesIO)) else Path(source).parent
        return _read_sum(ckpt, name, folder, map_location)
    if "state_dict" not in ckpt and "model" in ckpt:  # resume files before schema version 1
        ckpt = {**ckpt, "state_dict": ckpt["model"]}
        ckpt.pop("model")
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{name}: not a GoeCTP checkpoint (no 'state_dict' of weights)")
    ckpt["meta"] = checked_meta(ckpt.get("meta"), name)
    ckpt["schema_version"] = version
    return ckpt


def is_part_reference(sub: Any) -> bool:
    """A sum's part given as ``{"file": ..., "sha256": ...}`` (the file that holds it) rather than inline."""
    return isinstance(sub, dict) and set(sub) == {"file", "sha256"}


def sibling_checkpoint(
    folder: Path, relative: Any, sha256: Any, owner: str, what: str, where: str, since: str, verify: bool = True
) -> Path:
    """The ``*.pt`` file that ``relative`` names from ``folder``: in ``folder`` or a sibling folder (``where`` in the
    message), present, and (``verify``) still with the recorded ``sha256`` (else it changed ``since``). The one rule
    for the files a model folder refers to: a ``members.json`` member, a sum's shared part. Anything else is a
    :class:`CheckpointError` naming ``owner`` and ``what``."""
    from goectp.data.paths import sha256_file  # lazily: goectp.data imports the model modules

    if not isinstance(relative, str) or not isinstance(sha256, str):
        raise CheckpointError(f"{owner}: {what} is not a file name and a sha256")
    path = (folder / relative).resolve()
    if path.suffix != ".pt" or path.parent.parent != folder.resolve().parent:
        raise CheckpointError(f"{owner}: {what} {relative!r} is not a checkpoint of {where}")
    if not path.is_file():
        raise CheckpointError(f"{owner}: {what} {relative!r} is missing")
    if verify and sha256_file(path) != sha256:
        raise CheckpointError(f"{owner}: {what} {relative!r} changed since {since} (sha256)")
    return path


def _read_reference(sub: dict, name: str, part: str, folder: Path | None, map_location: Any) -> dict:
    """The checkpoint dict a part reference names (:func:`sibling_checkpoint`), a single (not a sum) checkpoint."""
    if folder is None:
        raise CheckpointError(f"{name}: its {part} part is in another file ({sub['file']!r}): load it from its file")
    what, where, since = f"its {part} part", "this or a sibling folder", "it was referenced"
    path = sibling_checkpoint(folder, sub["file"], sub["sha256"], name, what, where, since)
    return read_checkpoint(path, map_location, name=f"{name} ({part} part, {sub['file']})", resolve_parts=False)


def _read_sum(ckpt: dict, name: str, folder: Path | None = None, map_location: Any = "cpu") -> dict:
    """A sum checkpoint with both parts normalised like single checkpoints (parts given by reference are read from
    their files; sums of sums are refused)."""
    parts = ckpt.get("parts")
    if not isinstance(parts, dict) or sorted(parts) != sorted(PARTS):
        raise CheckpointError(f"{name}: a sum checkpoint needs exactly the parts {PARTS}")
    normalised = {}
    for part, sub in parts.items():
        if is_part_reference(sub):
            if ckpt.get("schema_version", 0) < SHARED_PARTS_VERSION:
                raise CheckpointError(f"{name}: its {part} part is a reference, which needs schema version 2")
            sub = _read_reference(sub, name, part, folder, map_location)
        if not isinstance(sub, dict) or sub.get("kind") == "sum" or not isinstance(sub.get("state_dict"), dict):
            raise CheckpointError(f"{name}: its {part} part is not a single GoeCTP checkpoint")
        normalised[part] = {**sub, "meta": checked_meta(sub.get("meta"), f"{name} ({part} part)")}
    return {**ckpt, "parts": normalised, "meta": checked_meta(ckpt.get("meta"), name)}


def sum_checkpoint_dict(electronic: dict, ionic: dict) -> dict:
    """One member predicting the total tensor from an ε∞ checkpoint and an ionic one (dicts as
    :func:`read_checkpoint` returns them), trained on the same split; raises when they do not fit together."""
    parts = {"electronic": electronic, "ionic": ionic}
    seeds = {
        part: c["meta"].get("split_seed", (c["meta"].get("train_config") or {}).get("split_seed"))
        for part, c in parts.items()
    }
    if None in seeds.values() or len(set(seeds.values())) > 1:
        raise ValueError(f"the parts of a sum must be trained on the same split, got split seeds {seeds}")
    data = {c["meta"].get("data_sha256") for c in parts.values()}
    if len(data) > 1:
        raise ValueError("the parts of a sum were trained on different data files")
    ckpt = {
        "schema_version": SCHEMA_VERSION,
        "kind": "sum",
        "parts": parts,
        "meta": {
            "target": "total",
            "split_seed": seeds["ionic"],
            "data_sha256": data.pop(),
            "train_config": {"target": "total", "split_seed": seeds["ionic"], "max_abs": None},
        },
    }
    model_from_checkpoint(ckpt, "sum")  # the checks a loader makes, before anything is written
    return ckpt


#: Errors that building a model from its config can raise (a bad value, a size too large for memory).
BUILD_ERRORS = (ValueError, TypeError, RuntimeError, MemoryError, OverflowError)
#: A model may hold at most this many times the bytes of weights its file holds (float16-stored weights load into
#: float32: 2×), plus :data:`BUILD_SLACK_BYTES`: weights that are views of one small tensor cannot make it allocate
#: gigabytes.
BUILD_EXPANSION = 4
BUILD_SLACK_BYTES = 2**20


def _one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (torch lists missing keys and size mismatches on lines of their own)."""
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]


def _check_target(model: nn.Module, name: str) -> None:
    """A dielectric model's ``meta`` target is one of :data:`goectp.models.ensemble.TARGETS`."""
    try:
        member_target(model)
    except ValueError as exc:
        raise CheckpointError(f"{name}: its meta['target'] / meta['train_config']['target']: {exc}") from exc


def _stored_bytes(state: dict) -> int:
    """Bytes of the distinct tensor storages in a state dict (shared or expanded views count once)."""
    storages = {}
    for value in state.values():
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            storages[(storage.data_ptr(), value.device)] = storage.nbytes()
    return sum(storages.values())


def _build_network(ckpt: dict, name: str) -> GoeCTP | BornChargeModel:
    """The :class:`GoeCTP` (or Born-charge model) of a single checkpoint with its weights loaded. The config is
    checked first, then the model is built on the meta device (no memory) to compare its tensors with the file's,
    so a config that asks for more than the file holds is refused before anything is allocated."""
    config = ckpt.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{name}: not a GoeCTP model checkpoint (missing 'config')")
    kind = ckpt.get("kind")
    if kind is not None and not (isinstance(kind, str) and kind == "born"):
        raise CheckpointError(f"{name}: not a model checkpoint (kind {str(kind)[:40]!r})")
    cls = BornChargeModel if kind == "born" else GoeCTP
    try:
        config = GoeCTPConfig(**config)
    except TypeError as exc:  # unknown or missing config keys
        raise CheckpointError(f"{name}: its model config does not match this goectp version ({exc})") from exc
    except ValueError as exc:  # a field out of range or of the wrong type: the message names it
        raise CheckpointError(f"{name}: invalid model config: {exc}") from exc
    state = ckpt["state_dict"]
    odd = next((k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if odd is not None or not state:
        what = "no weights" if not state else f"a weight {str(odd)[:60]!r} that is not a named tensor"
        raise CheckpointError(f"{name}: its state_dict holds {what}")
    try:
        with torch.device("meta"):
            skeleton = cls(config)
        with warnings.catch_warnings():  # copying into a meta tensor is a no-op; only names and shapes are checked
            warnings.simplefilter("ignore")
            skeleton.load_state_dict(state)
    except BUILD_ERRORS as exc:
        raise CheckpointError(f"{name}: weights do not match the model config ({_one_line(exc)})") from exc
    needed = sum(t.numel() * t.element_size() for t in skeleton.state_dict().values())
    stored = _stored_bytes(state)
    if needed > BUILD_EXPANSION * stored + BUILD_SLACK_BYTES:
        raise CheckpointError(
            f"{name}: its model config needs {needed:,} bytes of weights but the file holds only {stored:,} "
            "(tensors that are views of one another?)"
        )
    try:
        model = cls(config)
        model.load_state_dict(state)
    except BUILD_ERRORS as exc:
        raise CheckpointError(f"{name}: weights do not match the model config ({_one_line(exc)})") from exc
    model.meta = checked_meta(ckpt.get("meta"), name)
    if kind != "born":
        _check_target(model, name)
    return model.eval()


def model_from_checkpoint(ckpt: dict, name: str = "checkpoint") -> GoeCTP | SumOfParts:
    """Build the model a (normalised) checkpoint dict describes and load its weights; anything wrong with its
    config, weights or metadata is a :class:`CheckpointError` naming ``name`` (and the field)."""
    if ckpt.get("kind") != "sum":
        return _build_network(ckpt, name)
    parts = ckpt.get("parts")
    if not isinstance(parts, dict) or sorted(parts) != sorted(PARTS):
        raise CheckpointError(f"{name}: a sum checkpoint needs exactly the parts {PARTS}")
    models = {}
    for part, sub in parts.items():
        if not isinstance(sub, dict) or sub.get("kind") is not None:
            raise CheckpointError(f"{name}: its {part} part is not a single GoeCTP checkpoint")
        models[part] = _build_network(sub, f"{name} ({part} part)")
    for part, model in models.items():
        if member_target(model) != part:
            raise CheckpointError(f"{name}: its {part} part predicts the {member_target(model)} tensor")
        if (model.meta.get("train_config") or {}).get("max_abs") is not None:
            raise CheckpointError(f"{name}: its {part} part was trained without the large records (max_abs)")
    try:
        config = graph_config([m.config for m in models.values()], [f"{name} ({p})" for p in models])
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    model = SumOfParts(models, config, checked_meta(ckpt.get("meta"), name))
    _check_target(model, name)
    if member_target(model) != "total":
        raise CheckpointError(
            f"{name}: a sum of ε∞ and ionic parts, but its meta says it predicts the {member_target(model)} tensor"
        )
    return model.eval()


def self_contained_bytes(path: str | os.PathLike, data: bytes | None = None) -> bytes:
    """The bytes of the checkpoint file ``path`` (``data``: already read) with every part it names by reference
    inlined (for a worker process, which gets bytes, not files); the file's own bytes when it names none."""
    data = Path(path).read_bytes() if data is None else data
    raw = safe_load(io.BytesIO(data), name=str(path))
    parts = raw.get("parts") if isinstance(raw, dict) and raw.get("kind") == "sum" else None
    if not isinstance(parts, dict) or not any(is_part_reference(sub) for sub in parts.values()):
        return data
    buffer = io.BytesIO()
    torch.save(read_checkpoint(path), buffer)  # the parts read from their files, sha256-checked
    return buffer.getvalue()


def load_checkpoint(
    source: Source, map_location: str | torch.device = "cpu", name: str | None = None
) -> GoeCTP | SumOfParts:
    """A model from a checkpoint file (or its bytes; ``name`` for messages); never executes code from the file."""
    name = name or describe_source(source)
    return model_from_checkpoint(read_checkpoint(source, map_location, name=name), name)


def load_training_state(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict:
    """A ``last.pt`` resume dict: ``state_dict``, ``optimizer``, ``scheduler``, ``rng`` {name: ByteTensor},
    ``state``. Older files with ``loader_rng`` / ``aug_rng`` / ``torch_rng`` keys are normalised."""
    ckpt = read_checkpoint(path, map_location=map_location)
    if "rng" not in ckpt:
        ckpt["rng"] = {k[: -len("_rng")]: ckpt.pop(k) for k in ("loader_rng", "aug_rng", "torch_rng") if k in ckpt}
    missing = [k for k in ("optimizer", "scheduler", "state") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a training resume file (missing {', '.join(missing)})")
    return ckpt
