"""3D scenes of crystals (atoms, bonds, unit cell, frame axes, tensor ellipsoid) rendered with py3Dmol, offline.

A :class:`Scene` is plain data (positions, colours, radii). :func:`structure_scene` builds one in pure Python;
:func:`crystal_toolkit_scene` converts crystal-toolkit's JSON scene instead (imported lazily: importing
crystal_toolkit changes how pymatgen objects display in Jupyter). :func:`scene_view` turns a scene into a
``py3Dmol.view`` and :func:`viewer_document` into a standalone HTML document whose 3Dmol.js comes either from a
local URL (``panel serve``) or inlined from the npm package (notebooks, HTML export) — never from a CDN.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explorer.geometry import Ellipsoid
from explorer.paths import THREEDMOL_JS
from goectp.viz import AXIS_COLORS as AXIS_COLORS  # re-exported: the one copy
from goectp.viz import cell_edges, element_color

BOND_TOLERANCE = 1.1  # bond if d < 1.1 (r_cov,i + r_cov,j)


@functools.lru_cache(maxsize=1)
def _covalent_radii() -> dict[str, float]:
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius

    return dict(CovalentRadius.radius)


def covalent_radius(symbol: str) -> float:
    return _covalent_radii().get(symbol, 1.5)


@dataclass
class Scene:
    """Everything the 3D view draws, in Cartesian Å."""

    atoms: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (element, position)
    bonds: list[tuple[np.ndarray, np.ndarray, str]] = field(default_factory=list)  # half-bond segments + colour
    cell_edges: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    arrows: list[tuple[np.ndarray, np.ndarray, str, str]] = field(default_factory=list)  # start, end, colour, label
    ellipsoid: Ellipsoid | None = None
    ellipsoid_color: str = "#ff7f0e"
    title: str = ""

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)


def structure_scene(
    structure,
    bonds: bool = True,
    boundary_tol: float = 1e-3,
    bond_tolerance: float = BOND_TOLERANCE,
    bond_margin: float = 0.02,
) -> Scene:
    """Pure-Python scene: atoms in the cell plus their images on the cell faces, covalent bonds, cell edges.

    A bond ``i–j`` is drawn when ``d < bond_tolerance (r_i + r_j)`` (covalent radii; no metal–metal bonds in
    compounds) as two half bonds, each in its atom's colour, from each drawn atom up to the bond midpoint; half
    bonds whose midpoint lies outside the cell (by more than ``bond_margin``, fractional) are left out.
    """
    from pymatgen.core import Structure

    lat = structure.lattice.matrix
    frac = np.mod(structure.frac_coords, 1.0)
    symbols = [site.specie.symbol for site in structure]
    drawn_site, drawn_frac = [], []
    for i, f in enumerate(frac):
        options = []
        for x in f:
            opts = [0.0]
            if x < boundary_tol:
                opts.append(1.0)
            elif x > 1.0 - boundary_tol:
                opts.append(-1.0)
            options.append(opts)
        for dx in options[0]:
            for dy in options[1]:
                for dz in options[2]:
                    drawn_site.append(i)
                    drawn_frac.append(f + np.array([dx, dy, dz]))
    drawn_cart = np.asarray(drawn_frac) @ lat
    scene = Scene(
        atoms=[(symbols[i], p) for i, p in zip(drawn_site, drawn_cart)], cell_edges=[(a, b) for a, b in cell_edges(lat)]
    )
    if not bonds:
        return scene
    radii = np.array([covalent_radius(s) for s in symbols])
    wrapped = Structure(structure.lattice, structure.species, frac)
    cutoff = float(bond_tolerance * 2 * radii.max())
    centers, points, images, dist = wrapped.get_neighbor_list(cutoff, exclude_self=True)
    keep = (dist > 1e-6) & (dist < bond_tolerance * (radii[centers] + radii[points]))
    metal = np.array([site.specie.is_metal for site in structure])
    if not metal.all():  # in compounds, draw no metal–metal contacts (covalent radii of s-block metals are large)
        keep &= ~(metal[centers] & metal[points])
    centers, points, images = centers[keep], points[keep], images[keep]
    vectors = (frac[points] + images - frac[centers]) @ lat  # centre → neighbour image
    by_site: dict[int, list[np.ndarray]] = {}
    for c, v in zip(centers, vectors):
        by_site.setdefault(int(c), []).append(v)
    inv_lat = np.linalg.inv(lat)
    for i, p in zip(drawn_site, drawn_cart):
        for v in by_site.get(i, []):
            mid = p + 0.5 * v
            mid_frac = mid @ inv_lat
            if np.all(mid_frac > -bond_margin) and np.all(mid_frac < 1.0 + bond_margin):  # no hair outside the cell
                scene.bonds.append((p, mid, element_color(symbols[i])))
    return scene


def crystal_toolkit_scene(structure) -> Scene:
    """Scene from crystal-toolkit's ``Structure.get_scene()`` JSON (spheres, cylinders, lines). Lazy import."""
    import crystal_toolkit  # noqa: F401 - registers Structure.get_scene (and changes pymatgen's Jupyter display)

    data = structure.get_scene().to_json()
    scene = Scene()

    def walk(node: dict) -> None:
        kind = node.get("type")
        if kind == "spheres":
            label = str(node.get("tooltip", "X")).split()[0]
            for pos in node["positions"]:
                scene.atoms.append((label, np.asarray(pos, dtype=float)))
        elif kind == "cylinders":
            for a, b in node["positionPairs"]:
                scene.bonds.append((np.asarray(a, float), np.asarray(b, float), node.get("color", "#888888")))
        elif kind == "lines":
            pts = node["positions"]
            for a, b in zip(pts[::2], pts[1::2]):
                scene.cell_edges.append((np.asarray(a, float), np.asarray(b, float)))
        for child in node.get("contents", []) or []:
            if isinstance(child, dict):
                walk(child)

    walk(data)
    return scene


