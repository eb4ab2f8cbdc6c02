"""Checkpoints: one schema, safe loading, atomic writes, ensembles and the shipped-model registry.

Schema (``SCHEMA_VERSION`` 1), a plain dict of tensors and JSON-like values::

    {"schema_version": 1, "config": GoeCTPConfig.to_dict(), "state_dict": {name: Tensor}, "meta": {...}}

A *sum* member (:class:`~goectp.models.sum.SumOfParts`, the static tensor as ε∞ + ionic from two networks trained
on the same split) is one file too: ``{"schema_version": 1, "kind": "sum", "parts": {"electronic": <checkpoint
dict>, "ionic": <checkpoint dict>}, "meta": {...}}`` (:func:`sum_checkpoint_dict`).

Training resume files (``last.pt``) use the same ``state_dict`` key plus the optimiser / scheduler / RNG states
(ByteTensors) and the loop's bookkeeping (:func:`save_training_state`). Files written before the schema had a
version (no ``schema_version``; resume files with a ``model`` key instead of ``state_dict``) still load.

Every load goes through :func:`safe_load`: ``torch.load(..., weights_only=True)``, so a file can only hold
tensors and plain containers; a pickle that would run code, a text file or a truncated file raises
:class:`CheckpointError` (a ``ValueError``) whose one-line message names the file. Nothing in a checkpoint is ever
executed.

Names: a *name* (a string without a path separator that does not end in ``.pt``, e.g. ``"default"``) is looked up
only in ``assets/models/<name>`` (``$GOECTP_ASSETS``), never in the working directory; anything else (a
:class:`~pathlib.Path`, ``"./default"``, ``"runs/x/best.pt"``, ``"x.pt"``) is a path.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from goectp.graph import CrystalGraph
from goectp.models import PARTS, GoeCTP, GoeCTPConfig, SumOfParts

#: Version of the checkpoint dict written by :func:`save_checkpoint` / :func:`save_training_state`.
SCHEMA_VERSION = 1

Source = str | os.PathLike | bytes | io.BytesIO


class CheckpointError(ValueError):
    """A file that is not a usable GoeCTP checkpoint; the message names the file and the problem."""


# ------------------------------------------------------------------------------------------------ paths and devices
def assets_dir() -> Path:
    """``$GOECTP_ASSETS`` or the repository's ``assets/`` folder."""
    env = os.environ.get("GOECTP_ASSETS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "assets"


def default_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, else CUDA when available, else CPU.

    Raises ``ValueError`` for a CUDA device on a machine without CUDA (instead of torch's ``AssertionError``).
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r} (use 'cpu' or 'cuda')") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine (use 'cpu')")
    return dev


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


