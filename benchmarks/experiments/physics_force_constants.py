"""Γ-point force constants (phonopy + SevenNet-0) for the dielectric records, cached, and the closed-form ε_ion.

Computes the force constants of every record of the Born-charge set (then, with ``--all``, of every dielectric
record) in ascending cell size, one cached ``.npz`` per structure under ``--cache``, and appends one JSON line per
record to ``--log``: cost, unstable modes, and ε_ion from the DFT Born charges (sum rule enforced) next to DFT's.

    python benchmarks/experiments/physics_force_constants.py --max-sites 20 --shard 0/1    # background, one core
    python benchmarks/experiments/physics_force_constants.py --report                       # the table
    python benchmarks/experiments/physics_force_constants.py --force-field sevennet-l3i5 --max-sites 8 --shard 0/2
    python benchmarks/experiments/physics_force_constants.py --report --compare sevennet-l3i5 --max-sites 8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path("runs/phonons")


def _records(data_dir: Path, include_all: bool) -> list[tuple[str, Any, Any]]:
    """``(id, dielectric record, Born record or None)``; the structure used is the Born record's when there is one."""
    from goectp.data.dielectric import read_dielectric_json
    from goectp.physics.born_data import read_born_charges

    born = read_born_charges(data_dir / "mp_born_charges.json.gz")
    diel = {r.id: r for r in read_dielectric_json(data_dir / "mp_dielectric_open.json.gz")}
    rows = [(k, diel[k], born[k]) for k in born if k in diel]
    if include_all:
        rows += [(k, r, None) for k, r in diel.items() if k not in born]
    return rows


def _source(row: tuple[str, Any, Any]) -> Any:
    return row[2].structure if row[2] is not None else row[1].structure


def _canonical(row: tuple[str, Any, Any]) -> Any:
    """The canonical primitive cell (what the models read; often smaller than the record's conventional cell)."""
    from goectp.canonical import canonical_cell

    return canonical_cell(_source(row))


def run(args: argparse.Namespace) -> None:
    import torch

    from goectp.canonical import canonical_cell
    from goectp.physics.ionic import acoustic_sum_rule_error, enforce_acoustic_sum_rule, ionic_modes
    from goectp.physics.phonons import force_field
    from goectp.physics.standard_cell import standard_force_constants

    torch.set_num_threads(args.threads)
    ff = force_field(args.force_field)
    rows = _records(Path(args.data_dir), args.all)
    cells = {r[0]: _canonical(r) for r in rows}
    rows = [r for r in rows if len(cells[r[0]]) <= args.max_sites]
    if args.heldout_only:  # what the physics model's choice reads: the records of some validation or test split
        from goectp.data.dielectric import read_dielectric_json
        from goectp.data.splits import SPLIT_SEEDS, split_masks

        order = [r.id for r in read_dielectric_json(Path(args.data_dir) / "mp_dielectric_open.json.gz")]
        sets = split_masks(len(order), SPLIT_SEEDS)
        held = {i for i, keep in zip(order, (sets["val"] | sets["test"]).any(axis=0)) if keep}
        rows = [r for r in rows if r[0] in held]
    if args.order == "size":  # every record by cell size: what the physics model (all records) needs first
        rows.sort(key=lambda r: (len(cells[r[0]]), r[2] is None, r[0]))
    else:  # the records with DFT Born charges first: what the ε_ion comparison needs first
        rows.sort(key=lambda r: (r[2] is None, len(cells[r[0]]), r[0]))
    index, count = (int(x) for x in args.shard.split("/"))
    rows = rows[index::count]
    log = Path(args.log or OUT / f"{ff.name}-canonical-{index}of{count}.jsonl")
    log.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["id"] for line in log.read_text().splitlines()} if log.exists() else set()
    cache = Path(args.cache or OUT / f"cache-{ff.name}")
    for row in rows:
        key, record, born = row
        structure = cells[key]
        # what a prediction reads is the dielectric record's own structure: its cell too, where the Born file's differs
        own = canonical_cell(record.structure) if born is not None and not born.same_structure_as_record else None
        own = own if own is not None and len(own) <= args.max_sites else None
        needed = [s for s in (structure, own) if s is not None]
        if key in done and all(standard_force_constants(s, ff, cache, compute=False) is not None for s in needed):
            continue  # a logged record whose file was lost (a changed key) is computed again
        entry: dict = {"id": key, "n_sites": len(structure), "has_born": born is not None}
        start = time.perf_counter()
        try:
            # on each cell's standard cell, as a prediction computes them (ionic_physics): the same numbers
            fc, *_ = [standard_force_constants(s, ff, cache) for s in needed]
        except Exception as exc:  # one bad record must not stop a night's run; it is logged
            entry["error"] = f"{type(exc).__name__}: {exc}"
            with log.open("a") as f:
                f.write(json.dumps(entry) + "\n")
            continue
        entry.update(seconds=time.perf_counter() - start, num_displacements=fc.num_displacements)
        entry["dft_ionic"] = record.target("ionic").tolist()
        if born is not None:
            z = born.charges_on(structure)
            if z is None:
                entry["error"] = "the canonical cell's atoms do not map onto the record's sites"
                with log.open("a") as f:
                    f.write(json.dumps(entry) + "\n")
                continue
            modes = ionic_modes(enforce_acoustic_sum_rule(z), fc.force_constants, fc.volume, fc.masses)
            entry.update(
                asr_error=acoustic_sum_rule_error(z),
                same_structure=born.same_structure_as_record,
                physics_ionic=modes.tensor.tolist(),
                num_unstable=modes.num_unstable,
                lowest_thz=float(modes.frequency_thz.min()) if len(modes.frequency_thz) else None,
            )
        with log.open("a") as f:
            f.write(json.dumps(entry) + "\n")


