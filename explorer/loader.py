"""StructureLoader: the structure every other view shows — from an upload, the example gallery or the dataset.

Bad input never replaces the current structure: it sets ``error`` (shown as an alert) and the app keeps working.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import panel as pn
import param
from pymatgen.core import Structure

from explorer.dataset_index import DatasetIndex
from explorer.html_blocks import alert_html
from explorer.live import add_on_demand, live_pane
from explorer.paths import DATASET_FILE, examples_dir
from explorer.safe import escape_html
from explorer.session import running_on_server
from explorer.uploads import (  # noqa: F401 - re-exported: the upload steps' public names
    MAX_LATTICE_LENGTH,
    MAX_SITES,
    MAX_UPLOAD_BYTES,
    MIN_DISTANCE,
    Prepared,
    check_at_the_door,
    decode_upload,
    describe_structure,
    precheck_text,
    prepare_structure,
    prepare_text,
    prepare_upload,
    prepare_upload_isolated,
    upload_pool,
)
from goectp.io_formats import FORMAT_HELP, guess_format  # noqa: F401 - the one format guesser (tests use it here)

_GALLERY_CACHE: dict[tuple, Any] = {}
_GALLERY_LOCK = threading.Lock()
#: The search box's placeholder: a formula and an id that are in the shipped data set (tested).
SEARCH_EXAMPLES = ("TiO2", "mp-390")
#: Parsing and preparing uploads runs here, off the server's event loop, so that one heavy upload never stalls
#: another session's page (two workers: one busy upload leaves one for everybody else).
_WORKERS = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="goectp-loader")


def default_structure():
    """Cubic SrTiO3 (Pm-3m, a = 3.905 Å): shown when the example gallery has not been built."""
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup(
        "Pm-3m", Lattice.cubic(3.905), ["Sr", "Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]]
    )


# ---------------------------------------------------------------------------------------------------- sources
@dataclass
class Example:
    name: str
    file: str
    formula: str
    spacegroup: str
    reference: str
    note: str = ""


class ExampleGallery:
    """The bundled examples (``assets/examples/index.json``, built by ``scripts/build_examples.py``)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory else examples_dir()
        index = self.directory / "index.json"
        self.examples: list[Example] = []
        if index.is_file():
            for item in json.loads(index.read_text())["examples"]:
                self.examples.append(Example(**{k: item.get(k, "") for k in Example.__dataclass_fields__}))

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.examples]

    def get(self, name: str) -> Example:
        for e in self.examples:
            if e.name == name:
                return e
        raise KeyError(f"no example named {name!r}; examples: {self.names}")

    def structure(self, name: str):
        return self.prepared(name).structure

    def prepared(self, name: str, max_sites: int = MAX_SITES) -> Prepared:
        """The example parsed, checked and described: once per process (every session shows the same gallery;
        the structures are shared read-only, nothing in the explorer modifies a structure in place)."""
        from goectp.structures import structure_from_file

        path = self.directory / self.get(name).file
        key = (str(path.resolve()), path.stat().st_mtime_ns, max_sites)
        with _GALLERY_LOCK:
            if key not in _GALLERY_CACHE:
                structure = structure_from_file(path, max_sites=max_sites)  # counted before the parse
                _GALLERY_CACHE[key] = prepare_structure(structure, f"{name} (example)", max_sites=max_sites)
            return _GALLERY_CACHE[key]


