"""Files that a format's own reader would read wrongly or without bound (second audit): each is refused from its text,
before the parser, with a message naming the file and the problem."""

from __future__ import annotations

import gzip
import json
import time
from fractions import Fraction

import pytest

from goectp.cif_text import cif_operation_problem, cif_tokens, operation_matrix
from goectp.data.dielectric import load_json_file, read_dielectric_json
from goectp.screening.pool import FilePool
from goectp.structures import StructureError, load_structures

CIF = """data_NaCl
_cell_length_a 5.6
_cell_length_b 5.6
_cell_length_c 5.6
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
loop_
_symmetry_equiv_pos_site_id
_symmetry_equiv_pos_as_xyz
1 'x, y, z'
2 {op}
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Na1 Na 0 0 0
Cl1 Cl 0.5 0.5 0.5
"""
XYZ_FRAME = 'Lattice="5.6 0 0 0 5.6 0 0 0 5.6" Properties=species:S:1:pos:R:3 pbc="T T T"\nNa 0 0 0\nCl 2.8 2.8 2.8\n'


def test_the_cif_tokeniser_is_linear_in_a_line_of_unclosed_quotes():
    line = "data_x\n" + "'x " * 200_000  # each quote is closed by none: the old regex rescanned the rest of the line
    start = time.perf_counter()
    tokens = cif_tokens(line)
    assert time.perf_counter() - start < 2 and len(tokens) == 200_001
    assert cif_tokens("_a 'it''s' \"q\" 'x' # c\n") == ["_a", "'it''s'", '"q"', "'x'"]


def test_symmetry_operations_are_read_and_a_non_symmetry_is_refused(tmp_path):
    assert operation_matrix("'-x+1/2, y, z'") == [[-1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert operation_matrix("x-y,x,z+1/6") == [[1, -1, 0], [1, 0, 0], [0, 0, 1]]
    assert operation_matrix("1/2*x,y,z")[0][0] == Fraction(1, 2)
    assert cif_operation_problem(["x,y,z", "-y,x-y,z+1/3"]) == ""
    assert "not a symmetry operation" in cif_operation_problem(["2*x,y,z"])
    assert "cannot be read" in cif_operation_problem(["x,y"])
    good, bad = tmp_path / "good.cif", tmp_path / "bad.cif"
    good.write_text(CIF.format(op="'-x, -y, -z'"))
    bad.write_text(CIF.format(op="'2*x, y, z'"))
    assert len(load_structures(good)[0]) == 2
    with pytest.raises(StructureError, match=r"bad\.cif: .*2\*x, y, z.* is not a symmetry operation") as err:
        load_structures(bad)
    assert err.value.code == "unparseable"


def test_extxyz_columns_frames_and_counts_a_reader_would_allocate_are_refused(tmp_path):
    bomb = tmp_path / "bomb.xyz"  # 99 bytes that made ASE allocate 300 M columns per atom
    bomb.write_text('1\nLattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:300000000 pbc="T T T"\nNa 0 0 0\n')
    lying = tmp_path / "lying.xyz"  # a valid frame, then one that claims 1e15 atoms
    lying.write_text("2\n" + XYZ_FRAME + "999999999999999\n")
    two = tmp_path / "two.xyz"
    two.write_text(("2\n" + XYZ_FRAME) * 2)
    start = time.perf_counter()
    for path, message in (
        (bomb, "300,000,001 columns per atom"),
        (lying, "a frame of 999,999,999,999,999 atoms"),
        (two, "2 frames: one structure per file"),
    ):
        with pytest.raises(StructureError, match=f"{path.name}: .*{message}"):
            load_structures(path)
    assert time.perf_counter() - start < 5
    one = tmp_path / "one.xyz"
    one.write_text("2\n" + XYZ_FRAME)
    assert load_structures(one)[0].composition.reduced_formula == "NaCl"
    pool = tmp_path / "pool"  # a screen reads every frame, but refuses the bomb from its text
    pool.mkdir()
    (pool / "bomb.xyz").write_text(bomb.read_text())
    (pool / "two.xyz").write_text(two.read_text())
    rows = list(FilePool(pool))
    rejected = [r for r in rows if r.get("reject_code")]
    assert len(rows) == 3 and len(rejected) == 1 and "columns per atom" in rejected[0]["reject_reason"]


def test_a_poscar_naming_more_elements_than_it_counts_is_refused(tmp_path):
    path = tmp_path / "POSCAR"
    path.write_text("NaCl\n1.0\n5.6 0 0\n0 5.6 0\n0 0 5.6\nNa Cl\n2\nDirect\n0 0 0\n0.5 0.5 0.5\n")
    with pytest.raises(StructureError, match=r"POSCAR: 2 element\(s\) on line 6 \(Na Cl\) but 1 count\(s\) on line 7"):
        load_structures(path)


def test_a_file_of_another_format_is_refused_by_name_not_handed_to_a_reader(tmp_path):
    chgcar = tmp_path / "CHGCAR"  # pymatgen would allocate the 2000³ grid it declares
    chgcar.write_text("x\n1.0\n5 0 0\n0 5 0\n0 0 5\nNa\n1\nDirect\n0 0 0\n\n2000 2000 2000\n1 2 3\n")
    with pytest.raises(StructureError, match="CHGCAR: cannot tell the format; use .cif"):
        load_structures(chgcar)


def test_a_dataset_file_is_read_within_a_size_limit_and_nesting_is_an_error(tmp_path):
    bomb = tmp_path / "bomb.json.gz"
    with gzip.open(bomb, "wt") as f:
        f.write('{"a": "' + "x" * 2_000_000 + '"}')
    with pytest.raises(ValueError, match=r"bomb\.json\.gz: .*more than 1,000,000 bytes once decompressed"):
        load_json_file(bomb, max_bytes=1_000_000)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"deep\.json: .*nested too deeply"):
        read_dielectric_json(deep)
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"x": 1}))
    assert load_json_file(plain) == {"x": 1}


