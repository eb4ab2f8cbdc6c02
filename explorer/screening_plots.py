"""The screening map's two plots, ε̄ and α against the band gap, drawn with Bokeh directly.

One :class:`~bokeh.models.ColumnDataSource` of the filtered candidates feeds both plots, so a box, lasso or tap
selection in one shows in the other; the training set (grey) is a second source shared by both. A filter or a new
colour replaces the sources' columns (numbers travel as binary arrays), nothing is rebuilt. Measured in-process
(``explorer/screening.py``'s view, built and serialised, 12,175 candidates): HoloViews' overlays cost 1.47 CPU-s
a session; these figures cost what ``benchmarks/speed/bench_room.py`` reports as the map's CPU.

Per plot: candidates coloured by ``color_by`` (viridis, with a colour bar; marker by gap class: ● insulator,
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


def _range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    return (low, high) if high > low else (low - 0.5, high + 0.5)


class MapPlots:
    """The two figures and their sources; :meth:`update` follows the filters and the colour choice.

    ``on_select(indices)`` (optional) is called with the selected rows (positions in the filtered frame) when a
    box/lasso/tap selection changes in the browser.
    """

    def __init__(
        self,
        filtered: pd.DataFrame,
        training: pd.DataFrame,
        color_by: str = STD_COLOR,
        on_select: Callable[[list[int]], None] | None = None,
        width: int | None = None,
        height: int = 380,
    ) -> None:
        from bokeh.models import ColumnDataSource

        self.color_by = color_by
        self.source = ColumnDataSource(candidate_columns(filtered, color_by))
        self.training = ColumnDataSource(training_columns(training))
        self.ood = ColumnDataSource(ood_columns(filtered))
        front, top = front_and_top_columns(filtered)
        self.front, self.top = ColumnDataSource(front), ColumnDataSource(top)
        self.mappers: dict = {}
        self.colorbars: dict = {}
        self.figures = [self._figure(*axis, width=width, height=height) for axis in AXES]
        if on_select is not None:
            self.source.selected.on_change("indices", lambda _attr, _old, new: on_select(list(new)))

    def _figure(self, y: str, std: str, label: str, ylabel: str, width: int | None, height: int):
        from bokeh.models import ColorBar, HoverTool, LinearColorMapper, Whisker
        from bokeh.palettes import Viridis256
        from bokeh.plotting import figure

        size = {"width": width} if width else {"sizing_mode": "stretch_width"}
        fig = figure(
            height=height,
            title=f"{ylabel} vs band gap",
            x_axis_label="band gap (eV)",
            y_axis_label=ylabel,
            tools="pan,wheel_zoom,box_select,lasso_select,tap,reset,save",
            active_drag="box_select",
            **size,
        )
        fig.scatter("band_gap", y, source=self.training, color="#b0b0b0", alpha=0.5, size=4, line_alpha=0,
                    legend_label="training set (DFT)")  # fmt: skip
        color = color_column(y, std, self.color_by)
        mapper = LinearColorMapper(palette=Viridis256, low=_range(self.source.data[f"color_{y}"])[0],
                                   high=_range(self.source.data[f"color_{y}"])[1], nan_color="#999999")  # fmt: skip
        points = fig.scatter(
            "band_gap", y, source=self.source, marker="marker", size=7, line_color="black", line_width=0.3,
            fill_color={"field": f"color_{y}", "transform": mapper}, legend_label=CANDIDATES_LABEL,
            selection_fill_color=SELECTED_COLOR, nonselection_fill_alpha=0.35, nonselection_line_alpha=0.35,
        )  # fmt: skip
        hover = [("formula", "@{formula}"), ("id", "@{id}"), (label, f"@{{{y}}}{{0.00}}"),
                 ("std", f"@{{{std}}}{{0.00}}"), ("band gap", "@{band_gap}{0.00} eV")]  # fmt: skip
        fig.add_tools(HoverTool(renderers=[points], tooltips=hover))
        ood = fig.scatter("band_gap", y, source=self.ood, marker="x", color="#ff7f0e", size=11, line_width=2,
                          legend_label="OOD-flagged (x)")  # fmt: skip
        fig.add_tools(HoverTool(renderers=[ood], tooltips=[("formula", "@{formula}"), ("OOD", "@{ood_reason}")]))
        if y == "eps_mean":
            fig.step("band_gap", "eps_mean", source=self.front, mode="after", color=SELECTED_COLOR, line_width=2,
                     legend_label="Pareto front ε̄ vs gap")  # fmt: skip
            fig.add_layout(Whisker(source=self.front, base="band_gap", lower="lower", upper="upper",
                                   line_color=SELECTED_COLOR))  # fmt: skip
            top = fig.scatter("band_gap", "eps_mean", source=self.top, marker="star", size=14, color="gold",
                              line_color="black", legend_label="top 10 ε̄·E_g")  # fmt: skip
            fig.add_layout(Whisker(source=self.top, base="band_gap", lower="lower", upper="upper",
                                   line_color="#b8860b"))  # fmt: skip
            fig.add_tools(HoverTool(renderers=[top], tooltips=[("formula", "@{formula}"), ("ε̄·E_g", "@{fom}{0.0}")]))
        colorbar = ColorBar(color_mapper=mapper, title=color, width=10)
        fig.add_layout(colorbar, "right")
        fig.legend.location = "top_right"
        fig.legend.click_policy = "hide"
        fig.legend.label_text_font_size = "8pt"
        self.mappers[y], self.colorbars[y] = mapper, colorbar
        return fig

    def update(self, filtered: pd.DataFrame, color_by: str) -> None:
        """New rows (a filter changed) or a new colour: the sources' columns are replaced, the selection cleared."""
        self.color_by = color_by
        self.source.selected.indices = []
        data = candidate_columns(filtered, color_by)
        self.source.data = data
        self.ood.data = ood_columns(filtered)
        self.front.data, self.top.data = front_and_top_columns(filtered)
        for y, std, _, _ in AXES:
            self.mappers[y].low, self.mappers[y].high = _range(data[f"color_{y}"])
            self.colorbars[y].title = color_column(y, std, color_by)
