"""The pre-checks read a POSCAR's symbols and counts, and an extxyz comment line's ``Properties``, the way pymatgen
and ASE will (third audit): symbols and counts over several lines, a second, spaced, quoted or escaped
``Properties`` key, a line that ``str.splitlines`` splits but the reader does not. Each bomb is refused from the text,
quickly and without allocating; each file the reader reads correctly still loads, with the site count it builds."""

from __future__ import annotations

import time
import tracemalloc
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymatgen.core import Structure

from goectp.extxyz_text import MAX_EXTXYZ_COMMENT_CHARS, extxyz_frame_problem, extxyz_properties
from goectp.poscar_text import poscar_sites, poscar_species_problem
from goectp.screening.pool import FilePool
from goectp.structure_checks import site_count_bounds
from goectp.structures import StructureError, load_structures, precheck_structure_text, structure_from_string

HEAD = "comment\n1.0\n4 0 0\n0 4 0\n0 0 4\n"
LATTICE = 'Lattice="4 0 0 0 4 0 0 0 4"'
BOMB_COLUMNS = "species:S:1:pos:R:3:x:R:100000000"
ATOMS = "Na 0 0 0\nCl 2 2 2\n"


def refused_fast(text: str, fmt: str, max_sites: int | None = 500) -> StructureError:
    """The pre-check's refusal of ``text``: within 1 s and 2 MB of allocations."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(StructureError) as err:
            precheck_structure_text(text, fmt, max_sites=max_sites, name="f")
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 1 and peak < 2_000_000, (elapsed, peak)
    return err.value


def pymatgen_sites(text: str) -> Structure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_str(text, fmt="poscar")


# ------------------------------------------------------------------------------------------------ POSCAR
@pytest.mark.parametrize("count", ["50000000", "1000000000"])
def test_a_poscar_bomb_with_symbols_and_counts_over_several_lines_is_refused_before_pymatgen(count, tmp_path):
    bomb = HEAD + f"Na\nCl\n{count}\n1\nDirect\n0 0 0\n0.5 0.5 0.5\n"  # pymatgen built a list of `count` symbols
    err = refused_fast(bomb, "poscar")
    assert err.code == "too_large" and f"{int(count) + 1} sites, more than the limit of 500" in str(err)
    assert site_count_bounds(bomb, "poscar") == (int(count) + 1,) * 2
    path = tmp_path / "POSCAR"
    path.write_text(bomb)
    with pytest.raises(StructureError, match=r"POSCAR: \d+ sites, more than the limit of 500") as err:
        load_structures(path)
    assert err.value.code == "too_large"


def test_poscar_symbols_and_counts_that_do_not_pair_are_refused_naming_their_lines(tmp_path):
    mismatch = HEAD + "Na Cl\nK\n1\n1\nDirect\n0 0 0\n0.5 0.5 0.5\n"  # pymatgen dropped K and read NaCl
    assert pymatgen_sites(mismatch).composition.reduced_formula == "NaCl"
    path = tmp_path / "POSCAR"
    path.write_text(mismatch)
    message = r"POSCAR: 3 element\(s\) on lines 6–7 \(Na Cl K\) but 2 count\(s\) on lines 8–9"
    with pytest.raises(StructureError, match=message) as err:
        load_structures(path)
    assert err.value.code == "unparseable"
    more_counts = HEAD + "Na\nCl\n1 1\n1\nDirect\n0 0 0\n0.5 0.5 0.5\n0 0.5 0\n"  # pymatgen: IndexError
    assert "2 element(s) on lines 6–7 (Na Cl) but 3 count(s) on lines 8–9" in poscar_species_problem(more_counts)
    one_line = HEAD + "Na Cl\n2\nDirect\n0 0 0\n0.5 0.5 0.5\n"  # the message the first audit's test expects
    assert poscar_species_problem(one_line) == "2 element(s) on line 6 (Na Cl) but 1 count(s) on line 7"
    shifted = "\n\n" + mismatch.split("\n", 1)[1]  # pymatgen: an empty comment, the next block; lines as in the file
    assert "on lines 7–8 (Na Cl K) but 2 count(s) on lines 9–10" in poscar_species_problem(shifted)
    err = refused_fast(mismatch, "poscar")
    assert err.code == "unparseable"


def test_negative_poscar_counts_are_refused():
    hiding = HEAD + "Na Cl\n50000000 -49999999\nDirect\n0 0 0\n"  # sums to 1; pymatgen allocated 50 M first
    assert poscar_sites(hiding) == 50_000_000
    assert refused_fast(hiding, "poscar").code == "too_large"
    err = refused_fast(HEAD + "Na Cl\n2 -1\nDirect\n0 0 0\n", "poscar", max_sites=None)
    assert err.code == "unparseable" and "a negative atom count (-1) on line 7" in str(err)


def test_poscar_lines_are_split_where_pymatgen_splits_them():
    form_feed = HEAD + "1\x0c50000000\nDirect\n0 0 0\n"  # one line to pymatgen (VASP 4 counts), two to splitlines
    assert refused_fast(form_feed, "poscar").code == "too_large"
    comments = HEAD + "Na Cl ! not # a comment to pymatgen: '!' is\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n"
    assert "4 element(s) on line 6 (Na Cl ! not)" in poscar_species_problem(comments)
    after_blank = HEAD + "Na\n1\nDirect\n0 0 0\n\n" + "Cl\n" * 30  # velocities etc. after a blank line: not read
    assert poscar_sites(after_blank) == 1 and not poscar_species_problem(after_blank)


VALID_POSCARS = {
    "vasp5": HEAD + "Na Cl\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n",
    "vasp4_names_on_coordinates": HEAD + "1 1\nDirect\n0 0 0 Na\n0.5 0.5 0.5 Cl\n",
    "two_symbol_lines": HEAD + "Na\nCl\n2\n2\nDirect\n0 0 0\n0.5 0 0\n0.25 0.5 0.5\n0.75 0.5 0.5\n",
    "three_symbol_lines": HEAD + "Na Cl\nK\nBr\n1 1\n1\n1\nDirect\n0 0 0\n0.5 0 0\n0 0.5 0.5\n0.5 0.5 0.5\n",
    "vasp6_potcar_symbols": HEAD + "Mg_pv/f474ac0d O/7ad87\n2 2\nDirect\n0 0 0\n0.5 0.5 0\n0.5 0 0\n0 0.5 0\n",
    "comments_and_crlf": (HEAD + "Na Cl # two\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n").replace("\n", "\r\n"),
    "leading_blank_lines": "\n\n" + HEAD.split("\n", 1)[1] + "Na Cl\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n",
    "selective_dynamics": HEAD + "Na\nCl\n1\n1\nSelective dynamics\nDirect\n0 0 0 T T F\n0.5 0.5 0.5 F F F\n",
}


@pytest.mark.parametrize("name", sorted(VALID_POSCARS))
def test_valid_poscars_load_with_the_site_count_pymatgen_builds(name):
    text = VALID_POSCARS[name]
    expected = pymatgen_sites(text)
    assert site_count_bounds(text, "poscar") == (len(expected), len(expected))
    assert poscar_species_problem(text) == ""
    loaded = structure_from_string(text, "poscar", max_sites=500)
    assert len(loaded) == len(expected) and loaded.composition == expected.composition


SYMBOLS = st.sampled_from(["Na", "Cl", "K", "O", "Mg_pv/f47", "Ti_sv", "# c", "1", "Xx"])
COUNTS = st.sampled_from(["1", "2", "0", "+1", "x", "-1", "3 # c"])


@st.composite
def poscars(draw) -> str:
    lines = [draw(st.sampled_from(["c", "", "# c"])), "1.0", "4 0 0", "0 4 0", "0 0 4"]
    lines += [" ".join(draw(st.lists(SYMBOLS, min_size=1, max_size=3))) for _ in range(draw(st.integers(0, 3)))]
    lines += [" ".join(draw(st.lists(COUNTS, min_size=1, max_size=3))) for _ in range(draw(st.integers(1, 3)))]
    lines.append(draw(st.sampled_from(["Direct", "Cartesian", "junk"])))
    lines += [f"0.{i} 0.{i} 0.{i}" for i in range(draw(st.integers(0, 8)))]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", "  ", "# x", "\x0c"])))
    return draw(st.sampled_from(["", "\n\n"])) + draw(st.sampled_from(["\n", "\r\n"])).join(lines) + "\n"


@st.composite
def readable_poscars(draw) -> str:
    """POSCARs laid out as pymatgen reads them (symbol lines, as many count lines, a coordinate per site), with
    comments, CRLF, VASP 6 symbols, selective dynamics and names after the coordinates: most of these load, unlike
    most of :func:`poscars`."""
    plain = st.sampled_from(["Na", "Cl", "K", "O"])
    first = st.lists(st.sampled_from(["Na", "Cl", "K", "O", "Mg_pv/f47", "Ti_sv"]), min_size=1, max_size=3)
    symbols = [
        draw(first if i == 0 else st.lists(plain, min_size=1, max_size=3)) for i in range(draw(st.integers(0, 3)))
    ]
    counts = [[draw(st.integers(1, 3)) for _ in row] for row in symbols] or [
        draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))  # VASP 4: counts only
    ]
    comment = st.sampled_from(["", "", " # c"])
    head = draw(st.sampled_from(["c", "# c", "\n"]))  # after a blank first block, pymatgen's comment line is empty
    lines = [head, "1.0", "4 0 0", "0 4 0", "0 0 4"]
    lines += [" ".join(row) + draw(comment) for row in symbols]
    lines += [" ".join(map(str, row)) + draw(comment) for row in counts]
    selective = draw(st.booleans())
    lines += ["Selective dynamics"] * selective + [draw(st.sampled_from(["Direct", "direct", "Cartesian"]))]
    flags = " T T F" if selective else ""
    total = sum(map(sum, counts)) + draw(st.sampled_from([0, 0, 1]))  # a line more than the sites: ignored
    lines += [f"0.{i % 10} 0.{i % 9} 0.{i % 8}{flags}" + draw(st.sampled_from(["", " Na"])) for i in range(total)]
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + "\n"


def test_the_poscar_site_count_is_what_pymatgen_builds_on_generated_files():
    """On every generated file pymatgen reads, the pre-check counts the sites it builds. Of :func:`poscars` alone
    pymatgen reads about 3 %; with :func:`readable_poscars` about half of the examples are compared."""
    compared = []

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(poscars(), readable_poscars()))
    def check(text):
        try:
            built = len(pymatgen_sites(text))
        except Exception:  # pymatgen refuses most hostile files: the pre-check need not
            return
        if not poscar_species_problem(text):  # else a mismatch pymatgen read silently: refused
            assert poscar_sites(text) == built, text
            compared.append(built)

    check()
    assert len(compared) >= 75 and len(set(compared)) >= 5, compared


# ------------------------------------------------------------------------------------------------ extxyz
EXTXYZ_BOMBS = {
    "second_key": f"{LATTICE} Properties=species:S:1:pos:R:3 Properties={BOMB_COLUMNS}",  # ASE uses the last
    "spaces_around_equals": f"{LATTICE} Properties = {BOMB_COLUMNS}",
    "quoted_key": f'{LATTICE} "Properties"={BOMB_COLUMNS}',
    "escaped_key": f"{LATTICE} Prop\\erties={BOMB_COLUMNS}",
    "braced_value": f"{LATTICE} Properties={{{BOMB_COLUMNS}}}",
    "tab": f"{LATTICE}\tProperties={BOMB_COLUMNS}",
    "json_value": f'{LATTICE} Properties="_JSON \\"{BOMB_COLUMNS}\\""',
    "empty_value_then_word": f'{LATTICE} Properties="" {BOMB_COLUMNS}',  # ASE appends the next word to the value
    "form_feed": f"{LATTICE}\x0cProperties={BOMB_COLUMNS}",  # one line to ASE, two to str.splitlines
    "next_line_separator": f"{LATTICE}\x85Properties={BOMB_COLUMNS}",
}


@pytest.mark.parametrize("name", sorted(EXTXYZ_BOMBS))
def test_extxyz_properties_are_read_as_ase_reads_them_and_a_bomb_is_refused(name, tmp_path):
    import ase.io.extxyz  # noqa: F401 - imported before the timing, as a reader of the file would have

    text = f"2\n{EXTXYZ_BOMBS[name]}\n{ATOMS}"  # each made ASE allocate until MemoryError (3 GB)
    err = refused_fast(text, "extxyz")
    assert err.code == "unparseable" and "line 2: Properties declares 100,000,004 columns per atom" in str(err)
    path = tmp_path / "bomb.xyz"
    path.write_text(text, newline="")
    with pytest.raises(StructureError, match="bomb.xyz: line 2: Properties declares 100,000,004 columns"):
        load_structures(path)
    pool = tmp_path / "pool"  # a screen refuses it from its text too
    pool.mkdir()
    (pool / "bomb.xyz").write_text(text, newline="")
    (rejected,) = list(FilePool(pool))
    assert "100,000,004 columns per atom" in rejected["reject_reason"]


EXTXYZ_VALID = {
    "plain": f'{LATTICE} Properties=species:S:1:pos:R:3 pbc="T T T"',
    "quoted_value": f'{LATTICE} Properties="species:S:1:pos:R:3"',
    "upper_case_key_is_not_properties_to_ase": f"{LATTICE} PROPERTIES=species:S:1:pos:R:100000000",
    "last_key_wins": f"{LATTICE} Properties={BOMB_COLUMNS} Properties=species:S:1:pos:R:3",
    "no_properties": LATTICE,
    "properties_inside_a_value": f'{LATTICE} note="Properties={BOMB_COLUMNS}"',
}


@pytest.mark.parametrize("name", sorted(EXTXYZ_VALID))
def test_extxyz_comment_lines_ase_reads_within_bounds_still_load(name):
    text = f"2\n{EXTXYZ_VALID[name]}\n{ATOMS}"
    assert extxyz_frame_problem(text) == ""
    assert structure_from_string(text, "extxyz", max_sites=500).composition.reduced_formula == "NaCl"


def test_an_extxyz_comment_line_longer_than_the_limit_is_refused_before_ase_parses_it():
    text = f"2\n{LATTICE} Properties=species:S:1:pos:R:3" + " a=1" * 250_000 + f"\n{ATOMS}"  # ASE: 3 s
    err = refused_fast(text, "extxyz")
    assert f"line 2: a comment line of {len(text.split(chr(10))[1]):,} characters" in str(err)
    assert f"more than the limit of {MAX_EXTXYZ_COMMENT_CHARS:,}" in str(err)
    hard = f"2\n{LATTICE} Prop\\erties=species:S:1:pos:R:3" + ' x="a\\"' * 14_000 + f"\n{ATOMS}"  # ASE's own parser
    assert len(hard.split("\n")[1]) < MAX_EXTXYZ_COMMENT_CHARS
    start = time.perf_counter()
    assert extxyz_frame_problem(hard) == ""
    assert time.perf_counter() - start < 1


def test_a_multi_frame_text_is_refused_without_parsing_its_comment_lines(monkeypatch):
    import goectp.extxyz_text as checks

    frames = f"2\n{LATTICE} Prop\\erties=species:S:1:pos:R:3\n{ATOMS}" * 2000
    assert extxyz_frame_problem(frames) == ""  # a screen reads every frame: each comment line is checked
    monkeypatch.setattr(checks, "_extxyz_comment_problem", lambda comment: pytest.fail("a comment line was read"))
    with pytest.raises(StructureError, match="2000 frames: one structure per file"):
        precheck_structure_text(frames, "extxyz")


KEYS = st.sampled_from(
    ["Properties", "Lattice", "a", '"Properties"', "Prop\\erties", "PROPERTIES", "Prop'erties'", "{Properties}"]
)
RAW = st.sampled_from(
    ["species:S:1:pos:R:3", "s:S:1:x:R:7", "4 0 0 0 4 0 0 0 4", "T T T", "1", "T", "", '_JSON "s:S:1"', "_JSON [1]"]
    + ["s:S:1, p:R:3", "a=b", "x:R:2 ", "{s:S:1}", "'s:S:1'", "s:S:1\\"]
)
QUOTES = st.sampled_from(['""', "''", "{}", "[]", "", '"', "{"])
SEPARATORS = st.sampled_from([" ", "  ", "\t", " = ", "=", "= ", " =", "", "\x0c"])


@st.composite
def comments(draw) -> str:
    pairs = []
    for _ in range(draw(st.integers(0, 4))):
        key, sep, quote, raw = draw(KEYS), draw(SEPARATORS), draw(QUOTES), draw(RAW)
        pairs.append(key + sep + (quote[:1] + raw + quote[1:] if len(quote) == 2 else quote + raw))
    return "".join(pair + draw(st.sampled_from([" ", "\t", "  ", ""])) + " " for pair in pairs)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(comments())
def test_the_properties_read_from_generated_comment_lines_are_the_ones_ase_reads(comment):
    from ase.io.extxyz import key_val_str_to_dict

    try:
        expected = key_val_str_to_dict(comment.strip()).get("Properties")
    except Exception:
        expected = None
    found = extxyz_properties(comment)
    assert (found if isinstance(found, str) else None) == (expected if isinstance(expected, str) else None), comment
