"""An uploaded structure file, from bytes to a checked and described structure, or the one-line reason it is refused.

Pure functions (no Panel, no session state): the explorer runs :func:`prepare_upload_isolated`, which calls
:func:`prepare_upload` in a worker process with a memory and a time limit (:mod:`goectp.isolation`), so that no
upload can take the server, or another session, down.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from goectp.io_formats import FORMAT_HELP, guess_format  # the one format guesser (also used by uploads' tests)
from goectp.structures import MAX_SYMMETRY_EXPANSION  # the CLI's bound on a CIF's symmetry expansion
from goectp.structures import site_count_bounds as estimate_sites

#: Uploads larger than this are refused before parsing (bytes).
MAX_UPLOAD_BYTES = 2_000_000
#: The explorer draws every atom and bond; larger cells are refused (the CLI handles big cells).
MAX_SITES = 200
#: Lattice vectors longer than this (Å) are refused: no crystal (nor a slab with vacuum) is that large.
MAX_LATTICE_LENGTH = 500.0
#: Two atoms closer than this (Å) overlap: refused (the model's graph and the 3D view both break on them).
MIN_DISTANCE = 0.5


def describe_structure(structure) -> dict[str, Any]:
    """Formula, number of sites, space group (spglib, symprec 0.01 Å) and lattice parameters."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        sga = SpacegroupAnalyzer(structure, symprec=0.01)
        spacegroup = f"{sga.get_space_group_symbol()} (#{sga.get_space_group_number()})"
        system = sga.get_crystal_system()
    except Exception:  # spglib can fail on odd cells; the description is informative only
        spacegroup, system = "unknown", "unknown"
    lat = structure.lattice
    return {
        "formula": structure.composition.reduced_formula,
        "n_sites": len(structure),
        "spacegroup": spacegroup,
        "crystal_system": system,
        "abc": lat.abc,
        "angles": lat.angles,
        "volume": lat.volume,
    }


def check_at_the_door(structure, max_sites: int = MAX_SITES) -> Any:
    """The library's validation plus what would only fail later in every card: absurd lattice lengths and
    overlapping atoms. Raises ``StructureError`` with the reason; returns the structure checked (wrapped into the
    cell when an atom lay far outside, see :func:`goectp.structures.validate_structure`)."""
    from goectp.structures import StructureError, validate_structure

    lengths = np.linalg.norm(np.asarray(structure.lattice.matrix, dtype=np.float64), axis=1)
    if not np.all(np.isfinite(lengths)) or lengths.max() > MAX_LATTICE_LENGTH:
        raise StructureError(
            f"lattice vector of {lengths.max():.3g} Å, longer than {MAX_LATTICE_LENGTH:g} Å: "
            "check the units (Å expected)",
            code="absurd_lattice",
        )
    structure = validate_structure(structure, max_sites=max_sites)
    if len(structure) > 1:
        dist = np.asarray(structure.distance_matrix, dtype=np.float64)
        np.fill_diagonal(dist, np.inf)
        i, j = np.unravel_index(np.argmin(dist), dist.shape)
        if dist[i, j] < MIN_DISTANCE:
            raise StructureError(
                f"atoms {i} ({structure[i].species_string}) and {j} ({structure[j].species_string})"
                f" overlap: {dist[i, j]:.3g} Å apart (less than {MIN_DISTANCE} Å)",
                code="overlapping_atoms",
            )
    return structure


def precheck_text(text: str, fmt: str, max_sites: int = MAX_SITES) -> str:
    """Why ``text`` is refused before parsing (empty when it may be parsed): a site count estimated from the text
    (see :func:`goectp.structures.site_count_bounds`) above ``max_sites``, or a CIF whose symmetry expansion would be
    huge. One pass over the text: microseconds, where pymatgen's parse of a 20,000-site CIF takes a minute."""
    at_least, at_most = estimate_sites(text, fmt)
    if at_least > max_sites:
        return (
            f"the file lists {at_least} sites, more than the explorer's limit of {max_sites} "
            "(use the goectp CLI for large cells)"
        )
    if at_most > MAX_SYMMETRY_EXPANSION * max_sites:
        return (
            f"its {at_least} atom rows × symmetry operations would generate up to {at_most} sites, more than "
            f"the explorer handles ({MAX_SYMMETRY_EXPANSION} × {max_sites}); use the goectp CLI"
        )
    return ""


