"""Static matplotlib drawings of crystals and rank-2 tensors (notebooks, reports). No Panel/Bokeh, no JavaScript.

A symmetric tensor ``ε`` is drawn as its ellipsoid ``{c + A u : |u| = 1}`` with ``A = V diag(s) Vᵀ``: principal axes
= eigenvectors ``V``, semi-axes ``s_i = k |λ_i|`` with one common factor ``k`` (so the largest is ``size``).
Rotating the tensor as ``ε → R ε Rᵀ`` rotates the ellipsoid rigidly by ``R``; the eigenvalues (its shape) are
unchanged. Conventions as in pymatgen: lattice vectors are the *rows* of ``Lattice.matrix``; Cartesian Å.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: Colours of the lab x, y, z arrows.
AXIS_COLORS = ("#d62728", "#2ca02c", "#1f77b4")
#: Colour of the ellipsoid's principal axes.
PRINCIPAL_AXIS_COLOR = "#7f3b08"


def symmetric_tensor(tensor: Any) -> np.ndarray:
    """``(ε + εᵀ)/2`` of a finite ``(3, 3)`` array; raises ``ValueError`` otherwise."""
    t = np.asarray(tensor, dtype=np.float64)
    if t.shape != (3, 3):
        raise ValueError(f"tensor must be 3x3, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("tensor contains NaN or infinite values")
    return 0.5 * (t + t.T)


def ellipsoid_surface(
    tensor: Any, center: Sequence[float] | None = None, size: float = 1.0, resolution: int = 24
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid ``(X, Y, Z)``, each ``(resolution + 1, 2 resolution + 1)``, of the tensor's ellipsoid (for
    ``Axes3D.plot_surface``). Semi-axes ``∝ |λ_i|``, the largest equal to ``size``.

    Raises:
        ValueError: not a finite 3x3 tensor, or a zero tensor (no ellipsoid).
    """
    lam, vec = np.linalg.eigh(symmetric_tensor(tensor))
    biggest = float(np.abs(lam).max())
    if biggest == 0.0:
        raise ValueError("cannot draw the ellipsoid of a zero tensor")
    semi = np.maximum(size * np.abs(lam) / biggest, 1e-3 * size)
    shape = vec @ np.diag(semi) @ vec.T  # A: unit sphere → ellipsoid
    theta = np.linspace(0.0, np.pi, resolution + 1)
    phi = np.linspace(0.0, 2.0 * np.pi, 2 * resolution + 1)
    tt, pp = np.meshgrid(theta, phi, indexing="ij")
    sphere = np.stack([np.sin(tt) * np.cos(pp), np.sin(tt) * np.sin(pp), np.cos(tt)], axis=-1)  # [.., .., 3]
    pts = sphere @ shape.T + (np.zeros(3) if center is None else np.asarray(center, dtype=np.float64))
    return pts[..., 0], pts[..., 1], pts[..., 2]


