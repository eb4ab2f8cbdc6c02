"""Cheap views: :func:`live_pane` (a ``@param.depends`` view as one pane updated in place) and
:func:`add_on_demand` (a toggle whose content is built when first pressed).

Embedding the method itself (Panel wraps it in a ``ParamMethod``: a replacement pane, an inner layout and the
watchers) costs ~16 ms of server CPU a view and a session; the pane alone ~5 ms (measured in-process, 50 builds,
frozen heap). With ten such views on the first page that was ~0.1 CPU-s of every session's open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import panel as pn
import param


def _dependencies(view: Callable[[], Any]) -> list[str]:
    info = getattr(view, "_dinfo", None)
    if not info or not info.get("dependencies"):
        raise ValueError(f"{view.__name__} is not a @param.depends method")
    return list(info["dependencies"])


def live_pane(view: Callable[[], Any], **holder: Any) -> Any:
    """``view()`` (a bound ``@param.depends`` method), kept current: when one of its dependencies changes it is
    called again and its result copied into the pane shown.

    Without ``holder`` options the view must return panes of one type (their parameters are copied); with them
    (e.g. ``sizing_mode``) the pane sits in a ``pn.Column(**holder)`` and a pane of another type replaces it.
    """
    owner: param.Parameterized = view.__self__
    first = view()
    shown = pn.Column(first, **holder) if holder else first

    def refresh(*_events: param.parameterized.Event) -> None:
        new = view()
        current = shown.objects[0] if holder else shown
        if type(new) is type(current) and isinstance(current, pn.pane.PaneBase):
            current.param.update(**{k: v for k, v in new.param.values().items() if k != "name"})
        elif holder:
            shown.objects = [new]
        else:
            raise TypeError(f"{view.__name__} returned a {type(new).__name__}, shown is a {type(current).__name__}")

    owner.param.watch(refresh, _dependencies(view))
    return shown


def add_on_demand(layout: pn.Column, content: Any, title: str, css_class: str) -> pn.widgets.Toggle:
    """Append to ``layout`` a toggle button (CSS class ``{css_class}-toggle``) that shows ``content`` below itself,
    in a column of class ``css_class``. ``content`` (an object to display, or a function that builds it) is
    displayed, and so built, the first time the button is pressed: a session pays for what its visitor looks at.
    One Bokeh model until then (a collapsed ``pn.Card`` is a header, a button and a body: ~10-20 ms of server CPU
    a session against ~3 ms; ``benchmarks/speed/bench_room.py``)."""
    toggle = pn.widgets.Toggle(
        label=f"▸ {title}",
        color="light",
        css_classes=[f"{css_class}-toggle", "goectp-on-demand"],
        sizing_mode="stretch_width",
    )
    shown: list[Any] = []

    def show(event: param.parameterized.Event) -> None:
        toggle.label = f"{'▾' if event.new else '▸'} {title}"
        if shown:
            shown[0].visible = event.new
        elif event.new:
            built = content() if callable(content) else content
            shown.append(pn.Column(built, css_classes=[css_class], sizing_mode="stretch_width"))
            layout.insert(layout.objects.index(toggle) + 1, shown[0])

    toggle.param.watch(show, "value")
    layout.append(toggle)
    return toggle
