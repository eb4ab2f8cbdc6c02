"""The CIF grammar, as far as the checks before a parse need it: tokens, atom sites and symmetry operations.

:func:`cif_tokens` reads a CIF line by line in linear time (a quoted value closes at its quote followed by white
space: the closing positions are found once per line, so a line of unclosed quotes costs no more than any other);
:func:`cif_site_bounds` counts the atom sites and the symmetry expansion; :func:`cif_operation_problem` refuses an
operation that is not a symmetry of any lattice (its rotation part must be an integer matrix of determinant ±1), which
a parser would otherwise apply and so build another crystal.
"""

from __future__ import annotations

import bisect
import functools
import re
from fractions import Fraction
from typing import NamedTuple

#: the most operations a space group has (Fm-3m, Im-3m… with centring): the bound when a CIF's group is unknown
MAX_SPACE_GROUP_OPERATIONS = 192

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\S+")
#: a closing quote: one followed by white space or the end of the line
_CLOSERS = {quote: re.compile(quote + r"(?=\s|$)") for quote in ("'", '"')}
_CIF_RESERVED = ("loop_", "data_", "save_", "global_", "stop_")
_ATOM_KEYS = ("_atom_site_fract_", "_atom_site_cartn_")
_SYMOP_KEYS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz", "_space_group_symop.operation_xyz")
_SG_NAME_KEYS = ("_symmetry_space_group_name_h-m", "_space_group_name_h-m_alt", "_space_group_name_hall")
_SG_NUMBER_KEYS = ("_space_group_it_number", "_symmetry_int_tables_number", "_space_group.it_number")


def _line_tokens(line: str) -> list[str]:
    """One line's tokens: a comment ends the line; a quoted value runs to its quote followed by white space (no
    such quote: a bare word); anything else is a bare word. Linear in the line's length."""
    closers = {q: [m.start() for m in pattern.finditer(line)] for q, pattern in _CLOSERS.items() if q in line}
    out: list[str] = []
    pos, n = 0, len(line)
    while True:
        space = _SPACE.match(line, pos)
        pos = space.end() if space else pos
        if pos >= n or line[pos] == "#":
            return out
        quote = line[pos]
        if quote in closers:
            ends = closers[quote]
            k = bisect.bisect_right(ends, pos)  # the first closing quote after the opening one
            if k < len(ends):
                out.append(line[pos : ends[k] + 1])
                pos = ends[k] + 1
                continue
        word = _WORD.match(line, pos)
        out.append(word.group())
        pos = word.end()


def cif_tokens(text: str) -> list[str]:
    """The CIF's tokens without comments (quotes kept on quoted values; a text field is the one token ``;``).
    Lines without quotes or ``#`` are split on white space (fast); the others go through :func:`_line_tokens`."""
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
            out.extend(_line_tokens(line))
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


def cif_site_bounds(text: str) -> tuple[int, int]:
    """``(atom sites listed, × symmetry operations)`` of a CIF (:func:`read_cif_summary`)."""
    return read_cif_summary(text).bounds


class CifSummary(NamedTuple):
    """What the checks read from a CIF's tokens: atom sites, symmetry operations (listed, or of the space group
    named by symbol or number: the larger) and the operations' text as written."""

    sites: int
    operations: int
    operation_texts: list[str]
    blocks: int = 1

    @property
    def bounds(self) -> tuple[int, int]:
        """``(atom sites listed, × symmetry operations)``."""
        return self.sites, self.sites * max(self.operations, 1)


def read_cif_summary(text: str) -> CifSummary:
    """Loops hold their keys (wherever the lines break) and then values up to the next key or reserved word;
    rows = values / keys."""
    tokens = cif_tokens(text)
    rows = ops = 0
    named: list[str] = []  # space groups given by symbol or number (pymatgen uses them when no operators are)
    texts: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i].lower()
        if tok == "loop_":
            i += 1
            keys = []
            while i < n and tokens[i].startswith("_"):
                keys.append(tokens[i].lower())
                i += 1
            first = i
            while i < n and not tokens[i].startswith("_") and not tokens[i].lower().startswith(_CIF_RESERVED):
                i += 1
            values = i - first
            if any(k.startswith(_ATOM_KEYS) for k in keys):
                rows += values // max(len(keys), 1)
            elif any(k.startswith(_SYMOP_KEYS) for k in keys):
                ops = max(ops, values // max(len(keys), 1))
                column = next(j for j, k in enumerate(keys) if k.startswith(_SYMOP_KEYS))
                texts.extend(tokens[first + column : i : len(keys)])
            continue
        if tok.startswith("_") and i + 1 < n and not tokens[i + 1].startswith("_"):  # a key and its value
            if tok.startswith(_SG_NAME_KEYS + _SG_NUMBER_KEYS) and tokens[i + 1] not in ("?", "."):
                named.append(tokens[i + 1])
            elif tok.startswith(_ATOM_KEYS):  # one atom given without a loop
                rows = max(rows, 1)
            elif tok.startswith(_SYMOP_KEYS):
                ops = max(ops, 1)
                texts.append(tokens[i + 1])
            i += 2
            continue
        i += 1
    if not ops and named and rows:
        ops = max(space_group_operations(v) for v in named)
    blocks = sum(1 for t in tokens if t[:5].lower() == "data_")
    return CifSummary(rows, ops, texts, blocks)


_TERM = re.compile(r"([+-]?)([^+-]+)")


def operation_matrix(text: str) -> list[list[Fraction]]:
    """The rotation part ``W`` (rows = the three components) of a symmetry operation written as in a CIF
    (``'-x+1/2, y, z'``, ``x-y,x,z+1/6``); a ``ValueError`` for text that is not three linear expressions."""
    parts = text.strip().strip("'\"").replace(" ", "").lower().split(",")
    if len(parts) != 3:
        raise ValueError(f"{text[:40]!r} does not have three components")
    rows = []
    for part in parts:
        row = [Fraction(0)] * 3
        if not part or _TERM.sub("", part):
            raise ValueError(f"{text[:40]!r}: cannot read {part[:20]!r}")
        for sign, body in _TERM.findall(part):
            variable = next((v for v in "xyz" if v in body), None)
            if variable is None:
                Fraction(body)  # a translation: only checked to be a number
                continue
            factor = body.replace(variable, "").rstrip("*").lstrip("*")
            value = Fraction(factor) if factor else Fraction(1)
            row["xyz".index(variable)] += -value if sign == "-" else value
        rows.append(row)
    return rows


def cif_operation_problem(texts: list[str]) -> str:
    """Why a CIF's listed operations are not symmetry operations ("" when they are): each rotation part must be an
    integer matrix of determinant ±1 in the cell's basis (any symmetry of any lattice is; ``2*x,y,z`` is not)."""
    for text in texts:
        try:
            w = operation_matrix(text)
        except (ValueError, ZeroDivisionError) as exc:
            return f"symmetry operation {text[:40]!r} cannot be read ({exc})"
        det = (
            w[0][0] * (w[1][1] * w[2][2] - w[1][2] * w[2][1])
            - w[0][1] * (w[1][0] * w[2][2] - w[1][2] * w[2][0])
            + w[0][2] * (w[1][0] * w[2][1] - w[1][1] * w[2][0])
        )
        if any(v.denominator != 1 for row in w for v in row) or abs(det) != 1:
            return f"{text[:40]!r} is not a symmetry operation (its rotation part is not an integer matrix of det ±1)"
    return ""
