"""CellChoiceCheck: describe the same crystal by another unit cell and compare the predictions — live.

The shipped models build their graph from the canonical cell (:func:`goectp.canonical.canonical_cell`) and average
over the frames its lattice leaves ambiguous, so ``a → a + b``, a random unimodular basis change (det ±1) or a
supercell gives the same tensor to float64 round-off. The same weights in the paper's setting (frame of the input
cell, sum pooling, no symmetrisation) drift: another cell, another frame, another atom count.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import panel as pn
import param
from pymatgen.core import Lattice, Structure

from explorer.models import SHARED_PREDICTIONS, ModelSelector, structure_key
from explorer.safe import escape_text
from explorer.tensor_view import matrix_html
from goectp.models import networks

TOLERANCE = 1e-6
CHANGES = (
    "a → a + b",
    "random unimodular (det −1)",
    "random unimodular (det +1)",
    "supercell 2×1×1",
    "supercell 2×2×1",
)
#: The paper's setting: frame of the input cell, sum pooling, no point-group symmetrisation, no frame averaging.
PAPER_SETTING = {"cell_reduction": "none", "pooling": "sum", "symmetrize": False, "frame_average": False}
#: The one line under the paper's-setting row: what these numbers are (and are not).
PAPER_NOTE = (
    "Paper's setting = the shipped weights, trained with mean pooling, run here with sum pooling on the input "
    "cell's frame: the pooled features grow with the atom count, so these values are not predictions; only the "
    "drift between the two cells is the lesson."
)


def basis_change(change: str, seed: int) -> np.ndarray:
    """The integer matrix ``U`` (new basis vectors = old basis @ U) of a change of cell; supercells: diagonal."""
    if change == "a → a + b":
        return np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    if change.startswith("supercell"):
        return np.diag([2, 2 if "2×2" in change else 1, 1])
    rng = np.random.default_rng(seed)
    u = np.eye(3, dtype=int)
    for _ in range(4):
        i, j = rng.choice(3, 2, replace=False)
        step = np.eye(3, dtype=int)
        step[i, j] = int(rng.choice([-1, 1]))
        u = u @ step
    return u @ np.diag([1, 1, -1]) if "det −1" in change else u


def changed_cell(structure: Structure, u: np.ndarray) -> Structure:
    """The same crystal in the cell ``L U`` (a supercell when ``|det U| > 1``)."""
    if round(abs(np.linalg.det(u))) != 1:
        return structure.make_supercell(u.T.tolist(), in_place=False)
    lat = structure.lattice.matrix.T @ u
    return Structure(Lattice(lat.T), structure.species, structure.frac_coords @ np.linalg.inv(u).T)


def paper_setting(model: Any) -> Any:
    """A copy of ``model`` (or of each ensemble member) with the same weights in the paper's setting."""
    clone = copy.deepcopy(model)
    for network in networks(clone):  # every member, and both parts of a sum member
        for key, value in PAPER_SETTING.items():
            setattr(network.config, key, value)
    return clone


