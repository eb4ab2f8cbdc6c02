"""The screening map: ε̄ or α against the band gap, drawn with Bokeh directly.

One figure over a :class:`~bokeh.models.ColumnDataSource` of the filtered candidates (and one of the training
set, grey); switching between ε̄ and α changes the glyphs' fields, so a box, lasso or tap selection stays on the
same points. A filter or a new colour replaces the sources' columns (numbers travel as binary arrays), nothing
is rebuilt. The server's CPU for a session's map, 12,175 candidates (``benchmarks/speed/bench_room.py``, 30
sessions): 1.84 s with the two HoloViews overlays this replaces, 0.46 s now.

On the map: candidates coloured by ``color_by`` (viridis, with a colour bar; marker by gap class: ● insulator,
■ metal, ◆ unknown gap drawn at ``UNKNOWN_GAP_X``), OOD-flagged candidates (orange ×), and on the ε̄ plot the
Pareto front of ε̄ vs gap (red steps) and the top 10 by ε̄·E_g (gold ★), both with ±σ error bars.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from explorer.screening_data import GAP_INSULATOR, GAP_METAL, GAP_UNKNOWN, UNKNOWN_GAP_X, gap_class, pareto_front

#: (column, its std, hover label, axis label) of the two plots.
AXES = (
    ("eps_mean", "eps_mean_std", "ε̄", "ε̄ (mean eigenvalue)"),
    ("anisotropy", "anisotropy_std", "α", "α = λmax/λmin"),
)
MARKERS = {GAP_INSULATOR: "circle", GAP_METAL: "square", GAP_UNKNOWN: "diamond"}
CANDIDATES_LABEL = "candidates (◆ unknown gap, at −0.4 eV)"
STD_COLOR = "ensemble std"
SELECTED_COLOR = "#d62728"


def color_column(y: str, std: str, color_by: str) -> str:
    """The column that colours a plot of ``y``: its own std for ``'ensemble std'``, else ``color_by``."""
    return std if color_by == STD_COLOR else color_by


def _numbers(df: pd.DataFrame, column: str) -> np.ndarray:
    if column not in df.columns:
        return np.full(len(df), np.nan)
    values = np.array(pd.to_numeric(df[column], errors="coerce"), dtype=float)  # a copy: pandas may share its data
    values[~np.isfinite(values)] = np.nan  # e.g. α of a tensor with λmin ≤ 0: not drawn
    return values


def _texts(df: pd.DataFrame, column: str) -> np.ndarray:
    if column not in df.columns:
        return np.full(len(df), "", dtype=object)
    return df[column].fillna("").astype(str).to_numpy(dtype=object)


def candidate_columns(filtered: pd.DataFrame, color_by: str) -> dict[str, np.ndarray]:
    """The candidates' source: positions, hover fields, marker and one colour column per plot."""
    gap = _numbers(filtered, "band_gap")
    if "gap_class" in filtered.columns:  # the map's filters computed it already
        classes = filtered["gap_class"]
    else:
        classes = gap_class(filtered["band_gap"]) if "band_gap" in filtered.columns else pd.Series([], dtype=object)
    data = {
        "band_gap": np.where(np.isnan(gap), UNKNOWN_GAP_X, gap),  # unknown gap: left of 0, own marker
        "id": _texts(filtered, "id"),
        "formula": _texts(filtered, "formula"),
        "marker": classes.map(MARKERS).fillna("circle").to_numpy(dtype=object),
    }
    for y, std, _, _ in AXES:
        data[y] = _numbers(filtered, y)
        data[std] = _numbers(filtered, std)
        data[f"color_{y}"] = _numbers(filtered, color_column(y, std, color_by))
    return data


def training_columns(training: pd.DataFrame) -> dict[str, np.ndarray]:
    """The grey background: the training set's DFT values (no hover, so no text)."""
    return {c: _numbers(training, c) for c in ("band_gap", "eps_mean", "anisotropy")}


