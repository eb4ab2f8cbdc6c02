"""StructureViewer: the crystal in 3D (py3Dmol, offline) with the frame F's axes and the predicted ε ellipsoid.

Orientations: the structure as loaded (X), rotated by the equivariance check's ``R`` (R X), or canonical (Fᵀ X,
lattice H). In each the ellipsoid is the model's prediction *for that very structure*, so for the frame-averaged
model it turns rigidly with the crystal.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import panel as pn
import param
from pymatgen.core import Structure

from explorer.geometry import ellipsoid_geometry, rotate_structure
from explorer.html_blocks import BOX_STYLES, card_title
from explorer.models import ModelSelector
from explorer.paths import INSTALL_HINT, THREEDMOL_RELATIVE
from explorer.scene import AXIS_COLORS, iframe, scene_view, structure_scene, threedmol_available, viewer_document
from explorer.session import running_on_server

ORIGINAL = "original (X)"
ROTATED = "rotated (R X)"
CANONICAL = "canonical (Fᵀ X, lattice H)"
TITLE = "3D structure · frame F · ε ellipsoid"
DISPLAY_OPTIONS = {"bonds": "show_bonds", "frame F": "show_frame", "ε ellipsoid": "show_ellipsoid"}
#: Under the 3D view: what the arrows and the ellipsoid are.
LEGEND = (
    "Arrows F₁ F₂ F₃ (red, green, blue): columns of the polar frame F of L = F H. Orange: ellipsoid of the predicted "
    "ε (axes = eigenvectors, semi-axes ∝ eigenvalues), centred in the cell. Drag to rotate the camera; <b>Save PNG</b> "
    "(top right of the view) saves an image."
)


class ThreeDmolAsset:
    """Lets ``panel serve`` serve the npm package's 3Dmol.js from explorer/ (Panel's component resource route,
    which only serves files listed here). No ``--static-dirs`` flag needed."""

    __javascript__ = [THREEDMOL_RELATIVE]


def threedmol_url() -> str:
    """Relative URL under which the running Panel server serves 3Dmol.js."""
    from panel.io.resources import component_resource_path

    return component_resource_path(ThreeDmolAsset, "__javascript__", THREEDMOL_RELATIVE)


class StructureViewer(pn.viewable.Viewer):
    """3D view of ``structure``; with ``models`` set it also draws the predicted tensor's ellipsoid.

    Output: ``document`` (the standalone HTML shown in the iframe) and ``scene`` (what was drawn).
    """

    structure = param.ClassSelector(
        class_=Structure, default=None, allow_None=True, allow_refs=True, doc="The crystal as loaded (or a reference)"
    )
    models = param.ClassSelector(class_=ModelSelector, default=None, allow_None=True)
    rotation = param.Array(default=np.eye(3), allow_refs=True, doc="R of the equivariance check (3x3 orthogonal)")
    orientation = param.Selector(default=ORIGINAL, objects=[ORIGINAL, ROTATED, CANONICAL])
    show_bonds = param.Boolean(default=True)
    show_frame = param.Boolean(default=True, doc="Draw the polar frame F's columns as arrows")
    show_ellipsoid = param.Boolean(default=True)
    scene_source = param.Selector(
        default="built-in",
        objects=["built-in", "crystal-toolkit"],
        doc="Who computes atoms/bonds: this package, or crystal-toolkit's scene",
    )
    ellipsoid_size = param.Number(default=0.45, bounds=(0.05, 2.0), doc="Largest semi-axis / (cell volume)^(1/3)")
    height = param.Integer(default=460, bounds=(200, 2000))
    script = param.Selector(
        default="auto",
        objects=["auto", "url", "inline"],
        doc="3Dmol.js from the Panel server ('url'), inlined ('inline'), or decide ('auto')",
    )
    # outputs
    document = param.String(default="", doc="Standalone HTML of the current view")
    displayed_tensor = param.Array(default=None, allow_None=True, doc="The ellipsoid's tensor (3x3) or None")
    error = param.String(default="")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._pane = pn.pane.HTML(
            "", sizing_mode="stretch_width", min_height=self.height, css_classes=["goectp-viewer-pane"]
        )
        self.scene = None
        self._render()
        self._layout = self._build()  # built once: every display shows this layout

    # ------------------------------------------------------------------------------------------------ geometry
    def displayed_structure(self):
        """The structure in the chosen orientation."""
        from goectp.frame import canonicalize

        s = self.structure
        if s is None:
            return None
        if self.orientation == ROTATED:
            return rotate_structure(s, self.rotation)
        if self.orientation == CANONICAL:
            return canonicalize(s)
        return s

    def build_scene(self):
        """Scene of the displayed structure with frame arrows and the ellipsoid of its predicted tensor."""
        from goectp.frame import polar_frame

        shown = self.displayed_structure()
        if self.scene_source == "crystal-toolkit":
            from explorer.scene import crystal_toolkit_scene

            scene = crystal_toolkit_scene(shown)
        else:
            scene = structure_scene(shown, bonds=self.show_bonds)
        lat_rows = shown.lattice.matrix
        longest = float(np.linalg.norm(lat_rows, axis=1).max())
        if self.show_frame:
            frame, _ = polar_frame(lat_rows.T)
            origin = np.zeros(3)
            length = 0.45 * longest
            for i in range(3):
                scene.arrows.append((origin, origin + length * frame[:, i], AXIS_COLORS[i], f"F{'₁₂₃'[i]}"))
        self.displayed_tensor = None
        if self.show_ellipsoid and self.models is not None:
            mean, _ = self.models.predict_one(shown)
            center = 0.5 * lat_rows.sum(axis=0)
            try:
                size = self.ellipsoid_size * shown.lattice.volume ** (1 / 3)
                scene.ellipsoid = ellipsoid_geometry(mean, center=center, size=size)
                self.displayed_tensor = mean
            except ValueError:
                scene.ellipsoid = None
        scene.title = shown.composition.reduced_formula
        return scene

    def html_document(self, script: str = "inline") -> str:
        """Standalone HTML of the current view (``script='inline'``: self-contained, for export)."""
        view = scene_view(self.scene or self.build_scene(), js_url=threedmol_url() if script == "url" else "x")
        return viewer_document(view, script=script, js_url=threedmol_url() if script == "url" else None)

    # ------------------------------------------------------------------------------------------------ render
    @param.depends("rotation", watch=True)
    def _on_rotation(self) -> None:
        if self.orientation == ROTATED:  # R only changes what is shown in the rotated orientation
            self._render()

    @param.depends(
        "structure",
        "models.version",
        "orientation",
        "show_bonds",
        "show_frame",
        "show_ellipsoid",
        "scene_source",
        "ellipsoid_size",
        watch=True,
    )
    def _render(self) -> None:
        if self.structure is None:
            self._show("<p>No structure.</p>")
            return
        if not threedmol_available():
            self.error = INSTALL_HINT
            self._show(f'<div class="goectp-3d-missing" style="color:#a00">{INSTALL_HINT}</div>')
            return
        try:
            self.scene = self.build_scene()
        except Exception as exc:  # a failing prediction or scene must not take the app down
            self.error = f"could not draw the structure: {type(exc).__name__}: {exc}"
            self._show(f'<div style="color:#a00">{html.escape(self.error)}</div>')
            return
        mode = self.script
        if mode == "auto":
            mode = "url" if running_on_server() else "inline"
        url = threedmol_url() if mode == "url" else "inline"
        self.document = viewer_document(
            scene_view(self.scene, js_url=url), script=mode, js_url=url if mode == "url" else None
        )
        self._show(iframe(self.document, height=self.height))
        self.error = ""

    def _show(self, content: str) -> None:
        """The pane: title, ``content`` (the 3D view or why there is none) and the legend, in one HTML pane."""
        self._pane.object = f"{card_title(TITLE)}{content}<div style='font-size:0.85em'>{LEGEND}</div>"

    def _on_display_choice(self, event: param.parameterized.Event) -> None:
        self.param.update(**{flag: label in event.new for label, flag in DISPLAY_OPTIONS.items()})

    @param.depends("show_bonds", "show_frame", "show_ellipsoid", watch=True)
    def _sync_display_choice(self) -> None:
        if hasattr(self, "_display"):
            self._display.value = [label for label, flag in DISPLAY_OPTIONS.items() if getattr(self, flag)]

    def _download_html(self):
        from io import StringIO

        return StringIO(self.html_document("inline"))

    def _build(self) -> pn.Column:
        """The view's layout: the 3D pane (title, view, legend), orientation, what to draw, the HTML export."""
        warning = (  # only when it has something to say: every pane is Bokeh models in every session
            []
            if threedmol_available()
            else [pn.pane.Alert(INSTALL_HINT, alert_type="warning", css_classes=["goectp-3d-missing"])]
        )
        self._display = pn.widgets.CheckButtonGroup(
            options=list(DISPLAY_OPTIONS),
            value=[label for label, flag in DISPLAY_OPTIONS.items() if getattr(self, flag)],
            color="light",
            css_classes=["goectp-display-options"],
        )  # one widget for three flags (three checkboxes in a row were five Bokeh models)
        self._display.param.watch(self._on_display_choice, "value")
        export = pn.widgets.FileDownload(
            callback=self._download_html,
            filename="goectp-structure-3d.html",
            label="Download 3D view (HTML, offline)",
            color="light",
            css_classes=["goectp-export-3d"],
        )
        return pn.Column(
            *warning,
            self._pane,
            pn.widgets.RadioButtonGroup.from_param(
                self.param.orientation, color="light", css_classes=["goectp-orientation"]
            ),
            self._display,
            export,
            sizing_mode="stretch_width",
            margin=(8, 8),
            styles=BOX_STYLES,  # a card's look without a Card (its header and button: Bokeh models every session)
            css_classes=["goectp-viewer", "goectp-card-3d"],
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
