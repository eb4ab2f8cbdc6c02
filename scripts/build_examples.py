#!/usr/bin/env python
"""Build the explorer's example gallery from published crystallography: ``assets/examples/*.cif`` + ``index.json``.

Each structure is generated with pymatgen's ``Structure.from_spacegroup`` from the space group, the lattice
constants and the Wyckoff positions of the cited refinement, then checked: the space group found by spglib must be
the one we started from, the formula must match, and the shortest cation–anion distance must fall in the expected
range (a typo in a coordinate would break one of these). Usage::

    python scripts/build_examples.py [--out assets/examples]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Recipe:
    name: str
    file: str
    spacegroup: str
    lattice: dict  # a, b, c, alpha, beta, gamma (Å, degrees)
    species: list[str]
    coords: list[list[float]]  # fractional, one per Wyckoff site
    formula: str
    bond: tuple[str, str, float, float]  # shortest A–B distance must lie in [lo, hi] Å
    reference: str
    note: str = ""


def hexagonal(a: float, c: float) -> dict:
    return dict(a=a, b=a, c=c, alpha=90, beta=90, gamma=120)


def tetragonal(a: float, c: float) -> dict:
    return dict(a=a, b=a, c=c, alpha=90, beta=90, gamma=90)


RECIPES = [
    Recipe(
        "TiO2 rutile",
        "TiO2_rutile.cif",
        "P4_2/mnm",
        tetragonal(4.5937, 2.9587),
        ["Ti", "O"],
        [[0, 0, 0], [0.30478, 0.30478, 0]],
        "TiO2",
        ("Ti", "O", 1.90, 2.02),
        "J. K. Burdett, T. Hughbanks, G. J. Miller, J. W. Richardson, J. V. Smith, J. Am. Chem. Soc. 109, 3639 "
        "(1987), neutron powder data at 295 K",
        "Ti 2a, O 4f (x, x, 0)",
    ),
    Recipe(
        "BaTiO3 tetragonal",
        "BaTiO3_tetragonal.cif",
        "P4mm",
        tetragonal(3.992, 4.036),
        ["Ba", "Ti", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.514], [0.5, 0.5, -0.023], [0.5, 0, 0.486]],
        "BaTiO3",
        ("Ti", "O", 1.80, 2.05),
        "B. C. Frazer, H. R. Danner, R. Pepinsky, Phys. Rev. 100, 745 (1955), single-crystal neutron diffraction "
        "at room temperature; displacements from the cubic positions δz(Ti) = +0.014, δz(O1) = −0.023, "
        "δz(O2) = −0.014",
        "ferroelectric phase, polar axis c; Ba 1a, Ti 1b, O1 1b, O2 2c",
    ),
    Recipe(
        "SrTiO3 cubic",
        "SrTiO3_cubic.cif",
        "Pm-3m",
        tetragonal(3.9053, 3.9053),
        ["Sr", "Ti", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]],
        "SrTiO3",
        ("Ti", "O", 1.94, 1.96),
        "R. Schmidbauer, A. Kwasniewski, J. Schwarzkopf, Acta Cryst. B 68, 8 (2012), room temperature",
        "ideal perovskite; Sr 1a, Ti 1b, O 3c",
    ),
    Recipe(
        "ZnO wurtzite",
        "ZnO_wurtzite.cif",
        "P6_3mc",
        hexagonal(3.2496, 5.2042),
        ["Zn", "O"],
        [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.3819]],
        "ZnO",
        ("Zn", "O", 1.95, 2.00),
        "E. H. Kisi, M. M. Elcombe, Acta Cryst. C 45, 1867 (1989), neutron powder data",
        "Zn 2b, O 2b (u = 0.3819)",
    ),
    Recipe(
        "GaN wurtzite",
        "GaN_wurtzite.cif",
        "P6_3mc",
        hexagonal(3.190, 5.189),
        ["Ga", "N"],
        [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.377]],
        "GaN",
        ("Ga", "N", 1.93, 1.98),
        "H. Schulz, K. H. Thiemann, Solid State Commun. 23, 815 (1977)",
        "Ga 2b, N 2b (u = 0.377)",
    ),
    Recipe(
        "SiO2 alpha-quartz",
        "SiO2_alpha_quartz.cif",
        "P3_221",
        hexagonal(4.9160, 5.4054),
        ["Si", "O"],
        [[0.4697, 0, 2 / 3], [0.4135, 0.2669, 0.1191 + 2 / 3]],
        "SiO2",
        ("Si", "O", 1.60, 1.62),
        "L. Levien, C. T. Prewitt, D. J. Weidner, Am. Mineral. 65, 920 (1980), ambient pressure",
        "P3₂21; Si 3a, O 6c; the published z are shifted by +2/3 to the International Tables origin "
        "(Si–O = 1.605, 1.614 Å as published)",
    ),
    Recipe(
        "CaCO3 calcite",
        "CaCO3_calcite.cif",
        "R-3c",
        hexagonal(4.9896, 17.0610),
        ["Ca", "C", "O"],
        [[0, 0, 0], [0, 0, 0.25], [0.25706, 0, 0.25]],
        "CaCO3",
        ("C", "O", 1.27, 1.30),
        "H. Effenberger, K. Mereiter, J. Zemann, Z. Kristallogr. 156, 233 (1981)",
        "hexagonal setting (conventional cell, 30 atoms); Ca 6b, C 6a, O 18e",
    ),
    Recipe(
        "MoS2 2H",
        "MoS2_2H.cif",
        "P6_3/mmc",
        hexagonal(3.1604, 12.295),
        ["Mo", "S"],
        [[1 / 3, 2 / 3, 0.25], [1 / 3, 2 / 3, 0.6211]],
        "MoS2",
        ("Mo", "S", 2.39, 2.43),
        "B. Schönfeld, J. J. Huang, S. C. Moss, Acta Cryst. B 39, 404 (1983)",
        "layered, van der Waals gap along c; Mo 2c, S 4f",
    ),
    Recipe(
        "HfO2 monoclinic",
        "HfO2_monoclinic.cif",
        "P2_1/c",
        dict(a=5.1156, b=5.1722, c=5.2948, alpha=90, beta=99.18, gamma=90),
        ["Hf", "O", "O"],
        [[0.2765, 0.0394, 0.2073], [0.0703, 0.3359, 0.3406], [0.4486, 0.7577, 0.4795]],
        "HfO2",
        ("Hf", "O", 2.00, 2.12),
        "R. E. Hann, P. R. Suitch, J. L. Pentecost, J. Am. Ceram. Soc. 68, C-285 (1985), X-ray powder data",
        "baddeleyite structure, sevenfold-coordinated Hf; all atoms on 4e",
    ),
    Recipe(
        "MgO rock salt",
        "MgO_rocksalt.cif",
        "Fm-3m",
        tetragonal(4.2112, 4.2112),
        ["Mg", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5]],
        "MgO",
        ("Mg", "O", 2.10, 2.11),
        "R. M. Hazen, Am. Mineral. 61, 266 (1976), room temperature",
        "conventional cubic cell; Mg 4a, O 4b",
    ),
]


def build(recipe: Recipe):
    from pymatgen.core import Lattice, Structure

    lat = Lattice.from_parameters(**recipe.lattice)
    return Structure.from_spacegroup(recipe.spacegroup, lat, recipe.species, recipe.coords, tol=1e-3)


def check(recipe: Recipe, structure) -> dict:
    """Raise if the structure does not have the intended symmetry, formula and bond length; return metadata."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    from pymatgen.symmetry.groups import SpaceGroup

    sga = SpacegroupAnalyzer(structure, symprec=0.01)
    want = SpaceGroup(recipe.spacegroup).int_number
    got = sga.get_space_group_number()
    if got != want:
        raise ValueError(f"{recipe.name}: spglib finds space group {got}, expected {want} ({recipe.spacegroup})")
    formula = structure.composition.reduced_formula
    if formula != recipe.formula:
        raise ValueError(f"{recipe.name}: formula {formula}, expected {recipe.formula}")
    a, b, lo, hi = recipe.bond
    dmat = structure.distance_matrix
    syms = np.array([s.specie.symbol for s in structure])
    pair = dmat[np.ix_(syms == a, syms == b)]
    shortest = float(pair[pair > 1e-6].min())
    if not lo <= shortest <= hi:
        raise ValueError(f"{recipe.name}: shortest {a}–{b} distance {shortest:.3f} Å outside [{lo}, {hi}] Å")
    np.fill_diagonal(dmat, np.inf)
    if dmat.min() < 1.0:
        raise ValueError(f"{recipe.name}: atoms {dmat.min():.2f} Å apart (duplicate sites?)")
    return {
        "spacegroup": f"{sga.get_space_group_symbol()} (#{got})",
        "crystal_system": sga.get_crystal_system(),
        "n_sites": len(structure),
        "shortest_bond": f"{a}–{b} {shortest:.3f} Å",
    }


def main(argv: list[str] | None = None) -> int:
    from pymatgen.io.cif import CifWriter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "assets" / "examples")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    index = []
    for recipe in RECIPES:
        structure = build(recipe)
        meta = check(recipe, structure)
        CifWriter(structure, symprec=0.01).write_file(args.out / recipe.file)
        index.append(
            {
                "name": recipe.name,
                "file": recipe.file,
                "formula": recipe.formula,
                "spacegroup": meta["spacegroup"],
                "crystal_system": meta["crystal_system"],
                "n_sites": meta["n_sites"],
                "lattice": recipe.lattice,
                "reference": recipe.reference,
                "note": recipe.note,
                "check": meta["shortest_bond"],
            }
        )
        print(f"{recipe.name:20s} {meta['spacegroup']:18s} {meta['n_sites']:3d} sites  {meta['shortest_bond']}")
    payload = {
        "description": "Example crystals for the GoeCTP Explorer, generated by scripts/build_examples.py "
        "from the cited crystallographic refinements (Structure.from_spacegroup).",
        "examples": index,
    }
    (args.out / "index.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {len(index)} CIFs and index.json to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
