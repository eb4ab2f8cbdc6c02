r"""Chemical descriptors of the whole crystal, next to CHGNet's per-atom features (``chgnet-descriptors``).

The ε̄ ranking of every graph-network family is limited by the ionic part, and a boosted-tree model on hand-made
descriptors (``benchmarks/experiments/descriptor_blend.py``) ranks ε̄ with errors the networks do not share. This
extractor gives the network the same descriptors as node inputs: for a crystal with descriptor vector
:math:`d \in \mathbb{R}^{115}`,

.. math::
    x_i = \big[\, x_i^{\mathrm{CHGNet}} \;\big\|\; \operatorname{sign}(d) \log(1 + |d|) \,\big] \in \mathbb{R}^{243}

for every atom *i* (the log compresses melting points and masses to the scale of the rest; an undefined entry is 0).

:math:`d` (:func:`crystal_descriptors`) holds, for 18 element properties, the fraction-weighted mean, minimum,
maximum, range and spread over the composition (90); volume per atom, density, number of elements, space group
(spglib, symprec 0.1), packing fraction, shortest and mean nearest-neighbour distance (7); oxidation-state guesses
(found or not, mean and largest \|q\|, mean q², mean q² per volume, largest and smallest cation and mean anion ionic
radius; 8) and the nearest-neighbour shells (coordination number mean/min/max, nearest distance min/mean/spread, mean
shell distance, electronegativity difference to the shell mean/max, spread of the relative nearest distance; 10;
the shortest and mean nearest distance are in both groups, as in the benchmark the layout came from).

Every entry is a property of the infinite crystal, not of the cell: counts are per atom or per formula, distances
come from neighbour lists. So the features stay O(3)-invariant and cell-independent, and the frame average keeps the
model exact. pymatgen's missing data (an ionic radius it lacks, an element without oxidation states) give 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

#: element properties read from pymatgen's periodic table (then 2 oxidation-state and 4 block flags)
ELEMENT_PROPERTIES = (
    "Z", "X", "row", "group", "atomic_mass", "atomic_radius", "average_ionic_radius", "mendeleev_no",
    "molar_volume", "melting_point", "ionization_energy", "electron_affinity",
)  # fmt: skip
DESCRIPTOR_DIM = 115
#: the shell of an atom: neighbours closer than this factor times its nearest distance
SHELL_FACTOR = 1.2
NEIGHBOUR_RADIUS = 6.0  # Å


def descriptor_version() -> str:
    """Part of the feature-cache key: the descriptors change with pymatgen's element data and oxidation guesses."""
    import pymatgen.core

    return f"pymatgen-{getattr(pymatgen.core, '__version__', 'unknown')}-descriptors-v1"


def _number(get) -> float:
    try:
        value = get()
        return float(value) if value is not None else np.nan
    except Exception:  # pymatgen raises for data it lacks: undefined, not an error of the structure
        return np.nan


@cache
def element_row(symbol: str) -> tuple[float, ...]:
    """The 18 per-element numbers the composition statistics are taken over (NaN where pymatgen has none)."""
    from pymatgen.core.periodic_table import Element

    el = Element(symbol)
    oxi = el.common_oxidation_states
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for every property it lacks
        values = [_number(lambda p=p: getattr(el, p)) for p in ELEMENT_PROPERTIES]
    flags = [float(el.is_transition_metal), *(float(el.block == b) for b in "dpf")]
    return (*values, max(oxi, default=np.nan), min(oxi, default=np.nan), *flags)


