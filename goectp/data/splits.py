"""Random 80/10/10 splits with recorded seeds, and crystal systems (spglib via pymatgen)."""

from __future__ import annotations

import math

import numpy as np

#: The five split seeds used for every reported number and the shipped ensemble.
SPLIT_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
#: Symmetry tolerance (Å) for crystal-system assignment (same as the data README statistics).
CRYSTAL_SYSTEM_SYMPREC = 0.1
CRYSTAL_SYSTEMS = ("cubic", "hexagonal", "trigonal", "tetragonal", "orthorhombic", "monoclinic", "triclinic")


def random_split(n: int, seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, np.ndarray]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into train/val/test index arrays."""
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return {
        "train": np.sort(perm[:n_train]),
        "val": np.sort(perm[n_train : n_train + n_val]),
        "test": np.sort(perm[n_train + n_val :]),
    }


def split_masks(n: int, seeds: tuple[int, ...] | list[int] = SPLIT_SEEDS) -> dict[str, np.ndarray]:
    """Boolean ``{"train", "val", "test"}`` masks ``[len(seeds), n]`` of the :func:`random_split` of each seed."""
    masks = {part: np.zeros((len(seeds), n), bool) for part in ("train", "val", "test")}
    for i, seed in enumerate(seeds):
        for part, idx in random_split(n, seed).items():
            masks[part][i, idx] = True
    return masks


def crystal_system(structure, symprec: float = CRYSTAL_SYSTEM_SYMPREC) -> str:
    """Crystal system from spglib (``SpacegroupAnalyzer(symprec).get_crystal_system()``); 'triclinic' on failure.

    A ``symprec`` that is not a finite number above 0 is a ``ValueError`` (spglib crashes the process on NaN or a
    negative tolerance)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    if not (isinstance(symprec, (int, float)) and math.isfinite(symprec) and symprec > 0):
        raise ValueError(f"symprec must be a finite tolerance above 0 Å, got {symprec!r}")

    try:
        return SpacegroupAnalyzer(structure, symprec=symprec).get_crystal_system()
    except Exception:
        return "triclinic"
