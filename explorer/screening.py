"""ScreeningMap: ε̄ vs band gap and α vs band gap of the screened candidates, over the training materials.

Reads ``assets/screening/``: ``screening_results.csv`` (candidates with the ensemble's ε̄, α and their std),
``training_set.csv`` (DFT values of the training data, the grey background) and ``top_structures.json.gz`` (the
structures of the listed candidates, so a click loads one offline; the shared candidate pool is the fallback).
Box/lasso selection fills the table; a tap (or a table row click) loads that structure into the loader.
"""

from __future__ import annotations

import gzip
import io
import json
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from explorer.paths import CANDIDATES_FILE, data_dir, screening_dir
from explorer.paths import SCREENING_RESULTS_FILE as RESULTS_FILE
from explorer.paths import SCREENING_STRUCTURES_FILE as STRUCTURES_FILE
from explorer.paths import SCREENING_TRAINING_FILE as TRAINING_FILE
from goectp.csvsafe import restore_frame

RESULT_COLUMNS = (
    "id",
    "formula",
    "source",
    "band_gap",
    "n_sites",
    "eps_mean",
    "eps_mean_std",
    "anisotropy",
    "anisotropy_std",
    "score",
)
TRAINING_COLUMNS = ("id", "formula", "band_gap", "eps_mean", "anisotropy", "crystal_system")
TABLE_COLUMNS = list(RESULT_COLUMNS)  # the table shows every required column, in that order
SUMMARY_FILE = "screening_summary.json"
#: Shown too when `goectp screen` wrote them.
OPTIONAL_COLUMNS = [
    "score_aniso",
    "crystal_system",
    "spacegroup",
    "material_id",
    "has_structure",
    "ood_flag",
    "ood_reason",
]
#: Band-gap classes: a known metal (gap == 0: a static ε has no meaning), an insulator, or a gap nobody computed.
GAP_INSULATOR, GAP_METAL, GAP_UNKNOWN = "insulator (gap > 0)", "metal (gap = 0)", "unknown gap"
UNKNOWN_GAP_X = -0.4  # where candidates with an unknown gap are drawn (left of the axis origin, own marker)


def gap_class(band_gap: pd.Series) -> pd.Series:
    """``GAP_METAL`` for gap == 0, ``GAP_UNKNOWN`` for null, else ``GAP_INSULATOR``."""
    gap = pd.to_numeric(band_gap, errors="coerce")
    out = pd.Series(GAP_INSULATOR, index=band_gap.index, dtype=object)
    out[gap.isna()] = GAP_UNKNOWN
    out[gap <= 0] = GAP_METAL
    return out


