"""Exact O(3) equivariance of GoeCTP, f(RX) = R f(X) Rᵀ, checked by rotating the *structure* and rebuilding the graph.

Random crystals, rotations and reflections come from hypothesis; every model is a small untrained network with fixed
seed, run in float64 with a realistic target scale (ε ≈ 5 ± 5), so the errors below are absolute ε units.
"""

from __future__ import annotations

import zlib
from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure
from torch_geometric.data import Batch

import goectp
from goectp.graph import build_crystal_graph
from goectp.testing import assert_equivariant, equivariance_error, random_orthogonal, rotate_structure

TOL = 1e-5
VARIANTS = ("goectp", "mat", "icom")
PAPER = {"cell_reduction": "none", "pooling": "sum", "symmetrize": False}  # the paper's model, no extra option
OPTIONS = {
    "plain": PAPER,
    "niggli": {**PAPER, "cell_reduction": "niggli"},
    "primitive": {**PAPER, "cell_reduction": "primitive", "pooling": "mean"},
    "mean": {**PAPER, "pooling": "mean"},
    "symmetrize": {**PAPER, "symmetrize": True},
    "positive_definite": {**PAPER, "positive_definite": True},
    "all": {
        "cell_reduction": "niggli",
        "pooling": "mean",
        "symmetrize": True,
        "positive_definite": True,
        "sign_average": True,
    },
}
FAST = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ELEMENTS = ["Li", "O", "Ti", "Ba", "F", "Si", "Zn", "Cs", "N"]


@cache
def model(variant: str, option: str = "plain", head: str = "tensor") -> goectp.GoeCTP:
    """Small fixed-seed float64 model (cached: the tests never change its weights)."""
    torch.manual_seed(zlib.crc32(f"{variant}/{option}/{head}".encode()))  # a fixed integer (hash() is salted)
    net = goectp.build_model(
        variant, hidden=16 if variant == "goectp" else 32, num_layers=2, head=head, num_rbf=32, **OPTIONS[option]
    )
    net.set_target_stats(5.0, 5.0)
    return net.double().eval()


def random_crystal(seed: int, system: str, n_atoms: int) -> Structure:
    """A random crystal of the given lattice system with atoms at least 1.4 Å apart."""
    rng = np.random.default_rng(seed)
    volume_per_atom = rng.uniform(10.0, 20.0)
    if system == "cubic":
        lattice = Lattice.cubic((volume_per_atom * max(n_atoms, 2)) ** (1 / 3))
    elif system == "monoclinic":
        a, b, c = rng.uniform(3.0, 6.0, 3)
        lattice = Lattice.monoclinic(a, b, c, rng.uniform(95.0, 120.0))
    else:
        a, b, c = rng.uniform(3.0, 6.0, 3)
        lattice = Lattice.from_parameters(a, b, c, *rng.uniform(70.0, 110.0, 3))
    for _ in range(100):
        structure = Structure(lattice, list(rng.choice(ELEMENTS, n_atoms)), rng.random((n_atoms, 3)))
        close = structure.get_neighbor_list(1.4)[0]
        if len(close) == 0:
            return structure
    raise AssertionError("could not place atoms")  # pragma: no cover - lattices above always have room


crystals = st.builds(
    random_crystal, st.integers(0, 2**32 - 1), st.sampled_from(["triclinic", "monoclinic", "cubic"]), st.integers(1, 4)
)


def orthogonal(seed: int, proper: bool) -> np.ndarray:
    return random_orthogonal(seed, reflection=not proper)


def predictor(net: torch.nn.Module, use_frame: bool | None = None):
    """The model as a batched function of structures, for :mod:`goectp.testing` (graphs rebuilt from each)."""
    return lambda structures: goectp.predict(structures, net, device="cpu", use_frame=use_frame)


def error(net: torch.nn.Module, structure: Structure, rot: np.ndarray, use_frame: bool | None = None) -> float:
    return equivariance_error(predictor(net, use_frame), structure, rot, batched=True)


# ---------------------------------------------------------------------------------------------------------------
# f(RX) = R f(X) Rᵀ


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("variant", VARIANTS)
@FAST
@given(structure=crystals, rotation_seed=st.integers(0, 2**32 - 1), proper=st.booleans())
def test_prediction_rotates_with_the_crystal(variant, option, structure, rotation_seed, proper):
    net = model(variant, option)
    rot = orthogonal(rotation_seed, proper)
    assert error(net, structure, rot) < TOL


@pytest.mark.parametrize("variant", VARIANTS)
def test_point_reflection_and_mirrors_of_a_real_looking_crystal(variant, triclinic):
    net = model(variant, "all")
    rotations = (-np.eye(3), np.diag([-1.0, 1.0, 1.0]), orthogonal(5, proper=False))
    assert_equivariant(predictor(net), triclinic, rotations=rotations, atol=TOL, batched=True)


# ---------------------------------------------------------------------------------------------------------------
# invariances and output form


