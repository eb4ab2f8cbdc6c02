"""Small generated inputs for the explorer's tests and demos (never shipped as results).

:func:`write_demo_screening` writes the three screening files in the format the ScreeningMap reads, from a list of
structures, with random "predictions" clearly marked ``source = 'demo'``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.paths import SCREENING_RESULTS_FILE as RESULTS_FILE
from explorer.paths import SCREENING_STRUCTURES_FILE as STRUCTURES_FILE
from explorer.paths import SCREENING_TRAINING_FILE as TRAINING_FILE

CRYSTAL_SYSTEMS = ("cubic", "tetragonal", "orthorhombic", "hexagonal", "trigonal", "monoclinic", "triclinic")


def example_structures(directory: str | Path) -> list:
    """The example gallery's structures, read by goectp's one reader (no Panel import)."""
    from goectp.structures import structure_from_file

    index = json.loads((Path(directory) / "index.json").read_text())["examples"]
    return [structure_from_file(Path(directory) / e["file"]) for e in index]


def write_demo_screening(
    directory: str | Path, structures: list, n_training: int = 60, seed: int = 0, kappa: float = 1.0
) -> pd.DataFrame:
    """Write ``screening_results.csv``, ``training_set.csv`` and ``top_structures.json.gz`` into ``directory``.

    One candidate per structure (ids ``demo-0``, ``demo-1``, …, sources alternate 'demo-a'/'demo-b'); the last
    candidate is listed in the CSV but deliberately *not* stored in ``top_structures`` (to test that case).
    Returns the results table.
    """
    rng = np.random.default_rng(seed)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, s in enumerate(structures):
        eps = float(rng.uniform(3, 40))
        aniso = float(rng.uniform(1.0, 3.0))
        eps_std, aniso_std = float(rng.uniform(0.1, 3)), float(rng.uniform(0.01, 0.5))
        rows.append(
            {
                "id": f"demo-{i}",
                "formula": s.composition.reduced_formula,
                "source": "demo-a" if i % 2 == 0 else "demo-b",
                "band_gap": float(rng.uniform(0.5, 8)),
                "n_sites": len(s),
                "eps_mean": eps,
                "eps_mean_std": eps_std,
                "anisotropy": aniso,
                "anisotropy_std": aniso_std,
                "score": eps + kappa * eps_std,
            }
        )
    results = pd.DataFrame(rows)
    results.to_csv(out / RESULTS_FILE, index=False)
    training = pd.DataFrame(
        {
            "id": [f"train-{i}" for i in range(n_training)],
            "formula": [f"X{i}O" for i in range(n_training)],
            "band_gap": rng.uniform(0, 9, n_training),
            "eps_mean": rng.uniform(2, 60, n_training),
            "anisotropy": rng.uniform(1, 4, n_training),
            "crystal_system": rng.choice(CRYSTAL_SYSTEMS, n_training),
        }
    )
    training.to_csv(out / TRAINING_FILE, index=False)
    stored = {f"demo-{i}": s.as_dict() for i, s in enumerate(structures[:-1])}
    with gzip.open(out / STRUCTURES_FILE, "wt", encoding="utf-8") as fh:
        json.dump(stored, fh)
    return results


class SpringForceField:
    """Forces of nearest-neighbour springs (constant ``k`` along every bond shorter than ``cutoff``, rest length
    ``r0``): a cheap harmonic stand-in for SevenNet in the physics view's tests and demos (never a result)."""

    name = "springs"
    version = "springs-demo-1"

    def __init__(
        self, k: float = 2.0, cutoff: float = 3.0, r0: float = 2.82, delay: float = 0.0, batch_atoms: int = 256
    ) -> None:
        self.k, self.cutoff, self.r0 = k, cutoff, r0
        #: seconds per displaced cell (to show a computation's progress) and atoms per batch (as SevenNet's)
        self.delay, self.batch_atoms = delay, batch_atoms
        self.calls = 0

    def __call__(self, atoms: list) -> list[np.ndarray]:
        import time

        from ase.neighborlist import neighbor_list

        out = []
        for a in atoms:
            time.sleep(self.delay)
            self.calls += 1
            i, _j, d, vec = neighbor_list("ijdD", a, self.cutoff)
            f = np.zeros((len(a), 3))
            np.add.at(f, i, self.k * (d - self.r0)[:, None] * vec / d[:, None])
            out.append(f)
        return out


def tiny_born_model(charges: dict[int, float], seed: int = 0):
    """An untrained Born-charge model (hidden 16, float64) with isotropic starting charges per atomic number: the
    physics view's tests and demos run on it in milliseconds (its charges mean nothing physically)."""
    import torch

    from goectp.models.born import BornChargeModel

    torch.manual_seed(seed)
    model = BornChargeModel(hidden=16, num_rbf=8).double().eval()
    model.set_charges(charges, scale=0.5)
    return model
