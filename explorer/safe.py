"""Hostile input at the explorer's door: user text escaped before it reaches HTML/Markdown, CSV cells that a
spreadsheet would run as formulas neutralised, and a cheap site-count estimate of a structure file *before* the
expensive parse.

Every string a user controls (uploaded file names, search text, ids and formulas from the screening table or a
candidate pool, labels, and exception messages that may quote any of them) goes through :func:`escape_text`
before it is put into a ``pn.pane.Alert`` / ``Markdown`` / ``HTML``.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pandas as pd

#: Markdown punctuation that could turn user text into links, emphasis, code or tables (after ``html.escape``,
#: so ``&`` ``#`` ``;`` of the entities are left alone).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~!])")


def escape_html(text: Any) -> str:
    """``html.escape`` of ``str(text)`` (quotes too): safe inside HTML text and attribute values."""
    return html.escape(str(text), quote=True)


def escape_text(text: Any) -> str:
    """User text for a Markdown-rendered pane (``Alert``, ``Markdown``): HTML-escaped, and Markdown's active
    punctuation backslash-escaped, so that it shows literally as text and never becomes markup, a link or a
    script."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", escape_html(text))


# ---------------------------------------------------------------------------------------------------- CSV
#: A cell starting with one of these is run as a formula by Excel / LibreOffice / Google Sheets.
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralize_csv_cell(value: Any) -> Any:
    """Prefix ``'`` to a text cell that a spreadsheet would run as a formula (OWASP "CSV injection"); numbers and
    other text are unchanged."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralize_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (and column names) are neutralised; numeric columns untouched."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralize_csv_cell)
    out.columns = [neutralize_csv_cell(c) for c in out.columns]
    return out


# ---------------------------------------------------------------------------------------------------- pre-check
_CIF_LOOP = re.compile(r"^\s*loop_\s*$", re.IGNORECASE)


def _cif_estimate(text: str) -> tuple[int, int]:
    """``(atom rows, atom rows × symmetry operations)`` of a CIF's ``_atom_site_`` loop(s): the sites pymatgen
    will generate lie between the two (duplicates on special positions are merged)."""
    lines = text.splitlines()
    rows = ops = 0
    i = 0
    while i < len(lines):
        if not _CIF_LOOP.match(lines[i]):
            i += 1
            continue
        i += 1
        tags = []
        while i < len(lines) and lines[i].lstrip().startswith("_"):
            tags.append(lines[i].strip().lower())
            i += 1
        count = 0
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped.startswith(("_", "loop_", "data_")) or _CIF_LOOP.match(lines[i]):
                break
            if stripped and not stripped.startswith(("#", ";")):
                count += 1
            i += 1
        if any(t.startswith("_atom_site_fract_") or t.startswith("_atom_site_cartn_") for t in tags):
            rows += count
        elif any(t.startswith(("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz")) for t in tags):
            ops = max(ops, count)
    return rows, rows * max(ops, 1)


def _poscar_estimate(text: str) -> int:
    lines = text.splitlines()
    for line in lines[5:7]:  # VASP 5 (symbols on line 6, counts on line 7) or VASP 4 (counts on line 6)
        parts = line.split()
        if parts and all(p.isdigit() for p in parts):
            return sum(int(p) for p in parts)
    return 0


def estimate_sites(text: str, fmt: str) -> tuple[int, int]:
    """A cheap estimate (one pass over the text, no parsing) of how many sites parsing ``text`` will produce, as
    ``(at least, at most)``: a CIF's atom rows and rows × symmetry operations, POSCAR's counts line, the first
    line of an (ext)xyz file, the number of ``"species"`` entries of a pymatgen JSON. ``(0, 0)`` when it cannot
    tell (the parser then decides)."""
    if fmt == "cif":
        return _cif_estimate(text)
    n = 0
    if fmt == "poscar":
        n = _poscar_estimate(text)
    elif fmt == "extxyz":
        first = text.lstrip().split("\n", 1)[0].strip()
        n = int(first) if first.isdigit() else 0
    elif fmt == "json":
        n = text.count('"species"')
    return n, n