def _camera_rotation() -> np.ndarray:
    """Fixed lab → screen rotation (screen: x right, y up, z towards the viewer): lab z points up, the view is
    slightly oblique. Applied to every coordinate, so a rotated crystal really turns on the screen."""
    from explorer.geometry import axis_angle_matrix

    ex, ey = np.eye(3)[0], np.eye(3)[1]
    return axis_angle_matrix(ex, 12.0) @ axis_angle_matrix(ey, -32.0) @ axis_angle_matrix(ex, -90.0)


CAMERA = _camera_rotation()


def _xyz(v: np.ndarray) -> dict[str, float]:
    w = CAMERA @ np.asarray(v, dtype=float)
    return {"x": round(float(w[0]), 5), "y": round(float(w[1]), 5), "z": round(float(w[2]), 5)}


def _xyz_list(points: np.ndarray, digits: int = 4) -> list[dict[str, float]]:
    """Vectorised :func:`_xyz` for ``(P, 3)`` arrays (the ellipsoid mesh)."""
    rows = np.round(np.asarray(points, dtype=float) @ CAMERA.T, digits).tolist()
    return [{"x": x, "y": y, "z": z} for x, y, z in rows]


def atom_radius(symbol: str) -> float:
    """Drawn sphere radius (Å): grows gently with the covalent radius, so big cations do not hide the cell."""
    return 0.22 + 0.2 * covalent_radius(symbol)


def scene_view(
    scene: Scene,
    js_url: str = "3Dmol-min.js",
    width: str = "100%",
    height: str = "100%",
    bond_radius: float = 0.1,
    ellipsoid_opacity: float = 0.75,
):
    """Build a ``py3Dmol.view`` drawing ``scene`` (atoms as a model so that ``zoomTo`` frames the crystal)."""
    import py3Dmol

    view = py3Dmol.view(width=width, height=height, js=js_url)
    if scene.atoms:
        lines = [str(len(scene.atoms)), scene.title or "structure"]
        screen = np.asarray([p for _, p in scene.atoms]) @ CAMERA.T
        lines += [f"{s} {p[0]:.5f} {p[1]:.5f} {p[2]:.5f}" for (s, _), p in zip(scene.atoms, screen)]
        view.addModel("\n".join(lines), "xyz")
        for symbol in sorted({s for s, _ in scene.atoms}):
            view.setStyle(
                {"elem": symbol}, {"sphere": {"radius": round(atom_radius(symbol), 3), "colorscheme": "Jmol"}}
            )
    for a, b, color in scene.bonds:
        view.addCylinder(
            {"start": _xyz(a), "end": _xyz(b), "radius": bond_radius, "color": color, "fromCap": 1, "toCap": 0}
        )
    for a, b in scene.cell_edges:
        view.addLine({"start": _xyz(a), "end": _xyz(b), "color": "#555555", "dashed": False})
    for a, b, color, label in scene.arrows:
        view.addArrow(
            {"start": _xyz(a), "end": _xyz(b), "radius": 0.07, "color": color, "radiusRatio": 2.2, "mid": 0.85}
        )
        if label:
            view.addLabel(
                label,
                {
                    "position": _xyz(b + 0.12 * (b - a)),
                    "fontSize": 13,
                    "fontColor": color,
                    "backgroundOpacity": 0.0,
                    "inFront": True,
                },
            )
    ell = scene.ellipsoid
    if ell is not None:
        view.addCustom(
            {
                "vertexArr": _xyz_list(ell.vertices),
                "normalArr": _xyz_list(ell.normals, digits=3),
                "faceArr": [int(i) for i in ell.faces.ravel()],
                "color": scene.ellipsoid_color,
                "opacity": ellipsoid_opacity,
            }
        )
        for i in range(3):  # principal axes through the ellipsoid, in the order of the eigenvalues
            half = ell.axes[:, i] * ell.semi_axes[i]
            view.addCylinder(
                {
                    "start": _xyz(ell.center - half),
                    "end": _xyz(ell.center + half),
                    "radius": 0.035,
                    "color": "#7f3b08",
                    "fromCap": 1,
                    "toCap": 1,
                }
            )
    view.zoomTo()
    return view


