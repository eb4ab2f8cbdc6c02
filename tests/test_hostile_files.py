"""Issue 32: the files that took a process down (memory, time) are refused or handled, within bounds.

Each formerly hostile input runs in an isolated worker with a small memory limit (``IsolatedPool``): a file that
still blew up would end as ``out_of_memory`` or ``timeout`` there, not as the refusal the test expects.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

import goectp
from goectp.isolation import IsolatedPool, load_checked
from goectp.structure_checks import (
    MAX_CELL_ASPECT,
    MAX_VACUUM,
    MIN_CELL_HEIGHT,
    check_cell_shape,
    cif_tokens,
    site_count_bounds,
    space_group_operations,
)
from goectp.structures import StructureError, load_structures, precheck_structure_text, structure_from_string


@pytest.fixture(scope="module")
def tiny_model() -> goectp.GoeCTP:
    return goectp.build_model("goectp", hidden=16)


@pytest.fixture(scope="module")
def bounded() -> IsolatedPool:
    """One worker with 512 MB above its start and 60 s per file."""
    pool = IsolatedPool(1, memory_mb=512, seconds=60)
    yield pool
    pool.close()


def poscar(lattice: str, coords: str, species: str = "Na Cl", counts: str = "1 1") -> str:
    return f"hostile\n1.0\n{lattice}\n{species}\n{counts}\nDirect\n{coords}\n"


CUBE = "4 0 0\n0 4 0\n0 0 4"
HOSTILE_POSCARS = {
    "coordinate_1e6.vasp": (poscar(CUBE, "1000000 0 0\n0.5 0.5 0.5"), "absurd_coordinates", "±1000"),
    "coordinate_1e15.vasp": (poscar(CUBE, "1e15 0 0\n0.5 0.5 0.5"), "absurd_coordinates", "±1000"),
    "needle_1x1x5000.vasp": (poscar("1 0 0\n0 1 0\n0 0 5000", "0 0 0", "H", "1"), "absurd_cell", "limit of 30"),
    "thin_0.2x0.2x499.vasp": (poscar("0.2 0 0\n0 0.2 0\n0 0 499", "0 0 0", "H", "1"), "absurd_cell", "limit of 1 Å"),
    "sheet_3x3x5000.vasp": (
        poscar("3 0 0\n0 3 0\n0 0 5000", "0 0 0\n0.5 0.5 0.0005"),
        "absurd_cell",
        "limit of 30",
    ),
    "slab_vacuum_60.vasp": (poscar("3 0 0\n0 3 0\n0 0 62", "0 0 0\n0.5 0.5 0.02"), "absurd_cell", "limit of 30 Å"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_POSCARS))
def test_hostile_poscars_are_refused_within_bounds(name, tmp_path, bounded):
    text, code, limit = HOSTILE_POSCARS[name]
    path = tmp_path / name
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(StructureError) as info:
        bounded.run(load_checked, str(path), 500, True, name=name)
    assert info.value.code == code, str(info.value)
    assert limit in str(info.value) and "\n" not in str(info.value)
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize("name", ["coordinate_1e6.vasp", "sheet_3x3x5000.vasp", "needle_1x1x5000.vasp"])
def test_goectp_predict_refuses_hostile_cells(name, tmp_path, tiny_model):
    text, code, _ = HOSTILE_POSCARS[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(StructureError) as info:
        goectp.predict(str(path), tiny_model, device="cpu")
    assert info.value.code == code


def test_coordinates_outside_the_cell_are_wrapped_and_predicted_alike(tmp_path, tiny_model):
    inside = poscar(CUBE, "0.2 0 0\n0.5 0.5 0.5")
    outside = poscar(CUBE, "100.2 -300 7\n0.5 0.5 -41.5")
    a, b = (structure_from_string(t, "poscar") for t in (inside, outside))
    wrapped = load_structures(b)[0]
    assert wrapped.frac_coords.min() >= 0 and wrapped.frac_coords.max() < 1
    np.testing.assert_allclose(goectp.predict(b, tiny_model, device="cpu"), goectp.predict(a, tiny_model, device="cpu"))


def test_cell_shape_limits_name_themselves():
    frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    check_cell_shape(np.diag([4.0, 4.0, 4.0]), frac)  # a normal cell passes
    check_cell_shape(np.diag([3.0, 3.0, 25.0]), frac)  # a slab with 12.5 Å of vacuum passes
    for lattice, words in (
        (np.diag([0.5, 4, 4]), f"limit of {MIN_CELL_HEIGHT:g} Å"),
        (np.diag([2.0, 2.0, 2.0 * MAX_CELL_ASPECT + 1]), f"limit of {MAX_CELL_ASPECT:g}"),
        (np.diag([4.0, 4.0, 2 * MAX_VACUUM + 2]), f"limit of {MAX_VACUUM:g} Å"),
    ):
        with pytest.raises(StructureError, match=words) as info:
            check_cell_shape(lattice, frac)
        assert info.value.code == "absurd_cell"


def test_lattice_search_grid_is_bounded():
    from goectp.canonical import MAX_SEARCH_GRID, _candidates

    with pytest.raises(StructureError, match=re.escape(f"{MAX_SEARCH_GRID:.0e}")) as info:
        _candidates(np.diag([0.2, 0.2, 499.0]), 0.01)  # would be 5000 × 5000 × 3 points
    assert info.value.code == "absurd_cell"
    assert len(_candidates(np.diag([3.0, 4.0, 5.0]), 0.01)[0]) > 0


# ------------------------------------------------------------------------------------------------ CIF counts
CIF_HEAD = """data_x
_cell_length_a 50
_cell_length_b 50
_cell_length_c 50
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
"""
KEYS = ["_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z"]


def atom_rows(n: int) -> str:
    rng = np.random.default_rng(1)
    return "\n".join(f"Na{i} Na {x:.4f} {y:.4f} {z:.4f}" for i, (x, y, z) in enumerate(rng.random((n, 3))))


LOOP_BYPASSES = {
    "comment on the loop_ line": "loop_ # the atoms\n" + "\n".join(KEYS),
    "comment between keys": "loop_\n" + "\n# a comment\n".join(KEYS),
    "keys on the loop_ line": "loop_ " + " ".join(KEYS),
    "keys and comment on one line": "loop_ " + " ".join(KEYS[:2]) + " # x\n" + "\n".join(KEYS[2:]),
}


@pytest.mark.parametrize("case", sorted(LOOP_BYPASSES))
def test_cif_loops_are_counted_as_the_grammar_reads_them(case):
    text = CIF_HEAD + "loop_\n_symmetry_equiv_pos_as_xyz\n'x, y, z'\n" + LOOP_BYPASSES[case] + "\n" + atom_rows(20_000)
    start = time.perf_counter()
    assert site_count_bounds(text, "cif") == (20_000, 20_000)
    with pytest.raises(StructureError, match="at least 20000 sites") as info:
        structure_from_string(text, "cif", max_sites=500)
    assert info.value.code == "too_large" and time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    "symmetry, ops",
    [
        ("_symmetry_space_group_name_H-M 'F m -3 m'", 192),
        ('_space_group_name_H-M_alt "F m -3 m"', 192),
        ("_space_group_IT_number 225", 192),
        ("_symmetry_Int_Tables_number 166", 36),
        ("_symmetry_space_group_name_H-M 'P 21/c'", 4),
        ("_symmetry_space_group_name_H-M 'Q 99 z'", 192),  # unknown: the worst case
        ("loop_\n_symmetry_equiv_pos_as_xyz\n" + "\n".join(f"'x, y, z+{k}/8'" for k in range(8)), 8),
        ("loop_ _space_group_symop_id _space_group_symop_operation_xyz\n1 'x,y,z'\n2 '-x,-y,-z'", 2),
    ],
)
def test_symmetry_expansion_by_name_number_or_operators(symmetry, ops):
    text = CIF_HEAD + symmetry + "\nloop_\n" + "\n".join(KEYS) + "\n" + atom_rows(200)
    assert site_count_bounds(text, "cif") == (200, 200 * ops)
    if 200 * ops > 25 * 500:
        with pytest.raises(StructureError, match="symmetry operations") as info:
            precheck_structure_text(text, "cif", max_sites=500)
        assert info.value.code == "too_large"


def test_name_only_space_group_expansion_refused_before_the_parse():
    """The 7 KB CIF of the issue: 200 rows in F m -3 m, no operators (38,400 sites before merging)."""
    text = CIF_HEAD + "_symmetry_space_group_name_H-M 'F m -3 m'\nloop_\n" + "\n".join(KEYS) + "\n" + atom_rows(200)
    start = time.perf_counter()
    with pytest.raises(StructureError, match="38,400") as info:
        structure_from_string(text, "cif", max_sites=500)
    assert info.value.code == "too_large" and time.perf_counter() - start < 2.0


def test_cif_tokens_read_quotes_comments_and_text_fields():
    text = "_a 'x # y' # gone\n_b \"it's\"\n;\nloop_ _c 1 2\n;\n_d 'o'k'\nloop_#notacomment"
    # pymatgen's reading: a "#" after white space starts a comment even inside quotes, so 'x # y' leaves an unclosed
    # quote, which is skipped ("x"); a "#" inside a word is no comment
    assert cif_tokens(text) == ["_a", "x", "_b", '"it\'s"', ";", "_d", "'o'k'", "loop_#notacomment"]
    assert space_group_operations("Fm-3m:1") == 192 and space_group_operations("2") == 2


def test_valid_cif_with_comments_still_parses():
    lattice = Lattice.cubic(5.64)
    nacl = Structure.from_spacegroup("Fm-3m", lattice, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    text = nacl.to(fmt="cif").replace("loop_\n", "loop_ # a comment\n# between\n")
    assert site_count_bounds(text, "cif")[0] == 8
    assert len(load_structures(structure_from_string(text, "cif"))[0]) == 8


# ------------------------------------------------------------------------------------------------ explorer
@pytest.fixture()
def explorer_loader():
    pytest.importorskip("panel")
    from pathlib import Path

    from explorer.loader import DatasetIndex, ExampleGallery, StructureLoader

    examples = Path(__file__).resolve().parents[1] / "assets" / "examples"
    return StructureLoader(gallery=ExampleGallery(examples), dataset=DatasetIndex(Path("/nonexistent")))


def test_explorer_survives_every_hostile_upload(explorer_loader, monkeypatch):
    """The issue's uploads end as one-line messages; the loader keeps its structure and loads the next file.
    A worker killed over its memory limit is a message too, and the next upload works."""
    loader = explorer_loader
    before = loader.structure
    cifs = {
        "name_only.cif": CIF_HEAD + "_symmetry_space_group_name_H-M 'F m -3 m'\nloop_\n" + "\n".join(KEYS),
        "comment_loop.cif": CIF_HEAD + LOOP_BYPASSES["comment on the loop_ line"],
    }
    uploads_ = {name: text for name, (text, _, _) in HOSTILE_POSCARS.items()}
    uploads_.update({name: text + "\n" + atom_rows(2000) for name, text in cifs.items()})
    for name, text in uploads_.items():
        start = time.perf_counter()
        assert not loader.load_bytes(text.encode(), name)
        assert loader.error.startswith(name) and "\n" not in loader.error
        assert loader.structure is before and time.perf_counter() - start < 20
    import goectp.isolation as isolation

    real = isolation.shared_pool(1, 256, 20)

    class Hungry:  # every upload's worker asks for 8 GB: over its 256 MB limit
        def run(self, fn, *args, name: str = "", **kwargs):
            return real.run(bytearray, 8 * 2**30, name=name)

    monkeypatch.setattr(isolation, "shared_pool", lambda *args: Hungry())
    nacl = poscar(CUBE, "0 0 0\n0.5 0.5 0.5")
    assert not loader.load_bytes(nacl.encode(), "POSCAR")
    assert loader.error.startswith("POSCAR: ") and "(out_of_memory)" in loader.error
    assert loader.structure is before
    monkeypatch.undo()
    assert loader.load_bytes(nacl.encode(), "POSCAR") and len(loader.structure) == 2 and not loader.error


def test_neighbour_search_wraps_far_atoms_and_keeps_their_images(bounded):
    """The screening worker and the graph search neighbours of structures as given: atoms 1000 cells away are
    searched inside the cell (bounded memory), with images relative to the given coordinates."""
    from goectp.graph import neighbor_edges

    lattice = Lattice.from_parameters(4.1, 5.3, 6.2, 80, 95, 104)
    near = Structure(lattice, ["Ba", "Ti", "O"], [[0.1, 0.2, 0.3], [0.5, 0.6, 0.55], [0.9, 0.1, 0.7]])
    far = Structure(lattice, near.species, near.frac_coords + [[-1000, 998, -997], [0, 0, 0], [999, -998, 997]])
    with pytest.raises(StructureError, match="out_of_memory"):  # what pymatgen's search does with them as given
        bounded.run(far.get_neighbor_list, 12.0, name="far")
    edges = {}
    for name, s in (("near", near), ("far", far)):
        c, p, images, d = bounded.run(neighbor_edges, s, name=name)  # a blown search would be out_of_memory
        edges[name] = np.sort(np.round(((s.frac_coords[p] + images - s.frac_coords[c]) @ lattice.matrix), 6), axis=0)
        np.testing.assert_allclose(
            np.linalg.norm((s.frac_coords[p] + images - s.frac_coords[c]) @ lattice.matrix, axis=1), d
        )
    np.testing.assert_allclose(edges["near"], edges["far"], atol=1e-6)


def test_load_untrusted_parses_in_the_bounded_worker_and_names_the_file(tmp_path, monkeypatch):
    """The Python API's bounded reader: the same structure as load_structures; a refused file and a worker over its
    memory limit are StructureErrors naming the file, and the next file loads."""
    import goectp.isolation as isolation
    from goectp.structures import StructureError, load_structures

    good = tmp_path / "NaCl.vasp"
    good.write_text(poscar(CUBE, "0 0 0\n0.5 0.5 0.5"))
    bad = tmp_path / "overlap.vasp"
    bad.write_text(poscar(CUBE, "0 0 0\n0.001 0 0"))
    (got,) = isolation.load_untrusted(good)
    assert got == load_structures(good)[0]
    with pytest.raises(StructureError) as info:
        isolation.load_untrusted([good, bad])
    assert "overlap.vasp" in str(info.value)
    real = isolation.shared_pool(1, 256, 20)

    class Hungry:  # the worker asks for 8 GB: over its 256 MB limit
        def run(self, fn, *args, name: str = "", **kwargs):
            return real.run(bytearray, 8 * 2**30, name=name)

    monkeypatch.setattr(isolation, "shared_pool", lambda *args: Hungry())
    with pytest.raises(StructureError) as info:
        isolation.load_untrusted(str(good))
    assert info.value.code == "out_of_memory" and "NaCl.vasp" in str(info.value)
    monkeypatch.undo()
    assert len(isolation.load_untrusted([good])[0]) == 2
