"""The canonical cell and frame averaging: the same crystal in any unit cell gets the same tensor (float64, 1e-6).

Perturbations of the *structure* (graphs rebuilt): unimodular basis changes with det +1 and -1, 2x1x1 and 2x2x1
supercells, atoms translated and wrapped. Crystals: polar (wurtzite GaN, P6₃mc: needs the ±F frames), rhombohedral
(calcite, R-3c), a near-symmetric cell (rutile with 1e-3 Å noise: spglib still finds P4₂/mnm), a triclinic P1
crystal, a monoclinic one, and a polar crystal with a strained lattice and noisy atoms.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

import goectp
import goectp.canonical as canonical_module
from goectp.canonical import (
    canonical_cell,
    frame_operations,
    integer_automorphisms,
    lattice_automorphisms,
    may_have_more_symmetry,
    symmetrized_lattice,
    uses_canonical_cell,
)
from goectp.graph import build_crystal_graph, symmetry_operations

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assets" / "examples"
TOL = 1e-6


def unimodular(seed: int, det: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u = np.eye(3, dtype=int)
    for _ in range(4):
        i, j = rng.choice(3, 2, replace=False)
        e = np.eye(3, dtype=int)
        e[i, j] = rng.choice([-1, 1])
        u = u @ e
    return u if det > 0 else u @ np.diag([1, 1, -1])


def described(structure: Structure, kind: str, seed: int = 0) -> Structure:
    """The same crystal in another cell."""
    if kind in ("det+1", "det-1"):
        u = unimodular(seed, +1 if kind == "det+1" else -1)
        lat = structure.lattice.matrix.T @ u  # new basis vectors (columns)
        return Structure(Lattice(lat.T), structure.species, structure.frac_coords @ np.linalg.inv(u).T)
    if kind == "2x1x1":
        return structure.make_supercell([2, 1, 1], in_place=False)
    if kind == "2x2x1":
        return structure.make_supercell([2, 2, 1], in_place=False)
    moved = structure.copy()
    moved.translate_sites(list(range(len(moved))), np.random.default_rng(seed).random(3), to_unit_cell=True)
    return moved


def crystals() -> dict[str, Structure]:
    rng = np.random.default_rng(3)
    rutile = Structure.from_file(EXAMPLES / "TiO2_rutile.cif")
    noise = rng.normal(scale=1e-3, size=(len(rutile), 3))
    noisy = Structure(rutile.lattice, rutile.species, rutile.cart_coords + noise, coords_are_cartesian=True)
    triclinic = Structure(
        Lattice.from_parameters(4.1, 5.3, 6.2, 81.0, 97.0, 103.0), ["Li", "O", "Ti", "F"], rng.random((4, 3))
    )
    monoclinic = Structure(Lattice.monoclinic(4.0, 5.5, 6.1, 104.0), ["Ba", "O", "Zn"], rng.random((3, 3)))
    # a relaxed-looking polar crystal: a ≠ b and γ ≠ 120° by 1e-4, atoms off their sites by 1e-4 Å — the input cell
    # decides which length spglib's idealized lattice keeps and which atom pair its translations come from
    gan = Structure.from_file(EXAMPLES / "GaN_wurtzite.cif")
    strained = Lattice(gan.lattice.matrix @ (np.eye(3) + np.array([[1e-4, 3e-5, 0], [0, -4e-5, 0], [0, 0, 0]])))
    relaxed = Structure(strained, gan.species, gan.frac_coords + rng.normal(scale=3e-5, size=(len(gan), 3)))
    return {
        "GaN wurtzite (polar)": Structure.from_file(EXAMPLES / "GaN_wurtzite.cif"),
        "calcite (R-3c)": Structure.from_file(EXAMPLES / "CaCO3_calcite.cif"),
        "rutile + 1e-3 Å noise": noisy,
        "triclinic P1": triclinic,
        "monoclinic": monoclinic,
        "GaN, strained lattice + noise (polar)": relaxed,
    }


CRYSTALS = crystals()
KINDS = ("det+1", "det-1", "2x1x1", "2x2x1", "translated")


def _edge_fingerprint(structure: Structure) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (centre Z, neighbour Z, Cartesian edge vector) of the canonical graph and their share of all edges:
    equal for the same crystal in any cell (a supercell repeats every edge)."""
    g = build_crystal_graph(structure, canonical=True)
    rows = np.c_[g.z[g.edge_index[1]].numpy(), g.z[g.edge_index[0]].numpy(), g.edge_vec.numpy()]
    distinct, counts = np.unique(np.round(rows, 7), axis=0, return_counts=True)
    return distinct, counts / counts.sum()