def pareto_front(gap: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Indices of the points not dominated in (gap, ε̄) — no other point has both a larger gap and a larger ε̄ —
    sorted by gap (the ε̄–E_g trade-off curve of high-κ dielectrics)."""
    gap, eps = np.asarray(gap, float), np.asarray(eps, float)
    ok = np.flatnonzero(np.isfinite(gap) & np.isfinite(eps))
    order = ok[np.lexsort((-eps[ok], -gap[ok]))]  # largest gap first, then largest ε̄
    front, best = [], -np.inf
    for i in order:
        if eps[i] > best:
            front.append(i)
            best = eps[i]
    return np.array(sorted(front, key=lambda i: gap[i]), dtype=int)


def _holoviews():
    """HoloViews with the Bokeh backend loaded (once; no notebook output when it already is)."""
    import holoviews as hv

    if "bokeh" not in hv.Store.loaded_backends():
        hv.extension("bokeh", logo=False)
    return hv


class ScreeningData:
    """The screening files, read lazily and kept; ``problem`` says what is missing or malformed."""

    def __init__(self, directory: str | Path | None = None, pool_dir: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory else screening_dir()
        self.pool_dir = Path(pool_dir) if pool_dir else data_dir()
        self._results: pd.DataFrame | None = None
        self._training: pd.DataFrame | None = None
        self._structures: dict[str, dict] | None = None
        self._pool: dict[str, dict] | None = None
        self.problem = ""
        #: why the training-set overlay is missing ("" when it is shown or there is none)
        self.training_problem = ""
        self._read()

    def _read(self) -> None:
        path = self.directory / RESULTS_FILE
        if not path.is_file():
            self.problem = (
                f"No screening results found ({path} is missing). They are produced by "
                "`goectp screen` and committed to assets/screening/."
            )
            return
        try:
            results = restore_frame(pd.read_csv(path, dtype={"id": str}))  # ids as goectp screen got them
        except Exception as exc:
            self.problem = f"could not read {path.name}: {type(exc).__name__}: {exc}"
            return
        missing = [c for c in RESULT_COLUMNS if c not in results.columns]
        if missing:
            self.problem = f"{path.name} lacks the columns {missing}"
            return
        self._results = results.reset_index(drop=True)
        tpath = self.directory / TRAINING_FILE
        if tpath.is_file():
            try:
                training = restore_frame(pd.read_csv(tpath, dtype={"id": str}))
            except Exception as exc:  # the maps work without the training-set overlay
                self.training_problem = f"could not read {tpath.name}: {type(exc).__name__}: {exc}"[:300]
                return
            if all(c in training.columns for c in ("band_gap", "eps_mean", "anisotropy")):
                self._training = training

    @property
    def available(self) -> bool:
        return self._results is not None

    @cached_property
    def provenance(self) -> dict:
        """The ``provenance`` block of screening_summary.json (model checkpoints' sha256, pool, date), or {}."""
        path = self.directory / SUMMARY_FILE
        try:
            return dict(json.loads(path.read_text()).get("provenance", {})) if path.is_file() else {}
        except (ValueError, OSError):
            return {}

    def model_label(self) -> str:
        """The shipped model whose checkpoints produced these results (matched by sha256), or a short description."""
        return self._model_label

    @cached_property
    def _model_label(self) -> str:  # hashes the shipped checkpoints once per ScreeningData
        import hashlib

        from goectp.api import available_models
        from goectp.registry import checkpoint_files, model_aliases

        wanted = set(filter(None, str(self.provenance.get("model_sha256", "")).split(";")))
        if not wanted:
            return "an unrecorded model"
        aliases = model_aliases()
        for name in sorted(available_models(), key=lambda n: n not in aliases):  # "default" before its target
            files = checkpoint_files(name, verify=False)  # hashed below anyway
            if len(files) == len(wanted) and {hashlib.sha256(f.read_bytes()).hexdigest() for f in files} == wanted:
                return f"the `{name}` ensemble" + (f" (`{aliases[name]}`)" if name in aliases else "")
        return f"a model not shipped here ({len(wanted)} checkpoint{'s' * (len(wanted) != 1)})"

    def caption(self) -> str:
        when = str(self.provenance.get("screened_on", ""))[:10]
        return (
            f"Screened with {self.model_label()}{f' on {when}' if when else ''}; the model menu does not change "
            "these results (`goectp screen --model NAME --export-assets` recomputes them)."
        )

    @property
    def results(self) -> pd.DataFrame:
        return self._results if self._results is not None else pd.DataFrame(columns=list(RESULT_COLUMNS))

    @property
    def training(self) -> pd.DataFrame:
        return self._training if self._training is not None else pd.DataFrame(columns=list(TRAINING_COLUMNS))

    def structure(self, key: str):
        """Structure of candidate ``key`` from top_structures.json.gz, else from the shared pool; None if absent."""
        from goectp.structures import structure_from_dict

        if self._structures is None:
            path = self.directory / STRUCTURES_FILE
            self._structures = {}
            if path.is_file():
                self._structures = _read_json_object(path, lambda data: data)
        if key in self._structures:
            return structure_from_dict(self._structures[key], f"candidate {key[:80]!r}")
        if self.pool_dir is not None and (self.pool_dir / CANDIDATES_FILE).is_file():
            if self._pool is None:
                self._pool = _read_json_object(
                    self.pool_dir / CANDIDATES_FILE, lambda data: {str(c["id"]): c["structure"] for c in data}
                )
            if key in self._pool:
                return structure_from_dict(self._pool[key], f"candidate {key[:80]!r}")
        return None


def _read_json_object(path: Path, shape) -> dict:
    """``shape(json of the gzipped file at path)``; a :class:`ValueError` naming the file for any problem."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            out = shape(json.load(fh))
    except Exception as exc:  # not gzip, not JSON, or not the expected layout
        raise ValueError(f"could not read {path.name}: {type(exc).__name__}: {exc}"[:300]) from exc
    if not isinstance(out, dict):
        raise ValueError(f"could not read {path.name}: expected an object keyed by candidate id")
    return out


class ScreeningMap(pn.viewable.Viewer):
    """Scatter maps of the screening results with filters, selection table, structure loading and exports.

    ``loader`` (a :class:`~explorer.loader.StructureLoader`, optional) receives the structure of a picked point.
    Outputs: ``filtered`` (rows passing the filters), ``selected`` (rows of the current box/lasso/tap selection),
    ``picked`` (id of the last point loaded), ``message``.
    """

    data = param.ClassSelector(class_=ScreeningData, default=None, allow_None=True)
    loader = param.Parameter(default=None, doc="StructureLoader that receives picked structures")
    min_band_gap = param.Number(default=0.0, bounds=(0.0, None), doc="Band gap ≥ (eV)")
    gap_classes = param.ListSelector(
        default=[GAP_INSULATOR, GAP_UNKNOWN],
        objects=[GAP_INSULATOR, GAP_METAL, GAP_UNKNOWN],
        doc="Shown: insulators, known metals (hidden by default), unknown gaps",
    )
    max_sites = param.Integer(default=200, bounds=(1, None), doc="Atoms per cell ≤")
    sources = param.ListSelector(default=[], objects=[], doc="Candidate sources shown")
    search = param.String(default="", doc="Filter by formula or id (substring)")
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
        if self.data.training_problem and not self.message:
            self.message = self.data.training_problem
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
        self._streams: list = []
        self._apply_filters()

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
        if len(self.selected):
            return self.selected
        top = self.filtered.sort_values("score", ascending=False).head(50) if len(self.filtered) else self.filtered
        return top.reset_index(drop=True)

    def _sync_table(self) -> None:
        if hasattr(self, "_table"):
            self._table.value = self._table_frame()

    def _on_table_click(self, event: Any) -> None:
        frame = self._table.value
        if 0 <= event.row < len(frame):
            self.pick(str(frame.iloc[event.row]["id"]))

    # ------------------------------------------------------------------------------------------------ plots
    def _points(self, y: str, std: str, label: str):
        hv = _holoviews()

        df = self.filtered.replace([np.inf, -np.inf], np.nan)  # e.g. α of a tensor with λmin ≤ 0: not drawn
        df = df.assign(band_gap=df["band_gap"].fillna(UNKNOWN_GAP_X))  # unknown gap: drawn left of 0, own marker
        if "gap_class" not in df.columns:
            df["gap_class"] = gap_class(self.filtered["band_gap"])
        color = std if self.color_by == "ensemble std" else self.color_by
        vdims = list(
            dict.fromkeys(
                [
                    "id",
                    "formula",
                    std,
                    "score",
                    "eps_mean_std",
                    "anisotropy_std",
                    "n_sites",
                    "source",
                    "gap_class",
                    color,
                ]
            )
        )
        pts = hv.Points(df, kdims=["band_gap", y], vdims=vdims, label="candidates (◆ unknown gap, at −0.4 eV)")
        markers = {GAP_INSULATOR: "circle", GAP_METAL: "square", GAP_UNKNOWN: "diamond"}
        pts = pts.opts(marker=hv.dim("gap_class").categorize(markers, default="circle"))
        return pts.opts(
            color=color,
            cmap="viridis",
            colorbar=True,
            clabel=color,
            size=7,
            line_color="black",
            line_width=0.3,
            tools=["hover", "box_select", "lasso_select", "tap"],
            active_tools=["box_select"],
            selection_color="#d62728",
            nonselection_alpha=0.35,
            # braces: HoloViews rewrites "@eps_mean" inside "@eps_mean_std" to "@{eps_mean}_std"
            hover_tooltips=[
                ("formula", "@{formula}"),
                ("id", "@{id}"),
                (label, f"@{{{y}}}{{0.00}}"),
                ("std", f"@{{{std}}}{{0.00}}"),
                ("band gap", "@{band_gap}{0.00} eV"),
            ],
        )

    def _background(self, y: str):
        hv = _holoviews()

        train = self.data.training.dropna(subset=["band_gap", y])
        return hv.Points(train, kdims=["band_gap", y], vdims=["formula"], label="training set (DFT)").opts(
            color="#b0b0b0", alpha=0.5, size=4, line_alpha=0, tools=[]
        )

    def plots(self):
        """The two linked maps as a HoloViews layout (dynamic: they follow the filters)."""
        hv = _holoviews()
        self._streams = []
        panels = []
        for y, std, label in (("eps_mean", "eps_mean_std", "ε̄"), ("anisotropy", "anisotropy_std", "α")):

            def points(filtered: pd.DataFrame, color_by: str, y: str = y, std: str = std, label: str = label):
                return self._points(y, std, label)

            dmap = hv.DynamicMap(pn.bind(points, filtered=self.param.filtered, color_by=self.param.color_by))
            stream = hv.streams.Selection1D(source=dmap)
            stream.add_subscriber(lambda index: self.set_selection(index))
            self._streams.append(stream)
            ylabel = "ε̄ (mean eigenvalue)" if y == "eps_mean" else "α = λmax/λmin"
            overlay = (self._background(y) * dmap).opts(
                hv.opts.Overlay(
                    xlabel="band gap (eV)",
                    ylabel=ylabel,
                    responsive=True,
                    min_height=340,
                    legend_position="top_right",
                    title=f"{ylabel} vs band gap",
                )
            )
            extras = pn.bind(lambda filtered, y=y, std=std: self._highlights(y, std), filtered=self.param.filtered)
            panels.append(overlay * hv.DynamicMap(extras))
        return panels

    def _highlights(self, y: str, std: str):
        """OOD-flagged candidates (× markers), and on the ε̄ map the Pareto front of ε̄ vs gap and the top 10 by the
        figure of merit ε̄·E_g, with calibrated ±σ error bars."""
        hv = _holoviews()

        df = self.filtered.replace([np.inf, -np.inf], np.nan)
        layers = [hv.Points([], label="OOD-flagged (x)")]
        if "ood_flag" in df.columns:
            ood = df[df["ood_flag"].astype("boolean").fillna(False).astype(bool)]
            ood = ood.assign(band_gap=ood["band_gap"].fillna(UNKNOWN_GAP_X))
            layers = [
                hv.Points(ood, kdims=["band_gap", y], vdims=["formula", "ood_reason"], label="OOD-flagged (x)").opts(
                    marker="x", color="#ff7f0e", size=11, line_width=2, tools=["hover"]
                )
            ]
        if y == "eps_mean":
            known = df[pd.to_numeric(df["band_gap"], errors="coerce") > 0]
            front = known.iloc[pareto_front(known["band_gap"], known["eps_mean"])] if len(known) else known
            top = known.assign(fom=known["eps_mean"] * known["band_gap"]).nlargest(10, "fom") if len(known) else known
            layers += [
                hv.Curve(front, "band_gap", "eps_mean", label="Pareto front ε̄ vs gap").opts(
                    color="#d62728", line_width=2, interpolation="steps-post"
                ),
                hv.ErrorBars(front, "band_gap", ["eps_mean", std]).opts(color="#d62728", line_width=1),
                hv.Points(top, ["band_gap", "eps_mean"], ["formula", "fom"], label="top 10 ε̄·E_g").opts(
                    marker="star", size=14, color="gold", line_color="black", tools=["hover"]
                ),
                hv.ErrorBars(top, "band_gap", ["eps_mean", std]).opts(color="#b8860b", line_width=1),
            ]
        return hv.Overlay(layers)

    def score_explanation(self) -> str:
        """How to read the map: the acquisition score, the σ it uses, metals vs unknown gaps, Pareto front, FOM."""
        df = self.data.results
        calibrated = "calibrated" in df.columns and bool(df["calibrated"].astype("boolean").fillna(False).any())
        sigma = (
            "the **calibrated** σ of the ensemble (`calibration.json`: ±2σ covers ~90 % of held-out DFT values)"
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
        """Non-dynamic copy of the current maps (for the HTML export)."""
        hv = _holoviews()
        els = []
        for y, std, label in (("eps_mean", "eps_mean_std", "ε̄"), ("anisotropy", "anisotropy_std", "α")):
            els.append(
                (self._background(y) * self._points(y, std, label)).opts(
                    hv.opts.Overlay(width=600, height=420, xlabel="band gap (eV)", ylabel=label)
                )
            )
        return hv.Layout(els).cols(2)

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

        hv = _holoviews()
        model = hv.render(self.static_layout(), backend="bokeh")
        return _inline_panel_stylesheets(file_html(model, INLINE, title="GoeCTP screening map"))

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
        from explorer.safe import escape_text  # the problem quotes file contents (exception messages)

        if not self.data.available:
            return pn.Column(
                pn.pane.Alert(
                    escape_text(self.data.problem), alert_type="warning", css_classes=["goectp-no-screening"]
                ),
                sizing_mode="stretch_width",
                css_classes=["goectp-screening"],
            )
        eps_plot, aniso_plot = self.plots()
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
            pn.Row(
                pn.pane.HoloViews(eps_plot, sizing_mode="stretch_width", min_height=360),
                pn.pane.HoloViews(aniso_plot, sizing_mode="stretch_width", min_height=360),
                sizing_mode="stretch_width",
                css_classes=["goectp-screening-plots"],
            ),
            self._counts,
            self._message,
            self._table,
            exports,
            sizing_mode="stretch_width",
            css_classes=["goectp-screening"],
        )


def selection_summary(frame: pd.DataFrame) -> dict[str, float]:
    """Mean ε̄, α and band gap of a set of rows (used in reports and tests)."""
    if not len(frame):
        return {}
    return {k: float(np.nanmean(frame[k])) for k in ("eps_mean", "anisotropy", "band_gap")}


def _inline_panel_stylesheets(html: str) -> str:
    """Replace the CDN stylesheet links that Panel's registered extensions add (e.g. Tabulator's CSS) by the same
    files from the installed ``panel/dist`` folder, inlined; a link with no local file is dropped. The export then
    requests nothing from the network."""
    import re
    from pathlib import Path

    import panel

    dist = Path(panel.__file__).parent / "dist"

    def inline(match: re.Match) -> str:
        local = dist / match.group("path")
        if local.is_file() and dist in local.resolve().parents:
            return f"<style>\n{local.read_text(encoding='utf-8')}\n</style>"
        return ""

    pattern = r'<link[^>]*href="https?://cdn\.holoviz\.org/panel/[^/"]+/dist/(?P<path>[^"]+)"[^>]*>'
    return re.sub(pattern, inline, html)
