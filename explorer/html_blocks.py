"""Small HTML building blocks for panes that would otherwise be Panel objects of their own (an ``Alert``, a
``Card``'s header, a ``FileDownload``): every Panel object on the first page is ~3-10 ms of server CPU per session
(``benchmarks/speed/bench_room.py``). Texts passed in must already be escaped (:func:`explorer.safe.escape_html`)."""

from __future__ import annotations

import base64

#: The look of a card without its header and button: the Crystal tab's two boxes.
BOX_STYLES = {"border": "1px solid #e0e0e0", "border-radius": "6px", "padding": "6px 10px", "background": "#fff"}
ALERT_COLORS = {
    "danger": ("#842029", "#f8d7da"),
    "warning": ("#664d03", "#fff3cd"),
    "info": ("#055160", "#cff4fc"),
    "success": ("#0f5132", "#d1e7dd"),
}
LINK_STYLE = (
    "display:inline-block;padding:4px 12px;margin-right:8px;border:1px solid #ccc;border-radius:4px;"
    "color:#1f5f8b;text-decoration:none"
)


def card_title(text: str) -> str:
    """A box's title line."""
    return f"<div class='goectp-card-title' style='font-weight:600;font-size:1.1em;margin:2px 0 6px'>{text}</div>"


def alert_html(text: str, kind: str, css_class: str) -> str:
    """An alert box (``kind``: danger, warning, info, success) with ``css_class``."""
    color, background = ALERT_COLORS[kind]
    return (
        f"<div class='{css_class} alert alert-{kind}' style='color:{color};background:{background};"
        f"padding:8px 12px;border-radius:4px;margin:4px 0'>{text}</div>"
    )


def download_link(text: str, filename: str, mime: str, label: str, css_class: str) -> str:
    """A link that downloads ``text`` as ``filename`` (a ``data:`` URL: the file travels with the page, no server
    round trip; for files of a few kB)."""
    data = base64.b64encode(text.encode()).decode()
    return (
        f"<a class='{css_class}' download='{filename}' href='data:{mime};charset=utf-8;base64,{data}' "
        f"style='{LINK_STYLE}'>{label}</a>"
    )
