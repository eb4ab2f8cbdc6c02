"""Bad input raises StructureError / ValueError whose message names the problem (never a crash deep in the model)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from pymatgen.core import DummySpecies, Lattice, Structure

import goectp
from goectp.graph import build_crystal_graph
from goectp.structures import StructureError, load_structures, structure_from_file, structure_from_string

ROCK_SALT = [[0, 0, 0], [0.5, 0.5, 0.5]]


@pytest.fixture(scope="module")
def tiny_model() -> goectp.GoeCTP:
    return goectp.build_model("goectp", hidden=16)


def rock_salt(**kwargs) -> Structure:
    return Structure(
        kwargs.pop("lattice", Lattice.cubic(5.64)),
        kwargs.pop("species", ["Na", "Cl"]),
        kwargs.pop("coords", ROCK_SALT),
        **kwargs,
    )


def big_supercell() -> Structure:
    structure = rock_salt()
    structure.make_supercell([7, 7, 7])  # 686 sites
    return structure


BAD_STRUCTURES = {
    "singular_lattice": (lambda: rock_salt(lattice=Lattice([[4, 0, 0], [0, 4, 0], [4, 4, 0]])), ["singular"]),
    "flat_lattice": (lambda: rock_salt(lattice=Lattice([[4, 0, 0], [0, 4, 0], [0, 0, 1e-6]])), ["singular"]),
    "nan_lattice": (lambda: rock_salt(lattice=Lattice([[4, 0, 0], [0, np.nan, 0], [0, 0, 4]])), ["lattice", "NaN"]),
    "disordered": (lambda: rock_salt(species=[{"Na": 0.5, "K": 0.5}, "Cl"]), ["disordered", "site 0", "Na:0.5"]),
    "partial_occupancy": (lambda: rock_salt(species=["Na", {"Cl": 0.7}]), ["disordered", "site 1", "partial"]),
    "dummy_species": (lambda: rock_salt(species=[DummySpecies("X"), "Cl"]), ["unknown", "element", "X"]),
    "x_symbol": (lambda: rock_salt(species=["X", "Cl"]), ["unknown", "element", "X"]),
    "empty": (lambda: Structure(Lattice.cubic(4.0), [], []), ["no atoms"]),
    "nan_frac": (lambda: rock_salt(coords=[[0, np.nan, 0], [0.5, 0.5, 0.5]]), ["coordinates", "NaN"]),
    "nan_cartesian": (
        lambda: rock_salt(coords=[[0, 0, 0], [np.nan, 2.8, 2.8]], coords_are_cartesian=True),
        ["coordinates", "NaN"],
    ),
    "too_many_sites": (big_supercell, ["686 sites", "limit of 500"]),
    "overlapping_atoms": (
        lambda: rock_salt(species=["Na", "Cl", "Cl"], coords=[*ROCK_SALT, [0.5, 0.5, 0.5]]),
        ["overlap", "Cl"],
    ),
    "units_not_angstrom": (lambda: rock_salt(lattice=Lattice.cubic(0.564)), ["too dense", "units"]),
    "not_periodic": (lambda: rock_salt(lattice=Lattice(np.eye(3) * 5.64, pbc=(True, True, False))), ["periodic"]),
}


@pytest.mark.parametrize("name", sorted(BAD_STRUCTURES))
def test_bad_structure_raises_a_named_structure_error(name, tiny_model):
    make, words = BAD_STRUCTURES[name]
    structure = make()
    for call in (lambda: goectp.predict(structure, tiny_model, device="cpu"), lambda: build_crystal_graph(structure)):
        with pytest.raises(StructureError) as info:
            call()
        message = str(info.value)
        for word in words:
            assert word in message, (word, message)


def test_error_in_a_list_names_the_structure(tiny_model):
    good, bad = rock_salt(), BAD_STRUCTURES["disordered"][0]()
    with pytest.raises(StructureError, match=r"^structure 2: structure is disordered"):
        goectp.predict([good, good, bad], tiny_model, device="cpu")


def test_structure_error_is_a_value_error():
    assert issubclass(StructureError, ValueError)


@pytest.mark.parametrize("obj", [42, None, 3.5, object(), [1, 2], [np.eye(3)]], ids=lambda o: type(o).__name__)
def test_wrong_type_is_named(obj, tiny_model):
    with pytest.raises(StructureError, match="cannot use an object of type"):
        goectp.predict(obj, tiny_model, device="cpu")


def test_non_periodic_ase_atoms(tiny_model):
    molecule = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    with pytest.raises(StructureError, match="periodic"):
        goectp.predict(molecule, tiny_model, device="cpu")


def test_periodic_ase_atoms_are_accepted(tiny_model):
    atoms = Atoms("NaCl", scaled_positions=ROCK_SALT, cell=np.eye(3) * 5.64, pbc=True)
    assert goectp.predict(atoms, tiny_model, device="cpu").shape == (1, 3, 3)


@pytest.mark.parametrize(
    ("text", "fmt", "words"),
    [
        ("this is not a crystal", "cif", ["could not parse", "cif"]),
        ("data_broken\n_cell_length_a 3\nloop_\n", "cif", ["could not parse", "cif"]),
        ("Si\n1.0\n1 0 0\n0 1\n", "poscar", ["could not parse", "poscar"]),
        ("", "cif", ["empty"]),
        ("   \n\n", "poscar", ["empty"]),
    ],
    ids=["garbage_cif", "truncated_cif", "truncated_poscar", "empty", "blank"],
)
def test_unparseable_text(text, fmt, words):
    with pytest.raises(StructureError) as info:
        structure_from_string(text, fmt)
    for word in words:
        assert word in str(info.value)


def test_unparseable_cif_file(tmp_path, tiny_model):
    path = tmp_path / "broken.cif"
    path.write_text("data_x\n_this is not\n a crystal at all\n")
    with pytest.raises(StructureError, match=r"broken\.cif: could not parse"):
        goectp.predict(path, tiny_model, device="cpu")
    with pytest.raises(StructureError, match=r"broken\.cif: could not parse"):
        structure_from_file(str(path))


def test_empty_and_missing_files(tmp_path, tiny_model):
    empty = tmp_path / "empty.cif"
    empty.write_text("")
    with pytest.raises(StructureError, match=r"empty\.cif: file is empty"):
        goectp.predict(str(empty), tiny_model, device="cpu")
    with pytest.raises(StructureError, match=r"nowhere\.cif: no such file"):
        load_structures(tmp_path / "nowhere.cif")


def test_valid_cif_text_round_trips(tiny_model):
    text = rock_salt().to(fmt="cif")
    structure = structure_from_string(text, "cif")
    assert structure.composition.reduced_formula == "NaCl"
    assert goectp.predict(structure, tiny_model, device="cpu").shape == (1, 3, 3)


def test_empty_list_gives_an_empty_prediction(tiny_model):
    assert goectp.predict([], tiny_model, device="cpu").shape == (0, 3, 3)


def test_max_sites_can_be_raised():
    structure = rock_salt()
    structure.make_supercell([2, 2, 2])
    with pytest.raises(StructureError, match="16 sites, more than the limit of 10"):
        load_structures(structure, max_sites=10)
    assert len(load_structures(structure, max_sites=16)[0]) == 16