def test_canonical_cell_is_the_same_crystal_for_every_description():
    for name, s in CRYSTALS.items():
        ref = canonical_cell(s)
        assert len(ref) <= len(s) and ref.composition.reduced_formula == s.composition.reduced_formula, name
        rows, shares = _edge_fingerprint(s)
        for kind in KINDS:
            other_rows, other_shares = _edge_fingerprint(described(s, kind))
            assert other_rows.shape == rows.shape, (name, kind)
            assert np.abs(other_rows - rows).max() < 1e-6 and np.allclose(other_shares, shares), (name, kind)


def test_the_idealized_cell_is_exactly_symmetric():
    noisy = CRYSTALS["rutile + 1e-3 Å noise"]
    ideal = canonical_cell(noisy)
    assert len(symmetry_operations(ideal, symprec=1e-8)) == 16  # 4/mmm, exact to 1e-8 Å
    assert len(symmetry_operations(noisy, symprec=1e-8)) == 1  # the input itself is not


@pytest.mark.parametrize(
    ("name", "frames"),
    [("GaN wurtzite (polar)", 2), ("calcite (R-3c)", 1), ("rutile + 1e-3 Å noise", 1), ("triclinic P1", 2)],
)
def test_frames_are_one_per_coset_of_the_lattice_group(name, frames):
    g = build_crystal_graph(CRYSTALS[name], canonical=True)
    assert int(g.num_frame_ops) == frames
    ops = g.frame_ops.numpy()
    np.testing.assert_allclose(ops[0], np.eye(3), atol=1e-12)  # the identity first
    np.testing.assert_allclose(ops @ ops.transpose(0, 2, 1), np.broadcast_to(np.eye(3), ops.shape), atol=1e-10)


def test_frame_operations_without_symmetry_span_the_whole_lattice_group():
    lat = Lattice.cubic(4.0).matrix.T
    assert len(lattice_automorphisms(lat)) == 48
    assert len(frame_operations(lat, np.eye(3)[None])) == 48
    assert len(frame_operations(lat, lattice_automorphisms(lat))) == 1


def _spglib_lattice_group(lat: np.ndarray) -> set[tuple[int, ...]]:
    import spglib

    sym = spglib.get_symmetry((lat.T, [[0.0, 0.0, 0.0]], [1]), symprec=1e-6)
    return {tuple(w.ravel()) for w in sym["rotations"]}


# the seven lattice systems (holohedries of order 2, 4, 8, 12, 16, 24, 48), in a reduced and in a skewed basis
LATTICES = {
    "triclinic": Lattice.from_parameters(4.1, 5.3, 6.2, 81, 97, 103),
    "monoclinic": Lattice.from_parameters(4.1, 5.3, 6.2, 90, 103, 90),
    "orthorhombic": Lattice.orthorhombic(3.1, 4.7, 5.9),
    "rhombohedral": Lattice.rhombohedral(5.0, 58.0),
    "tetragonal": Lattice.tetragonal(3.9, 6.1),
    "hexagonal": Lattice.hexagonal(3.2, 5.2),
    "cubic fcc": Lattice(np.array([[0, 2.0, 2.0], [2.0, 0, 2.0], [2.0, 2.0, 0]])),
}


@pytest.mark.parametrize("skew", [False, True])
@pytest.mark.parametrize("name", list(LATTICES))
def test_integer_automorphisms_are_spglibs_lattice_group(name, skew):
    lat = LATTICES[name].matrix.T
    if skew:  # the search box is derived from the basis: a long, skewed basis of the same lattice must work too
        lat = lat @ np.array([[1, 2, 0], [0, 1, -1], [0, 0, 1]])
    ws = integer_automorphisms(lat)
    assert ws is not None
    metric = lat.T @ lat
    np.testing.assert_allclose(
        np.einsum("nji,jk,nkl->nil", ws, metric, ws), np.broadcast_to(metric, ws.shape), atol=1e-9
    )
    assert {tuple(w.ravel()) for w in ws} == _spglib_lattice_group(lat)
    products = {tuple((a @ b).ravel()) for a in ws for b in ws}  # a group: closed under products
    assert products == {tuple(w.ravel()) for w in ws}
    assert len(ws) == {"triclinic": 2, "monoclinic": 4, "orthorhombic": 8, "rhombohedral": 12,
                       "tetragonal": 16, "hexagonal": 24, "cubic fcc": 48}[name]  # fmt: skip


