"""ε_ion of one crystal from physics: predicted Born charges, SevenNet force constants, the closed form mode by mode.

    result = ionic_physics(structure)   # the shipped Born-charge model and the physics model's force field, cached
    result.tensor, result.modes.frequency_thz, result.modes.shares(), result.born_charges

Everything is computed on the crystal's canonical primitive cell (:func:`goectp.canonical.canonical_cell`, in the
input's orientation), so any cell of the same crystal gives the same tensor and the tensor turns with the crystal.
Cost: the force constants take ``≤ 6N`` force evaluations of the cell (median 0.7 s for 5–8 atoms, 1.3 s for 9–12
on one CPU thread; see docs/results.md), cached per structure under ``$GOECTP_CACHE/phonons``; the charges one
forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from goectp.physics.ionic import IonicModes, ionic_modes
from goectp.physics.phonons import ForceConstants, ForceField, Progress, force_field
from goectp.physics.standard_cell import standard_force_constants

#: the shipped Born-charge ensemble (one member per split), relative to the assets folder
BORN_MODEL = Path("physics") / "born-charges"
_FORCE_FIELDS: dict[str, ForceField] = {}


@dataclass(frozen=True)
class IonicPhysics:
    """The physics term of one crystal.

    Attributes:
        cell: the canonical primitive cell everything refers to (site order of ``born_charges`` and the modes).
        born_charges: ``[N, 3, 3]`` (e), the ensemble mean (or the charges given).
        born_charges_std: ``[N, 3, 3]`` member spread of the charges (``None`` when given or a single model).
        force_constants: the Γ-point force constants and their cost.
        modes: the optical modes and their contributions (:class:`~goectp.physics.ionic.IonicModes`).
        point_group: ``[G, 3, 3]`` Cartesian rotations of the crystal's point group (``None``: not averaged).
    """

    cell: Any
    born_charges: np.ndarray
    born_charges_std: np.ndarray | None
    force_constants: ForceConstants
    modes: IonicModes
    point_group: np.ndarray | None = None

    @property
    def tensor(self) -> np.ndarray:
        """ε_ion ``[3, 3]`` in the input's Cartesian frame, averaged over the point group: (1/|G|) Σ_R R ε Rᵀ. The
        float32 forces leave ~1e-3 symmetry-breaking noise in the sum over modes (a cubic crystal's off-diagonal
        components); the average removes it, so the components the symmetry forbids are zero, as in DFT."""
        return point_group_average(self.modes.tensor, self.point_group)

    @property
    def eps_mean(self) -> float:
        """ε̄_ion = tr(ε_ion)/3 (the trace is unchanged by the point-group average)."""
        return float(np.trace(self.modes.tensor) / 3)

    def summary(self, modes: int = 3) -> dict[str, Any]:
        """Plain numbers: ε_ion, ε̄_ion, unstable modes, the softest mode in the sum (THz, ``None`` when none is), the
        ``modes`` dominant modes, the charges (± spread)."""
        softest = self.modes.softest_thz
        return {
            "eps_ion": self.tensor.tolist(),
            "eps_ion_mean": self.eps_mean,
            "unstable_modes": self.modes.num_unstable,
            "softest_mode_thz": None if np.isnan(softest) else softest,
            "dominant_modes": self.dominant_modes(modes),
            "born_charges": self.born_charges.tolist(),
            "born_charges_std": None if self.born_charges_std is None else self.born_charges_std.tolist(),
            "species": [site.specie.symbol for site in self.cell],
            "force_field": self.force_constants.force_field,
            "force_constant_seconds": self.force_constants.seconds,
        }

    def dominant_modes(self, k: int = 3) -> list[dict[str, Any]]:
        """The ``k`` modes with the largest share of ε̄_ion: frequency (THz, cm⁻¹), share, mode charge."""
        shares = self.modes.shares()
        order = np.argsort(-shares)[:k]
        return [
            {
                "index": int(i),
                "frequency_thz": float(self.modes.frequency_thz[i]),
                "frequency_cm1": float(self.modes.frequency_thz[i] * 33.35641),
                "share": float(shares[i]),
                "mode_charge": self.modes.mode_charge[i].tolist(),
            }
            for i in order
            if shares[i] > 0
        ]


def load_born_model(spec: str | Path | None = None):
    """The Born-charge ensemble: ``spec`` (a folder or checkpoint), else the shipped ``assets/physics/born-charges``;
    in float64, so that two descriptions of a crystal get the same charges to round-off (float32: ~1e-7, which a
    soft mode turns into ~1e-4 of ε_ion)."""
    from goectp.registry import assets_dir, load_model

    path = Path(spec) if spec is not None else assets_dir() / BORN_MODEL
    if not path.exists():
        raise FileNotFoundError(
            f"no Born-charge model at {path}: train one with benchmarks/experiments/born_charges.py"
        )
    return load_model(path).double()


def born_charge_input(cell: Any, k_neighbors: int) -> tuple[Any, np.ndarray]:
    """``(graph, order)``: the graph a Born-charge model reads for ``cell`` (a canonical cell) and the graph node of
    each site (site ``j`` is node ``order[j]``)."""
    from goectp.graph import build_crystal_graph
    from goectp.models.born import with_site_operations
    from goectp.physics.born_data import cell_mapping

    graph = with_site_operations(build_crystal_graph(cell, k=k_neighbors, canonical=True))
    weights = cell_mapping(graph.lattice[0].double().numpy(), graph.frac.double().numpy(), graph.z.numpy(), cell)
    if weights is None or weights.shape[0] != weights.shape[1]:
        raise ValueError("the graph's atoms do not map one to one onto the cell's sites")
    return graph, weights.argmax(axis=0)


def born_charges_of_cells(inputs: Sequence[tuple[Any, np.ndarray]], model: Any) -> list[np.ndarray]:
    """A Born-charge model (an ensemble gives its members' mean) on many cells in one forward pass: ``[N_c, 3, 3]``
    per cell, in its site order; ``inputs`` are :func:`born_charge_input` of each cell."""
    from torch_geometric.data import Batch

    with torch.no_grad():
        out = model(Batch.from_data_list([graph for graph, _ in inputs])).double().numpy()  # [Σ N_c, 3, 3]
    parts = np.split(out, np.cumsum([len(order) for _, order in inputs])[:-1])
    return [part[order] for part, (_, order) in zip(parts, inputs)]


def predict_born_charges(cell: Any, model: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``(mean [N, 3, 3], std or None)`` of a Born-charge model or ensemble on ``cell`` (a canonical cell), in its
    site order."""
    from torch_geometric.data import Batch

    graph, order = born_charge_input(cell, model.config.k_neighbors)
    if not hasattr(model, "member_charges"):
        return born_charges_of_cells([(graph, order)], model)[0], None
    with torch.no_grad():
        members = model.member_charges(Batch.from_data_list([graph])).double().numpy()[:, order]
    return members.mean(axis=0), members.std(axis=0)


#: The largest canonical cell :func:`ionic_physics` computes force constants for (≤ 6N force evaluations of N atoms;
#: with SevenNet-l3i5 on one loaded CPU thread a median 18 s at 13–20 atoms, 34 s at 25–30); the shipped ``physics``
#: model stops at its ``max_sites`` (40 since the eighth session, chosen on validation).
MAX_PHYSICS_SITES = 40


def ionic_physics(
    structure: Any,
    born_model: Any = None,
    forces: ForceField | str | None = None,
    born_charges: np.ndarray | None = None,
    cache_dir: str | Path | None = "default",
    progress: Progress | None = None,
) -> IonicPhysics:
    """The physics ε_ion of ``structure`` (see the module docstring).

    Args:
        born_model: a Born-charge model or ensemble (default: the shipped one); ignored with ``born_charges``.
        forces: a :class:`~goectp.physics.phonons.ForceField` or its name (:func:`~goectp.physics.phonons.force_field`);
            ``None``: the shipped ``physics`` model's (:func:`goectp.physics.config.shipped_force_field`).
        born_charges: ``[N, 3, 3]`` charges of the *canonical cell's* sites, instead of predicting them.
        cache_dir: force-constant cache (``"default"``: ``$GOECTP_CACHE/phonons/<force field>``; ``None``: off).
        progress: ``progress(displaced cells done, in all)`` while force constants are computed (not when cached);
            an exception it raises stops the computation, nothing cached (how the explorer cancels).
    """
    from goectp.canonical import canonical_cell

    cell = canonical_cell(structure)
    if len(cell) > MAX_PHYSICS_SITES:  # bounded time: ≤ 6N displaced cells of N atoms each
        raise ValueError(
            f"{len(cell)} atoms in the primitive cell: the physics term computes force constants for at most "
            f"{MAX_PHYSICS_SITES} (6N displaced cells of N atoms each)"
        )
    if forces is None:
        from goectp.physics.config import shipped_force_field

        forces = shipped_force_field()
    ff = _force_field(forces)
    if cache_dir == "default":
        from goectp.data.paths import cache_dir as goectp_cache

        cache_dir = goectp_cache() / "phonons" / ff.name
    # on the standard cell: the same numbers for every description
    fc = standard_force_constants(cell, ff, cache_dir, progress=progress)
    std = None
    if born_charges is None:
        born_charges, std = predict_born_charges(cell, born_model if born_model is not None else load_born_model())
    modes = ionic_modes(np.asarray(born_charges, float), fc.force_constants, fc.volume, fc.masses)
    return IonicPhysics(cell, np.asarray(born_charges, float), std, fc, modes, point_group_of(cell))


def point_group_of(cell: Any) -> np.ndarray:
    """``[G, 3, 3]`` Cartesian point-group rotations of ``cell`` (:func:`goectp.graph.symmetry_operations`)."""
    from goectp.graph import symmetry_operations

    return symmetry_operations(cell)


def point_group_average(tensor: np.ndarray, rotations: np.ndarray | None) -> np.ndarray:
    """(1/|G|) Σ_R R T Rᵀ over ``rotations [G, 3, 3]`` (``T`` itself when ``None``)."""
    if rotations is None or len(rotations) == 0:
        return tensor
    return np.einsum("gij,jk,glk->il", rotations, tensor, rotations) / len(rotations)


def _force_field(forces: ForceField | str) -> ForceField:
    if not isinstance(forces, str):
        return forces
    if forces not in _FORCE_FIELDS:  # loading SevenNet takes seconds: once per process
        _FORCE_FIELDS[forces] = force_field(forces)
    return _FORCE_FIELDS[forces]
