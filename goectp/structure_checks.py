"""Cheap checks on user structures, before and after the parse: :class:`StructureError` and its reason codes.

Before the parse (milliseconds, from the text): :func:`precheck_structure_text` / :func:`precheck_structure_file`
refuse a file that is too big or holds too many sites, counted the way each format's grammar reads it (a CIF is
tokenised: comments, quoted values, text fields and keys on the ``loop_`` line are read as CIF reads them; a space
group given by operators, name or number bounds the symmetry expansion alike).

After the parse (:func:`check_cell_shape`, :func:`wrapped`): cells whose shape would blow up any neighbour or lattice
search (a thin needle, a huge vacuum, coordinates far outside the cell) are refused or wrapped, before the search.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from goectp.io_formats import guess_format, normalize_format

#: Cells larger than this are refused by default (graph size grows with k * n_sites).
MAX_SITES = 500
#: Structure files larger than this are refused before reading them.
MAX_FILE_BYTES = 50_000_000
#: A CIF whose atom rows × symmetry operations exceed this many times ``max_sites`` is refused before the parse
#: (pymatgen would generate and then merge that many sites).
MAX_SYMMETRY_EXPANSION = 25
#: The most operations any space group has (Fm-3m, Fd-3m … in their conventional, F-centred setting).
MAX_SPACE_GROUP_OPERATIONS = 192
#: A fractional coordinate beyond ± this is not a position in the cell (a broken file): refused.
MAX_FRACTIONAL_COORDINATE = 1.0e3
#: The longest lattice vector over the smallest cell height (the shortest distance between opposite faces).
#: The training data stay below 12; the lattice searches' work grows with the cube of this ratio.
MAX_CELL_ASPECT = 30.0
#: Cells thinner than this (Å, between opposite faces) hold no crystal (the training data's smallest is 2.2 Å).
MIN_CELL_HEIGHT = 1.0
#: A slab of empty space thicker than this (Å) along any cell direction is not a bulk crystal (training data ≤ 23 Å).
MAX_VACUUM = 30.0

#: ``StructureError.code`` values (the screening's ``reason_code`` for rejected structures).
REASON_CODES = {
    "unparseable": "the file or object could not be read as a crystal structure",
    "not_a_file": "a directory, FIFO, device or other non-regular file given as a structure file",
    "file_too_large": "the file is larger than the size limit",
    "too_large": "more sites than the limit",
    "empty": "no atoms",
    "disordered": "partial occupancies",
    "not_periodic": "not periodic in all three directions",
    "non_finite": "NaN or infinite lattice or coordinates",
    "degenerate_lattice": "singular or flat cell",
    "absurd_lattice": "a lattice vector longer than MAX_LATTICE_LENGTH",
    "absurd_cell": "a cell thinner than MIN_CELL_HEIGHT, longer than MAX_CELL_ASPECT × its height, or with vacuum "
    "over MAX_VACUUM",
    "absurd_coordinates": "a fractional coordinate beyond ± MAX_FRACTIONAL_COORDINATE",
    "unknown_element": "an element the model does not know",
    "too_dense": "less than 1 Å^3 per atom (wrong units?)",
    "overlapping_atoms": "two atoms closer than MIN_DISTANCE",
    "too_few_neighbors": "an atom without any neighbour within NEIGHBOR_CUTOFF",
    "out_of_memory": "reading or predicting needed more memory than the per-file limit",
    "timeout": "reading or predicting took longer than the per-file time limit",
    "worker_died": "the process reading the file ended without an answer",
    "invalid_structure": "any other problem",
}


class StructureError(ValueError):
    """A structure that cannot be used for prediction; the message says why, ``code`` is in :data:`REASON_CODES`."""

    def __init__(self, message: str, code: str = "invalid_structure") -> None:
        super().__init__(re.sub(r"\s*[\r\n]+\s*", " ", str(message)).strip())  # one line, whatever it quotes
        self.code = code

    def __reduce__(self):
        return type(self), (str(self), self.code)


def _short(name: str, limit: int = 80) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _short_path(path: Path, limit: int = 100) -> str:
    """The path, or ``…/<shortened file name>`` when it is long (the name is what the user recognises)."""
    return str(path) if len(str(path)) <= limit else f"…/{_short(path.name, 60)}"


def file_kind(path: Path) -> str:
    """``""`` for a regular file, else what it is ("a directory", "a FIFO (named pipe)", "a device", …);
    raises ``OSError`` when it does not exist."""
    import stat

    mode = path.stat().st_mode
    for test, kind in (
        (stat.S_ISREG, ""),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def regular_file_size(path: Path) -> int:
    """``path``'s size; a :class:`StructureError` naming it when it is missing or not a regular file."""
    try:
        kind = file_kind(path)
        if kind:
            raise StructureError(f"{_short_path(path)}: {kind}, not a structure file", code="not_a_file")
        return path.stat().st_size
    except FileNotFoundError as exc:
        raise StructureError(f"{_short_path(path)}: no such file", code="unparseable") from exc
    except OSError as exc:
        raise StructureError(f"{_short_path(path)}: cannot open ({exc.strerror or exc})", code="unparseable") from exc


