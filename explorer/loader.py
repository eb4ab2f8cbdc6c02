"""StructureLoader: the structure every other view shows — from an upload, the example gallery or the dataset.

Bad input never replaces the current structure: it sets ``error`` (shown as an alert) and the app keeps working.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import param

from explorer.paths import DATASET_FILE, data_dir, examples_dir
from goectp.io_formats import FORMAT_HELP, guess_format  # the one format guesser (also used by uploads' tests)

#: Uploads larger than this are refused before parsing (bytes).
MAX_UPLOAD_BYTES = 2_000_000
#: The explorer draws every atom and bond; larger cells are refused (the CLI handles big cells).
MAX_SITES = 200



def default_structure():  # noqa: ANN201
    """Cubic SrTiO3 (Pm-3m, a = 3.905 Å): shown when the example gallery has not been built."""
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Pm-3m", Lattice.cubic(3.905), ["Sr", "Ti", "O"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]])


def describe_structure(structure) -> dict[str, Any]:  # noqa: ANN001
    """Formula, number of sites, space group (spglib, symprec 0.01 Å) and lattice parameters."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        sga = SpacegroupAnalyzer(structure, symprec=0.01)
        spacegroup = f"{sga.get_space_group_symbol()} (#{sga.get_space_group_number()})"
        system = sga.get_crystal_system()
    except Exception:  # spglib can fail on odd cells; the description is informative only
        spacegroup, system = "unknown", "unknown"
    lat = structure.lattice
    return {"formula": structure.composition.reduced_formula, "n_sites": len(structure), "spacegroup": spacegroup,
            "crystal_system": system, "abc": lat.abc, "angles": lat.angles, "volume": lat.volume}


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

    def structure(self, name: str):  # noqa: ANN201
        from goectp.structures import structure_from_file

        return structure_from_file(self.directory / self.get(name).file)


