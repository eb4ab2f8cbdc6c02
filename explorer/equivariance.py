"""EquivarianceCheck: rotate (or reflect) the crystal by R and compare f(RX) with R f(X) Rᵀ — live.

The structure itself is rotated and its graph rebuilt (never a finished graph). With the polar frame,
``f(X) = F g(Fᵀ X) Fᵀ`` and ``F → R F``, so the two agree to float64 round-off; the backbone ``g`` alone (frame
replaced by the identity) sees raw Cartesian vectors and visibly does not.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import panel as pn
import param
from pymatgen.core import Structure

from explorer.geometry import orthogonal_matrix, random_rotation, rotation_to_axis_angle
from explorer.models import ModelSelector
from explorer.tensor_view import matrix_html
from goectp.testing import ATOL as TOLERANCE
from goectp.testing import equivariance_check


def _badge(value: float | None, css_id: str, tolerance: float) -> str:
    if value is None:
        return f'<span id="{css_id}" data-value="">–</span>'
    ok = value < tolerance
    color, word = ("#1a7f37", "equivariant") if ok else ("#cf222e", "NOT equivariant")
    return (
        f'<span id="{css_id}" data-value="{value:.6e}" style="font-weight:700;color:{color}">'
        f"max |Δ| = {value:.3e} — {word}</span>"
    )


class EquivarianceCheck(pn.viewable.Viewer):
    """Rotation controls (axis–angle, random rotation, reflection) and the live comparison.

    Outputs: ``rotation`` (R), ``f_x``, ``f_rx``, ``rf_x`` (= R f(X) Rᵀ), ``error_frame`` = max|f(RX) − R f(X) Rᵀ|,
    and the same for the backbone alone: ``g_x``, ``g_rx``, ``rg_x``, ``error_backbone``.
    """

    structure = param.ClassSelector(class_=Structure, default=None, allow_None=True, allow_refs=True)
    models = param.ClassSelector(class_=ModelSelector, default=None, allow_None=True)
    axis_theta = param.Number(default=54.7356, bounds=(0.0, 180.0), doc="Rotation axis polar angle θ (deg)")
    axis_phi = param.Number(default=45.0, bounds=(0.0, 360.0), doc="Rotation axis azimuth φ (deg)")
    angle = param.Number(default=50.0, bounds=(-180.0, 180.0), doc="Rotation angle ω (deg)")
    reflect = param.Boolean(default=False, doc="Follow the rotation by the mirror ⟂ axis (det R = −1)")
    seed = param.Integer(default=0, doc="Seed of the next random rotation")
    tolerance = param.Number(default=TOLERANCE)
    randomize = param.Action(lambda self: self.random_rotation(), label="Random rotation")
    # outputs
    rotation = param.Array(default=np.eye(3))
    f_x = param.Parameter(default=None)
    f_rx = param.Parameter(default=None)
    rf_x = param.Parameter(default=None)
    g_x = param.Parameter(default=None)
    g_rx = param.Parameter(default=None)
    rg_x = param.Parameter(default=None)
    error_frame = param.Parameter(default=None)
    error_backbone = param.Parameter(default=None)
    seconds = param.Number(default=0.0, doc="Wall time of the last update")
    error = param.String(default="")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._view: pn.Column | None = None  # built once: a second display adds no watchers
        self._update()

    def random_rotation(self) -> np.ndarray:
        """Draw a uniformly random rotation (seeded) and move the sliders to it."""
        rot = random_rotation(np.random.default_rng(self.seed))
        theta, phi, angle = rotation_to_axis_angle(rot)
        self.param.update(axis_theta=theta, axis_phi=phi, angle=angle, seed=self.seed + 1)
        return rot

    @param.depends("structure", "models.version", "axis_theta", "axis_phi", "angle", "reflect", watch=True)
    def _update(self) -> None:
        rot = orthogonal_matrix(self.axis_theta, self.axis_phi, self.angle, self.reflect)
        if self.structure is None or self.models is None:
            self.rotation = rot
            return
        start = time.perf_counter()
        try:  # goectp.testing's check: the structure is rotated, both graphs rebuilt, one batched call each
            frame = equivariance_check(lambda pair: self.models.predict(pair)[0], self.structure, rot, batched=True)
            backbone = equivariance_check(
                lambda pair: self.models.predict(pair, use_frame=False)[0], self.structure, rot, batched=True
            )
        except Exception as exc:
            self.param.update(
                rotation=rot,
                error=f"prediction failed: {type(exc).__name__}: {exc}",
                error_frame=None,
                error_backbone=None,
            )
            return
        self.param.update(
            rotation=rot,
            f_x=frame.f_x,
            f_rx=frame.f_rx,
            rf_x=frame.expected,
            g_x=backbone.f_x,
            g_rx=backbone.f_rx,
            rg_x=backbone.expected,
            error_frame=frame.error,
            error_backbone=backbone.error,
            seconds=time.perf_counter() - start,
            error="",
        )

    # ------------------------------------------------------------------------------------------------ view
    @param.depends("rotation", "error_frame", "error_backbone", "error")
    def _results(self) -> pn.viewable.Viewable:
        if self.error:  # exception text can carry a file's words: shown as text, never as HTML
            from explorer.safe import escape_text

            return pn.pane.Alert(escape_text(self.error), alert_type="danger")
        if self.f_rx is None:
            return pn.pane.Markdown("Load a structure and choose a model.")
        det = float(np.linalg.det(self.rotation))
        kind = "rotation" if det > 0 else "improper rotation (rotation + mirror)"
        r_html = matrix_html(self.rotation, f"R ({kind}, det R = {det:+.0f})", "rotation-matrix", digits=4)

        def row(title: str, a: np.ndarray, b: np.ndarray, err: float, css: str, la: str, lb: str) -> str:
            return (
                f"<div style='margin-top:8px'><div style='font-weight:700'>{title}</div>"
                "<div style='display:flex;gap:20px;flex-wrap:wrap;align-items:center'>"
                f"{matrix_html(a, la, digits=4)}{matrix_html(b, lb, digits=4)}"
                f"<div>{_badge(err, css, self.tolerance)}</div></div></div>"
            )

        html = (
            f"<div style='display:flex;gap:24px'>{r_html}</div>"
            + row(
                "GoeCTP f(X) = F g(Fᵀ X) Fᵀ (with the polar frame)",
                self.f_rx,
                self.rf_x,
                self.error_frame,
                "equivariance-error-frame",
                "f(R X)",
                "R f(X) Rᵀ",
            )
            + row(
                "Backbone g alone (frame replaced by the identity)",
                self.g_rx,
                self.rg_x,
                self.error_backbone,
                "equivariance-error-backbone",
                "g(R X)",
                "R g(X) Rᵀ",
            )
            + f"<div style='color:#666;font-size:0.85em;margin-top:6px'>tolerance {self.tolerance:g}; "
            f"update took {self.seconds * 1000:.0f} ms (two graphs rebuilt, four predictions, cached)</div>"
        )
        return pn.pane.HTML(html, sizing_mode="stretch_width", css_classes=["goectp-equivariance-results"])

    def _slider(self, name: str, label: str, step: float) -> pn.widgets.FloatSlider:
        """A slider that sets the parameter on release (``value_throttled``): one update per gesture."""
        p = self.param[name]
        slider = pn.widgets.FloatSlider(
            label=label,
            start=p.bounds[0],
            end=p.bounds[1],
            step=step,
            value=getattr(self, name),
            css_classes=[f"goectp-slider-{name}"],
        )
        slider.param.watch(lambda e: setattr(self, name, e.new), "value_throttled")
        self.param.watch(lambda e: setattr(slider, "value", e.new), name)  # random rotation moves the slider
        return slider

    def __panel__(self) -> pn.viewable.Viewable:
        if self._view is None:
            self._view = self._build()
        return self._view

    def _build(self) -> pn.Column:
        sliders = pn.Column(
            self._slider("axis_theta", "axis θ (°)", 0.5),
            self._slider("axis_phi", "axis φ (°)", 0.5),
            self._slider("angle", "angle ω (°)", 1.0),
            pn.Row(
                pn.widgets.Checkbox.from_param(self.param.reflect, name="reflect (mirror ⟂ axis)"),
                pn.widgets.Button.from_param(
                    self.param.randomize, color="primary", css_classes=["goectp-random-rotation"]
                ),
            ),
            width=320,
        )
        text = pn.pane.Markdown(
            "Rotate the **crystal** by R (its graph is rebuilt from the rotated structure). An equivariant model "
            "gives **f(RX) = R f(X) Rᵀ**. The polar frame F of the lattice turns into R F, so the network g only "
            "ever sees the same canonical crystal. Switch the 3D view to *rotated (R X)*: the ellipsoid turns with "
            "the crystal.",
            sizing_mode="stretch_width",
        )
        return pn.Column(
            text,
            pn.Row(sliders, self._results, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
            css_classes=["goectp-equivariance"],
        )