# ------------------------------------------------------------------------------------------------ CIF grammar
#: One CIF token of a line: a comment, a quoted value (closed by its quote followed by white space), or a bare
#: word. White space between tokens is skipped.
_CIF_TOKEN = re.compile(
    r"#[^\n]*"  # comment
    r"|'[^\n]*?'(?=\s|$)"  # single-quoted value
    r'|"[^\n]*?"(?=\s|$)'  # double-quoted value
    r"|\S+"
)
_CIF_RESERVED = ("loop_", "data_", "save_", "global_", "stop_")
_ATOM_KEYS = ("_atom_site_fract_", "_atom_site_cartn_")
_SYMOP_KEYS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz", "_space_group_symop.operation_xyz")
_SG_NAME_KEYS = ("_symmetry_space_group_name_h-m", "_space_group_name_h-m_alt", "_space_group_name_hall")
_SG_NUMBER_KEYS = ("_space_group_it_number", "_symmetry_int_tables_number", "_space_group.it_number")


def cif_tokens(text: str) -> list[str]:
    """The CIF's tokens without comments (quotes kept on quoted values; a text field is the one token ``;``).
    Lines without quotes or ``#`` are split on white space (fast); the others go through the tokeniser."""
    out: list[str] = []
    in_field = False
    for line in text.splitlines():
        if line.startswith(";"):  # a text field opens or closes at the start of a line
            in_field = not in_field
            if in_field:
                out.append(";")
            continue
        if in_field:
            continue
        if "#" in line or "'" in line or '"' in line:
            out.extend(t for t in _CIF_TOKEN.findall(line) if not t.startswith("#"))
        else:
            out.extend(line.split())
    return out


@functools.lru_cache(maxsize=1)
def _space_group_table() -> tuple[dict[str, int], dict[int, int]]:
    """Operations (centring included) per space-group symbol (short, full, Hall; lower case, no spaces or ``_``)
    and per number (the largest over its settings), from spglib's 530 settings (~0.1 s, once)."""
    import spglib

    by_symbol: dict[str, int] = {}
    by_number: dict[int, int] = {}
    for hall in range(1, 531):
        sg = spglib.get_spacegroup_type(hall)
        n = len(spglib.get_symmetry_from_database(hall)["rotations"])
        for symbol in (sg.international_short, sg.international_full, sg.international, sg.hall_symbol):
            key = _symbol_key(symbol)
            by_symbol[key] = max(n, by_symbol.get(key, 0))
        by_number[sg.number] = max(n, by_number.get(sg.number, 0))
    return by_symbol, by_number


def _symbol_key(symbol: str) -> str:
    return symbol.strip().strip("'\"").replace(" ", "").replace("_", "").lower()


def space_group_operations(symbol_or_number: str) -> int:
    """The number of operations (centring included) of a space group given by its Hermann–Mauguin or Hall symbol
    or its number; :data:`MAX_SPACE_GROUP_OPERATIONS` when it cannot tell (the worst case)."""
    key = _symbol_key(symbol_or_number)
    try:
        by_symbol, by_number = _space_group_table()
    except Exception:  # no spglib database: assume the worst
        return MAX_SPACE_GROUP_OPERATIONS
    if key.isdigit():
        return by_number.get(int(key), MAX_SPACE_GROUP_OPERATIONS)
    for variant in (key, key.split(":")[0]):  # "F m -3 m :1" origin choices
        if variant in by_symbol:
            return by_symbol[variant]
    return MAX_SPACE_GROUP_OPERATIONS


