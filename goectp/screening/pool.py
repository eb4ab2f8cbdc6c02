"""Candidate pools: where the structures to screen come from.

A pool yields *candidate records* (:func:`goectp.screening.candidates.make_candidate`), plain picklable dicts
that can be shipped to Dask workers.

Three kinds of pool (:func:`open_pool`):

- a JSON / JSON.gz file holding a list of records with a ``"structure"`` key (the shared
  ``screening_candidates.json.gz``) or a dict ``{id: record}`` (``mp_dielectric_open.json.gz``), streamed;
- a directory (searched recursively) or single file of CIF / POSCAR / extxyz / Structure-JSON;
- ``"mp"`` or ``"mp:<chemsys>"``: a Materials Project query (see :mod:`goectp.screening.materials_project`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from goectp.data.paths import sha256_file
from goectp.io_formats import STRUCTURE_SUFFIXES, guess_format
from goectp.screening.candidates import PoolError, make_candidate
from goectp.screening.jsonstream import iter_json_items
from goectp.structures import StructureError, read_structure_text


@dataclass
class JsonPool:
    """Records streamed from a JSON array of candidate dicts, or a JSON object ``{id: record}``."""

    path: Path

    @property
    def description(self) -> str:
        return str(self.path)

    def sha256(self) -> str:
        return sha256_file(self.path)

    def __iter__(self) -> Iterator[dict]:
        default_source = self.path.name.split(".")[0]
        for n, (key, rec) in enumerate(iter_json_items(self.path)):
            if not isinstance(rec, dict):
                why = f"pool entry {key!r} is a {type(rec).__name__}, not a record"
                yield make_candidate(f"{default_source}-{n}", n, source=default_source, reject=("unparseable", why))
                continue
            cid = rec.get("id") or (key if isinstance(key, str) else f"{default_source}-{n}")
            structure = rec.get("structure")
            if structure is None and "@class" in rec and "sites" in rec:  # a bare Structure dict
                structure = rec
            reject = None
            if not isinstance(structure, dict):
                reject = ("unparseable", "record has no 'structure' (a pymatgen Structure.as_dict())")
            yield make_candidate(
                cid,
                n,
                source=rec.get("source") or default_source,
                formula=rec.get("formula"),
                band_gap=rec.get("band_gap"),
                material_id=rec.get("material_id"),
                structure=structure if reject is None else None,
                reject=reject,
            )

    def count(self) -> int:
        """Number of records (one streaming pass; about a second for the shared pool)."""
        return sum(1 for _ in iter_json_items(self.path))

    def ids(self) -> list[str]:
        """The id of every record, in order, duplicates included (one streaming pass, like :meth:`count`)."""
        return [rec["id"] for rec in self]


def candidate_id(relative_path: str) -> str:
    """``sub/NaCl.cif`` -> ``sub/NaCl``; ``x/POSCAR`` stays ``x/POSCAR`` (only known structure suffixes go)."""
    stem = relative_path[:-3] if relative_path.lower().endswith(".gz") else relative_path
    suffix = Path(stem).suffix
    return stem[: -len(suffix)] if suffix and suffix.lower() in STRUCTURE_SUFFIXES else stem


def structure_format(path: Path) -> str | None:
    """'cif' / 'poscar' / 'extxyz' / 'json' from the file name (``.gz`` allowed), or None for other files."""
    return guess_format(path, compressed=True)


@dataclass
class FilePool:
    """Every CIF / POSCAR / extxyz / Structure-JSON file in a directory (recursively, sorted), or one such file.

    Ids are the path relative to the directory without the suffix (``sub/NaCl``); an extxyz file with several
    frames gives ``<id>#<frame>``. CIF/POSCAR/JSON text is parsed on the worker; extxyz frames are read here.
    """

    path: Path

    @property
    def description(self) -> str:
        return str(self.path)

    def files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        return sorted(p for p in self.path.rglob("*") if p.is_file() and structure_format(p) is not None)

    def sha256(self) -> str:
        """Hash of the sorted (relative path, content sha256) list: changes when any file changes."""
        h = hashlib.sha256()
        base = self.path if self.path.is_dir() else self.path.parent
        for f in self.files():
            h.update(f"{f.relative_to(base).as_posix()}\0{sha256_file(f)}\n".encode())
        return h.hexdigest()

    def count(self) -> int | None:
        return None  # extxyz files may hold several frames: unknown without reading them

    def __iter__(self) -> Iterator[dict]:
        base = self.path if self.path.is_dir() else self.path.parent
        n = 0
        for f in self.files():
            rel = f.relative_to(base).as_posix()
            cid = candidate_id(rel)
            fmt = structure_format(f)
            if fmt is None:
                fmt = "cif"  # a single file named explicitly: let the parser decide
            if fmt == "extxyz":
                for rec in self._extxyz_candidates(f, cid, n):
                    yield rec
                    n += 1
                continue
            try:
                text = read_structure_text(f)  # decompressed within the size limit
                reject = ("unparseable", f"{rel}: file is empty") if not text.strip() else None
            except StructureError as exc:  # unreadable, too large once decompressed, a corrupt archive
                code = "too_large" if exc.code == "file_too_large" else "unparseable"
                text, reject = None, (code, f"{rel}: {str(exc).partition(': ')[2] or exc}")
            yield make_candidate(
                cid, n, source=base.name, text=text if reject is None else None, fmt=fmt, reject=reject
            )
            n += 1

    @staticmethod
    def _extxyz_candidates(path: Path, cid: str, start: int) -> Iterator[dict]:
        from ase.io import iread

        from goectp.structures import extxyz_frame_problem

        try:
            problem = extxyz_frame_problem(read_structure_text(path))
        except StructureError as exc:
            problem = str(exc).partition(": ")[2] or str(exc)
        if problem:  # checked on the text first: a lying atom count makes ASE allocate or wait for millions of lines
            yield make_candidate(cid, start, source=path.parent.name, reject=("unparseable", f"{path.name}: {problem}"))
            return
        frames = iread(str(path), index=":", format="extxyz")  # one frame at a time: a pool file may hold many
        ahead: list = []
        try:  # two frames ahead: one frame keeps the file's id, several get <id>#<frame>
            ahead = list(islice(frames, 2))
        except Exception as exc:  # ASE raises many types for bad files
            yield make_candidate(
                cid,
                start,
                source=path.parent.name,
                reject=("unparseable", f"{path.name}: could not parse as extxyz ({exc})"),
            )
            return
        if not ahead:
            yield make_candidate(
                cid, start, source=path.parent.name, reject=("unparseable", f"{path.name}: no frames in the file")
            )
            return
        single = len(ahead) == 1
        i = 0
        while True:
            if ahead:
                atoms = ahead.pop(0)
            else:
                try:
                    atoms = next(frames, None)
                except Exception as exc:  # a bad frame ends the file: the frames before it stay
                    yield make_candidate(
                        f"{cid}#{i}",
                        start + i,
                        source=path.parent.name,
                        reject=("unparseable", f"{path.name} frame {i}: could not parse as extxyz ({exc})"),
                    )
                    return
                if atoms is None:
                    return
            yield FilePool._frame_candidate(atoms, path, cid if single else f"{cid}#{i}", start + i, i)
            i += 1

    @staticmethod
    def _frame_candidate(atoms: Any, path: Path, fid: str, index: int, frame: int) -> dict:
        """The candidate of one extxyz frame (refused when not periodic in all three directions)."""
        from pymatgen.io.ase import AseAtomsAdaptor

        reject, structure = None, None
        if not all(atoms.pbc):
            reject = ("unparseable", f"{path.name} frame {frame}: not periodic in all three directions")
        else:
            try:
                structure = AseAtomsAdaptor.get_structure(atoms).as_dict()
            except Exception as exc:
                reject = ("unparseable", f"{path.name} frame {frame}: {type(exc).__name__}: {exc}")
        return make_candidate(
            fid,
            index,
            source=path.parent.name,
            structure=structure,
            band_gap=atoms.info.get("band_gap"),
            material_id=atoms.info.get("material_id"),
            reject=reject,
        )


def open_pool(spec: str | os.PathLike, max_sites: int | None = None) -> Any:
    """Open a pool from a path or ``"mp"`` / ``"mp:<chemsys>"`` (Materials Project; needs ``MP_API_KEY``)."""
    text = str(spec)
    if text == "mp" or text.startswith("mp:"):
        from goectp.screening.materials_project import MaterialsProjectPool

        chemsys = text[3:] or None
        return MaterialsProjectPool(chemsys=chemsys, max_sites=max_sites)
    path = Path(spec)
    if not path.exists():
        raise PoolError(
            f"pool {path} does not exist (give a JSON(.gz) candidate file, a folder of structure files, "
            "a structure file, or 'mp' for a Materials Project query)"
        )
    name = path.name.lower()
    if path.is_file() and (name.endswith(".json.gz") or name.endswith(".json")):
        try:
            with _peek_open(path) as fh:
                head = fh.read(4096).lstrip()
        except (OSError, EOFError, UnicodeDecodeError) as exc:  # not gzip, truncated, not UTF-8
            raise PoolError(f"pool {path.name}: not a readable JSON(.gz) text file ({exc})"[:300]) from exc
        if head.startswith("["):
            return JsonPool(path)
        if head.startswith("{") and not _is_structure_json(path):
            return JsonPool(path)
    return FilePool(path)


#: top-level keys of a pymatgen ``Structure.as_dict()``: a file starting with one of them is one structure
STRUCTURE_KEYS = {"@module", "@class", "charge", "lattice", "properties", "sites"}


def _is_structure_json(path: Path) -> bool:
    """Whether a JSON object file is one structure (its first key is a Structure key) rather than a pool keyed by
    candidate id (``{id: record}``, e.g. a dielectric dataset, whose records hold ``"@module"`` too)."""
    try:
        first_key, _ = next(iter_json_items(path))
    except (StopIteration, ValueError):
        return False
    return first_key in STRUCTURE_KEYS


def _peek_open(path: Path) -> Any:
    from goectp.screening.jsonstream import open_text

    return open_text(path)