@dataclass
class Prepared:
    """The outcome of :func:`prepare_upload` / :func:`prepare_structure`: a checked structure with its
    description, or an error message (exactly one of the two)."""

    structure: Any = None
    info: dict | None = None
    error: str = ""


def prepare_structure(structure, label: str, max_sites: int = MAX_SITES) -> Prepared:
    """Check ``structure`` and describe it (thread-safe: touches no session state)."""
    from goectp.structures import StructureError

    try:
        structure = check_at_the_door(structure, max_sites=max_sites)
        info = describe_structure(structure)
    except StructureError as exc:
        return Prepared(error=f"{label}: {exc}")
    return Prepared(structure, info)


def decode_upload(data: bytes | None, filename: str, max_bytes: int = MAX_UPLOAD_BYTES) -> tuple[str, str]:
    """``(text, error)`` of an uploaded file: size limit and text decoding."""
    if data is None or len(data) == 0:
        return "", f"{filename}: the file is empty (0 bytes)"
    if len(data) > max_bytes:
        return "", (
            f"{filename}: the file is {len(data) / 1e6:.1f} MB, more than the explorer's limit of "
            f"{max_bytes / 1e6:.1f} MB (use the goectp CLI for large files)"
        )
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # decodes any byte string
        if "\x00" in text:
            return "", f"{filename}: this is a binary file, not a text structure file; {FORMAT_HELP}"
        return text, ""


def prepare_text(text: str, filename: str, max_sites: int = MAX_SITES) -> Prepared:
    """Format from the name, the cheap pre-check, then the parse and the checks (thread-safe)."""
    from goectp.structures import StructureError, structure_from_string

    fmt = guess_format(filename)
    if fmt is None:
        return Prepared(error=f"{filename}: cannot tell the file format from its name; {FORMAT_HELP}")
    problem = precheck_text(text, fmt, max_sites=max_sites)
    if problem:
        return Prepared(error=f"{filename}: {problem}")
    try:
        structure = structure_from_string(text, fmt, max_sites=max_sites)
    except StructureError as exc:
        return Prepared(error=f"{filename}: {exc}")
    return prepare_structure(structure, filename, max_sites=max_sites)


def prepare_upload(
    data: bytes | None, filename: str, max_bytes: int = MAX_UPLOAD_BYTES, max_sites: int = MAX_SITES
) -> Prepared:
    """An uploaded file from bytes to a checked structure, or the reason it is refused (thread-safe)."""
    text, error = decode_upload(data, filename, max_bytes)
    return Prepared(error=error) if error else prepare_text(text, filename, max_sites=max_sites)


#: An upload's worker may take this long (s): a 200-site CIF with symmetry parses in about a second.
UPLOAD_SECONDS = 60.0
#: Memory an upload's worker may add (MB).
UPLOAD_MEMORY_MB = 1024
#: Worker processes for uploads (each runs one upload at a time; a third upload waits for one).
UPLOAD_WORKERS = 2


def upload_pool():
    """The worker processes of uploads (one per process; see :data:`UPLOAD_WORKERS`)."""
    from goectp.isolation import shared_pool

    return shared_pool(UPLOAD_WORKERS, UPLOAD_MEMORY_MB, UPLOAD_SECONDS)


def prepare_upload_isolated(
    data: bytes | None, filename: str, max_bytes: int = MAX_UPLOAD_BYTES, max_sites: int = MAX_SITES
) -> Prepared:
    """:func:`prepare_upload` in a worker process with a memory and a time limit: an upload over either gets a
    one-line error naming it and the reason code, and the server goes on (thread-safe)."""
    from goectp.structures import StructureError

    text, error = decode_upload(data, filename, max_bytes)
    if error:
        return Prepared(error=error)
    problem = precheck_text(text, guess_format(filename) or "", max_sites=max_sites) if guess_format(filename) else ""
    if problem:  # refused in microseconds, without a round trip to a worker
        return Prepared(error=f"{filename}: {problem}")
    try:
        return upload_pool().run(prepare_text, text, filename, max_sites=max_sites, name=filename)
    except StructureError as exc:
        return Prepared(error=str(exc))
