"""Cheap checks on user structures, before and after the parse: :class:`StructureError` and its reason codes.

Before the parse (milliseconds, from the text): :func:`precheck_structure_text` / :func:`precheck_structure_file`
refuse a file that is too big or holds too many sites, counted the way each format's grammar reads it (a CIF is
tokenised: comments, quoted values, text fields and keys on the ``loop_`` line are read as CIF reads them; a space
group given by operators, name or number bounds the symmetry expansion alike). Each format's grammar has its
module: :mod:`goectp.cif_text`, :mod:`goectp.poscar_text`, :mod:`goectp.extxyz_text`.

After the parse (:func:`check_cell_shape`, :func:`wrapped`): cells whose shape would blow up any neighbour or lattice
search (a thin needle, a huge vacuum, coordinates far outside the cell) are refused or wrapped, before the search.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from goectp.cif_text import (  # noqa: F401 - re-exported: the CIF grammar was part of this module
    MAX_SPACE_GROUP_OPERATIONS,
    CifSummary,
    cif_operation_problem,
    cif_site_bounds,
    cif_tokens,
    read_cif_summary,
    space_group_operations,
)
from goectp.extxyz_text import extxyz_frame_problem, extxyz_frames  # noqa: F401 - the first re-exported
from goectp.io_formats import guess_format, normalize_format
from goectp.poscar_text import poscar_sites, poscar_species_problem
from goectp.text_values import count_value
from goectp.text_values import short as _short

#: Cells larger than this are refused by default (graph size grows with k * n_sites).
MAX_SITES = 500
#: Structure files larger than this are refused before reading them.
MAX_FILE_BYTES = 50_000_000
#: A CIF whose atom rows × symmetry operations exceed this many times ``max_sites`` is refused before the parse
#: (pymatgen would generate and then merge that many sites).
MAX_SYMMETRY_EXPANSION = 25
#: A fractional coordinate beyond ± this is not a position in the cell (a broken file): refused.
MAX_FRACTIONAL_COORDINATE = 1.0e3
#: The longest lattice vector over the smallest cell height (the shortest distance between opposite faces).
#: The training data stay below 12; the lattice searches' work grows with the cube of this ratio.
MAX_CELL_ASPECT = 30.0
#: Cells thinner than this (Å, between opposite faces) hold no crystal (the training data's smallest is 2.2 Å).
MIN_CELL_HEIGHT = 1.0
#: A slab of empty space thicker than this (Å) along any cell direction is not a bulk crystal (training data ≤ 23 Å).
MAX_VACUUM = 30.0

#: ``StructureError.code`` values (the screening's ``reason_code`` for rejected structures).
REASON_CODES = {
    "unparseable": "the file or object could not be read as a crystal structure",
    "not_a_file": "a directory, FIFO, device or other non-regular file given as a structure file",
    "file_too_large": "the file is larger than the size limit",
    "too_large": "more sites than the limit",
    "empty": "no atoms",
    "disordered": "partial occupancies",
    "not_periodic": "not periodic in all three directions",
    "non_finite": "NaN or infinite lattice or coordinates",
    "degenerate_lattice": "singular or flat cell",
    "absurd_lattice": "a lattice vector longer than MAX_LATTICE_LENGTH",
    "absurd_cell": "a cell thinner than MIN_CELL_HEIGHT, longer than MAX_CELL_ASPECT × its height, or with vacuum "
    "over MAX_VACUUM",
    "absurd_coordinates": "a fractional coordinate beyond ± MAX_FRACTIONAL_COORDINATE",
    "unknown_element": "an element the model does not know",
    "too_dense": "less than 1 Å^3 per atom (wrong units?)",
    "overlapping_atoms": "two atoms closer than MIN_DISTANCE",
    "too_few_neighbors": "an atom without any neighbour within NEIGHBOR_CUTOFF",
    "out_of_memory": "reading or predicting needed more memory than the per-file limit",
    "timeout": "reading or predicting took longer than the per-file time limit",
    "worker_died": "the process reading the file ended without an answer",
    "invalid_structure": "any other problem",
}


class StructureError(ValueError):
    """A structure that cannot be used for prediction; the message says why, ``code`` is in :data:`REASON_CODES`."""

    def __init__(self, message: str, code: str = "invalid_structure") -> None:
        super().__init__(re.sub(r"\s*[\r\n]+\s*", " ", str(message)).strip())  # one line, whatever it quotes
        self.code = code

    def __reduce__(self):
        return type(self), (str(self), self.code)


def _short_path(path: Path, limit: int = 100) -> str:
    """The path, or ``…/<shortened file name>`` when it is long (the name is what the user recognises)."""
    return str(path) if len(str(path)) <= limit else f"…/{_short(path.name, 60)}"


def file_kind(path: Path) -> str:
    """``""`` for a regular file, else what it is ("a directory", "a FIFO (named pipe)", "a device", …);
    raises ``OSError`` when it does not exist."""
    import stat

    mode = path.stat().st_mode
    for test, kind in (
        (stat.S_ISREG, ""),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def regular_file_size(path: Path) -> int:
    """``path``'s size; a :class:`StructureError` naming it when it is missing or not a regular file."""
    try:
        kind = file_kind(path)
        if kind:
            raise StructureError(f"{_short_path(path)}: {kind}, not a structure file", code="not_a_file")
        return path.stat().st_size
    except FileNotFoundError as exc:
        raise StructureError(f"{_short_path(path)}: no such file", code="unparseable") from exc
    except OSError as exc:
        raise StructureError(f"{_short_path(path)}: cannot open ({exc.strerror or exc})", code="unparseable") from exc


