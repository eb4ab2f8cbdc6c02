"""Crystal descriptors (:mod:`goectp.features.descriptors`): values checked by hand on rock salt, invariance to the
cell and orientation checked on the structure (rotated, re-based, enlarged, shifted), and the ``chgnet-descriptors``
extractor's layout."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from goectp.features.descriptors import (
    DESCRIPTOR_DIM,
    ELEMENT_PROPERTIES,
    crystal_descriptors,
    descriptor_inputs,
)

N_PROPS = len(ELEMENT_PROPERTIES) + 6  # + max/min oxidation state and 4 block flags
MEAN, LO, HI = 0, N_PROPS, 2 * N_PROPS
CELL = 5 * N_PROPS  # volume/atom, density, elements, space group, packing, nearest min, nearest mean
CHARGES = CELL + 7
SHELLS = CHARGES + 8


def rocksalt(a: float = 5.64) -> Structure:
    lat = Lattice(0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]))
    return Structure(lat, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def wurtzite() -> Structure:  # polar (P6_3mc): no inversion
    return Structure(
        Lattice.hexagonal(3.25, 5.21),
        ["Zn", "Zn", "O", "O"],
        [[1 / 3, 2 / 3, 0.0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.382], [2 / 3, 1 / 3, 0.882]],
    )


def triclinic() -> Structure:
    lat = Lattice.from_parameters(4.1, 5.3, 6.2, 77.0, 84.0, 101.0)
    return Structure(lat, ["Mg", "O", "Si", "O"], [[0, 0, 0], [0.31, 0.12, 0.44], [0.6, 0.55, 0.2], [0.8, 0.3, 0.9]])


def test_rock_salt_descriptors_are_the_hand_computed_values():
    a = 5.64
    d = crystal_descriptors(rocksalt(a))
    assert d.shape == (DESCRIPTOR_DIM,)
    z = ELEMENT_PROPERTIES.index("Z")
    assert d[MEAN + z] == pytest.approx(14.0) and d[LO + z] == 11 and d[HI + z] == 17
    assert d[CELL] == pytest.approx(a**3 / 4 / 2)  # volume per atom: the fcc primitive cell holds 2 atoms
    assert d[CELL + 2] == 2 and d[CELL + 3] == 225  # two elements, Fm-3m
    assert d[CELL + 5] == pytest.approx(a / 2) and d[CELL + 6] == pytest.approx(a / 2)  # nearest neighbour a/2
    assert d[CHARGES] == 1 and d[CHARGES + 1] == pytest.approx(1) and d[CHARGES + 3] == pytest.approx(1)  # Na+ Cl-
    assert d[SHELLS] == 6 and d[SHELLS + 1] == 6 and d[SHELLS + 2] == 6  # octahedral coordination
    assert d[SHELLS + 7] == pytest.approx(abs(3.16 - 0.93))  # |X(Cl) - X(Na)|, every neighbour of the other kind


@pytest.mark.parametrize("make", [rocksalt, wurtzite, triclinic])
def test_descriptors_do_not_depend_on_the_cell_or_the_orientation(make):
    s = make()
    ref = crystal_descriptors(s)
    q = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))[0]
    basis = np.array([[1, 1, 0], [0, 1, 0], [1, 0, -1]])  # det -1: another basis of the same lattice
    variants = [
        Structure(Lattice(s.lattice.matrix @ q.T), s.species, s.frac_coords),  # rotated or reflected
        Structure(Lattice(basis @ s.lattice.matrix), s.species, s.frac_coords @ np.linalg.inv(basis)),
        s.copy().make_supercell([2, 2, 1]),
        Structure(s.lattice, s.species, s.frac_coords + [0.37, -0.21, 1.4]),  # shifted, unwrapped
    ]
    for other in variants:
        np.testing.assert_allclose(crystal_descriptors(other), ref, rtol=1e-9, atol=1e-9, equal_nan=True)


def test_missing_element_data_gives_finite_inputs_not_errors():
    """Helium has no oxidation states and few tabulated properties: the inputs are still finite numbers."""
    s = Structure(Lattice.cubic(4.2), ["He", "Ar"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    d = crystal_descriptors(s)
    assert np.isnan(d).any() and d[CHARGES] == 0  # undefined entries, and "no oxidation states found"
    x = descriptor_inputs(s)
    assert x.shape == (DESCRIPTOR_DIM,) and np.isfinite(x).all()
    known = ~np.isnan(d)
    np.testing.assert_allclose(x[known], (np.sign(d) * np.log1p(np.abs(d)))[known])
    assert (x[~known] == 0).all()


def test_the_chgnet_descriptors_extractor_appends_the_crystal_row_to_every_atom():
    pytest.importorskip("chgnet")
    import pymatgen.core

    from goectp.features import feature_dim, get_extractor
    from goectp.features.registry import extractor_version

    s = wurtzite()
    (feats,) = get_extractor("chgnet-descriptors")([s])
    (atoms,) = get_extractor("chgnet")([s])
    assert feats.shape == (len(s), feature_dim("chgnet-descriptors")) == (4, 128 + DESCRIPTOR_DIM)
    np.testing.assert_array_equal(feats[:, :128], atoms)
    np.testing.assert_allclose(feats[:, 128:], np.tile(descriptor_inputs(s), (4, 1)), rtol=1e-6)
    # the feature cache is keyed by this: it names CHGNet's and pymatgen's versions, the same with or without loading
    version = get_extractor("chgnet-descriptors").version
    assert version == extractor_version("chgnet-descriptors") and pymatgen.core.__version__ in version


def test_a_chgnet_descriptors_model_is_equivariant_and_independent_of_the_cell():
    """Structure rotated/reflected or re-described (supercell, det −1 basis), features and graph rebuilt."""
    pytest.importorskip("chgnet")
    import torch

    import goectp
    from goectp.api import graphs_for
    from goectp.features import feature_dim

    torch.manual_seed(5)
    config = dict(hidden=16, num_rbf=16, node_features="chgnet-descriptors")
    model = goectp.build_model(**config, node_feature_dim=feature_dim("chgnet-descriptors")).double().eval()
    s = wurtzite()
    ref = goectp.predict(s, model, device="cpu")[0]
    q = np.linalg.qr(np.random.default_rng(8).normal(size=(3, 3)))[0]
    for r in (q, -q):
        turned = Structure(Lattice(s.lattice.matrix @ r.T), s.species, s.frac_coords)
        np.testing.assert_allclose(goectp.predict(turned, model, device="cpu")[0], r @ ref @ r.T, atol=1e-5, rtol=0)
    basis = np.array([[1, 1, 0], [0, 1, 0], [1, 0, -1]])
    for other in (
        s.copy().make_supercell([2, 2, 1]),
        Structure(Lattice(basis @ s.lattice.matrix), s.species, s.frac_coords @ np.linalg.inv(basis)),
    ):
        np.testing.assert_allclose(goectp.predict(other, model, device="cpu")[0], ref, atol=1e-6, rtol=0)
    (graph,) = graphs_for(s, model)
    graph.x_extra[:, 128:] = 0  # the descriptors really enter the prediction
    with torch.no_grad():
        from torch_geometric.data import Batch

        assert np.abs(model(Batch.from_data_list([graph]))[0].numpy() - ref).max() > 1e-4
