"""CSV files that are safe to open in a spreadsheet: no cell is read as a formula (CSV / formula injection).

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (an id like ``=HYPERLINK(...)``
or ``=cmd|' /C calc'!A0`` from a candidate pool) is prefixed with a single quote, as OWASP recommends. Only text
cells change: numbers (negative ones included) are written as numbers.

Every CSV writer of goectp goes through :func:`write_csv` (or :func:`csv_safe_frame` /
:func:`neutralize_cell` for writers that build the text themselves, like the explorer's download buttons).
"""

from __future__ import annotations

import csv
import os
from typing import Any

import pandas as pd

#: First characters that make a spreadsheet treat a cell as a formula (or a DDE command).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _needs_quote(text: str) -> bool:
    # also quote an already quoted formula ("'=x" -> "''=x") so that restore_cell(neutralize_cell(v)) == v
    return text.startswith(FORMULA_PREFIXES) or (text.startswith("'") and _needs_quote(text[1:]))


def neutralize_cell(value: Any) -> Any:
    """``"'" + value`` for a string starting with one of :data:`FORMULA_PREFIXES`; anything else unchanged.

    >>> neutralize_cell("=1+2"), neutralize_cell("-1+2"), neutralize_cell("NaCl"), neutralize_cell(-1.5)
    ("'=1+2", "'-1+2", 'NaCl', -1.5)
    """
    if isinstance(value, str) and _needs_quote(value):
        return "'" + value
    return value


def restore_cell(value: Any) -> Any:
    """The inverse of :func:`neutralize_cell` (for code that reads goectp's CSV files back: ids must match)."""
    if isinstance(value, str) and value.startswith("'") and _needs_quote(value[1:]):
        return value[1:]
    return value


def restore_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a frame read from a CSV written by :func:`write_csv`, with :func:`restore_cell` on text cells."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(restore_cell, na_action="ignore")
    out.columns = [restore_cell(c) for c in out.columns]
    return out


def csv_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (object, string and categorical columns; also the column names) are
    neutralised with :func:`neutralize_cell`; numeric columns are untouched."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(object)
        if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            out[col] = series.map(neutralize_cell, na_action="ignore")
    out.columns = [neutralize_cell(c) for c in out.columns]
    return out


def _has_carriage_return(frame: pd.DataFrame) -> bool:
    text = [frame[c] for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c].dtype)]
    return any(any(isinstance(v, str) and "\r" in v for v in series) for series in text)


def write_csv(frame: pd.DataFrame, path: str | os.PathLike | None = None, **kwargs: Any) -> str | None:
    """``DataFrame.to_csv`` of :func:`csv_safe_frame` (returns the text when ``path`` is None, like pandas).

    A text cell holding a carriage return would split its row (pandas and ``csv`` quote only the delimiter, the
    quote character and the line terminator ``\n``): then every text cell is quoted (``QUOTE_NONNUMERIC``).
    """
    safe = csv_safe_frame(frame)
    if "quoting" not in kwargs and _has_carriage_return(safe):
        kwargs["quoting"] = csv.QUOTE_NONNUMERIC
    return safe.to_csv(path, **kwargs)