def ood_columns(filtered: pd.DataFrame) -> dict[str, np.ndarray]:
    """Candidates flagged out of distribution (if the results carry the flag)."""
    if "ood_flag" in filtered.columns:
        ood = filtered[filtered["ood_flag"].astype("boolean").fillna(False).astype(bool)]
    else:
        ood = filtered.iloc[0:0]
    gap = _numbers(ood, "band_gap")
    return {
        "band_gap": np.where(np.isnan(gap), UNKNOWN_GAP_X, gap),
        "eps_mean": _numbers(ood, "eps_mean"),
        "anisotropy": _numbers(ood, "anisotropy"),
        "formula": _texts(ood, "formula"),
        "ood_reason": _texts(ood, "ood_reason"),
    }


def front_and_top_columns(filtered: pd.DataFrame, std: str = "eps_mean_std") -> tuple[dict, dict]:
    """The Pareto front of ε̄ vs gap (known gaps > 0) and the top 10 by ε̄·E_g, each with its ±σ bounds."""
    gap = _numbers(filtered, "band_gap")
    known = filtered[gap > 0]
    front = known.iloc[pareto_front(known["band_gap"], known["eps_mean"])] if len(known) else known
    top = known.assign(fom=known["eps_mean"] * known["band_gap"]).nlargest(10, "fom") if len(known) else known

    def columns(rows: pd.DataFrame) -> dict:
        eps, sigma = _numbers(rows, "eps_mean"), np.nan_to_num(_numbers(rows, std))
        out = {"band_gap": _numbers(rows, "band_gap"), "eps_mean": eps, "lower": eps - sigma, "upper": eps + sigma}
        out["formula"] = _texts(rows, "formula")
        out["fom"] = out["band_gap"] * eps
        return out

    return columns(front), columns(top)


def _add(fig, source, glyph):
    """``glyph`` over ``source`` in ``fig``, one glyph model: Bokeh's ``fig.scatter`` adds a non-selection and a
    muted copy of every glyph (two more models a renderer, a session)."""
    return fig.add_glyph(source, glyph)


def _range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    return (low, high) if high > low else (low - 0.5, high + 0.5)