def checkpoint_dict(model: GoeCTP, **meta: Any) -> dict:
    """The checkpoint dict of ``model`` (see the module docstring)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "meta": meta,
    }


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


# ------------------------------------------------------------------------------------------------ reading
def _describe(source: Source) -> str:
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
    name = name or _describe(source)
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    elif not isinstance(source, io.BytesIO):
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"{name}: no such checkpoint file")
        if path.stat().st_size == 0:
            raise CheckpointError(f"{name}: the file is empty, not a checkpoint")
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


def read_checkpoint(source: Source, map_location: str | torch.device | None = "cpu", name: str | None = None) -> dict:
    """The checkpoint dict of any schema version, normalised to the current keys (``state_dict``, ``meta``)."""
    name = name or _describe(source)
    ckpt = safe_load(source, map_location=map_location, name=name)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{name}: not a GoeCTP checkpoint (holds a {type(ckpt).__name__}, not a dict)")
    version = ckpt.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise CheckpointError(
            f"{name}: checkpoint schema version {version!r} is newer than this goectp "
            f"understands ({SCHEMA_VERSION}); upgrade goectp"
        )
    if ckpt.get("kind") == "sum":
        return _read_sum(ckpt, name)
    if "state_dict" not in ckpt and "model" in ckpt:  # resume files before schema version 1
        ckpt = {**ckpt, "state_dict": ckpt["model"]}
        ckpt.pop("model")
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{name}: not a GoeCTP checkpoint (no 'state_dict' of weights)")
    ckpt.setdefault("meta", {})
    ckpt["schema_version"] = version
    return ckpt


def _read_sum(ckpt: dict, name: str) -> dict:
    """A sum checkpoint with both parts normalised like single checkpoints (sums of sums are refused)."""
    parts = ckpt.get("parts")
    if not isinstance(parts, dict) or sorted(parts) != sorted(PARTS):
        raise CheckpointError(f"{name}: a sum checkpoint needs exactly the parts {PARTS}")
    normalised = {}
    for part, sub in parts.items():
        if not isinstance(sub, dict) or sub.get("kind") == "sum" or not isinstance(sub.get("state_dict"), dict):
            raise CheckpointError(f"{name}: its {part} part is not a single GoeCTP checkpoint")
        normalised[part] = {**sub, "meta": sub.get("meta") or {}}
    meta = ckpt.get("meta")
    return {**ckpt, "parts": normalised, "meta": meta if isinstance(meta, dict) else {}}


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


def members_by_split(spec: str | os.PathLike) -> dict[int, dict]:
    """``{split seed: checkpoint dict}`` of an ensemble (a shipped name or a folder); one member per seed."""
    members: dict[int, dict] = {}
    for f in checkpoint_files(spec):
        ckpt = read_checkpoint(f)  # weights_only=True
        seed = ckpt.get("meta", {}).get("split_seed")
        if seed is None or int(seed) in members:
            raise CheckpointError(f"{f}: {'no split seed' if seed is None else f'a second member of split {seed}'}")
        members[int(seed)] = ckpt
    return members


def sum_ensembles(electronic: str | os.PathLike, ionic: str | os.PathLike, out: str | os.PathLike) -> list[Path]:
    """One ensemble of the static tensor from an ε∞ ensemble and an ionic-only one (``goectp sum``): member k is
    ε∞ member k + ionic member k, paired by split seed and written as one sum checkpoint ``out/split<k>.pt``
    (:func:`sum_checkpoint_dict`), so the result loads, predicts, calibrates and combines like any ensemble."""
    by_part = {"electronic": members_by_split(electronic), "ionic": members_by_split(ionic)}
    if sorted(by_part["electronic"]) != sorted(by_part["ionic"]):
        raise ValueError(
            f"the ensembles cover different splits: {sorted(by_part['electronic'])} vs {sorted(by_part['ionic'])}"
        )
    checkpoints = {}
    for seed in sorted(by_part["ionic"]):  # every pair is checked before anything is written
        try:
            checkpoints[seed] = sum_checkpoint_dict(by_part["electronic"][seed], by_part["ionic"][seed])
        except (ValueError, CheckpointError) as exc:
            raise ValueError(f"split {seed}: {exc}") from exc
    return [atomic_save(ckpt, Path(out) / f"split{seed}.pt") for seed, ckpt in checkpoints.items()]


def model_from_checkpoint(ckpt: dict, name: str = "checkpoint") -> GoeCTP | SumOfParts:
    """Build the model a (normalised) checkpoint dict describes and load its weights."""
    if ckpt.get("kind") == "sum":
        parts = {part: model_from_checkpoint(sub, f"{name} ({part} part)") for part, sub in ckpt["parts"].items()}
        for part, model in parts.items():
            if member_target(model) != part:
                raise CheckpointError(f"{name}: its {part} part predicts the {member_target(model)} tensor")
            if (model.meta.get("train_config") or {}).get("max_abs") is not None:
                raise CheckpointError(f"{name}: its {part} part was trained without the large records (max_abs)")
        try:
            config = graph_config([m.config for m in parts.values()], [f"{name} ({p})" for p in parts])
        except ValueError as exc:
            raise CheckpointError(str(exc)) from exc
        return SumOfParts(parts, config, ckpt.get("meta", {})).eval()
    if not isinstance(ckpt.get("config"), dict):
        raise CheckpointError(f"{name}: not a GoeCTP model checkpoint (missing 'config')")
    try:
        model = GoeCTP(GoeCTPConfig(**ckpt["config"]))
    except TypeError as exc:  # unknown or missing config keys
        raise CheckpointError(f"{name}: its model config does not match this goectp version ({exc})") from exc
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{name}: weights do not match the model config ({first})") from exc
    model.meta = ckpt.get("meta", {})
    return model.eval()


def load_checkpoint(
    source: Source, map_location: str | torch.device = "cpu", name: str | None = None
) -> GoeCTP | SumOfParts:
    """A model from a checkpoint file (or its bytes; ``name`` for messages); never executes code from the file."""
    name = name or _describe(source)
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


# ------------------------------------------------------------------------------------------------ ensembles
def graph_config(configs: Sequence[GoeCTPConfig], names: Sequence[str]) -> GoeCTPConfig:
    """The config whose graphs all ``configs`` can read (see :class:`Ensemble`); raises on members that cannot
    share graphs."""
    from goectp.canonical import uses_canonical_cell

    def graph_key(c: GoeCTPConfig) -> tuple:
        return (c.k_neighbors, uses_canonical_cell(c), c.cell_reduction if not uses_canonical_cell(c) else None)

    features = {c.node_features for c in configs if c.node_features}
    if len(features) > 1 or len({graph_key(c) for c in configs}) > 1:
        described = ", ".join(
            f"{n} (k={c.k_neighbors}, canonical cell {uses_canonical_cell(c)}, node features {c.node_features})"
            for n, c in zip(names, configs)
        )
        raise ValueError(f"ensemble members need different graphs and cannot be combined: {described}")
    return next((c for c in configs if c.node_features), configs[0])


def member_target(model: nn.Module) -> str:
    """Which DFPT tensor one member predicts (``total``, ``electronic`` = ε∞ or ``ionic``), from its checkpoint
    metadata (``meta["train_config"]["target"]``, or ``meta["target"]``); ``total`` when the metadata is silent."""
    from goectp.data.dielectric import TARGETS  # lazily: goectp.data imports this module

    meta = getattr(model, "meta", None) or {}
    for where in (meta, meta.get("train_config") or {}):
        value = where.get("target")
        if isinstance(value, str):
            if value not in TARGETS:
                raise CheckpointError(f"unknown prediction target {value!r} (expected one of {TARGETS})")
            return value
    return "total"


def networks(model: nn.Module) -> list[GoeCTP]:
    """Every :class:`GoeCTP` inside a model: itself, an ensemble's members, and the parts of sum members."""
    found = []
    for member in getattr(model, "members", [model]):
        found += member.networks() if isinstance(member, SumOfParts) else [member]
    return found


