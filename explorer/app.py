"""The GoeCTP Explorer app: ``panel serve explorer/app.py`` (or ``python explorer/app.py``).

:class:`Explorer` wires the components together (no global state: every browser session gets its own):
the loader's structure goes to the tensor panel, the 3D view and the equivariance check; the check's rotation R
goes to the 3D view; a point picked on the screening map goes to the loader.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `panel serve explorer/app.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import panel as pn
import param

from explorer.cell_choice import CellChoiceCheck
from explorer.equivariance import EquivarianceCheck
from explorer.live import add_on_demand
from explorer.loader import StructureLoader
from explorer.models import ModelSelector
from explorer.physics_total import shipped_force_field
from explorer.physics_view import PhysicsView
from explorer.screening import ScreeningMap
from explorer.session import SESSION_LIFETIME_MS, prepare_process, shared_screening_data
from explorer.tensor_view import TensorEllipsoid
from explorer.viewer import StructureViewer

TITLE = "GoeCTP Explorer"
CRYSTAL_TAB, SCREENING_TAB, TEACH_TAB, PHYSICS_TAB = 0, 1, 2, 3
TEACH_INTRO = (
    "**Teach**: the two live checks on the loaded crystal, full width for a projector (load another crystal in the "
    "sidebar). Rotate it: f(RX) = R f(X) Rᵀ to round-off. Change its cell: the shipped model does not move."
)
EQUIVARIANCE_TITLE = "Equivariance check: f(RX) vs R f(X) Rᵀ"
CELL_CHOICE_TITLE = "Change of cell: the same crystal in another unit cell"
#: The options of every open (not collapsible) card of the page.
OPEN_CARD = {"sizing_mode": "stretch_width", "collapsible": False, "margin": (8, 8)}
STRETCH = {"sizing_mode": "stretch_width"}
#: Static texts are HTML panes (a Markdown pane renders its text again in every session).
ABOUT = """<p><b>GoeCTP</b> predicts the dielectric tensor ε of a crystal with a graph network made O(3)-equivariant
by the polar frame of its lattice, L = F H: f(X) = F g(Fᵀ X) Fᵀ (Hua et al., arXiv 2601.04755).</p>"""


def offline_fast_design() -> type:
    """Panel's Fast design without its Google Fonts stylesheet (the only resource it loads from the internet;
    everything else Panel and Bokeh serve themselves)."""
    from panel.theme.fast import Fast

    # keep the class name: Panel finds the design's bundled files under a folder named after it
    return type(
        "Fast",
        (Fast,),
        {"_resources": {k: v for k, v in Fast._resources.items() if k != "font"}, "__module__": Fast.__module__},
    )


class Explorer(param.Parameterized):
    """All components of one session, wired together."""

    def __init__(
        self,
        models: ModelSelector | None = None,
        loader: StructureLoader | None = None,
        screening: ScreeningMap | None = None,
        physics: dict[str, Any] | None = None,
        **params: Any,
    ) -> None:
        """``physics``: options of the physics view (tests give it a Born-charge model and a force field)."""
        super().__init__(**params)
        self.models = models or ModelSelector()
        self.loader = loader or StructureLoader()
        if self.loader.precompute is None:  # an upload's predictions run in the loader's worker thread
            self.loader.precompute = self._precompute
        # the cards follow the loader and the check's rotation through references (allow_refs), not watchers
        self.tensor = TensorEllipsoid(
            models=self.models,
            structure=self.loader.param.structure,
            reference=self.loader.param.reference,
            label=self.loader.param.label,
        )
        self.equivariance = EquivarianceCheck(models=self.models, structure=self.loader.param.structure)
        self.cell_choice = CellChoiceCheck(models=self.models, structure=self.loader.param.structure)
        self.viewer = StructureViewer(
            models=self.models, structure=self.loader.param.structure, rotation=self.equivariance.param.rotation
        )
        physics = {"forces": shipped_force_field(), **(physics or {})}  # the physics model's own force field
        self.physics = PhysicsView(
            models=self.models,
            structure=self.loader.param.structure,
            reference=self.loader.param.reference,
            **physics,
        )  # computes nothing until asked (its button)
        self._screening = screening  # else built on first use (its tab): most visitors never open the map
        if screening is not None:
            screening.loader = self.loader
        self._tabs: pn.Tabs | None = None
        self._teach: tuple[EquivarianceCheck, CellChoiceCheck] | None = None  # the Teach tab's checks, on first use
        self._teach_layout: pn.Column | None = None
        self._physics_card: pn.Card | None = None  # the physics tab's card, on first use
        self.loader.param.watch(self._on_pick, ["structure"])

    def _precompute(self, structure) -> None:
        """Run (and cache) every prediction the cards will ask for ``structure``: called in the loader's worker
        thread, so that the cards' updates on the event loop are cache hits."""
        from explorer.geometry import rotate_structure

        both = [structure, rotate_structure(structure, self.equivariance.rotation)]
        self.models.predict(both)
        self.models.predict(both, use_frame=False)

    @property
    def screening(self) -> ScreeningMap:
        """The screening map (filters, table, plots), wired to the loader; created on first use."""
        if self._screening is None:
            self._screening = ScreeningMap(data=shared_screening_data(), loader=self.loader)
        return self._screening

    def _screening_view(self) -> pn.viewable.Viewable:
        return pn.panel(self.screening)

    def _teach_view(self) -> pn.Column:
        """The Teach tab: its own equivariance and change-of-cell checks (predictions are cache hits shared with the
        Crystal tab's), stacked at full width; built the first time the tab is shown."""
        if self._teach_layout is None:
            s = self.loader.param.structure  # a reference: the checks follow the loaded crystal
            self._teach = (
                EquivarianceCheck(models=self.models, structure=s),
                CellChoiceCheck(models=self.models, structure=s),
            )
            self._teach_layout = pn.Column(
                pn.pane.Markdown(TEACH_INTRO, sizing_mode="stretch_width"),
                *self._teaching_cards(*self._teach),
                sizing_mode="stretch_width",
                css_classes=["goectp-teach"],
            )
        return self._teach_layout

    def _physics_view(self) -> pn.Card:
        """The *Why high-κ?* tab's card, built the first time the tab is shown."""
        if self._physics_card is None:
            self._physics_card = pn.Card(
                self.physics,
                title="Born charges and phonons: ε_ion from physics",
                css_classes=["goectp-card-physics"],
                **OPEN_CARD,
            )
        return self._physics_card

    @staticmethod
    def _teaching_cards(equivariance: EquivarianceCheck, cell_choice: CellChoiceCheck) -> list[pn.Card]:
        """The two checks in open cards (the Teach tab)."""
        return [
            pn.Card(view, title=title, css_classes=[css_class], **OPEN_CARD)
            for view, title, css_class in (
                (equivariance, EQUIVARIANCE_TITLE, "goectp-card-equivariance"),
                (cell_choice, CELL_CHOICE_TITLE, "goectp-card-cell-choice"),
            )
        ]

    def _on_pick(self, *_events: param.parameterized.Event) -> None:
        """A candidate picked on the screening map is loaded: show it on the crystal tab."""
        if self._tabs is not None and self._tabs.active == SCREENING_TAB:
            self._tabs.active = CRYSTAL_TAB

    def main_area(self) -> pn.Tabs:
        """Four tabs: the crystal (3D view, tensor; the equivariance and change-of-cell checks one click away), the
        screening map, *Teach* (the two checks open, full width, for a projector) and *Why high-κ?* (the physics
        term, on demand).

        What a visitor has not looked at is not built: the other tabs are empty holders filled the first time they
        are shown (``dynamic`` tabs), the Crystal tab's checks when their button is first pressed; the first render
        of a session costs the 3D view, the tensor and the sidebar only (``benchmarks/speed/bench_room.py``).
        """
        crystal = pn.Column(
            pn.Row(self.viewer, self.tensor, sizing_mode="stretch_width"),  # each draws its own box and title
            sizing_mode="stretch_width",
            css_classes=["goectp-crystal"],
        )
        add_on_demand(crystal, self.equivariance, EQUIVARIANCE_TITLE, "goectp-card-equivariance")
        add_on_demand(crystal, self.cell_choice, CELL_CHOICE_TITLE, "goectp-card-cell-choice")
        # the other tabs: empty holders, filled the first time they are shown (a lazy view per tab costs more)
        holders = {
            SCREENING_TAB: pn.Column(min_height=400, css_classes=["goectp-card-screening"], **STRETCH),
            TEACH_TAB: pn.Column(**STRETCH),
            PHYSICS_TAB: pn.Column(**STRETCH),
        }
        self._tabs = pn.Tabs(
            ("Crystal", crystal),
            (f"Screening map{self._candidate_count()}", holders[SCREENING_TAB]),
            ("Teach", holders[TEACH_TAB]),
            ("Why high-κ? (physics)", holders[PHYSICS_TAB]),
            dynamic=True,
            sizing_mode="stretch_width",
            css_classes=["goectp-tabs"],
        )
        self._tabs.param.watch(self._fill_tab, "active")
        return self._tabs

    def _fill_tab(self, event: param.parameterized.Event) -> None:
        """Build a tab's content the first time it is shown."""
        holder = self._tabs[event.new]
        build = {SCREENING_TAB: self._screening_view, TEACH_TAB: self._teach_view, PHYSICS_TAB: self._physics_view}
        if not holder.objects and event.new in build:
            holder.objects = [build[event.new]()]

    def _candidate_count(self) -> str:
        data = self._screening.data if self._screening is not None else shared_screening_data()
        if data is None or not data.available:
            return ""
        return f" ({len(data.results):,} candidates)"

    def template(self) -> pn.template.FastListTemplate:
        return pn.template.FastListTemplate(
            title=TITLE,
            sidebar=[pn.pane.HTML(ABOUT, sizing_mode="stretch_width"), self.models, self.loader],
            main=[self.main_area()],
            sidebar_width=360,
            accent="#1f5f8b",
            header_background="#1f5f8b",
            design=offline_fast_design(),
            font_url="",
        )