def log_entries(force_field: str) -> list[dict]:
    """Every line of the ``run`` logs of ``force_field`` (all shards)."""
    logs = sorted(OUT.glob(f"{force_field}-canonical-*.jsonl"))
    return [json.loads(line) for p in logs for line in p.read_text().splitlines()]


def with_dft_charges(entry: dict) -> bool:
    """A logged record with ε_ion from DFT Born charges that obey the sum rule (|Σ Z*| < 0.1 e)."""
    return "physics_ionic" in entry and entry["asr_error"] < 0.1


def report(args: argparse.Namespace) -> None:
    from scipy.stats import spearmanr

    lines = log_entries(args.force_field)
    ok = [e for e in lines if with_dft_charges(e)]
    phys = np.array([np.trace(e["physics_ionic"]) / 3 for e in ok])
    dft = np.array([np.trace(e["dft_ionic"]) / 3 for e in ok])
    stable = np.array([e["num_unstable"] == 0 for e in ok])
    print(f"records with force constants: {len(lines)} ({sum('error' in e for e in lines)} errors)")
    print("| subset | n | ε̄_ion Spearman | median phys/DFT | records with unstable modes |")
    print("|---|---|---|---|---|")
    for name, mask in [("all (sum rule < 0.1)", np.ones(len(ok), bool)), ("no unstable mode", stable)]:
        good = mask & (dft > 0.05)
        rho = spearmanr(phys[mask], dft[mask]).statistic if mask.sum() > 2 else float("nan")
        ratio = np.median(phys[good] / dft[good]) if good.any() else float("nan")
        print(f"| {name} | {mask.sum()} | {rho:.3f} | {ratio:.2f} | {(~stable[mask]).sum()} |")
    sizes = np.array([e["n_sites"] for e in lines if "seconds" in e])
    secs = np.array([e["seconds"] for e in lines if "seconds" in e])
    print("\n| atoms | records | median s per structure |\n|---|---|---|")
    for lo, hi in [(1, 4), (5, 8), (9, 12), (13, 20), (21, 40), (41, 100)]:
        m = (sizes >= lo) & (sizes <= hi)
        if m.any():
            print(f"| {lo}-{hi} | {m.sum()} | {np.median(secs[m]):.2f} |")


def compare(args: argparse.Namespace) -> None:
    """Two force fields on the records both have (DFT Z*, sum rule < 0.1): ionic ε̄ Spearman and scale vs DFT."""
    from scipy.stats import spearmanr

    def entries(name: str) -> dict:
        found = log_entries(name)
        return {e["id"]: e for e in found if with_dft_charges(e) and e["n_sites"] <= args.max_sites}

    a, b = entries(args.force_field), entries(args.compare)
    common = sorted(set(a) & set(b))
    dft = np.array([np.trace(a[i]["dft_ionic"]) / 3 for i in common])
    print(f"{len(common)} records with DFT Born charges that both force fields have (cells ≤ {args.max_sites} atoms)")
    print("| force field | ε̄_ion Spearman (all) | median phys/DFT | with unstable modes | Spearman (both stable) |")
    print("|---|---|---|---|---|")
    stable = np.array([a[i]["num_unstable"] == 0 and b[i]["num_unstable"] == 0 for i in common])
    for name, e in ((args.force_field, a), (args.compare, b)):
        phys = np.array([np.trace(e[i]["physics_ionic"]) / 3 for i in common])
        good = dft > 0.05
        rho, rho_stable = spearmanr(phys, dft).statistic, spearmanr(phys[stable], dft[stable]).statistic
        unstable = sum(e[i]["num_unstable"] > 0 for i in common)
        print(f"| {name} | {rho:.3f} | {np.median(phys[good] / dft[good]):.2f} | {unstable} | {rho_stable:.3f} |")
    secs = {n: np.median([e[i]["seconds"] for i in common]) for n, e in ((args.force_field, a), (args.compare, b))}
    print("median seconds per structure: " + ", ".join(f"{n} {v:.2f}" for n, v in secs.items()))


def main() -> None:
    from goectp.physics.phonons import FORCE_FIELDS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--force-field", default="sevennet", choices=FORCE_FIELDS)
    p.add_argument("--max-sites", type=int, default=20)
    p.add_argument("--shard", default="0/1")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--all", action="store_true", help="also the dielectric records without DFT Born charges")
    p.add_argument("--heldout-only", action="store_true", help="only records in some validation or test split")
    p.add_argument("--order", default="born-first", choices=["born-first", "size"])
    p.add_argument("--log")
    p.add_argument("--cache")
    p.add_argument("--report", action="store_true")
    p.add_argument("--compare", help="with --report: another force field, paired on the records both have")
    args = p.parse_args()
    if args.report:
        compare(args) if args.compare else report(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
