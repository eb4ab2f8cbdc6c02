"""One description per crystal: the idealized primitive cell, and the frames its lattice leaves ambiguous.

The same infinite crystal can be handed over in any unit cell (a → a + b, a supercell, shifted or wrapped atoms) and
with coordinates that are symmetric only up to a tolerance. Two steps make the model's input independent of all that:

1. :func:`canonical_cell` — the crystal's primitive cell made exactly symmetric for the space group found at
   ``symprec``: each atom averaged over its images under the space group (in fractional coordinates, a projection
   that commutes with any change of basis or origin) on the lattice whose metric is averaged over the point group
   (:func:`symmetrized_lattice`: a symmetric map of the input lattice, the same for every basis of the input,
   so the input's orientation is kept). Every description of the crystal gives the same Cartesian crystal (up to a
   translation and the order of the atoms), and a rotated or reflected input gives the rotated or reflected
   crystal, so equivariance is untouched.

2. :func:`frame_operations` — the reduced basis of a lattice is unique only up to the lattice's automorphism group
   ``G_L`` (``-I`` always belongs to it), so the polar frame ``F`` is unique only up to ``F → Q F``, ``Q ∈ G_L``.
   Averaging the prediction over all frames ``Q F`` removes that choice exactly:

       f(X) = 1/|G_L| Σ_{Q ∈ G_L}  (Q F) g((Q F)ᵀ X) (Q F)ᵀ.

   For ``P`` in the crystal's point group ``G_c`` (an exact symmetry of the idealized cell) the term of ``P Q`` is
   ``P (term of Q) Pᵀ``, which the point-group symmetrisation that follows makes equal to the term of ``Q``. So one
   representative per right coset ``G_c Q`` suffices: ``|G_L| / |G_c|`` frames, 1 for most crystals whose lattice
   is no more symmetric than they are, 2 for a polar crystal (``±F``).
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from typing import Any, NamedTuple

import numpy as np

#: Version of the canonical cell's *description* (basis, atom order), part of the graph and feature cache keys:
#: 2 keeps a primitive input's own basis and atom order (1 took spglib's primitive cell's).
CANONICAL_CELL_VERSION = 2

#: Tolerance (Å) for the lattice automorphisms and the exact symmetries of an *idealized* cell: far above its
#: floating-point noise (~1e-14 Å), far below any real distortion.
EXACT_SYMPREC = 1e-6


def _spglib():
    import spglib

    return spglib


def _quiet(fn, *args, **kwargs):
    """Call a spglib function; ``None`` where it finds no symmetry (old and new error handling alike)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return fn(*args, **kwargs)
        except Exception:  # spglib >= 2.8 with the new error handling raises instead of returning None
            return None


def canonical_cell(structure, symprec: float = 0.01, max_rounds: int = 4):
    """The crystal's primitive cell made exactly symmetric, in the input's orientation (see the module docstring).

    Lattice: :func:`symmetrized_lattice` of the primitive cell (the input's own basis when the input is primitive,
    spglib's primitive cell otherwise) under the point group found at ``symprec``
    (spglib's own idealized lattice depends on which input vector it takes the lengths from, ~1e-7 Å apart for
    relaxed structures, so different cells of one crystal would get different lattices).
    Positions: the average of each atom over its images under the space group, in fractional coordinates (a
    projection that commutes with any change of basis or origin, unlike spglib's choice of one representative),
    with each operation's translation refitted to all atoms (see :func:`_orbit_average`).

    Near a tolerance boundary spglib can find a subgroup in one cell of a crystal and the full group in another
    (a structure 0.01 Å from C2/m: P-1 or C2/m depending on where the origin falls). So the symmetrized cell is
    searched again, and again, until its group stops growing; the projections compose (``P_G P_H = P_G`` for
    ``H ⊂ G``), so every route ends at the same crystal, turned back to the input's orientation at the end.
    Whether the group stops growing is decided in numpy (:func:`may_have_more_symmetry`, a more tolerant test
    than spglib's), and spglib is asked again only where it might: one spglib search per structure in the usual
    case of a primitive input. Returns the input unchanged when spglib finds no symmetry dataset (then
    :func:`frame_operations` falls back to the whole automorphism group, which is exact without any symmetry).
    """
    current, order, rounds, input_lattice, group = structure, 0, 0, None, None
    for _ in range(max_rounds):
        step = _symmetrize_once(current, symprec)
        if step is None or step.order <= order:
            break
        input_lattice = step.lattice if input_lattice is None else input_lattice
        current, order, rounds, group = step.cell, step.order, rounds + 1, step
        if not may_have_more_symmetry(current, step.rotations, symprec):
            break  # the usual case: the symmetrized cell has found its group (no spglib call needed to say so)
    if rounds == 0:
        return structure
    # after one round the symmetrizing map is symmetric (C^1/2): the cell is in the input's orientation already
    result = current if rounds == 1 else _turned_like(current, input_lattice)
    # the graph asks for this cell's group next: it is the one just imposed (turning keeps fractional operations)
    remember_symmetry(result, group.rotations, group.translations, symprec)
    return result