# ---------------------------------------------------------------------------------------------------- component
class StructureLoader(pn.viewable.Viewer):
    """Load a crystal: upload (CIF / POSCAR / extxyz / JSON), example gallery, or dataset search.

    Output parameters: ``structure`` (pymatgen Structure), ``label``, ``source``, ``reference`` (DFT tensors when
    the structure comes from the dataset, else ``None``), ``error`` (last problem, empty when the last load
    worked), ``message`` (what happened last).
    """

    structure = param.ClassSelector(class_=Structure, default=None, allow_None=True, doc="The current crystal")
    label = param.String(default="")
    source = param.Selector(default="example", objects=["example", "upload", "dataset", "screening", "python"])
    reference = param.Dict(default=None, allow_None=True, doc="DFT tensors of a dataset structure")
    info = param.Dict(default={}, doc="Formula, space group, lattice parameters of the current structure")
    error = param.String(default="")
    message = param.String(default="")
    max_upload_bytes = param.Integer(default=MAX_UPLOAD_BYTES, bounds=(1, None))
    max_sites = param.Integer(default=MAX_SITES, bounds=(1, None))
    example = param.Selector(default=None, objects=[], allow_None=True, doc="Example from the gallery")
    dataset_query = param.String(default="", doc="Formula or id to search in the dataset")
    dataset_choice = param.Selector(default=None, objects=[], allow_None=True)
    busy = param.Boolean(default=False, doc="An upload is being read (in a worker thread)")
    precompute = param.Callable(
        default=None,
        allow_None=True,
        doc=(
            "Called with a freshly parsed upload in the worker thread, before it is shown (the app warms the model's "
            "prediction cache there, so that the cards' updates on the event loop are cache hits)"
        ),
    )

    def __init__(
        self, gallery: ExampleGallery | None = None, dataset: DatasetIndex | None = None, **params: Any
    ) -> None:
        super().__init__(**params)
        self.gallery = gallery if gallery is not None else ExampleGallery()
        # the data set is read-only: one index per server process, shared by every session
        self.dataset = dataset if dataset is not None else pn.state.as_cached("goectp-dataset-index", DatasetIndex)
        self.param.example.objects = self.gallery.names
        self._file_input = pn.widgets.FileInput(
            accept=".cif,.mcif,.vasp,.poscar,.xyz,.extxyz,.json,POSCAR,CONTCAR",
            multiple=False,
            label=f"Upload CIF / POSCAR / extxyz (≤ {self.max_upload_bytes / 1e6:.0f} MB, ≤ {self.max_sites} sites)",
            css_classes=["goectp-upload"],
            sizing_mode="stretch_width",
        )
        # "filename" too: a 0-byte file arrives as value None (Panel decodes '' to None), only its name changes
        self._file_input.param.watch(self._on_upload, ["value", "filename"])
        if running_on_server():  # the upload worker's first start takes seconds: begin it with the first session
            upload_pool().warm()
        self._dataset_results: dict[str, str] = {}
        if self.structure is None:
            if self.gallery.names:
                self.example = self.gallery.names[0]  # triggers _on_example
            else:
                self.set_structure(default_structure(), "SrTiO3 (built-in)", "python")

    # ------------------------------------------------------------------------------------------------ API
    def set_structure(
        self, structure, label: str, source: str, reference: dict | None = None, info: dict | None = None
    ) -> bool:
        """Check and show ``structure``; on failure set ``error`` and keep the previous one. Returns success.

        ``info`` (from :func:`prepare_structure`): the structure was checked already (off the event loop)."""
        if info is None:
            prepared = prepare_structure(structure, label, max_sites=self.max_sites)
            if prepared.error:
                self.param.update(error=prepared.error, message="")
                return False
            info = prepared.info
        self.param.update(
            structure=structure,
            label=label,
            source=source,
            reference=reference,
            info=info,
            error="",
            message=f"Loaded {label}: {info['formula']}, {len(structure)} sites, {info['spacegroup']}",
        )
        return True

    def _apply_upload(self, prepared: Prepared, filename: str) -> bool:
        if prepared.error:
            self.param.update(error=prepared.error, message="")
            return False
        return self.set_structure(prepared.structure, filename, "upload", info=prepared.info)

    def load_text(self, text: str, filename: str) -> bool:
        """Text in the format implied by ``filename`` (see :func:`guess_format`), handled like an upload
        (:meth:`load_bytes`: size limit, pre-check, parse and checks in a bounded worker process)."""
        return self.load_bytes(text.encode("utf-8"), filename)

    def load_bytes(self, data: bytes, filename: str) -> bool:
        """An uploaded file: size limit, text decoding, pre-check, then parse and checks in a worker process with a
        memory and a time limit (:func:`prepare_upload_isolated`; synchronously: the upload widget waits for the
        worker in a thread, see :meth:`load_bytes_async`)."""
        prepared = prepare_upload_isolated(data, filename, self.max_upload_bytes, self.max_sites)
        if not prepared.error and self.precompute is not None:
            self.precompute(prepared.structure)
        return self._apply_upload(prepared, filename)

    async def load_bytes_async(self, data: bytes | None, filename: str) -> bool:
        """:meth:`load_bytes` with the decoding, pre-check, parse, checks and ``precompute`` (e.g. the model's
        predictions) in a worker thread: the server's event loop, which serves every session, stays free."""
        self.param.update(busy=True, error="", message=f"Reading {filename} …")
        loop = asyncio.get_running_loop()
        precompute = self.precompute

        def work() -> Prepared:
            prepared = prepare_upload_isolated(data, filename, self.max_upload_bytes, self.max_sites)
            if not prepared.error and precompute is not None:
                # on failure the cards show their own error when they run the prediction themselves
                with contextlib.suppress(Exception):
                    precompute(prepared.structure)
            return prepared

        try:
            prepared = await loop.run_in_executor(_WORKERS, work)
        finally:
            self.busy = False
        return self._apply_upload(prepared, filename)

    def load_example(self, name: str) -> bool:
        from goectp.structures import StructureError

        try:
            prepared = self.gallery.prepared(name, max_sites=self.max_sites)
        except (KeyError, StructureError, OSError) as exc:
            self.error = str(exc)
            return False
        if prepared.error:
            self.param.update(error=prepared.error, message="")
            return False
        ex = self.gallery.get(name)
        return self.set_structure(prepared.structure, f"{ex.name} (example)", "example", info=prepared.info)

    def search_dataset(self, query: str) -> list[tuple[str, str, int]]:
        try:
            hits = self.dataset.search(query)
        except (FileNotFoundError, ValueError) as exc:  # ValueError: a damaged data file, named
            self.error = str(exc)
            return []
        self._dataset_results = {f"{k} — {f} ({n} sites)": k for k, f, n in hits}
        self.param.dataset_choice.objects = list(self._dataset_results)
        self.dataset_choice = next(iter(self._dataset_results), None)
        self.message = f"{len(hits)} dataset records match {query!r}" if query else ""
        return hits

    def load_dataset_record(self, key: str) -> bool:
        try:
            structure, reference = self.dataset.record(key)
        except (KeyError, FileNotFoundError, ValueError) as exc:
            self.error = str(exc)
            return False
        return self.set_structure(structure, f"{key} (dataset)", "dataset", reference=reference)

    # ------------------------------------------------------------------------------------------------ widgets
    def _on_upload(self, *events: param.parameterized.Event) -> None:
        data, filename = self._file_input.value, self._file_input.filename
        if data is None and not filename:
            return
        filename = filename or "upload"
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:  # served: parse in a worker thread, so that the
            pn.state.execute(functools.partial(self.load_bytes_async, data, filename))  # loop serves everyone
        else:
            self.load_bytes(data, filename)

    @param.depends("example", watch=True)
    def _on_example(self) -> None:
        if self.example:
            self.load_example(self.example)

    @param.depends("dataset_query", watch=True)
    def _on_query(self) -> None:
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None and not self.dataset.loaded:
            pn.state.execute(functools.partial(self._search_async, self.dataset_query))  # first load: ~seconds
        else:
            self.search_dataset(self.dataset_query)

    async def _search_async(self, query: str) -> None:
        """The first search loads the data set (seconds): in a worker thread, the event loop stays free."""
        self.param.update(busy=True, error="", message="Loading the data set …")
        try:
            await asyncio.get_running_loop().run_in_executor(_WORKERS, self._load_dataset_quietly)
        finally:
            self.busy = False
        self.search_dataset(query)

    def _load_dataset_quietly(self) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError):  # search_dataset reports it
            len(self.dataset)

    def _load_choice(self, _event: Any = None) -> None:
        if self.dataset_choice:
            self.load_dataset_record(self._dataset_results[self.dataset_choice])

    @param.depends("error", "message", "busy", "info", "label")
    def _status(self) -> pn.pane.HTML:
        """What happened to the last load (an error, busy, or done) and the loaded structure's summary: one HTML pane
        updated in place (user text escaped; a Markdown ``Alert`` is rendered again in every session)."""
        if self.error:
            text = f"<b>Could not load the structure.</b> {escape_html(self.error)}"
            kind, css = "danger", "goectp-load-error"
        elif self.busy:
            kind, css, text = "info", "goectp-load-busy", escape_html(self.message)
        else:
            text = escape_html(self.message) if self.message else "Choose a structure."
            kind, css = "success", "goectp-load-ok"
        return pn.pane.HTML(
            alert_html(text, kind, "goectp-alert") + self._summary_html(),
            css_classes=[css],
            sizing_mode="stretch_width",
        )

    def _summary_html(self) -> str:
        if not self.info:
            return ""
        i = self.info
        a, b, c = i["abc"]
        al, be, ga = i["angles"]
        return (
            f"<div class='goectp-structure-summary'><b>{escape_html(i['formula'])}</b> — {escape_html(self.label)}"
            f"<br>{i['n_sites']} sites, {escape_html(i['spacegroup'])}, {escape_html(i['crystal_system'])}<br>"
            f"a, b, c = {a:.3f}, {b:.3f}, {c:.3f} Å; α, β, γ = {al:.1f}°, {be:.1f}°, {ga:.1f}°</div>"
        )

    def _dataset_panel(self) -> pn.viewable.Viewable:
        if not self.dataset.available:
            where = self.dataset.path or "GOECTP_DATA / ../shared/data"
            return pn.pane.Markdown(f"*Dataset browser off: no {DATASET_FILE} found ({where}).*")
        load = pn.widgets.Button(label="Load record", color="primary")
        load.on_click(self._load_choice)
        return pn.Column(
            pn.widgets.TextInput.from_param(
                self.param.dataset_query,
                name="Search the DFPT dataset (formula or id)",
                placeholder="e.g. " + ", ".join(SEARCH_EXAMPLES),
            ),
            pn.widgets.Select.from_param(self.param.dataset_choice, name="Matches"),
            load,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        gallery = (
            pn.widgets.Select.from_param(self.param.example, name="Structure: example gallery")
            if self.gallery.names
            else pn.pane.Markdown("*No examples: run scripts/build_examples.py.*")
        )
        layout = pn.Column(gallery, self._file_input, sizing_mode="stretch_width")
        add_on_demand(layout, self._dataset_panel, "Search the DFPT dataset", "goectp-dataset-search")
        layout.append(live_pane(self._status))
        return layout
