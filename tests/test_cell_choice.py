"""Cell-choice drift: the same crystal in another unit cell (basis change, supercell) should predict the same tensor.

The numbers are printed (also without ``-s``) as a small version of ``benchmarks/accuracy/bench_cell_choice.py``'s
table, from the helpers both use (:mod:`goectp.evaluation.cell_choice`); the assertions are the inequalities that hold
for each setting.
"""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from goectp.api import predict_graphs
from goectp.evaluation import cell_choice as bench
from goectp.graph import build_crystal_graph


@pytest.fixture(scope="module")
def triclinic_drift() -> dict:
    """Drift per (reduction, pooling, perturbation) over random triclinic crystals, goectp and icom backbones."""
    rng = np.random.default_rng(2024)
    crystals = [bench.random_triclinic_crystal(rng, n_atoms=n) for n in (2, 3, 5)]
    cases = bench.build_cases(crystals, rng)
    cases += bench.build_cases(crystals, rng)  # a second random basis change and rotation per crystal
    return bench.measure_drift(cases, ["goectp", "icom"], bench.SETTINGS)


def test_print_drift_table(triclinic_drift, capsys):
    table = bench.markdown_table(triclinic_drift, ["goectp", "icom"], bench.SETTINGS)
    with capsys.disabled():
        print("\n\nCell-choice drift (ε units, 3 random triclinic crystals x 2 draws):\n" + table + "\n")
    assert table.count("\n") == 1 + 2 * len(bench.SETTINGS)


def drift(
    table: dict, reduction: str, pooling: str, perturbation: str, variant: str = "goectp", sign_average: bool = True
) -> np.ndarray:
    return table[(variant, reduction, pooling, False, sign_average and reduction != "none", perturbation)]


@pytest.mark.parametrize("variant", ["goectp", "icom"])
def test_input_cell_frame_drifts_under_basis_change(triclinic_drift, variant):
    for pooling in ("sum", "mean"):
        assert np.median(drift(triclinic_drift, "none", pooling, "unimodular", variant)) > 0.1


@pytest.mark.parametrize("variant", ["goectp", "icom"])
@pytest.mark.parametrize("reduction", ["niggli", "primitive"])
def test_reduced_frame_is_exact_under_basis_change(triclinic_drift, reduction, variant):
    for pooling in ("sum", "mean"):
        assert drift(triclinic_drift, reduction, pooling, "unimodular", variant).max() < 1e-6
        # without sign averaging the remaining ±F ambiguity of the reduced basis shows up, but far below `none`
        unsigned = drift(triclinic_drift, reduction, pooling, "unimodular", variant, sign_average=False)
        assert unsigned.max() < 0.1 * np.median(drift(triclinic_drift, "none", pooling, "unimodular", variant))


@pytest.mark.parametrize("variant", ["goectp", "icom"])
def test_supercell_drift_by_setting(triclinic_drift, variant):
    for supercell in ("supercell 2x1x1", "supercell 2x2x1"):
        for reduction in ("none", "niggli", "primitive"):
            summed = drift(triclinic_drift, reduction, "sum", supercell, variant)
            mean = drift(triclinic_drift, reduction, "mean", supercell, variant)
            assert np.median(summed) > 1.0  # sum pooling counts the atoms of the cell
            assert np.median(summed) > np.median(mean)
        # a supercell's Niggli cell is another cell, so niggli alone does not help ...
        assert np.median(drift(triclinic_drift, "niggli", "mean", supercell, variant)) > 1e-3
        # ... the primitive lattice's Niggli cell does, and with mean pooling the prediction is exact
        assert drift(triclinic_drift, "primitive", "mean", supercell, variant).max() < 1e-6


def test_rotation_control_is_exact_for_every_setting(triclinic_drift):
    control = [v.max() for k, v in triclinic_drift.items() if k[-1].startswith("rotation")]
    assert len(control) == 2 * len(bench.SETTINGS)
    assert max(control) < 1e-9


# ---------------------------------------------------------------------------------------------------------------
# symmetric lattices: the reduced basis is fixed only up to a lattice symmetry, so symmetrisation completes it


def symmetric_crystals() -> dict[str, Structure]:
    return {
        "SrTiO3 (cubic)": Structure(
            Lattice.cubic(3.905),
            ["Sr", "Ti", "O", "O", "O"],
            [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
        ),
        "TiO2 (rutile)": Structure.from_spacegroup(
            "P4_2/mnm", Lattice.tetragonal(4.594, 2.959), ["Ti", "O"], [[0, 0, 0], [0.3048, 0.3048, 0]]
        ),
        "ZnO (wurtzite)": Structure.from_spacegroup(
            "P6_3mc", Lattice.hexagonal(3.25, 5.207), ["Zn", "O"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]]
        ),
        "orthorhombic": Structure(Lattice.orthorhombic(4.1, 5.3, 6.2), ["Ba", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    }


@pytest.mark.parametrize("name", sorted(symmetric_crystals()))
def test_symmetric_crystals_are_exact_with_reduction_and_symmetrisation(name):
    structure = symmetric_crystals()[name]
    rng = np.random.default_rng(7)
    others = [bench.change_basis(structure, bench.random_unimodular(rng)) for _ in range(3)]
    others += [bench.supercell(structure, s) for s in ([2, 1, 1], [2, 2, 1], [[1, 1, 0], [-1, 1, 0], [0, 0, 1]])]
    graphs = [build_crystal_graph(s) for s in [structure, *others]]
    model = bench.make_model("icom", "primitive", "mean", symmetrize=True, sign_average=True)
    eps = predict_graphs(graphs, model, device="cpu")
    assert np.abs(eps[1:] - eps[0]).max() < 1e-6
    niggli = predict_graphs(
        graphs[:4], bench.make_model("icom", "niggli", "sum", symmetrize=True, sign_average=True), device="cpu"
    )
    assert np.abs(niggli[1:] - niggli[0]).max() < 1e-6


def test_change_basis_helper_keeps_the_crystal():
    structure = symmetric_crystals()["TiO2 (rutile)"]
    u = np.array([[1, 1, 0], [0, 1, 0], [-1, 0, 1]])
    other = bench.change_basis(structure, u)
    assert round(abs(np.linalg.det(u))) == 1
    np.testing.assert_allclose(other.volume, structure.volume)
    assert other.matches(structure, scale=False, primitive_cell=False, attempt_supercell=False)
    for _ in range(20):
        assert round(abs(np.linalg.det(bench.random_unimodular(np.random.default_rng(_))))) == 1
