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


def polar_frame_torch(lattice):
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


def _sign(x: float) -> int:
    return 1 if x > 0 else -1


def niggli_matrix(lattice: np.ndarray, tol: float = 1e-5, max_steps: int = 1000) -> np.ndarray:
    """Integer unimodular ``C`` such that ``L C`` is a Niggli-reduced basis (``L`` columns = lattice vectors).

    The numerically stable algorithm of Grosse-Kunstleve, Sauter & Adams (Acta Cryst. A 60, 1 (2004)), steps
    A1-A8 on the metric ``G = Lᵀ L`` with tolerance ``ε = tol · V^{1/3}``, started from pymatgen's LLL basis; every
    step applies an integer matrix ``M`` (``G ← Mᵀ G M``) and ``C`` accumulates them. Unlike pymatgen's
    ``get_niggli_reduced_lattice``, which only returns reduced *parameters* and then searches the lattice for a basis
    matching them to 1° (and may pick a non-reduced basis with angles 90 ± δ), the basis here is the one the
    algorithm produced.
    """
    from pymatgen.core import Lattice

    lat = _check_lattice(lattice)
    eps = tol * abs(np.linalg.det(lat)) ** (1 / 3)
    c = np.asarray(Lattice(lat.T).lll_mapping, dtype=np.int64).T  # L c = LLL basis (columns)
    g = (lat @ c).T @ (lat @ c)

    def apply(m: list[list[int]]) -> None:
        nonlocal c, g
        m_arr = np.array(m, dtype=np.int64)
        c = c @ m_arr
        g = m_arr.T @ g @ m_arr

    for _ in range(max_steps):
        a, b, cc, xi, eta, zeta = g[0, 0], g[1, 1], g[2, 2], 2 * g[1, 2], 2 * g[0, 2], 2 * g[0, 1]
        if a > b + eps or (abs(a - b) <= eps and abs(xi) > abs(eta) + eps):  # A1
            apply([[0, -1, 0], [-1, 0, 0], [0, 0, -1]])
            continue
        if b > cc + eps or (abs(b - cc) <= eps and abs(eta) > abs(zeta) + eps):  # A2
            apply([[-1, 0, 0], [0, 0, -1], [0, -1, 0]])
            continue
        signs = [0 if abs(x) <= eps else _sign(x) for x in (xi, eta, zeta)]
        if signs[0] * signs[1] * signs[2] > 0:  # A3: make all three off-diagonal terms positive
            apply(np.diag([-1 if s < 0 else 1 for s in signs]).tolist())
        else:  # A4: make them all non-positive, fixing the parity with a zero term
            flip = [-1 if s > 0 else 1 for s in signs]
            if flip[0] * flip[1] * flip[2] < 0:
                zero = next((i for i in (2, 1, 0) if signs[i] == 0), None)
                if zero is not None:
                    flip[zero] = -1
            if flip[0] * flip[1] * flip[2] > 0:
                apply(np.diag(flip).tolist())
        a, b, cc, xi, eta, zeta = g[0, 0], g[1, 1], g[2, 2], 2 * g[1, 2], 2 * g[0, 2], 2 * g[0, 1]
        if abs(xi) > b + eps or (abs(xi - b) <= eps and 2 * eta < zeta - eps) or (abs(xi + b) <= eps and zeta < -eps):
            apply([[1, 0, 0], [0, 1, -_sign(xi)], [0, 0, 1]])  # A5
            continue
        if abs(eta) > a + eps or (abs(eta - a) <= eps and 2 * xi < zeta - eps) or (abs(eta + a) <= eps and zeta < -eps):
            apply([[1, 0, -_sign(eta)], [0, 1, 0], [0, 0, 1]])  # A6
            continue
        if (
            abs(zeta) > a + eps
            or (abs(zeta - a) <= eps and 2 * xi < eta - eps)
            or (abs(zeta + a) <= eps and eta < -eps)
        ):
            apply([[1, -_sign(zeta), 0], [0, 1, 0], [0, 0, 1]])  # A7
            continue
        total = xi + eta + zeta + a + b
        if total < -eps or (abs(total) <= eps and 2 * (a + eta) + zeta > eps):  # A8
            apply([[1, 0, 1], [0, 1, 1], [0, 0, 1]])
            continue
        if round(abs(np.linalg.det(c))) != 1:  # pragma: no cover - integer steps keep |det| = 1
            raise ValueError("Niggli reduction produced a non-unimodular basis change")
        return c
    raise ValueError(f"Niggli reduction did not converge in {max_steps} steps (extremely skewed lattice?)")


def reduction_matrix(lattice: np.ndarray, method: CellReduction = "niggli") -> np.ndarray:
    """Integer unimodular ``M`` such that ``L M`` is the reduced basis (``L`` columns = lattice vectors).

    ``M`` is computed from the canonical lattice ``H = sqrt(Lᵀ L)`` snapped to a fine grid, i.e. from the metric
    alone, so it is identical for a crystal and any rotated or reflected copy of it. The reduced basis is unique
    only up to the lattice's automorphisms (at least its overall sign: ``L M`` and ``-L M`` have the same metric).
    """
    if method == "none":
        return np.eye(3, dtype=np.int64)
    _, h = polar_frame(lattice)
    h = _snap(h)
    if method == "niggli":
        return niggli_matrix(h)
    if method == "lll":
        from pymatgen.core import Lattice

        m = np.asarray(Lattice(h.T).lll_mapping, dtype=np.int64).T  # pymatgen rows: lll = mapping @ matrix
        if round(abs(np.linalg.det(m))) != 1:  # pragma: no cover
            raise ValueError("LLL reduction did not produce a unimodular integer basis change")
        return m
    raise ValueError(f"unknown cell reduction {method!r}; use 'none', 'niggli' or 'lll'")


def reduce_lattice(lattice: np.ndarray, method: CellReduction = "niggli") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(L M, M)``: the reduced lattice (columns) and the integer basis change."""
    lat = _check_lattice(lattice)
    m = reduction_matrix(lat, method)
    return lat @ m, m


def canonicalize(structure, reduction: CellReduction = "none"):
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