def prediction_target(model: nn.Module) -> str:
    """Which DFPT tensor a model or an :class:`Ensemble` predicts (members of an ensemble always agree)."""
    return model.target if isinstance(model, Ensemble) else member_target(model)


class Ensemble(nn.Module):
    """Several models that read the same graphs; ``forward`` returns the member predictions ``[M, B, 3, 3]``.

    Members may differ in their weights, training and whether they use foundation-model node features (e.g. the
    shipped ``combined`` ensemble: CHGNet-feature members next to plain ones); they must agree on how the graph is
    built (``k_neighbors``, the canonical cell), on which node features, if any, and on the tensor they predict
    (``target``). ``config`` is that of a member with node features when there is one, so callers build graphs
    every member can read (plain members ignore the extra features).
    """

    def __init__(self, members: Sequence[GoeCTP], names: Sequence[str] | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.names = list(names or [f"member{i}" for i in range(len(members))])
        self.config = graph_config([m.config for m in members], self.names)
        targets = {n: member_target(m) for n, m in zip(self.names, members)}
        if len(set(targets.values())) > 1:
            described = ", ".join(f"{n}: {t}" for n, t in targets.items())
            raise ValueError(f"ensemble members predict different tensors and cannot be averaged: {described}")
        #: the DFPT tensor every member predicts: "total", "electronic" (ε∞) or "ionic"
        self.target = next(iter(targets.values()))

    def forward(self, batch, use_frame: bool | None = None) -> torch.Tensor:
        return torch.stack([m(batch, use_frame=use_frame) for m in self.members])

    def backbone_prediction(self, batch) -> torch.Tensor:
        return self.forward(batch, use_frame=False)


# ------------------------------------------------------------------------------------------------ names and paths
#: ``assets/models/aliases.json``: ``{alias: folder name}``, e.g. ``{"default": "combined"}``.
ALIASES_FILE = "aliases.json"
#: ``assets/models/<name>/members.json``: an ensemble whose members are files of other shipped ensembles.
MEMBERS_FILE = "members.json"


def model_aliases() -> dict[str, str]:
    """Shipped aliases (``"default"`` → the most accurate ensemble), read from ``assets/models/aliases.json``."""
    path = assets_dir() / "models" / ALIASES_FILE
    if not path.is_file():
        return {}
    import json

    aliases = json.loads(path.read_text())
    return {str(k): str(v) for k, v in aliases.items() if is_model_name(str(k)) and is_model_name(str(v))}


def available_models() -> list[str]:
    """Names of the models shipped in ``assets/models``: folders holding ``*.pt`` members, and their aliases."""
    root = assets_dir() / "models"
    if not root.exists():
        return []
    folders = {p.name for p in root.iterdir() if p.is_dir() and (any(p.glob("*.pt")) or (p / MEMBERS_FILE).is_file())}
    return sorted(folders | {a for a, target in model_aliases().items() if target in folders})


def is_model_name(spec: str | os.PathLike) -> bool:
    """True for a shipped-model *name*: a ``str`` without a path separator, not ``.``-prefixed, not ``*.pt``."""
    if not isinstance(spec, str) or not spec:
        return False
    seps = {"/", os.sep, *([os.altsep] if os.altsep else [])}
    return not any(s in spec for s in seps) and not spec.startswith((".", "~")) and not spec.endswith(".pt")


def resolve_model_path(spec: str | os.PathLike) -> Path:
    """The file or folder ``spec`` means: a name → ``assets/models/<name>`` only; anything else → that path."""
    if not str(spec).strip():  # Path("") is the working directory: never load whatever *.pt lies there
        raise FileNotFoundError(f"no model given (an empty name); shipped models: {available_models() or 'none'}")
    if is_model_name(spec):
        path = assets_dir() / "models" / spec
        if not path.is_dir() and spec in model_aliases():
            path = assets_dir() / "models" / model_aliases()[spec]
        if not path.exists():
            hint = f"; to load ./{spec} from the working directory, give it as a path" if Path(spec).exists() else ""
            raise FileNotFoundError(
                f"no shipped model named {spec!r}; shipped models: {available_models() or 'none'}{hint}"
            )
        return path
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint file or folder {str(spec)!r}")
    return path


def _manifest_members(folder: Path, verify: bool = True) -> list[tuple[str, Path]]:
    """``folder/members.json``: members that are files of sibling ensembles, each checked against its sha256."""
    import json

    from goectp.data.paths import sha256_file  # lazily: goectp.data imports this module

    manifest = folder / MEMBERS_FILE
    try:
        entries = json.loads(manifest.read_text())["members"]
        listed = [(str(e["file"]), str(e["sha256"])) for e in entries]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{manifest}: not a members list ({type(exc).__name__}: {exc})"[:300]) from exc
    if not listed:
        raise CheckpointError(f"{manifest}: lists no members")
    if any(folder.glob("*.pt")):
        raise CheckpointError(f"{folder}: holds both *.pt files and {MEMBERS_FILE}; keep one")
    root = folder.resolve().parent
    members = []
    for relative, sha256 in listed:
        path = (folder / relative).resolve()
        if path.parent.parent != root or path.suffix != ".pt":  # a *.pt file of a sibling folder, nothing else
            raise CheckpointError(f"{manifest}: {relative!r} is not a checkpoint of a sibling ensemble folder")
        if not path.is_file():
            raise CheckpointError(f"{manifest}: member {relative!r} is missing")
        if verify and sha256_file(path) != sha256:
            raise CheckpointError(f"{manifest}: member {relative!r} changed since the ensemble was assembled (sha256)")
        members.append((f"{path.parent.name}-{path.stem}", path))
    return members


def ensemble_members(spec: str | os.PathLike, verify: bool = True) -> list[tuple[str, Path]]:
    """``(name, file)`` of every member of a model: a file; a folder's ``*.pt`` files (sorted, named by their stem);
    for a folder with ``members.json`` (``{"members": [{"file": "../<ensemble>/<member>.pt", "sha256": …}]}``),
    the files of sibling ensembles it lists (named ``<ensemble>-<member>``), so a combination ships no copies; or,
    for the output folder of ``goectp train`` (no ``*.pt`` of its own), each ``split<k>/best.pt`` (named
    ``split<k>``). ``verify=False`` skips the sha256 check of listed files, for callers that only list them."""
    path = resolve_model_path(spec)
    if path.is_file():
        return [(path.stem, path)]
    if (path / MEMBERS_FILE).is_file():
        return _manifest_members(path, verify)
    files = sorted(p for p in path.glob("*.pt") if p.is_file())
    if files:
        return [(f.stem, f) for f in files]
    runs = [(d.name, d / "best.pt") for d in path.glob("split*") if d.name[5:].isdigit() and (d / "best.pt").is_file()]
    if not runs:
        raise FileNotFoundError(f"{path} holds no *.pt checkpoints and no split<k>/best.pt of a training run")
    return sorted(runs, key=lambda run: int(run[0][5:]))


def checkpoint_files(spec: str | os.PathLike, verify: bool = True) -> list[Path]:
    """Checkpoint files of a file, an ensemble folder or a shipped model name (see :func:`ensemble_members`)."""
    return [f for _, f in ensemble_members(spec, verify)]


def load_model(path_or_name: str | os.PathLike = "default", member: int | None = None) -> GoeCTP | Ensemble:
    """Load a checkpoint file, a folder of checkpoints (an ensemble), or a model shipped in ``assets/models``.

    ``member`` picks a single member of an ensemble. Files are loaded with ``weights_only=True``.
    """
    path = resolve_model_path(path_or_name)
    if path.is_file():
        return load_checkpoint(path)
    members = ensemble_members(path)
    if member is not None:
        return load_checkpoint(members[member][1])
    return Ensemble([load_checkpoint(f) for _, f in members], [n for n, _ in members]).eval()