def _composition_statistics(structure: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    comp = structure.composition.fractional_composition
    symbols = [e.symbol for e in comp]
    w = np.array([comp[s] for s in symbols])
    props = np.array([element_row(s) for s in symbols])
    known = ~np.isnan(props)
    mean = np.nansum(props * w[:, None], 0) / np.maximum(np.sum(w[:, None] * known, 0), 1e-9)
    spread = np.sqrt(np.nansum(w[:, None] * (props - mean) ** 2, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an all-NaN column (no element has the property) stays NaN
        lo, hi = np.nanmin(props, 0), np.nanmax(props, 0)
    return np.concatenate([mean, lo, hi, hi - lo, spread]), w, symbols


def _charges(structure: Any, symbols: list[str], w: np.ndarray, volume: float) -> list[float]:
    from pymatgen.core.periodic_table import Species

    try:  # at most 30 atoms in the reduced formula: bounded work for any input
        guesses = structure.composition.reduced_composition.oxi_state_guesses(max_sites=-30)
    except Exception:
        guesses = ()
    if not guesses:
        return [0.0] + [np.nan] * 7
    q = np.array([guesses[0].get(s, 0.0) for s in symbols])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for every missing ionic radius
        r = np.array([_number(lambda s=s: Species(s, guesses[0].get(s, 0.0)).ionic_radius) for s in symbols])
    cation, anion = r[q > 0], r[q < 0]

    def stat(f, x):
        return float(f(x)) if x.size and not np.isnan(x).all() else np.nan

    mean_q2 = float(np.sum(w * q**2))
    return [
        1.0, float(np.sum(w * abs(q))), float(np.max(abs(q))), mean_q2, mean_q2 / volume,
        stat(np.nanmax, cation), stat(np.nanmin, cation), stat(np.nanmean, anion),
    ]  # fmt: skip


def _shells(structure: Any) -> list[float]:
    cn, nearest, shell_mean, dx = [], [], [], []
    for site, neighbours in zip(structure, structure.get_all_neighbors(NEIGHBOUR_RADIUS)):
        d = np.sort([nb.nn_distance for nb in neighbours]) if neighbours else np.array([NEIGHBOUR_RADIUS])
        shell = [nb for nb in neighbours if nb.nn_distance < SHELL_FACTOR * d[0]]
        cn.append(len(shell))
        nearest.append(d[0])
        shell_mean.append(d[: max(len(shell), 1)].mean())
        dx.append(np.mean([abs(_number(lambda nb=nb: nb.specie.X) - site.specie.X) for nb in shell]) if shell else 0.0)
    cn, nearest, shell_mean, dx = map(np.array, (cn, nearest, shell_mean, dx))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no electronegativity for any neighbour (noble gases): NaN, not a warning
        dx_mean, dx_max = np.nanmean(dx), np.nanmax(dx)
    return [
        cn.mean(), cn.min(), cn.max(), nearest.min(), nearest.mean(), nearest.std(), shell_mean.mean(),
        dx_mean, dx_max, (nearest / nearest.mean()).std(),
    ]  # fmt: skip


def crystal_descriptors(structure: Any) -> np.ndarray:
    """``[115]`` float64 descriptors of an ordered pymatgen ``Structure`` (NaN where undefined); see the module."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    composition, w, symbols = _composition_statistics(structure)
    volume = structure.volume / len(structure)
    radius = np.array([element_row(s)[ELEMENT_PROPERTIES.index("atomic_radius")] for s in symbols])
    space_group = _number(lambda: SpacegroupAnalyzer(structure, symprec=0.1).get_space_group_number())
    shells = _shells(structure)
    cell = [volume, structure.density, len(symbols), space_group, np.nansum(w * 4 / 3 * np.pi * radius**3) / volume]
    out = np.concatenate([composition, cell, shells[3:5], _charges(structure, symbols, w, volume), shells])
    assert out.shape == (DESCRIPTOR_DIM,), out.shape
    return out.astype(np.float64)


def descriptor_inputs(structure: Any) -> np.ndarray:
    """``[115]`` network inputs: ``sign(d) log(1 + |d|)`` of :func:`crystal_descriptors`, undefined entries 0."""
    d = crystal_descriptors(structure)
    return np.nan_to_num(np.sign(d) * np.log1p(np.abs(d)), nan=0.0, posinf=0.0, neginf=0.0)


class ChgnetDescriptorFeatures:
    """Callable: ``structures`` → ``[N_i, 243]`` float32: CHGNet's 128 per-atom features and the crystal's 115
    descriptor inputs (the same row for every atom)."""

    name = "chgnet-descriptors"
    dim = 128 + DESCRIPTOR_DIM

    def __init__(self, chgnet: Any) -> None:
        self.chgnet = chgnet  # the CHGNet extractor (:class:`goectp.features.chgnet.ChgnetFeatures`)
        self.version = f"{self.chgnet.version}-{descriptor_version()}"

    def __call__(self, structures: Sequence[Any]) -> list[np.ndarray]:
        out = []
        for atoms, structure in zip(self.chgnet(structures), structures):
            crystal = np.broadcast_to(descriptor_inputs(structure), (len(atoms), DESCRIPTOR_DIM))
            out.append(np.concatenate([atoms, crystal], axis=1).astype(np.float32))
        return out
