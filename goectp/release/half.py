"""Store shipped weights as float16: half the bytes of every weight matrix, predictions within ~1e-3.

Every floating tensor of at least :data:`MIN_ELEMENTS` elements (the weight matrices; finite and inside float16's
range) of each checkpoint of the given ensemble folders is stored as float16; small tensors (biases, norms, target
scales) stay as they are. Loading needs nothing new: ``load_state_dict`` copies a float16 tensor into the model's
float32 (or float64) parameter, and compute stays in the model's precision (so cell-choice invariance is kept).

The weights as loaded change in the fourth significant digit, so the ensemble's fingerprint changes: its
calibration must be re-fitted (``goectp ensemble calibrate``) and everything computed from its predictions (a
shipped screen, quoted figures) redone. A sum member that names a rewritten part by reference gets its new sha256,
in the converted folders and in their sibling folders alike (so converting ``electronic`` alone keeps the
decomposed families loadable), and so do the ``members.json`` manifests that list a rewritten file.

    goectp ensemble float16 fast electronic pretrained-bulk-modulus-layers2 ...
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from goectp.checkpoint import atomic_save, is_part_reference, safe_load
from goectp.data.paths import sha256_file
from goectp.registry import checkpoint_files, resolve_model_path

#: Tensors with fewer elements stay in their own precision (they weigh nothing; norms and scales keep every digit).
MIN_ELEMENTS = 1024
#: Largest finite float16.
FLOAT16_MAX = 65504.0


def half_state_dict(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """``state`` with each large float32/float64 tensor as float16, and how many tensors were converted."""
    out, converted = {}, 0
    for name, tensor in state.items():
        if (
            tensor.dtype in (torch.float32, torch.float64)
            and tensor.numel() >= MIN_ELEMENTS
            and bool(torch.isfinite(tensor).all())
            and float(tensor.abs().max()) < FLOAT16_MAX
        ):
            out[name], converted = tensor.to(torch.float16), converted + 1
        else:
            out[name] = tensor
    return out, converted


def _rehash_references(parts: dict, folder: Path, changed: dict[Path, tuple[str, str]]) -> bool:
    """Give each part named by reference whose file was rewritten (``changed``) its new sha256; True if any."""
    touched = False
    for sub in parts.values():
        if is_part_reference(sub) and isinstance(sub["file"], str):
            target = (folder / sub["file"]).resolve()
            if target in changed and sub["sha256"] == changed[target][0]:
                sub["sha256"], touched = changed[target][1], True
    return touched


def _rewrite(raw: dict, folder: Path, changed: dict[Path, tuple[str, str]]) -> bool:
    """Convert ``raw`` (a checkpoint dict as stored) in place; True when anything in it changed."""
    if raw.get("kind") == "sum" and isinstance(raw.get("parts"), dict):
        touched = _rehash_references(raw["parts"], folder, changed)  # those files were converted first
        inline = [sub for sub in raw["parts"].values() if isinstance(sub, dict) and "state_dict" in sub]
    else:
        touched, inline = False, [raw]
    for ckpt in inline:
        if isinstance(ckpt.get("state_dict"), dict):
            ckpt["state_dict"], n = half_state_dict(ckpt["state_dict"])
            if n:
                ckpt.setdefault("meta", {})["weights_stored_as"] = "float16"
            touched |= n > 0
    return touched


def store_float16(models: Iterable[str | Path]) -> dict[Path, tuple[str, str]]:
    """Rewrite the checkpoints of the ensemble folders ``models`` (shipped names or paths) with float16 weight
    matrices. Files holding whole networks go first, then sums (whose references then name the new files).

    Returns ``{rewritten file: (old sha256, new sha256)}``; a second call finds nothing to do."""
    files = []
    for model in models:
        folder = resolve_model_path(str(model))
        if not folder.is_dir():
            raise ValueError(f"{model}: not an ensemble folder")
        own = [f for f in checkpoint_files(folder, verify=False) if f.resolve().parent == folder.resolve()]
        files += [(f, safe_load(f)) for f in own]  # a members.json folder's files belong to their own folders
    files.sort(key=lambda pair: pair[1].get("kind") == "sum" if isinstance(pair[1], dict) else False)
    changed: dict[Path, tuple[str, str]] = {}
    for path, raw in files:
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: not a checkpoint dict")
        old = sha256_file(path)
        if _rewrite(raw, path.parent, changed):
            atomic_save(raw, path)
            changed[path.resolve()] = (old, sha256_file(path))
    done = {path.resolve() for path, _ in files}
    for root in {path.resolve().parent.parent for path, _ in files}:  # sums elsewhere naming a rewritten file
        for path in sorted(root.glob("*/*.pt")):
            if path.resolve() not in done:
                _refresh_references(path, changed)
    return changed


def _refresh_references(path: Path, changed: dict[Path, tuple[str, str]]) -> None:
    """Give a sum checkpoint outside the converted folders the new sha256 of the parts it names (its weights stay);
    records it in ``changed`` when it was rewritten."""
    raw = safe_load(path)
    parts = raw.get("parts") if isinstance(raw, dict) and raw.get("kind") == "sum" else None
    if isinstance(parts, dict) and _rehash_references(parts, path.parent, changed):
        old = sha256_file(path)
        atomic_save(raw, path)
        changed[path.resolve()] = (old, sha256_file(path))
