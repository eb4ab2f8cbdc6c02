"""The polar-decomposition frame that makes any network O(3)-equivariant.

A lattice ``L`` (lattice vectors as *columns*) factors uniquely as ``L = F H`` with ``F`` orthogonal and ``H``
symmetric positive definite (the polar decomposition). With the SVD ``L = U Σ Vᵀ``:

    F = U Vᵀ,        H = V Σ Vᵀ = sqrt(Lᵀ L).

Rotating or reflecting the crystal by ``R`` maps ``L → R L`` and so ``F → R F`` while ``H`` is unchanged: ``H`` is
the lattice in a *canonical orientation*, and ``F`` is the rotation that brings it back. A network ``g`` that sees
only canonical coordinates ``Fᵀ X`` becomes equivariant as ``f(X) = F g(Fᵀ X) Fᵀ``.

Cell choice: ``F`` depends on which basis describes the lattice (``a → a + b`` changes it). ``reduce_lattice``
picks a reduced basis (Niggli or LLL) as an *integer* combination of the input vectors, decided from the metric
``G = Lᵀ L`` alone, so the reduction itself commutes with rotations and reflections.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

CellReduction = Literal["none", "niggli", "lll"]

#: Smallest allowed ratio of the smallest to the largest singular value of a lattice.
MIN_CONDITION = 1e-6


def _check_lattice(lattice: np.ndarray) -> np.ndarray:
    lat = np.asarray(lattice, dtype=np.float64)
    if lat.shape[-2:] != (3, 3):
        raise ValueError(f"lattice must have shape (..., 3, 3), got {lat.shape}")
    if not np.all(np.isfinite(lat)):
        raise ValueError("lattice contains NaN or infinite entries")
    return lat


def polar_frame(lattice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polar decomposition ``L = F H`` of a lattice or a batch of lattices.

    Args:
        lattice: ``(..., 3, 3)`` array whose **columns** are the lattice vectors (the transpose of pymatgen's
            ``Lattice.matrix``, whose rows are the vectors).

    Returns:
        ``(F, H)``: ``F`` orthogonal with ``det F = ±1`` (a reflection is kept, so the frame covers O(3)), ``H``
        symmetric positive definite, both ``(..., 3, 3)``.

    Raises:
        ValueError: non-finite entries, or a singular / near-singular lattice (zero or tiny volume).
    """
    lat = _check_lattice(lattice)
    u, s, vt = np.linalg.svd(lat)
    smax = s[..., :1]
    bad = (s[..., -1] <= MIN_CONDITION * np.maximum(smax[..., 0], 1e-300)).reshape(-1)
    if np.any(bad):
        first = int(np.argmax(bad))
        where = f" (lattice {first} of the batch)" if s.ndim > 1 else ""
        raise ValueError(
            f"lattice is singular or nearly singular{where}: zero or near-zero cell volume, singular values "
            f"{np.array2string(s.reshape(-1, 3)[first], precision=3)}; check the lattice vectors"
        )
    frame = u @ vt
    sym = np.swapaxes(vt, -1, -2) @ (s[..., :, None] * vt)
    sym = 0.5 * (sym + np.swapaxes(sym, -1, -2))
    return frame, sym


def polar_frame_torch(lattice):  # noqa: ANN001, ANN201 - torch is optional at import time here
    """Differentiable torch version of :func:`polar_frame` (columns are lattice vectors)."""
    import torch

    u, s, vh = torch.linalg.svd(lattice)
    frame = u @ vh
    sym = vh.transpose(-1, -2) @ (s.unsqueeze(-1) * vh)
    return frame, 0.5 * (sym + sym.transpose(-1, -2))


#: Grid (Å) the canonical lattice is snapped to before reduction: a power of two, so that snapping is exact.
SNAP_STEP = 2.0**-26


def _snap(x: np.ndarray, step: float = SNAP_STEP) -> np.ndarray:
    """Round to a fixed grid so that rotation noise (~1e-15 Å) cannot change the reduction's decisions.

    The step is a fixed power of two (not relative to the lattice size, which itself carries the noise), so
    ``round(x / step) * step`` is computed exactly and equal inputs up to noise give bit-identical outputs.
    """
    return np.round(x / step) * step


def reduction_matrix(lattice: np.ndarray, method: CellReduction = "niggli") -> np.ndarray:
    """Integer unimodular ``M`` such that ``L M`` is the reduced basis (``L`` columns = lattice vectors).

    ``M`` is computed from the canonical lattice ``H = sqrt(Lᵀ L)`` snapped to a fine grid, i.e. from the metric
    alone, so it is identical for a crystal and any rotated or reflected copy of it.
    """
    if method == "none":
        return np.eye(3, dtype=np.int64)
    from pymatgen.core import Lattice

    _, h = polar_frame(lattice)
    h = _snap(h)
    lat = Lattice(h.T)  # pymatgen wants rows = vectors
    if method == "niggli":
        red = lat.get_niggli_reduced_lattice()
    elif method == "lll":
        red = lat.get_lll_reduced_lattice()
    else:
        raise ValueError(f"unknown cell reduction {method!r}; use 'none', 'niggli' or 'lll'")
    m = np.linalg.solve(h, red.matrix.T)  # h @ m = reduced columns
    m_int = np.rint(m).astype(np.int64)
    if np.abs(m - m_int).max() > 1e-4 or round(abs(np.linalg.det(m_int))) != 1:
        raise ValueError("cell reduction did not produce a unimodular integer basis change")
    return m_int


def reduce_lattice(lattice: np.ndarray, method: CellReduction = "niggli") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(L M, M)``: the reduced lattice (columns) and the integer basis change."""
    lat = _check_lattice(lattice)
    m = reduction_matrix(lat, method)
    return lat @ m, m


def canonicalize(structure, reduction: CellReduction = "none"):  # noqa: ANN001, ANN201
    """Return a copy of a pymatgen ``Structure`` rotated into the canonical orientation (lattice ``H``).

    Fractional coordinates are unchanged (with ``reduction`` they are re-expressed in the reduced basis); the
    Cartesian frame is rotated by ``Fᵀ`` so the new lattice vectors are the columns of ``H``.
    """
    from pymatgen.core import Lattice, Structure

    lat_cols = structure.lattice.matrix.T
    m = reduction_matrix(lat_cols, reduction)
    lat_cols = lat_cols @ m
    frame, sym = polar_frame(lat_cols)
    cart = structure.cart_coords @ frame  # rows: (Fᵀ x)ᵀ
    return Structure(
        Lattice(sym.T),
        structure.species_and_occu,
        cart,
        coords_are_cartesian=True,
        site_properties=structure.site_properties or None,
    )
