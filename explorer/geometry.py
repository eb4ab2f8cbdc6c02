"""Pure-numpy geometry used by the explorer: rotations, rotated structures, tensor summaries, ellipsoid meshes.

Conventions: Cartesian vectors are columns, a rotation ``R`` acts as ``x → R x``; a rank-2 tensor transforms as
``ε → R ε Rᵀ``. pymatgen stores lattice vectors as *rows*, so rotating a crystal maps ``Lattice.matrix → M Rᵀ``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from goectp.tensor_stats import anisotropy_ratio, refractive_indices
from goectp.testing import random_orthogonal
from goectp.testing import rotate_structure as rotate_structure  # re-exported: the one copy


# ---------------------------------------------------------------------------------------------------- rotations
def axis_from_angles(theta_deg: float, phi_deg: float) -> np.ndarray:
    """Unit vector with polar angle ``θ`` (from +z) and azimuth ``φ`` (from +x), both in degrees. Shape ``(3,)``."""
    t, p = math.radians(theta_deg), math.radians(phi_deg)
    return np.array([math.sin(t) * math.cos(p), math.sin(t) * math.sin(p), math.cos(t)])


def axis_angle_matrix(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    r"""Rodrigues' rotation matrix ``R = I + sin ω K + (1 - cos ω) K²`` about the unit ``axis``, ``(3, 3)``."""
    n = np.asarray(axis, dtype=np.float64)
    norm = np.linalg.norm(n)
    if norm < 1e-12:
        raise ValueError("rotation axis must be a non-zero vector")
    n = n / norm
    w = math.radians(angle_deg)
    k = np.array([[0.0, -n[2], n[1]], [n[2], 0.0, -n[0]], [-n[1], n[0], 0.0]])
    return np.eye(3) + math.sin(w) * k + (1.0 - math.cos(w)) * (k @ k)


def mirror_matrix(normal: np.ndarray) -> np.ndarray:
    """Reflection through the plane with unit ``normal``: ``M = I - 2 n nᵀ`` (``det M = -1``)."""
    n = np.asarray(normal, dtype=np.float64)
    n = n / np.linalg.norm(n)
    return np.eye(3) - 2.0 * np.outer(n, n)


