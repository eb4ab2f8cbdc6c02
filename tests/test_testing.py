"""goectp.testing against the math: Haar-random O(3) matrices, rotated structures, ρ(R) for scalars, vectors and
rank-2 (pseudo)tensors, and assert_equivariant on hand-made functions whose (non-)equivariance is known."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from goectp.testing import (
    assert_equivariant,
    equivariance_check,
    equivariance_error,
    random_orthogonal,
    rotate_structure,
    transform,
)


@pytest.fixture()
def crystal() -> Structure:
    lattice = Lattice.from_parameters(4.1, 5.3, 6.2, 81.0, 97.0, 104.0)
    return Structure(lattice, ["Zn", "O", "O"], [[0.1, 0.2, 0.3], [0.6, 0.1, 0.9], [0.4, 0.7, 0.2]])


def metric_tensor(s: Structure) -> np.ndarray:
    """Σᵢ aᵢ aᵢᵀ (L Lᵀ, columns of L = lattice vectors): turns as R T Rᵀ."""
    cols = s.lattice.matrix.T
    return cols @ cols.T


def signed_volume(s: Structure) -> np.ndarray:
    """det L: a pseudoscalar (changes sign under a reflection)."""
    return np.asarray(np.linalg.det(s.lattice.matrix))


# ------------------------------------------------------------------------------------------------ random_orthogonal
def test_random_orthogonal_is_orthogonal_with_the_requested_determinant():
    rng = np.random.default_rng(0)
    for reflection, det in ((False, 1.0), (True, -1.0)):
        for _ in range(20):
            r = random_orthogonal(rng, reflection=reflection)
            np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
            assert np.linalg.det(r) == pytest.approx(det)
    dets = {round(np.linalg.det(random_orthogonal(rng, reflection=None))) for _ in range(40)}
    assert dets == {-1, 1}


def test_random_orthogonal_is_reproducible_from_a_seed():
    np.testing.assert_array_equal(random_orthogonal(7), random_orthogonal(7))
    assert not np.allclose(random_orthogonal(7), random_orthogonal(8))


def test_random_rotations_follow_the_haar_moments():
    """Haar on SO(3): E[R] = 0, E[tr R] = 0, E[(tr R)²] = 1 (tr R = 1 + 2 cos ω, ω with density (1 − cos ω)/π)."""
    rng = np.random.default_rng(1)
    mats = np.stack([random_orthogonal(rng) for _ in range(4000)])
    traces = np.trace(mats, axis1=1, axis2=2)
    assert np.abs(mats.mean(axis=0)).max() < 0.05
    assert abs(traces.mean()) < 0.05
    assert traces.var() == pytest.approx(1.0, abs=0.08)


# ------------------------------------------------------------------------------------------------ rotate_structure
def test_rotate_structure_moves_every_atom_to_r_x_and_keeps_the_crystal(crystal):
    r = random_orthogonal(3, reflection=True)
    turned = rotate_structure(crystal, r)
    np.testing.assert_allclose(turned.cart_coords, crystal.cart_coords @ r.T, atol=1e-12)
    np.testing.assert_allclose(turned.lattice.matrix, crystal.lattice.matrix @ r.T, atol=1e-12)
    np.testing.assert_allclose(turned.frac_coords, crystal.frac_coords)
    np.testing.assert_allclose(turned.distance_matrix, crystal.distance_matrix, atol=1e-12)
    assert [str(s) for s in turned.species] == [str(s) for s in crystal.species]
    assert turned is not crystal and crystal.lattice.abc == pytest.approx((4.1, 5.3, 6.2))  # input untouched


def test_rotate_structure_refuses_a_matrix_that_is_not_orthogonal(crystal):
    with pytest.raises(ValueError, match="orthogonal"):
        rotate_structure(crystal, 2 * np.eye(3))


# ------------------------------------------------------------------------------------------------ transform
def test_transform_is_the_representation_of_each_rank():
    r = random_orthogonal(4, reflection=True)
    v = np.array([1.0, -2.0, 0.5])
    t = np.outer(v, v) + np.eye(3)
    assert transform(r, 3.0) == 3.0
    assert transform(r, 3.0, pseudo=True) == pytest.approx(-3.0)
    np.testing.assert_allclose(transform(r, v), r @ v)
    np.testing.assert_allclose(transform(r, t), r @ t @ r.T)
    np.testing.assert_allclose(transform(r, t, pseudo=True), -(r @ t @ r.T))
    with pytest.raises(ValueError, match="shape"):
        transform(r, np.zeros((3, 3, 3)))


# ------------------------------------------------------------------------------------------------ the checks
def test_hand_made_equivariant_functions_pass(crystal):
    errors = assert_equivariant(metric_tensor, crystal, n=6)
    assert len(errors) == 6 and max(errors) < 1e-12
    assert_equivariant(lambda s: s.lattice.matrix.sum(axis=0), crystal)  # a vector, a + b + c → R(a + b + c)
    assert_equivariant(lambda s: s.volume, crystal)  # an invariant scalar
    assert_equivariant(signed_volume, crystal, pseudo=True)  # a pseudoscalar with the det R factor
    batched = assert_equivariant(lambda ss: [metric_tensor(s) for s in ss], crystal, batched=True)
    assert max(batched) < 1e-12


def test_a_non_equivariant_function_fails_with_a_clear_message(crystal):
    def diagonal_only(s: Structure) -> np.ndarray:  # keeps the lab-frame diagonal: depends on orientation
        return np.diag(np.diag(metric_tensor(s)))

    with pytest.raises(AssertionError, match=r"not equivariant: max\|f\(RX\) - ρ\(R\) f\(X\)\| = .* > atol 1e-05"):
        assert_equivariant(diagonal_only, crystal)
    r = random_orthogonal(0)
    assert equivariance_error(diagonal_only, crystal, r) > 1.0


def test_a_pseudoscalar_fails_as_a_true_scalar_only_under_reflections(crystal):
    proper, improper = random_orthogonal(5), random_orthogonal(5, reflection=True)
    assert equivariance_error(signed_volume, crystal, proper) < 1e-9
    assert equivariance_error(signed_volume, crystal, improper) == pytest.approx(2 * crystal.volume)
    with pytest.raises(AssertionError, match=r"det R = -1"):
        assert_equivariant(signed_volume, crystal, rotations=[proper, improper])


def test_equivariance_check_returns_both_outputs_and_the_expected_one(crystal):
    r = random_orthogonal(9, reflection=True)
    out = equivariance_check(metric_tensor, crystal, r)
    np.testing.assert_allclose(out.expected, r @ out.f_x @ r.T)
    np.testing.assert_allclose(out.f_rx, metric_tensor(rotate_structure(crystal, r)))
    assert out.error == pytest.approx(np.abs(out.f_rx - out.expected).max())


def test_nan_output_is_never_equivariant(crystal):
    with pytest.raises(AssertionError, match=r"not equivariant: max\|f\(RX\) - ρ\(R\) f\(X\)\| = nan > atol 1e-05"):
        assert_equivariant(lambda s: np.full((3, 3), np.nan), crystal, n=1)