def test_a_failed_parse_quotes_what_the_reader_warned(tmp_path):
    path = tmp_path / "occupancy.cif"
    text = CIF.format(op="'-x, -y, -z'").replace("_atom_site_fract_z\n", "_atom_site_fract_z\n_atom_site_occupancy\n")
    path.write_text(text.replace("0 0 0\n", "0 0 0 1.5\n").replace("0.5 0.5 0.5\n", "0.5 0.5 0.5 1\n"))
    with pytest.raises(StructureError, match=r"occupancy\.cif: could not parse .*the reader warned: .*occupanc"):
        load_structures(path)


def test_a_pool_file_that_cannot_be_read_is_named_with_its_problem(tmp_path):
    from goectp.screening.pool import PoolError, open_pool

    deep, big, binary = tmp_path / "deep.json", tmp_path / "big.json", tmp_path / "binary.json"
    deep.write_text("[" + "[" * 100_000 + "]" * 100_000 + "]")
    big.write_text('[{"id": ' + "9" * 5000 + "}]")
    binary.write_bytes(b'[{"id": "\xff\xfe"}]')
    with pytest.raises(ValueError, match=r"deep\.json: element 0: nested too deeply"):
        list(open_pool(str(deep)))
    with pytest.raises(ValueError, match=r"big\.json: element 0: .*digits"):
        list(open_pool(str(big)))
    with pytest.raises(PoolError, match=r"binary\.json: not a readable JSON\(\.gz\) text file"):
        open_pool(str(binary))


def test_a_cif_with_two_data_blocks_is_refused_by_name(tmp_path):
    path = tmp_path / "two.cif"
    path.write_text(CIF.format(op="'-x, -y, -z'") + CIF.format(op="'-x, -y, -z'").replace("data_NaCl", "data_KCl"))
    with pytest.raises(StructureError, match=r"two\.cif: 2 data blocks: one structure per file"):
        load_structures(path)
