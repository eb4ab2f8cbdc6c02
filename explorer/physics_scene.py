"""3D views of the physics term (no Panel): Born charges as ellipsoids per atom, and a phonon mode animated.

Both draw the canonical primitive cell the physics refers to (:attr:`goectp.physics.predict.IonicPhysics.cell`: its
site order is that of the charges and the modes), its atoms plus their images on the cell faces, with the same
camera as the structure view (:data:`explorer.scene.CAMERA`) and the vendored 3Dmol.js only.

- :func:`born_document`: per atom the ellipsoid of the symmetric part of Z* (principal axes = its eigenvectors,
  semi-axes ∝ |principal values|, one scale for all atoms), blue where tr Z* > 0, red where tr Z* < 0, and its
  principal axes as sticks coloured by the sign of each principal value.
- :func:`mode_document`: the cell displaced along the mode's pattern ``u_i = e_m,i / √M_i`` (scaled so that the
  largest atomic displacement is ``amplitude`` Å) in :data:`N_FRAMES` frames, ``x + sin(φ) u`` for φ from −π/2 to
  π/2, played back and forth by 3Dmol's multi-frame animation; static arrows show ``u`` from the rest positions.
"""

from __future__ import annotations

import numpy as np

from explorer.geometry import ellipsoid_geometry
from explorer.scene import CAMERA, atom_radius, cell_edges, viewer_document

AMPLITUDE = 0.3  # Å: the largest atomic displacement of the animated mode
N_FRAMES = 13
FRAME_INTERVAL_MS = 90
POSITIVE, NEGATIVE = "#2b6cb0", "#c53030"  # tr Z* > 0 (cation-like) / < 0 (anion-like)
POSITIVE_AXIS, NEGATIVE_AXIS = "#1a365d", "#742a2a"
ARROW_COLOR = "#2f855a"
#: appended to the document: what the view holds, read by the browser test
_MARKERS = """<script>
$3Dmolpromise.then(function() {
  var v = window.goectpViewer;
  if (!v) return;
  document.body.dataset.frames = String(v.getNumFrames());
  document.body.dataset.shapes = String(v.shapes ? v.shapes.length : 0);
  document.body.dataset.animated = v.isAnimated() ? '1' : '0';
  document.body.dataset.kind = '%s';
});
</script>"""