def build_app(**kwargs: Any) -> pn.template.FastListTemplate:
    """A fresh app (one per browser session)."""
    from explorer.memory import release_after_close

    pn.extension("tabulator", notifications=False)
    prepare_process()  # the first session of a served process: shared model and data, then the heap frozen
    release_after_close()  # a closed session's memory goes back to the system, not only to the allocator
    return Explorer(**kwargs).template()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``python explorer/app.py`` options: loopback only unless ``--address`` says otherwise."""
    parser = argparse.ArgumentParser(
        prog="python explorer/app.py",
        description=f"Serve the {TITLE} at http://ADDRESS:PORT/app.",
        epilog="Sharing a server with other machines: see docs/explorer.md (panel serve --address 0.0.0.0 "
        "--allow-websocket-origin HOST:PORT --num-procs N).",
    )
    parser.add_argument(
        "--address",
        default="127.0.0.1",
        help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 = every "
        "interface, then also pass --allow-websocket-origin)",
    )
    parser.add_argument("--port", type=int, default=5006, help="port (default 5006; 0 = any free port)")
    parser.add_argument(
        "--allow-websocket-origin",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="host (as typed in the browser) allowed to load the app and open its websocket; requests naming "
        "any other host get a 403; repeatable (default: localhost:PORT and 127.0.0.1:PORT)",
    )
    parser.add_argument("--show", action="store_true", help="open a browser tab")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from explorer.hosts import AllowedHosts, install_safe_autoload

    install_safe_autoload()  # /app/autoload.js: no uncaught exception, no wildcard CORS
    origins = args.allow_websocket_origin or [f"localhost:{args.port}", f"127.0.0.1:{args.port}"]
    pn.serve(
        {"app": build_app},
        address=args.address,
        port=args.port,
        websocket_origin=origins,
        auth_provider=AllowedHosts(origins),  # a GET with another Host header gets a 403, not a session
        unused_session_lifetime_milliseconds=SESSION_LIFETIME_MS,  # a class's queue: no session built twice
        show=args.show,
        title=TITLE,
    )


if __name__.startswith("bokeh_app"):  # `panel serve` (Panel's state.served walks the stack: 0.1 s)
    build_app().servable(title=TITLE)
elif __name__ == "__main__":
    main()
