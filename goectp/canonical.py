"""One description per crystal: the idealized primitive cell, and the frames its lattice leaves ambiguous.

The same infinite crystal can be handed over in any unit cell (a → a + b, a supercell, shifted or wrapped atoms) and
with coordinates that are symmetric only up to a tolerance. Two steps make the model's input independent of all that:

1. :func:`canonical_cell` — the crystal's primitive cell made exactly symmetric for the space group found at
   ``symprec``: each atom averaged over its images under the space group (in fractional coordinates, a projection
   that commutes with any change of basis or origin) on spglib's idealized lattice, turned into the input's
   orientation by the orthogonal factor ``R`` of the map that takes the input lattice onto the idealized one (the
   same for every basis of the input). Every description of the crystal gives the same Cartesian crystal (up to a
   translation and the order of the atoms), and a rotated or reflected input gives the rotated or reflected
   crystal, so equivariance is untouched.

2. :func:`frame_operations` — the reduced basis of a lattice is unique only up to the lattice's automorphism group
   ``G_L`` (``-I`` always belongs to it), so the polar frame ``F`` is unique only up to ``F → Q F``, ``Q ∈ G_L``.
   Averaging the prediction over all frames ``Q F`` removes that choice exactly:

       f(X) = 1/|G_L| Σ_{Q ∈ G_L}  (Q F) g((Q F)ᵀ X) (Q F)ᵀ.

   For ``P`` in the crystal's point group ``G_c`` (an exact symmetry of the idealized cell) the term of ``P Q`` is
   ``P (term of Q) Pᵀ``, which the point-group symmetrisation that follows makes equal to the term of ``Q``. So one
   representative per right coset ``G_c Q`` suffices: ``|G_L| / |G_c|`` frames, 1 for most crystals whose lattice
   is no more symmetric than they are, 2 for a polar crystal (``±F``).
"""

from __future__ import annotations

import warnings

import numpy as np

#: Tolerance (Å) for the lattice automorphisms and the exact symmetries of an *idealized* cell: far above its
#: floating-point noise (~1e-14 Å), far below any real distortion.
EXACT_SYMPREC = 1e-6


def _spglib():  # noqa: ANN202
    import spglib

    return spglib


