"""Ship a network once: sum members whose ε∞ part is a member of a shipped ε∞ ensemble name that file instead.

The decomposed families (ε = ε∞ + ionic, :class:`~goectp.models.SumOfParts`) were built with
``goectp sum electronic IONIC``: each member holds a copy of the ε∞ network of the same split, byte for byte the
``electronic`` ensemble's member. :func:`share_parts` rewrites such a member with ``{"file": "../electronic/split<k>
.pt", "sha256": …}`` in place of the copy (:mod:`goectp.checkpoint` reads it back; the weights, and so every
prediction and the calibration's fingerprint, are unchanged), then updates the sha256 that ``members.json``
manifests and the screening summary recorded for the rewritten files.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from goectp.checkpoint import SHARED_PARTS_VERSION, atomic_save, is_part_reference, read_checkpoint, safe_load
from goectp.data.paths import sha256_file
from goectp.models.ensemble import same_weights
from goectp.registry import MEMBERS_FILE, checkpoint_files, resolve_model_path


def _same_network(a: dict, b: dict) -> bool:
    """Two checkpoint dicts with the same config and bit-identical weights."""
    return a.get("config") == b.get("config") and same_weights(a["state_dict"], b["state_dict"])


def share_parts(family: str | Path, parts_from: str | Path, part: str = "electronic") -> dict[Path, tuple[str, str]]:
    """Rewrite the sum members of ``family`` whose ``part`` equals a member of ``parts_from`` to name that file.

    Returns ``{rewritten file: (old sha256, new sha256)}``; members already sharing, or with no identical member
    in ``parts_from``, are left alone. ``family`` and ``parts_from`` must be sibling folders (shipped names or
    paths)."""
    folder, source = resolve_model_path(family), resolve_model_path(parts_from)
    if not folder.is_dir() or not source.is_dir() or folder.resolve().parent != source.resolve().parent:
        raise ValueError(f"{family} and {parts_from}: give two sibling ensemble folders")
    candidates = [(f, read_checkpoint(f, resolve_parts=False)) for f in checkpoint_files(source)]
    changed = {}
    for member in checkpoint_files(folder):
        raw = safe_load(member)
        sub = raw.get("parts", {}).get(part) if isinstance(raw, dict) and raw.get("kind") == "sum" else None
        if sub is None or (is_part_reference(sub) and raw.get("schema_version") == SHARED_PARTS_VERSION):
            continue
        if not is_part_reference(sub):  # (a reference written before the version said so is only re-versioned)
            match = next((f for f, ckpt in candidates if _same_network(sub, ckpt)), None)
            if match is None:
                continue
            raw["parts"][part] = {"file": f"../{source.name}/{match.name}", "sha256": sha256_file(match)}
        old = sha256_file(member)
        raw["schema_version"] = SHARED_PARTS_VERSION  # a goectp that cannot read references says "upgrade"
        atomic_save(raw, member)
        changed[member.resolve()] = (old, sha256_file(member))
    return changed


def refresh_manifests(assets: str | Path, changed: dict[Path, tuple[str, str]]) -> list[Path]:
    """Record the new sha256 of ``changed`` files in every ``members.json`` under ``assets`` that lists them."""
    new = {path: digests[1] for path, digests in changed.items()}
    written = []
    for manifest in sorted(Path(assets).glob(f"*/{MEMBERS_FILE}")):
        data = json.loads(manifest.read_text())
        touched = False
        for entry in data["members"]:
            path = (manifest.parent / entry["file"]).resolve()
            if path in new and entry["sha256"] != new[path]:
                entry["sha256"], touched = new[path], True
        if touched:
            manifest.write_text(json.dumps(data, indent=1) + "\n")
            written.append(manifest)
    return written


def refresh_screening_provenance(summary: str | Path, changed: dict[Path, tuple[str, str]]) -> bool:
    """Replace the old sha256 of ``changed`` files in a screening summary's ``provenance.model_sha256`` (the
    results were computed with the same weights) and say so under ``provenance.repacked``."""
    path = Path(summary)
    data = json.loads(path.read_text())
    provenance = data.get("provenance", {})
    digests = str(provenance.get("model_sha256", "")).split(";")
    mapping = dict(changed.values())
    if not any(d in mapping for d in digests):
        return False
    provenance["model_sha256"] = ";".join(mapping.get(d, d) for d in digests)
    note = (
        f"{dt.date.today().isoformat()}: {sum(d in mapping for d in digests)} member files re-packed by "
        "goectp ensemble share (their ε∞ part named by reference); weights and predictions unchanged"
    )
    provenance["repacked"] = [*provenance.get("repacked", []), note]
    path.write_text(json.dumps(data, indent=2, default=str))  # as goectp screen writes it
    return True