def site_count_bounds(text: str, fmt: str, cif: CifSummary | None = None) -> tuple[int, int]:
    """``(at least, at most)`` sites that parsing ``text`` will give, from one pass over the text:
    a CIF's atom sites and sites × symmetry operations (from ``cif`` when the caller has read it), a POSCAR's counts
    (on the lines pymatgen reads them from), the first line of an extxyz file, ``len(sites)`` of a pymatgen JSON.
    ``(0, 0)`` when the text does not tell (the parser then decides)."""
    fmt = normalize_format(fmt)
    n = 0
    try:
        if fmt == "cif":
            return (cif or read_cif_summary(text)).bounds
        if fmt == "poscar":
            n = poscar_sites(text)
        elif fmt == "extxyz":
            n = count_value(text.lstrip().split("\n", 1)[0].strip()) or 0
        elif fmt == "json":
            import json

            sites = json.loads(text).get("sites")
            n = len(sites) if isinstance(sites, list) else 0
    except (ValueError, AttributeError, RecursionError):
        return 0, 0
    return n, n


def estimate_site_count(text: str, fmt: str) -> int | None:
    """The lower bound of :func:`site_count_bounds` (``None`` when the text does not tell)."""
    return site_count_bounds(text, fmt)[0] or None


def precheck_structure_text(
    text: str,
    fmt: str,
    max_sites: int | None = MAX_SITES,
    name: str = "structure",
    max_bytes: int | None = MAX_FILE_BYTES,
) -> int | None:
    """Refuse, before any parsing, text that is empty, too large, or holds more than ``max_sites`` sites.

    Also refuses what :func:`text_format_problem` finds (code ``unparseable``), whatever ``max_sites``. Returns the
    estimated site count (``None`` when the text does not tell or ``max_sites`` is ``None``); raises
    :class:`StructureError` (codes ``empty``, ``file_too_large``, ``too_large``, ``unparseable``) naming ``name``.
    Linear in the text's length: safe to call on an upload in a server's event loop.
    """
    name = _short(str(name))
    if not text.strip():
        raise StructureError(f"{name}: file is empty", code="empty")
    if max_bytes is not None and len(text) > max_bytes:
        raise StructureError(
            f"{name}: {len(text):,} characters, more than the limit of {max_bytes:,}", code="file_too_large"
        )
    count = 0
    cif = read_cif_summary(text) if fmt and normalize_format(fmt) == "cif" else None  # tokenised once for both checks
    if max_sites is not None:
        count, at_most = site_count_bounds(text, fmt, cif)
        if count > max_sites:
            at_least = "at least " if normalize_format(fmt) == "cif" else ""
            raise StructureError(
                f"{name}: {at_least}{count} sites, more than the limit of {max_sites} (raise max_sites to allow)",
                code="too_large",
            )
        if at_most > MAX_SYMMETRY_EXPANSION * max_sites:
            raise StructureError(
                f"{name}: {count} atom sites × symmetry operations would generate up to {at_most:,} sites before "
                f"merging, more than {MAX_SYMMETRY_EXPANSION} × the limit of {max_sites} (raise max_sites to allow)",
                code="too_large",
            )
    problem = text_format_problem(text, fmt, cif) if fmt else ""
    if problem:
        raise StructureError(f"{name}: {problem}", code="unparseable")
    return count or None


def precheck_structure_file(
    path: str | os.PathLike,
    fmt: str | None = None,
    max_sites: int | None = MAX_SITES,
    max_bytes: int | None = MAX_FILE_BYTES,
) -> int | None:
    """:func:`precheck_structure_text` for a file: a regular file (not a directory, FIFO or device), its size
    (from ``stat``, before reading), its site count. Compressed or binary files are only size-checked."""
    path = Path(path)
    name = _short(path.name)
    size = regular_file_size(path)
    if size == 0:
        raise StructureError(f"{name}: file is empty", code="empty")
    if max_bytes is not None and size > max_bytes:
        raise StructureError(f"{name}: {size:,} bytes, more than the limit of {max_bytes:,}", code="file_too_large")
    fmt = normalize_format(fmt) if fmt else guess_format(path)
    if fmt is None:
        return None
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise StructureError(f"{name}: cannot read ({exc.strerror or exc})", code="unparseable") from exc
    return precheck_structure_text(text, fmt, max_sites=max_sites, name=name, max_bytes=None)