def _quiet(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    """Call a spglib function; ``None`` where it finds no symmetry (old and new error handling alike)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return fn(*args, **kwargs)
        except Exception:  # spglib >= 2.8 with the new error handling raises instead of returning None
            return None


def canonical_cell(structure, symprec: float = 0.01):  # noqa: ANN001, ANN201 - pymatgen Structure
    """The crystal's primitive cell made exactly symmetric, in the input's orientation (see the module docstring).

    Lattice: spglib's idealized lattice of the space group found at ``symprec``, written in the input's basis and
    turned into the input's orientation by the rotation ``R`` of ``A = L_ideal P L⁻¹`` (spglib's standardized basis
    is ``L P⁻¹``; ``A`` is the same for every basis of the input, unlike spglib's ``std_rotation_matrix``).
    Positions: the average of each atom over its images under the space group, in fractional coordinates (a
    projection that commutes with any change of basis or origin, unlike spglib's choice of one representative).
    Returns the input unchanged when spglib finds no symmetry dataset (then :func:`frame_operations` falls back to
    the whole automorphism group, which is exact without any symmetry).
    """
    from pymatgen.core import Lattice, Structure

    spglib = _spglib()
    cell = (structure.lattice.matrix, np.mod(structure.frac_coords, 1.0), [site.specie.Z for site in structure])
    # the primitive cell first (not idealized, not rotated): only there is every point operation an integer matrix
    primitive = _quiet(spglib.standardize_cell, cell, to_primitive=True, no_idealize=True, symprec=symprec)
    if primitive is None:
        return structure
    lat_rows, frac, numbers = (np.asarray(x) for x in primitive)
    frac = np.mod(frac, 1.0)
    lat_in = lat_rows.T
    dataset = _quiet(spglib.get_symmetry_dataset, (lat_rows, frac, numbers), symprec=symprec)
    if dataset is None:
        return structure
    p = np.asarray(dataset.transformation_matrix, dtype=np.float64)
    ideal_std = np.asarray(dataset.std_lattice, dtype=np.float64).T
    u, _, vt = np.linalg.svd(ideal_std @ p @ np.linalg.inv(lat_in))
    ideal = (u @ vt).T @ ideal_std @ p  # columns: the idealized lattice, input basis, input orientation
    symmetric = _orbit_average(frac, numbers, np.asarray(dataset.rotations), np.asarray(dataset.translations),
                               lat_in, tol=2 * symprec)
    if symmetric is None:
        return structure
    return Structure(Lattice(ideal.T), [int(z) for z in numbers], symmetric)


def _orbit_average(frac: np.ndarray, numbers: np.ndarray, rotations: np.ndarray, translations: np.ndarray,
                   lat_cols: np.ndarray, tol: float) -> np.ndarray | None:
    """``x_j ← 1/|G| Σ_g (W_g x_{σ_g⁻¹(j)} + t_g)``, each image taken as the lattice copy nearest ``x_j``.

    ``None`` when an operation does not map the atoms onto atoms of the same element within ``tol`` (Å).
    """
    total = np.zeros_like(frac)
    for w, t in zip(rotations, translations):
        images = frac @ w.T + t  # [N, 3]: image of atom i under g
        diff = images[:, None, :] - frac[None, :, :]  # [i, j, 3]
        diff -= np.rint(diff)
        dist = np.linalg.norm(diff @ lat_cols.T, axis=-1)
        dist[numbers[:, None] != numbers[None, :]] = np.inf
        target = np.argmin(dist, axis=1)  # σ_g(i)
        if dist[np.arange(len(frac)), target].max() > tol or len(set(target.tolist())) != len(frac):
            return None
        total[target] += frac[target] + diff[np.arange(len(frac)), target]  # image of i, next to x_σ(i)
    return np.mod(total / len(rotations), 1.0)


def _cartesian(lat_cols: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Integer operations ``W`` (acting on fractional columns) as orthogonal Cartesian ``L W L⁻¹``."""
    cart = lat_cols @ rotations @ np.linalg.inv(lat_cols)
    u, _, vt = np.linalg.svd(cart)  # nearest orthogonal matrix: removes the last floating-point noise
    return u @ vt


def lattice_automorphisms(lat_cols: np.ndarray, symprec: float = EXACT_SYMPREC) -> np.ndarray:
    """The lattice's point group ``G_L`` as Cartesian ``[n, 3, 3]`` (columns of ``lat_cols`` = lattice vectors)."""
    sym = _quiet(_spglib().get_symmetry, (lat_cols.T, [[0.0, 0.0, 0.0]], [1]), symprec=symprec)
    if sym is None:  # cannot happen for a valid lattice; -I and I are automorphisms of every lattice
        return np.stack([np.eye(3), -np.eye(3)])
    return _cartesian(lat_cols, np.unique(sym["rotations"], axis=0))


def frame_operations(lat_cols: np.ndarray, point_group: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """One ``Q`` per right coset ``G_c Q`` of the lattice group ``G_L`` by the crystal's point group ``G_c``.

    Args:
        lat_cols: the lattice whose reduced basis gives the frame (columns = lattice vectors).
        point_group: ``[m, 3, 3]`` Cartesian point group of the crystal, *exact* for the cell the graph is built
            from (an idealized cell); pass the identity alone to average over all of ``G_L``.

    Returns ``[k, 3, 3]``, ``k = |G_L| / |G_c|``, the identity first.
    """
    group = lattice_automorphisms(lat_cols)
    # identity first, then a fixed order (by the rounded entries) so the representatives never depend on spglib's
    group = sorted(group, key=lambda q: (not np.allclose(q, np.eye(3), atol=tol), tuple(np.round(q, 6).ravel())))
    reps: list[np.ndarray] = []
    for q in group:
        # q ∈ G_c r  ⇔  q rᵀ ∈ G_c
        if not any(np.abs(point_group - q @ r.T).max(axis=(1, 2)).min() < tol for r in reps):
            reps.append(q)
    return np.stack(reps)


def uses_canonical_cell(config) -> bool:  # noqa: ANN001 - a GoeCTPConfig (duck-typed: no import of the models)
    """Whether a model's graphs are built from the canonical cell and averaged over its frames.

    Needs the point-group symmetrisation: one frame per coset is exact only because the symmetrisation that
    follows makes the terms of ``Q`` and ``P Q`` (``P`` in the point group) equal.
    """
    return (getattr(config, "cell_reduction", None) == "primitive" and bool(getattr(config, "frame_average", False))
            and bool(getattr(config, "use_frame", True)) and bool(getattr(config, "symmetrize", False)))
