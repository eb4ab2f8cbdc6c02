"""CIFs whose atoms or symmetry the pre-check's count missed while pymatgen built them (third audit): non-ASCII
characters in a key, text after a text field's closing ``;``, magCIF operations, a ``#`` inside a quoted value, an
operation pymatgen reads otherwise, an operation whose number stalled the check, a cell no crystal has. The count
now reads the file as pymatgen does: on small files it equals the sites pymatgen builds; large ones are refused
before the parse, in milliseconds."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Structure
from pymatgen.io.cif import CifParser

from goectp.cif_text import cif_operation_problem, cif_tokens, magnetic_group_operations, read_cif_summary
from goectp.structures import StructureError, precheck_structure_text, structure_from_string

CELL = """data_x
_cell_length_a 40
_cell_length_b 40
_cell_length_c 40
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
"""
KEYS = ["_atom_site_label", "_atom_site_type_symbol", "_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z"]


def atom_rows(n: int, seed: int = 0) -> str:
    """``n`` O atoms at general positions (no symmetry operation maps one onto another)."""
    xyz = np.random.default_rng(seed).uniform(0.02, 0.48, (n, 3))
    return "\n".join(f"O{i} O {x:.5f} {y:.5f} {z:.5f}" for i, (x, y, z) in enumerate(xyz)) + "\n"


def pymatgen_sites(text: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return len(Structure.from_str(text, fmt="cif"))


P4MMM = "_symmetry_space_group_name_H-M 'P 4/m m m'\n"  # 16 operations: cheap for pymatgen to expand
ATOMS = "loop_\n" + "\n".join(KEYS) + "\n"
#: atom loops the old count missed (it found no or one atom) and pymatgen reads in full
HIDDEN_ATOMS = {
    "non-ASCII in the keys": ATOMS.replace("fract_", "fr\u00e9act_"),
    "keys on a text field's closing line": "_publ_section_title\n;\nA title\n; " + ATOMS.replace("\n", " "),
    "no-break space before a comment": ATOMS.replace("_atom_site_label\n", "_atom_site_label\u00a0# x 'y\n"),
    "a '#' inside a quoted value": ATOMS + "'O9 #' loop_ _x\nO 0.31 0.17 0.43\n",
    "a key after an unclosed quote": ATOMS.replace("_atom_site_label", "'_atom_site_label"),
    "loop_ with a suffix": ATOMS.replace("loop_", "loop_atoms"),
    "a value starting with stop_": ATOMS + "stop_9 O 0.31 0.17 0.43\n",
}


@pytest.mark.parametrize("case", sorted(HIDDEN_ATOMS))
def test_atoms_are_counted_as_pymatgen_reads_them(case):
    text = CELL + P4MMM + HIDDEN_ATOMS[case] + atom_rows(4)
    rows = 5 if case in ("a '#' inside a quoted value", "a value starting with stop_") else 4
    summary = read_cif_summary(text)
    assert summary.bounds == (rows, rows * 16) == (rows, pymatgen_sites(text))


def test_non_ascii_keys_no_longer_hide_a_symmetry_expansion():
    """The audit's files: 4 rows in F m -3 m gave pymatgen 768 sites; 100 rows took it 32 s for 19,104."""
    head = CELL + "_symmetry_space_group_name_H-M 'F m -3 m'\n" + HIDDEN_ATOMS["non-ASCII in the keys"]
    assert read_cif_summary(head + atom_rows(4)).bounds == (4, 768) == (4, pymatgen_sites(head + atom_rows(4)))
    start = time.perf_counter()
    with pytest.raises(StructureError, match="would generate up to 19,200 sites") as err:
        structure_from_string(head + atom_rows(100), "cif", max_sites=500)
    assert err.value.code == "too_large" and time.perf_counter() - start < 1
    with pytest.raises(StructureError, match="at least 3000 sites"):
        precheck_structure_text(head + atom_rows(3000), "cif", max_sites=500)


@pytest.mark.parametrize(
    "symmetry",
    [
        "_symmetry_space_group_name_H_M 'P 4/m m m'",  # pymatgen reads this spelling too
        "loop_\n_SYMMETRY_EQUIV_POS_AS_XYZ\n'x, y, z'\n" + P4MMM,  # not pymatgen's key: it uses the name
    ],
)
def test_the_space_group_pymatgen_uses_is_the_one_counted(symmetry):
    text = CELL + symmetry + "\n" + ATOMS + atom_rows(4)
    assert read_cif_summary(text).bounds == (4, 64) == (4, pymatgen_sites(text))