@pytest.mark.parametrize("variant", VARIANTS)
@FAST
@given(structure=crystals, seed=st.integers(0, 2**32 - 1))
def test_invariant_to_atom_order_translation_and_wrapping(variant, structure, seed):
    rng = np.random.default_rng(seed)
    net = model(variant, "all")
    n = len(structure)
    perm = rng.permutation(n)
    permuted = Structure(structure.lattice, [structure.species[i] for i in perm], structure.frac_coords[perm])
    translated = Structure(structure.lattice, structure.species, structure.frac_coords + rng.random(3))
    wrapped = Structure(structure.lattice, structure.species, structure.frac_coords + rng.integers(-3, 4, size=(n, 3)))
    eps = goectp.predict([structure, permuted, translated, wrapped], net, device="cpu")
    assert np.abs(eps[1:] - eps[0]).max() < 1e-9


@pytest.mark.parametrize("option", ["plain", "all"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_head_output_is_symmetric(variant, option, triclinic, perovskite):
    """The tensor head itself gives symmetric tensors: forward's final ½(ε + εᵀ) only removes round-off."""
    net = model(variant, option)
    batch = Batch.from_data_list(goectp.api.graphs_for([triclinic, perovskite], net))
    with torch.no_grad():
        pooled, frame = net.embed(batch)
        eps = net.head(pooled, frame)
    assert eps.shape == (pooled.size(0), 3, 3) and eps.abs().max() > 0.1
    # round-off of F ε̃ Fᵀ only: a few ulps of the largest entry (sum pooling makes entries of ~1e3)
    torch.testing.assert_close(eps, eps.transpose(-1, -2), rtol=0, atol=1e-14 * float(eps.abs().max()))


def rock_salt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def rock_salt_primitive() -> Structure:
    return rock_salt().get_primitive_structure()


@pytest.mark.parametrize("variant", VARIANTS)
def test_cubic_crystals_are_isotropic_after_symmetrisation(variant, perovskite):
    stretched = perovskite.copy()
    stretched.make_supercell([2, 1, 1])  # tetragonal cell of a cubic crystal: symmetry must come from the crystal
    cubic = [
        perovskite,
        rock_salt(),
        rock_salt_primitive(),
        rotate_structure(perovskite, orthogonal(3, proper=False)),
        rotate_structure(stretched, orthogonal(4, proper=True)),
    ]
    eps = goectp.predict(cubic, model(variant, "symmetrize"), device="cpu")
    iso = np.trace(eps, axis1=1, axis2=2)[:, None, None] / 3 * np.eye(3)
    assert np.abs(eps - iso).max() < 1e-8
    # control: the same network without symmetrisation is not isotropic on these crystals
    raw = goectp.predict(cubic, model(variant, "plain"), device="cpu")
    raw_iso = np.trace(raw, axis1=1, axis2=2)[:, None, None] / 3 * np.eye(3)
    assert np.abs(raw - raw_iso).max() > 1e-3


@pytest.mark.parametrize("variant", VARIANTS)
@FAST
@given(structure=crystals)
def test_positive_definite_output_has_eigenvalues_at_least_one(variant, structure):
    for option in ("positive_definite", "all"):
        eps = goectp.predict(structure, model(variant, option), device="cpu")[0]
        assert np.linalg.eigvalsh(eps).min() >= 1.0 - 1e-12


@pytest.mark.parametrize("variant", VARIANTS)
@FAST
@given(structure=crystals, rotation_seed=st.integers(0, 2**32 - 1), proper=st.booleans())
def test_scalar_head_is_invariant(variant, structure, rotation_seed, proper):
    net = model(variant, "plain", head="scalar")
    rot = orthogonal(rotation_seed, proper)
    values = goectp.predict([structure, rotate_structure(structure, rot)], net, device="cpu")
    assert values.shape == (2,)
    assert abs(values[1] - values[0]) < 1e-9


# ---------------------------------------------------------------------------------------------------------------
# the backbone g alone is not equivariant: the frame is what makes f exact


@pytest.mark.parametrize("variant", VARIANTS)
def test_backbone_without_frame_is_measurably_not_equivariant(variant, triclinic):
    net = model(variant, "plain")
    errors = [error(net, triclinic, orthogonal(seed, proper=seed % 2 == 0), use_frame=False) for seed in range(4)]
    assert min(errors) > 1e-2, errors
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(predictor(net, use_frame=False), triclinic, atol=TOL, batched=True)
    # with the frame, on the very same inputs, the error is float noise
    assert max(error(net, triclinic, orthogonal(seed, proper=seed % 2 == 0)) for seed in range(4)) < TOL


def test_backbone_prediction_is_the_frameless_forward(triclinic):
    net = model("icom", "plain")
    batch = Batch.from_data_list([build_crystal_graph(triclinic)])
    with torch.no_grad():
        direct = net.backbone_prediction(batch)
        framed = net(batch)
    np.testing.assert_allclose(direct.numpy()[0], goectp.predict(triclinic, net, use_frame=False)[0], atol=1e-12)
    assert (direct - framed).abs().max() > 1e-3