class DatasetIndex:
    """Lazy view of ``mp_dielectric_open.json.gz``: loaded on first use, then kept (about 1 s to load)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory else data_dir()
        self._records: dict[str, dict] | None = None
        self._formulas: dict[str, str] = {}

    @property
    def path(self) -> Path | None:
        return self.directory / DATASET_FILE if self.directory else None

    @property
    def available(self) -> bool:
        return self.path is not None and self.path.is_file()

    @property
    def loaded(self) -> bool:
        return self._records is not None

    def _load(self) -> dict[str, dict]:
        if self._records is None:
            if not self.available:
                raise FileNotFoundError(f"dataset not found: {self.path} (set GOECTP_DATA to its directory)")
            from pymatgen.core import Composition

            with gzip.open(self.path, "rt", encoding="utf-8") as fh:
                records = json.load(fh)
            for key, rec in records.items():
                counts: dict[str, float] = {}
                for site in rec["structure"]["sites"]:
                    for sp in site["species"]:
                        counts[sp["element"]] = counts.get(sp["element"], 0.0) + sp["occu"]
                self._formulas[key] = Composition(counts).reduced_formula
            self._records = records
        return self._records

    def __len__(self) -> int:
        return len(self._load())

    def search(self, query: str, limit: int = 50) -> list[tuple[str, str, int]]:
        """Records whose id or reduced formula matches ``query``: ``[(id, formula, n_sites)]``.

        An exact id, an exact formula (in any order, e.g. ``O3SrTi`` = ``SrTiO3``) or a substring of either.
        """
        records = self._load()
        q = query.strip()
        if not q:
            return []
        try:
            from pymatgen.core import Composition

            canonical = Composition(q).reduced_formula
        except Exception:
            canonical = None
        ql = q.lower()
        exact, partial = [], []
        for key, formula in self._formulas.items():
            if key.lower() == ql or formula == canonical:
                exact.append(key)
            elif ql in key.lower() or ql in formula.lower():
                partial.append(key)
        hits = (exact + partial)[:limit]
        return [(k, self._formulas[k], len(records[k]["structure"]["sites"])) for k in hits]

    def record(self, key: str) -> tuple[Any, dict[str, Any]]:
        """``(Structure, reference)`` with reference = DFT tensors ``electronic/ionic/total`` (3x3), band gap, id."""
        from pymatgen.core import Structure

        records = self._load()
        if key not in records:
            raise KeyError(f"no record {key!r} in {DATASET_FILE}")
        rec = records[key]
        reference = {name: np.asarray(rec[name], dtype=np.float64) for name in ("electronic", "ionic", "total")}
        reference.update(id=key, band_gap=rec.get("band_gap"), source=rec.get("source", ""),
                         material_id=rec.get("material_id"))
        return Structure.from_dict(rec["structure"]), reference


# ---------------------------------------------------------------------------------------------------- component
class StructureLoader(pn.viewable.Viewer):
    """Load a crystal: upload (CIF / POSCAR / extxyz / JSON), example gallery, or dataset search.

    Output parameters: ``structure`` (pymatgen Structure), ``label``, ``source``, ``reference`` (DFT tensors when
    the structure comes from the dataset, else ``None``), ``error`` (last problem, empty when the last load
    worked), ``message`` (what happened last).
    """

    structure = param.Parameter(default=None, doc="The current pymatgen Structure")
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

    def __init__(self, gallery: ExampleGallery | None = None, dataset: DatasetIndex | None = None,
                 **params: Any) -> None:
        super().__init__(**params)
        self.gallery = gallery if gallery is not None else ExampleGallery()
        self.dataset = dataset if dataset is not None else DatasetIndex()
        self.param.example.objects = self.gallery.names
        self._file_input = pn.widgets.FileInput(
            accept=".cif,.mcif,.vasp,.poscar,.xyz,.extxyz,.json,POSCAR,CONTCAR", multiple=False, label="Upload",
            css_classes=["goectp-upload"], sizing_mode="stretch_width")
        self._file_input.param.watch(self._on_upload, "value")
        self._dataset_results: dict[str, str] = {}
        if self.structure is None:
            if self.gallery.names:
                self.example = self.gallery.names[0]  # triggers _on_example
            else:
                self.set_structure(default_structure(), "SrTiO3 (built-in)", "python")

    # ------------------------------------------------------------------------------------------------ API
    def set_structure(self, structure, label: str, source: str, reference: dict | None = None) -> bool:  # noqa: ANN001
        """Validate and show ``structure``; on failure set ``error`` and keep the previous one. Returns success."""
        from goectp.structures import StructureError, validate_structure

        try:
            validate_structure(structure, max_sites=self.max_sites)
            info = describe_structure(structure)
        except StructureError as exc:
            self.error = f"{label}: {exc}"
            self.message = ""
            return False
        self.param.update(structure=structure, label=label, source=source, reference=reference, info=info,
                          error="", message=f"Loaded {label}: {info['formula']}, {len(structure)} sites, "
                                            f"{info['spacegroup']}")
        return True

    def load_text(self, text: str, filename: str) -> bool:
        """Parse text in the format implied by ``filename``; see :func:`guess_format`."""
        from goectp.structures import StructureError, structure_from_string

        fmt = guess_format(filename)
        if fmt is None:
            self.error = f"{filename}: cannot tell the file format from its name; {FORMAT_HELP}"
            return False
        try:
            structure = structure_from_string(text, fmt)
        except StructureError as exc:
            self.error = f"{filename}: {exc}"
            return False
        return self.set_structure(structure, filename, "upload")

    def load_bytes(self, data: bytes, filename: str) -> bool:
        """An uploaded file: size limit, text decoding, then :meth:`load_text`."""
        if data is None or len(data) == 0:
            self.error = f"{filename}: the file is empty"
            return False
        if len(data) > self.max_upload_bytes:
            self.error = (f"{filename}: the file is {len(data) / 1e6:.1f} MB, more than the explorer's limit of "
                          f"{self.max_upload_bytes / 1e6:.1f} MB (use the goectp CLI for large files)")
            return False
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = data.decode("latin-1")
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte string
                text = ""
            if "\x00" in text:
                self.error = f"{filename}: this is a binary file, not a text structure file; {FORMAT_HELP}"
                return False
        return self.load_text(text, filename)

    def load_example(self, name: str) -> bool:
        from goectp.structures import StructureError

        try:
            structure = self.gallery.structure(name)
        except (KeyError, StructureError) as exc:
            self.error = str(exc)
            return False
        ex = self.gallery.get(name)
        return self.set_structure(structure, f"{ex.name} (example)", "example")

    def search_dataset(self, query: str) -> list[tuple[str, str, int]]:
        try:
            hits = self.dataset.search(query)
        except FileNotFoundError as exc:
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
        except (KeyError, FileNotFoundError) as exc:
            self.error = str(exc)
            return False
        return self.set_structure(structure, f"{key} (dataset)", "dataset", reference=reference)

    # ------------------------------------------------------------------------------------------------ widgets
    def _on_upload(self, event: param.parameterized.Event) -> None:
        if event.new is None:
            return
        self.load_bytes(event.new, self._file_input.filename or "upload")

    @param.depends("example", watch=True)
    def _on_example(self) -> None:
        if self.example:
            self.load_example(self.example)

    @param.depends("dataset_query", watch=True)
    def _on_query(self) -> None:
        self.search_dataset(self.dataset_query)

    def _load_choice(self, _event: Any = None) -> None:
        if self.dataset_choice:
            self.load_dataset_record(self._dataset_results[self.dataset_choice])

    @param.depends("error", "message")
    def _status(self) -> pn.viewable.Viewable:
        if self.error:
            return pn.pane.Alert(f"**Could not load the structure.** {self.error}", alert_type="danger",
                                 css_classes=["goectp-load-error"], sizing_mode="stretch_width")
        return pn.pane.Alert(self.message or "Choose a structure.", alert_type="success",
                             css_classes=["goectp-load-ok"], sizing_mode="stretch_width")

    @param.depends("info", "label")
    def _summary(self) -> pn.viewable.Viewable:
        if not self.info:
            return pn.pane.Markdown("")
        i = self.info
        a, b, c = i["abc"]
        al, be, ga = i["angles"]
        return pn.pane.Markdown(
            f"**{i['formula']}** — {self.label}  \n{i['n_sites']} sites, {i['spacegroup']}, {i['crystal_system']}  \n"
            f"a, b, c = {a:.3f}, {b:.3f}, {c:.3f} Å; α, β, γ = {al:.1f}°, {be:.1f}°, {ga:.1f}°",
            css_classes=["goectp-structure-summary"])

    def _dataset_panel(self) -> pn.viewable.Viewable:
        if not self.dataset.available:
            where = self.dataset.path or "GOECTP_DATA / ../shared/data"
            return pn.pane.Markdown(f"*Dataset browser off: no {DATASET_FILE} found ({where}).*")
        load = pn.widgets.Button(label="Load record", color="primary")
        load.on_click(self._load_choice)
        return pn.Column(
            pn.widgets.TextInput.from_param(self.param.dataset_query, name="Search the DFPT dataset (formula or id)",
                                            placeholder="e.g. TiO2, mp-2657"),
            pn.widgets.Select.from_param(self.param.dataset_choice, name="Matches"),
            load, sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        gallery = (pn.widgets.Select.from_param(self.param.example, name="Example gallery")
                   if self.gallery.names else pn.pane.Markdown("*No examples: run scripts/build_examples.py.*"))
        return pn.Column(
            pn.pane.Markdown("### Structure"),
            gallery,
            pn.pane.Markdown(f"Upload CIF / POSCAR / extxyz (≤ {self.max_upload_bytes / 1e6:.0f} MB, "
                             f"≤ {self.max_sites} sites):"),
            self._file_input,
            self._dataset_panel(),
            self._status,
            self._summary,
            sizing_mode="stretch_width",
        )
