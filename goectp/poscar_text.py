"""The POSCAR grammar, as far as the checks before a parse need it: where pymatgen's ``Poscar.from_str`` reads the
element symbols and atom counts (lines split at ``\n`` only, the first block up to a blank line, ``#`` cuts a line;
symbols over several lines until one starts with an integer, then as many count lines), so that the pre-check
counts the sites pymatgen will allocate and refuses symbols and counts that do not pair.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from goectp.text_values import count_value, short

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
            if count_value(lines[5 + n_lines].split()[0]) is not None:
                break
        for index in range(6, 5 + n_lines):
            symbols.extend(lines[index].split())
        count_lines = range(5 + n_lines, 5 + 2 * n_lines)
        counts = [int(word) for index in count_lines for word in lines[index].split()]
    except (IndexError, ValueError):  # an empty or missing line, or a count that is no integer: pymatgen raises
        return None
    return _PoscarLayout(symbols, counts, range(5, 5 + n_lines), count_lines)


def poscar_sites(text: str) -> int:
    """The sites pymatgen builds from a POSCAR's counts (their sum; a negative count takes none away: pymatgen
    allocates the others first), 0 when it reads none."""
    layout = _poscar_layout(_poscar_lines(text)[0])
    return sum(c for c in layout.counts if c > 0) if layout else 0


def poscar_species_problem(text: str) -> str:
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
            f"{len(symbols)} element(s) on {where(layout.symbol_lines)} ({short(' '.join(symbols), 40)}) but "
            f"{len(counts)} count(s) on {where(layout.count_lines)}"
        )
    return ""