def test_a_key_listed_twice_in_a_loop_takes_two_values_per_row():
    rows = atom_rows(4).splitlines()
    text = CELL + P4MMM + "loop_\n" + "\n".join(KEYS + KEYS) + f"\n{rows[0]} {rows[1]}\n{rows[2]} {rows[3]}\n"
    assert read_cif_summary(text).bounds == (4, 64) == (4, pymatgen_sites(text))  # 2 rows of 10 values: 4 atoms


def pymatgen_rows(text: str) -> int:
    """The atom rows pymatgen's parser goes through (its ``_atom_site_label``, after its Pauling-file fixes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return len(CifParser.from_str(text).as_dict()["x"]["_atom_site_label"])


def test_rows_from_a_plain_label_or_a_split_element_symbol_are_counted():
    """A plain ``_atom_site_label`` value is read character by character; a type symbol ``'x1Aa1 + x1Ab1 …'``
    becomes a row per part (600 took pymatgen 1.6 s, all on one site): both are rows the parser goes through."""
    plain = CELL + "_atom_site_label " + "O" * 700 + "".join(f"\n_atom_site_fract_{c} " + "0" * 700 for c in "xyz")
    names = [a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWX" for b in "abcdefghijklmnopqrstuvwxy"]  # 600
    split = CELL + ATOMS + "_atom_site_occupancy\nNa1 '" + " + ".join(f"x1{n}1" for n in names) + "' 0.1 0.2 0.3 1\n"
    for text, rows in ((plain, 700), (split, 600)):
        assert read_cif_summary(text).sites == rows == pymatgen_rows(text)
        with pytest.raises(StructureError, match=f"at least {rows} sites"):
            precheck_structure_text(text, "cif", max_sites=500)


def test_data_at_a_line_start_in_a_text_field_starts_a_block():
    text = CELL + "_publ_section_title\n;\ndata_hidden\n" + ATOMS + atom_rows(3000) + ";\n"
    assert read_cif_summary(text).sites == 3000
    with pytest.raises(StructureError, match="2 data blocks|at least 3000 sites"):
        precheck_structure_text(text, "cif", max_sites=500)


MAGNETIC = """loop_
_space_group_symop_magn_operation.id
_space_group_symop_magn_operation.xyz
{operations}
loop_
_space_group_symop_magn_centering.id
_space_group_symop_magn_centering.xyz
{centrings}
"""


def magnetic_cif(operations: int, centrings: int, rows: int, key: str = "_space_group_symop_magn_operation.xyz") -> str:
    ops = "\n".join(f"{k + 1} x+{k}/{2 * operations},y,z,{'+1' if k % 2 else '-1'}" for k in range(operations))
    cen = "\n".join(f"{k + 1} x,y+{k}/{centrings},z,+1" for k in range(centrings))
    block = MAGNETIC.format(operations=ops, centrings=cen).replace("_space_group_symop_magn_operation.xyz", key)
    return CELL + block + ATOMS + atom_rows(rows)


@pytest.mark.parametrize(
    "key", ["_space_group_symop_magn_operation.xyz", "_space_group_symop_magn_operation_xyz"]
)  # pymatgen renames the older spellings to the final one
def test_magnetic_operations_times_centrings_are_counted(key):
    text = magnetic_cif(3, 2, 4, key)
    assert read_cif_summary(text).bounds == (4, 24) == (4, pymatgen_sites(text))


def test_a_large_magnetic_expansion_or_a_non_symmetry_is_refused():
    """The audit's magn.mcif listed 100 operations (40 rows: 4,000 sites) that the count did not see."""
    assert read_cif_summary(magnetic_cif(100, 1, 40)).bounds == (40, 4000)
    start = time.perf_counter()
    with pytest.raises(StructureError, match="would generate up to 40,000 sites") as err:
        structure_from_string(magnetic_cif(100, 10, 40), "cif", max_sites=500)
    assert err.value.code == "too_large" and time.perf_counter() - start < 1
    bad = magnetic_cif(2, 1, 2).replace("2 x+1/4,y,z,+1", "2 2*x,y,z,+1")
    with pytest.raises(StructureError, match=r"'2\*x,y,z,\+1' is not a symmetry operation") as err:
        structure_from_string(bad, "cif", max_sites=500)
    assert err.value.code == "unparseable"
    assert "cannot be read" in cif_operation_problem(["x,y,z,+2"])
    assert cif_operation_problem(["-x,-y,-z,-1", "x+1/2,y,z,+1"]) == ""


