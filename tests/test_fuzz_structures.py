"""Fuzzing (issue 32): malformed POSCAR, CIF, extxyz and JSON texts — huge, NaN and infinite numbers, absurd cells,
wrong counts, comments inside loops, junk lines — thrown at the readers, ``goectp.predict`` on a tiny model and the
explorer's upload path. Every text must give a structure (then a finite prediction) or a one-line
``StructureError``, within the worker's memory (1 GB) and time (30 s) limits: a text that exceeds them ends as
``out_of_memory`` / ``timeout``, which fails the test. About 20 s in all (25 examples per format; set
``GOECTP_FUZZ_EXAMPLES`` for a longer hunt).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import goectp
from goectp.isolation import IsolatedPool, load_text_checked
from goectp.structures import StructureError

LIMIT_CODES = {"out_of_memory", "timeout", "worker_died"}
FUZZ = settings(
    max_examples=int(os.environ.get("GOECTP_FUZZ_EXAMPLES", "25")),  # more for a longer hunt
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def tiny_model() -> goectp.GoeCTP:
    return goectp.build_model("goectp", hidden=16)


@pytest.fixture(scope="module")
def pool() -> IsolatedPool:
    workers = IsolatedPool(1, memory_mb=1024, seconds=30)
    yield workers
    workers.close()


# ------------------------------------------------------------------------------------------------ strategies
HOSTILE_NUMBERS = [0, -0.0, 1e6, 1e15, -1e15, 1e308, -1e308, 5000, 499, 0.2, 1e-9, 3.7, "nan", "inf", "-inf", "1e400"]
number = st.one_of(
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from(HOSTILE_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**9), 10**9),
)
small = st.floats(0, 1, allow_nan=False)
coordinate = st.one_of(small, small, number)
junk = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(["", "#", ";", "loop_", "_atom_site_fract_x", "'", '"', "data_", "\x00", "1 2 3 4 5 6 7"]),
)
ELEMENTS = ["Na", "Cl", "O", "Ti", "H", "Xx", "D", "Uue", "na", "1"]


def with_junk(draw, lines: list[str]) -> str:
    """``lines`` with up to two junk lines inserted and maybe one dropped."""
    for _ in range(draw(st.integers(0, 2))):
        lines.insert(draw(st.integers(0, len(lines))), draw(junk))
    if lines and draw(st.booleans()) and draw(st.booleans()):
        lines.pop(draw(st.integers(0, len(lines) - 1)))
    return "\n".join(lines) + "\n"


def lattice_rows(draw) -> list[list]:
    base = draw(st.sampled_from([4.0, 3.0, 5.6]))
    rows = [[base if i == j else 0.0 for j in range(3)] for i in range(3)]
    for _ in range(draw(st.integers(0, 2))):  # a few entries replaced by hostile ones
        rows[draw(st.integers(0, 2))][draw(st.integers(0, 2))] = draw(number)
    return rows


@st.composite
def poscars(draw) -> str:
    species = draw(st.lists(st.sampled_from(ELEMENTS), min_size=1, max_size=3))
    counts = [draw(st.one_of(st.integers(1, 3), st.integers(-2, 0), st.sampled_from([10**6, 10**12]))) for _ in species]
    n = max(0, min(sum(c for c in counts if c > 0), 8) + draw(st.integers(-1, 1)))
    lines = ["fuzz", str(draw(st.one_of(st.just(1.0), number)))]
    lines += [" ".join(str(v) for v in row) for row in lattice_rows(draw)]
    lines += [" ".join(species), " ".join(map(str, counts)), draw(st.sampled_from(["Direct", "Cartesian", "x"]))]
    lines += [" ".join(str(draw(coordinate)) for _ in range(3)) for _ in range(n)]
    return with_junk(draw, lines)


CIF_SYMMETRY = [
    "",
    "_symmetry_space_group_name_H-M 'P 1'",
    "_symmetry_space_group_name_H-M 'F m -3 m'",
    "_space_group_IT_number 225",
    "_space_group_IT_number 9999",
    "_symmetry_space_group_name_H-M 'Q z'",
    "loop_ _symmetry_equiv_pos_as_xyz 'x, y, z' '-x, -y, -z'",
    "loop_\n_symmetry_equiv_pos_as_xyz\n'x, y, z'\n'-x+1/2, y, z' # op",
]
CIF_KEYS = [
    "_atom_site_label",
    "_atom_site_type_symbol",
    "_atom_site_fract_x",
    "_atom_site_fract_y",
    "_atom_site_fract_z",
]


@st.composite
def cifs(draw) -> str:
    lines = ["data_fuzz"]
    for key, default in zip(("a", "b", "c", "alpha", "beta", "gamma"), (4, 4, 4, 90, 90, 90)):
        lines.append(f"_cell_length_{key} {draw(st.one_of(st.just(default), number))}" if len(key) == 1 else "")
        if len(key) > 1:
            lines[-1] = f"_cell_angle_{key} {draw(st.one_of(st.just(default), number))}"
    lines.append(draw(st.sampled_from(CIF_SYMMETRY)))
    header = draw(st.sampled_from(["loop_\n" + "\n".join(CIF_KEYS), "loop_ # atoms\n" + "\n# c\n".join(CIF_KEYS)]))
    header = draw(st.sampled_from([header, "loop_ " + " ".join(CIF_KEYS)]))
    n = draw(st.one_of(st.integers(0, 6), st.just(600)))
    rows = []
    for i in range(n):
        el = draw(st.sampled_from(ELEMENTS)) if i < 6 else "Na"
        xyz = [draw(coordinate) for _ in range(3)] if i < 6 else [i / 600, 0.5, 0.5]
        rows.append(f"{el}{i} {el} " + " ".join(map(str, xyz)) + draw(st.sampled_from(["", " # x", " extra"])))
    return with_junk(draw, [*lines, header, *rows])


@st.composite
def extxyzs(draw) -> str:
    n = draw(st.integers(1, 4))
    count = draw(st.one_of(st.just(str(n)), st.integers(-5, 10**9).map(str), junk))
    lattice = " ".join(str(v) for row in lattice_rows(draw) for v in row)
    comment = draw(st.sampled_from([f'Lattice="{lattice}" Properties=species:S:1:pos:R:3 pbc="T T T"', "junk"]))
    atoms = [f"{draw(st.sampled_from(ELEMENTS))} " + " ".join(str(draw(number)) for _ in range(3)) for _ in range(n)]
    return with_junk(draw, [count, comment, *atoms])


@st.composite
def jsons(draw) -> str:
    sites = [
        {
            "species": [{"element": draw(st.sampled_from(ELEMENTS)), "occu": draw(st.one_of(st.just(1), number))}],
            "abc": [draw(coordinate) for _ in range(draw(st.sampled_from([3, 3, 2])))],
        }
        for _ in range(draw(st.integers(0, 4)))
    ]
    data = {"lattice": {"matrix": lattice_rows(draw)}, "sites": sites}
    if draw(st.booleans()) and draw(st.booleans()):
        data = draw(st.sampled_from([[], "x", {"sites": "x"}, {"lattice": 1, "sites": [1]}, {"@module": "os"}]))
    text = json.dumps(data, default=str)
    return text if draw(st.integers(0, 9)) else text[: draw(st.integers(0, len(text)))]


FORMATS = {"poscar": poscars(), "cif": cifs(), "extxyz": extxyzs(), "json": jsons()}
FILENAMES = {"poscar": "POSCAR", "cif": "fuzz.cif", "extxyz": "fuzz.extxyz", "json": "fuzz.json"}


# ------------------------------------------------------------------------------------------------ the checks
def read_and_predict(pool: IsolatedPool, model, text: str, fmt: str) -> None:
    """Parse and check in the bounded worker; predict on what passes. Anything else than a structure with a
    finite prediction or a one-line StructureError (within the limits) fails."""
    start = time.perf_counter()
    try:
        structure = pool.run(load_text_checked, text, fmt, 500, True, name=f"fuzz.{fmt}")
    except StructureError as exc:
        assert exc.code not in LIMIT_CODES, f"{exc} for {text[:300]!r}"
        assert "\n" not in str(exc).strip(), repr(str(exc))
        return
    assert time.perf_counter() - start < 30
    out = goectp.predict(structure, model, device="cpu")
    assert out.shape == (1, 3, 3) and np.all(np.isfinite(out)), text[:300]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_fuzzed_structure_texts_are_read_or_refused(fmt, pool, tiny_model):
    @FUZZ
    @given(FORMATS[fmt])
    def check(text: str) -> None:
        read_and_predict(pool, tiny_model, text, fmt)

    check()


@FUZZ
@given(st.sampled_from(sorted(FORMATS)).flatmap(lambda f: st.tuples(st.just(f), FORMATS[f])))
def test_fuzzed_uploads_get_a_structure_or_a_message(pool, case):
    from explorer.uploads import Prepared, prepare_upload

    fmt, text = case
    name = FILENAMES[fmt]
    try:
        prepared = pool.run(prepare_upload, text.encode("utf-8", "surrogatepass"), name, name=name)
    except StructureError as exc:  # only the limits end here: prepare_upload turns the rest into .error
        pytest.fail(f"{exc} for {text[:300]!r}")
    assert isinstance(prepared, Prepared)
    assert (prepared.structure is None) != (not prepared.error)
    if prepared.error:
        assert prepared.error.startswith(name) and "\n" not in prepared.error.strip()
    else:
        assert prepared.info["n_sites"] == len(prepared.structure) <= 200