def text_format_problem(text: str, fmt: str, cif: CifSummary | None = None) -> str:
    """Why a file's text would be read wrongly or without bound by its format's parser ("" when it would not): a CIF
    with several data blocks (one structure per file; pymatgen merged or dropped sites), a cell no crystal has (e.g.
    a negative length), text that would stall pymatgen's reader or a symmetry operation that is not one, an extxyz
    frame count or column count a reader would allocate, more than one extxyz frame (a screen
    reads every frame of a pool's files), a POSCAR's elements that do not match its counts. ``cif``: the CIF's
    :class:`~goectp.cif_text.CifSummary` when the caller has read it."""
    fmt = normalize_format(fmt)
    if fmt == "cif":
        summary = cif or read_cif_summary(text)
        if summary.blocks > 1:
            return f"{summary.blocks} data blocks: one structure per file (split it, or screen a folder of files)"
        # a cell no crystal has, text that would stall pymatgen's reader, or an operation that is not a symmetry
        return summary.problem or cif_operation_problem(summary.operation_texts)
    if fmt == "extxyz":
        frames, problem = extxyz_frames(text, max_frames=1)  # a text of several frames is refused as that
        if problem:
            return problem
        if frames > 1:
            return f"{frames} frames: one structure per file (split it, or screen it: goectp screen --pool reads each)"
        return ""
    if fmt == "poscar":
        return poscar_species_problem(text)
    return ""


# ------------------------------------------------------------------------------------------------ cell shape
def cell_heights(lattice_rows: np.ndarray) -> np.ndarray:
    """The distances between opposite faces of the cell (Å): ``1 / |row i of inv(A)ᵀ|``."""
    with np.errstate(all="ignore"):
        return 1.0 / np.linalg.norm(np.linalg.inv(lattice_rows), axis=0)


def largest_vacuum(frac: np.ndarray, heights: np.ndarray) -> float:
    """The thickest slab without atoms (Å) along the three cell directions (periodic: the gap wraps around)."""
    widest = 0.0
    wrapped = np.mod(frac, 1.0)
    for k in range(3):
        x = np.sort(wrapped[:, k])
        gaps = np.diff(np.concatenate([x, x[:1] + 1.0]))
        widest = max(widest, float(gaps.max() * heights[k]))
    return widest


def check_cell_shape(lattice_rows: np.ndarray, frac: np.ndarray) -> None:
    """Refuse (``absurd_cell``) a cell thinner than :data:`MIN_CELL_HEIGHT`, longer than :data:`MAX_CELL_ASPECT`
    times its smallest height, or with more than :data:`MAX_VACUUM` Å of empty space; and (``absurd_coordinates``)
    fractional coordinates beyond ± :data:`MAX_FRACTIONAL_COORDINATE`. Each message names its limit. Cheap
    (no neighbour search): run it before any."""
    frac = np.asarray(frac, dtype=np.float64)
    if frac.size and np.abs(frac).max() > MAX_FRACTIONAL_COORDINATE:
        raise StructureError(
            f"a fractional coordinate of {np.abs(frac).max():.3g}, beyond the limit of ±{MAX_FRACTIONAL_COORDINATE:g}"
            " (atoms that many cells away from the cell): not a position in the crystal",
            code="absurd_coordinates",
        )
    heights = cell_heights(np.asarray(lattice_rows, dtype=np.float64))
    lengths = np.linalg.norm(lattice_rows, axis=1)
    if heights.min() < MIN_CELL_HEIGHT:
        raise StructureError(
            f"the cell is {heights.min():.3g} Å thin between opposite faces, less than the limit of "
            f"{MIN_CELL_HEIGHT:g} Å: not a crystal (check the units, Å expected)",
            code="absurd_cell",
        )
    aspect = lengths.max() / heights.min()
    if aspect > MAX_CELL_ASPECT:
        raise StructureError(
            f"the cell is {aspect:.3g} times longer ({lengths.max():.4g} Å) than its smallest height "
            f"({heights.min():.3g} Å), more than the limit of {MAX_CELL_ASPECT:g}: a needle or a sheet, not a bulk "
            "crystal (use a reduced, e.g. Niggli, cell)",
            code="absurd_cell",
        )
    if len(frac):
        vacuum = largest_vacuum(frac, heights)
        if vacuum > MAX_VACUUM:
            raise StructureError(
                f"{vacuum:.4g} Å of empty space along one cell direction, more than the limit of {MAX_VACUUM:g} Å:"
                " a slab or molecule in vacuum, not a bulk crystal",
                code="absurd_cell",
            )


def wrapped(structure: Any, low: float = -1.0, high: float = 2.0) -> Any:
    """``structure``, or a copy with its fractional coordinates wrapped into the cell when any lies outside
    ``[low, high]`` (a neighbour search spans the atoms' extent: far-away images make it huge)."""
    frac = structure.frac_coords
    if not len(frac) or (frac.min() >= low and frac.max() <= high):
        return structure
    from pymatgen.core import Structure

    return Structure(
        structure.lattice,
        structure.species_and_occu,
        np.mod(frac, 1.0),
        site_properties=structure.site_properties or None,
        charge=structure.charge,
    )
