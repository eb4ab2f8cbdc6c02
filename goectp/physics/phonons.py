"""Γ-point force constants of a crystal from a universal interatomic potential, through phonopy.

phonopy (Togo, *J. Phys. Soc. Jpn.* 92, 012001 (2023)) picks the symmetry-reduced atomic displacements (± a
``displacement`` in Å, central differences: the potential's residual force at the given geometry cancels), builds the
force constants from the forces, and symmetrises them (crystal symmetry and the translational sum rule). The
"supercell" is the cell itself (1x1x1): displacing an atom moves all its periodic images, so the force constants are
the Γ-point ones ``Φ_ij = Σ_R ∂²E/∂u_i ∂u_{j+R}`` — exactly what the closed form of :mod:`goectp.physics.ionic`
needs, at the cost of ``≤ 6N`` force evaluations of the cell.

Forces come from a :class:`ForceField`: SevenNet-0 (:class:`SevennetForceField`, the checkpoint inside the
``sevenn`` wheel, batched) or CHGNet (:class:`ChgnetForceField`). Results are cached per structure
(:func:`cached_force_constants`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

INSTALL_HINT = "phonon force constants need phonopy and sevenn: pip install 'goectp-explorer[physics]'"
#: bump when the recipe (displacement scheme, symmetrisation) changes: part of every cache key
RECIPE_VERSION = 1


class ForceField(Protocol):
    """Forces ``[N, 3]`` (eV/Å) for each of a list of ASE ``Atoms``; ``version`` goes into cache keys."""

    name: str
    version: str

    def __call__(self, atoms: Sequence[Any]) -> list[np.ndarray]: ...


@dataclass(frozen=True)
class ForceConstants:
    """Γ-point force constants of one cell.

    Attributes:
        force_constants: ``[N, N, 3, 3]`` (eV/Å²), site order and Cartesian frame of the structure given.
        masses: ``[N]`` atomic masses (amu).
        volume: Ω (Å³).
        num_displacements: force evaluations made (each ± displacement counts).
        seconds: wall time of the force evaluations and phonopy.
        force_field: the force field's ``version``.
    """

    force_constants: np.ndarray
    masses: np.ndarray
    volume: float
    num_displacements: int
    seconds: float
    force_field: str

    def to_npz(self, path: str | Path) -> None:
        """Write to ``path`` (plain arrays, read back without pickle); written atomically."""
        path = Path(path)
        # a temporary name of this writer's own (two processes may compute the same cell), renamed when complete
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".part")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez_compressed(
                    stream,
                    force_constants=self.force_constants.astype(np.float64),
                    masses=self.masses,
                    volume=np.float64(self.volume),
                    num_displacements=np.int64(self.num_displacements),
                    seconds=np.float64(self.seconds),
                    force_field=np.array(self.force_field),
                )
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @classmethod
    def from_npz(cls, path: str | Path) -> ForceConstants:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                force_constants=z["force_constants"],
                masses=z["masses"],
                volume=float(z["volume"]),
                num_displacements=int(z["num_displacements"]),
                seconds=float(z["seconds"]),
                force_field=str(z["force_field"]),
            )


#: the progress callback of a force-constant computation: ``progress(cells done, cells in all)``
Progress = Callable[[int, int], None]


def gamma_force_constants(
    structure: Any,
    force_field: ForceField,
    displacement: float = 0.01,
    symprec: float = 1e-3,
    progress: Progress | None = None,
) -> ForceConstants:
    """Γ-point force constants of ``structure`` (a pymatgen ``Structure``) with ``force_field``'s forces.

    ``progress(done, total)`` is called before the first force evaluation and after each batch of displaced cells
    (batches of ``force_field.batch_atoms`` atoms, 256 when it has none: the force field's own batches, so the
    forces are the same with or without it); an exception it raises stops the computation (a caller's cancel)."""
    try:
        from phonopy import Phonopy
        from phonopy.structure.atoms import PhonopyAtoms
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(INSTALL_HINT) from exc
    from pymatgen.io.ase import AseAtomsAdaptor

    start = time.perf_counter()
    lattice, frac = structure.lattice.matrix, structure.frac_coords
    if np.linalg.det(lattice) < 0:  # phonopy wants a right-handed basis: (−a, −b, −c) is the same crystal
        lattice, frac = -lattice, -frac
    unit = PhonopyAtoms(
        symbols=[site.specie.symbol for site in structure],
        cell=lattice,
        scaled_positions=frac,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        phonon = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int), primitive_matrix=None, symprec=symprec)
        phonon.generate_displacements(distance=displacement, is_plusminus=True)
    cells = phonon.supercells_with_displacements
    atoms = []
    for cell in cells:
        displaced = type(structure)(lattice, structure.species, cell.scaled_positions)
        atoms.append(AseAtomsAdaptor.get_atoms(displaced))
    forces = []
    if progress is not None:
        progress(0, len(atoms))
    for chunk in _chunks(atoms, getattr(force_field, "batch_atoms", 256)):
        forces += [np.asarray(f, float) for f in force_field(chunk)]
        if progress is not None:
            progress(len(forces), len(atoms))
    forces = np.stack(forces)  # [K, N, 3]
    phonon.forces = forces
    with contextlib.redirect_stdout(io.StringIO()):
        phonon.produce_force_constants()
        phonon.symmetrize_force_constants()
    return ForceConstants(
        force_constants=np.array(phonon.force_constants, float),
        masses=np.array(unit.masses, float),
        volume=float(structure.volume),
        num_displacements=len(cells),
        seconds=time.perf_counter() - start,
        force_field=force_field.version,
    )