def drawn_sites(cell, boundary_tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """``(site [D], cartesian [D, 3])``: every site of ``cell`` wrapped into it, plus its images on the faces."""
    lattice = cell.lattice.matrix
    sites, fracs = [], []
    for i, f in enumerate(np.mod(cell.frac_coords, 1.0)):
        options = [[0.0] + ([1.0] if x < boundary_tol else [-1.0] if x > 1 - boundary_tol else []) for x in f]
        for dx in options[0]:
            for dy in options[1]:
                for dz in options[2]:
                    sites.append(i)
                    fracs.append(f + np.array([dx, dy, dz]))
    return np.asarray(sites, int), np.asarray(fracs) @ lattice


def mode_displacements(eigenvector: np.ndarray, masses: np.ndarray, amplitude: float = AMPLITUDE) -> np.ndarray:
    """``[N, 3]`` displacement pattern ``e_m,i / √M_i`` of a mass-weighted eigenvector, largest atom = ``amplitude``."""
    u = np.asarray(eigenvector, float) / np.sqrt(np.asarray(masses, float))[:, None]
    biggest = float(np.linalg.norm(u, axis=1).max())
    return u * (amplitude / biggest) if biggest > 0 else u


def frame_phases(n_frames: int = N_FRAMES) -> np.ndarray:
    """``sin φ`` for ``n_frames`` phases φ evenly from −π/2 to π/2 (played back and forth: a full oscillation)."""
    return np.sin(np.linspace(-np.pi / 2, np.pi / 2, n_frames))


def mode_frames(positions: np.ndarray, sites: np.ndarray, u: np.ndarray, n_frames: int = N_FRAMES) -> np.ndarray:
    """``[F, D, 3]``: the drawn atoms ``positions`` (of ``sites``) displaced by ``sin φ · u`` in each frame."""
    return positions[None] + frame_phases(n_frames)[:, None, None] * u[sites][None]


def _xyz(v: np.ndarray) -> dict[str, float]:
    w = CAMERA @ np.asarray(v, float)
    return {"x": round(float(w[0]), 4), "y": round(float(w[1]), 4), "z": round(float(w[2]), 4)}


def _xyz_block(symbols: list[str], positions: np.ndarray, title: str) -> str:
    screen = np.asarray(positions, float) @ CAMERA.T
    return "\n".join(
        [str(len(symbols)), title] + [f"{s} {p[0]:.4f} {p[1]:.4f} {p[2]:.4f}" for s, p in zip(symbols, screen)]
    )


def _base_view(cell, js_url: str, symbols: list[str], blocks: list[str]):
    import py3Dmol

    view = py3Dmol.view(width="100%", height="100%", js=js_url)
    if len(blocks) == 1:
        view.addModel(blocks[0], "xyz")
    else:
        view.addModelsAsFrames("\n".join(blocks), "xyz")
    for symbol in sorted(set(symbols)):
        view.setStyle(
            {"elem": symbol}, {"sphere": {"radius": round(0.7 * atom_radius(symbol), 3), "colorscheme": "Jmol"}}
        )
    for a, b in cell_edges(cell.lattice.matrix):
        view.addLine({"start": _xyz(a), "end": _xyz(b), "color": "#555555"})
    return view


def _finish(view, kind: str, script: str, js_url: str | None, title: str) -> str:
    view.zoomTo()
    document = viewer_document(view, script=script, js_url=js_url, title=title)
    return document.replace("</body></html>", _MARKERS % kind + "</body></html>")


def _min_distance(positions: np.ndarray) -> float:
    if len(positions) < 2:
        return 2.0
    d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    return float(d[np.triu_indices(len(positions), 1)].min())


def born_document(cell, born: np.ndarray, script: str = "inline", js_url: str | None = None) -> str:
    """Standalone HTML: the cell with one Z* ellipsoid per drawn atom (see the module docstring)."""
    sites, positions = drawn_sites(cell)
    symbols = [cell[int(i)].specie.symbol for i in sites]
    view = _base_view(cell, js_url or "inline", symbols, [_xyz_block(symbols, positions, "Born charges")])
    sym = 0.5 * (born + born.transpose(0, 2, 1))
    biggest = float(np.abs(np.linalg.eigvalsh(sym)).max()) if len(sym) else 0.0
    scale = 0.45 * _min_distance(positions) / biggest if biggest > 0 else 0.0
    for site, center in zip(sites, positions):
        z = sym[site]
        if scale == 0.0 or not np.abs(z).max() > 0:
            continue
        lam = np.linalg.eigvalsh(z)
        ell = ellipsoid_geometry(z, center=center, size=scale * float(np.abs(lam).max()), resolution=10)
        view.addCustom(
            {
                "vertexArr": [_xyz(p) for p in ell.vertices],
                "normalArr": [_xyz(n) for n in ell.normals],
                "faceArr": [int(i) for i in ell.faces.ravel()],
                "color": POSITIVE if np.trace(z) > 0 else NEGATIVE,
                "opacity": 0.55,
            }
        )
        for k in range(3):
            half = ell.axes[:, k] * ell.semi_axes[k]
            view.addCylinder(
                {
                    "start": _xyz(center - half),
                    "end": _xyz(center + half),
                    "radius": 0.03,
                    "color": POSITIVE_AXIS if ell.eigenvalues[k] > 0 else NEGATIVE_AXIS,
                }
            )
    return _finish(view, "born", script, js_url, "GoeCTP Explorer: Born charges")


def mode_document(
    cell,
    u: np.ndarray,
    n_frames: int = N_FRAMES,
    script: str = "inline",
    js_url: str | None = None,
    interval_ms: int = FRAME_INTERVAL_MS,
) -> str:
    """Standalone HTML: the cell moving along the displacement pattern ``u`` ``[N, 3]`` (see the module docstring)."""
    sites, positions = drawn_sites(cell)
    symbols = [cell[int(i)].specie.symbol for i in sites]
    frames = mode_frames(positions, sites, u, n_frames)
    blocks = [_xyz_block(symbols, f, f"frame {k}") for k, f in enumerate(frames)]
    view = _base_view(cell, js_url or "inline", symbols, blocks)
    biggest = float(np.linalg.norm(u, axis=1).max()) if len(u) else 0.0
    for site, start in zip(sites, positions):
        step = 2.5 * u[site]
        if biggest > 0 and np.linalg.norm(u[site]) > 0.05 * biggest:
            view.addArrow(
                {"start": _xyz(start), "end": _xyz(start + step), "radius": 0.05, "color": ARROW_COLOR, "mid": 0.75}
            )
    view.animate({"loop": "backAndForth", "interval": int(interval_ms)})
    return _finish(view, "mode", script, js_url, "GoeCTP Explorer: phonon mode")