_SYMMETRY_CACHE: OrderedDict[tuple, dict | None] = OrderedDict()
_SYMMETRY_LOCK = threading.Lock()


def _symmetry_key(lattice_rows: np.ndarray, frac: np.ndarray, numbers, symprec: float) -> tuple:
    lattice_rows, frac = np.ascontiguousarray(lattice_rows, np.float64), np.ascontiguousarray(frac, np.float64)
    return (lattice_rows.tobytes(), frac.tobytes(), tuple(int(z) for z in numbers), float(symprec))


def _store_symmetry(key: tuple, sym: dict | None) -> dict | None:
    if sym is not None:
        sym = {k: np.array(sym[k]) for k in ("rotations", "translations")}
        for value in sym.values():
            value.setflags(write=False)
    with _SYMMETRY_LOCK:
        _SYMMETRY_CACHE[key] = sym
        _SYMMETRY_CACHE.move_to_end(key)
        while len(_SYMMETRY_CACHE) > 64:
            _SYMMETRY_CACHE.popitem(last=False)
    return sym


def cell_symmetry(lattice_rows: np.ndarray, frac: np.ndarray, numbers, symprec: float) -> dict | None:
    """``spglib.get_symmetry`` (``{"rotations", "translations"}``, read-only arrays) or ``None``, memoised on the
    exact input (the canonical cell's group is stored by :func:`canonical_cell`, which imposed it, so the graph's
    point group costs no second search; spglib is most of the cost of a prediction)."""
    key = _symmetry_key(lattice_rows, frac, numbers, symprec)
    with _SYMMETRY_LOCK:
        if key in _SYMMETRY_CACHE:
            _SYMMETRY_CACHE.move_to_end(key)
            return _SYMMETRY_CACHE[key]
    cell = (np.asarray(lattice_rows, np.float64), np.asarray(frac, np.float64), list(key[2]))
    return _store_symmetry(key, _quiet(_spglib().get_symmetry, cell, symprec=symprec))


def remember_symmetry(structure, rotations: np.ndarray, translations: np.ndarray, symprec: float) -> None:
    """Store a cell's known space group as :func:`cell_symmetry`'s answer for it (as the graph will ask for it)."""
    numbers = [site.specie.Z for site in structure]
    key = _symmetry_key(structure.lattice.matrix, structure.frac_coords, numbers, symprec)
    _store_symmetry(key, {"rotations": rotations, "translations": translations})


def _spglib_cell(structure) -> tuple:
    """``(lattice rows, fractional coordinates in [0, 1), atomic numbers)``: a pymatgen structure as spglib takes it."""
    return structure.lattice.matrix, np.mod(structure.frac_coords, 1.0), [site.specie.Z for site in structure]


class _Round(NamedTuple):
    """One symmetrization: the cell, the order of its group, the input's primitive lattice (columns), the group."""

    cell: Any
    order: int
    lattice: np.ndarray
    rotations: np.ndarray
    translations: np.ndarray


