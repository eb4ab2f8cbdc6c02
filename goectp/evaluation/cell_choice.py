"""Cell-choice drift: how much a prediction changes when the *same crystal* is described by another unit cell.

The polar frame ``F`` of ``L = F H`` depends on the basis that describes the lattice, and sum pooling counts the atoms
of the cell, so the paper's GoeCTP predicts different tensors for ``a → a + b`` or for a 2x2x1 supercell. These
helpers measure that drift for every setting of

- ``cell_reduction``: ``none`` (the input cell, as in the paper), ``niggli`` (Niggli-reduced basis of the input
  lattice), ``primitive`` (Niggli basis of the crystal's primitive lattice: the same for a supercell),
- ``pooling``: ``sum`` (paper) or ``mean``,

with untrained fixed-seed models whose target scale is set to ε ≈ 5 ± 5, so the drift is in ε units.
Perturbations: a random unimodular basis change (integer ``U``, ``det U = ±1``), 2x1x1 and 2x2x1 supercells, and, as
a control, a random rotation or reflection (drift = ``|f(RX) - R f(X) Rᵀ|``, float noise).
``benchmarks/accuracy/bench_cell_choice.py`` prints the table; ``tests/test_cell_choice.py`` asserts its inequalities.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation

from goectp.api import build_model, predict_graphs
from goectp.graph import build_crystal_graph

__all__ = [
    "PERTURBATIONS",
    "SETTINGS",
    "SETTINGS_REAL",
    "build_cases",
    "change_basis",
    "make_model",
    "markdown_table",
    "measure_drift",
    "random_triclinic_crystal",
    "random_unimodular",
    "supercell",
    "transformed",
]

#: (cell_reduction, pooling, symmetrize, sign_average); sign averaging only acts with a reduction
SETTINGS = [("none", pool, False, False) for pool in ("sum", "mean")] + [
    (red, pool, False, sign) for red in ("niggli", "primitive") for pool in ("sum", "mean") for sign in (False, True)
]
SETTINGS_REAL = [("none", pool, sym, False) for sym in (False, True) for pool in ("sum", "mean")] + [
    (red, pool, sym, True) for red in ("niggli", "primitive") for sym in (False, True) for pool in ("sum", "mean")
]
PERTURBATIONS = ("unimodular", "supercell 2x1x1", "supercell 2x2x1", "rotation/reflection (control)")
ELEMENTS = ["Li", "O", "Ti", "Ba", "F", "Si", "Zn", "Cs", "N", "Mg"]


def random_triclinic_crystal(rng: np.random.Generator, n_atoms: int | None = None) -> Structure:
    """A random triclinic crystal (2-6 atoms, ≥ 1.5 Å apart) in its Niggli-reduced cell."""
    n_atoms = n_atoms or int(rng.integers(2, 7))
    while True:
        a, b, c = rng.uniform(3.5, 6.5, 3)
        lattice = Lattice.from_parameters(a, b, c, *rng.uniform(75.0, 105.0, 3))
        if lattice.volume / n_atoms < 9.0:
            continue
        structure = Structure(lattice, list(rng.choice(ELEMENTS, n_atoms)), rng.random((n_atoms, 3)))
        if len(structure.get_neighbor_list(1.5)[0]) == 0:
            return structure.get_reduced_structure("niggli")


def random_unimodular(rng: np.random.Generator, steps: int = 3) -> np.ndarray:
    """A random integer matrix with ``det = ±1`` (products of shears ``a_j += m a_i`` and a sign flip), not ``I``."""
    while True:
        u = np.eye(3, dtype=np.int64)
        for _ in range(steps):
            i, j = rng.choice(3, 2, replace=False)
            u[:, j] += int(rng.integers(-1, 2)) * u[:, i]
        if rng.random() < 0.3:
            u[:, int(rng.integers(3))] *= -1
        if not np.array_equal(u, np.eye(3)):
            return u


def change_basis(structure: Structure, u: np.ndarray) -> Structure:
    """The same crystal in the basis ``L U`` (columns); fractional coordinates re-expressed as ``U⁻¹ x``."""
    lattice_cols = structure.lattice.matrix.T @ u
    frac = structure.frac_coords @ np.linalg.inv(u).T
    return Structure(Lattice(lattice_cols.T), structure.species, frac)


def supercell(structure: Structure, scaling: Sequence[int]) -> Structure:
    """A copy of ``structure`` repeated by ``scaling`` (3 integers or a 3x3 integer matrix)."""
    copy = structure.copy()
    copy.make_supercell(list(scaling))
    return copy


def transformed(structure: Structure, perturbation: str, rng: np.random.Generator) -> tuple[Structure, np.ndarray]:
    """``(new structure, R)``: the perturbed copy and the Cartesian map its prediction should follow."""
    if perturbation == "unimodular":
        return change_basis(structure, random_unimodular(rng)), np.eye(3)
    if perturbation.startswith("supercell"):
        return supercell(structure, [int(x) for x in perturbation.split()[1].split("x")]), np.eye(3)
    rot = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    if rng.random() < 0.5:
        rot = rot @ np.diag([1.0, 1.0, -1.0])
    return Structure(Lattice(structure.lattice.matrix @ rot.T), structure.species, structure.frac_coords), rot


def make_model(
    variant: str, reduction: str, pooling: str, symmetrize: bool = False, sign_average: bool = False, seed: int = 0
) -> torch.nn.Module:
    """An untrained fixed-seed float64 model (hidden 32; goectp 1 message layer, mat/icom 2) with target scale
    ε ≈ 5 ± 5, so that drifts come out in ε units."""
    torch.manual_seed(seed)
    model = build_model(
        variant,
        hidden=32,
        num_layers=1 if variant == "goectp" else 2,
        cell_reduction=reduction,
        pooling=pooling,
        symmetrize=symmetrize,
        sign_average=sign_average,
    )
    model.set_target_stats(5.0, 5.0)
    return model.double().eval()


def build_cases(structures: Sequence[Structure], rng: np.random.Generator) -> list[tuple]:
    """``(reference graph, perturbation, perturbed graph, R)`` for every structure and perturbation."""
    cases = []
    for structure in structures:
        reference = build_crystal_graph(structure)
        for perturbation in PERTURBATIONS:
            other, rot = transformed(structure, perturbation, rng)
            cases.append((reference, perturbation, build_crystal_graph(other), rot))
    return cases


def measure_drift(
    cases: Sequence[tuple], variants: Sequence[str], settings: Sequence[tuple[str, str, bool, bool]]
) -> dict[tuple, np.ndarray]:
    """Drift ``max |ε' - R ε Rᵀ|`` per (variant, *setting, perturbation), over the cases."""
    drift: dict[tuple, list[float]] = {}
    for variant in variants:
        for setting in settings:
            model = make_model(variant, *setting)
            eps_ref = predict_graphs([c[0] for c in cases], model, device="cpu")
            eps_new = predict_graphs([c[2] for c in cases], model, device="cpu")
            for (_, perturbation, _, rot), a, b in zip(cases, eps_ref, eps_new):
                err = float(np.abs(b - rot @ a @ rot.T).max())
                drift.setdefault((variant, *setting, perturbation), []).append(err)
    return {key: np.array(values) for key, values in drift.items()}


def markdown_table(
    drift: dict[tuple, np.ndarray], variants: Sequence[str], settings: Sequence[tuple[str, str, bool, bool]]
) -> str:
    """The Markdown table of :func:`measure_drift`'s ``drift``: one row per variant and setting, ``median / max``
    drift per perturbation."""
    header = (
        "| model | cell_reduction | pooling | symmetrize | sign_average | "
        + " | ".join(f"{p}: median / max" for p in PERTURBATIONS)
        + " |"
    )
    lines = [header, "|" + "---|" * (5 + len(PERTURBATIONS))]
    for variant in variants:
        for reduction, pooling, symmetrize, sign in settings:
            cells = []
            for perturbation in PERTURBATIONS:
                values = drift[(variant, reduction, pooling, symmetrize, sign, perturbation)]
                cells.append(f"{np.median(values):.2g} / {values.max():.2g}")
            flags = " | ".join("yes" if flag else "no" for flag in (symmetrize, sign))
            lines.append(f"| {variant} | {reduction} | {pooling} | {flags} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