def principal_axes(tensor: Any, size: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues ``(3,)`` ascending and the half-axis vectors ``(3, 3)`` (row ``i`` = ``s_i v_i``)."""
    lam, vec = np.linalg.eigh(symmetric_tensor(tensor))
    semi = size * np.abs(lam) / max(float(np.abs(lam).max()), 1e-300)
    return lam, (vec * semi).T


def cell_edges(lattice_rows: Any, origin: Sequence[float] | None = None) -> np.ndarray:
    """The 12 edges ``(12, 2, 3)`` of the parallelepiped spanned by the rows of ``lattice_rows``."""
    lat = np.asarray(lattice_rows, dtype=np.float64)
    o = np.zeros(3) if origin is None else np.asarray(origin, dtype=np.float64)
    edges = []
    for axis in range(3):
        others = [i for i in range(3) if i != axis]
        for i in (0, 1):
            for j in (0, 1):
                start = o + i * lat[others[0]] + j * lat[others[1]]
                edges.append((start, start + lat[axis]))
    return np.asarray(edges)


@functools.lru_cache(maxsize=1)
def _jmol_colors() -> dict[str, str]:
    import pymatgen.vis
    import yaml

    table = yaml.safe_load((Path(pymatgen.vis.__file__).parent / "ElementColorSchemes.yaml").read_text())["Jmol"]
    return {el: "#{:02x}{:02x}{:02x}".format(*rgb) for el, rgb in table.items()}


def element_color(symbol: str) -> str:
    """Jmol colour of an element (grey when unknown)."""
    return _jmol_colors().get(symbol, "#808080")


def set_axes_equal(ax: Any, points: np.ndarray | None = None, margin: float = 0.05) -> None:
    """Equal scaling on a 3D axes, fitted to ``points`` ``(n, 3)`` (default: the current limits)."""
    if points is None:
        limits = np.array([ax.get_xlim3d(), ax.get_ylim3d(), ax.get_zlim3d()])
        lo, hi = limits[:, 0], limits[:, 1]
    else:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
    center, half = (lo + hi) / 2, (1 + margin) * float((hi - lo).max()) / 2
    ax.set_xlim3d(center[0] - half, center[0] + half)
    ax.set_ylim3d(center[1] - half, center[1] + half)
    ax.set_zlim3d(center[2] - half, center[2] + half)
    ax.set_box_aspect((1, 1, 1))


def draw_ellipsoid(
    ax: Any,
    tensor: Any,
    center: Sequence[float] | None = None,
    size: float = 1.0,
    color: str = "#ff7f0e",
    alpha: float = 0.35,
    show_axes: bool = True,
    resolution: int = 20,
) -> None:
    """Draw the tensor ellipsoid (and its principal axes) on a 3D axes."""
    x, y, z = ellipsoid_surface(tensor, center, size, resolution)
    ax.plot_surface(x, y, z, color=color, alpha=alpha, linewidth=0, shade=True)
    if show_axes:
        c = np.zeros(3) if center is None else np.asarray(center, dtype=np.float64)
        _, half = principal_axes(tensor, size)
        for h in half:
            seg = np.stack([c - h, c + h])
            ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], color=PRINCIPAL_AXIS_COLOR, lw=1.5)


def draw_structure(ax: Any, structure: Any, atom_size: float = 60.0, cell_color: str = "0.35") -> np.ndarray:
    """Atoms (Jmol colours, wrapped into the cell) and the unit-cell edges. Returns the drawn points ``(n, 3)``."""
    lat = structure.lattice.matrix
    cart = np.mod(structure.frac_coords, 1.0) @ lat
    colors = [element_color(site.specie.symbol) for site in structure]
    ax.scatter(
        cart[:, 0], cart[:, 1], cart[:, 2], s=atom_size, c=colors, edgecolors="k", linewidths=0.4, depthshade=False
    )
    edges = cell_edges(lat)
    for a, b in edges:
        ax.plot(*np.stack([a, b]).T, color=cell_color, lw=1)
    return np.concatenate([cart, edges.reshape(-1, 3)])


def draw_crystal_and_tensor(
    ax: Any,
    structure: Any,
    tensor: Any | None = None,
    size: float | None = None,
    title: str = "",
    color: str = "#ff7f0e",
    lab_axes: bool = True,
) -> None:
    """The crystal with the tensor ellipsoid at the centre of its cell, on one 3D axes, equal scaling.

    ``size`` (largest semi-axis, Å) defaults to 40 % of the shortest lattice vector.
    """
    pts = draw_structure(ax, structure)
    lat = structure.lattice.matrix
    center = 0.5 * lat.sum(axis=0)
    if tensor is not None:
        size = 0.4 * float(min(structure.lattice.abc)) if size is None else size
        draw_ellipsoid(ax, tensor, center, size, color=color)
    if lab_axes:  # short lab-frame x, y, z arrows at the origin, so that rotations are visible
        length = 0.25 * float(max(structure.lattice.abc))
        for k, col in enumerate(AXIS_COLORS):
            ax.quiver(0, 0, 0, *(length * np.eye(3)[k]), color=col, lw=1, arrow_length_ratio=0.2)
    set_axes_equal(ax, pts)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)


def crystal_tensor_figure(
    structures: Sequence[Any],
    tensors: Sequence[Any | None],
    titles: Sequence[str] = (),
    size: float | None = None,
    panel_inches: float = 3.2,
    colors: Sequence[str] = (),
) -> Any:
    """A row of 3D panels, one per (structure, tensor). Returns the matplotlib ``Figure`` (not shown or closed).

    Uses ``matplotlib.figure.Figure`` directly (no pyplot state, no backend change), so it is safe in scripts,
    servers and notebooks alike; in a notebook, display the returned figure.
    """
    from matplotlib.figure import Figure

    if len(structures) != len(tensors):
        raise ValueError(f"got {len(structures)} structures but {len(tensors)} tensors")
    n = len(structures)
    fig = Figure(figsize=(panel_inches * n, panel_inches))
    for i, (s, t) in enumerate(zip(structures, tensors)):
        ax = fig.add_subplot(1, n, i + 1, projection="3d")
        draw_crystal_and_tensor(
            ax,
            s,
            t,
            size=size,
            title=titles[i] if i < len(titles) else "",
            color=colors[i] if i < len(colors) else "#ff7f0e",
        )
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.9, wspace=0.02)
    return fig
