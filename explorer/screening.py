"""ScreeningMap: ε̄ or α vs band gap of the screened candidates (a switch above the map), over the training materials.

The data (:class:`~explorer.screening_data.ScreeningData`, re-exported here) come from ``assets/screening/``:
the candidates with the ensemble's ε̄, α and their std, the DFT values of the training data (the grey background)
and the structures of the listed candidates, so a click loads one offline (the shared candidate pool is the
fallback). Box/lasso selection fills the table; a tap (or a table row click) loads that structure into the loader.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import panel as pn
import param

from explorer.live import live_pane
from explorer.loader import StructureLoader
from explorer.screening_data import (  # noqa: F401 - re-exported: the data side of the map
    GAP_INSULATOR,
    GAP_METAL,
    GAP_UNKNOWN,
    OPTIONAL_COLUMNS,
    RESULT_COLUMNS,
    RESULTS_FILE,
    STRUCTURES_FILE,
    SUMMARY_FILE,
    TABLE_COLUMNS,
    TRAINING_COLUMNS,
    TRAINING_FILE,
    UNKNOWN_GAP_X,
    ScreeningData,
    _read_json_object,
    gap_class,
    pareto_front,
)
from explorer.screening_plots import AXES, MapPlots

Y = [axis[0] for axis in AXES]

#: The table's columns (each is four Bokeh models a session); the exports carry every column.
TABLE_SHOWN = (
    "id",
    "formula",
    "band_gap",
    "n_sites",
    "eps_mean",
    "eps_mean_std",
    "eps_mean_physics",  # the high-κ list's ε̄ with the physics term, where the screen ran that stage
    "anisotropy",
    "score",
    "ood_flag",
)


class ScreeningMap(pn.viewable.Viewer):
    """Scatter maps of the screening results with filters, selection table, structure loading and exports.

    ``loader`` (a :class:`~explorer.loader.StructureLoader`, optional) receives the structure of a picked point.
    Outputs: ``filtered`` (rows passing the filters), ``selected`` (rows of the current box/lasso/tap selection),
    ``picked`` (id of the last point loaded), ``message``.
    """

    data = param.ClassSelector(class_=ScreeningData, default=None, allow_None=True)
    loader = param.ClassSelector(
        class_=StructureLoader, default=None, allow_None=True, doc="StructureLoader that receives picked structures"
    )
    min_band_gap = param.Number(default=0.0, bounds=(0.0, None), doc="Band gap ≥ (eV)")
    gap_classes = param.ListSelector(
        default=[GAP_INSULATOR, GAP_UNKNOWN],
        objects=[GAP_INSULATOR, GAP_METAL, GAP_UNKNOWN],
        doc="Shown: insulators, known metals (hidden by default), unknown gaps",
    )
    max_sites = param.Integer(default=200, bounds=(1, None), doc="Atoms per cell ≤")
    sources = param.ListSelector(default=[], objects=[], doc="Candidate sources shown")
    search = param.String(default="", doc="Filter by formula or id (substring)")
    y_axis = param.Selector(
        default="eps_mean", objects={"ε̄ vs band gap": "eps_mean", "α vs band gap": "anisotropy"}, doc="Plotted"
    )
    color_by = param.Selector(
        default="ensemble std",
        objects=["ensemble std", "score", "n_sites"],
        doc="Colour: the std of the plotted quantity, the acquisition score, or cell size",
    )
    filtered = param.DataFrame(default=pd.DataFrame(columns=TABLE_COLUMNS), doc="Rows passing the filters")
    selected = param.DataFrame(default=pd.DataFrame(columns=TABLE_COLUMNS), doc="Rows of the current selection")
    picked = param.String(default="")
    message = param.String(default="")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.data is None:
            self.data = ScreeningData()
        if (self.data.training_problem or self.data.physics_problem) and not self.message:
            self.message = self.data.training_problem or self.data.physics_problem
        self._columns = TABLE_COLUMNS + [c for c in OPTIONAL_COLUMNS if c in self.data.results.columns]
        if self.data.available:
            srcs = sorted(self.data.results["source"].dropna().astype(str).unique())
            self.param.sources.objects = srcs
            if not self.sources:
                self.sources = list(srcs)
            if "score_aniso" in self.data.results.columns:
                self.param.color_by.objects = [*self.param.color_by.objects, "score_aniso"]
        self._table = pn.widgets.Tabulator(
            self._table_frame(),
            pagination="remote",
            page_size=10,
            show_index=False,
            disabled=True,
            selectable=1,
            sizing_mode="stretch_width",
            css_classes=["goectp-screening-table"],
        )
        self._table.on_click(self._on_table_click)
        self._plots: MapPlots | None = None  # the figure, built on the first display
        self._apply_filters()
        self._layout: pn.Column | None = None  # built once, on the first display (the plots cost)

    # ------------------------------------------------------------------------------------------------ state
    @param.depends("min_band_gap", "max_sites", "sources", "search", "gap_classes", watch=True)
    def _apply_filters(self) -> None:
        df = self.data.results
        if self.data.available:
            df = df.assign(
                gap_class=gap_class(df["band_gap"]), fom=df["eps_mean"] * pd.to_numeric(df["band_gap"], errors="coerce")
            )
            known = df["gap_class"] != GAP_UNKNOWN
            keep = df["gap_class"].isin(self.gap_classes) & (df["n_sites"] <= self.max_sites)
            keep &= ~known | (df["band_gap"].fillna(-1) >= self.min_band_gap)
            if self.param.sources.objects:
                keep &= df["source"].astype(str).isin(self.sources)
            q = self.search.strip().lower()
            if q:
                keep &= df["formula"].astype(str).str.lower().str.contains(q, regex=False) | df["id"].astype(
                    str
                ).str.lower().str.contains(q, regex=False)
            df = df[keep]
        cols = self._columns + [c for c in ("gap_class", "fom") if c in df.columns and c not in self._columns]
        self.filtered = df.reindex(columns=cols).reset_index(drop=True)
        self.selected = self.filtered.iloc[0:0]
        self._sync_table()

    def set_selection(self, index: list[int]) -> None:
        """Rows ``index`` (positions in ``filtered``, as the plots' selection streams report them)."""
        index = [i for i in (index or []) if 0 <= i < len(self.filtered)]
        self.selected = self.filtered.iloc[index].reset_index(drop=True)
        self._sync_table()
        if len(index) == 1:  # a tap: load it
            self.pick(str(self.filtered.iloc[index[0]]["id"]))

    def pick(self, key: str) -> bool:
        """Load candidate ``key`` into the loader (if any). Returns whether its structure was found."""
        try:
            structure = self.data.structure(key)
        except ValueError as exc:  # a damaged structures file or record (StructureError is a ValueError)
            self.message = f"{key}: {exc}"
            return False
        if structure is None:
            self.message = f"{key}: its structure is not in {STRUCTURES_FILE} (nor in the shared candidate pool)"
            return False
        self.picked = key
        row = self.data.results[self.data.results["id"] == key]
        formula = str(row["formula"].iloc[0]) if len(row) else structure.composition.reduced_formula
        self.message = f"Loaded {key} ({formula}) from the screening results"
        if self.loader is not None:
            ok = self.loader.set_structure(structure, f"{key} (screening)", "screening")
            if not ok:
                self.message = self.loader.error
            return ok
        return True

    def _table_frame(self) -> pd.DataFrame:
        """The table's rows (the selection, else the top 50 by score), in the columns of ``TABLE_SHOWN``."""
        shown = [c for c in TABLE_SHOWN if c in self.filtered.columns]
        if len(self.selected):
            return self.selected[shown]
        top = self.filtered.sort_values("score", ascending=False).head(50) if len(self.filtered) else self.filtered
        return top[shown].reset_index(drop=True)

    def _sync_table(self) -> None:
        if hasattr(self, "_table"):
            self._table.value = self._table_frame()

    def _on_table_click(self, event: Any) -> None:
        frame = self._table.value
        if 0 <= event.row < len(frame):
            self.pick(str(frame.iloc[event.row]["id"]))

    # ------------------------------------------------------------------------------------------------ plots
    def plots(self) -> MapPlots:
        """The map (one Bokeh figure, ε̄ or α vs gap), built once; it follows the filters, colour and quantity."""
        if self._plots is None:
            self._plots = MapPlots(
                self.filtered, self.data.training, self.color_by, on_select=self.set_selection, y=self.y_axis
            )
        return self._plots

    @param.depends("filtered", "color_by", watch=True)
    def _update_plots(self) -> None:
        plots = getattr(self, "_plots", None)  # None until the first display (and during __init__)
        if plots is not None:
            plots.update(self.filtered, self.color_by)

    @param.depends("y_axis", watch=True)
    def _switch_quantity(self) -> None:
        if self._plots is not None:
            self._plots.show(self.y_axis)

    def _coverage_text(self) -> str:
        """What ±2σ covers for the model that screened, from the model menu (``catalog.json``)."""
        from goectp.catalog import model_info

        try:
            info = model_info(self.data.model_name) if self.data.model_name else None
        except ValueError:  # a damaged catalog: the map still explains itself
            info = None
        if info is None or info.coverage is None:
            return "fitted so that ±2σ covers 90-97 % of held-out DFT values"
        return f"±2σ covers {100 * info.coverage:.1f} % of held-out DFT values, out of fold"

    def score_explanation(self) -> str:
        """How to read the map: the acquisition score, the σ it uses, metals vs unknown gaps, Pareto front, FOM."""
        df = self.data.results
        calibrated = "calibrated" in df.columns and bool(df["calibrated"].astype("boolean").fillna(False).any())
        sigma = (
            f"the **calibrated** σ of the ensemble (`calibration.json`: {self._coverage_text()})"
            if calibrated
            else "the raw ensemble std (these results predate the calibration: re-run `goectp "
            "screen` for calibrated σ — the raw std is several times too narrow)"
        )
        kappa = self.data.provenance.get("kappa")
        k = f"κ = {kappa}" if kappa is not None else "κ from `goectp screen --kappa`"
        n_metal = int((pd.to_numeric(df["band_gap"], errors="coerce") <= 0).sum())
        n_unknown = int(df["band_gap"].isna().sum())
        return (
            f"**Acquisition score** = ε̄ + κ·σ(ε̄) ({k}), an upper confidence bound: it ranks a candidate high "
            f"when its predicted ε̄ is high *or* the model is unsure about it (worth a DFT check); σ is {sigma}. "
            f"**Known metals** (gap = 0, {n_metal}: a static ε has no meaning) are hidden by default; "
            f"**unknown gaps** ({n_unknown}) are shown as ◆ at −0.4 eV. Red: the **Pareto front** of ε̄ vs band "
            "gap (no candidate has both a larger gap and a larger ε̄), gold ★: top 10 by the **figure of merit "
            "ε̄·E_g**, both with ±σ error bars; orange ×: out-of-distribution predictions (hover for the reason)."
        )

    def static_layout(self):
        """A fresh, unlinked copy of the current map, ε̄ and α side by side (a Bokeh layout, for the HTML export)."""
        from bokeh.layouts import row

        maps = [MapPlots(self.filtered, self.data.training, self.color_by, y=y, width=600, height=420) for y in Y]
        return row(*(m.figure for m in maps))

    # ------------------------------------------------------------------------------------------------ export
    def export_rows(self) -> pd.DataFrame:
        """The selection if there is one, else every row passing the filters."""
        return self.selected if len(self.selected) else self.filtered

    def export_csv(self) -> str:
        """The rows as CSV, written like ``goectp screen`` writes its own (:func:`goectp.csvsafe.write_csv`): ids
        like ``=HYPERLINK(...)`` neutralised, cells holding a carriage return or a newline quoted."""
        from goectp.csvsafe import write_csv

        return write_csv(self.export_rows(), index=False)

    def export_json(self) -> str:
        return self.export_rows().to_json(orient="records", indent=1)

    def export_html(self) -> str:
        """Self-contained HTML of the maps (Bokeh JS inlined: opens offline)."""
        from bokeh.embed import file_html
        from bokeh.resources import INLINE

        return _inline_panel_stylesheets(file_html(self.static_layout(), INLINE, title="GoeCTP screening map"))

    # ------------------------------------------------------------------------------------------------ view
    @param.depends("message")
    def _message(self) -> pn.viewable.Viewable:
        from explorer.safe import escape_text  # ids and formulas come from files: shown as text, never as HTML

        return pn.pane.Markdown(escape_text(self.message), css_classes=["goectp-screening-message"])

    @param.depends("selected", "filtered")
    def _counts(self) -> pn.viewable.Viewable:
        what = (
            f"{len(self.selected)} selected"
            if len(self.selected)
            else f"no selection — table shows the top {min(50, len(self.filtered))} by score"
        )
        return pn.pane.Markdown(
            f"{len(self.filtered)} of {len(self.data.results)} candidates pass the filters; "
            f"{what}. Box/lasso-select points to list them; tap a point or click a row to "
            "load its structure."
        )

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._layout = self._build()
        return self._layout

    def _build(self) -> pn.Column:
        """The map's layout: caption, filters, the ε̄/α switch and the plot, counts, message, table and exports."""
        from explorer.safe import escape_text  # the problem quotes file contents (exception messages)

        if not self.data.available:
            return pn.Column(
                pn.pane.Alert(
                    escape_text(self.data.problem), alert_type="warning", css_classes=["goectp-no-screening"]
                ),
                sizing_mode="stretch_width",
                css_classes=["goectp-screening"],
            )
        plot = self.plots().figure
        filters = pn.FlexBox(  # wraps onto a second line in a narrow window instead of widening the card
            pn.widgets.FloatInput.from_param(self.param.min_band_gap, name="band gap ≥ (eV)", step=0.1, width=140),
            pn.widgets.CheckButtonGroup.from_param(
                self.param.gap_classes, name="show", width=380, css_classes=["goectp-gap-classes"]
            ),
            pn.widgets.IntInput.from_param(self.param.max_sites, name="atoms ≤", width=100),
            pn.widgets.TextInput.from_param(self.param.search, name="formula / id contains", width=180),
            pn.widgets.Select.from_param(self.param.color_by, name="colour by", width=160),
            pn.widgets.MultiChoice.from_param(self.param.sources, name="sources", width=420),
            sizing_mode="stretch_width",
        )
        exports = pn.Row(
            pn.widgets.FileDownload(
                callback=lambda: io.StringIO(self.export_csv()),
                filename="goectp-screening.csv",
                label="Rows CSV",
                color="light",
                css_classes=["goectp-export-rows-csv"],
            ),
            pn.widgets.FileDownload(
                callback=lambda: io.StringIO(self.export_json()),
                filename="goectp-screening.json",
                label="Rows JSON",
                color="light",
            ),
            pn.widgets.FileDownload(
                callback=lambda: io.StringIO(self.export_html()),
                filename="goectp-screening-map.html",
                label="Maps HTML (offline)",
                color="light",
            ),
            pn.pane.Markdown("PNG: the save tool in each plot's toolbar.", styles={"font-size": "0.85em"}),
        )
        return pn.Column(
            pn.pane.Markdown(
                self.data.caption(), css_classes=["goectp-screening-caption"], styles={"font-size": "0.85em"}
            ),
            filters,
            pn.pane.Markdown(
                self.score_explanation(), css_classes=["goectp-score-explanation"], styles={"font-size": "0.85em"}
            ),
            pn.widgets.RadioButtonGroup.from_param(
                self.param.y_axis, color="light", css_classes=["goectp-screening-quantity"]
            ),
            pn.Row(
                pn.pane.Bokeh(plot, sizing_mode="stretch_width", min_height=400),
                sizing_mode="stretch_width",
                css_classes=["goectp-screening-plots"],
            ),
            live_pane(self._counts),
            live_pane(self._message),
            self._table,
            exports,
            sizing_mode="stretch_width",
            css_classes=["goectp-screening"],
        )


def _inline_panel_stylesheets(html: str) -> str:
    """Replace the CDN stylesheet links that Panel's registered extensions add (e.g. Tabulator's CSS) by the same
    files from the installed ``panel/dist`` folder, inlined; a link with no local file is dropped. The export then
    requests nothing from the network."""
    import re

    import panel

    dist = Path(panel.__file__).parent / "dist"

    def inline(match: re.Match) -> str:
        local = dist / match.group("path")
        if local.is_file() and dist in local.resolve().parents:
            return f"<style>\n{local.read_text(encoding='utf-8')}\n</style>"
        return ""

    pattern = r'<link[^>]*href="https?://cdn\.holoviz\.org/panel/[^/"]+/dist/(?P<path>[^"]+)"[^>]*>'
    return re.sub(pattern, inline, html)
