"""Would averaging force fields make the physics term less noisy? DFT Born charges, Γ-point force constants from
SevenNet-l3i5 (the shipped force field), SevenNet-MF-0 (PBE) and SevenNet-MF-0 (r²SCAN), each cached by
``physics_force_constants.py``; the physics ε̄_ion against DFT's ionic ε̄ on the records every cache holds (≤ 8
atoms), one force field at a time and as geometric means.

    python benchmarks/experiments/force_field_average.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

#: name → (SevenNet checkpoint and fidelity as the cache key spells it, cache folder)
FORCE_FIELDS = {
    "l3i5": ("7net-l3i5", "cache-sevennet-l3i5"),
    "mf0": ("7net-mf-0-PBE", "cache-sevennet-mf-0"),
    "r2scan": ("7net-mf-0-R2SCAN", "cache-sevennet-mf-0-r2scan"),
}


def main() -> None:
    from physics_model import cache_key
    from scipy.stats import spearmanr

    from goectp.canonical import canonical_cell
    from goectp.data.dielectric import read_dielectric_json
    from goectp.physics.born_data import read_born_charges
    from goectp.physics.ionic import enforce_acoustic_sum_rule, ionic_modes
    from goectp.physics.standard_cell import standard_force_constants

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    p.add_argument("--caches", type=Path, default=Path("runs/phonons"))
    p.add_argument("--max-sites", type=int, default=8)
    args = p.parse_args()

    fields = {name: (cache_key(v), args.caches / folder) for name, (v, folder) in FORCE_FIELDS.items()}
    born = read_born_charges(args.data_dir / "mp_born_charges.json.gz")
    rows = []
    for rec in read_dielectric_json(args.data_dir / "mp_dielectric_open.json.gz"):
        b = born.get(rec.id)
        if b is None or not b.sum_rule_holds or len(b.structure) > args.max_sites:
            continue
        cell = canonical_cell(b.structure)
        z = b.charges_on(cell)
        if z is None:
            continue
        z, values = enforce_acoustic_sum_rule(z), []
        for k, cache in fields.values():
            fc = standard_force_constants(cell, k, cache, compute=False)
            modes = None if fc is None else ionic_modes(z, fc.force_constants, fc.volume, fc.masses)
            if modes is None or modes.num_unstable:
                break
            values.append(np.trace(modes.tensor) / 3)
        dft = np.trace(rec.target("ionic")) / 3
        if len(values) == len(fields) and dft > 0.5 and min(values) > 0:
            rows.append([dft, np.trace(rec.target("total")) / 3, *values])
    a = np.array(rows)
    dft, tail, phys = a[:, 0], a[:, 1] >= 30, dict(zip(fields, a[:, 2:].T))
    print(f"{len(a)} records (≤ {args.max_sites} atoms, DFT charges, stable under each force field); {tail.sum()} tail")
    candidates = {
        **phys,
        "geometric mean l3i5, mf0": np.sqrt(phys["l3i5"] * phys["mf0"]),
        "geometric mean l3i5, r2scan": np.sqrt(phys["l3i5"] * phys["r2scan"]),
        "geometric mean of all three": np.cbrt(phys["l3i5"] * phys["mf0"] * phys["r2scan"]),
    }
    print("| force field(s) | median DFT/physics | std of log(DFT/physics) | on the tail (ε̄ ≥ 30) | ε̄_ion Spearman |")
    print("|---|---|---|---|---|")
    for name, value in candidates.items():
        ratio = np.log(dft / value)
        rho = spearmanr(value, dft).statistic
        print(f"| {name} | {np.exp(np.median(ratio)):.3f} | {ratio.std():.3f} | {ratio[tail].std():.3f} | {rho:.3f} |")


if __name__ == "__main__":
    main()
