"""Logging set-up for the command line and the scripts.

Library modules log to ``logging.getLogger(__name__)`` (all under ``goectp``) and never print; a program that
wants the progress messages calls :func:`setup_logging` once. Under pytest (whose handlers are already on the
root logger) it only sets the level, so the messages go to ``caplog``.
"""

from __future__ import annotations

import logging


class _PlainFormatter(logging.Formatter):
    """INFO lines as plain text (what the CLI printed before); other levels prefixed with their name."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno == logging.INFO else f"{record.levelname.lower()}: {text}"


def setup_logging(debug: bool = False) -> None:
    """Show ``goectp``'s INFO messages (DEBUG with ``debug``) on stderr; a no-op for an already configured root."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(_PlainFormatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    logging.getLogger("goectp").setLevel(logging.DEBUG if debug else logging.INFO)