def test_a_magnetic_group_named_by_bns_symbol_or_number_is_bounded():
    text = CELL + "_space_group_magn.name_BNS 'P_S-1'\n" + ATOMS + atom_rows(4)
    assert read_cif_summary(text).bounds == (4, 16) == (4, pymatgen_sites(text))
    assert magnetic_group_operations("225.119") == magnetic_group_operations("Fm-3m1'") == 384
    assert magnetic_group_operations("P-1'") == magnetic_group_operations("P -1 1'") == 4


def test_an_operation_pymatgen_reads_otherwise_is_refused():
    """pymatgen reads ``.0y`` as a failed number and drops the list for the space group named (192 operations
    where the count saw 1); ``-1*y`` it reads as ``+y``."""
    text = CELL + "_symmetry_space_group_name_H-M 'F m -3 m'\nloop_\n_symmetry_equiv_pos_as_xyz\n'x+.0y, y, z'\n"
    with pytest.raises(StructureError, match=r"pymatgen reads 'x\+\.0y' otherwise") as err:
        precheck_structure_text(text + ATOMS + atom_rows(4), "cif", max_sites=500)
    assert err.value.code == "unparseable"
    assert "pymatgen reads '-1*y' otherwise" in cif_operation_problem(["x, -1*y, z"])
    assert cif_operation_problem(["x, y, z+0.25", "-y+1/2, x-y, z+1/3", "1/2+x, .5-y, -z"]) == ""


def test_a_space_group_number_of_thousands_of_digits_is_the_worst_case_not_a_crash():
    """``int()`` refuses 4,300 digits: the pre-check raised a bare ValueError on such a group number."""
    text = CELL + "_space_group_IT_number " + "1" * 5000 + "\n" + ATOMS + atom_rows(2)
    assert read_cif_summary(text).bounds == (2, 2 * 192)


@pytest.mark.parametrize("number", ["1e99999999", "1e9999999", "1" * 100, "inf", "1_0", "1.5e3"])
def test_an_operation_number_that_stalled_the_check_is_refused_at_once(number):
    start = time.perf_counter()
    problem = cif_operation_problem([f"-y, x, z+{number}"])
    assert time.perf_counter() - start < 1
    assert "cannot be read" in problem and "is not an integer, a fraction n/m or a decimal" in problem


def test_an_operation_number_in_a_file_is_refused_before_the_parse():
    text = CELL + "loop_\n_symmetry_equiv_pos_as_xyz\n'x, y, z'\n'-y, x, z+1e99999999'\n" + ATOMS + atom_rows(2)
    start = time.perf_counter()
    with pytest.raises(StructureError, match=r"'1e99999999' is not an integer") as err:
        structure_from_string(text, "cif", max_sites=500)
    assert err.value.code == "unparseable" and time.perf_counter() - start < 1


@pytest.mark.parametrize(
    "cell, words",
    [
        ({"_cell_length_a": "-4.0"}, "_cell_length_a '-4.0': a cell length must be a positive"),
        ({"_cell_length_c": "0"}, "_cell_length_c '0'"),
        ({"_cell_length_b": "nan"}, "_cell_length_b 'nan'"),
        ({"_cell_length_b": "1e999"}, "_cell_length_b '1e999'"),
        ({"_cell_angle_beta": "180(2)"}, "_cell_angle_beta '180(2)': a cell angle must be between 0 and 180"),
        ({"_cell_angle_alpha": "170", "_cell_angle_beta": "170", "_cell_angle_gamma": "170"}, "close no cell"),
        ({"_cell_length_a": "5.64(2)", "_cell_angle_gamma": "120"}, ""),
    ],
)
def test_a_cell_no_crystal_has_is_named(cell, words):
    """``CifSummary.problem`` (pymatgen read ``-4.0`` as a mirror-image cell)."""
    text = CELL
    for key, value in cell.items():
        text = text.replace(f"{key} {'40' if 'length' in key else '90'}\n", f"{key} {value}\n")
    problem = read_cif_summary(text + ATOMS + atom_rows(2)).problem
    assert (words in problem) if words else problem == ""


