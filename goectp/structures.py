"""Turn user input (Structure, ASE Atoms, CIF/POSCAR/extxyz path, text) into a validated pymatgen Structure.

Every failure raises :class:`StructureError` (a ``ValueError``) whose message names the problem and whose ``code``
is one of :data:`REASON_CODES`, so that the CLI, the explorer and the screening can show it instead of crashing.

Cheap checks (:mod:`goectp.structure_checks`, re-exported here) run before the expensive parse and before any
neighbour search: file kind and size, site counts and what each format's reader would read wrongly or without
bound (:func:`~goectp.structure_checks.text_format_problem`), cell shape and coordinates. ``goectp predict``, the
explorer and the screen also read user files in a worker process with a memory and a time limit
(:mod:`goectp.isolation`); the Python API reads in the caller's process, after the same checks, and only the formats
of :data:`~goectp.io_formats.FORMATS`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np

from goectp.io_formats import COMPRESSED_SUFFIXES, FORMAT_HELP, guess_format, normalize_format
from goectp.structure_checks import (  # noqa: F401 - re-exported: the pre-checks' public names
    MAX_FILE_BYTES,
    MAX_SITES,
    MAX_SYMMETRY_EXPANSION,
    REASON_CODES,
    StructureError,
    _short,
    _short_path,
    check_cell_shape,
    estimate_site_count,
    extxyz_frame_problem,
    file_kind,
    precheck_structure_file,
    precheck_structure_text,
    site_count_bounds,
    wrapped,
)

#: Lattice vectors longer than this (Å) are absurd for a crystal (and overflow the model's float arithmetic).
MAX_LATTICE_LENGTH = 1.0e4
#: Atoms closer than this (Å) overlap (duplicated sites); no real crystal has them.
MIN_DISTANCE = 0.1
#: Every atom needs at least one neighbour within this distance (Å): otherwise it is an isolated atom in vacuum.
NEIGHBOR_CUTOFF = 8.0
#: A string longer than this given as a structure is file contents, not a path.
MAX_PATH_CHARS = 4096

#: File names pymatgen's ``Structure.from_file`` decodes with monty (``*.mson*`` entirely, ``*.yaml*`` into dicts).
MONTY_NAME_PATTERNS = ("*.mson*", "*.yaml*", "*.yml*")
#: JSON deeper than this is not a structure (and would exhaust Python's recursion limit while being decoded).
MAX_JSON_DEPTH = 64


def plain_data(obj: Any, depth: int = 0) -> Any:
    """A copy of decoded JSON without the keys monty acts on (``@module``, ``@class``, ``@callable``, any ``@…``).

    pymatgen's ``Structure.from_dict`` passes every site's ``properties`` through ``MontyDecoder``, which imports
    the module a dict names and calls its class's ``from_dict``: a hostile file could import any module or read
    files through a loader class. Without ``@`` keys the decoder sees plain dicts and leaves them as they are.
    """
    if depth > MAX_JSON_DEPTH:
        raise StructureError(f"nested more than {MAX_JSON_DEPTH} levels deep: not a structure", code="unparseable")
    if isinstance(obj, dict):
        return {str(k): plain_data(v, depth + 1) for k, v in obj.items() if not str(k).startswith("@")}
    if isinstance(obj, (list, tuple)):
        return [plain_data(v, depth + 1) for v in obj]
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, (np.ndarray, np.generic)):  # an in-memory as_dict() may hold NumPy values: plain numbers
        return plain_data(obj.tolist(), depth)
    raise StructureError(f"a {type(obj).__name__} where JSON data was expected", code="unparseable")


def structure_from_dict(data: Any, name: str = "structure") -> Any:
    """A pymatgen ``Structure`` from a ``Structure.as_dict()`` of *untrusted* origin (a file, an upload, a pool).

    Only plain data is read (:func:`plain_data`): nothing in the dict can name a Python class or module. Errors
    become :class:`StructureError` (``unparseable``) naming ``name``.
    """
    from pymatgen.core import Structure

    if not isinstance(data, dict):
        raise StructureError(f"{name}: expected a pymatgen Structure dict, not a {type(data).__name__}", "unparseable")
    clean = plain_data(data)
    for i, site in enumerate(clean.get("sites") or []):
        coords = site.get("abc", site.get("xyz")) if isinstance(site, dict) else None
        if isinstance(coords, list) and len(coords) != 3:
            raise StructureError(f"{name}: site {i} has {len(coords)} coordinates, not 3", code="unparseable")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structure = Structure.from_dict(clean)
        if np.asarray(structure.frac_coords, dtype=float).shape != (len(structure), 3):  # e.g. two numbers in "abc"
            raise ValueError("every site needs three coordinates")
        return structure
    except Exception as exc:
        raise StructureError(
            f"{name}: not a pymatgen Structure dict ({type(exc).__name__}: {exc})"[:400], code="unparseable"
        ) from exc


def structure_from_json_text(text: str, name: str = "the json text") -> Any:
    """:func:`structure_from_dict` of JSON text (``json.loads``: no monty decoding)."""
    import json

    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise StructureError(f"{name}: not valid JSON ({type(exc).__name__}: {exc})"[:300], "unparseable") from exc
    return structure_from_dict(data, name)


def _decompressed_text(path: Path, max_bytes: int | None) -> str:
    """The text of a ``.gz``/``.bz2``/``.xz`` file, refused once it passes ``max_bytes`` decompressed (a small
    archive can expand to gigabytes)."""
    import bz2
    import gzip
    import lzma
    import zlib

    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}[path.suffix.lower()]
    try:
        with opener(path, "rb") as fh:
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:  # not that kind of archive, truncated, corrupt
        raise StructureError(f"cannot decompress ({type(exc).__name__}: {exc})"[:200], code="unparseable") from exc
    if max_bytes is not None and len(data) > max_bytes:
        raise StructureError(f"more than {max_bytes:,} bytes once decompressed", code="file_too_large")
    return data.decode("utf-8", errors="replace")


#: pymatgen warnings that mean the parsed structure is not the file's crystal: refused, never a silent answer
SILENT_LOSS_WARNINGS = {
    "Missing elements": "the structure read lacks elements of the file's formula: sites dropped while reading "
    "(occupancy 0, negative or not a number, an unreadable element symbol) or atoms without positions (e.g. H "
    "omitted from an X-ray structure)",
    "Elements in POSCAR cannot be determined": "the POSCAR does not name its elements (VASP 4 format); pymatgen "
    "would invent them: add the element line above the counts (VASP 5 format)",
}


def _checked_parse(parse, failure: str = "could not parse the text as a crystal structure") -> Any:
    """``parse()`` with pymatgen's warnings recorded; a :class:`StructureError` for one in
    :data:`SILENT_LOSS_WARNINGS` (the structure would silently differ from the file's), and, when the parse fails,
    one that quotes the warnings (pymatgen warns the real reason, e.g. an occupancy over 1, then fails generically)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structure = parse()
        except MemoryError as exc:
            raise StructureError(f"{failure} (it ran out of memory)", code="out_of_memory") from exc
        except Exception as exc:  # pymatgen raises many types for bad files
            said = "; ".join(dict.fromkeys(str(w.message).strip()[:120] for w in caught))
            detail = f"{type(exc).__name__}: {exc}"[:200] + (f"; the reader warned: {said}"[:300] if said else "")
            raise StructureError(f"{failure} ({detail})", "unparseable") from exc
    for w in caught:
        for start, problem in SILENT_LOSS_WARNINGS.items():
            if str(w.message).startswith(start):
                raise StructureError(f"{problem} ({str(w.message)[:120]})", code="unparseable")
    return structure


def read_structure_text(path: str | os.PathLike, max_bytes: int | None = MAX_FILE_BYTES) -> str:
    """The text of a structure file, decompressing ``.gz``/``.bz2``/``.xz`` within ``max_bytes``; a
    :class:`StructureError` naming the file when it is missing, too large, or not a readable archive."""
    path = Path(path)
    try:
        if path.suffix.lower() in COMPRESSED_SUFFIXES:
            return _decompressed_text(path, max_bytes)
        if not path.is_file():
            if not path.exists():
                raise StructureError("no such file", code="unparseable")
            raise StructureError(f"{file_kind(path) or 'not a regular file'}, not a structure file", "not_a_file")
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise StructureError(f"more than the limit of {max_bytes:,} bytes", code="file_too_large")
        return path.read_text(encoding="utf-8", errors="replace")
    except StructureError as exc:
        raise StructureError(f"{_short(path.name)}: {exc}", code=exc.code) from exc
    except OSError as exc:
        raise StructureError(f"{_short(path.name)}: cannot read ({exc.strerror or exc})", "unparseable") from exc


def structure_from_file(
    path: str | os.PathLike,
    fmt: str | None = None,
    max_sites: int | None = MAX_SITES,
    max_bytes: int | None = MAX_FILE_BYTES,
):
    """Read a CIF / POSCAR / extxyz / pymatgen-JSON file from ``path`` (other formats are refused: read them with
    pymatgen or ASE and pass the object, so no file reaches a reader this module has not bounded).

    :func:`precheck_structure_file` runs first: ``max_sites`` (default :data:`MAX_SITES`, the limit
    :func:`load_structures` applies; ``None`` lifts it) and ``max_bytes`` refuse a file before the expensive parse.
    """
    from pymatgen.core import Structure

    if isinstance(path, str) and (len(path) > MAX_PATH_CHARS or "\n" in path):
        raise StructureError(
            f"a string given as a structure must be a file path; this one is {len(path):,} "
            "characters of text: use goectp.structures.structure_from_string(text, fmt) for file "
            "contents",
            code="unparseable",
        )
    path = Path(path)
    precheck_structure_file(path, fmt, max_sites=max_sites, max_bytes=max_bytes)
    fmt = normalize_format(fmt) if fmt else guess_format(path, compressed=True)
    if fmt is None and any(fnmatch(path.name.lower(), pattern) for pattern in MONTY_NAME_PATTERNS):
        raise StructureError(
            f"{_short(path.name)}: YAML/MSON files are not read (they can name Python classes to load); "
            "use .cif, POSCAR/CONTCAR/.vasp, .xyz/.extxyz or .json",
            code="unparseable",
        )
    compressed = path.suffix.lower() in COMPRESSED_SUFFIXES
    if fmt is None and not fnmatch(path.name.lower(), "*.json*"):  # no dispatch by name to other readers
        raise StructureError(
            f"{_short(path.name)}: cannot tell the format; {FORMAT_HELP} (or read it yourself with pymatgen/ASE "
            "and pass the Structure/Atoms)",
            code="unparseable",
        )
    if compressed or fmt == "json" or (fmt is None and fnmatch(path.name.lower(), "*.json*")):
        text = read_structure_text(path, max_bytes)  # decompressed within max_bytes; JSON never reaches monty
        try:  # an uncompressed file's site count was checked above; a compressed one's is checked on its text
            return structure_from_string(text, fmt or "json", max_sites=max_sites if compressed else None)
        except StructureError as exc:
            raise StructureError(f"{_short(path.name)}: {exc}", code=exc.code) from exc
    try:
        if fmt == "extxyz":  # read by ASE
            from ase.io import read
            from pymatgen.io.ase import AseAtomsAdaptor

            return AseAtomsAdaptor.get_structure(read(str(path), index=0))
        return _checked_parse(
            lambda: Structure.from_file(str(path)), f"{_short(path.name)}: could not parse as a crystal structure"
        )
    except StructureError:
        raise
    except Exception as exc:  # pymatgen/ASE raise many exception types for bad files
        msg = f"{_short(path.name)}: could not parse as a crystal structure ({type(exc).__name__}: {exc})"
        raise StructureError(msg, code="unparseable") from exc


def structure_from_string(text: str, fmt: str, max_sites: int | None = MAX_SITES) -> Any:
    """Parse ``text`` in format ``fmt`` ('cif', 'poscar', 'extxyz', 'json'); ``max_sites`` (default
    :data:`MAX_SITES`; ``None`` lifts it) is checked on the text first (:func:`precheck_structure_text`)."""
    from pymatgen.core import Structure

    fmt = normalize_format(fmt)
    if not text.strip():
        raise StructureError("the file is empty", code="empty")
    precheck_structure_text(text, fmt, max_sites=max_sites, name=f"the {fmt} text")
    try:
        if fmt == "extxyz":
            import io

            from ase.io import read
            from pymatgen.io.ase import AseAtomsAdaptor

            return AseAtomsAdaptor.get_structure(read(io.StringIO(text), format="extxyz", index=0))
        if fmt == "json":
            return structure_from_json_text(text)
        if fmt not in ("cif", "poscar"):
            raise StructureError(f"unknown structure format {fmt!r}", code="unparseable")
        return _checked_parse(
            lambda: Structure.from_str(text, fmt=fmt), f"could not parse the {fmt} text as a crystal structure"
        )
    except StructureError:
        raise
    except Exception as exc:
        msg = f"could not parse the {fmt} text as a crystal structure ({type(exc).__name__}: {exc})"
        raise StructureError(msg, code="unparseable") from exc


def to_structure(obj: Any, max_sites: int | None = None) -> Any:
    """Convert a Structure, ASE Atoms, dict (``Structure.as_dict()``) or file path to a pymatgen Structure.

    ``max_sites`` lets a file be refused from its text before parsing (see :func:`precheck_structure_file`).
    """
    from pymatgen.core import Structure

    if isinstance(obj, Structure):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return structure_from_file(obj, max_sites=max_sites)
    if isinstance(obj, dict):
        if max_sites is not None and isinstance(obj.get("sites"), list) and len(obj["sites"]) > max_sites:
            raise StructureError(
                f"structure has {len(obj['sites'])} sites, more than the limit of {max_sites} "
                "(raise max_sites to allow)",
                code="too_large",
            )
        return structure_from_dict(obj, "dict")
    if type(obj).__name__ == "Atoms":  # ASE, without importing ase eagerly
        from pymatgen.io.ase import AseAtomsAdaptor

        if not np.all(obj.pbc):
            raise StructureError("ASE Atoms must be periodic in all three directions (pbc=True)", code="not_periodic")
        cell = np.asarray(obj.cell, dtype=float)
        if not np.all(np.isfinite(cell)) or abs(np.linalg.det(cell)) < 1e-3:
            raise StructureError(
                f"ASE Atoms has a singular or zero cell (volume {abs(np.linalg.det(cell)):.3g} Å^3):"
                " set the cell of the crystal",
                code="degenerate_lattice",
            )
        try:
            return AseAtomsAdaptor.get_structure(obj)
        except Exception as exc:
            raise StructureError(
                f"ASE Atoms could not be converted ({type(exc).__name__}: {exc})", code="unparseable"
            ) from exc
    raise StructureError(
        f"cannot use an object of type {type(obj).__name__} as a crystal structure", code="unparseable"
    )


def validate_structure(structure: Any, max_sites: int = MAX_SITES) -> Any:
    """Check a Structure can be used by the model; raise :class:`StructureError` or return it (a copy wrapped into
    the cell when an atom lies more than a cell outside: the same crystal, a bounded neighbour search)."""
    from pymatgen.core import Element

    n = len(structure)
    if n == 0:
        raise StructureError("structure has no atoms", code="empty")
    if n > max_sites:
        raise StructureError(
            f"structure has {n} sites, more than the limit of {max_sites} (raise max_sites to allow)", code="too_large"
        )
    if not structure.is_ordered:
        bad = next(i for i, s in enumerate(structure) if not s.is_ordered)
        raise StructureError(
            f"structure is disordered (site {bad}: {structure[bad].species_string}); partial occupancies are not "
            "supported: order it first, e.g. with pymatgen's OrderDisorderedStructureTransformation",
            code="disordered",
        )
    if not all(getattr(structure, "pbc", (True, True, True))):
        raise StructureError("structure must be periodic in all three directions (pbc=True)", code="not_periodic")
    lat = structure.lattice.matrix
    if not np.all(np.isfinite(lat)):
        raise StructureError("lattice contains NaN or infinite values", code="non_finite")
    if not np.all(np.isfinite(structure.frac_coords)):
        raise StructureError("atomic coordinates contain NaN or infinite values", code="non_finite")
    lengths = np.linalg.norm(lat, axis=1)
    if lengths.max() > MAX_LATTICE_LENGTH:
        raise StructureError(
            f"lattice vector of {lengths.max():.3g} Å, longer than the limit of "
            f"{MAX_LATTICE_LENGTH:.0f} Å: not a crystal (check the units, Å expected)",
            code="absurd_lattice",
        )
    with np.errstate(all="ignore"):
        vol = abs(np.linalg.det(lat))
    if vol < 1e-3 or vol / max(lengths.prod(), 1e-300) < 1e-6:
        raise StructureError(
            f"lattice is singular or degenerate (cell volume {vol:.3g} Å^3)", code="degenerate_lattice"
        )
    for site in structure:
        sp = site.specie
        el = getattr(sp, "element", sp)
        if not isinstance(el, Element) or el.Z < 1 or el.Z > 100:
            raise StructureError(
                f"unknown or unsupported element {site.species_string!r} (Z must be 1..100)", code="unknown_element"
            )
    if vol / n < 1.0:
        raise StructureError(
            f"atoms are too dense ({vol / n:.3g} Å^3 per atom): check the units (Å expected)", code="too_dense"
        )
    check_cell_shape(lat, structure.frac_coords)  # before any neighbour search: its grid spans cell and atoms
    structure = wrapped(structure)
    _check_neighbors(structure)
    return structure


def _check_neighbors(structure: Any) -> None:
    """Overlapping atoms (closer than :data:`MIN_DISTANCE`) and isolated atoms (no neighbour within
    :data:`NEIGHBOR_CUTOFF`), from one neighbour list."""
    centers, points, _, dists = structure.get_neighbor_list(NEIGHBOR_CUTOFF, numerical_tol=1e-8, exclude_self=True)
    if len(dists) and dists.min() < MIN_DISTANCE:
        e = int(np.argmin(dists))
        i, j = int(centers[e]), int(points[e])
        raise StructureError(
            f"atoms overlap: sites {i} ({structure[i].species_string}) and {j} "
            f"({structure[j].species_string}) are {dists[e]:.3g} Å apart (duplicated sites?)",
            code="overlapping_atoms",
        )
    lonely = np.setdiff1d(np.arange(len(structure)), centers)
    if len(lonely):
        i = int(lonely[0])
        raise StructureError(
            f"site {i} ({structure[i].species_string}) has no neighbour within {NEIGHBOR_CUTOFF:g} Å:"
            " an isolated atom, not a crystal (vacuum too large?)",
            code="too_few_neighbors",
        )


def load_structures(objs: Any | Iterable[Any], max_sites: int = MAX_SITES) -> list[Any]:
    """Normalise one object or an iterable of them into a list of validated Structures."""
    from pymatgen.core import Structure

    if isinstance(objs, (Structure, str, os.PathLike, dict)) or type(objs).__name__ == "Atoms":
        return [validate_structure(to_structure(objs, max_sites=max_sites), max_sites=max_sites)]
    if not isinstance(objs, Iterable):
        raise StructureError(f"cannot use an object of type {type(objs).__name__} as a crystal structure")
    objs = list(objs)
    out = []
    for i, obj in enumerate(objs):
        try:
            out.append(validate_structure(to_structure(obj, max_sites=max_sites), max_sites=max_sites))
        except StructureError as exc:
            if len(objs) == 1:
                raise
            raise StructureError(f"structure {i}: {exc}", code=exc.code) from exc
    return out
