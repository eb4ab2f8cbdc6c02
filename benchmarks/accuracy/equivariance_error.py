"""The equivariance error max |f(RX) − R f(X) Rᵀ| of every backbone and of a shipped ensemble, in float64.

The tests (``tests/test_equivariance.py``) assert it below 1e-5 on random crystals; this prints the size it actually
has: each backbone (small fixed-seed networks, the paper's options and every option together) and the shipped
``default`` and ``fast`` ensembles, on the shipped example crystals, each turned by two proper and two improper random
R with the graph rebuilt from the turned structure.

    python benchmarks/accuracy/equivariance_error.py
"""

from __future__ import annotations

import argparse
import time

import torch

OPTIONS = {
    "paper (input cell, sum pooling)": {"cell_reduction": "none", "pooling": "sum", "symmetrize": False},
    "all options": {"cell_reduction": "niggli", "pooling": "mean", "symmetrize": True, "positive_definite": True},
}


def main() -> None:
    import goectp
    from goectp.registry import assets_dir, load_model
    from goectp.structures import structure_from_file
    from goectp.testing import equivariance_error, random_orthogonal

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--models", nargs="+", default=["default", "fast"], help="shipped ensembles, run as predict runs them"
    )
    p.add_argument("--rotations", type=int, default=4, help="random R per crystal, alternately proper and improper")
    args = p.parse_args()
    torch.set_num_threads(1)
    crystals = {path.stem: structure_from_file(path) for path in sorted((assets_dir() / "examples").glob("*.cif"))}
    rotations = [random_orthogonal(seed, reflection=seed % 2 == 1) for seed in range(args.rotations)]

    def worst(fn) -> float:
        return max(equivariance_error(fn, s, r, batched=True) for s in crystals.values() for r in rotations)

    print(f"{len(crystals)} example crystals x {len(rotations)} R (half of them improper), float64\n")
    print("| network | options | max \\|f(RX) − R f(X) Rᵀ\\| | seconds |")
    print("|---|---|---|---|")
    for variant in ("goectp", "mat", "icom"):
        for name, options in OPTIONS.items():
            torch.manual_seed(0)
            net = goectp.build_model(variant, hidden=32, num_layers=2, num_rbf=32, **options)
            net.set_target_stats(5.0, 5.0)
            net = net.double().eval()
            start = time.perf_counter()
            err = worst(lambda structures, net=net: goectp.predict(structures, model=net))
            print(f"| {variant} (untrained) | {name} | {err:.1e} | {time.perf_counter() - start:.1f} |", flush=True)
    for name in args.models:
        ensemble = load_model(name).double()
        start = time.perf_counter()
        err = worst(lambda structures, ensemble=ensemble: goectp.predict(structures, model=ensemble))
        print(f"| `{name}` (shipped) | as shipped | {err:.1e} | {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
