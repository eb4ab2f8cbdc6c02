"""Small readers the format pre-checks share: a count token as ``int`` reads it, a name shortened for a message."""

from __future__ import annotations


def short(name: str, limit: int = 80) -> str:
    """``name``, or its first ``limit`` − 1 characters and "…" (a message quotes user text at a bounded length)."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def count_value(token: str) -> int | None:
    """``token`` as a site count when it is an integer (``int`` reads ``+5`` and ``1_000`` too), else ``None``."""
    try:
        return int(token)
    except ValueError:
        return None
