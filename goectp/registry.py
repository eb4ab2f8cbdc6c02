"""The shipped-model registry: names, aliases, ensemble folders and manifests, and :func:`load_model`.

A *name* (a string without a path separator that does not end in ``.pt``, e.g. ``"default"``) is looked up only in
``assets/models/<name>`` (``$GOECTP_ASSETS``), never in the working directory; anything else (a
:class:`~pathlib.Path`, ``"./default"``, ``"runs/x/best.pt"``, ``"x.pt"``) is a path. An ensemble folder holds its
members (``*.pt``, or a ``members.json`` naming files of sibling folders), its ``calibration.json`` (loaded with the
model: :attr:`goectp.models.Ensemble.calibration`) and its ``MODEL_CARD.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

from goectp.checkpoint import (
    CheckpointError,
    atomic_save,
    load_checkpoint,
    read_checkpoint,
    sibling_checkpoint,
    sum_checkpoint_dict,
)
from goectp.models import Ensemble, GoeCTP
from goectp.models.born import BornChargeModel, BornEnsemble
from goectp.uncertainty.calibration import folder_calibration


def assets_dir() -> Path:
    """``$GOECTP_ASSETS`` or the repository's ``assets/`` folder."""
    env = os.environ.get("GOECTP_ASSETS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "assets"


#: ``assets/models/aliases.json``: ``{alias: folder name}``, e.g. ``{"default": "combined"}``.
ALIASES_FILE = "aliases.json"
#: ``assets/models/<name>/members.json``: an ensemble whose members are files of other shipped ensembles.
MEMBERS_FILE = "members.json"
#: Largest ``members.json`` / ``aliases.json`` read (the shipped ones are a few kB).
MAX_JSON_BYTES = 2**20


def _read_json(path: Path) -> object:
    """The JSON value of a small registry file; ``ValueError`` for one over :data:`MAX_JSON_BYTES` or nested too
    deeply to parse (``RecursionError``), ``OSError`` / ``UnicodeDecodeError`` as raised."""
    import json

    with open(path, "rb") as fh:
        raw = fh.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise ValueError(f"larger than {MAX_JSON_BYTES:,} bytes")
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None


def model_aliases(models_dir: str | Path | None = None) -> dict[str, str]:
    """Shipped aliases (``"default"`` → the most accurate ensemble), read from ``aliases.json`` in ``models_dir``
    (default: ``assets/models``)."""
    path = (Path(models_dir) if models_dir is not None else assets_dir() / "models") / ALIASES_FILE
    if not path.is_file():
        return {}
    try:
        aliases = _read_json(path)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        problem = f"{type(exc).__name__}: {exc}"[:200]
        raise ValueError(f"{path}: damaged, not a JSON object of alias names ({problem})") from exc
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise ValueError(f'{path}: damaged, expected a JSON object {{"alias": "model folder"}} of strings')
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
    manifest = folder / MEMBERS_FILE
    try:
        data = _read_json(manifest)
        entries = data["members"] if isinstance(data, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ValueError('expected {"members": [{"file": ..., "sha256": ...}, ...]}')
        listed = [(e["file"], e["sha256"]) for e in entries]
        if not all(isinstance(f, str) and isinstance(h, str) for f, h in listed):
            raise ValueError("a member's file or sha256 is not a string")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise CheckpointError(f"{manifest}: not a members list ({type(exc).__name__}: {exc})"[:300]) from exc
    if not listed:
        raise CheckpointError(f"{manifest}: lists no members")
    if any(folder.glob("*.pt")):
        raise CheckpointError(f"{folder}: holds both *.pt files and {MEMBERS_FILE}; keep one")
    members = []
    for relative, sha256 in listed:  # a *.pt file of a sibling folder, nothing else
        where, since = "a sibling ensemble folder", "the ensemble was assembled"
        path = sibling_checkpoint(folder, relative, sha256, str(manifest), "member", where, since, verify)
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
    models = [load_checkpoint(f) for _, f in members]
    born = [isinstance(m, BornChargeModel) for m in models]
    if all(born):  # a Born-charge ensemble (goectp.physics)
        return BornEnsemble(models, [n for n, _ in members]).eval()
    if any(born):
        raise CheckpointError(f"{path}: mixes Born-charge models with dielectric-tensor models")
    ensemble = Ensemble(models, [n for n, _ in members]).eval()
    ensemble.calibration = folder_calibration(path, ensemble)
    return ensemble


def members_by_split(spec: str | os.PathLike) -> dict[int, dict]:
    """``{split seed: checkpoint dict}`` of an ensemble (a shipped name or a folder); one member per seed."""
    members: dict[int, dict] = {}
    for f in checkpoint_files(spec):
        ckpt = read_checkpoint(f)  # weights_only=True; meta["split_seed"] an int or None
        seed = ckpt["meta"].get("split_seed")
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