@functools.lru_cache(maxsize=2)
def _inline_script(path: str, mtime: float) -> str:
    del mtime  # part of the cache key only
    return Path(path).read_text(encoding="utf-8").replace("</script", "<\\/script")


def threedmol_available() -> bool:
    return THREEDMOL_JS.is_file()


#: MSAA costs seconds of CPU per view under software WebGL (SwiftShader, llvmpipe: a browser without a GPU, e.g.
#: headless Chromium on a server) and is nearly free on a GPU: the view asks the browser which renderer it has.
ANTIALIAS_JS = """<script>
function goectpAntialias() {
  try {
    var gl = document.createElement('canvas').getContext('webgl', {antialias: false});
    if (!gl) return false;
    var info = gl.getExtension('WEBGL_debug_renderer_info');
    var renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    var lose = gl.getExtension('WEBGL_lose_context');
    if (lose) lose.loseContext();
    window.goectpRenderer = renderer;
    return !/swiftshader|llvmpipe|softpipe|software/i.test(renderer);
  } catch (e) { return true; }
}
</script>"""
_VIEWER_CONFIG = '{backgroundColor:"white"}'


def viewer_document(
    view,
    script: str = "inline",
    js_url: str | None = None,
    toolbar: bool = True,
    title: str = "GoeCTP Explorer 3D view",
) -> str:
    """Standalone HTML document for a py3Dmol view.

    Args:
        view: a ``py3Dmol.view`` (built with ``js=js_url`` when ``script='url'``).
        script: ``'inline'`` embeds the npm package's 3Dmol-min.js (self-contained file, works in notebooks and
            as a download); ``'url'`` loads it from ``js_url`` (served by the Panel server).
        toolbar: add a "Save PNG" button (``viewer.pngURI()``, in the browser).

    ``document.body.dataset.rendered`` becomes ``"1"`` once 3Dmol.js has drawn the scene.
    """
    if not threedmol_available():
        raise FileNotFoundError(f"3Dmol.js not found at {THREEDMOL_JS}: run ./install.sh")
    body = view._make_html()  # py3Dmol's own HTML: a div and a script that waits for $3Dmolpromise
    if body.count(_VIEWER_CONFIG) != 1:
        raise RuntimeError("py3Dmol's viewer config changed: update explorer/scene.py")
    body = body.replace(_VIEWER_CONFIG, '{backgroundColor:"white",antialias:goectpAntialias()}')
    uid = view.uniqueid
    head = [
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>html,body{margin:0;height:100%;overflow:hidden;font-family:sans-serif}"
        "#tools{position:absolute;right:6px;top:6px;z-index:10}"
        "#tools button{font-size:12px;padding:2px 8px;cursor:pointer}</style>",
        ANTIALIAS_JS,
    ]
    if script == "inline":
        head.append(f"<script>{_inline_script(str(THREEDMOL_JS), THREEDMOL_JS.stat().st_mtime)}</script>")
        head.append("<script>var $3Dmolpromise = Promise.resolve();</script>")
    elif script != "url" or not js_url:
        raise ValueError("script must be 'inline', or 'url' together with js_url")
    tools = ""
    if toolbar:
        tools = '<div id="tools"><button id="save-png" title="Save the current view as PNG">Save PNG</button></div>'
    ready = f"""<script>
$3Dmolpromise.then(function() {{
  var v = window['viewer_{uid}'];
  window.goectpViewer = v;
  var gl = v && v.getRenderer ? v.getRenderer().getContext() : null;
  document.body.dataset.antialias = gl && gl.getContextAttributes().antialias ? '1' : '0';
  document.body.dataset.rendered = v ? '1' : '0';
  var b = document.getElementById('save-png');
  if (b) b.onclick = function() {{
    var a = document.createElement('a'); a.href = v.pngURI(); a.download = 'goectp-structure.png';
    document.body.appendChild(a); a.click(); a.remove();
  }};
}});
</script>"""
    return "<!DOCTYPE html><html><head>" + "".join(head) + "</head><body>" + tools + body + ready + "</body></html>"


def iframe(document: str, height: int = 460, css_class: str = "goectp-3d") -> str:
    """Wrap a document in an ``<iframe srcdoc>`` (scripts in Panel's HTML pane would not run otherwise)."""
    return (
        f'<iframe class="{css_class}" title="3D structure view" srcdoc="{html.escape(document, quote=True)}" '
        f'style="width:100%;height:{height}px;border:1px solid #ddd;border-radius:4px"></iframe>'
    )
