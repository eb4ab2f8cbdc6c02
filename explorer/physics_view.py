"""PhysicsView: why is this crystal high-κ? The physics term ε_ion = e²/(ε₀Ω) Z* Φ⁺ Z*ᵀ, mode by mode.

On a button (it costs seconds: SevenNet force constants, ≤ 6N force evaluations of the primitive cell), in a worker
thread, cached per crystal for the server process: :func:`goectp.physics.predict.ionic_physics` with the predicted
Born charges. Shows ε̄_ion from physics next to the model's ionic part (and DFT's for a data-set record), the Born
charges per atom (table and ellipsoids in 3D), the optical modes ranked by their share of ε̄_ion (unstable modes
flagged), and a mode animated in 3D (:mod:`explorer.physics_scene`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from functools import cached_property
from typing import Any

import numpy as np
import panel as pn
import param
from pymatgen.core import Structure

from explorer.models import ModelSelector, structure_key
from explorer.physics_compute import (
    PHYSICS_CACHE,
    PHYSICS_WORKER,
    ComputationCancelledError,
    duration_text,
    shipped_born_model,
    shipped_born_path,
    torch_threads,
)
from explorer.physics_export import physics_download_links
from explorer.physics_scene import AMPLITUDE, N_FRAMES, born_document, mode_displacements, mode_document
from explorer.physics_tables import born_table_html, mode_rows, mode_table_html, table_css
from explorer.physics_total import corrected_sigma, corrected_total, model_ionic, shipped_force_field
from explorer.safe import escape_html, escape_text
from explorer.scene import iframe, threedmol_available
from explorer.tensor_view import matrix_html

BORN_VIEW = "Born charges Z*"
MODE_VIEW = "mode, animated"
MAX_SITES = 40  # primitive-cell sites: ≤ 6N force evaluations of N atoms (cost by size: docs/physics.md)
#: what the physics term is, one line
WHAT = (
    "Physics term: ε_ion = e²/(ε₀Ω) Σ Z* Φ⁺ Z*ᵀ — Γ-point force constants Φ from {forces} (phonopy, ±0.01 Å central "
    "differences on the canonical primitive cell), Born effective charges Z* predicted by {born}; each optical mode "
    "adds e²/(ε₀Ω) Z̃ Z̃ᵀ/ω²."
)
#: how often a served view shows the progress of a computation in the worker (seconds)
PROGRESS_INTERVAL = 0.5


class PhysicsView(pn.viewable.Viewer):
    """The physics term of ``structure`` on demand, with its Born charges, modes and a mode animated in 3D.

    Inputs: ``structure`` and ``reference`` (references allowed), ``models`` (for the model's ionic part),
    ``born_model`` (``None``: the shipped ensemble), ``forces`` (a force-field name or object), ``cache_dir``.
    Outputs: ``result`` (:class:`~goectp.physics.predict.IonicPhysics`), ``seconds`` (this computation, or the first
    one when ``cached``), ``busy``, ``error``.
    """

    structure = param.ClassSelector(class_=Structure, default=None, allow_None=True, allow_refs=True)
    reference = param.Dict(default=None, allow_None=True, allow_refs=True, doc="DFT tensors of a data-set record")
    models = param.ClassSelector(class_=ModelSelector, default=None, allow_None=True)
    born_model = param.Parameter(default=None, doc="Born-charge model (None: the shipped ensemble)")
    forces = param.Parameter(
        default=None, doc="Force field: a name ('sevennet', 'chgnet', …), an object or None (the physics model's)"
    )
    cache_dir = param.Parameter(default="default", doc="Force-constant cache (see ionic_physics)")
    show = param.Selector(default=BORN_VIEW, objects=[BORN_VIEW, MODE_VIEW])
    mode = param.Integer(default=0, bounds=(0, None), doc="Index of the animated mode (default: the dominant one)")
    amplitude = param.Number(default=AMPLITUDE, bounds=(0.05, 0.8), doc="Largest atomic displacement (Å)")
    n_frames = param.Integer(default=N_FRAMES, bounds=(3, 60))
    height = param.Integer(default=400, bounds=(200, 2000))
    num_threads = param.Integer(
        default=1,
        bounds=(1, None),
        allow_None=True,
        doc="torch threads for the force evaluations (None: torch's setting); on a busy 2-core machine one thread "
        "made SevenNet-0's force constants of rutile 7-10x faster (1.2-1.8 s against 12.7 s)",
    )
    compute = param.Event(doc="Compute the physics term of the structure")
    cancel = param.Event(doc="Stop the computation in progress (at its next batch of displaced cells)")
    # outputs
    result = param.Parameter(default=None)
    seconds = param.Number(default=0.0)
    cached = param.Boolean(default=False)
    busy = param.Boolean(default=False)
    progress = param.Tuple(default=(0, 0), length=2, doc="Displaced cells (done, in all) of the computation running")
    cancelled = param.String(default="", doc="What was done when the last computation was cancelled")
    error = param.String(default="")
    document = param.String(default="", doc="Standalone HTML of the 3D view")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._layout: pn.Column | None = None
        self._pane = pn.pane.HTML("", sizing_mode="stretch_width", min_height=self.height)
        self._mode_options: dict[str, int] = {}  # the mode menu's entries (its widget is made when first shown)
        self._stop = threading.Event()  # set by *Cancel*, read by the worker between batches
        self._started = 0.0
        self._on_structure()

    # the widgets are made when first used (the tab is built on demand; every session constructs this view)
    def _made(self, widget: str) -> bool:
        return widget in self.__dict__

    @cached_property
    def _select(self) -> pn.widgets.Select:
        select = pn.widgets.Select(
            label="mode", options=self._mode_options, width=300, css_classes=["goectp-physics-mode"]
        )
        if self._mode_options:
            select.value = self.mode
        select.param.watch(lambda e: e.new is not None and setattr(self, "mode", e.new), "value")
        return select

    @cached_property
    def _button(self) -> pn.widgets.Button:
        button = pn.widgets.Button(
            label="Compute the physics term",
            color="primary",
            css_classes=["goectp-physics-compute"],
            disabled=self._button_disabled(),
        )
        button.on_click(lambda _e: self.param.trigger("compute"))
        return button

    @cached_property
    def _cancel_button(self) -> pn.widgets.Button:
        button = pn.widgets.Button(
            label="Cancel", color="light", css_classes=["goectp-physics-cancel"], visible=self.busy
        )
        button.on_click(lambda _e: self.param.trigger("cancel"))
        return button

    @cached_property
    def _mode_row(self) -> pn.Row:
        """The animation's controls: the mode and its amplitude."""
        amplitude = pn.widgets.FloatSlider.from_param(self.param.amplitude, label="amplitude (Å)", width=220, step=0.05)
        return pn.Row(self._select, amplitude, visible=self.show == MODE_VIEW)

    # ------------------------------------------------------------------------------------------------ compute
    def _forces_name(self) -> str:
        if self.forces is None:  # the physics model's own (assets/physics/physics.json), as the app passes it
            return shipped_force_field()
        return self.forces if isinstance(self.forces, str) else str(self.forces.version)

    def _key(self, structure: Structure) -> tuple:
        born = "shipped" if self.born_model is None else f"given-{id(self.born_model)}"
        if self.born_model is None and shipped_born_path().exists():
            born += f"-{shipped_born_path().stat().st_mtime_ns}"
        return ("physics", born, self._forces_name(), str(self.cache_dir), structure_key(structure))

    @property
    def model_missing(self) -> bool:
        """True when no Born-charge model is given and none is shipped."""
        return self.born_model is None and not shipped_born_path().exists()

    def _run(self, structure: Structure, progress: Any = None) -> tuple[Any, float]:
        """The physics term of ``structure`` and its wall time (seconds); cached for the process. ``progress(done,
        total)`` is called between batches of displaced cells (:func:`~goectp.physics.predict.ionic_physics`)."""
        from goectp.canonical import canonical_cell
        from goectp.physics.predict import ionic_physics

        start = time.perf_counter()
        n = len(canonical_cell(structure))
        if n > MAX_SITES:
            raise ValueError(
                f"{n} sites in the primitive cell: the explorer computes the physics term up to {MAX_SITES}"
            )
        born = self.born_model if self.born_model is not None else shipped_born_model()
        with torch_threads(self.num_threads):
            physics = ionic_physics(
                structure, born_model=born, forces=self.forces, cache_dir=self.cache_dir, progress=progress
            )
        seconds = time.perf_counter() - start
        PHYSICS_CACHE.put(self._key(structure), (physics, seconds))
        return physics, seconds

    @param.depends("compute", watch=True)
    def _on_compute(self) -> None:
        if self.structure is None or self.busy or self.result is not None:
            return
        if self.model_missing:
            self.error = self.missing_message()
            return
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:  # served: off the event loop
            pn.state.execute(self._compute_async)
        else:
            self.compute_now()

    @param.depends("cancel", watch=True)
    def _on_cancel(self) -> None:
        if self.busy:
            self._stop.set()

    def _start(self) -> dict:
        """Mark the view busy; returns the progress the worker writes (``done``, ``total``)."""
        self._stop.clear()
        self._started = time.perf_counter()
        self.param.update(busy=True, error="", cancelled="", progress=(0, 0))
        return {"done": 0, "total": 0}

    def _reporter(self, state: dict, show: bool) -> Any:
        """The worker's progress callback: records ``(done, total)`` in ``state`` (and shows it when ``show``: the
        notebook's same-thread path) and stops the computation once *Cancel* was pressed."""

        def report(done: int, total: int) -> None:
            if self._stop.is_set():
                raise ComputationCancelledError(f"{state['done']} of {state['total']} displaced cells")
            state.update(done=done, total=total)
            if show:
                self.progress = (done, total)

        return report

    def _finish(self, structure: Structure, run: Any) -> None:
        """Apply the worker's result, or say what stopped it."""
        try:
            physics, seconds = run()
        except ComputationCancelledError as exc:
            self.param.update(busy=False, cancelled=str(exc))
            return
        except Exception as exc:
            self.param.update(busy=False, error=f"{type(exc).__name__}: {exc}")
            return
        self._apply(structure, physics, seconds, cached=False)

    def compute_now(self) -> None:
        """Compute the physics term of the current structure in this thread (its force constants come from the
        disk cache of :func:`~goectp.physics.predict.ionic_physics` when they are there)."""
        structure = self.structure
        report = self._reporter(self._start(), show=True)
        self._finish(structure, lambda: self._run(structure, report))

    async def _compute_async(self) -> None:
        """Served: the computation runs in the worker thread; its progress is shown every
        :data:`PROGRESS_INTERVAL` from this event-loop task (where the session's document may be changed)."""
        structure = self.structure
        state = self._start()
        future = asyncio.get_running_loop().run_in_executor(
            PHYSICS_WORKER, self._run, structure, self._reporter(state, False)
        )
        while not future.done():
            await asyncio.wait({future}, timeout=PROGRESS_INTERVAL)
            self.progress = (state["done"], state["total"])
        self._finish(structure, future.result)

    def _apply(self, structure: Structure, physics: Any, seconds: float, cached: bool) -> None:
        if structure is not self.structure:  # the user moved on: the result stays in the cache
            self.busy = False
            return
        rows, _ = mode_rows(physics)
        options = {
            f"{r['index']}: {r['frequency_thz']:.2f} THz, {100 * r['share']:.1f} %"
            + (" (unstable)" if r["unstable"] else ""): r["index"]
            for r in rows
        }
        dominant = rows[0]["index"] if rows else 0
        self._mode_options = options
        if self._made("_select"):
            self._select.param.update(options=options, value=dominant)
        self.param.update(result=physics, seconds=seconds, cached=cached, busy=False, error="", mode=dominant)

    @param.depends("structure", "born_model", "forces", watch=True)
    def _on_structure(self) -> None:
        """A new crystal: its cached physics term is shown at once, else the button offers to compute it."""
        hit = None if self.structure is None else PHYSICS_CACHE.get(self._key(self.structure))
        if hit is not None:
            self._apply(self.structure, hit[0], hit[1], cached=True)
        else:
            self._mode_options = {}
            if self._made("_select"):
                self._select.options = {}
            self.param.update(result=None, seconds=0.0, cached=False, error="", cancelled="")

    # ------------------------------------------------------------------------------------------------ model
    def missing_message(self) -> str:
        return (
            "No Born-charge model is shipped yet (assets/physics/born-charges is missing): the physics term needs "
            "predicted Born charges. Train one with benchmarks/experiments/born_charges.py."
        )

    def model_ionic(self) -> tuple[np.ndarray | None, str]:
        """:func:`explorer.physics_total.model_ionic` of the structure with the selected model."""
        return model_ionic(self.models, self.structure)

    def corrected_total(self) -> tuple[np.ndarray | None, np.ndarray | None, str]:
        """:func:`explorer.physics_total.corrected_total` of the computed structure with the selected model."""
        return corrected_total(self.result, self.structure, self.models, self._forces_name())

    # ------------------------------------------------------------------------------------------------ views
    def forces_label(self) -> str:
        name = self._forces_name()
        return {"sevennet": "SevenNet-0", "sevennet-l3i5": "SevenNet-l3i5"}.get(name, name)

    def born_label(self) -> str:
        if self.born_model is not None:
            return f"the given model ({type(self.born_model).__name__})"
        return "the shipped Born-charge ensemble (assets/physics/born-charges)"

    @param.depends("result", "busy", "structure", "born_model", watch=True)
    def _sync_button(self) -> None:
        if self._made("_button"):
            self._button.disabled = self._button_disabled()
        if self._made("_cancel_button"):
            self._cancel_button.visible = self.busy

    def _button_disabled(self) -> bool:
        return self.busy or self.result is not None or self.model_missing or self.structure is None

    def progress_text(self) -> str:
        """The computation's progress in words: displaced cells done and an estimate of the time left."""
        done, total = self.progress
        if not total:
            return "Waiting for the worker (one computation at a time per server) …"
        text = f"Force constants: {done} of {total} displaced cells ({100 * done / total:.0f} %)"
        if done:
            left = (time.perf_counter() - self._started) / done * (total - done)
            text += f", about {duration_text(left)} left" if done < total else ", Born charges and modes …"
        return text

    @param.depends("result", "busy", "error", "structure", "progress", "cancelled")
    def _status(self) -> pn.viewable.Viewable:
        if self.model_missing:
            return pn.pane.Alert(
                escape_text(self.missing_message()), alert_type="warning", css_classes=["goectp-physics-missing"]
            )
        if self.error:
            return pn.pane.Alert(
                escape_text(f"The physics term failed: {self.error}"),
                alert_type="danger",
                css_classes=["goectp-physics-error"],
            )
        if self.busy:
            done, total = self.progress
            return pn.Column(
                pn.pane.Alert(
                    escape_text(self.progress_text()), alert_type="info", css_classes=["goectp-physics-busy"]
                ),
                pn.indicators.Progress(
                    value=done if total else -1, max=max(total, 1), width=300, css_classes=["goectp-physics-progress"]
                ),
            )
        if self.cancelled and self.result is None:
            return pn.pane.Alert(
                escape_text(f"Cancelled after {self.cancelled}; nothing was cached. Press the button to start again."),
                alert_type="warning",
                css_classes=["goectp-physics-cancelled"],
            )
        if self.result is None:
            return pn.pane.Markdown(
                "Not computed for this crystal yet. Cost, measured on one CPU thread with the shipped Born-charge "
                "ensemble and SevenNet-l3i5 (the physics model's force field): about 5 s for the first crystal of a "
                "server process (both models load once), then 1–2 s for 4–6 atoms (≤ 6N force evaluations; a median "
                "18 s at 13–20 atoms and 21–34 s at 21–30 atoms on a loaded machine, up to ~80 s for a cell without "
                "symmetry; a median 64 s at 31–40 atoms, up to ~9 min: a progress bar with the time left and a Cancel "
                "button show while it runs); a crystal computed once is shown again at once (cached).",
                css_classes=["goectp-physics-idle"],
            )
        fc = self.result.force_constants
        when = (
            f"from the cache (first computed in {self.seconds:.1f} s)"
            if self.cached
            else f"computed in {self.seconds:.1f} s (force constants {fc.seconds:.1f} s, {fc.num_displacements} "
            "displaced cells); cached for this crystal"
        )
        return pn.pane.Markdown(
            escape_text(f"{WHAT.format(forces=self.forces_label(), born=self.born_label())} Cost: {when}."),
            css_classes=["goectp-physics-what"],
            sizing_mode="stretch_width",
        )

    @param.depends("result", "models.version", "reference")
    def _comparison(self) -> pn.viewable.Viewable:
        if self.result is None:
            return pn.pane.HTML("")
        phys = self.result
        blocks = [matrix_html(phys.tensor, "ε_ion, physics", "physics-eps-ion", digits=2)]
        lines = [
            f"<span id='physics-eps-mean' data-value='{phys.eps_mean:.6f}'>"
            f"ε̄_ion physics = <b>{phys.eps_mean:.2f}</b></span>"
        ]
        model, what = self.model_ionic()
        if model is not None:
            blocks.append(matrix_html(model, "ε_ion, model", "model-eps-ion", digits=2))
            lines.append(
                f"<span id='model-eps-mean'>ε̄_ion model = <b>{np.trace(model) / 3:.2f}</b> ({escape_html(what)})</span>"
            )
        else:
            lines.append(f"<span id='model-eps-mean'>model: {escape_html(what)}</span>")
        corrected, learned, how = self.corrected_total()
        sigma = corrected_sigma(self.result, self.structure, self.models) if corrected is not None else None
        if corrected is not None:
            blocks.append(matrix_html(corrected, "ε, physics model", "physics-model-eps", digits=2))
            plus_minus = f" ± {sigma:.2f}" if sigma is not None else ""  # calibrated, with the physics model's factor
            lines.append(
                f"<span id='physics-model-eps-mean' data-value='{np.trace(corrected) / 3:.6f}'>ε̄ physics model = "
                f"<b>{np.trace(corrected) / 3:.2f}</b>{plus_minus} (learned: {np.trace(learned) / 3:.2f}; "
                f"{escape_html(how)})</span>"
            )
        else:
            lines.append(f"<span id='physics-model-eps-mean'>physics model: {escape_html(how)}</span>")
        ref = self.reference or {}
        if "ionic" in ref:
            dft = np.asarray(ref["ionic"], float)
            blocks.append(matrix_html(dft, "ε_ion, DFT (record)", "dft-eps-ion", digits=2))
            lines.append(f"<span>ε̄_ion DFT = <b>{np.trace(dft) / 3:.2f}</b></span>")
        modes = phys.modes
        if modes.num_unstable:
            lines.append(
                f"<span style='color:#c53030'>{modes.num_unstable} unstable mode(s) (ω² &lt; 0 at this geometry): left "
                "out of the sum, so ε_ion from physics may be too small.</span>"
            )
        model_part = dict(corrected=corrected, learned=learned, sigma=sigma, how=how, dft_ionic=ref.get("ionic"))
        downloads = physics_download_links(phys, self.structure.composition.reduced_formula, **model_part)
        html = (
            f"<div style='display:flex;gap:24px;flex-wrap:wrap'>{''.join(blocks)}</div>"
            f"<div style='display:flex;flex-direction:column;gap:2px;margin-top:6px'>{''.join(lines)}</div>{downloads}"
        )
        return pn.pane.HTML(html, sizing_mode="stretch_width", css_classes=["goectp-physics-comparison"])

    @param.depends("result")
    def _tables(self) -> pn.viewable.Viewable:
        if self.result is None:
            return pn.pane.HTML("")
        html = (
            f"{table_css()}<div style='display:flex;gap:28px;flex-wrap:wrap;align-items:flex-start'>"
            f"{born_table_html(self.result)}{mode_table_html(self.result)}</div>"
        )
        return pn.pane.HTML(html, sizing_mode="stretch_width", css_classes=["goectp-physics-tables"])

    def displacements(self) -> np.ndarray:
        """``[N, 3]`` (Å): the animated mode's displacement pattern, largest atom = ``amplitude``."""
        modes, fc = self.result.modes, self.result.force_constants
        return mode_displacements(modes.eigenvectors[self.mode], fc.masses, self.amplitude)

    @param.depends("show", watch=True)
    def _on_show(self) -> None:
        if self._made("_mode_row"):
            self._mode_row.visible = self.show == MODE_VIEW

    @param.depends("result", "show", "mode", "amplitude", "n_frames", watch=True)
    def _render(self) -> None:
        if self.result is None:
            self.document, self._pane.object = "", ""
            return
        if not threedmol_available():
            self._pane.object = (
                "<div style='color:#a00'>3Dmol.js is not installed: no 3D view (run ./install.sh).</div>"
            )
            return
        from explorer.session import running_on_server
        from explorer.viewer import threedmol_url

        served = running_on_server()
        script, url = ("url", threedmol_url()) if served else ("inline", None)
        cell = self.result.cell
        if self.show == BORN_VIEW:
            self.document = born_document(cell, self.result.born_charges, script=script, js_url=url)
        else:
            self.mode = min(self.mode, len(self.result.modes.frequency_thz) - 1)
            self.document = mode_document(cell, self.displacements(), self.n_frames, script=script, js_url=url)
        self._pane.object = iframe(self.document, height=self.height, css_class="goectp-physics-3d")

    def _legend(self) -> pn.viewable.Viewable:
        return pn.pane.Markdown(
            "3D: the canonical primitive cell. **Born charges**: per atom the ellipsoid of the symmetric part of Z* "
            "(semi-axes ∝ |principal values|; blue tr Z* > 0, red < 0; sticks = principal axes). **Mode**: the atoms "
            "move along e_m/√M (green arrows, 2.5× the displacement), played back and forth.",
            styles={"font-size": "0.85em"},
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            self._layout = pn.Column(
                pn.pane.Markdown(
                    "**Why is this crystal high-κ?** Large ε comes from soft polar modes: big Born charges Z* over "
                    "small force constants. The physics term computes both for the crystal on screen.",
                    sizing_mode="stretch_width",
                ),
                pn.Row(self._button, self._cancel_button),
                self._status,
                self._comparison,
                pn.widgets.RadioButtonGroup.from_param(
                    self.param.show, color="light", css_classes=["goectp-physics-show"]
                ),
                self._mode_row,
                self._pane,
                self._legend(),
                self._tables,
                sizing_mode="stretch_width",
                css_classes=["goectp-physics"],
            )
        return self._layout
