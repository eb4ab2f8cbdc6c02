"""CGCNN-style element features computed from pymatgen's periodic table.

CGCNN describes each element by one-hot / binned encodings of a few physical properties. We rebuild that idea from
pymatgen's own element data (no downloaded ``atom_init.json``): group, period, block one-hot, and Gaussian-binned
electronegativity, atomic radius, first ionisation energy, electron affinity and molar volume, each with a
"missing" flag. Why not a learned embedding only: the open dielectric set has ~2.7k structures and several elements
appear in fewer than ten of them; physical descriptors let those share statistics with their neighbours in the
periodic table. The model adds a learned linear map on top (and can use a pure embedding instead).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

MAX_Z = 100

_CONTINUOUS = {
    # name: (getter, lo, hi, n_bins)
    "electronegativity": (lambda e: e.X, 0.7, 4.0, 10),
    "atomic_radius": (lambda e: e.atomic_radius, 0.25, 2.7, 10),
    "ionization_energy": (lambda e: e.ionization_energies[0] if e.ionization_energies else None, 3.5, 25.0, 10),
    "electron_affinity": (lambda e: e.electron_affinity, -1.0, 3.7, 10),
    "molar_volume": (lambda e: e.molar_volume, 2.0, 70.0, 10),
}


def _value(getter, el) -> float | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = getter(el)
        v = float(v)
        return v if np.isfinite(v) else None
    except Exception:
        return None


@lru_cache(maxsize=1)
def element_feature_table() -> np.ndarray:
    """``(MAX_Z + 1, D)`` float32 table; row ``Z`` describes element ``Z`` (row 0 is unused zeros)."""
    from pymatgen.core import Element

    rows = [None]
    for z in range(1, MAX_Z + 1):
        el = Element.from_Z(z)
        feats = []
        group = np.zeros(18)
        group[el.group - 1] = 1.0
        period = np.zeros(7)
        period[min(el.row, 7) - 1] = 1.0
        block = np.zeros(4)
        block["spdf".index(el.block)] = 1.0
        feats += [group, period, block]
        for getter, lo, hi, n in _CONTINUOUS.values():
            v = _value(getter, el)
            centers = np.linspace(lo, hi, n)
            width = (hi - lo) / (n - 1)
            enc = np.zeros(n + 1)
            if v is None:
                enc[-1] = 1.0
            else:
                enc[:n] = np.exp(-(((v - centers) / width) ** 2))
            feats.append(enc)
        rows.append(np.concatenate(feats))
    rows[0] = np.zeros_like(rows[1])
    return np.stack(rows).astype(np.float32)


def element_feature_dim() -> int:
    return 18 + 7 + 4 + sum(n + 1 for *_, n in _CONTINUOUS.values())


def element_symbols(numbers: Sequence[int]) -> list[str]:
    """Sorted unique element symbols of atomic numbers."""
    from pymatgen.core.periodic_table import Element

    return sorted({Element.from_Z(int(z)).symbol for z in numbers})