def orthogonal_matrix(theta_deg: float, phi_deg: float, angle_deg: float, reflect: bool = False) -> np.ndarray:
    """The explorer's ``R``: rotation by ``angle`` about the axis ``(θ, φ)``, then (optionally) the mirror ⟂ axis."""
    axis = axis_from_angles(theta_deg, phi_deg)
    rot = axis_angle_matrix(axis, angle_deg)
    return mirror_matrix(axis) @ rot if reflect else rot


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation drawn uniformly from SO(3): :func:`goectp.testing.random_orthogonal` (consumes ``rng``)."""
    return random_orthogonal(rng, reflection=False)


def rotation_to_axis_angle(rot: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`orthogonal_matrix` (proper rotations): ``(θ, φ, ω)`` in degrees with ``ω`` in [0, 180]."""
    rot = np.asarray(rot, dtype=np.float64)
    cos_w = np.clip((np.trace(rot) - 1.0) / 2.0, -1.0, 1.0)
    w = math.acos(cos_w)
    if w < 1e-9:
        return 0.0, 0.0, 0.0
    if math.pi - w < 1e-6:  # 180°: axis from the symmetric part R = 2 n nᵀ - I
        m = (rot + np.eye(3)) / 2.0
        n = m[:, int(np.argmax(np.diag(m)))]
    else:
        n = np.array([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    n = n / np.linalg.norm(n)
    theta = math.degrees(math.acos(np.clip(n[2], -1.0, 1.0)))
    phi = math.degrees(math.atan2(n[1], n[0])) % 360.0
    return theta, phi, math.degrees(w)


# ---------------------------------------------------------------------------------------------------- tensors
@dataclass
class TensorSummary:
    """Eigen-decomposition of a symmetric ``(3, 3)`` tensor and the derived scalars shown by the explorer.

    - ``eigenvalues`` ascending ``(3,)``, ``eigenvectors`` ``(3, 3)`` with eigenvector ``i`` in column ``i``;
    - ``eps_mean`` ``ε̄ = tr(ε)/3`` (the mean eigenvalue);
    - ``anisotropy`` ``α = λmax/λmin`` (``inf`` when ``λmin ≤ 0``, the one convention of
      :mod:`goectp.tensor_stats`; ``positive_definite`` is then False).
    """

    tensor: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    eps_mean: float
    anisotropy: float

    @property
    def positive_definite(self) -> bool:
        return bool(self.eigenvalues[0] > 0)

    def refractive_indices(self) -> np.ndarray:
        """``n_i = √λ_i``, ascending: :func:`goectp.tensor_stats.refractive_indices` (``λ < 0 → n = 0``)."""
        return refractive_indices(self.tensor)


def summarize_tensor(tensor: np.ndarray) -> TensorSummary:
    """Symmetrise ``(ε + εᵀ)/2`` and return its :class:`TensorSummary`."""
    t = np.asarray(tensor, dtype=np.float64)
    if t.shape != (3, 3):
        raise ValueError(f"tensor must be 3x3, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("tensor contains NaN or infinite values")
    sym = 0.5 * (t + t.T)
    lam, vec = np.linalg.eigh(sym)
    aniso = float(anisotropy_ratio(lam)[0])
    return TensorSummary(sym, lam, vec, float(lam.mean()), aniso)


# ---------------------------------------------------------------------------------------------------- ellipsoid
@dataclass
class Ellipsoid:
    r"""Ellipsoid of a symmetric tensor: ``{c + A u : |u| = 1}`` with ``A = V diag(s) Vᵀ``.

    ``axes`` ``(3, 3)``: unit principal axes (eigenvectors) as columns; ``semi_axes`` ``(3,)``: ``s_i = k |λ_i|``
    with one common factor ``k``; ``vertices``/``normals`` ``(P, 3)``; ``faces`` ``(T, 3)`` vertex indices.
    Every vertex satisfies ``(x - c)ᵀ A⁻² (x - c) = 1``.
    """

    center: np.ndarray
    axes: np.ndarray
    semi_axes: np.ndarray
    eigenvalues: np.ndarray
    vertices: np.ndarray = field(repr=False)
    normals: np.ndarray = field(repr=False)
    faces: np.ndarray = field(repr=False)


def _unit_sphere(n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray]:
    """Latitude–longitude mesh of the unit sphere: vertices ``(P, 3)`` and triangles ``(T, 3)``."""
    theta = np.linspace(0.0, np.pi, n_lat + 1)
    phi = np.linspace(0.0, 2.0 * np.pi, n_lon, endpoint=False)
    tt, pp = np.meshgrid(theta, phi, indexing="ij")
    verts = np.stack([np.sin(tt) * np.cos(pp), np.sin(tt) * np.sin(pp), np.cos(tt)], axis=-1).reshape(-1, 3)
    faces = []
    for i in range(n_lat):
        for j in range(n_lon):
            a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
            c, d = a + n_lon, b + n_lon
            if i > 0:
                faces.append((a, c, b))  # counter-clockwise seen from outside
            if i < n_lat - 1:
                faces.append((b, c, d))
    return verts, np.asarray(faces, dtype=np.int64)


def ellipsoid_geometry(
    tensor: np.ndarray, center: np.ndarray | None = None, size: float = 1.0, resolution: int = 18
) -> Ellipsoid:
    """Mesh of the tensor ellipsoid: principal axes = eigenvectors, semi-axes ``∝ |eigenvalues|``.

    Args:
        tensor: symmetric ``(3, 3)``.
        center: ``(3,)`` centre (default origin).
        size: length of the largest semi-axis (so ``k = size / max|λ|``).
        resolution: number of latitude rings (longitudes = 2x).
    """
    summary = summarize_tensor(tensor)
    lam, vec = summary.eigenvalues, summary.eigenvectors
    biggest = float(np.abs(lam).max())
    if biggest == 0.0:
        raise ValueError("cannot draw the ellipsoid of a zero tensor")
    semi = size * np.abs(lam) / biggest
    semi = np.maximum(semi, 1e-3 * size)  # keep a visible, invertible shape for (near-)zero eigenvalues
    c = np.zeros(3) if center is None else np.asarray(center, dtype=np.float64)
    shape = vec @ np.diag(semi) @ vec.T
    inv_shape = vec @ np.diag(1.0 / semi) @ vec.T
    sphere, faces = _unit_sphere(resolution, 2 * resolution)
    verts = sphere @ shape.T + c
    normals = sphere @ inv_shape.T  # normal of {A u} at A u is A⁻ᵀ u
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return Ellipsoid(c, vec, semi, lam, verts, normals, faces)
