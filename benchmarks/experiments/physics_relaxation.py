"""Would relaxing a crystal with the force field before its phonons rescue the crystals with unstable modes?

The physics term is computed at the file's geometry. Rutile TiO2 and the cubic perovskites of the shipped high-κ
list have unstable polar modes there under SevenNet-l3i5, so the ``physics`` model keeps their learned ε. A relaxation
to the potential's own equilibrium is what a user would try first. For each example this relaxes the canonical cell
with the force field (ASE's BFGS, the space group kept by ``FixSymmetry``), once at the file's cell (atoms only) and
once with the cell free (``FrechetCellFilter``), and prints ε̄_ion (predicted Born charges, the closed form), the
number of unstable modes and the softest stable mode at each geometry.

    python benchmarks/experiments/physics_relaxation.py [--examples TiO2_rutile SrTiO3_cubic ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

EXAMPLES = ["MgO_rocksalt", "ZnO_wurtzite", "TiO2_rutile", "SrTiO3_cubic"]
CALCULATORS = {"sevennet-l3i5": "7net-l3i5", "sevennet": "7net-0"}


def relaxed(structure, calculator, cell_free: bool, fmax: float = 1e-3):
    """``(structure, steps, seconds)``: ``structure`` relaxed with ``calculator``, its space group kept."""
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS
    from pymatgen.io.ase import AseAtomsAdaptor

    start = time.perf_counter()
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = calculator
    atoms.set_constraint(FixSymmetry(atoms, symprec=1e-3))
    optimizer = BFGS(FrechetCellFilter(atoms) if cell_free else atoms, logfile=None)
    optimizer.run(fmax=fmax, steps=300)
    atoms.set_constraint()
    return AseAtomsAdaptor.get_structure(atoms), optimizer.nsteps, time.perf_counter() - start


def main() -> None:
    import torch
    from sevenn.calculator import SevenNetCalculator

    from goectp.canonical import canonical_cell
    from goectp.physics.config import shipped_force_field
    from goectp.physics.predict import ionic_physics
    from goectp.structures import load_structures

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", nargs="+", default=EXAMPLES)
    p.add_argument("--force-field", default=None, choices=sorted(CALCULATORS), help="default: the physics model's")
    args = p.parse_args()
    torch.set_num_threads(1)
    force_field = args.force_field or shipped_force_field()
    calculator = SevenNetCalculator(CALCULATORS[force_field], device="cpu")
    folder = Path(__file__).resolve().parents[2] / "assets" / "examples"
    print(f"force field: {force_field}\n")
    print("| crystal | geometry | steps | s | volume per atom (Å³) | ε̄_ion | unstable modes | softest mode (THz) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.examples:
        cell = canonical_cell(load_structures(str(folder / f"{name}.cif"))[0])
        geometries = [("file", cell, 0, 0.0)]
        for label, cell_free in (("atoms relaxed", False), ("atoms and cell relaxed", True)):
            geometries.append((label, *relaxed(cell, calculator, cell_free)))
        for label, structure, steps, seconds in geometries:
            term = ionic_physics(structure, forces=force_field, cache_dir=None)
            print(
                f"| {name} | {label} | {steps} | {seconds:.1f} | {structure.volume / len(structure):.3f} | "
                f"{np.trace(term.modes.tensor) / 3:.2f} | {term.modes.num_unstable} | {term.modes.softest_thz:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
