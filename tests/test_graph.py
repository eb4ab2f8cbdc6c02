"""Crystal graphs (goectp.graph): k-th-neighbour cutoffs with ties, periodic multi-edges, exact invariances."""

from __future__ import annotations

import gzip
import itertools
import json

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation
from torch_geometric.data import Batch

from goectp.graph import TIE_TOL, build_crystal_graph, neighbor_edges, primitive_matrix, symmetry_operations

MIRROR = np.diag([1.0, 1.0, -1.0])


# ---------------------------------------------------------------------------------------------------------------
# test crystals and an independent brute-force reference


def fcc_copper() -> Structure:
    return Structure(Lattice.cubic(3.615), ["Cu"] * 4, [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


def strontium_titanate() -> Structure:
    return Structure(
        Lattice.cubic(3.905),
        ["Sr", "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )


def rock_salt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def simple_cubic() -> Structure:
    return Structure(Lattice.cubic(3.35), ["Po"], [[0.1, 0.2, 0.3]])


def hcp_magnesium() -> Structure:
    return Structure(Lattice.hexagonal(3.21, 5.21), ["Mg", "Mg"], [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]])


def tiny_triclinic() -> Structure:
    return Structure(Lattice.from_parameters(2.6, 3.1, 3.4, 75, 98, 111), ["Li"], [[0.3, 0.6, 0.9]])


def low_symmetry() -> Structure:
    return Structure(
        Lattice.from_parameters(4.1, 5.3, 6.2, 80, 95, 104),
        ["Ba", "Ti", "O", "O", "O", "Li"],
        [
            [0.02, 0.11, 0.93],
            [0.48, 0.52, 0.45],
            [0.51, 0.08, 0.41],
            [0.05, 0.49, 0.55],
            [0.47, 0.55, 0.02],
            [0.81, 0.77, 0.71],
        ],
    )


CRYSTALS = {
    f.__name__: f
    for f in (fcc_copper, strontium_titanate, rock_salt, simple_cubic, hcp_magnesium, tiny_triclinic, low_symmetry)
}


def _all_image_distances(structure: Structure, n_images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distances ``[N, N, I]`` from every atom to every image of every atom, with the image offsets ``[I, 3]``."""
    frac = np.mod(structure.frac_coords, 1.0)
    images = np.array(list(itertools.product(*(range(-n, n + 1) for n in n_images))))
    vec = (frac[None, :, None, :] + images[None, None] - frac[:, None, None, :]) @ structure.lattice.matrix
    dist = np.linalg.norm(vec, axis=-1)
    n = len(structure)
    dist[np.arange(n), np.arange(n), np.flatnonzero(~images.any(axis=1))[0]] = np.inf  # an atom is not its neighbour
    return dist, images, frac


def brute_force_edges(structure: Structure, k: int, tie_tol: float = TIE_TOL) -> tuple[set, np.ndarray]:
    """Reference neighbour sets by enumerating a box of images large enough to hold every atom's cutoff sphere.

    Returns ``({(source, target, ix, iy, iz)}, d_k [N])``.
    """
    # any k image points give an upper bound of the true k-th-neighbour distance; size the box from it
    dist, _, _ = _all_image_distances(structure, np.array([1, 1, 1]))
    bound = np.sort(dist.reshape(len(structure), -1), axis=1)[:, k - 1].max() + tie_tol
    lat = structure.lattice
    spacing = lat.volume / np.linalg.norm(np.cross(lat.matrix[[1, 2, 0]], lat.matrix[[2, 0, 1]]), axis=1)
    n_images = np.ceil(bound / spacing).astype(int) + 1
    dist, images, _ = _all_image_distances(structure, n_images)
    flat = dist.reshape(len(structure), -1)
    d_k = np.sort(flat, axis=1)[:, k - 1]
    keep = dist <= d_k[:, None, None] + tie_tol
    # the comparison must be well posed: no distance sits at the edge of the tie window
    margin = np.abs(dist - (d_k[:, None, None] + tie_tol))
    assert margin.min() > 1e-9
    centre, source, image = np.nonzero(keep)
    edges = {(int(s), int(c), *map(int, images[i])) for c, s, i in zip(centre, source, image)}
    return edges, d_k


def edge_set(graph) -> set:
    src, dst = graph.edge_index.numpy()
    return {(int(s), int(d), *map(int, img)) for s, d, img in zip(src, dst, graph.edge_image.numpy())}


def moved(structure: Structure, rot: np.ndarray) -> Structure:
    """The same crystal rotated/reflected by ``rot`` (Cartesian), rebuilt from lattice and fractional coordinates."""
    return Structure(Lattice(structure.lattice.matrix @ rot.T), structure.species, structure.frac_coords)


def orthogonal(seed: int, proper: bool) -> np.ndarray:
    rot = Rotation.random(random_state=seed).as_matrix()
    return rot if proper else rot @ MIRROR


# ---------------------------------------------------------------------------------------------------------------
# neighbour sets


@pytest.mark.parametrize("k", [1, 6, 16])
@pytest.mark.parametrize("name", sorted(CRYSTALS))
def test_edges_match_brute_force_kth_neighbour_cutoff(name, k):
    structure = CRYSTALS[name]()
    graph = build_crystal_graph(structure, k=k)
    expected, d_k = brute_force_edges(structure, k)
    got = edge_set(graph)
    assert len(got) == graph.edge_index.size(1), "duplicate (source, target, image) edges"
    assert got == expected
    dist = graph.edge_vec.norm(dim=-1).numpy()
    centre = graph.edge_index[1].numpy()
    counts = np.bincount(centre, minlength=len(structure))
    assert counts.min() >= k
    # each atom's farthest neighbour is its k-th-neighbour distance (within the tie window)
    farthest = np.array([dist[centre == i].max() for i in range(len(structure))])
    np.testing.assert_allclose(farthest, d_k, atol=TIE_TOL)


@pytest.mark.parametrize(
    ("name", "per_atom"),
    [
        ("fcc_copper", 18),  # 12 nearest + all 6 second neighbours (the 16th is in the 6-fold tie shell)
        ("strontium_titanate", 20),  # Sr: 12 O + 8 Ti; Ti: 6 O + 8 Sr + 6 Ti; O: 2 Ti + 4 Sr + 8 O + 6 O
        ("rock_salt", 18),  # 6 unlike + 12 like neighbours
        ("simple_cubic", 18),  # 6 + 12 images of the single atom
    ],
)
def test_tie_shells_are_kept_whole(name, per_atom):
    structure = CRYSTALS[name]()
    graph = build_crystal_graph(structure, k=16)
    counts = np.bincount(graph.edge_index[1].numpy(), minlength=len(structure))
    np.testing.assert_array_equal(counts, per_atom)


def test_one_atom_cell_has_multi_edges_to_its_own_images():
    graph = build_crystal_graph(simple_cubic(), k=16)
    assert graph.num_nodes == 1
    assert torch.all(graph.edge_index == 0)
    images = graph.edge_image.numpy()
    assert len({tuple(i) for i in images}) == len(images) == 18
    assert not np.any(np.all(images == 0, axis=1))
    np.testing.assert_allclose(
        np.sort(graph.edge_vec.norm(dim=-1).numpy()), [3.35] * 6 + [3.35 * np.sqrt(2)] * 12, atol=1e-12
    )


def test_small_cell_has_parallel_edges_between_the_same_atoms():
    graph = build_crystal_graph(hcp_magnesium(), k=12)
    pairs = [tuple(e) for e in graph.edge_index.t().tolist()]
    assert max(pairs.count(p) for p in set(pairs)) > 1  # the same (j, i) pair through several images


@pytest.mark.parametrize("name", ["low_symmetry", "tiny_triclinic", "strontium_titanate"])
def test_edge_vectors_are_frac_plus_image_times_lattice(name):
    structure = CRYSTALS[name]()
    structure = Structure(structure.lattice, structure.species, structure.frac_coords + [[2, -1, 3]])  # unwrapped
    graph = build_crystal_graph(structure)
    src, dst = graph.edge_index
    frac = graph.frac.numpy()
    assert np.all((frac >= 0) & (frac < 1))
    np.testing.assert_allclose(frac, np.mod(structure.frac_coords, 1.0), atol=1e-12)
    lat_cols = graph.lattice[0].numpy()
    np.testing.assert_allclose(lat_cols, structure.lattice.matrix.T)
    expected = (frac[src] + graph.edge_image.numpy() - frac[dst]) @ lat_cols.T
    np.testing.assert_allclose(graph.edge_vec.numpy(), expected, atol=1e-12)
    # and the vectors are real interatomic vectors: their lengths are pymatgen's periodic distances
    for e in range(0, graph.edge_index.size(1), 7):
        d = structure[int(dst[e])].distance(
            structure[int(src[e])],
            jimage=graph.edge_image[e].numpy()
            + np.floor(structure.frac_coords[int(src[e])]).astype(int)
            - np.floor(structure.frac_coords[int(dst[e])]).astype(int),
        )
        assert abs(d - graph.edge_vec[e].norm().item()) < 1e-10


# ---------------------------------------------------------------------------------------------------------------
# invariances


@pytest.mark.parametrize("proper", [True, False], ids=["rotation", "reflection"])
@pytest.mark.parametrize("name", sorted(CRYSTALS))
def test_rotated_structure_gives_the_same_graph_with_rotated_vectors(name, proper):
    structure = CRYSTALS[name]()
    graph = build_crystal_graph(structure)
    for seed in range(3):
        rot = orthogonal(seed, proper)
        other = build_crystal_graph(moved(structure, rot))
        assert edge_set(other) == edge_set(graph)
        order, order_o = _edge_order(graph), _edge_order(other)
        np.testing.assert_allclose(other.edge_vec.numpy()[order_o], graph.edge_vec.numpy()[order] @ rot.T, atol=1e-12)
        np.testing.assert_allclose(other.lattice[0].numpy(), rot @ graph.lattice[0].numpy(), atol=1e-12)
        np.testing.assert_allclose(other.reduced_lattice[0].numpy(), rot @ graph.reduced_lattice[0].numpy(), atol=1e-12)
        np.testing.assert_allclose(
            other.primitive_lattice[0].numpy(), rot @ graph.primitive_lattice[0].numpy(), atol=1e-12
        )
        assert other.num_sym_ops.item() == graph.num_sym_ops.item()
        _assert_same_operation_set(other.sym_ops.numpy(), rot @ graph.sym_ops.numpy() @ rot.T)


def _edge_order(graph) -> np.ndarray:
    keys = np.concatenate([graph.edge_index.t().numpy(), graph.edge_image.numpy()], axis=1)
    return np.lexsort(keys.T[::-1])


def _assert_same_operation_set(a: np.ndarray, b: np.ndarray) -> None:
    dist = np.abs(a[:, None] - b[None]).max(axis=(-1, -2))
    assert dist.min(axis=1).max() < 1e-10 and dist.min(axis=0).max() < 1e-10


def test_wrapping_fractional_coordinates_changes_nothing():
    structure = low_symmetry()
    graph = build_crystal_graph(structure)
    shifts = np.random.default_rng(3).integers(-3, 4, size=(len(structure), 3))
    wrapped = build_crystal_graph(Structure(structure.lattice, structure.species, structure.frac_coords + shifts))
    np.testing.assert_allclose(wrapped.frac.numpy(), graph.frac.numpy(), atol=1e-14)
    assert edge_set(wrapped) == edge_set(graph)
    np.testing.assert_allclose(
        wrapped.edge_vec.numpy()[_edge_order(wrapped)], graph.edge_vec.numpy()[_edge_order(graph)], atol=1e-12
    )


@pytest.mark.parametrize("name", ["low_symmetry", "strontium_titanate", "hcp_magnesium"])
def test_translating_the_crystal_keeps_the_edge_vectors(name):
    structure = CRYSTALS[name]()
    graph = build_crystal_graph(structure)
    shifted = build_crystal_graph(
        Structure(structure.lattice, structure.species, structure.frac_coords + [0.37, -0.81, 0.55])
    )
    assert _vector_multiset(shifted) == _vector_multiset(graph)


def _vector_multiset(graph) -> list:
    src, dst = graph.edge_index.numpy()
    vec = np.round(graph.edge_vec.numpy(), 8) + 0.0
    return sorted(zip(src.tolist(), dst.tolist(), map(tuple, vec.tolist())))


def test_permuting_atoms_permutes_the_graph():
    structure = low_symmetry()
    perm = np.array([3, 0, 5, 1, 4, 2])
    graph = build_crystal_graph(structure)
    permuted = build_crystal_graph(
        Structure(structure.lattice, [structure.species[i] for i in perm], structure.frac_coords[perm])
    )
    np.testing.assert_array_equal(permuted.z.numpy(), graph.z.numpy()[perm])
    new_index = np.argsort(perm)  # old site i is new site new_index[i]
    mapped = {(int(new_index[s]), int(new_index[d]), *img) for s, d, *img in edge_set(graph)}
    assert edge_set(permuted) == mapped


def test_tie_pitfall_regression_edge_count_is_stable_under_tiny_rotations():
    """Rotations of a few 1e-12 Å change tied distances by float noise; the graph must not notice."""
    rng = np.random.default_rng(0)
    for structure in (fcc_copper(), strontium_titanate()):
        reference = len(neighbor_edges(structure)[0])
        naive_counts = set()
        for _ in range(40):
            rotvec = rng.normal(size=3)
            rotvec *= 1e-12 / np.linalg.norm(rotvec) / structure.lattice.abc[0]
            copy = moved(structure, Rotation.from_rotvec(rotvec).as_matrix())
            assert len(neighbor_edges(copy)[0]) == reference
            naive_counts.add(len(neighbor_edges(copy, tie_tol=0.0)[0]))
        # control: a plain d <= d_k cutoff does flip tied neighbours in and out, so this test can fail
        assert len(naive_counts) > 1


def test_graphs_batch_with_offset_edges():
    graphs = [build_crystal_graph(s) for s in (low_symmetry(), simple_cubic(), strontium_titanate())]
    batch = Batch.from_data_list(graphs)
    assert batch.lattice.shape == (3, 3, 3)
    assert batch.num_sym_ops.tolist() == [g.num_sym_ops.item() for g in graphs]
    assert batch.sym_ops.shape[0] == sum(g.sym_ops.shape[0] for g in graphs)
    e0, e1 = graphs[0].edge_index.size(1), graphs[1].edge_index.size(1)
    assert torch.all(batch.edge_index[:, e0 : e0 + e1] == 6)  # simple cubic's self edges, offset by 6 atoms
    np.testing.assert_array_equal(batch.batch.numpy(), [0] * 6 + [1] + [2] * 5)


# ---------------------------------------------------------------------------------------------------------------
# primitive lattice and point group (cell-choice options)


def supercell(structure: Structure, scaling) -> Structure:
    copy = structure.copy()
    copy.make_supercell(scaling)
    return copy


@pytest.mark.parametrize(
    ("name", "scaling", "points"),
    [
        ("fcc_copper", [1, 1, 1], 4),
        ("rock_salt", [1, 1, 1], 4),
        ("low_symmetry", [2, 1, 1], 2),
        ("low_symmetry", [[1, 1, 0], [-1, 1, 0], [0, 0, 2]], 4),
        ("strontium_titanate", [3, 1, 2], 6),
        ("simple_cubic", [1, 1, 1], 1),
    ],
)
def test_primitive_matrix_finds_the_primitive_lattice(name, scaling, points):
    structure = supercell(CRYSTALS[name](), scaling)
    prim = primitive_matrix(structure)
    np.testing.assert_allclose(abs(np.linalg.det(prim)), 1 / points, atol=1e-12)
    np.testing.assert_allclose(prim * points, np.rint(prim * points), atol=1e-12)  # rational with denominator n
    # every primitive vector is a translation of the crystal: it maps each atom onto an atom of the same kind
    lat_cols = structure.lattice.matrix.T
    for vector in (lat_cols @ prim).T:
        shifted = Structure(
            structure.lattice, structure.species, structure.cart_coords + vector, coords_are_cartesian=True
        )
        assert shifted.matches(structure, scale=False, primitive_cell=False, attempt_supercell=False)


@pytest.mark.parametrize("name", ["low_symmetry", "strontium_titanate", "hcp_magnesium"])
def test_supercells_share_the_point_group_and_primitive_frame(name):
    structure = CRYSTALS[name]()
    graph = build_crystal_graph(structure)
    for scaling in ([2, 1, 1], [2, 2, 1], [[1, 1, 0], [-1, 1, 0], [0, 0, 1]]):
        big = build_crystal_graph(supercell(structure, scaling))
        # spglib alone loses operations that do not fit the supercell's lattice (48 -> 16 for a 2x1x1 cubic cell)
        assert big.num_sym_ops.item() == graph.num_sym_ops.item()
        _assert_same_operation_set(big.sym_ops.numpy(), graph.sym_ops.numpy())
        np.testing.assert_allclose(abs(np.linalg.det(big.primitive_lattice[0].numpy())), structure.volume, rtol=1e-10)
        if name == "low_symmetry":  # a triclinic Niggli basis is unique up to its sign
            a, b = big.primitive_lattice[0].numpy(), graph.primitive_lattice[0].numpy()
            np.testing.assert_allclose(np.sign(np.vdot(a, b)) * a, b, atol=1e-10)
    assert len(symmetry_operations(supercell(strontium_titanate(), [2, 1, 1]))) == 48


# ---------------------------------------------------------------------------------------------------------------
# real structures


def load_records(data_dir, count: int) -> list[tuple[str, Structure]]:
    with gzip.open(data_dir / "mp_dielectric_open.json.gz", "rt") as fh:
        records = json.load(fh)
    ids = sorted(records)[:: max(1, len(records) // count)][:count]
    return [(i, Structure.from_dict(records[i]["structure"])) for i in ids]


@pytest.mark.data
def test_graphs_of_real_structures_are_sensible(shared_data_dir):
    for record_id, structure in load_records(shared_data_dir, 12):
        graph = build_crystal_graph(structure)
        n = len(structure)
        dist = graph.edge_vec.norm(dim=-1).numpy()
        counts = np.bincount(graph.edge_index[1].numpy(), minlength=n)
        assert counts.min() >= 16, record_id
        assert counts.max() <= 64, record_id  # ties add a shell at most, not the whole crystal
        assert dist.min() > 0.5 and dist.max() < 12.0, record_id
        # shortest edge = the structure's shortest interatomic distance (pymatgen, periodic)
        nearest = min(nb.nn_distance for site_nbs in structure.get_all_neighbors(dist.min() + 0.01) for nb in site_nbs)
        assert abs(dist.min() - nearest) < 1e-8, record_id
        assert graph.z.tolist() == [s.specie.Z for s in structure]
        assert 1 <= graph.num_sym_ops.item() <= 48
        rot = orthogonal(len(record_id), proper=n % 2 == 0)
        other = build_crystal_graph(moved(structure, rot))
        assert edge_set(other) == edge_set(graph), record_id
        np.testing.assert_allclose(other.reduced_lattice[0].numpy(), rot @ graph.reduced_lattice[0].numpy(), atol=1e-10)
        np.testing.assert_allclose(
            other.primitive_lattice[0].numpy(), rot @ graph.primitive_lattice[0].numpy(), atol=1e-10
        )
        _assert_same_operation_set(other.sym_ops.numpy(), rot @ graph.sym_ops.numpy() @ rot.T)
