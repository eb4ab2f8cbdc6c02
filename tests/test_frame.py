"""The polar frame L = F H, canonical orientation and cell reduction (goectp.frame)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation

from goectp.frame import canonicalize, polar_frame, polar_frame_torch, reduce_lattice, reduction_matrix

MIRROR = np.diag([1.0, 1.0, -1.0])


def random_lattices(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random well-conditioned lattices (columns = vectors), some with negative determinant."""
    lat = rng.normal(size=(*shape, 3, 3)) + 3.0 * np.eye(3)
    return lat * rng.uniform(2.0, 8.0, size=(*shape, 1, 1))


def orthogonal(seed: int, proper: bool) -> np.ndarray:
    rot = Rotation.random(random_state=seed).as_matrix()
    return rot if proper else rot @ MIRROR


@pytest.mark.parametrize("shape", [(), (1,), (7,), (4, 5)])
def test_polar_frame_reconstructs_with_orthogonal_f_and_spd_h(rng, shape):
    lat = random_lattices(rng, shape)
    lat[..., :, 0] *= np.where(rng.random(shape) < 0.5, -1.0, 1.0)[..., None]  # mix in left-handed cells
    frame, sym = polar_frame(lat)
    assert frame.shape == (*shape, 3, 3) and sym.shape == (*shape, 3, 3)
    np.testing.assert_allclose(frame @ sym, lat, atol=1e-12 * np.abs(lat).max())
    eye = np.broadcast_to(np.eye(3), frame.shape)
    np.testing.assert_allclose(np.swapaxes(frame, -1, -2) @ frame, eye, atol=1e-13)
    np.testing.assert_allclose(np.abs(np.linalg.det(frame)), 1.0, atol=1e-13)
    # det F carries the handedness of the cell: F is in O(3), not forced into SO(3)
    np.testing.assert_array_equal(np.sign(np.linalg.det(frame)), np.sign(np.linalg.det(lat)))
    np.testing.assert_array_equal(sym, np.swapaxes(sym, -1, -2))
    assert np.all(np.linalg.eigvalsh(sym) > 0)


def test_polar_frame_of_left_handed_cell_is_improper():
    frame, sym = polar_frame(np.diag([4.0, 5.0, -6.0]))
    np.testing.assert_allclose(frame, np.diag([1.0, 1.0, -1.0]), atol=1e-15)
    np.testing.assert_allclose(sym, np.diag([4.0, 5.0, 6.0]), atol=1e-14)


@pytest.mark.parametrize("proper", [True, False], ids=["rotation", "reflection"])
@pytest.mark.parametrize("seed", range(5))
def test_frame_rotates_with_the_lattice_and_h_is_invariant(rng, seed, proper):
    lat = random_lattices(rng, (6,))
    rot = orthogonal(seed, proper)
    frame, sym = polar_frame(lat)
    frame_r, sym_r = polar_frame(rot @ lat)
    np.testing.assert_allclose(frame_r, rot @ frame, atol=1e-13)
    np.testing.assert_allclose(sym_r, sym, atol=1e-12)


def test_polar_frame_torch_matches_numpy(rng):
    lat = random_lattices(rng, (9,))
    frame, sym = polar_frame(lat)
    frame_t, sym_t = polar_frame_torch(torch.from_numpy(lat))
    np.testing.assert_allclose(frame_t.numpy(), frame, atol=1e-13)
    np.testing.assert_allclose(sym_t.numpy(), sym, atol=1e-12)


@pytest.mark.parametrize(
    ("lattice", "message"),
    [
        (np.zeros((3, 3)), "singular"),
        (np.array([[1.0, 0, 1], [0, 1, 1], [0, 0, 0]]), "singular"),  # third vector = a + b
        (np.diag([5.0, 5.0, 1e-7]), "nearly singular"),
        (np.array([[4.0, 0, 0], [0, np.nan, 0], [0, 0, 4]]), "NaN"),
        (np.diag([4.0, np.inf, 4.0]), "infinite"),
        (np.eye(2), "shape"),
    ],
    ids=["zero", "coplanar", "flat", "nan", "inf", "shape"],
)
def test_bad_lattices_raise_clear_value_error(lattice, message):
    with pytest.raises(ValueError, match=message):
        polar_frame(lattice)


def test_singular_lattice_in_a_batch_is_named(rng):
    lat = random_lattices(rng, (4,))
    lat[2, :, 2] = lat[2, :, 0] + lat[2, :, 1]
    with pytest.raises(ValueError, match=r"lattice 2 of the batch"):
        polar_frame(lat)


@pytest.mark.parametrize("reduction", ["none", "niggli", "lll"])
def test_canonicalize_gives_lattice_h_and_keeps_geometry(triclinic, reduction):
    canon = canonicalize(triclinic, reduction=reduction)
    lat_cols = triclinic.lattice.matrix.T @ reduction_matrix(triclinic.lattice.matrix.T, reduction)
    _, sym = polar_frame(lat_cols)
    np.testing.assert_allclose(canon.lattice.matrix.T, sym, atol=1e-12)
    np.testing.assert_allclose(canon.lattice.matrix, canon.lattice.matrix.T, atol=1e-12)  # H is symmetric
    np.testing.assert_allclose(canon.distance_matrix, triclinic.distance_matrix, atol=1e-10)
    assert [s.species_string for s in canon] == [s.species_string for s in triclinic]
    if reduction == "none":
        np.testing.assert_allclose(canon.frac_coords, triclinic.frac_coords, atol=1e-12)


