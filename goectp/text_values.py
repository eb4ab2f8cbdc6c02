"""Small readers of values from user files: a count token as ``int`` reads it, a number as a finite float, a name
shortened for a message."""

from __future__ import annotations

import math
from typing import Any


def short(name: str, limit: int = 80) -> str:
    """``name``, or its first ``limit`` − 1 characters and "…" (a message quotes user text at a bounded length)."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def count_value(token: str) -> int | None:
    """``token`` as a site count when it is an integer (``int`` reads ``+5`` and ``1_000`` too), else ``None``."""
    try:
        return int(token)
    except ValueError:
        return None


def finite_float(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` for anything else (null, a bool, a list, text that is not a number,
    NaN, ±inf, an integer too large for a float)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if math.isfinite(out) else None
