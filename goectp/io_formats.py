"""The one place that maps a file name to a structure-file format ('cif', 'poscar', 'extxyz', 'json').

Used by :mod:`goectp.structures` (reading files), :mod:`goectp.screening.pool` (which files of a folder are
structures) and the explorer's upload (``explorer.loader``).
"""

from __future__ import annotations

import os
from pathlib import Path

#: The formats GoeCTP reads from text (pymatgen for cif/poscar/json, ASE for extxyz).
FORMATS = ("cif", "poscar", "extxyz", "json")
#: File suffix → format.
STRUCTURE_SUFFIXES = {
    ".cif": "cif",
    ".mcif": "cif",
    ".vasp": "poscar",
    ".poscar": "poscar",
    ".xyz": "extxyz",
    ".extxyz": "extxyz",
    ".json": "json",
}
#: File names starting with these (any case) and without a known suffix are POSCARs (``CONTCAR_relaxed``).
POSCAR_PREFIXES = ("POSCAR", "CONTCAR")
#: Other spellings of a format accepted by :func:`normalize_format`.
FORMAT_ALIASES = {"vasp": "poscar", "contcar": "poscar", "xyz": "extxyz", "mcif": "cif"}
#: Compressed structure files GoeCTP decompresses itself (with a size limit on the decompressed text).
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz")
FORMAT_HELP = "use .cif, POSCAR/CONTCAR/.vasp, .xyz/.extxyz or .json (pymatgen Structure)"


def guess_format(filename: str | os.PathLike, compressed: bool = False) -> str | None:
    """The format of a structure file from its name, or ``None`` when the name does not tell.

    Args:
        filename: a file name or path (only the last component is used).
        compressed: also accept a trailing ``.gz``, ``.bz2`` or ``.xz`` (``NaCl.cif.gz`` → 'cif'); off for callers
            that read the bytes as text themselves (the explorer's upload).

    >>> guess_format("TiO2.cif"), guess_format("CONTCAR_relaxed"), guess_format("a.xyz.gz", compressed=True)
    ('cif', 'poscar', 'extxyz')
    """
    name = Path(filename).name.lower()
    if compressed and Path(name).suffix in COMPRESSED_SUFFIXES:
        name = name[: -len(Path(name).suffix)]
    fmt = STRUCTURE_SUFFIXES.get(Path(name).suffix)
    if fmt is None and name.upper().startswith(POSCAR_PREFIXES):
        return "poscar"
    return fmt


def normalize_format(fmt: str) -> str:
    """``'.VASP'`` → 'poscar', ``'xyz'`` → 'extxyz', …; names not in :data:`FORMAT_ALIASES` pass through lower-cased."""
    fmt = fmt.lower().lstrip(".")
    return FORMAT_ALIASES.get(fmt, fmt)