def _symmetrize_once(structure, symprec: float) -> _Round | None:
    """The primitive cell projected onto the space group spglib finds at ``symprec`` (see :class:`_Round`), or
    ``None`` when spglib finds no symmetry or an operation does not close.

    Only in a primitive cell is every point operation an integer matrix. A primitive input (no pure translation
    besides the identity) is used as it is, in its own basis: one spglib search. Otherwise spglib's primitive cell
    (not idealized, not rotated) is searched again.
    """
    from pymatgen.core import Lattice, Structure

    spglib = _spglib()
    lat_rows, frac, numbers = (np.asarray(x) for x in _spglib_cell(structure))
    dataset = _quiet(spglib.get_symmetry_dataset, (lat_rows, frac, numbers), symprec=symprec)
    if dataset is None:
        return None
    if np.all(np.asarray(dataset.rotations) == np.eye(3, dtype=int), axis=(1, 2)).sum() > 1:
        primitive = _quiet(
            spglib.standardize_cell, (lat_rows, frac, numbers), to_primitive=True, no_idealize=True, symprec=symprec
        )
        if primitive is None:
            return None
        lat_rows, frac, numbers = (np.asarray(x) for x in primitive)
        frac = np.mod(frac, 1.0)
        dataset = _quiet(spglib.get_symmetry_dataset, (lat_rows, frac, numbers), symprec=symprec)
        if dataset is None:
            return None
    rotations, translations = np.asarray(dataset.rotations), np.asarray(dataset.translations)
    lat_in = lat_rows.T
    ideal = symmetrized_lattice(lat_in, rotations)  # columns: the idealized lattice, input basis and orientation
    symmetric = _orbit_average(frac, numbers, rotations, translations, lat_in, tol=2 * symprec)
    if symmetric is None:
        return None
    cell = Structure(Lattice(ideal.T), [int(z) for z in numbers], symmetric)
    return _Round(cell, len(rotations), lat_in, rotations, translations)


def may_have_more_symmetry(structure, rotations: np.ndarray, symprec: float, slack: float = 2.0) -> bool:
    """Whether some operation outside ``rotations`` might map ``structure`` onto itself within ``slack · symprec``.

    Candidates: the automorphisms of the lattice (Niggli-reduced basis, metric test at ``slack · symprec``) that are
    not among ``rotations`` (integer, in the structure's basis); each is tried with every translation that takes an
    atom of the rarest element onto an atom of that element, and accepted if every atom then lands within
    ``slack · symprec`` (Å) of an atom of its element. The test is looser than spglib's on purpose: a ``True``
    only costs one more spglib search, which then decides; a ``False`` means spglib would find nothing more.
    """
    from goectp.frame import reduction_matrix

    tol = slack * symprec
    lat_cols = structure.lattice.matrix.T
    basis = reduction_matrix(lat_cols, "niggli")  # a reduced basis keeps the metric test physical
    found = integer_automorphisms(lat_cols @ basis, tol, margin=1.0)
    inv_basis = np.linalg.inv(basis)
    candidates = np.rint(basis @ found @ inv_basis).astype(np.int64)  # the same operations in the cell's basis
    group = np.asarray(rotations, dtype=np.int64)
    known = {w.tobytes() for w in group}
    frac = np.mod(structure.frac_coords, 1.0)
    numbers = np.array([site.specie.Z for site in structure])
    species, counts = np.unique(numbers, return_counts=True)
    rare = np.flatnonzero(numbers == species[np.argmin(counts)])
    for w in candidates:
        if w.tobytes() in known:
            continue  # W g works exactly when W does (g an exact symmetry): one test per coset W G
        known.update(x.tobytes() for x in w @ group)
        images = frac @ w.T  # [N, 3]
        shifts = frac[rare] - images[rare[0]]  # [T, 3]: translations that take atom rare[0] onto a rare atom
        if _any_shift_maps_all_atoms(images, shifts, frac, numbers, lat_cols, tol, first=int(rare[0])):
            return True
    return False