def _cif_site_bounds(text: str) -> tuple[int, int]:
    """``(atom sites listed, × symmetry operations)`` of a CIF, read by the CIF grammar: loops hold their keys
    (wherever the lines break) and then values up to the next key or reserved word; rows = values / keys. The
    operations are those of the symmetry loop, or of the space group named by symbol or number (the larger)."""
    tokens = cif_tokens(text)
    rows = ops = 0
    named: list[str] = []  # space groups given by symbol or number (pymatgen uses them when no operators are)
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i].lower()
        if tok == "loop_":
            i += 1
            keys = []
            while i < n and tokens[i].startswith("_"):
                keys.append(tokens[i].lower())
                i += 1
            values = 0
            while i < n and not tokens[i].startswith("_") and not tokens[i].lower().startswith(_CIF_RESERVED):
                values += 1
                i += 1
            if any(k.startswith(_ATOM_KEYS) for k in keys):
                rows += values // max(len(keys), 1)
            elif any(k.startswith(_SYMOP_KEYS) for k in keys):
                ops = max(ops, values // max(len(keys), 1))
            continue
        if tok.startswith("_") and i + 1 < n and not tokens[i + 1].startswith("_"):  # a key and its value
            if tok.startswith(_SG_NAME_KEYS + _SG_NUMBER_KEYS) and tokens[i + 1] not in ("?", "."):
                named.append(tokens[i + 1])
            elif tok.startswith(_ATOM_KEYS):  # one atom given without a loop
                rows = max(rows, 1)
            elif tok.startswith(_SYMOP_KEYS):
                ops = max(ops, 1)
            i += 2
            continue
        i += 1
    if not ops and named and rows:
        ops = max(space_group_operations(v) for v in named)
    return rows, rows * max(ops, 1)


def _count(token: str) -> int | None:
    """``token`` as a site count when it is an integer (``int`` reads ``+5`` and ``1_000`` too), else ``None``."""
    try:
        return int(token)
    except ValueError:
        return None


def _poscar_sites(lines: list[str]) -> int:
    for line in lines[5:7]:  # VASP 5 (symbols on line 6, counts on line 7) or VASP 4 (counts on line 6)
        counts = [_count(p) for p in line.split("#")[0].split("!")[0].split()]
        if counts and all(c is not None for c in counts):
            return sum(counts)
    return 0


def site_count_bounds(text: str, fmt: str) -> tuple[int, int]:
    """``(at least, at most)`` sites that parsing ``text`` will give, from one pass over the text:
    a CIF's atom sites and sites × symmetry operations, POSCAR's counts line, the first line of an extxyz file,
    ``len(sites)`` of a pymatgen JSON. ``(0, 0)`` when the text does not tell (the parser then decides)."""
    fmt = normalize_format(fmt)
    n = 0
    try:
        if fmt == "cif":
            return _cif_site_bounds(text)
        if fmt == "poscar":
            n = _poscar_sites(text.splitlines()[:8])
        elif fmt == "extxyz":
            n = _count(text.lstrip().split("\n", 1)[0].strip()) or 0
        elif fmt == "json":
            import json

            sites = json.loads(text).get("sites")
            n = len(sites) if isinstance(sites, list) else 0
    except (ValueError, AttributeError, RecursionError):
        return 0, 0
    return n, n


def estimate_site_count(text: str, fmt: str) -> int | None:
    """The lower bound of :func:`site_count_bounds` (``None`` when the text does not tell)."""
    return site_count_bounds(text, fmt)[0] or None


def precheck_structure_text(
    text: str,
    fmt: str,
    max_sites: int | None = MAX_SITES,
    name: str = "structure",
    max_bytes: int | None = MAX_FILE_BYTES,
) -> int | None:
    """Refuse, before any parsing, text that is empty, too large, or holds more than ``max_sites`` sites.

    Returns the estimated site count (``None`` when the text does not tell); raises :class:`StructureError`
    (codes ``empty``, ``file_too_large``, ``too_large``) naming ``name``. Cheap: safe to call on an upload in a
    server's event loop.
    """
    name = _short(str(name))
    if not text.strip():
        raise StructureError(f"{name}: file is empty", code="empty")
    if max_bytes is not None and len(text) > max_bytes:
        raise StructureError(
            f"{name}: {len(text):,} characters, more than the limit of {max_bytes:,}", code="file_too_large"
        )
    count, at_most = site_count_bounds(text, fmt)
    if max_sites is not None and count > max_sites:
        at_least = "at least " if normalize_format(fmt) == "cif" else ""
        raise StructureError(
            f"{name}: {at_least}{count} sites, more than the limit of {max_sites} (raise max_sites to allow)",
            code="too_large",
        )
    if max_sites is not None and at_most > MAX_SYMMETRY_EXPANSION * max_sites:
        raise StructureError(
            f"{name}: {count} atom sites × symmetry operations would generate up to {at_most:,} sites before "
            f"merging, more than {MAX_SYMMETRY_EXPANSION} × the limit of {max_sites} (raise max_sites to allow)",
            code="too_large",
        )
    return count or None


def precheck_structure_file(
    path: str | os.PathLike,
    fmt: str | None = None,
    max_sites: int | None = MAX_SITES,
    max_bytes: int | None = MAX_FILE_BYTES,
) -> int | None:
    """:func:`precheck_structure_text` for a file: a regular file (not a directory, FIFO or device), its size
    (from ``stat``, before reading), its site count. Compressed or binary files are only size-checked."""
    path = Path(path)
    name = _short(path.name)
    size = regular_file_size(path)
    if size == 0:
        raise StructureError(f"{name}: file is empty", code="empty")
    if max_bytes is not None and size > max_bytes:
        raise StructureError(f"{name}: {size:,} bytes, more than the limit of {max_bytes:,}", code="file_too_large")
    fmt = normalize_format(fmt) if fmt else guess_format(path)
    if fmt is None or max_sites is None:
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise StructureError(f"{name}: cannot read ({exc.strerror or exc})", code="unparseable") from exc
    return precheck_structure_text(text, fmt, max_sites=max_sites, name=name, max_bytes=None)


def extxyz_frame_problem(text: str, max_atoms: int = 100_000) -> str:
    """Why an extxyz text would stall a reader ("" when it would not): a frame whose atom count is not a number,
    exceeds ``max_atoms`` or exceeds the lines left in the file (a reader would allocate or wait for them)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        count = _count(lines[i].strip())
        if count is None or count < 0:
            return f"line {i + 1}: {lines[i].strip()[:40]!r} is not an atom count"
        if count > max_atoms or count > len(lines) - i - 2:
            return f"line {i + 1}: a frame of {count:,} atoms, but only {max(len(lines) - i - 2, 0):,} lines follow"
        i += count + 2
    return ""


# ------------------------------------------------------------------------------------------------ cell shape
def cell_heights(lattice_rows: np.ndarray) -> np.ndarray:
    """The distances between opposite faces of the cell (Å): ``1 / |row i of inv(A)ᵀ|``."""
    with np.errstate(all="ignore"):
        return 1.0 / np.linalg.norm(np.linalg.inv(lattice_rows), axis=0)


def largest_vacuum(frac: np.ndarray, heights: np.ndarray) -> float:
    """The thickest slab without atoms (Å) along the three cell directions (periodic: the gap wraps around)."""
    widest = 0.0
    wrapped = np.mod(frac, 1.0)
    for k in range(3):
        x = np.sort(wrapped[:, k])
        gaps = np.diff(np.concatenate([x, x[:1] + 1.0]))
        widest = max(widest, float(gaps.max() * heights[k]))
    return widest


def check_cell_shape(lattice_rows: np.ndarray, frac: np.ndarray) -> None:
    """Refuse (``absurd_cell``) a cell thinner than :data:`MIN_CELL_HEIGHT`, longer than :data:`MAX_CELL_ASPECT`
    times its smallest height, or with more than :data:`MAX_VACUUM` Å of empty space; and (``absurd_coordinates``)
    fractional coordinates beyond ± :data:`MAX_FRACTIONAL_COORDINATE`. Each message names its limit. Cheap
    (no neighbour search): run it before any."""
    frac = np.asarray(frac, dtype=np.float64)
    if frac.size and np.abs(frac).max() > MAX_FRACTIONAL_COORDINATE:
        raise StructureError(
            f"a fractional coordinate of {np.abs(frac).max():.3g}, beyond the limit of ±{MAX_FRACTIONAL_COORDINATE:g}"
            " (atoms that many cells away from the cell): not a position in the crystal",
            code="absurd_coordinates",
        )
    heights = cell_heights(np.asarray(lattice_rows, dtype=np.float64))
    lengths = np.linalg.norm(lattice_rows, axis=1)
    if heights.min() < MIN_CELL_HEIGHT:
        raise StructureError(
            f"the cell is {heights.min():.3g} Å thin between opposite faces, less than the limit of "
            f"{MIN_CELL_HEIGHT:g} Å: not a crystal (check the units, Å expected)",
            code="absurd_cell",
        )
    aspect = lengths.max() / heights.min()
    if aspect > MAX_CELL_ASPECT:
        raise StructureError(
            f"the cell is {aspect:.3g} times longer ({lengths.max():.4g} Å) than its smallest height "
            f"({heights.min():.3g} Å), more than the limit of {MAX_CELL_ASPECT:g}: a needle or a sheet, not a bulk "
            "crystal (use a reduced, e.g. Niggli, cell)",
            code="absurd_cell",
        )
    if len(frac):
        vacuum = largest_vacuum(frac, heights)
        if vacuum > MAX_VACUUM:
            raise StructureError(
                f"{vacuum:.4g} Å of empty space along one cell direction, more than the limit of {MAX_VACUUM:g} Å:"
                " a slab or molecule in vacuum, not a bulk crystal",
                code="absurd_cell",
            )


def wrapped(structure: Any, low: float = -1.0, high: float = 2.0) -> Any:
    """``structure``, or a copy with its fractional coordinates wrapped into the cell when any lies outside
    ``[low, high]`` (a neighbour search spans the atoms' extent: far-away images make it huge)."""
    frac = structure.frac_coords
    if not len(frac) or (frac.min() >= low and frac.max() <= high):
        return structure
    from pymatgen.core import Structure

    return Structure(
        structure.lattice,
        structure.species_and_occu,
        np.mod(frac, 1.0),
        site_properties=structure.site_properties or None,
        charge=structure.charge,
    )
