"""Move a force-constant cache to today's key (``goectp.physics.phonons.force_constant_key``).

The key used to hash the rounded cell as written, so float noise could change it: a fractional coordinate of
1 − 1e-16 (kept as 1.0) against one of 0.0, or a lattice entry of −0.0 against +0.0. Between runs whose canonical
cells differed only by such noise, 80 of 1,439 held-out records lost their cached force constants (they looked
computed in the run logs but no file had their key). This links each record's file under today's key, found by

1. the old key (the cell hashed as before), or
2. when that misses, the one cached file with the same number of sites, the same masses in the same order and the
   same volume (to 1e-3 Å³) — where the run logged ε_ion from DFT Born charges, it is recomputed from the matched
   file in today's cell and the largest difference printed (a file in another frame or site order would show).

It prints what it found and lists the records still without force constants (compute them with
``physics_force_constants.py``, which now skips a record only when its file exists). Hard links: no data copied.

    python benchmarks/recipes/rekey_force_constants.py --force-field sevennet-l3i5 --max-sites 30
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))


def old_key(structure, version: str, displacement: float = 0.01) -> str:
    """``force_constant_key`` before the fix (the cell hashed as written)."""
    from goectp.physics.phonons import RECIPE_VERSION

    payload = {
        "lattice": np.round(structure.lattice.matrix, 8).tolist(),
        "numbers": [int(site.specie.Z) for site in structure],
        "frac": np.round(np.mod(structure.frac_coords, 1.0), 8).tolist(),
        "force_field": version,
        "displacement": displacement,
        "recipe": RECIPE_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def fingerprint(masses: np.ndarray, volume: float) -> tuple:
    return len(masses), tuple(np.round(masses, 4)), round(volume, 3)


def main() -> None:
    import sevenn
    from physics_force_constants import OUT, _canonical, _records, log_entries
    from physics_model import FORCE_FIELD_MODELS

    from goectp.data.paths import data_dir
    from goectp.physics.phonons import ForceConstants, force_constant_key

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--force-field", default="sevennet-l3i5", choices=sorted(FORCE_FIELD_MODELS))
    p.add_argument("--max-sites", type=int, default=30)
    args = p.parse_args()

    class Version:  # what force_constant_key reads of a force field, without loading it
        version = f"sevenn-{sevenn.__version__}-{FORCE_FIELD_MODELS[args.force_field]}"

    cache = OUT / f"cache-{args.force_field}"
    files: dict[tuple, list[Path]] = {}
    for path in cache.glob("*.npz"):
        fc = ForceConstants.from_npz(path)
        files.setdefault(fingerprint(fc.masses, fc.volume), []).append(path)
    logged = {e["id"]: e for e in log_entries(args.force_field)}
    counts = {"had today's key": 0, "old key": 0, "matched by masses and volume": 0, "missing": 0}
    missing, checked = [], []
    for row in _records(data_dir(), include_all=True):
        cells = {force_constant_key(s, Version): s for s in (_canonical(row), _dielectric_cell(row))}
        for key, structure in cells.items():
            if len(structure) > args.max_sites:
                continue
            target = cache / f"{key}.npz"
            if target.is_file():
                counts["had today's key"] += 1
                continue
            source = cache / f"{old_key(structure, Version.version)}.npz"
            how = "old key"
            if not source.is_file():
                masses = np.array([site.specie.atomic_mass for site in structure], dtype=float)
                found = files.get(fingerprint(masses, structure.volume), [])
                source, how = (found[0], "matched by masses and volume") if len(found) == 1 else (None, "missing")
                if source is not None and row[2] is not None and "physics_ionic" in logged.get(row[0], {}):
                    checked.append(_logged_difference(structure, row[2], source, logged[row[0]]))
            if source is None:
                counts["missing"] += 1
                missing.append((row[0], len(structure), row[0] in logged))
                continue
            os.link(source, target)
            counts[how] += 1
    for how, n in counts.items():
        print(f"{how}: {n}")
    if checked:
        print(f"matched files checked against the logged ε_ion (DFT Z*): {len(checked)}, max |Δ| {max(checked):.1e}")
    print("still missing (id, sites, in a run log):", missing)


def _logged_difference(structure, born, path: Path, entry: dict) -> float:
    """max |Δ| between ε_ion (DFT Z*) from the matched file in ``structure``'s frame and the one the run logged."""
    from goectp.physics.born_data import cell_mapping
    from goectp.physics.ionic import enforce_acoustic_sum_rule, ionic_modes
    from goectp.physics.phonons import ForceConstants

    weights = cell_mapping(
        structure.lattice.matrix.T, structure.frac_coords, [s.specie.Z for s in structure], born.structure
    )
    if weights is None:
        return 0.0
    z = (weights @ born.born_charges.reshape(len(born.structure), 9)).reshape(-1, 3, 3)
    fc = ForceConstants.from_npz(path)
    eps = ionic_modes(enforce_acoustic_sum_rule(z), fc.force_constants, fc.volume, fc.masses).tensor
    return float(np.abs(eps - np.array(entry["physics_ionic"])).max())


def _dielectric_cell(row):
    """The canonical cell of the dielectric record's own structure (what a prediction reads)."""
    from goectp.canonical import canonical_cell

    return canonical_cell(row[1].structure)


if __name__ == "__main__":
    main()