def test_a_lattice_symmetric_only_to_about_the_tolerance_is_left_to_spglib():
    lat = Lattice.tetragonal(3.9, 6.1).matrix.T
    near = lat @ (np.eye(3) + np.diag([2e-7, 0, 0]))  # a ≠ b by ~8e-7 Å: within 100x of the 1e-6 Å tolerance
    assert integer_automorphisms(near) is None
    group = lattice_automorphisms(near)
    cart = _spglib_lattice_group(near)
    assert len(group) == len(cart)


def _tiny_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = goectp.build_model(
        "goectp", hidden=16, num_rbf=16, pooling="mean", cell_reduction="primitive", symmetrize=True
    )
    net.set_target_stats(5.0, 5.0)
    return net.double().eval()


@pytest.mark.parametrize("name", sorted(CRYSTALS))
def test_any_cell_gives_the_same_tensor(name):
    net = _tiny_model(11)
    assert uses_canonical_cell(net.config)
    s = CRYSTALS[name]
    preds = goectp.predict([s] + [described(s, kind, seed=5) for kind in KINDS], net, device="cpu")
    assert np.abs(preds[1:] - preds[0]).max() < TOL


def test_without_frame_averaging_the_polar_crystal_drifts():
    """The checks here can fail: the shipped model with one frame per crystal depends on the reduced basis' sign."""
    net = goectp.load_model("fast").double()
    for member in net.members:
        member.config.frame_average = False
    s = CRYSTALS["GaN wurtzite (polar)"]
    preds = goectp.predict(
        [s] + [described(s, kind, seed=k) for k in range(4) for kind in ("det+1", "det-1")], net, device="cpu"
    )
    assert np.abs(preds[1:] - preds[0]).max() > 1e-4


def test_rotations_and_reflections_stay_exact():
    net = _tiny_model(12)
    s = CRYSTALS["GaN wurtzite (polar)"]
    q = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))[0]
    for rot in (q, -q, np.diag([-1.0, 1.0, 1.0])):
        turned = Structure(Lattice(s.lattice.matrix @ rot.T), s.species, s.frac_coords)
        eps, eps_rot = goectp.predict([s, turned], net, device="cpu")
        assert np.abs(eps_rot - rot @ eps @ rot.T).max() < 1e-9


@pytest.mark.parametrize("model_name", ["fast", "default"])
def test_shipped_models_are_invariant_to_the_cell(model_name):
    if model_name == "default":
        pytest.importorskip("chgnet", reason="the shipped default needs chgnet==0.4.2 (the 'foundation' extra)")
    net = goectp.load_model(model_name).double()
    assert uses_canonical_cell(net.config)
    names = ["GaN, strained lattice + noise (polar)", "calcite (R-3c)", "rutile + 1e-3 Å noise"]
    if model_name == "default":
        names = names[:1]
    for name in names:
        s = CRYSTALS[name]
        preds = goectp.predict([s] + [described(s, kind, seed=9) for kind in KINDS], net, device="cpu")
        assert np.abs(preds[1:] - preds[0]).max() < TOL, name


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_a_crystal_on_a_tolerance_boundary_gets_the_same_cell_from_any_origin(shared_data_dir):
    """Li2MnO2F of the open set lies ~0.01 Å from C2/m: spglib finds P-1 in the file's cell and C2/m once the atoms
    are shifted. Searching the symmetrized cell again until its group stops growing ends at C2/m from both."""
    from goectp.canonical import _symmetrize_once
    from goectp.data import DIELECTRIC_FILE, read_dielectric_json

    records = read_dielectric_json(shared_data_dir / DIELECTRIC_FILE)
    s = next(r.structure for r in records if r.id == "mf-dielectric_valid-110")
    shifted = described(s, "translated", seed=0)
    assert _symmetrize_once(s, 0.01)[1] == 2 and _symmetrize_once(shifted, 0.01)[1] == 4  # one round disagrees
    for cell in (s, shifted):
        assert len(symmetry_operations(canonical_cell(cell), symprec=1e-6)) == 4
    rows, shares = _edge_fingerprint(s)
    other_rows, other_shares = _edge_fingerprint(shifted)
    assert other_rows.shape == rows.shape and np.abs(other_rows - rows).max() < 1e-6
    assert np.allclose(other_shares, shares)
    net = _tiny_model(13)
    preds = goectp.predict([s, shifted, described(s, "det-1", seed=1)], net, device="cpu")
    assert np.abs(preds[1:] - preds[0]).max() < TOL