@pytest.mark.parametrize(
    "filler, words",
    [
        ("_title " + "'a " * 20_000, "quotes that never close would make pymatgen rescan 1,200,000,000 characters"),
        (" \n" * 40_000, "a run of 40,001 blank lines would make pymatgen rescan"),
        ("_title " + "'a " * 2_000 + "\n" + " \n" * 2_000, ""),
    ],
    ids=["unclosed quotes", "blank lines", "a few of each"],
)
def test_text_that_would_stall_pymatgen_is_named(filler, words):
    """pymatgen's tokeniser rescans the rest of a line after each quote that never closes (60 kB of ``'a `` took it
    8 s, 600 kB would take 13 min), its block split each run of blank lines from each of its lines (40,000: 5 s)."""
    start = time.perf_counter()
    problem = read_cif_summary(CELL + filler + "\n" + ATOMS + atom_rows(2)).problem
    assert time.perf_counter() - start < 1 and ((words in problem) if words else problem == "")


def test_the_tokens_drop_non_ascii_and_read_on_after_a_text_field():
    text = "_a\n;\ntext\n; loop_ _b\u00e9c 1\n_d 'x # y' # gone\n\u00e9;a field\n;\n_e 2\n"
    assert cif_tokens(text) == ["_a", ";", "loop_", "_bc", "1", "_d", "x", ";", "_e", "2"]


def test_the_count_is_linear_in_hostile_lines():
    lines = ["'x " * 100_000, "\"y 'z " * 50_000, "# \u00e9" * 50_000, ";\n" * 20_000, "a'b'c " * 50_000]
    text = "data_x\n" + "\n".join(lines) + "\n" + ATOMS + atom_rows(10)
    start = time.perf_counter()
    summary = read_cif_summary(text)
    assert time.perf_counter() - start < 2 and summary.sites == 10


def test_the_shipped_examples_pass_unchanged():
    examples = sorted((Path(__file__).resolve().parents[1] / "assets" / "examples").glob("*.cif"))
    assert len(examples) == 10
    for path in examples:
        text = path.read_text()
        summary = read_cif_summary(text)
        assert precheck_structure_text(text, "cif", max_sites=500, name=path.name) == summary.sites > 0
        assert summary.blocks == 1 and summary.problem == "" and cif_operation_problem(summary.operation_texts) == ""
        assert pymatgen_sites(text) <= summary.bounds[1]


def test_a_file_whose_cif_problem_is_named_is_refused_before_pymatgen(tmp_path, monkeypatch):
    """The summary's problem refuses the file through the pre-check (a negative cell length, stalling text), naming
    the file and the problem; pymatgen is never called."""
    import pymatgen.io.cif

    from goectp.structures import StructureError, load_structures

    monkeypatch.setattr(pymatgen.io.cif.CifParser, "__init__", lambda *a, **k: pytest.fail("pymatgen parsed it"))
    cases = {
        "mirror.cif": CELL.replace("_cell_length_a 40\n", "_cell_length_a -4.0\n") + ATOMS + atom_rows(2),
        "stall.cif": CELL + " \n" * 40_000 + "\n" + ATOMS + atom_rows(2),
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(StructureError) as info:
            load_structures(tmp_path / name)
        assert name in str(info.value) and ("length" in str(info.value) or "blank lines" in str(info.value))


def test_cifs_pymatgen_writes_for_real_crystals_pass_the_precheck(shared_data_dir):
    """No false alarm on ordinary files: CIFs of 40 crystals of the shared data set, written by pymatgen in P1 and
    with their symmetry operations (conventional cell), pass the pre-check; its site bounds hold what pymatgen reads."""
    from pymatgen.io.cif import CifWriter

    from goectp.data.dielectric import read_dielectric_json
    from goectp.structure_checks import site_count_bounds
    from goectp.structures import precheck_structure_text, structure_from_string

    records = read_dielectric_json(shared_data_dir / "mp_dielectric_open.json.gz")
    for i in np.random.default_rng(0).choice(len(records), 40, replace=False):
        structure = records[i].structure
        for symprec in (None, 0.01):
            text = str(CifWriter(structure, symprec=symprec))
            precheck_structure_text(text, "cif", name=f"{records[i].id}.cif")
            parsed = structure_from_string(text, "cif")
            low, high = site_count_bounds(text, "cif")
            assert low <= len(parsed) <= high, (records[i].id, symprec, low, len(parsed), high)
            if symprec is None:
                assert len(parsed) == len(structure)
