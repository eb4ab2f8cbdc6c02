"""CGCNN-style multi-edge periodic crystal graphs, built so that rotated crystals get *exactly* the same graph.

Each atom ``i`` is connected to every periodic image of every atom ``j`` within its own cutoff ``r_i``, the distance
of its ``k``-th nearest neighbour (periodic images count as neighbours; an atom's own images too).

Exactness: a rotated copy of a crystal has the same distances only up to ~1e-15 Å of floating-point noise. If the
cutoff were applied as ``d <= d_k``, neighbours tied with the ``k``-th one (common in symmetric crystals) would be
kept or dropped by that noise, and the rotated crystal would get a different graph — the failure measured in the
reference implementation. Here every neighbour with ``d <= d_k + tie_tol`` is kept (``tie_tol`` = 1e-5 Å by
default), and the edge vectors are rebuilt from fractional coordinates and integer image offsets, so the graph's
topology is identical and its vectors rotate exactly with the crystal.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from goectp.canonical import canonical_cell, cell_symmetry, frame_operations
from goectp.frame import polar_frame, reduction_matrix
from goectp.structures import MAX_SITES, MIN_DISTANCE, StructureError, validate_structure, wrapped

DEFAULT_K = 16
TIE_TOL = 1e-5


#: attributes that hold node indices (shifted by the node count when graphs are batched): the edges, and the
#: per-atom space-group operations of :func:`goectp.models.born.with_site_operations`
NODE_INDEX_KEYS = ("edge_index", "site_src", "site_dst")


class CrystalGraph(Data):
    """A ``torch_geometric`` ``Data`` with per-graph symmetry operations concatenated along dim 0."""

    def __inc__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key in NODE_INDEX_KEYS:
            return self.num_nodes
        return 0

    def __cat_dim__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key == "edge_index":
            return -1
        return 0


def neighbor_edges(structure, k: int = DEFAULT_K, tie_tol: float = TIE_TOL) -> tuple[np.ndarray, ...]:
    """Edges from each atom to all images within its k-th-neighbour distance (+ ``tie_tol``).

    Returns ``(centers, neighbors, images, distances)``: edge ``e`` goes from site ``neighbors[e]`` in cell
    ``images[e]`` (integer offsets) to site ``centers[e]``.
    """
    n = len(structure)
    lat = structure.lattice
    # the search runs on the atoms wrapped into the cell (its grid spans the atoms: one far outside makes it huge);
    # the images are then given relative to the structure's own coordinates
    inside = wrapped(structure)
    shift = np.rint(structure.frac_coords - inside.frac_coords).astype(np.int64)
    structure = inside
    # Start from a radius that typically holds k neighbours, grow until every atom has them with room to spare.
    radius = max(2.0, 1.4 * (lat.volume / n * k) ** (1 / 3))
    for _ in range(12):
        c, p, img, d = structure.get_neighbor_list(radius, numerical_tol=1e-8, exclude_self=True)
        if len(d) and d.min() < MIN_DISTANCE:
            e = int(np.argmin(d))
            raise StructureError(
                f"atoms overlap: sites {c[e]} ({structure[int(c[e])].species_string}) and {p[e]} "
                f"({structure[int(p[e])].species_string}) are {d[e]:.3g} Å apart (duplicated sites?)"
            )
        counts = np.bincount(c, minlength=n)
        if counts.min() >= k:
            order = np.lexsort((d, c))
            c, p, img, d = c[order], p[order], img[order], d[order]
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            d_k = d[starts + k - 1]
            if d_k.max() + tie_tol + 0.1 < radius:  # the search radius never decides an edge
                keep = d <= d_k[c] + tie_tol
                c, p = c[keep], p[keep]
                return c, p, np.rint(img[keep]).astype(np.int64) - shift[p] + shift[c], d[keep]
        radius *= 1.5
    raise ValueError(f"could not find {k} neighbours for every atom (cell too sparse?)")


def _spglib_symmetry(structure, symprec: float) -> dict | None:
    """spglib's space-group operations ``{"rotations": [n, 3, 3] int, "translations": [n, 3]}`` or ``None``."""
    return cell_symmetry(structure.lattice.matrix, structure.frac_coords, [s.specie.Z for s in structure], symprec)


def _cartesian_operations(lat_rows: np.ndarray, sym: dict | None) -> np.ndarray:
    if sym is None:
        return np.eye(3)[None]
    rots = np.unique(sym["rotations"], axis=0)
    lat_cols = lat_rows.T
    cart = lat_cols @ rots @ np.linalg.inv(lat_cols)  # R = L W L^-1 acts on Cartesian column vectors
    # A structure that is symmetric only within symprec gives slightly non-orthogonal L W L^-1; its orthogonal
    # polar factor is the nearest rotation, keeps R ε Rᵀ from rescaling ε, and still conjugates as Q R Qᵀ.
    u, _, vt = np.linalg.svd(cart)
    return u @ vt


