"""Cheap checks on user structures, before and after the parse: :class:`StructureError` and its reason codes.

Before the parse (milliseconds, from the text): :func:`precheck_structure_text` / :func:`precheck_structure_file`
refuse a file that is too big or holds too many sites, counted the way each format's grammar reads it (a CIF is
tokenised: comments, quoted values, text fields and keys on the ``loop_`` line are read as CIF reads them; a space
group given by operators, name or number bounds the symmetry expansion alike).

After the parse (:func:`check_cell_shape`, :func:`wrapped`): cells whose shape would blow up any neighbour or lattice
search (a thin needle, a huge vacuum, coordinates far outside the cell) are refused or wrapped, before the search.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from goectp.cif_text import (  # noqa: F401 - re-exported: the CIF grammar was part of this module
    MAX_SPACE_GROUP_OPERATIONS,
    CifSummary,
    cif_operation_problem,
    cif_site_bounds,
    cif_tokens,
    read_cif_summary,
    space_group_operations,
)
from goectp.io_formats import guess_format, normalize_format

#: Cells larger than this are refused by default (graph size grows with k * n_sites).
MAX_SITES = 500
#: Structure files larger than this are refused before reading them.
MAX_FILE_BYTES = 50_000_000
#: A CIF whose atom rows × symmetry operations exceed this many times ``max_sites`` is refused before the parse
#: (pymatgen would generate and then merge that many sites).
MAX_SYMMETRY_EXPANSION = 25
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


def _count(token: str) -> int | None:
    """``token`` as a site count when it is an integer (``int`` reads ``+5`` and ``1_000`` too), else ``None``."""
    try:
        return int(token)
    except ValueError:
        return None


#: pymatgen's ``Poscar.from_str`` reads element symbols from at most this many lines, then as many lines of counts
_POSCAR_SYMBOL_LINES = 10
#: what ends a POSCAR's first block for pymatgen (``re.split`` on it; the rest is velocities and the like)
_POSCAR_BLANK_LINE = re.compile(r"\n\s*\n")


def _poscar_lines(text: str) -> tuple[list[str], int]:
    """``(lines, offset)``: the first lines of a POSCAR's first block as pymatgen's ``Poscar.from_str`` reads them
    (``\\n``-separated, up to the first blank line, cut at ``#``, stripped), as many as its symbols and counts can
    span; ``lines[i]`` is line ``i + 1 + offset`` of ``text``. Linear; copies only those lines."""
    data = text.rstrip()
    blank = _POSCAR_BLANK_LINE.search(data)
    start, end, offset, lines = 0, blank.start() if blank else len(data), 0, []
    if blank is not None and blank.start() == 0:  # pymatgen drops the empty first block, reads "\n" + the second
        following = _POSCAR_BLANK_LINE.search(data, blank.end())
        start, end, lines = blank.end(), following.start() if following else len(data), [""]
        offset = data.count("\n", 0, blank.end()) - 1
    while len(lines) < 5 + 2 * _POSCAR_SYMBOL_LINES:
        stop = data.find("\n", start, end)
        line = data[start : end if stop < 0 else stop]
        lines.append((line[: line.index("#")] if "#" in line else line).strip())
        if stop < 0:
            break
        start = stop + 1
    return lines, offset


class _PoscarLayout(NamedTuple):
    """Where a POSCAR's atom counts are, as pymatgen reads them (0-based indices into :func:`_poscar_lines`)."""

    symbols: list[str] | None  #: ``None``: VASP 4 (no element line)
    counts: list[int]
    symbol_lines: range
    count_lines: range


def _poscar_layout(lines: list[str]) -> _PoscarLayout | None:
    """The element symbols and atom counts pymatgen's ``Poscar.from_str`` reads from ``lines``, by its rule: counts
    on line 6 (VASP 4), or symbol lines from line 6 until one whose first word is an integer (at most
    :data:`_POSCAR_SYMBOL_LINES`), then as many count lines. ``None`` where pymatgen fails before it counts."""
    if len(lines) < 6:
        return None
    try:
        return _PoscarLayout(None, [int(word) for word in lines[5].split()], range(0), range(5, 6))
    except ValueError:
        pass
    symbols = [word.split("/")[0].split("_")[0] for word in lines[5].split()]  # VASP 6 writes "Mg_pv/f474ac0d"
    n_lines = 1
    try:
        for n_lines in range(1, _POSCAR_SYMBOL_LINES + 1):
            if _count(lines[5 + n_lines].split()[0]) is not None:
                break
        for index in range(6, 5 + n_lines):
            symbols.extend(lines[index].split())
        count_lines = range(5 + n_lines, 5 + 2 * n_lines)
        counts = [int(word) for index in count_lines for word in lines[index].split()]
    except (IndexError, ValueError):  # an empty or missing line, or a count that is no integer: pymatgen raises
        return None
    return _PoscarLayout(symbols, counts, range(5, 5 + n_lines), count_lines)


def _poscar_sites(text: str) -> int:
    """The sites pymatgen builds from a POSCAR's counts (their sum; a negative count takes none away: pymatgen
    allocates the others first), 0 when it reads none."""
    layout = _poscar_layout(_poscar_lines(text)[0])
    return sum(c for c in layout.counts if c > 0) if layout else 0


def site_count_bounds(text: str, fmt: str, cif: CifSummary | None = None) -> tuple[int, int]:
    """``(at least, at most)`` sites that parsing ``text`` will give, from one pass over the text:
    a CIF's atom sites and sites × symmetry operations (from ``cif`` when the caller has read it), a POSCAR's counts
    (on the lines pymatgen reads them from), the first line of an extxyz file, ``len(sites)`` of a pymatgen JSON.
    ``(0, 0)`` when the text does not tell (the parser then decides)."""
    fmt = normalize_format(fmt)
    n = 0
    try:
        if fmt == "cif":
            return (cif or read_cif_summary(text)).bounds
        if fmt == "poscar":
            n = _poscar_sites(text)
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

    Also refuses what :func:`text_format_problem` finds (code ``unparseable``), whatever ``max_sites``. Returns the
    estimated site count (``None`` when the text does not tell or ``max_sites`` is ``None``); raises
    :class:`StructureError` (codes ``empty``, ``file_too_large``, ``too_large``, ``unparseable``) naming ``name``.
    Linear in the text's length: safe to call on an upload in a server's event loop.
    """
    name = _short(str(name))
    if not text.strip():
        raise StructureError(f"{name}: file is empty", code="empty")
    if max_bytes is not None and len(text) > max_bytes:
        raise StructureError(
            f"{name}: {len(text):,} characters, more than the limit of {max_bytes:,}", code="file_too_large"
        )
    count = 0
    cif = read_cif_summary(text) if fmt and normalize_format(fmt) == "cif" else None  # tokenised once for both checks
    if max_sites is not None:
        count, at_most = site_count_bounds(text, fmt, cif)
        if count > max_sites:
            at_least = "at least " if normalize_format(fmt) == "cif" else ""
            raise StructureError(
                f"{name}: {at_least}{count} sites, more than the limit of {max_sites} (raise max_sites to allow)",
                code="too_large",
            )
        if at_most > MAX_SYMMETRY_EXPANSION * max_sites:
            raise StructureError(
                f"{name}: {count} atom sites × symmetry operations would generate up to {at_most:,} sites before "
                f"merging, more than {MAX_SYMMETRY_EXPANSION} × the limit of {max_sites} (raise max_sites to allow)",
                code="too_large",
            )
    problem = text_format_problem(text, fmt, cif) if fmt else ""
    if problem:
        raise StructureError(f"{name}: {problem}", code="unparseable")
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
    if fmt is None:
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise StructureError(f"{name}: cannot read ({exc.strerror or exc})", code="unparseable") from exc
    return precheck_structure_text(text, fmt, max_sites=max_sites, name=name, max_bytes=None)


#: the most per-atom columns an extxyz ``Properties=`` may declare (a reader allocates them for every atom)
MAX_EXTXYZ_COLUMNS = 1_000
#: the longest extxyz comment (second) line read: ASE parses it character by character (about 1 s per MB)
MAX_EXTXYZ_COMMENT_CHARS = 100_000
# A comment line of plain pairs: ``key`` or ``key=value``, the value unquoted or within one pair of quotes or
# brackets, none empty, no backslash. ASE's ``key_val_str_to_dict`` splits such a line exactly as these regexes do
# (in C, not character by character); any other line is parsed by ASE's own function.
_XYZ_WORD = r"[^\s=\"'{}\[\]\\]+"
_XYZ_PAIR = rf"({_XYZ_WORD})(?:=({_XYZ_WORD}|\"[^\"\\]+\"|'[^'\\]+'|\{{[^}}\\]+\}}|\[[^\]\\]+\]))?"
_XYZ_PLAIN = re.compile(rf"(?:{_XYZ_PAIR}(?:\s+|\Z))*")
_XYZ_PAIRS = re.compile(_XYZ_PAIR)
_XYZ_SPLITS = re.compile(r"[\s,]")  # where ASE splits a value into the numbers or booleans it tries
#: what ASE drops from a key (escapes, quotes, brackets): a key it reads as ``Properties`` is spelt so without them
_XYZ_KEY_NOISE = str.maketrans("", "", "\\\"'{}[]")


def _ase_key_values(comment: str) -> dict[str, Any]:
    """ASE's own reading of an extxyz comment line (imported only for lines the regexes above do not split)."""
    from ase.io.extxyz import key_val_str_to_dict

    return key_val_str_to_dict(comment)


def _extxyz_properties(comment: str) -> Any:
    """The ``Properties`` value ASE reads from an extxyz comment line (``None`` without one or when ASE fails on
    the line): the last ``Properties`` key, after ASE's quoting, escapes and value conversion."""
    comment = comment.strip()
    if "Properties" not in comment and "Properties" not in comment.translate(_XYZ_KEY_NOISE):
        return None
    try:
        if not _XYZ_PLAIN.fullmatch(comment):
            return _ase_key_values(comment).get("Properties")
        last = None
        for pair in _XYZ_PAIRS.finditer(comment):
            if pair.group(1) == "Properties":
                last = pair
        if last is None or last.group(2) is None:
            return None  # a key without a value is True to ASE
        value = last.group(2)[1:-1] if last.group(2)[0] in "\"'{[" else last.group(2)
        if ":" in value and not _XYZ_SPLITS.search(value):
            return value  # no number, boolean or JSON: ASE keeps the string as it is
        return _ase_key_values(last.group(0)).get("Properties")  # ASE's conversion of that one pair
    except Exception:  # ASE raises as much on the same line: it reads no columns
        return None


def _extxyz_comment_problem(comment: str) -> str:
    """Why an extxyz frame's second line would make ASE allocate without bound ("" when it would not): longer than
    :data:`MAX_EXTXYZ_COMMENT_CHARS`, or a ``Properties`` (the one ASE uses: :func:`_extxyz_properties`) that is
    not ``name:type:count`` triples or declares more than :data:`MAX_EXTXYZ_COLUMNS` columns."""
    if len(comment) > MAX_EXTXYZ_COMMENT_CHARS:
        return f"a comment line of {len(comment):,} characters, more than the limit of {MAX_EXTXYZ_COMMENT_CHARS:,}"
    properties = _extxyz_properties(comment)
    if not isinstance(properties, str):
        return ""  # the default columns, or a value ASE cannot split into any
    fields = properties.split(":")
    if len(fields) % 3:
        return f"Properties={_short(properties, 40)!r} is not name:type:count triples"
    counts = [_count(c) for c in fields[2::3]]
    if any(c is None or c < 1 for c in counts):
        return f"Properties={_short(properties, 40)!r} has a column count that is not a positive integer"
    if sum(counts) > MAX_EXTXYZ_COLUMNS:
        return f"Properties declares {sum(counts):,} columns per atom, more than {MAX_EXTXYZ_COLUMNS:,}"
    return ""


def _extxyz_frame_lines(lines: list[str], max_atoms: int) -> tuple[list[int], str]:
    """The indices of an extxyz text's frame headers (atom-count lines) in ``lines``, and why the frame after the
    last would stall a reader ("" when there is none): a count that is not a number, exceeds ``max_atoms`` or the
    lines left (a reader would allocate or wait for them)."""
    i, starts = 0, []
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        count = _count(lines[i].strip())
        if count is None or count < 0:
            return starts, f"line {i + 1}: {_short(lines[i].strip(), 40)!r} is not an atom count"
        if count > max_atoms or count > len(lines) - i - 2:
            left = max(len(lines) - i - 2, 0)
            return starts, f"line {i + 1}: a frame of {count:,} atoms, but only {left:,} lines follow"
        starts.append(i)
        i += count + 2
    return starts, ""


def extxyz_frames(text: str, max_atoms: int = 100_000, max_frames: int | None = None) -> tuple[int, str]:
    """``(frames, problem)`` of an extxyz text, in linear time: ``problem`` says why it would stall a reader ("" when
    it would not): a frame whose atom count is not a number, exceeds ``max_atoms`` or the lines left in the file (a
    reader would allocate or wait for them), or whose comment line is too long or declares absurd ``Properties``
    columns (read as ASE reads them). Lines end at ``\\n`` only, as ASE reads a text (a file's ``\\r\\n`` and ``\\r``
    are ``\\n`` once read as text). With ``max_frames``, a text of more frames has its comment lines unread."""
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()  # the final newline ends the last line
    starts, problem = _extxyz_frame_lines(lines, max_atoms)
    if max_frames is not None and len(starts) > max_frames and not problem:
        return len(starts), ""
    for frame, i in enumerate(starts):
        comment_problem = _extxyz_comment_problem(lines[i + 1]) if i + 1 < len(lines) else ""
        if comment_problem:
            return frame, f"line {i + 2}: {comment_problem}"
    return len(starts), problem


def extxyz_frame_problem(text: str, max_atoms: int = 100_000) -> str:
    """The ``problem`` of :func:`extxyz_frames` ("" when a reader can read every frame in bounded memory)."""
    return extxyz_frames(text, max_atoms)[1]


def _poscar_species_problem(text: str) -> str:
    """A POSCAR whose element lines name more or fewer elements than its count lines have numbers (pymatgen would
    pair them silently: ``Na Cl`` over ``2`` reads as two Na; or allocate the counts it can pair, then fail), or with
    a negative count (pymatgen allocates the others first). Lines as pymatgen reads them (:func:`_poscar_layout`)."""
    lines, offset = _poscar_lines(text)
    layout = _poscar_layout(lines)
    if layout is None:
        return ""

    def where(rows: range) -> str:
        first, last = rows.start + 1 + offset, rows.stop + offset
        return f"line {first}" if first == last else f"lines {first}–{last}"

    negative = next((c for c in layout.counts if c < 0), None)
    if negative is not None:
        return f"a negative atom count ({negative}) on {where(layout.count_lines)}"
    symbols, counts = layout.symbols, layout.counts
    if symbols is not None and len(symbols) != len(counts):
        return (
            f"{len(symbols)} element(s) on {where(layout.symbol_lines)} ({_short(' '.join(symbols), 40)}) but "
            f"{len(counts)} count(s) on {where(layout.count_lines)}"
        )
    return ""


def text_format_problem(text: str, fmt: str, cif: CifSummary | None = None) -> str:
    """Why a file's text would be read wrongly or without bound by its format's parser ("" when it would not): a CIF
    with several data blocks (one structure per file; pymatgen merged or dropped sites), a cell no crystal has (e.g.
    a negative length), text that would stall pymatgen's reader or a symmetry operation that is not one, an extxyz
    frame count or column count a reader would allocate, more than one extxyz frame (a screen
    reads every frame of a pool's files), a POSCAR's elements that do not match its counts. ``cif``: the CIF's
    :class:`~goectp.cif_text.CifSummary` when the caller has read it."""
    fmt = normalize_format(fmt)
    if fmt == "cif":
        summary = cif or read_cif_summary(text)
        if summary.blocks > 1:
            return f"{summary.blocks} data blocks: one structure per file (split it, or screen a folder of files)"
        # a cell no crystal has, text that would stall pymatgen's reader, or an operation that is not a symmetry
        return summary.problem or cif_operation_problem(summary.operation_texts)
    if fmt == "extxyz":
        frames, problem = extxyz_frames(text, max_frames=1)  # a text of several frames is refused as that
        if problem:
            return problem
        if frames > 1:
            return f"{frames} frames: one structure per file (split it, or screen it: goectp screen --pool reads each)"
        return ""
    if fmt == "poscar":
        return _poscar_species_problem(text)
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
