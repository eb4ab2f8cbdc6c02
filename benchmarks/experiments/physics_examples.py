"""The shipped ``physics`` model on the shipped examples: the default's ε̄, the corrected ε̄, whether the term was
used, the cell-choice drift of the corrected tensor (the file's cell against a 4-times supercell in another
basis: max |Δε| over the components; round-off since the standard cell, :mod:`goectp.physics.standard_cell`), and
the wall time of the physics term for the file's cell (:func:`goectp.physics.predict.ionic_physics`, one thread; the
first row includes loading the force field; with ``GOECTP_CACHE`` pointed at an empty folder nothing is cached).

    GOECTP_CACHE=$(mktemp -d) python benchmarks/experiments/physics_examples.py [--examples MgO_rocksalt ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

EXAMPLES = ["MgO_rocksalt", "ZnO_wurtzite", "TiO2_rutile", "SrTiO3_cubic"]
#: another basis of a 4-times supercell (det 4)
SUPERCELL = [[1, 1, 0], [0, 2, 0], [0, 1, 2]]


def main() -> None:
    import torch

    from goectp.physics.model import PhysicsModel
    from goectp.physics.predict import ionic_physics
    from goectp.structures import load_structures

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", nargs="+", default=EXAMPLES)
    args = p.parse_args()
    torch.set_num_threads(1)
    model = PhysicsModel.load()
    folder = Path(__file__).resolve().parents[2] / "assets" / "examples"
    print(
        "| crystal | atoms | physics term (s) | default ε̄ | physics model ε̄ | term used |"
        " cell-choice drift (max \\|Δε\\|) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.examples:
        s = load_structures(str(folder / f"{name}.cif"))[0]
        start = time.perf_counter()
        ionic_physics(s, model.born, model.config.force_field)
        seconds = time.perf_counter() - start
        big = s.copy()
        big.make_supercell(SUPERCELL)
        a, b = model.predict_summary([s, big])
        drift = np.abs(np.array(a["eps_physics"]) - np.array(b["eps_physics"])).max()
        used = "yes" if a["physics_used"] else f"no ({a['physics_skipped']})"
        default = np.trace(np.array(a["tensor"])) / 3
        print(
            f"| {name} | {len(s)} | {seconds:.1f} | {default:.2f} | {a['eps_physics_mean']:.2f} | {used} |"
            f" {drift:.1e} |"
        )


if __name__ == "__main__":
    main()