def test_symmetrized_lattice_is_exactly_symmetric_basis_covariant_and_turns_with_the_input():
    """The math of :func:`symmetrized_lattice`: ``Wᵀ G_s W = G_s`` for every ``W``; ``L → L U`` gives ``L_s U``;
    ``L → R L`` gives ``R L_s`` (R proper or improper); a lattice that is already symmetric is left alone."""
    hexagonal = Lattice.hexagonal(3.19, 5.19).matrix.T  # columns
    rotations = np.array(
        [[[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[0, -1, 0], [1, -1, 0], [0, 0, 1]], [[-1, 1, 0], [-1, 0, 0], [0, 0, 1]]]
    )  # C3 about c, in the hexagonal basis
    assert np.abs(symmetrized_lattice(hexagonal, rotations) - hexagonal).max() < 1e-12
    strained = (np.eye(3) + np.array([[2e-3, 1e-3, 0], [0, -1e-3, 5e-4], [0, 0, 1e-3]])) @ hexagonal
    sym = symmetrized_lattice(strained, rotations)
    metric = sym.T @ sym
    for w in rotations:
        assert np.abs(w.T @ metric @ w - metric).max() < 1e-12
    a, b = np.linalg.norm(sym[:, 0]), np.linalg.norm(sym[:, 1])
    assert abs(a - b) < 1e-12 and abs(sym[:, 0] @ sym[:, 1] / (a * b) + 0.5) < 1e-12  # a = b, γ = 120°
    u = np.array([[1, 1, 0], [0, 1, 0], [1, 0, -1]])  # det -1
    moved = np.stack([np.linalg.inv(u) @ w @ u for w in rotations]).round().astype(int)
    assert np.abs(symmetrized_lattice(strained @ u, moved) - sym @ u).max() < 1e-12
    q = np.linalg.qr(np.random.default_rng(4).normal(size=(3, 3)))[0]
    for r in (q, -q):
        assert np.abs(symmetrized_lattice(r @ strained, rotations) - r @ sym).max() < 1e-12


# ------------------------------------------------------------------------------------------- cost of the canonical cell
@pytest.fixture
def spglib_calls(monkeypatch):
    """Counts of the spglib searches made through :mod:`goectp.canonical` (and the graph's point group)."""
    import spglib

    counts = {"get_symmetry_dataset": 0, "standardize_cell": 0, "get_symmetry": 0}
    for name in counts:
        original = getattr(spglib, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(spglib, name, counted)
    return counts


@pytest.mark.parametrize(
    "name", ["GaN wurtzite (polar)", "rutile + 1e-3 Å noise", "monoclinic", "GaN, strained lattice + noise (polar)"]
)
def test_a_primitive_input_costs_one_spglib_search(name, spglib_calls):
    """The canonical cell of a primitive input, its growth check and the graph's point group: one spglib search (the
    group the canonical cell imposed is handed to the graph; the check for a larger group runs in numpy)."""
    build_crystal_graph(CRYSTALS[name].copy(), canonical=True)
    assert spglib_calls == {"get_symmetry_dataset": 1, "standardize_cell": 0, "get_symmetry": 0}


@pytest.mark.parametrize("cell", ["GaN 2x1x1", "calcite's hexagonal cell (3 lattice points)"])
def test_a_non_primitive_input_is_reduced_by_spglib_first(cell, spglib_calls):
    structure = {
        "GaN 2x1x1": described(CRYSTALS["GaN wurtzite (polar)"], "2x1x1"),
        "calcite's hexagonal cell (3 lattice points)": CRYSTALS["calcite (R-3c)"].copy(),
    }[cell]
    build_crystal_graph(structure, canonical=True)
    assert spglib_calls == {"get_symmetry_dataset": 2, "standardize_cell": 1, "get_symmetry": 0}


@pytest.mark.parametrize("name", list(CRYSTALS))
def test_the_growth_check_finds_exactly_the_symmetry_spglib_finds(name):
    """:func:`may_have_more_symmetry` on the canonical cell: False given its whole group (spglib at the same
    tolerance finds no more), True given any proper subgroup spglib's group exceeds (here: the identity alone)."""
    import spglib

    cell = canonical_cell(CRYSTALS[name])
    lattice, frac, numbers = cell.lattice.matrix, np.mod(cell.frac_coords, 1), [s.specie.Z for s in cell]
    rotations = np.asarray(spglib.get_symmetry_dataset((lattice, frac, numbers), symprec=0.01).rotations)
    assert not may_have_more_symmetry(cell, rotations, 0.01)
    assert may_have_more_symmetry(cell, np.eye(3, dtype=int)[None], 0.01) == (len(rotations) > 1)
    noisy = CRYSTALS["rutile + 1e-3 Å noise"]  # the input itself has no exact symmetry, but 16 within 0.01 Å
    assert may_have_more_symmetry(noisy, np.eye(3, dtype=int)[None], 0.01)
    assert not may_have_more_symmetry(noisy, np.eye(3, dtype=int)[None], 1e-5)


def test_the_automorphism_search_is_the_same_from_the_memo(monkeypatch):
    """A loose search (the growth check's) memoised first gives the tight search (the frames') the same answer as a
    fresh one, including the near-tolerance ``None``."""
    hexagonal = Lattice.hexagonal(3.19, 5.19).matrix.T
    strained = (np.eye(3) + np.diag([2e-7, -1e-7, 0])) @ hexagonal  # ~1e-6 Å from hexagonal: undecidable at 1e-6
    for lat in (hexagonal, strained, Lattice.cubic(4.0).matrix.T):
        monkeypatch.setattr(canonical_module, "_CANDIDATE_CACHE", type(canonical_module._CANDIDATE_CACHE)())
        fresh = integer_automorphisms(lat)
        integer_automorphisms(lat, 0.02, margin=1.0)  # fills the memo with a larger search box
        memo = integer_automorphisms(lat)
        assert (fresh is None) == (memo is None)
        if fresh is not None:
            assert np.array_equal(np.unique(fresh, axis=0), np.unique(memo, axis=0))
    assert integer_automorphisms(strained) is None and len(integer_automorphisms(hexagonal)) == 24


def test_the_orbit_average_does_not_depend_on_its_chunk_size(monkeypatch):
    reference = canonical_cell(CRYSTALS["calcite (R-3c)"])
    monkeypatch.setattr(canonical_module, "_ORBIT_CHUNK", 1)  # one operation at a time
    canonical_module._SYMMETRY_CACHE.clear()
    chunked = canonical_cell(CRYSTALS["calcite (R-3c)"])
    assert np.array_equal(chunked.frac_coords, reference.frac_coords)
    assert np.array_equal(chunked.lattice.matrix, reference.lattice.matrix)


def test_the_growth_check_in_a_large_cell():
    """60 atoms at random in a cubic box (no symmetry but the identity): no candidate works; mirrored copies of
    them (x → -x): the mirror is found, with the translation it needs."""
    rng = np.random.default_rng(7)
    points = rng.random((30, 3)) * [0.5, 1, 1]
    lattice = Lattice.cubic(12.0)
    plain = Structure(lattice, ["Si"] * 30 + ["O"] * 30, np.vstack([points, rng.random((30, 3))]))
    mirrored = Structure(lattice, ["Si"] * 60, np.vstack([points, points * [-1, 1, 1] + [0.31, 0, 0]]))
    identity = np.eye(3, dtype=int)[None]
    assert not may_have_more_symmetry(plain, identity, 0.01)
    assert may_have_more_symmetry(mirrored, identity, 0.01)
    assert not may_have_more_symmetry(mirrored, np.stack([np.eye(3, dtype=int), np.diag([-1, 1, 1])]), 0.01)


# A perovskite of the screening pool (perov5-6927) on which spglib's symmetry search fails at symprec 0.01, and its
# C library prints "spglib: ssm_get_exact_positions failed." to stderr unless SPGLIB_WARNING=OFF.
_BOUNDARY_PEROVSKITE = """
import numpy as np
from pymatgen.core import Lattice, Structure
{setup}
frac = [[0.00080797, 0, 0], [0.50155372, 0.5, 0.5], [0.50018162, 0, 0.5], [0.50018162, 0.5, 0], [0.00173082, 0.5, 0.5]]
s = Structure(Lattice(np.diag([4.34852072] * 3)), ["K", "In", "N", "N", "O"], frac)
{call}
"""


def _stderr_of(setup: str, call: str) -> str:
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("SPGLIB_")}
    code = _BOUNDARY_PEROVSKITE.format(setup=setup, call=call)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_spglib_c_warnings_are_silenced_once_goectp_is_imported():
    direct = "import spglib; spglib.get_symmetry_dataset((s.lattice.matrix, s.frac_coords, [1, 2, 3, 3, 4]), 0.01)"
    # the control: without goectp the C library does print (else this test could not fail)
    assert "ssm_get_exact_positions failed" in _stderr_of(
        "import os; os.environ['SPGLIB_OLD_ERROR_HANDLING'] = 'false'", direct
    )
    assert "spglib:" not in _stderr_of("import goectp", direct)
    assert "spglib:" not in _stderr_of(
        "import goectp", "from goectp.canonical import canonical_cell; canonical_cell(s)"
    )