@pytest.mark.parametrize("reduction", ["none", "niggli"])
@pytest.mark.parametrize("proper", [True, False], ids=["rotation", "reflection"])
def test_canonical_structure_is_the_same_for_rotated_copies(triclinic, reduction, proper):
    rot = orthogonal(11, proper)
    moved = Structure(Lattice(triclinic.lattice.matrix @ rot.T), triclinic.species, triclinic.frac_coords)
    a, b = canonicalize(triclinic, reduction), canonicalize(moved, reduction)
    np.testing.assert_allclose(b.lattice.matrix, a.lattice.matrix, atol=1e-12)
    np.testing.assert_allclose(b.cart_coords, a.cart_coords, atol=1e-12)


LATTICES = {
    "triclinic": Lattice.from_parameters(4.1, 5.3, 6.2, 80, 95, 104),
    "monoclinic": Lattice.monoclinic(4.1, 5.2, 6.3, 101.3),
    "hexagonal": Lattice.hexagonal(3.1, 5.07),
    "rhombohedral": Lattice.rhombohedral(5.1, 55.3),
    "fcc_primitive": Lattice([[0, 2.5, 2.5], [2.5, 0, 2.5], [2.5, 2.5, 0]]),
    "skewed_cubic": Lattice(np.array([[3.9, 0, 0], [3.9, 3.9, 0], [-3.9, 0, 3.9]])),  # cubic in a bad basis
}


@pytest.mark.parametrize("method", ["niggli", "lll"])
@pytest.mark.parametrize("name", sorted(LATTICES))
def test_reduction_matrix_is_unimodular_and_rotation_independent(name, method):
    lat = LATTICES[name].matrix.T
    m = reduction_matrix(lat, method)
    assert m.dtype.kind == "i" and m.shape == (3, 3)
    assert round(abs(np.linalg.det(m))) == 1
    reduced, m2 = reduce_lattice(lat, method)
    np.testing.assert_array_equal(m2, m)
    np.testing.assert_allclose(reduced, lat @ m, atol=1e-12)
    if method == "niggli":  # a Niggli basis has the shortest vectors: no longer than the input's
        assert np.linalg.norm(reduced, axis=0).sum() <= np.linalg.norm(lat, axis=0).sum() + 1e-9
    for seed in range(20):
        rot = orthogonal(seed, proper=seed % 2 == 0)
        np.testing.assert_array_equal(reduction_matrix(rot @ lat, method), m)


UNIMODULAR = (
    [[1, 1, 0], [0, 1, 0], [0, 0, 1]],
    [[1, 0, -1], [0, 1, 2], [0, 0, 1]],
    [[0, 1, 0], [1, 0, 0], [0, 0, -1]],
    [[2, 1, 1], [1, 1, 0], [1, 1, 1]],
    [[1, 2, 3], [0, 1, 4], [0, 0, 1]],
)


NEAR_ORTHORHOMBIC = Lattice.from_parameters(4.2, 5.8, 6.7, 90.25, 90.19, 90.25)


@pytest.mark.parametrize("lattice", [LATTICES["triclinic"], NEAR_ORTHORHOMBIC], ids=["triclinic", "near_orthorhombic"])
def test_niggli_reduced_cell_does_not_depend_on_the_input_basis(lattice):
    """A triclinic lattice's Niggli basis is unique up to its overall sign (-I is an automorphism of any lattice)."""
    lat = lattice.matrix.T
    reduced, _ = reduce_lattice(lat)
    for change in UNIMODULAR:
        assert round(abs(np.linalg.det(change))) == 1
        other, _ = reduce_lattice(lat @ np.array(change))
        sign = np.sign(np.vdot(other, reduced))
        np.testing.assert_allclose(sign * other, reduced, atol=1e-10)


def test_niggli_basis_satisfies_the_niggli_conditions():
    """All-acute or all-non-acute angles, sorted lengths, |2 b·c| <= b·b etc., also for angles within 1° of 90°
    (pymatgen's own reduction matches a basis to the reduced parameters within 1° and can return 90 ± δ)."""
    rng = np.random.default_rng(5)
    for _ in range(30):
        lattice = Lattice.from_parameters(*rng.uniform(3, 8, 3), *(90 + rng.normal(0, 0.3, 3)))
        for change in UNIMODULAR:
            basis, _ = reduce_lattice(lattice.matrix.T @ np.array(change))
            g = basis.T @ basis
            a, b, c, xi, eta, zeta = g[0, 0], g[1, 1], g[2, 2], 2 * g[1, 2], 2 * g[0, 2], 2 * g[0, 1]
            eps = 1e-5 * abs(np.linalg.det(basis)) ** (1 / 3)
            assert a <= b + eps and b <= c + eps
            assert abs(xi) <= b + eps and abs(eta) <= a + eps and abs(zeta) <= a + eps
            signs = np.sign([x if abs(x) > eps else 0.0 for x in (xi, eta, zeta)])
            assert np.all(signs > 0) or np.all(signs <= 0)
            np.testing.assert_allclose(np.sort(np.linalg.norm(basis, axis=0)), sorted(lattice.abc), rtol=1e-9)


def test_reduction_none_and_unknown_method():
    np.testing.assert_array_equal(reduction_matrix(np.eye(3) * 4, "none"), np.eye(3))
    with pytest.raises(ValueError, match="unknown cell reduction"):
        reduction_matrix(np.eye(3) * 4, "delaunay")  # type: ignore[arg-type]
