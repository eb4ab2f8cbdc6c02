"""TensorEllipsoid: the predicted ε of the current structure — matrix, eigenvalues, ε̄, α, refractive index,
ensemble std, and the DFT tensor with the error when the structure comes from the dataset; CSV/JSON export."""

from __future__ import annotations

import html
import io
import json
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from pymatgen.core import Structure

from explorer.geometry import Ellipsoid, TensorSummary, ellipsoid_geometry, summarize_tensor
from explorer.html_blocks import BOX_STYLES, alert_html, card_title, download_link
from explorer.live import live_pane
from explorer.models import ENSEMBLE_MEAN, ModelSelector

AXES = "xyz"
TITLE = "Predicted dielectric tensor"


def matrix_html(m: np.ndarray, title: str, css_id: str = "", std: np.ndarray | None = None, digits: int = 3) -> str:
    """A 3x3 matrix as an HTML table (entries ``a ± s`` when ``std`` is given)."""
    rows = []
    for i in range(3):
        cells = []
        for j in range(3):
            text = f"{m[i, j]:.{digits}f}"
            if std is not None:
                text += f"<span style='color:#888'> ± {std[i, j]:.{digits}f}</span>"
            cells.append(f"<td style='padding:2px 8px;text-align:right;font-family:monospace'>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{css_id}"' if css_id else ""
    return (
        f"<div{ident}><div style='font-weight:600;margin-bottom:2px'>{title}</div>"
        f"<table style='border-left:2px solid #444;border-right:2px solid #444'>{''.join(rows)}</table></div>"
    )


def table_html(frame: pd.DataFrame, css_class: str = "goectp-tensor-table") -> str:
    """A small data frame of texts as an HTML table (cells escaped)."""
    cell = "padding:2px 10px;text-align:{};border-bottom:1px solid #e5e5e5"
    head = "".join(
        f"<th style='{cell.format('left' if i == 0 else 'right')}'>{html.escape(str(c))}</th>"
        for i, c in enumerate(frame.columns)
    )
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td style='{cell.format('left' if i == 0 else 'right')}'>{html.escape(str(v))}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table class='{css_class}' style='border-collapse:collapse;margin-top:8px'><tr>{head}</tr>{rows}</table>"


def tensor_record(tensor: np.ndarray, std: np.ndarray | None = None) -> dict[str, Any]:
    """JSON-able description of a tensor: matrix, eigenvalues/vectors, ε̄, α (and std when given)."""
    s = summarize_tensor(tensor)
    out = {
        "tensor": s.tensor.tolist(),
        "eigenvalues": s.eigenvalues.tolist(),
        "eigenvectors_columns": s.eigenvectors.tolist(),
        "eps_mean": s.eps_mean,
        "anisotropy": None if not np.isfinite(s.anisotropy) else s.anisotropy,
    }
    if std is not None:
        out["std"] = np.asarray(std).tolist()
    return out


class TensorEllipsoid(pn.viewable.Viewer):
    """Prediction for ``structure`` with ``models``; ``reference`` holds DFT tensors (dataset structures).

    Outputs: ``mean``, ``std`` (3x3 arrays) and ``summary`` (:class:`TensorSummary` of the mean).
    """

    structure = param.ClassSelector(class_=Structure, default=None, allow_None=True, allow_refs=True)
    models = param.ClassSelector(class_=ModelSelector, default=None, allow_None=True)
    reference = param.Dict(
        default=None, allow_None=True, allow_refs=True, doc="{'electronic','ionic','total': 3x3, 'id', ...}"
    )
    label = param.String(default="", allow_refs=True)
    mean = param.Array(default=None, allow_None=True, doc="Predicted ε (3x3)")
    std = param.Array(default=None, allow_None=True, doc="Its ensemble std (3x3)")
    electronic = param.Array(
        default=None,
        allow_None=True,
        doc="Predicted ε∞ (3x3): the mean ε∞ part of the model's sum members; None when it has none",
    )
    parts_from = param.String(default="", doc="Which members the ε∞ part comes from, e.g. '10 of the 25 members'")
    error = param.String(default="")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._update()
        self._layout = self._build()  # built once: every display shows this layout

    @param.depends("structure", "models.version", watch=True)
    def _update(self) -> None:
        if self.structure is None or self.models is None:
            self.param.update(mean=None, std=None)
            return
        try:
            mean, std = self.models.predict_one(self.structure)
            parts = self.models.predict_parts([self.structure]) if self.target != "electronic" else {}
        except Exception as exc:
            self.param.update(
                mean=None, std=None, electronic=None, error=f"prediction failed: {type(exc).__name__}: {exc}"
            )
            return
        electronic, parts_from = None, ""
        if "electronic" in parts:  # [S, 1, 3, 3]: the ε∞ parts of the S sum members
            electronic = parts["electronic"][:, 0].mean(axis=0)
            count, total = len(parts["electronic"]), self.models.n_members if self.models.mode == ENSEMBLE_MEAN else 1
            parts_from = "the model" if total == 1 else f"{count} of the {total} members"
        self.param.update(mean=mean, std=std, electronic=electronic, parts_from=parts_from, error="")

    # ------------------------------------------------------------------------------------------------ derived
    @property
    def summary(self) -> TensorSummary | None:
        return None if self.mean is None else summarize_tensor(self.mean)

    @property
    def target(self) -> str:
        return self.models.target if self.models is not None else "total"

    @property
    def dft_tensor(self) -> np.ndarray | None:
        """The DFT tensor of the kind the model predicts, when the structure comes from the dataset."""
        if not self.reference or self.target not in self.reference:
            return None
        return np.asarray(self.reference[self.target], dtype=np.float64)

    def ellipsoid(self, size: float = 1.0, center: np.ndarray | None = None) -> Ellipsoid:
        if self.mean is None:
            raise ValueError("no prediction")
        return ellipsoid_geometry(self.mean, center=center, size=size)

    def refractive_index(self) -> tuple[np.ndarray | float | None, str]:
        """``(n, how)``: n = √λ of ε∞ — predicted when the model predicts ε∞ (an ε∞ model, or the ε∞ parts of its
        sum members), else the DFT ε∞ of a dataset record — or an honest fallback."""
        s = self.summary
        if s is not None and self.target == "electronic":
            return s.refractive_indices(), "n = √λ of the predicted electronic ε∞"
        if s is not None and self.electronic is not None:
            return (
                np.sqrt(np.clip(np.linalg.eigvalsh(self.electronic), 0, None)),
                f"n = √λ of the predicted electronic ε∞ (the ε∞ part of {self.parts_from}: ε = ε∞ + ionic networks)",
            )
        dft = self.dft_refractive_index()
        if dft is not None:
            return dft, "n = √λ of the DFT electronic ε∞ (dataset record)"
        if s is None:
            return None, ""
        if s.eps_mean <= 0:
            return None, "not available (ε̄ ≤ 0)"
        return (
            float(np.sqrt(s.eps_mean)),
            f"n ≈ √ε̄ of the predicted static ({self.target}) ε — includes ionic screening, so an upper bound "
            "on the optical index (n uses ε∞)",
        )

    def dft_refractive_index(self) -> np.ndarray | None:
        """n = √λ of the DFT ε∞ when the structure is a dataset record (else None)."""
        if self.reference is None or "electronic" not in self.reference:
            return None
        return np.sqrt(np.clip(np.linalg.eigvalsh(np.asarray(self.reference["electronic"])), 0, None))

    def table(self) -> pd.DataFrame:
        """One row per quantity: prediction, ensemble std, DFT, error (where known)."""
        s = self.summary
        if s is None:
            return pd.DataFrame()
        rows: list[dict[str, Any]] = []
        std = self.std if self.std is not None else np.zeros((3, 3))
        dft = self.dft_tensor
        ds = summarize_tensor(dft) if dft is not None else None
        std_eigs = None
        if self.models is not None and np.any(std > 0):
            std_eigs = self._member_spread()
        for i in range(3):
            rows.append(
                {
                    "quantity": f"λ{'₁₂₃'[i]}",
                    "predicted": s.eigenvalues[i],
                    "ensemble std": None if std_eigs is None else std_eigs[0][i],
                    "DFT": None if ds is None else ds.eigenvalues[i],
                }
            )
        rows.append(
            {
                "quantity": "ε̄ (mean eigenvalue)",
                "predicted": s.eps_mean,
                "ensemble std": None if std_eigs is None else std_eigs[1],
                "DFT": None if ds is None else ds.eps_mean,
            }
        )
        rows.append(
            {
                "quantity": "α = λmax/λmin",
                "predicted": s.anisotropy,
                "ensemble std": None if std_eigs is None else std_eigs[2],
                "DFT": None if ds is None else ds.anisotropy,
            }
        )
        n, how = self.refractive_index()
        n_dft = self.dft_refractive_index()
        if n is not None:
            value = float(np.nanmean(n)) if isinstance(n, np.ndarray) else float(n)
            from_dft = "DFT" in how
            rows.append(
                {
                    "quantity": "n (mean √λ of ε∞)" if isinstance(n, np.ndarray) else "n ≈ √ε̄ (upper bound)",
                    "predicted": None if from_dft else value,
                    "ensemble std": None,
                    "DFT": float(np.nanmean(n_dft)) if n_dft is not None and isinstance(n, np.ndarray) else None,
                }
            )
        df = pd.DataFrame(rows)
        if ds is not None:
            df["error (pred − DFT)"] = df["predicted"] - df["DFT"]
        return df

    def _member_spread(self) -> tuple[np.ndarray, float, float] | None:
        """σ of the sorted eigenvalues, ε̄ and α (goectp.tensor_stats: calibrated when the ensemble ships a
        calibration; σ(α) is inf when any member has λmin <= 0)."""
        stats = self.models.statistics([self.structure])  # cached member predictions
        if int(stats["n_members"][0]) < 2:
            return None
        return stats["eigenvalues_std"][0], float(stats["eps_mean_std"][0]), float(stats["anisotropy_std"][0])

    @property
    def ood(self) -> dict[str, Any] | None:
        """The out-of-distribution flag of the prediction (None without a calibrated ensemble)."""
        if self.mean is None or self.models is None or self.structure is None:
            return None
        try:
            return self.models.ood_one(self.structure)
        except Exception:
            return None

    # ------------------------------------------------------------------------------------------------ export
    def export_dict(self) -> dict[str, Any]:
        if self.mean is None:
            raise ValueError("no prediction to export")
        out: dict[str, Any] = {
            "structure": self.label or (self.structure.composition.reduced_formula if self.structure else ""),
            "formula": self.structure.composition.reduced_formula,
            "model": self.models.description if self.models is not None else "",
            "target": self.target,
            "prediction": tensor_record(self.mean, self.std),
        }
        out["sigma"] = "calibrated" if self.models is not None and self.models.calibration is not None else "raw"
        out["ood"] = self.ood
        n, how = self.refractive_index()
        out["refractive_index"] = {"value": n.tolist() if isinstance(n, np.ndarray) else n, "how": how}
        if self.electronic is not None:  # the ε∞ part of the sum members (their ionic part is the rest)
            out["electronic_part"] = {**tensor_record(self.electronic), "from": self.parts_from}
        if self.dft_tensor is not None:
            out["dft"] = tensor_record(self.dft_tensor)
            out["dft"]["id"] = self.reference.get("id")
            out["max_abs_error"] = float(np.abs(self.mean - self.dft_tensor).max())
        return out

    def export_json(self) -> str:
        return json.dumps(self.export_dict(), indent=2)

    def export_csv(self) -> str:
        """Long-format CSV: one row per tensor component (i, j) with prediction, std and DFT where known."""
        if self.mean is None:
            raise ValueError("no prediction to export")
        std = self.std if self.std is not None else np.zeros((3, 3))
        dft = self.dft_tensor
        rows = []
        for i in range(3):
            for j in range(3):
                row = {
                    "formula": self.structure.composition.reduced_formula,
                    "component": f"{AXES[i]}{AXES[j]}",
                    "i": i,
                    "j": j,
                    "predicted": self.mean[i, j],
                    "std": std[i, j],
                }
                if dft is not None:
                    row["dft"] = dft[i, j]
                rows.append(row)
        buf = io.StringIO()
        pd.DataFrame(rows).to_csv(buf, index=False)
        return buf.getvalue()

    # ------------------------------------------------------------------------------------------------ view
    @param.depends("mean", "std", "reference", "error")
    def _body(self) -> pn.pane.HTML:
        """One HTML pane: the alerts, the matrices, the table, n and the two downloads (links with the file inside:
        no server round trip, ~4 Bokeh models a session fewer than two ``FileDownload`` buttons)."""
        return pn.pane.HTML(
            self.body_html(),
            sizing_mode="stretch_width",
            margin=(8, 8),
            styles=BOX_STYLES,  # a card's look without a Card (its header and button: Bokeh models every session)
            css_classes=["goectp-tensor", "goectp-card-tensor"],
        )

    def body_html(self) -> str:
        """The tensor card's content as HTML (user text escaped)."""
        from explorer.safe import escape_html

        title = card_title(TITLE)
        if self.error:
            why = alert_html(f"<b>Nothing to show or export.</b> {escape_html(self.error)}", "danger", "goectp-error")
            return title + why
        if self.mean is None:
            return title + "<p>No prediction (choose a structure and a model): nothing to export.</p>"
        has_std = self.std is not None and np.any(self.std > 0)
        calibrated = self.models is not None and self.models.calibration is not None
        blocks = [
            matrix_html(
                self.mean,
                f"Predicted ε ({self.target})"
                + ((" mean ± calibrated σ" if calibrated else " mean ± std") if has_std else ""),
                "tensor-predicted",
                self.std if has_std else None,
                digits=2,
            )
        ]
        dft = self.dft_tensor
        if dft is not None:
            ref_id = html.escape(str(self.reference.get("id")))
            blocks.append(matrix_html(dft, f"DFT ε ({self.target}, {ref_id})", "tensor-dft", digits=2))
            blocks.append(
                matrix_html(
                    self.mean - dft,
                    f"Error (pred − DFT), max |Δ| = {np.abs(self.mean - dft).max():.2f}",
                    "tensor-error",
                    digits=2,
                )
            )
        df = self.table()
        if df["DFT"].isna().all():
            df = df.drop(columns=["DFT"])
        if df["ensemble std"].isna().all():
            df = df.drop(columns=["ensemble std"])
        shown = df.copy()
        for col in shown.columns[1:]:
            shown[col] = [("–" if v is None or not np.isfinite(v) else f"{v:.3f}") for v in df[col]]
        if calibrated:
            shown = shown.rename(columns={"ensemble std": "σ (calibrated)"})
        n, how = self.refractive_index()
        ood = self.ood
        alert = ""
        if ood is not None and ood["flag"]:
            reasons = escape_html("; ".join(ood["reasons"]))
            alert = alert_html(
                f"<b>Out of distribution — treat this prediction with caution.</b> {reasons}.", "warning", "goectp-ood"
            )
        elif ood is not None:
            alert = (
                "<p class='goectp-in-distribution'>In distribution (elements, embedding and member agreement within "
                "the training range).</p>"
            )
        footer = f"<div style='margin-top:4px'>Refractive index: {html.escape(how)}.</div>" if how else ""
        return (
            title
            + alert
            + "<div style='display:flex;gap:24px;flex-wrap:wrap'>"
            + "".join(blocks)
            + "</div>"
            + table_html(shown)
            + footer
            + self.download_links()
        )

    def download_links(self) -> str:
        """The CSV and JSON downloads (links that carry the file)."""
        links = [
            download_link(self.export_csv(), "goectp-tensor.csv", "text/csv", "Tensor CSV", "goectp-export-csv"),
            download_link(
                self.export_json(), "goectp-tensor.json", "application/json", "Tensor JSON", "goectp-export-json"
            ),
        ]
        return f"<div class='goectp-exports' style='margin-top:8px'>{''.join(links)}</div>"

    def _build(self) -> pn.pane.HTML:
        """The panel's layout: one pane, updated in place (:func:`explorer.live.live_pane`)."""
        return live_pane(self._body)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
