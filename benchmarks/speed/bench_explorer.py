#!/usr/bin/env python
"""Explorer latency: prediction + 3D render of a ≤ 50-atom cell, and one equivariance-check update.

What is timed (server side, the work a browser event triggers; the browser's own drawing is not included):

- **predict + render**: a new structure reaches the 3D viewer → graph, ensemble prediction (cache miss), scene,
  py3Dmol HTML document.
- **load structure (all views)**: a new structure reaches the whole app → tensor panel, equivariance check
  (f and g for X and R X) and viewer.
- **equivariance update**: one rotation slider change → rebuild R X, predict f(R X) and g(R X), and (in the
  viewer's rotated orientation) redraw the crystal with its ellipsoid.

Every repeat uses a freshly strained copy of the cell so no prediction comes from the cache. Medians over the
repeats; the table goes to BENCHMARKS.md under '## Explorer latency' (other sections are kept).

    python benchmarks/speed/bench_explorer.py [--repeats 15] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SECTION = "## Explorer latency"
TARGET_RENDER = 0.5
TARGET_EQUIVARIANCE = 1.0


def strained(structure, rng: np.random.Generator):
    """A copy with a random 0.1 % strain (a new structure for the cache, the same crystal for the eye)."""
    from pymatgen.core import Lattice, Structure

    eps = 1e-3 * rng.normal(size=(3, 3))
    lat = structure.lattice.matrix @ (np.eye(3) + 0.5 * (eps + eps.T))
    return Structure(Lattice(lat), structure.species, structure.frac_coords)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def update_section(path: Path, body: str) -> None:
    """Replace (or append) the '## Explorer latency' section of a Markdown file, keeping the others."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "\n".join(lines[:start] + body.rstrip("\n").splitlines() + [""] + lines[end:]).rstrip("\n") + "\n"
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch BENCHMARKS.md")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--model", default=None, help="shipped model name (default: 'default' if shipped)")
    args = parser.parse_args(argv)

    import torch

    from explorer.equivariance import EquivarianceCheck
    from explorer.loader import DatasetIndex, ExampleGallery, StructureLoader
    from explorer.models import ModelSelector
    from explorer.tensor_view import TensorEllipsoid
    from explorer.viewer import ROTATED, StructureViewer

    load_start = os.getloadavg()
    gallery = ExampleGallery()
    rutile = gallery.structure("TiO2 rutile") * (2, 2, 2)  # 48 atoms
    cells = {
        "TiO2 rutile 2x2x2 (48 atoms)": rutile,
        "CaCO3 calcite (30 atoms)": gallery.structure("CaCO3 calcite"),
        "HfO2 monoclinic (12 atoms)": gallery.structure("HfO2 monoclinic"),
    }
    models = ModelSelector(model_name=args.model) if args.model else ModelSelector()
    if models.is_demo:
        # no trained ensemble shipped yet: time an untrained stand-in of the shipped ensemble's size instead
        # (5 members, the default GoeCTP configuration): the cost does not depend on the weights' values
        from goectp.api import Ensemble, build_model

        proxy = Ensemble([build_model("goectp").eval() for _ in range(5)], [f"proxy{i}" for i in range(5)])
        models = ModelSelector(models={"untrained stand-in: 5 x GoeCTP default config": proxy})
    rng = np.random.default_rng(0)
    print(f"model: {models.description}")

    rows = []
    for label, cell in cells.items():
        viewer = StructureViewer(models=models, script="url")
        viewer.structure = strained(cell, rng)  # warm-up (first call pays one-off costs)
        render = [
            timed(lambda v=viewer, c=cell: setattr(v, "structure", strained(c, rng))) for _ in range(args.repeats)
        ]
        assert viewer.document and viewer.scene.ellipsoid is not None

        loader = StructureLoader(gallery=gallery, dataset=DatasetIndex(Path("/nonexistent")))
        tensor = TensorEllipsoid(models=models)
        check = EquivarianceCheck(models=models)
        app_viewer = StructureViewer(models=models, script="url", orientation=ROTATED)

        def on_structure(*_events, tensor=tensor, check=check, app_viewer=app_viewer, loader=loader) -> None:
            tensor.structure = check.structure = app_viewer.structure = loader.structure

        loader.param.watch(on_structure, ["structure"])
        check.param.watch(lambda e, v=app_viewer: setattr(v, "rotation", e.new), ["rotation"])
        loader.set_structure(strained(cell, rng), label, "python")
        load_all = [
            timed(lambda ld=loader, c=cell, lb=label: ld.set_structure(strained(c, rng), lb, "python"))
            for _ in range(args.repeats)
        ]
        angles = rng.uniform(-180, 180, args.repeats)
        equivariance = [timed(lambda a=a, ck=check: setattr(ck, "angle", float(a))) for a in angles]
        assert check.error_frame < 1e-5, check.error_frame
        rows.append(
            (
                label,
                statistics.median(render),
                statistics.median(load_all),
                statistics.median(equivariance),
                max(render),
                max(equivariance),
                check.error_frame,
                check.error_backbone,
            )
        )

    header = (
        "| cell | predict + render (median) | load structure, all views (median) | equivariance update (median) "
        "| max predict + render | max equivariance update | max abs(f(RX) − R f(X) Rᵀ) | backbone alone |"
    )
    lines = [header, "|" + "---|" * 8]
    for label, r, la, e, rmax, emax, ef, eb in rows:
        lines.append(
            f"| {label} | {r * 1000:.0f} ms | {la * 1000:.0f} ms | {e * 1000:.0f} ms | {rmax * 1000:.0f} ms "
            f"| {emax * 1000:.0f} ms | {ef:.1e} | {eb:.2e} |"
        )
    worst_render = max(r for _, r, *_ in rows)
    worst_eq = max(e for _, _, _, e, *_ in rows)
    verdict = (
        f"Targets: predict + render < {TARGET_RENDER} s — worst median {worst_render:.3f} s "
        f"({'met' if worst_render < TARGET_RENDER else 'MISSED'}, {TARGET_RENDER / worst_render:.1f}x margin); "
        f"equivariance update < {TARGET_EQUIVARIANCE} s — worst median {worst_eq:.3f} s "
        f"({'met' if worst_eq < TARGET_EQUIVARIANCE else 'MISSED'}, "
        f"{TARGET_EQUIVARIANCE / worst_eq:.1f}x margin)."
    )
    load = os.getloadavg()
    context = (
        f"{args.repeats} repeats per cell, each on a freshly strained copy (no cache hits); model: "
        f"{models.description}; torch {torch.__version__}, {models.num_threads} thread(s) per prediction; "
        f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} CPU cores visible, "
        f"load average {load_start[0]:.1f} at the start and {load[0]:.1f} at the end (the cores were shared "
        f"with other jobs when this ran); measured {time.strftime('%Y-%m-%d')}. Server-side time only (the "
        "browser then re-creates the 3D iframe, taking 3Dmol.js from its cache)."
    )
    body = "\n".join(
        [SECTION, "", "Command: `python benchmarks/speed/bench_explorer.py`", "", context, "", *lines, "", verdict]
    )
    print(body)
    if not args.no_write:
        update_section(args.out, body)
        print(f"\nwrote the section to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