def symmetry_operations(structure, symprec: float = 0.01) -> np.ndarray:
    """Distinct point-group rotations of the crystal as Cartesian ``(n_ops, 3, 3)`` matrices (spglib).

    spglib returns only operations that are integer matrices in the *given* cell, so a supercell whose lattice
    is less symmetric than the crystal (a 2x1x1 cell of a cubic crystal) would lose some; the operations are
    therefore taken from the primitive cell, whose lattice every operation of the crystal preserves.
    """
    sym = _spglib_symmetry(structure, symprec)
    return _point_group(structure, symprec, sym, primitive_matrix(structure, symprec, sym))


def _point_group(structure, symprec: float, sym: dict | None, prim: np.ndarray) -> np.ndarray:
    """Cartesian point group from the cell's operations, or from the primitive cell ``L P`` when ``P != I``."""
    if sym is None or np.array_equal(prim, np.eye(3)):
        return _cartesian_operations(structure.lattice.matrix, sym)
    import spglib

    lat_rows = (structure.lattice.matrix.T @ prim).T
    frac = np.mod(structure.frac_coords @ np.linalg.inv(prim).T, 1.0)
    numbers = np.array([site.specie.Z for site in structure])
    # keep one site of each group of translation-equivalent copies (n per site in a supercell)
    diff = frac[:, None] - frac[None]
    dist = np.linalg.norm((diff - np.rint(diff)) @ lat_rows, axis=-1)
    same = (dist < 2 * symprec) & (numbers[:, None] == numbers[None])
    first = np.argmax(same, axis=1)  # the lowest index each site coincides with
    keep = first == np.arange(len(structure))
    if keep.sum() * round(1 / abs(np.linalg.det(prim))) != len(structure):
        return _cartesian_operations(structure.lattice.matrix, sym)  # inconsistent within symprec: keep the cell's
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            prim_sym = spglib.get_symmetry((lat_rows, frac[keep], numbers[keep]), symprec=symprec)
        except Exception:
            prim_sym = None
    return _cartesian_operations(lat_rows, prim_sym if prim_sym is not None else sym)