def force_constant_key(structure: Any, force_field: ForceField, displacement: float = 0.01) -> str:
    """sha256 (24 hex) of the cell, species, positions (to 1e-8), the force field, displacement and recipe.

    Float noise must not change the key: a fractional coordinate is wrapped *after* rounding (1 − 1e-16 and
    −1e-17 both give 0.0, not 1.0) and a signed zero is written as 0.0.
    """
    payload = {
        "lattice": _rounded(structure.lattice.matrix),
        "numbers": [int(site.specie.Z) for site in structure],
        "frac": _rounded(np.round(np.mod(structure.frac_coords, 1.0), 8) % 1.0),
        "force_field": force_field.version,
        "displacement": displacement,
        "recipe": RECIPE_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _rounded(values: np.ndarray) -> list:
    """``values`` to 1e-8, ``-0.0`` made ``0.0`` (JSON writes the sign, so noise around zero would change a key)."""
    return (np.round(values, 8) + 0.0).tolist()


def _cache_path(structure: Any, force_field: ForceField, cache_dir: str | Path, displacement: float) -> Path:
    return Path(cache_dir) / f"{force_constant_key(structure, force_field, displacement)}.npz"


def stored_force_constants(
    structure: Any, force_field: ForceField, cache_dir: str | Path, displacement: float = 0.01
) -> ForceConstants | None:
    """The force constants of ``structure`` stored in ``cache_dir`` (``None`` when there are none, or the file is
    damaged: truncated, not a zip, arrays of another cell; a damaged file is removed)."""
    path = _cache_path(structure, force_field, cache_dir, displacement)
    if not path.is_file():
        return None
    try:
        stored = ForceConstants.from_npz(path)
        n = len(structure)
        if stored.force_constants.shape in ((n, n, 3, 3), (3 * n, 3 * n)) and stored.masses.shape == (n,):
            return stored
    except Exception:  # a damaged file (truncated, not a zip, bad arrays) is computed again
        pass
    with contextlib.suppress(OSError):
        path.unlink()
    return None


def cached_force_constants(
    structure: Any,
    force_field: ForceField,
    cache_dir: str | Path | None,
    displacement: float = 0.01,
    progress: Progress | None = None,
) -> ForceConstants:
    """:func:`gamma_force_constants`, read from / written to ``cache_dir/<key>.npz`` when ``cache_dir`` is set
    (``progress`` is called only when the force constants are computed)."""
    if cache_dir is None:
        return gamma_force_constants(structure, force_field, displacement, progress=progress)
    stored = stored_force_constants(structure, force_field, cache_dir, displacement)
    if stored is not None:
        return stored
    result = gamma_force_constants(structure, force_field, displacement, progress=progress)
    path = _cache_path(structure, force_field, cache_dir, displacement)
    path.parent.mkdir(parents=True, exist_ok=True)
    result.to_npz(path)
    return result


class SevennetForceField:
    """SevenNet forces, many cells per forward pass (checkpoints shipped inside the ``sevenn`` wheel: ``7net-0``,
    the default, ``7net-l3i5``, or the multi-fidelity ``7net-mf-0`` with ``modal`` 'PBE' (default) or 'R2SCAN')."""

    name = "sevennet"

    #: atoms per forward pass on CPU, measured on a 20-atom P1 cell (120 displaced copies, one thread pair): SevenNet-0
    #: 2.2 GB peak and 27.5 s at 256 against 11.5 GB and 35.5 s at 2,048; SevenNet-l3i5 2.5 GB at 128 (16 GB at
    #: 2,048 was killed for memory). Small batches bound the memory and are no slower.
    DEFAULT_BATCH_ATOMS = {"7net-0": 256}

    def __init__(
        self,
        model_name: str = "7net-0",
        device: str | None = None,
        batch_atoms: int | None = None,
        modal: str | None = None,
    ) -> None:
        try:
            import sevenn
            import sevenn.util
            from sevenn.atom_graph_data import AtomGraphData
            from sevenn.train.dataload import unlabeled_atoms_to_graph
        except ImportError as exc:  # pragma: no cover
            raise ImportError(INSTALL_HINT) from exc
        import torch

        from goectp.features.sevennet import load_sevennet

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model, config = load_sevennet(model_name, self.device)
        #: cache folders and logs: "sevennet" for SevenNet-0, "sevennet-l3i5" for ``7net-l3i5``, "sevennet-mf-0"
        #: (PBE) and "sevennet-mf-0-r2scan" for ``7net-mf-0``
        self.name = "sevennet" if model_name == "7net-0" else f"sevennet-{model_name.removeprefix('7net-')}"
        self.model_name = model_name
        modals = sorted(getattr(self.model, "modal_map", None) or {})
        if modals:  # a multi-fidelity checkpoint: which DFT functional's forces (the dielectric data is PBE)
            modal = modal or "PBE"
            if modal not in modals:
                raise ValueError(f"SevenNet ({model_name}) has no fidelity {modal!r}: choose one of {modals}")
            self.name += "" if modal == "PBE" else f"-{modal.lower()}"
        elif modal is not None:
            raise ValueError(f"SevenNet ({model_name}) has a single fidelity: no modal {modal!r}")
        self.modal = modal
        self.model.set_is_batch_data(True)
        self.cutoff = float(config["cutoff"])
        self.type_map = dict(self.model.type_map)
        self.version = f"sevenn-{sevenn.__version__}-{model_name}" + (f"-{modal}" if modal else "")
        self.batch_atoms = batch_atoms or self.DEFAULT_BATCH_ATOMS.get(model_name, 128)
        self._to_graph, self._data_cls = unlabeled_atoms_to_graph, AtomGraphData

    def __call__(self, atoms: Sequence[Any]) -> list[np.ndarray]:
        from sevenn import _keys as key
        from torch_geometric.data import Batch

        unknown = sorted(
            {s for a in atoms for s, z in zip(a.get_chemical_symbols(), a.numbers) if z not in self.type_map}
        )
        if unknown:
            raise ValueError(f"SevenNet ({self.model_name}) has no parameters for {', '.join(unknown)}")
        out: list[np.ndarray] = []
        for chunk in _chunks(atoms, self.batch_atoms):
            graphs = [self._data_cls.from_numpy_dict(self._to_graph(a, self.cutoff, with_shift=False)) for a in chunk]
            if self.modal:  # which DFT fidelity the multi-fidelity model answers for
                for graph in graphs:
                    graph[key.DATA_MODALITY] = self.modal
            batch = Batch.from_data_list(graphs).to(self.device)
            forces = self.model(batch)[key.PRED_FORCE].detach().double().cpu().numpy()  # [Σ N, 3]
            sizes = np.cumsum([len(a) for a in chunk])[:-1]
            out.extend(np.split(forces, sizes))
        return out


class ChgnetForceField:
    """CHGNet forces (the checkpoint inside the ``chgnet`` wheel), for comparison with SevenNet-0."""

    name = "chgnet"

    def __init__(self, model_name: str = "0.3.0", batch_size: int = 16) -> None:
        import chgnet
        from chgnet.model import CHGNet

        with contextlib.redirect_stdout(io.StringIO()):
            self.model = CHGNet.load(model_name=model_name, use_device="cpu", verbose=False).eval()
        self.version = f"chgnet-{chgnet.__version__}-{model_name}"
        self.batch_size = batch_size

    def __call__(self, atoms: Sequence[Any]) -> list[np.ndarray]:
        from pymatgen.io.ase import AseAtomsAdaptor

        structures = [AseAtomsAdaptor.get_structure(a) for a in atoms]
        with contextlib.redirect_stdout(io.StringIO()):
            preds = self.model.predict_structure(structures, task="ef", batch_size=self.batch_size)
        return [np.asarray(p["f"], float) for p in preds]


def _chunks(atoms: Sequence[Any], max_atoms: int):
    chunk: list[Any] = []
    count = 0
    for a in atoms:
        if chunk and count + len(a) > max_atoms:
            yield chunk
            chunk, count = [], 0
        chunk.append(a)
        count += len(a)
    if chunk:
        yield chunk


#: the names :func:`force_field` knows
FORCE_FIELDS = ("sevennet", "sevennet-l3i5", "sevennet-mf-0", "sevennet-mf-0-r2scan", "chgnet")


def force_field(name: str = "sevennet", **kwargs: Any) -> ForceField:
    """A force field by name: 'sevennet' (SevenNet-0, default), 'sevennet-l3i5' (SevenNet-l3i5, larger, ~2.5× the
    cost), 'sevennet-mf-0' (SevenNet-MF-0, its PBE fidelity; 'sevennet-mf-0-r2scan' its r²SCAN one) or 'chgnet'."""
    if name == "sevennet":
        return SevennetForceField(**kwargs)
    if name == "sevennet-l3i5":
        return SevennetForceField(model_name="7net-l3i5", **kwargs)
    if name in ("sevennet-mf-0", "sevennet-mf-0-r2scan"):
        modal = kwargs.pop("modal", None)
        if name.endswith("r2scan") and modal not in (None, "R2SCAN"):
            raise ValueError(f"force field {name!r} is the R2SCAN fidelity: no modal {modal!r}")
        modal = "R2SCAN" if name.endswith("r2scan") else modal
        return SevennetForceField(model_name="7net-mf-0", modal=modal, **kwargs)
    if name == "chgnet":
        return ChgnetForceField(**kwargs)
    choices = ", ".join(repr(n) for n in FORCE_FIELDS[:-1]) + f" or {FORCE_FIELDS[-1]!r}"
    raise ValueError(f"unknown force field {name!r}: choose {choices}")
