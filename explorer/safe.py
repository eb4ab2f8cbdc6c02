"""Hostile input at the explorer's door: user text escaped before it reaches HTML/Markdown, and a cheap site-count
estimate of a structure file *before* the expensive parse. CSV exports go through :mod:`goectp.csvsafe` (the one
neutraliser of formula cells, shared with ``goectp screen``).

Every string a user controls (uploaded file names, search text, ids and formulas from the screening table or a
candidate pool, labels, and exception messages that may quote any of them) goes through :func:`escape_text`
before it is put into a ``pn.pane.Alert`` / ``Markdown`` / ``HTML``.
"""

from __future__ import annotations

import html
import re
from typing import Any

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


# ---------------------------------------------------------------------------------------------------- pre-check
#: ``(at least, at most)`` sites parsing a text will give: the one estimate the CLI, screening and explorer share
estimate_sites = site_count_bounds
