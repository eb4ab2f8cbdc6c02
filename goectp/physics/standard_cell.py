r"""One set of numbers per crystal for the force field, so that the physics term is exactly invariant.

SevenNet-0 computes forces in float32: two descriptions of one crystal (turned, another basis, another origin or atom
order) give force constants that differ in the last digits, and soft modes (ε ∝ 1/ω²) amplify that to ~1e-3. So the
force constants are computed on a **standard cell** that every description of the crystal maps to *bit for bit*:

- basis: the Niggli-reduced basis (:func:`goectp.frame.niggli_matrix`) times the lattice automorphism ``W``, and an
  origin on an atom of the rarest species, that give the smallest sorted list of (species, rounded fractional
  coordinates) — a choice made from the metric and the fractional coordinates only, so a rotation cannot change it;
- orientation: ``H = (Bᵀ B)^{1/2}`` of that basis ``B`` (the polar factor ``B = F H``), from the metric rounded to
  1e-8 Å², so a rotated crystal gets the same ``H`` and ``F`` carries the rotation;
- positions: fractional coordinates rounded to 1e-7 (≤ 1e-6 Å), atoms sorted.

The force constants are then turned back, ``Φ_ij = F Φ^std_{π(i)π(j)} Fᵀ``, into the frame and site order of the
cell given: every description gets the same numbers up to float64 round-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: rounding of the fractional coordinates of the standard cell (1e-7 of a cell edge: ≤ ~1e-6 Å)
FRAC_DECIMALS = 7
#: rounding of the metric Bᵀ B (Å²) that fixes the standard orientation
METRIC_DECIMALS = 8


@dataclass(frozen=True)
class StandardCell:
    """``structure``: the standard cell (lattice ``H``, atoms sorted); site ``k`` of it is site ``order[k]`` of the
    cell given; a Cartesian vector ``v`` of the standard frame is ``rotation @ v`` in the cell's frame."""

    structure: Any
    order: np.ndarray
    rotation: np.ndarray


def standard_cell(cell: Any) -> StandardCell:
    """The standard cell of ``cell`` (a pymatgen ``Structure``; see the module docstring)."""
    from pymatgen.core import Lattice, Structure

    from goectp.canonical import integer_automorphisms
    from goectp.frame import niggli_matrix

    lat = cell.lattice.matrix.T  # columns = lattice vectors
    c = niggli_matrix(lat)
    reduced = lat @ c
    frac = cell.frac_coords @ np.linalg.inv(c).T  # coordinates in the reduced basis
    numbers = np.array([site.specie.Z for site in cell])
    ws = integer_automorphisms(reduced)
    if ws is None or not len(ws):
        ws = np.stack([np.eye(3), -np.eye(3)]).astype(np.int64)
    species, counts = np.unique(numbers, return_counts=True)
    anchor_species = species[np.lexsort((species, counts))[0]]  # the rarest species, the lightest on ties
    anchors = np.flatnonzero(numbers == anchor_species)
    best = None
    for w in ws:
        f = frac @ np.linalg.inv(w).T  # the basis reduced @ w
        for a in anchors:
            g = _wrap(np.round(_wrap(f - f[a]), FRAC_DECIMALS))
            order = np.lexsort((g[:, 2], g[:, 1], g[:, 0], numbers))
            key = (tuple(numbers[order]), tuple(g[order].ravel()))
            if best is None or key < best[0]:
                best = (key, w, order, g[order])
    _, w, order, g = best
    basis = reduced @ w  # columns, in the cell's frame
    metric = np.round(basis.T @ basis, METRIC_DECIMALS)
    values, vectors = np.linalg.eigh(metric)
    h = (vectors * np.sqrt(values)) @ vectors.T  # symmetric H with Hᵀ H = metric
    rotation = basis @ np.linalg.inv(h)  # B = F H
    structure = Structure(Lattice(h.T), [cell[i].specie for i in order], g, coords_are_cartesian=False)
    return StandardCell(structure, np.asarray(order), rotation)


def to_cell_frame(force_constants: np.ndarray, standard: StandardCell) -> np.ndarray:
    """``[N, N, 3, 3]`` force constants of the standard cell turned back into the cell's frame and site order."""
    inverse = np.empty(len(standard.order), dtype=int)
    inverse[standard.order] = np.arange(len(standard.order))
    f = standard.rotation
    return np.einsum("ab,ijbc,dc->ijad", f, force_constants[np.ix_(inverse, inverse)], f)


def _wrap(x: np.ndarray) -> np.ndarray:
    y = x - np.floor(x)
    return np.where(y >= 1.0, 0.0, y)


def standard_force_constants(
    cell: Any, force_field: Any, cache_dir: Any = None, compute: bool = True, progress: Any = None
) -> Any:
    """:func:`goectp.physics.phonons.cached_force_constants` of the standard cell, in ``cell``'s frame and order;
    with ``compute=False`` only what ``cache_dir`` holds (``None`` when it holds none: for analyses of a cache).
    ``progress``: see :func:`~goectp.physics.phonons.gamma_force_constants`."""
    from dataclasses import replace

    from goectp.physics.phonons import cached_force_constants, stored_force_constants

    standard = standard_cell(cell)
    if compute:
        fc = cached_force_constants(standard.structure, force_field, cache_dir, progress=progress)
    else:
        fc = stored_force_constants(standard.structure, force_field, cache_dir)
        if fc is None:
            return None
    inverse = np.empty(len(standard.order), dtype=int)
    inverse[standard.order] = np.arange(len(standard.order))
    return replace(fc, force_constants=to_cell_frame(fc.force_constants, standard), masses=fc.masses[inverse])
