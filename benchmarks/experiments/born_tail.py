"""Do better Born charges close the high-κ tail? The physics ε_ion of held-out high-κ records with predicted charges
against the same with DFT's charges, on the same force constants, for two or more Born-charge runs.

Records: those in some validation or test split with DFT ε̄ ≥ ``--min-eps`` (30: the tail of the issue's ratio), a
canonical cell of ≤ ``--max-sites`` atoms and DFT charges that obey the acoustic sum rule (< 0.1 e). For each split k
that holds the record out, member k of each run predicts the charges; the force constants are the shipped path's
(:func:`goectp.physics.predict.ionic_physics`: SevenNet-l3i5 on the standard cell, cached in ``--cache``, shared with
``physics_force_constants.py``). Records with an unstable mode are left out (the shipped model keeps the learned ε
there). The force field is common to both sides, so the ratio isolates the charges: ε_ion ∝ Z*², and a model that
shrinks the anomalous charges of the tail shows a median below 1.

    python benchmarks/experiments/born_tail.py --runs assets/physics/born-charges runs/born-tol1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def held_out_tail(data_dir: Path, min_eps: float, max_sites: int) -> list[tuple]:
    """``(record, born record, canonical cell of the Born file's structure, DFT charges on its sites, splits)``."""
    from goectp.canonical import canonical_cell
    from goectp.data.dielectric import read_dielectric_json
    from goectp.data.splits import SPLIT_SEEDS, split_masks
    from goectp.physics.born_data import read_born_charges
    from goectp.physics.ionic import enforce_acoustic_sum_rule

    records = read_dielectric_json(data_dir / "mp_dielectric_open.json.gz")
    born = read_born_charges(data_dir / "mp_born_charges.json.gz")
    sets = split_masks(len(records), SPLIT_SEEDS)
    out = []
    for i, rec in enumerate(records):
        held = [k for k in range(len(SPLIT_SEEDS)) if sets["val"][k, i] or sets["test"][k, i]]
        b = born.get(rec.id)
        if not held or b is None or not b.sum_rule_holds or np.trace(rec.target("total")) / 3 < min_eps:
            continue
        cell = canonical_cell(b.structure)
        if len(cell) > max_sites:
            continue
        z = b.charges_on(cell)
        if z is None:
            continue
        z = enforce_acoustic_sum_rule(z)
        split_of = {k: "val" if sets["val"][k, i] else "test" for k in held}
        out.append((rec, b, cell, z, split_of))
    return sorted(out, key=lambda row: len(row[2]))


def main() -> None:
    import torch
    from born_charges import load_split_model
    from scipy.stats import spearmanr

    from goectp.physics.phonons import force_field
    from goectp.physics.predict import ionic_physics

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--runs", nargs="+", type=Path, required=True, help="folders of split<k>.pt (+ split<k>-*.pt) members"
    )
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    p.add_argument("--force-field", default="sevennet-l3i5")
    p.add_argument("--min-eps", type=float, default=30.0)
    p.add_argument("--max-sites", type=int, default=30)
    p.add_argument("--cache", type=Path, default=None, help="default: runs/phonons/cache-<force field>")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("runs/physics/born_tail.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ff = force_field(args.force_field)
    cache = args.cache or Path("runs/phonons") / f"cache-{ff.name}"
    rows = held_out_tail(args.data_dir, args.min_eps, args.max_sites)
    print(
        f"{len(rows)} held-out records with DFT ε̄ ≥ {args.min_eps:g}, ≤ {args.max_sites} atoms, DFT charges", flush=True
    )
    members = {(run, k): load_split_model(run, k) for run in args.runs for k in range(5)}
    pairs: list[dict] = []
    start = time.perf_counter()
    for n, (rec, _, cell, z_dft, split_of) in enumerate(rows):
        dft = ionic_physics(cell, forces=ff, born_charges=z_dft, cache_dir=cache)
        if dft.modes.num_unstable:
            continue
        for k, which in split_of.items():
            row = {"id": rec.id, "split": k, "set": which, "sites": len(cell), "dft_charges": dft.eps_mean}
            for run in args.runs:
                row[str(run)] = ionic_physics(cell, members[run, k], forces=ff, cache_dir=cache).eps_mean
            pairs.append(row)
        if n % 10 == 9:
            print(f"  {n + 1}/{len(rows)} records, {time.perf_counter() - start:.0f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(pairs, indent=1))
    print(f"\n{len(pairs)} (record, split) pairs without unstable modes; {time.perf_counter() - start:.0f} s")
    print(
        "| Born-charge run | set | pairs | median ε̄_ion(pred. Z*) / ε̄_ion(DFT Z*) | mean \\|log ratio\\| | Spearman |"
    )
    print("|---|---|---|---|---|---|")
    for run in args.runs:
        for which in ("val", "test"):
            sel = [r for r in pairs if r["set"] == which and r["dft_charges"] > 0 and r[str(run)] > 0]
            ratio = np.array([r[str(run)] / r["dft_charges"] for r in sel])
            rho = spearmanr([r[str(run)] for r in sel], [r["dft_charges"] for r in sel]).statistic
            print(
                f"| `{run}` | {which} | {len(sel)} | {np.median(ratio):.3f} | {np.abs(np.log(ratio)).mean():.3f} | "
                f"{rho:.3f} |"
            )


if __name__ == "__main__":
    main()