class MapPlots:
    """One figure, ε̄ or α against the band gap (``y``), with its sources; :meth:`update` follows the filters and
    the colour, :meth:`show` switches the quantity in place (the same points, so a selection stays).

    ``on_select(indices)`` (optional) is called with the selected rows (positions in the filtered frame) when a
    box/lasso/tap selection changes in the browser.
    """

    def __init__(
        self,
        filtered: pd.DataFrame,
        training: pd.DataFrame,
        color_by: str = STD_COLOR,
        on_select: Callable[[list[int]], None] | None = None,
        y: str = "eps_mean",
        width: int | None = None,
        height: int = 400,
    ) -> None:
        from bokeh.models import ColumnDataSource

        self.color_by, self.y = color_by, y
        self.source = ColumnDataSource(candidate_columns(filtered, color_by))
        self.training = ColumnDataSource(training_columns(training))
        self.ood = ColumnDataSource(ood_columns(filtered))
        front, top = front_and_top_columns(filtered)
        self.front, self.top = ColumnDataSource(front), ColumnDataSource(top)
        self.figure = self._figure(width, height)
        self.show(y)
        if on_select is not None:
            self.source.selected.on_change("indices", lambda _attr, _old, new: on_select(list(new)))

    def _figure(self, width: int | None, height: int):
        from bokeh.models import ColorBar, HoverTool, Legend, LegendItem, LinearColorMapper, Scatter, Step, Whisker
        from bokeh.palettes import Viridis256
        from bokeh.plotting import figure

        size = {"width": width} if width else {"sizing_mode": "stretch_width"}
        fig = figure(
            height=height,
            x_axis_label="band gap (eV)",
            tools="pan,wheel_zoom,box_select,lasso_select,tap,reset,save",
            active_drag="box_select",
            **size,
        )
        self.background = _add(
            fig, self.training, Scatter(x="band_gap", fill_color="#b0b0b0", fill_alpha=0.5, size=4, line_alpha=0)
        )
        self.mapper = LinearColorMapper(palette=Viridis256, nan_color="#999999")
        glyph = Scatter(
            x="band_gap",
            marker={"field": "marker"},
            size=7,
            line_color="black",
            line_width=0.3,
            fill_color={"field": "color_eps_mean", "transform": self.mapper},
        )
        self.points = _add(fig, self.source, glyph)
        self.points.selection_glyph = glyph.clone(fill_color=SELECTED_COLOR)
        self.points.nonselection_glyph = glyph.clone(fill_alpha=0.35, line_alpha=0.35)
        self.hover = HoverTool(renderers=[self.points])
        self.flagged = _add(
            fig, self.ood, Scatter(x="band_gap", marker="x", line_color="#ff7f0e", size=11, line_width=2)
        )
        front = _add(
            fig, self.front, Step(x="band_gap", y="eps_mean", mode="after", line_color=SELECTED_COLOR, line_width=2)
        )
        top = _add(
            fig,
            self.top,
            Scatter(x="band_gap", y="eps_mean", marker="star", size=14, fill_color="gold", line_color="black"),
        )
        bars = [
            Whisker(
                source=source,
                base="band_gap",
                lower="lower",
                upper="upper",
                line_color=color,
                lower_head=None,
                upper_head=None,
            )  # ±σ, without end caps
            for source, color in ((self.front, SELECTED_COLOR), (self.top, "#b8860b"))
        ]
        self.eps_only = [front, top, *bars]  # the Pareto front and the top 10 by ε̄·E_g: on the ε̄ map only
        for bar in bars:
            fig.add_layout(bar)
        fig.add_tools(
            self.hover,
            HoverTool(renderers=[self.flagged], tooltips=[("formula", "@{formula}"), ("OOD", "@{ood_reason}")]),
            HoverTool(renderers=[top], tooltips=[("formula", "@{formula}"), ("ε̄·E_g", "@{fom}{0.0}")]),
        )
        self.colorbar = ColorBar(color_mapper=self.mapper, width=10)
        fig.add_layout(self.colorbar, "right")
        items = [
            ("training set (DFT)", self.background),
            (CANDIDATES_LABEL, self.points),
            ("OOD-flagged (x)", self.flagged),
            ("Pareto front ε̄ vs gap", front),
            ("top 10 ε̄·E_g", top),
        ]
        fig.add_layout(
            Legend(
                items=[LegendItem(label=label, renderers=[r]) for label, r in items],
                location="top_right",
                click_policy="hide",
                label_text_font_size="8pt",
            )
        )
        return fig

    def show(self, y: str) -> None:
        """Plot ``y`` (``eps_mean`` or ``anisotropy``): fields, colour, hover, labels switched in place."""
        axis = {a[0]: a for a in AXES}.get(y)
        if axis is None:
            raise ValueError(f"cannot plot {y!r}: one of {[a[0] for a in AXES]}")
        y, std, label, ylabel = axis
        self.y = y
        for renderer in (self.background, self.points, self.flagged):
            renderer.glyph.y = y
        for glyph in (self.points.selection_glyph, self.points.nonselection_glyph):
            glyph.y = y
        color = {"field": f"color_{y}", "transform": self.mapper}
        for glyph in (self.points.glyph, self.points.nonselection_glyph):
            glyph.fill_color = color
        self.mapper.low, self.mapper.high = _range(self.source.data[f"color_{y}"])
        self.colorbar.title = color_column(y, std, self.color_by)
        self.hover.tooltips = [
            ("formula", "@{formula}"),
            ("id", "@{id}"),
            (label, f"@{{{y}}}{{0.00}}"),
            ("std", f"@{{{std}}}{{0.00}}"),
            ("band gap", "@{band_gap}{0.00} eV"),
        ]
        for item in self.eps_only:
            item.visible = y == "eps_mean"
        self.figure.yaxis.axis_label = ylabel
        self.figure.title.text = f"{ylabel} vs band gap"

    def update(self, filtered: pd.DataFrame, color_by: str) -> None:
        """New rows (a filter changed) or a new colour: the sources' columns are replaced, the selection cleared."""
        self.color_by = color_by
        self.source.selected.indices = []
        self.source.data = candidate_columns(filtered, color_by)
        self.ood.data = ood_columns(filtered)
        self.front.data, self.top.data = front_and_top_columns(filtered)
        self.show(self.y)