def _any_shift_maps_all_atoms(
    images: np.ndarray,
    shifts: np.ndarray,
    frac: np.ndarray,
    numbers: np.ndarray,
    lat_cols: np.ndarray,
    tol: float,
    first: int = 0,
) -> bool:
    """Whether for some ``t`` in ``shifts [T, 3]`` every ``images[i] + t`` lies within ``tol`` (Å) of an atom of
    ``numbers[i]``'s element. Atoms are checked in blocks of growing size (1, 4, 16, ...), each on the shifts that
    survived the blocks before, so a wrong operation is rejected after a few atoms even in a large cell (``first``:
    the atom the shifts were made from, checked last)."""
    alive = shifts
    order = np.roll(np.arange(len(frac)), -1 - first)  # atom ``first`` (which every shift maps) checked last
    start, size = 0, 1
    while start < len(frac) and len(alive):
        size = min(size, max(1, _ORBIT_CHUNK // (len(alive) * len(frac))))  # [t, b, N, 3]: at most ~10 MB
        block = order[start : start + size]
        diff = images[block][None, :, None, :] + alive[:, None, None, :] - frac[None, None]  # [t, b, N, 3]
        diff -= np.rint(diff)
        dist = np.linalg.norm(diff @ lat_cols.T, axis=-1)  # [t, b, N]
        dist[:, numbers[block][:, None] != numbers[None, :]] = np.inf
        alive = alive[dist.min(axis=2).max(axis=1) <= tol]
        start, size = start + size, size * 4
    return len(alive) > 0


def _turned_like(cell, lat_in: np.ndarray):
    """``cell`` turned by the orthogonal factor of the map that takes ``lat_in`` (the input's primitive lattice,
    columns; the same lattice up to the symmetrizing strain, in any basis) onto ``cell``'s lattice."""
    from pymatgen.core import Lattice, Structure

    lat = cell.lattice.matrix.T
    basis = np.linalg.solve(lat_in, lat)
    unimodular = np.rint(basis)
    if np.abs(basis - unimodular).max() > 0.1 or abs(abs(np.linalg.det(unimodular)) - 1) > 1e-9:
        return cell  # not the same lattice (cannot happen for a strain of a few %): keep the cell as found
    u, _, vt = np.linalg.svd(lat @ np.linalg.inv(unimodular) @ np.linalg.inv(lat_in))
    turn = u @ vt
    return Structure(Lattice((turn.T @ lat).T), cell.species, cell.frac_coords)


def symmetrized_lattice(lat_cols: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """The lattice made exactly invariant under the integer point operations ``W``, in the input's orientation.

    The metric ``G = Lᵀ L`` is averaged over the group, ``G_s = 1/|G| Σ_W Wᵀ G W`` (a projection that commutes with
    any change of basis ``L → L U``, ``W → U⁻¹ W U``), and the lattice with that metric nearest the input is
    ``C^{1/2} L`` with ``C = L⁻ᵀ G_s L⁻¹`` — a symmetric positive-definite Cartesian map that is the same for every
    basis of the input and turns with the input, so rotations and reflections stay exact.
    """
    ws = np.unique(np.asarray(rotations, dtype=np.float64), axis=0)
    metric = lat_cols.T @ lat_cols
    metric_sym = np.einsum("gji,jk,gkl->il", ws, metric, ws) / len(ws)
    inv = np.linalg.inv(lat_cols)
    c = inv.T @ metric_sym @ inv
    c = (c + c.T) / 2
    evals, evecs = np.linalg.eigh(c)
    return (evecs * np.sqrt(evals)) @ evecs.T @ lat_cols


_ORBIT_CHUNK = 400_000  # pairs of atoms x operations handled at once by :func:`_orbit_average`


def _orbit_average(
    frac: np.ndarray,
    numbers: np.ndarray,
    rotations: np.ndarray,
    translations: np.ndarray,
    lat_cols: np.ndarray,
    tol: float,
) -> np.ndarray | None:
    """``x_j ← 1/|G| Σ_g (W_g x_{σ_g⁻¹(j)} + t_g)``, each image taken as the lattice copy nearest ``x_j``.

    spglib's ``t_g`` comes from one pair of atoms, so its noise (the input's distance from exact symmetry) depends on
    the order and cell of the input; it is replaced by the translation that fits all atoms best,
    ``t_g + mean_i (x_σ(i) - W_g x_i - t_g)``, a function of the crystal alone.
    ``None`` when an operation does not map the atoms onto atoms of the same element within ``tol`` (Å).
    """
    n = len(frac)
    total = np.zeros_like(frac)
    other_element = numbers[:, None] != numbers[None, :]
    step = max(1, _ORBIT_CHUNK // (n * n))  # operations per chunk: [g, N, N, 3] arrays of at most ~10 MB
    for start in range(0, len(rotations), step):
        w, t = rotations[start : start + step], translations[start : start + step]
        images = np.einsum("nj,gij->gni", frac, w) + t[:, None, :]  # [g, N, 3]: image of atom i under each op
        diff = images[:, :, None, :] - frac[None, None, :, :]  # [g, i, j, 3]
        diff -= np.rint(diff)
        dist = np.linalg.norm(diff @ lat_cols.T, axis=-1)  # [g, i, j]
        dist[:, other_element] = np.inf
        target = np.argmin(dist, axis=2)  # [g, i]: σ_g(i)
        if np.take_along_axis(dist, target[..., None], 2).max() > tol:
            return None
        if (np.sort(target, axis=1) != np.arange(n)).any():  # each σ_g must be a permutation
            return None
        offset = np.take_along_axis(diff, target[:, :, None, None], 2)[:, :, 0]  # [g, i, 3]: image i minus x_σ(i)
        refit = frac[target] + offset - offset.mean(axis=1, keepdims=True)  # image of i under the refitted t_g
        np.add.at(total, target.reshape(-1), refit.reshape(-1, 3))
    return np.mod(total / len(rotations), 1.0)


def _cartesian(lat_cols: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Integer operations ``W`` (acting on fractional columns) as orthogonal Cartesian ``L W L⁻¹``."""
    cart = lat_cols @ rotations @ np.linalg.inv(lat_cols)
    u, _, vt = np.linalg.svd(cart)  # nearest orthogonal matrix: removes the last floating-point noise
    return u @ vt


def lattice_automorphisms(lat_cols: np.ndarray, symprec: float = EXACT_SYMPREC) -> np.ndarray:
    """The lattice's point group ``G_L`` as Cartesian ``[n, 3, 3]`` (columns of ``lat_cols`` = lattice vectors).

    Integer ``W`` with ``det W = ±1`` that keep the metric ``G = Lᵀ L``, with spglib's tolerance on lengths and angles
    (:func:`_metric_deviation`), found in numpy (:func:`integer_automorphisms`). Where some candidate is within a
    factor of 100 of that tolerance (a lattice symmetric only up to ~``symprec``: never an idealized cell), spglib
    decides, so the group is always spglib's.
    """
    ws = integer_automorphisms(lat_cols, symprec)
    if ws is None:
        sym = _quiet(_spglib().get_symmetry, (lat_cols.T, [[0.0, 0.0, 0.0]], [1]), symprec=symprec)
        if sym is None:  # cannot happen for a valid lattice; -I and I are automorphisms of every lattice
            return np.stack([np.eye(3), -np.eye(3)])
        ws = sym["rotations"]
    return _cartesian(lat_cols, np.unique(ws, axis=0))


def integer_automorphisms(lat_cols: np.ndarray, symprec: float = EXACT_SYMPREC, margin: float = 100.0):
    """``[n, 3, 3]`` integer ``W`` (``det ±1``) with ``Wᵀ G W ≈ G`` within ``symprec``, or ``None`` when a candidate's
    deviation falls between ``symprec / margin`` and ``symprec * margin`` (too close to the tolerance to decide).

    Column ``i`` of ``W`` is a lattice vector as long as basis vector ``i``: every such ``n`` has
    ``|n_j| ≤ |L n| · |row j of L⁻¹|``, so the search box below holds all of them, whatever the basis.
    """
    reach = margin * symprec
    ws, deviation, column_misfit = _candidates(np.ascontiguousarray(lat_cols, np.float64), reach)
    keep = column_misfit <= reach  # the candidates of this tolerance (a memoised search may have used a larger one)
    ws, deviation = ws[keep], deviation[keep]
    if ((deviation > symprec / margin) & (deviation <= symprec * margin)).any():
        return None
    return ws[deviation <= symprec]


_CANDIDATE_CACHE: OrderedDict[bytes, tuple[float, tuple]] = OrderedDict()
#: The most lattice points :func:`_candidates` enumerates (its grid grows with the cube of the cell's length ratio;
#: a cell within :data:`goectp.structure_checks.MAX_CELL_ASPECT` needs at most ~2.4e5).
MAX_SEARCH_GRID = 2_000_000


def _candidates(lat_cols: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer ``W`` (``det ±1``) whose columns are lattice vectors within ``reach`` of the basis lengths:
    ``(W [n, 3, 3], metric deviation [n], largest column-length misfit [n])``, memoised per lattice (the canonical
    cell's lattice is searched twice: loosely by :func:`may_have_more_symmetry`, tightly for the frames)."""
    key = lat_cols.tobytes()
    with _SYMMETRY_LOCK:
        hit = _CANDIDATE_CACHE.get(key)
    if hit is not None and hit[0] >= reach:
        return hit[1]
    metric = lat_cols.T @ lat_cols
    lengths = np.sqrt(np.diag(metric))
    bound = np.floor((lengths.max() + reach) * np.linalg.norm(np.linalg.inv(lat_cols), axis=1) + 1e-9).astype(int)
    if np.prod(2.0 * bound + 1) > MAX_SEARCH_GRID:  # a needle or a sheet: (length ratio)³ grid points
        from goectp.structure_checks import StructureError

        raise StructureError(
            f"the cell's lattice search would visit {np.prod(2.0 * bound + 1):.3g} lattice points, more than the "
            f"limit of {MAX_SEARCH_GRID:.0e}: the cell is too elongated (use a reduced, e.g. Niggli, cell)",
            code="absurd_cell",
        )
    grid = np.stack(np.meshgrid(*(np.arange(-b, b + 1) for b in bound), indexing="ij"), -1).reshape(-1, 3)
    grid_len = np.sqrt(np.einsum("ni,ij,nj->n", grid, metric, grid))
    near = [np.flatnonzero(np.abs(grid_len - length) <= reach) for length in lengths]
    idx = np.stack(np.meshgrid(*near, indexing="ij"), -1).reshape(-1, 3)  # every combination of candidate columns
    ws = grid[idx].transpose(0, 2, 1)  # [n, 3, 3]: column i = grid vector idx[:, i]
    misfit = np.abs(grid_len[idx] - lengths).max(axis=1)
    unimodular = np.abs(np.rint(np.linalg.det(ws.astype(np.float64)))) == 1
    ws, misfit = ws[unimodular], misfit[unimodular]
    deviation = _metric_deviation(metric, np.einsum("nji,jk,nkl->nil", ws, metric, ws))
    out = (ws, deviation, misfit)
    with _SYMMETRY_LOCK:
        _CANDIDATE_CACHE[key] = (reach, out)
        while len(_CANDIDATE_CACHE) > 16:
            _CANDIDATE_CACHE.popitem(last=False)
    return out


def _metric_deviation(metric: np.ndarray, metrics: np.ndarray) -> np.ndarray:
    """spglib's test of a lattice operation (``is_identity_metric``, no angle tolerance) as one number per ``[n]``
    metric: the largest of the length changes and of ``|sin Δθ| · mean length`` of each pair of axes (Å)."""
    l0 = np.sqrt(np.diag(metric))
    l1 = np.sqrt(np.einsum("nii->ni", metrics))
    out = np.abs(l1 - l0).max(axis=1)
    for j, k in ((0, 1), (0, 2), (1, 2)):
        cos0, cos1 = metric[j, k] / (l0[j] * l0[k]), metrics[:, j, k] / (l1[:, j] * l1[:, k])
        cos_diff = cos0 * cos1 + np.sqrt(np.clip(1 - cos0**2, 0, None) * np.clip(1 - cos1**2, 0, None))
        sin2 = np.clip(1 - cos_diff**2, 0, None)
        sin2[sin2 <= 1e-12] = 0.0  # spglib's own floor on the angle test
        out = np.maximum(out, np.sqrt(sin2 * (l0[j] + l1[:, j]) * (l0[k] + l1[:, k]) / 4))
    return out


def frame_operations(lat_cols: np.ndarray, point_group: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """One ``Q`` per right coset ``G_c Q`` of the lattice group ``G_L`` by the crystal's point group ``G_c``.

    Args:
        lat_cols: the lattice whose reduced basis gives the frame (columns = lattice vectors).
        point_group: ``[m, 3, 3]`` Cartesian point group of the crystal, *exact* for the cell the graph is built
            from (an idealized cell); pass the identity alone to average over all of ``G_L``.

    Returns ``[k, 3, 3]``, ``k = |G_L| / |G_c|``, the identity first.
    """
    group = lattice_automorphisms(lat_cols)
    # identity first, then a fixed order (by the rounded entries) so the representatives never depend on spglib's
    not_identity = ~np.all(np.abs(group - np.eye(3)) <= tol + 1e-5 * np.eye(3), axis=(1, 2))  # np.allclose's test
    entries = np.round(group, 6).reshape(len(group), 9)
    group = group[np.lexsort((*entries.T[::-1], not_identity))]  # last key first: identity, then entries in order
    reps: list[np.ndarray] = []
    for q in group:
        # q ∈ G_c r  ⇔  q rᵀ ∈ G_c
        if not any(np.abs(point_group - q @ r.T).max(axis=(1, 2)).min() < tol for r in reps):
            reps.append(q)
    return np.stack(reps)


def uses_canonical_cell(config) -> bool:
    """Whether a model's graphs are built from the canonical cell and averaged over its frames.

    Needs the point-group symmetrisation: one frame per coset is exact only because the symmetrisation that
    follows makes the terms of ``Q`` and ``P Q`` (``P`` in the point group) equal.
    """
    return (
        getattr(config, "cell_reduction", None) == "primitive"
        and bool(getattr(config, "frame_average", False))
        and bool(getattr(config, "use_frame", True))
        and bool(getattr(config, "symmetrize", False))
    )