class CellChoiceCheck(pn.viewable.Viewer):
    """Change of cell control and the comparison: shipped model vs the same weights in the paper's setting.

    Outputs: ``transform`` (U), ``shipped_x``/``shipped_ux`` and ``paper_x``/``paper_ux`` (predictions for the
    original and the changed cell), ``drift_shipped`` and ``drift_paper`` = max |Δ| over the 9 components.
    """

    structure = param.ClassSelector(class_=Structure, default=None, allow_None=True, allow_refs=True)
    models = param.ClassSelector(class_=ModelSelector, default=None, allow_None=True)
    change = param.Selector(default=CHANGES[0], objects=list(CHANGES), doc="How the cell is changed")
    seed = param.Integer(default=0, bounds=(0, None), doc="Seed of the random unimodular matrix")
    tolerance = param.Number(default=TOLERANCE)
    # outputs
    transform = param.Array(default=np.eye(3, dtype=int))
    shipped_x = param.Parameter(default=None)
    shipped_ux = param.Parameter(default=None)
    paper_x = param.Parameter(default=None)
    paper_ux = param.Parameter(default=None)
    drift_shipped = param.Parameter(default=None)
    drift_paper = param.Parameter(default=None)
    n_sites = param.Integer(default=0)
    seconds = param.Number(default=0.0)
    error = param.String(default="")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._paper_models: dict[int, Any] = {}
        self._view: pn.Column | None = None  # built once, on the first display

    def _build(self) -> pn.Column:
        return pn.Column(
            pn.pane.Markdown(
                "Describe the **same crystal** by another unit cell. The shipped model builds its graph from the "
                "canonical cell and averages over the frames the lattice leaves ambiguous: the tensor does not "
                "change. The same weights in the paper's setting (frame of the input cell, sum pooling) do.",
                sizing_mode="stretch_width",
            ),
            pn.Row(
                pn.Column(  # widgets narrower than their column (Panel's default 300 px overflowed onto U)
                    pn.widgets.Select.from_param(self.param.change, label="change of cell", width=240),
                    pn.widgets.IntInput.from_param(self.param.seed, label="seed (random)", width=240),
                    width=260,
                ),
                self._results,
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
            css_classes=["goectp-cell-choice"],
        )

    def _paper_model(self) -> Any:
        model = self.models.model
        key = id(model)
        if key not in self._paper_models:
            shared = self.models.shared_key
            if shared is None:
                self._paper_models = {key: paper_setting(model)}
            else:  # a shipped model: its paper-setting copy is built once per server process
                self._paper_models = {
                    key: pn.state.as_cached(f"goectp-paper-setting-{shared}", lambda: paper_setting(model))
                }
        return self._paper_models[key]

    def _paper_predictions(self, structures: list[Structure]) -> np.ndarray:
        """The paper-setting predictions ``(n, 3, 3)``; for a shipped model cached process-wide (read-only)."""
        from goectp.api import predict

        shared = self.models.shared_key
        keys = [None if shared is None else ("paper", *shared, structure_key(s)) for s in structures]
        out = [None if k is None else SHARED_PREDICTIONS.get(k) for k in keys]
        todo = [i for i, value in enumerate(out) if value is None]
        if todo:
            new = predict([structures[i] for i in todo], self._paper_model(), device=self.models.device, max_sites=2000)
            for j, i in enumerate(todo):
                out[i] = new[j]
                if keys[i] is not None:
                    SHARED_PREDICTIONS.put(keys[i], new[j])
        return np.stack(out)

    @param.depends("structure", "models.version", "change", "seed", watch=True, on_init=False)
    def update(self) -> None:
        """Recompute both comparisons (called when an input changes, and on the first display)."""
        if self.structure is None or self.models is None:
            return
        u = basis_change(self.change, self.seed)
        start = time.perf_counter()
        try:
            other = changed_cell(self.structure, u)
            shipped, _ = self.models.predict([self.structure, other])
            paper = self._paper_predictions([self.structure, other])
        except Exception as exc:
            self.param.update(
                transform=u,
                error=f"prediction failed: {type(exc).__name__}: {exc}",
                drift_shipped=None,
                drift_paper=None,
            )
            return
        self.param.update(
            transform=u,
            shipped_x=shipped[0],
            shipped_ux=shipped[1],
            paper_x=paper[0],
            paper_ux=paper[1],
            drift_shipped=float(np.abs(shipped[1] - shipped[0]).max()),
            drift_paper=float(np.abs(paper[1] - paper[0]).max()),
            n_sites=len(other),
            seconds=time.perf_counter() - start,
            error="",
        )

    @staticmethod
    def _badge(value: float | None, css_id: str, tolerance: float, good: str, bad: str) -> str:
        if value is None:
            return f'<span id="{css_id}" data-value="">–</span>'
        color, word = ("#1a7f37", good) if value < tolerance else ("#cf222e", bad)
        return (
            f'<span id="{css_id}" data-value="{value:.6e}" style="font-weight:700;color:{color}">'
            f"max |Δ| = {value:.3e} — {word}</span>"
        )

    @param.depends("drift_shipped", "drift_paper", "error")
    def _results(self) -> pn.viewable.Viewable:
        if self.drift_shipped is None and not self.error and self.structure is not None:
            self.update()  # first display: nothing is computed before the card is shown
        if self.error:
            return pn.pane.Alert(escape_text(self.error), alert_type="danger")
        if self.drift_shipped is None:
            return pn.pane.Markdown("Load a structure and choose a model.")
        u = matrix_html(
            self.transform.astype(float),
            f"U (new basis = old basis · U), {self.n_sites} sites",
            "cell-change-matrix",
            digits=0,
        )

        def row(title: str, a: np.ndarray, b: np.ndarray, drift: float, css: str, good: str, bad: str) -> str:
            return (
                f"<div style='margin-top:8px'><div style='font-weight:700'>{title}</div>"
                "<div style='display:flex;gap:20px;flex-wrap:wrap;align-items:center'>"
                f"{matrix_html(a, 'original cell', digits=4)}{matrix_html(b, 'changed cell', digits=4)}"
                f"<div>{self._badge(drift, css, self.tolerance, good, bad)}</div></div></div>"
            )

        html = (
            f"<div style='display:flex;gap:24px'>{u}</div>"
            + row(
                "Shipped model (canonical cell, frame averaging)",
                self.shipped_x,
                self.shipped_ux,
                self.drift_shipped,
                "cell-drift-shipped",
                "unchanged",
                "CHANGED",
            )
            + row(
                "Same weights, paper's setting (input-cell frame, sum pooling)",
                self.paper_x,
                self.paper_ux,
                self.drift_paper,
                "cell-drift-paper",
                "unchanged here",
                "drifts",
            )
            + f"<div class='goectp-note' style='font-size:0.9em;margin-top:4px'>{PAPER_NOTE}</div>"
            + f"<div style='color:#666;font-size:0.85em;margin-top:6px'>tolerance {self.tolerance:g}; "
            f"update took {self.seconds * 1000:.0f} ms</div>"
        )
        return pn.pane.HTML(html, sizing_mode="stretch_width", css_classes=["goectp-cell-choice-results"])

    def __panel__(self) -> pn.viewable.Viewable:
        if self._view is None:
            self._view = self._build()
        return self._view