def _integer_lattice_basis(generators: np.ndarray) -> np.ndarray:
    """A basis ``[3, 3]`` (columns) of the integer lattice spanned by the columns of ``generators`` ``[3, m]``.

    Unimodular column operations (Euclid's algorithm row by row) bring the generators to lower-triangular Hermite
    form; the result depends only on the generators, not on any floating-point geometry.
    """
    a = [list(map(int, col)) for col in np.asarray(generators, dtype=np.int64).T]
    basis = []
    for row in range(3):
        while True:
            live = [c for c in a if c[row] != 0]
            if len(live) <= 1:
                break
            pivot = min(live, key=lambda c: abs(c[row]))
            a = [
                c if c is pivot or c[row] == 0 else [x - (c[row] // pivot[row]) * y for x, y in zip(c, pivot)]
                for c in a
            ]
        live = [c for c in a if c[row] != 0]
        if not live:
            raise ValueError("lattice generators do not span three dimensions")
        pivot = live[0] if live[0][row] > 0 else [-x for x in live[0]]
        basis.append(pivot)
        a = [c for c in a if c[row] == 0]
    return np.array(basis, dtype=np.int64).T


def primitive_matrix(structure, symprec: float = 0.01, sym: dict | None = None) -> np.ndarray:
    """Rational ``P`` ``[3, 3]`` such that ``L P`` is a basis of the crystal's primitive lattice (``L`` columns).

    The primitive lattice is spanned by the cell's lattice vectors and the pure translations found by spglib
    (operations whose rotation is the identity): a supercell and the cell it repeats have the same one. ``P`` is
    built from those rational translations alone (exact integer arithmetic), so rotated or reflected copies of a
    crystal get the identical ``P``. Without extra translations ``P`` is the identity.
    """
    sym = _spglib_symmetry(structure, symprec) if sym is None else sym
    if sym is None:
        return np.eye(3)
    pure = np.all(sym["rotations"] == np.eye(3, dtype=int), axis=(1, 2))
    n = int(pure.sum())  # lattice points per cell = order of the translation group
    if n <= 1:
        return np.eye(3)
    steps = np.mod(np.rint(sym["translations"][pure] * n).astype(np.int64), n)  # each n * t is integer
    basis = _integer_lattice_basis(np.concatenate([n * np.eye(3, dtype=np.int64), steps.T], axis=1))
    if round(abs(np.linalg.det(basis))) != n**2:  # not a group of order n: tolerance trouble, keep the cell
        return np.eye(3)
    return basis / n


def build_crystal_graph(
    structure,
    k: int = DEFAULT_K,
    tie_tol: float = TIE_TOL,
    symprec: float | None = 0.01,
    validate: bool = True,
    max_sites: int = MAX_SITES,
    canonical: bool = False,
) -> CrystalGraph:
    """Build the multi-edge periodic graph of ``structure``.

    Fields (``N`` atoms, ``E`` edges, ``S`` symmetry operations; Cartesian = the structure's own frame):

    - ``z`` ``[N]`` atomic numbers; ``frac`` ``[N, 3]`` fractional coordinates (wrapped to [0, 1)).
    - ``edge_index`` ``[2, E]`` (row 0 = source/neighbour, row 1 = target/centre, PyG convention).
    - ``edge_vec`` ``[E, 3]`` Cartesian vectors centre → neighbour image; ``edge_image`` ``[E, 3]`` integer offsets.
    - ``lattice`` ``[1, 3, 3]`` lattice vectors as columns; ``reduced_lattice`` ``[1, 3, 3]`` its Niggli-reduced
      basis (same lattice, integer basis change chosen from the metric only); ``primitive_lattice`` ``[1, 3, 3]``
      the Niggli-reduced basis of the crystal's *primitive* lattice (spglib's pure translations, see
      :func:`primitive_matrix`): the same for a supercell as for the cell it repeats.
    - ``sym_ops`` ``[S, 3, 3]`` Cartesian point-group rotations, ``num_sym_ops`` ``[1]`` (``symprec`` None: identity).
    - ``frame_ops`` ``[K, 3, 3]``, ``num_frame_ops`` ``[1]``: the frames ``Q F`` the model averages over (one per
      coset of the primitive lattice's automorphisms by the point group, :func:`goectp.canonical.frame_operations`).

    ``canonical=True`` (models with ``cell_reduction='primitive'``, see :func:`goectp.canonical.uses_canonical_cell`):
    the graph is built from the crystal's idealized primitive cell in the input's
    orientation (:func:`goectp.canonical.canonical_cell`), so every unit cell of the same crystal — any basis,
    supercell, origin or wrapping — gives the same graph up to the order of its atoms, and exact symmetries stay
    exact. ``canonical=False`` (default) keeps the input cell's atoms (one frame, no averaging).
    """
    if validate:
        structure = validate_structure(structure, max_sites=max_sites)
    if len(structure) == 0:
        raise ValueError("structure has no atoms")
    idealized = False
    if canonical and symprec:
        ideal = canonical_cell(structure, symprec)
        idealized, structure = ideal is not structure, ideal
    centers, neighbors, images, _ = neighbor_edges(structure, k=k, tie_tol=tie_tol)
    frac = np.mod(structure.frac_coords, 1.0)
    frac[frac >= 1.0] = 0.0  # np.mod(-1e-17, 1.0) == 1.0
    frac_shift = structure.frac_coords - frac  # pymatgen's image offsets refer to the unwrapped coordinates
    images = images + np.rint(frac_shift[neighbors] - frac_shift[centers]).astype(np.int64)
    lat_rows = structure.lattice.matrix
    edge_frac = frac[neighbors] + images - frac[centers]
    edge_vec = edge_frac @ lat_rows
    lat_cols = lat_rows.T
    polar_frame(lat_cols)  # raises a clear error for singular lattices
    reduced = lat_cols @ reduction_matrix(lat_cols, "niggli")
    sym = _spglib_symmetry(structure, symprec) if symprec else None
    prim = primitive_matrix(structure, symprec, sym) if sym is not None else np.eye(3)
    ops = _point_group(structure, symprec, sym, prim) if sym is not None else np.eye(3)[None]
    if np.array_equal(prim, np.eye(3)):
        primitive = reduced  # the usual case, and always for a canonical cell: the cell is primitive already
    else:
        primitive = lat_cols @ prim
        primitive = primitive @ reduction_matrix(primitive, "niggli")
    if canonical and symprec:  # exact symmetries of the idealized cell; without one, average over all of G_L
        frames = frame_operations(primitive, ops if idealized else np.eye(3)[None])
    else:
        frames = np.eye(3)[None]
    return CrystalGraph(
        z=torch.tensor([s.specie.Z for s in structure], dtype=torch.long),
        frac=torch.from_numpy(frac),
        edge_index=torch.from_numpy(np.stack([neighbors, centers]).astype(np.int64)),
        edge_vec=torch.from_numpy(edge_vec),
        edge_image=torch.from_numpy(images),
        lattice=torch.from_numpy(lat_cols.copy())[None],
        reduced_lattice=torch.from_numpy(reduced)[None],
        primitive_lattice=torch.from_numpy(primitive)[None],
        sym_ops=torch.from_numpy(np.ascontiguousarray(ops, dtype=np.float64)),
        num_sym_ops=torch.tensor([len(ops)], dtype=torch.long),
        frame_ops=torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float64)),
        num_frame_ops=torch.tensor([len(frames)], dtype=torch.long),
        num_nodes=len(structure),
    )


def graph_structure(graph):
    """The (possibly canonical) cell a graph was built from, as a pymatgen ``Structure`` (atoms in graph order)."""
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice(graph.lattice[0].numpy().T), graph.z.tolist(), graph.frac.numpy())
