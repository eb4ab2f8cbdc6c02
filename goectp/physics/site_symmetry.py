"""Per-atom tensors made consistent with the crystal's space group: ``T_{g(i)} = R_g T_i R_gᵀ``.

A space-group operation ``g = (W, t)`` (fractional) maps atom ``i`` onto atom ``π_g(i)`` and turns tensors by the
Cartesian ``R_g = L W L⁻¹`` (``L``'s columns are the lattice vectors). The group average

.. math::
    \\bar T_j = \\frac{1}{|G|} \\sum_{g} R_g\\, T_{\\pi_g^{-1}(j)}\\, R_g^{\\mathsf T}

is the projection onto site-symmetric tensor fields: atoms related by symmetry get related tensors, and an atom on a
special position gets a tensor its site group leaves unchanged (e.g. an isotropic Born charge on a cubic site).
It keeps ``Σ_i T_i`` equal to its point-group average, so the acoustic sum rule ``Σ_i Z*_i = 0`` survives it.
"""

from __future__ import annotations

import numpy as np

from goectp.canonical import cell_symmetry


def site_operations(
    lattice_rows: np.ndarray, frac: np.ndarray, numbers, symprec: float = 0.01, tol: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """``(rotations [S, 3, 3] Cartesian, permutations [S, N])`` of a cell's space group: operation ``s`` sends atom
    ``i`` to atom ``permutations[s, i]``. Without symmetry (or when an image misses every atom by more than ``tol``
    Å): the identity alone."""
    lattice_rows = np.asarray(lattice_rows, float)
    frac = np.asarray(frac, float)
    n = len(frac)
    identity = (np.eye(3)[None], np.arange(n)[None])
    sym = cell_symmetry(lattice_rows, frac, list(numbers), symprec)
    if sym is None:
        return identity
    numbers = np.asarray(numbers)
    lat_cols = lattice_rows.T
    rots, perms = [], []
    for w, t in zip(sym["rotations"], sym["translations"]):
        image = frac @ np.asarray(w, float).T + t  # [N, 3]
        diff = image[:, None, :] - frac[None, :, :]
        diff -= np.rint(diff)
        dist = np.linalg.norm(diff @ lattice_rows, axis=-1)  # [N, N] Å
        dist[numbers[:, None] != numbers[None, :]] = np.inf
        target = dist.argmin(axis=1)
        if dist[np.arange(n), target].max() > tol or len(set(target.tolist())) != n:
            return identity
        cart = lat_cols @ np.asarray(w, float) @ np.linalg.inv(lat_cols)
        u, _, vt = np.linalg.svd(cart)  # nearest orthogonal matrix (symmetric only within symprec)
        rots.append(u @ vt)
        perms.append(target)
    return np.stack(rots), np.stack(perms)


def symmetrize_site_tensors(tensors: np.ndarray, rotations: np.ndarray, permutations: np.ndarray) -> np.ndarray:
    """The group average of per-atom tensors ``[N, 3, 3]`` (see the module docstring)."""
    tensors = np.asarray(tensors, float)
    out = np.zeros_like(tensors)
    for r, perm in zip(rotations, permutations):
        out[perm] += r @ tensors @ r.T
    return out / len(rotations)
