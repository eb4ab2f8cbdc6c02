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

from goectp.structures import site_count_bounds

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
#: ``(at least, at most)`` sites parsing a text will give: the one estimate the CLI, screening and explorer share
estimate_sites = site_count_bounds
