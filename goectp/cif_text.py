"""The CIF grammar, as far as the checks before a parse need it: tokens, atom sites and symmetry operations.

The counts are read the way pymatgen's ``CifParser`` reads the file (the parser that builds the structure), so that no
file holds more than they say: blocks split at a line's ``data_``; comments (a ``#`` after white space, even inside a
quoted value), then non-ASCII characters removed; a text field runs between lines starting with ``;``, and the rest
of its closing line is read on; a key takes the next token as its value, whatever it is; atoms are the rows of
``_atom_site_label``; symmetry is the operations listed (magCIF: operations × centrings), else the space group named.
Everything is linear in the text's length (a quoted value closes at its quote followed by white space: the closing
positions are found once per line, so a line of unclosed quotes costs no more than any other).

:func:`read_cif_summary` counts the atom sites and the symmetry expansion; :func:`cif_operation_problem` refuses an
operation that is not a symmetry of any lattice (its rotation part must be an integer matrix of determinant ±1), which
a parser would otherwise apply and so build another crystal; ``CifSummary.problem`` names a cell length or angle
that is no cell's, or text pymatgen's reader would rescan without bound.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from fractions import Fraction
from typing import NamedTuple

#: the most operations a space group has (Fm-3m, Im-3m… with centring): the bound when a CIF's group is unknown
MAX_SPACE_GROUP_OPERATIONS = 192
#: the most operations a CIF may list (its space group has at most 192, a magnetic one 384): checking each costs
#: ~50 µs, so a file listing millions, and no atoms to count them against, would stall the check
MAX_LISTED_OPERATIONS = 5_000
#: the most characters pymatgen's tokeniser may rescan after quotes that never close (each such quote makes its
#: pattern scan the rest of the line, ~10 ns a character: a 60 kB line of ``'a `` took it 8 s), and that its block
#: split may rescan in runs of blank lines (``^\s*data_`` scans the run from each of its lines, ~1.5 ns a character:
#: 40,000 blank lines took 5 s): about a second each
MAX_QUOTE_RESCAN = 100_000_000
MAX_BLANK_RUN_RESCAN = 500_000_000
#: the most characters of one number in a symmetry operation (``0.333333333333333333``): longer ones are refused
#: unread, so that no operation makes the check slow (``Fraction('1e99999999')`` ran for minutes)
MAX_OPERATION_NUMBER_CHARS = 32

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\S+")
#: a word as pymatgen reads one: it starts with anything but a quote or white space
_BARE = re.compile(r"[^'\"\s]\S*")
#: a closing quote: one followed by white space or the end of the line
_CLOSERS = {quote: re.compile(quote + r"(?=\s|$)") for quote in ("'", '"')}
#: pymatgen's comment (``CifBlock._process_string``): a ``#`` after white space or at a line's start, to the line's end
_COMMENT = re.compile(r"(\s|^)#.*$", re.MULTILINE)
#: where pymatgen's ``CifFile`` may start a block (``^\s*data_``): a maximal white-space run (read once), ``data_``
_BLOCK_START = re.compile(r"(?<!\s)\s*data_")
#: a run of blank lines (white space only), with the white space that starts the next line
_BLANK_RUN = re.compile(r"\n(?:[^\S\n]*\n)+[^\S\n]*")
_ATOM_KEYS = ("_atom_site_fract_", "_atom_site_cartn_")
_SYMOP_KEYS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz", "_space_group_symop.operation_xyz")
#: the keys pymatgen applies operations from (exactly so spelt); with none, it uses the space group named
_PYMATGEN_SYMOP_KEYS = frozenset(
    k + end for k in ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz") for end in ("", "_")
)
_SG_NAME_KEYS = (
    "_symmetry_space_group_name_h-m",
    "_symmetry_space_group_name_h_m",
    "_symmetry_space_group_name_hall",
    "_space_group_name_h-m_alt",
    "_space_group_name_hall",
)
_SG_NUMBER_KEYS = ("_space_group_it_number", "_symmetry_int_tables_number", "_space_group.it_number")
#: magCIF keys, lower case with ``.`` read as ``_`` (pymatgen renames every such spelling to the final one)
_MAGN_OPERATION = "_space_group_symop_magn_operation_xyz"
_MAGN_CENTERING = "_space_group_symop_magn_centering_xyz"
_MAGN_GROUP = ("_space_group_magn_name_bns", "_space_group_magn_number_bns")
_CELL_LENGTHS = ("_cell_length_a", "_cell_length_b", "_cell_length_c")
_CELL_ANGLES = ("_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma")
_UNCERTAINTY = re.compile(r"\(.+\)*")  # pymatgen's ``str2float``: "5.64(2)" → "5.64"


def _ascii(text: str) -> str:
    return text.encode("ascii", "ignore").decode("ascii")


def _reader_line_tokens(line: str, rescan: list[int]) -> list[str]:
    """One line's tokens as pymatgen's pattern ``([^'"\\s]\\S*)|'(.*?)'(?!\\S)|"(.*?)"(?!\\S)`` finds them (comments
    already removed): a quoted value (quotes kept) runs to its quote followed by white space; a quote with no such
    quote after it is skipped; a word runs to white space. Linear in the line's length (the pattern is not: what it
    rescans after each skipped quote, at most the rest of the line, is added to ``rescan[0]``)."""
    closers = {q: [m.start() for m in pattern.finditer(line)] for q, pattern in _CLOSERS.items() if q in line}
    out: list[str] = []
    pos, n = 0, len(line)
    while True:
        space = _SPACE.match(line, pos)
        pos = space.end() if space else pos
        if pos >= n:
            return out
        quote = line[pos]
        if quote in "'\"":
            ends = closers.get(quote, [])
            k = bisect.bisect_right(ends, pos)  # the first closing quote after the opening one
            if k < len(ends):
                out.append(line[pos : ends[k] + 1])
                pos = ends[k] + 1
            elif all(not e or e[-1] <= pos for e in closers.values()):  # no quote closes from here on: only words
                rescan[0] += (line.count("'", pos) + line.count('"', pos)) * (n - pos)
                out.extend(_BARE.findall(line, pos))
                return out
            else:
                rescan[0] += n - pos
                pos += 1
            continue
        word = _WORD.match(line, pos)
        out.append(word.group())
        pos = word.end()


def _field_tokens(text: str, line_tokens, field) -> list[str]:
    """The tokens of ``text`` (ASCII, comments removed or left to ``line_tokens``) as pymatgen reads its lines: a
    line starting with ``;`` opens a text field (the token ``field(its text)``), the next such line closes it and the
    rest of that line is read on (another text field when it starts with ``;``); an unclosed field is dropped."""
    out: list[str] = []
    field_lines: list[str] | None = None
    for line in text.splitlines():
        if field_lines is not None:
            if not line.startswith(";"):
                field_lines.append(line)
                continue
            out.append(field(" ".join(field_lines)))
            field_lines, line = None, line[1:].strip()
        if line.startswith(";"):
            field_lines = [line[1:].strip()]
        elif "'" in line or '"' in line or "#" in line:
            out.extend(line_tokens(line))
        else:
            out.extend(line.split())
    return out


def cif_tokens(text: str) -> list[str]:
    """The CIF's tokens as pymatgen reads a block's text (quotes kept on quoted values; a text field is the one token
    ``;``): comments removed (a ``#`` after white space, even inside quotes), then non-ASCII characters; a quote that
    never closes is skipped; a text field closes at a line starting with ``;``, whose rest is read on. The tokeniser
    :func:`read_cif_summary` counts with, on one block."""
    tokens = functools.partial(_reader_line_tokens, rescan=[0])
    return _field_tokens(_ascii(_COMMENT.sub("", text)), tokens, lambda content: ";")


def _reader_blocks(text: str, rescan: list[int]) -> list[list[str]]:
    """Each data block's tokens as pymatgen's ``CifFile``/``CifBlock`` read them: the text split where a line (after
    white space) starts with ``data_`` (the text before the first such line dropped, a block whose first line names
    ``powder_pattern`` skipped); in each block, comments removed, then non-ASCII characters. The first token is the
    block's ``data_`` name; a text field is ``"\\n" + its text`` (no other token holds a line break). ``rescan[0]``:
    what pymatgen's tokeniser rescans after unclosed quotes (:func:`_reader_line_tokens`)."""
    starts = [m.end() for m in _BLOCK_START.finditer(text) if m.start() == 0 or "\n" in m.group()]
    blocks = []
    for k, start in enumerate(starts):
        body = text[start : starts[k + 1] if k + 1 < len(starts) else len(text)]
        if "powder_pattern" in body.partition("\n")[0]:
            continue
        clean = _ascii(_COMMENT.sub("", "data_" + body))
        blocks.append(_field_tokens(clean, functools.partial(_reader_line_tokens, rescan=rescan), "\n".__add__))
    return blocks


def _stall_problem(text: str, quote_rescan: int) -> str:
    """Why pymatgen's reader would stall on ``text`` ("" when it would not): quotes that never close rescanned
    (``quote_rescan`` characters), or runs of blank lines its block split rescans from each of their lines."""
    if quote_rescan > MAX_QUOTE_RESCAN:
        return (
            f"quotes that never close would make pymatgen rescan {quote_rescan:,} characters (more than "
            f"{MAX_QUOTE_RESCAN:,}): close them"
        )
    runs = ((m.group().count("\n"), len(m.group())) for m in _BLANK_RUN.finditer(text))
    lines, work = max(((k, k * n) for k, n in runs), key=lambda r: r[1], default=(0, 0))
    if work > MAX_BLANK_RUN_RESCAN:
        return (
            f"a run of {lines - 1:,} blank lines would make pymatgen rescan {work:,} characters (more than "
            f"{MAX_BLANK_RUN_RESCAN:,}): remove them"
        )
    return ""


def _value(token: str) -> str:
    """A token's value as pymatgen keeps it: without its quotes, a text field's text."""
    if token[:1] in ("'", '"'):
        return token[1:-1]
    return token[1:] if token[:1] == "\n" else token


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


def _known_operations(symbol_or_number: str) -> int | None:
    """:func:`space_group_operations`, ``None`` when it cannot tell."""
    key = _symbol_key(symbol_or_number)
    try:
        by_symbol, by_number = _space_group_table()
    except Exception:  # no spglib database
        return None
    if key.isdigit():  # a group's number has at most 3 digits (and int() refuses 4,300)
        digits = key.lstrip("0")
        return by_number.get(int(digits or "0")) if key.isascii() and len(digits) <= 3 else None
    for variant in (key, key.split(":")[0]):  # "F m -3 m :1" origin choices
        if variant in by_symbol:
            return by_symbol[variant]
    return None


def space_group_operations(symbol_or_number: str) -> int:
    """The number of operations (centring included) of a space group given by its Hermann–Mauguin or Hall symbol
    or its number; :data:`MAX_SPACE_GROUP_OPERATIONS` when it cannot tell (the worst case)."""
    return _known_operations(symbol_or_number) or MAX_SPACE_GROUP_OPERATIONS


def magnetic_group_operations(bns: str) -> int:
    """At most how many operations pymatgen's ``MagneticSpaceGroup`` gives for a BNS symbol (``P_C4/n'b'm'``,
    ``Fm-3m1'``) or number (``225.119``): twice those of its space group (a time-reversed copy or an anti-centring
    at most doubles them; checked on all 1651 groups), twice :data:`MAX_SPACE_GROUP_OPERATIONS` when it cannot tell."""
    key = "".join(bns.split())  # as pymatgen looks it up: the primes are part of it
    if re.fullmatch(r"\d+\.\d+", key):
        return 2 * space_group_operations(key.split(".")[0])
    grey = [key[:-2]] if key.endswith("1'") else []  # "P-11'": P-1 and its time-reversed copy (but "P-1'" is not)
    for symbol in (*grey, key):
        ops = _known_operations(re.sub(r"^([A-Za-z])_[A-Za-z]", r"\1", symbol).replace("'", ""))  # P_C4/n'b'm' → P4/nbm
        if ops:
            return 2 * ops
    return 2 * MAX_SPACE_GROUP_OPERATIONS


def cif_site_bounds(text: str) -> tuple[int, int]:
    """``(atom sites listed, × symmetry operations)`` of a CIF (:func:`read_cif_summary`)."""
    return read_cif_summary(text).bounds


class CifSummary(NamedTuple):
    """What the checks read from a CIF's tokens: atom sites, symmetry operations (listed, else of the space group
    named by symbol or number; for a magCIF the larger of those and its magnetic operations × centrings) and the
    operations' text as written, the data blocks, and why pymatgen would build no crystal from it or stall ("" when
    it would not): a cell no crystal has, or the text it rescans without bound."""

    sites: int
    operations: int
    operation_texts: list[str]
    blocks: int = 1
    problem: str = ""

    @property
    def bounds(self) -> tuple[int, int]:
        """``(atom sites listed, × symmetry operations)``."""
        return self.sites, self.sites * max(self.operations, 1)


class _Block:
    """One data block's counts, fed each value pymatgen stores (a key's value, or a loop column's values)."""

    def __init__(self) -> None:
        self.labels = self.atom_rows = self.split_rows = self.listed = self.listed_exact = 0
        self.magn_operations = self.magn_centrings = 0
        self.named: list[str] = []
        self.magn_groups: list[str] = []
        self.texts: list[str] = []
        self.cell: dict[str, str] = {}

    def store(self, key: str, values: list[str], scalar: bool) -> None:
        """``values`` (with quotes) stored under ``key``: one for a key, a column's (repeats included) for a loop."""
        low = key.lower()
        magn = low.replace(".", "_")
        count = 1 if scalar else len(values)
        if key == "_atom_site_label":  # pymatgen's atoms: a plain value's characters are its rows
            self.labels = max(self.labels, len(_value(values[0])) if scalar else count)
        if key == "_atom_site_type_symbol":  # pymatgen makes each '0.8Nb + 0.2Zr' (Pauling File) a row per element
            self.split_rows = max(self.split_rows, sum(_value(v).count(" + ") for v in values))
        if low.startswith(_ATOM_KEYS):
            self.atom_rows = max(self.atom_rows, count)
        if low.startswith(_SYMOP_KEYS) or magn in (_MAGN_OPERATION, _MAGN_CENTERING):
            self.texts.extend(_value(v) for v in values)
            if magn == _MAGN_OPERATION:
                self.magn_operations = max(self.magn_operations, count)
            elif magn == _MAGN_CENTERING:
                self.magn_centrings = max(self.magn_centrings, count)
            else:
                self.listed = max(self.listed, count)
                if key in _PYMATGEN_SYMOP_KEYS and (not scalar or _value(values[0])):  # pymatgen skips ""
                    self.listed_exact = max(self.listed_exact, count)
        elif low.startswith(_SG_NAME_KEYS + _SG_NUMBER_KEYS):
            self.named.extend(v for v in map(_value, values) if v.strip() not in ("", "?", "."))
        elif magn in _MAGN_GROUP:
            self.magn_groups.extend(v for v in map(_value, values) if v.strip())
        if key in _CELL_LENGTHS + _CELL_ANGLES:
            self.cell[key] = _value(values[0]) if len(values) == 1 else ""

    @property
    def rows(self) -> int:
        return max(self.labels + self.split_rows, self.atom_rows)

    def operations(self) -> int:
        """The most operations pymatgen applies to each row (listed, else named; or magnetic: the larger)."""
        ops = self.listed if self.listed_exact else max([self.listed, 1, *map(space_group_operations, self.named)])
        if self.magn_operations:
            return max(ops, self.magn_operations * max(self.magn_centrings, 1))
        return max([ops, *(magnetic_group_operations(v) for v in self.magn_groups)])

    def cell_problem(self) -> str:
        """Why the cell read (as pymatgen's ``str2float`` reads it) is no cell: a length not positive and finite, an
        angle outside (0°, 180°), angles that close no cell; "" when it is one or pymatgen cannot read it."""
        numbers = {}
        for key, text in self.cell.items():
            try:
                numbers[key] = float(_UNCERTAINTY.sub("", text))
            except ValueError:
                continue
        for key in _CELL_LENGTHS:
            if key in numbers and not (math.isfinite(numbers[key]) and numbers[key] > 0):
                return f"{key} {self.cell[key][:20]!r}: a cell length must be a positive, finite number of Å"
        for key in _CELL_ANGLES:
            if key in numbers and not (math.isfinite(numbers[key]) and 0 < numbers[key] < 180):
                return f"{key} {self.cell[key][:20]!r}: a cell angle must be between 0 and 180 degrees"
        if all(key in numbers for key in _CELL_ANGLES):
            c = [math.cos(math.radians(numbers[key])) for key in _CELL_ANGLES]
            if 1 - c[0] ** 2 - c[1] ** 2 - c[2] ** 2 + 2 * c[0] * c[1] * c[2] <= 0:
                angles = ", ".join(self.cell[key][:12] for key in _CELL_ANGLES)
                return f"the cell angles ({angles}) close no cell (one is at least the sum of the others, or all 360°)"
        return ""


def _read_block(tokens: list[str]) -> _Block:
    """pymatgen's ``CifBlock.from_str`` on a block's tokens (the first is its name): ``_eof`` ends the block; a key
    takes the next token, whatever it is; ``loop_…`` takes the keys after it, then the values up to the next key or
    ``loop_…``, dealt to the keys in turn (a key listed twice gets two values per row)."""
    block = _Block()
    i, n = 1, len(tokens)
    while i < n:
        tok = tokens[i]
        i += 1
        if tok == "_eof":
            break
        if tok.startswith("_"):
            block.store(tok, [tokens[i] if i < n else ""], scalar=True)
            i += 1
        elif tok.startswith("loop_"):
            first = i
            while i < n and tokens[i].startswith("_"):
                i += 1
            keys, start = tokens[first:i], i
            while i < n and not tokens[i].startswith(("_", "loop_")):
                i += 1
            rows = (i - start) // len(keys) if keys else 0
            if rows:  # else pymatgen fails to read the file
                columns: dict[str, list[int]] = {}
                for j, key in enumerate(keys):
                    columns.setdefault(key, []).append(j)
                end, step = start + rows * len(keys), len(keys)
                for key, where in columns.items():
                    block.store(key, [v for j in where for v in tokens[start + j : end : step]], scalar=False)
    return block


def read_cif_summary(text: str) -> CifSummary:
    """Atom sites, symmetry operations, the operations' texts, data blocks and cell problem of a CIF, read from the
    tokens of :func:`_reader_blocks` as pymatgen reads them (over all blocks: the sites summed, the most operations)."""
    rescan = [0]
    blocks = [_read_block(tokens) for tokens in _reader_blocks(text, rescan)]
    sites = sum(b.rows for b in blocks)
    ops = max((b.operations() for b in blocks if b.rows), default=0)
    texts = [t for b in blocks for t in b.texts]
    problem = next((p for p in (b.cell_problem() for b in blocks) if p), "") or _stall_problem(text, rescan[0])
    return CifSummary(sites, ops, texts, len(blocks), problem)


_TERM = re.compile(r"([+-]?)([^+-]+)")
_NUMBER = re.compile(r"[0-9]+(?:/[0-9]+)?|[0-9]+\.[0-9]*|\.[0-9]+")
_TIME_REVERSAL = re.compile(r"[+-]?1")


def _operation_number(text: str) -> Fraction:
    """An integer, a fraction ``n/m`` or a plain decimal of at most :data:`MAX_OPERATION_NUMBER_CHARS` characters
    (a ``ValueError`` for anything else: ``1e9``, ``inf``, ``1_0``), in time bounded by that length."""
    if len(text) > MAX_OPERATION_NUMBER_CHARS or not _NUMBER.fullmatch(text):
        shown = text[:20] + ("…" if len(text) > 20 else "")
        raise ValueError(
            f"{shown!r} is not an integer, a fraction n/m or a decimal of at most {MAX_OPERATION_NUMBER_CHARS} "
            "characters"
        )
    if "/" in text:
        numerator, denominator = text.split("/")
        return Fraction(int(numerator), int(denominator))
    return Fraction(text)


def _read_operation(text: str) -> tuple[list[str], list[list[Fraction]], list[Fraction]]:
    """The components, rotation rows and translations of a symmetry operation (:func:`operation_matrix`)."""
    parts = text.strip().strip("'\"").replace(" ", "").lower().split(",")
    if len(parts) == 4 and _TIME_REVERSAL.fullmatch(parts[3]):
        parts = parts[:3]
    if len(parts) != 3:
        raise ValueError(f"{text[:40]!r} does not have three components (and a magnetic one's time reversal ±1)")
    rows, shifts = [], []
    for part in parts:
        row, shift = [Fraction(0)] * 3, Fraction(0)
        if not part or _TERM.sub("", part):
            raise ValueError(f"{text[:40]!r}: cannot read {part[:20]!r}")
        for sign, body in _TERM.findall(part):
            variable = next((v for v in "xyz" if v in body), None)
            if variable is None:
                shift += -_operation_number(body) if sign == "-" else _operation_number(body)
                continue
            factor = body.replace(variable, "").rstrip("*").lstrip("*")
            value = _operation_number(factor) if factor else Fraction(1)
            row["xyz".index(variable)] += -value if sign == "-" else value
        rows.append(row)
        shifts.append(shift)
    return parts, rows, shifts


def operation_matrix(text: str) -> list[list[Fraction]]:
    """The rotation part ``W`` (rows = the three components) of a symmetry operation written as in a CIF
    (``'-x+1/2, y, z'``, ``x-y,x,z+1/6``; a magCIF's ``x,y,z,+1`` with its time reversal ±1); a ``ValueError`` for
    text that is not three linear expressions in integers, fractions ``n/m`` and plain decimals. Linear time."""
    return _read_operation(text)[1]


#: pymatgen's ``SymmOp.from_xyz_str``: each match sets (not adds) a rotation entry or the translation
_PYMATGEN_ROTATION = re.compile(r"([+-]?)([\d\.]*)/?([\d\.]*)([x-z])")
_PYMATGEN_TRANSLATION = re.compile(r"([+-]?)([\d\.]+)/?([\d\.]*)(?![x-z])")


def _pymatgen_component(part: str) -> tuple[list[float], float]:
    """One component as pymatgen's ``SymmOp.from_xyz_str`` reads it (``ValueError`` where it fails): ``1.5x`` also
    sets the translation to 1, ``-1*y`` reads as ``+y``, ``x-x+y`` as ``-x+y``. Run only on a component
    :func:`_read_operation` read (numbers of bounded length), so linear."""
    row, shift = [0.0, 0.0, 0.0], 0.0
    for sign, a, b, variable in _PYMATGEN_ROTATION.findall(part):
        factor = float(a) / float(b) if a and b else float(a) if a else 1.0
        row[ord(variable) - ord("x")] = -factor if sign == "-" else factor
    for sign, a, b in _PYMATGEN_TRANSLATION.findall(part):
        shift = (-1 if sign == "-" else 1) * (float(a) / float(b) if b else float(a))
    return row, shift


def cif_operation_problem(texts: list[str]) -> str:
    """Why a CIF's listed operations are not symmetry operations ("" when they are): each rotation part must be an
    integer matrix of determinant ±1 in the cell's basis (any symmetry of any lattice is; ``2*x,y,z`` is not), and
    pymatgen must read the operation as written (else it applies another, or ignores the list for the space group
    named, whose operations the site count did not use); at most :data:`MAX_LISTED_OPERATIONS` of them."""
    if len(texts) > MAX_LISTED_OPERATIONS:
        return (
            f"{len(texts):,} symmetry operations listed, more than {MAX_LISTED_OPERATIONS:,} (no crystal has as many)"
        )
    for text in texts:
        try:
            parts, w, shifts = _read_operation(text)
        except (ValueError, ZeroDivisionError) as exc:
            return f"symmetry operation {text[:40]!r} cannot be read ({exc})"
        det = (
            w[0][0] * (w[1][1] * w[2][2] - w[1][2] * w[2][1])
            - w[0][1] * (w[1][0] * w[2][2] - w[1][2] * w[2][0])
            + w[0][2] * (w[1][0] * w[2][1] - w[1][1] * w[2][0])
        )
        if any(v.denominator != 1 for row in w for v in row) or abs(det) != 1:
            return f"{text[:40]!r} is not a symmetry operation (its rotation part is not an integer matrix of det ±1)"
        for part, row, shift in zip(parts, w, shifts):
            try:
                read_row, read_shift = _pymatgen_component(part)
            except (ValueError, ZeroDivisionError):
                read_row, read_shift = [], math.nan
            gap = (float(shift) - read_shift) % 1.0
            if read_row != [float(v) for v in row] or not (gap < 1e-9 or gap > 1 - 1e-9):
                return (
                    f"symmetry operation {text[:40]!r}: pymatgen reads {part[:20]!r} otherwise (write each of x, y, z "
                    "once, as ±x, and one translation n/m or decimal)"
                )
    return ""
