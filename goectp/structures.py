"""Turn user input (Structure, ASE Atoms, CIF/POSCAR/extxyz path, text) into a validated pymatgen Structure.

Every failure raises :class:`StructureError` (a ``ValueError``) whose message names the problem, so that the CLI
and the explorer can show it instead of crashing.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from goectp.io_formats import guess_format, normalize_format

#: Cells larger than this are refused by default (graph size grows with k * n_sites).
MAX_SITES = 500


class StructureError(ValueError):
    """A structure that cannot be used for prediction; the message says why."""


def structure_from_file(path: str | os.PathLike, fmt: str | None = None):  # noqa: ANN201
    """Read a CIF / POSCAR / extxyz (or anything pymatgen or ASE reads) from ``path``."""
    from pymatgen.core import Structure

    path = Path(path)
    if not path.exists():
        raise StructureError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise StructureError(f"{path}: file is empty")
    fmt = normalize_format(fmt) if fmt else guess_format(path, compressed=True)
    try:
        if fmt == "extxyz" or path.suffix.lower() == ".traj":  # ASE formats
            from ase.io import read
            from pymatgen.io.ase import AseAtomsAdaptor

            return AseAtomsAdaptor.get_structure(read(str(path), index=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Structure.from_file(str(path))
    except StructureError:
        raise
    except Exception as exc:  # pymatgen/ASE raise many exception types for bad files
        msg = f"{path.name}: could not parse as a crystal structure ({type(exc).__name__}: {exc})"
        raise StructureError(msg) from exc


def structure_from_string(text: str, fmt: str) -> Any:
    """Parse ``text`` in format ``fmt`` ('cif', 'poscar', 'extxyz', 'json')."""
    from pymatgen.core import Structure

    fmt = normalize_format(fmt)
    if not text.strip():
        raise StructureError("the file is empty")
    try:
        if fmt == "extxyz":
            import io

            from ase.io import read
            from pymatgen.io.ase import AseAtomsAdaptor

            return AseAtomsAdaptor.get_structure(read(io.StringIO(text), format="extxyz", index=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Structure.from_str(text, fmt=fmt)
    except Exception as exc:
        msg = f"could not parse the {fmt} text as a crystal structure ({type(exc).__name__}: {exc})"
        raise StructureError(msg) from exc


def to_structure(obj: Any) -> Any:
    """Convert a Structure, ASE Atoms, dict (``Structure.as_dict()``) or file path to a pymatgen Structure."""
    from pymatgen.core import Structure

    if isinstance(obj, Structure):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return structure_from_file(obj)
    if isinstance(obj, dict):
        try:
            return Structure.from_dict(obj)
        except Exception as exc:
            raise StructureError(f"dict is not a pymatgen Structure ({type(exc).__name__}: {exc})") from exc
    if type(obj).__name__ == "Atoms":  # ASE, without importing ase eagerly
        from pymatgen.io.ase import AseAtomsAdaptor

        if not np.all(obj.pbc):
            raise StructureError("ASE Atoms must be periodic in all three directions (pbc=True)")
        return AseAtomsAdaptor.get_structure(obj)
    raise StructureError(f"cannot use an object of type {type(obj).__name__} as a crystal structure")


def validate_structure(structure: Any, max_sites: int = MAX_SITES) -> Any:
    """Check a Structure can be used by the model; return it unchanged or raise :class:`StructureError`."""
    from pymatgen.core import Element

    n = len(structure)
    if n == 0:
        raise StructureError("structure has no atoms")
    if n > max_sites:
        raise StructureError(f"structure has {n} sites, more than the limit of {max_sites} (raise max_sites to allow)")
    if not structure.is_ordered:
        bad = next(i for i, s in enumerate(structure) if not s.is_ordered)
        raise StructureError(
            f"structure is disordered (site {bad}: {structure[bad].species_string}); partial occupancies are not "
            "supported: order it first, e.g. with pymatgen's OrderDisorderedStructureTransformation"
        )
    if not all(getattr(structure, "pbc", (True, True, True))):
        raise StructureError("structure must be periodic in all three directions (pbc=True)")
    lat = structure.lattice.matrix
    if not np.all(np.isfinite(lat)):
        raise StructureError("lattice contains NaN or infinite values")
    if not np.all(np.isfinite(structure.frac_coords)):
        raise StructureError("atomic coordinates contain NaN or infinite values")
    vol = abs(np.linalg.det(lat))
    if vol < 1e-3 or vol / max(np.linalg.norm(lat, axis=1).prod(), 1e-300) < 1e-6:
        raise StructureError(f"lattice is singular or degenerate (cell volume {vol:.3g} Å^3)")
    for site in structure:
        sp = site.specie
        el = getattr(sp, "element", sp)
        if not isinstance(el, Element) or el.Z < 1 or el.Z > 100:
            raise StructureError(f"unknown or unsupported element {site.species_string!r} (Z must be 1..100)")
    if vol / n < 1.0:
        raise StructureError(f"atoms are too dense ({vol / n:.3g} Å^3 per atom): check the units (Å expected)")
    return structure


def load_structures(objs: Any | Iterable[Any], max_sites: int = MAX_SITES) -> list[Any]:
    """Normalise one object or an iterable of them into a list of validated Structures."""
    from pymatgen.core import Structure

    if isinstance(objs, (Structure, str, os.PathLike, dict)) or type(objs).__name__ == "Atoms":
        return [validate_structure(to_structure(objs), max_sites=max_sites)]
    if not isinstance(objs, Iterable):
        raise StructureError(f"cannot use an object of type {type(objs).__name__} as a crystal structure")
    objs = list(objs)
    out = []
    for i, obj in enumerate(objs):
        try:
            out.append(validate_structure(to_structure(obj), max_sites=max_sites))
        except StructureError as exc:
            if len(objs) == 1:
                raise
            raise StructureError(f"structure {i}: {exc}") from exc
    return out
