"""The ionic part from physics: the closed form ε_ion = e²/(ε₀Ω) Z* Φ⁺ Z*ᵀ, Γ-point force constants through phonopy,
the Born-charge data, site symmetry, and the equivariant Born-charge model."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation
from torch_geometric.data import Batch

from goectp.graph import build_crystal_graph
from goectp.models.born import BornChargeModel, with_site_operations
from goectp.physics import (
    E2_OVER_EPS0,
    acoustic_sum_rule_error,
    enforce_acoustic_sum_rule,
    ionic_dielectric,
    ionic_modes,
)
from goectp.physics.born_data import SUM_RULE_TOLERANCE, cell_mapping, read_born_charges
from goectp.physics.phonons import ForceConstants, cached_force_constants, force_constant_key, gamma_force_constants
from goectp.physics.site_symmetry import site_operations, symmetrize_site_tensors

REPO = Path(__file__).resolve().parents[1]


def rocksalt(a: float = 5.64) -> Structure:
    return Structure(Lattice.cubic(a), ["Na", "Cl"] * 4, _fcc_pairs())


def _fcc_pairs() -> list:
    fcc = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
    out = []
    for p in fcc:
        out += [p, [(p[0] + 0.5) % 1, p[1], p[2]]]
    return out


def primitive_rocksalt(a: float = 5.64) -> Structure:
    lattice = Lattice(np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * a)
    return Structure(lattice, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def rutile() -> Structure:
    return Structure(
        Lattice.tetragonal(4.6, 2.96),
        ["Ti", "Ti", "O", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.3, 0.3, 0], [0.7, 0.7, 0], [0.8, 0.2, 0.5], [0.2, 0.8, 0.5]],
    )


def random_force_constants(rng: np.random.Generator, n: int) -> np.ndarray:
    """A symmetric positive semidefinite ``[3N, 3N]`` matrix whose null space is the uniform translations."""
    a = rng.normal(size=(3 * n, 3 * n))
    phi = a @ a.T + 3 * n * np.eye(3 * n)
    t = np.kron(np.ones((n, 1)), np.eye(3)) / np.sqrt(n)
    project = np.eye(3 * n) - t @ t.T
    return project @ phi @ project


# ---------------------------------------------------------------------------------------------------- closed form
def test_diatomic_crystal_by_hand():
    """Z = ±q I, Φ = k [[I, −I], [−I, I]]: one optical mode per axis, ε_ion = e²/(ε₀Ω) q²/k exactly."""
    q, k, volume = 1.1, 2.5, 45.0
    born = np.stack([q * np.eye(3), -q * np.eye(3)])
    phi = np.kron(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.eye(3)) * k
    eps = ionic_dielectric(born, phi, volume)
    np.testing.assert_allclose(eps, E2_OVER_EPS0 * q**2 / (k * volume) * np.eye(3), rtol=1e-12)
    masses = np.array([22.99, 35.45])
    modes = ionic_modes(born, phi, volume, masses)
    reduced = masses.prod() / masses.sum()
    expected_thz = np.sqrt(2 * k / (2 * reduced)) * 15.633302  # ω² = k (1/M1 + 1/M2)
    np.testing.assert_allclose(modes.frequency_thz, expected_thz, rtol=1e-6)
    np.testing.assert_allclose(modes.tensor, eps, rtol=1e-12, atol=1e-12)  # off-diagonals: 0 up to LAPACK rounding
    np.testing.assert_allclose(modes.shares().sum(), 1.0)


def test_masses_change_frequencies_not_the_tensor_and_modes_sum_to_it():
    rng = np.random.default_rng(0)
    n = 5
    born = enforce_acoustic_sum_rule(rng.normal(size=(n, 3, 3)))
    phi = random_force_constants(rng, n)
    a = ionic_modes(born, phi, 80.0, masses=np.ones(n))
    b = ionic_modes(born, phi, 80.0, masses=rng.uniform(1, 200, n))
    np.testing.assert_allclose(a.tensor, b.tensor, rtol=1e-9, atol=1e-12)
    assert not np.allclose(a.frequency_thz, b.frequency_thz)
    np.testing.assert_allclose(b.contribution.sum(axis=0), b.tensor, atol=1e-12)
    assert len(b.frequency_thz) == 3 * n - 3 and b.num_unstable == 0
    # the pseudo-inverse form of the module docstring gives the same tensor
    bvec = born.transpose(0, 2, 1).reshape(3 * n, 3)  # (b_a)_{ic} = Z_i[a, c]
    direct = E2_OVER_EPS0 / 80.0 * bvec.T @ np.linalg.pinv(phi, rcond=1e-10) @ bvec
    np.testing.assert_allclose(a.tensor, direct, rtol=1e-8)


@pytest.mark.parametrize("reflect", [False, True])
def test_closed_form_is_equivariant(reflect):
    rng = np.random.default_rng(1)
    n = 4
    born = enforce_acoustic_sum_rule(rng.normal(size=(n, 3, 3)))
    phi = random_force_constants(rng, n).reshape(n, 3, n, 3).transpose(0, 2, 1, 3)  # [N, N, 3, 3]
    r = Rotation.random(random_state=2).as_matrix() * (-1 if reflect else 1)
    eps = ionic_dielectric(born, phi, 60.0)
    turned = ionic_dielectric(r @ born @ r.T, np.einsum("ab,ijbc,dc->ijad", r, phi, r), 60.0)
    np.testing.assert_allclose(turned, r @ eps @ r.T, atol=1e-10)


def test_unstable_and_soft_modes_are_left_out_and_counted():
    born = np.stack([np.eye(3), -np.eye(3)])
    phi = np.kron(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.diag([2.0, 2.0, -0.5]))  # z softens to ω² < 0
    modes = ionic_modes(born, phi, 40.0, masses=np.ones(2))
    assert modes.num_unstable == 1 and modes.included.sum() == 2
    assert modes.tensor[2, 2] == 0 and modes.tensor[0, 0] > 0


def test_charges_off_the_sum_rule_are_corrected_so_the_masses_still_do_not_matter():
    rng = np.random.default_rng(3)
    n = 4
    born = rng.normal(size=(n, 3, 3))  # Σ_i Z*_i ≠ 0
    phi = random_force_constants(rng, n)
    light = ionic_modes(born, phi, 70.0, masses=np.ones(n))
    heavy = ionic_modes(born, phi, 70.0, masses=np.array([1.0, 16.0, 50.0, 200.0]))
    np.testing.assert_allclose(light.tensor, heavy.tensor, rtol=1e-9, atol=1e-12)
    enforced = ionic_modes(enforce_acoustic_sum_rule(born), phi, 70.0, masses=np.ones(n))
    np.testing.assert_allclose(light.tensor, enforced.tensor, rtol=1e-12, atol=1e-12)


def test_a_frequency_cutoff_needs_the_masses():
    born = np.stack([np.eye(3), -np.eye(3)])
    phi = np.kron(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.eye(3))
    with pytest.raises(ValueError, match="needs the atomic masses"):
        ionic_modes(born, phi, 40.0, min_frequency_thz=0.3)
    # without masses, what the pseudo-inverse keeps: a stiff spring counts, a null direction does not
    weak = np.kron(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.diag([1.0, 1.0, 0.0]))
    eps = ionic_modes(born, weak, 40.0).tensor
    assert eps[0, 0] > 0 and eps[2, 2] == 0


def test_sum_rule_helpers_and_bad_shapes():
    z = np.stack([np.eye(3) * 2, np.eye(3) * -1.5])
    assert acoustic_sum_rule_error(z) == pytest.approx(0.5)
    assert acoustic_sum_rule_error(enforce_acoustic_sum_rule(z)) < 1e-15
    with pytest.raises(ValueError, match=r"\[N, 3, 3\]"):
        ionic_dielectric(np.zeros((2, 3)), np.zeros((6, 6)), 10.0)
    with pytest.raises(ValueError, match="force constants must be"):
        ionic_dielectric(z, np.zeros((5, 5)), 10.0)
    with pytest.raises(ValueError, match="volume must be positive"):
        ionic_dielectric(z, np.eye(6), 0.0)


# ---------------------------------------------------------------------------------------------------- phonopy
class HarmonicForceField:
    """Forces ``−Φ u`` of a known Γ-point force-constant matrix (u = displacement from the reference, wrapped)."""

    name = version = "harmonic-test"

    def __init__(self, reference: Structure, phi: np.ndarray) -> None:
        self.reference, self.phi, self.calls = reference, phi, 0

    def __call__(self, atoms):
        out = []
        for a in atoms:
            self.calls += 1
            frac = a.get_scaled_positions(wrap=False) - self.reference.frac_coords
            frac -= np.rint(frac)
            u = (frac @ self.reference.lattice.matrix).reshape(-1)
            out.append(-(self.phi @ u).reshape(-1, 3))
        return out


def test_phonopy_recovers_known_force_constants_and_caches(tmp_path):
    s = primitive_rocksalt()
    k = 1.7
    phi = np.kron(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.eye(3)) * k
    ff = HarmonicForceField(s, phi)
    fc = gamma_force_constants(s, ff)
    assert fc.force_constants.shape == (2, 2, 3, 3) and fc.num_displacements == ff.calls == 4  # Oh: one ± pair per atom
    got = fc.force_constants.transpose(0, 2, 1, 3).reshape(6, 6)
    np.testing.assert_allclose(got, phi, atol=1e-8)
    again = cached_force_constants(s, ff, tmp_path)
    calls = ff.calls
    cached = cached_force_constants(s, ff, tmp_path)  # read back, no force evaluation
    assert ff.calls == calls and isinstance(cached, ForceConstants)
    np.testing.assert_array_equal(cached.force_constants, again.force_constants)
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_force_constant_progress_counts_batches_and_a_raise_stops_without_caching(tmp_path):
    """progress(done, total): from 0 to every displaced cell in the force field's batches, the same force constants
    as without it; an exception it raises stops the computation and nothing is cached."""
    s = rutile()
    rng = np.random.default_rng(4)
    ff = HarmonicForceField(s, random_force_constants(rng, len(s)))
    ff.batch_atoms = 2 * len(s)  # two displaced cells per batch
    seen = []
    fc = gamma_force_constants(s, ff, progress=lambda done, total: seen.append((done, total)))
    total = fc.num_displacements
    assert seen[0] == (0, total) and seen[-1] == (total, total) and len(seen) == 1 + -(-total // 2)
    assert all(b[0] - a[0] in (1, 2) for a, b in zip(seen, seen[1:]))
    np.testing.assert_array_equal(fc.force_constants, gamma_force_constants(s, ff).force_constants)

    def stop(done, total):
        if done >= 2:
            raise KeyboardInterrupt("stopped by the caller")

    with pytest.raises(KeyboardInterrupt, match="stopped by the caller"):
        cached_force_constants(s, ff, tmp_path, progress=stop)
    assert not list(tmp_path.iterdir())
    cached_force_constants(s, ff, tmp_path)
    calls = ff.calls
    cached_force_constants(s, ff, tmp_path, progress=stop)  # cached: no evaluation, no progress
    assert ff.calls == calls


@pytest.mark.parametrize("damage", ["truncated", "empty", "not a zip", "wrong shape"])
def test_a_damaged_cache_file_is_computed_again(tmp_path, damage):
    s = primitive_rocksalt()
    phi = np.kron(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.eye(3)) * 1.7
    ff = HarmonicForceField(s, phi)
    good = cached_force_constants(s, ff, tmp_path)
    (path,) = tmp_path.glob("*.npz")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not a zip":
        path.write_bytes(b"\x00garbage" * 10)
    else:
        np.savez_compressed(path, force_constants=np.zeros((5, 5, 3, 3)), masses=np.ones(5), volume=1.0,
                            num_displacements=1, seconds=0.0, force_field=np.array("x"))  # fmt: skip
    calls = ff.calls
    again = cached_force_constants(s, ff, tmp_path)
    assert ff.calls > calls  # recomputed, not read
    np.testing.assert_allclose(again.force_constants, good.force_constants, atol=1e-12)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the file replaced, no temporary left behind
    assert ForceConstants.from_npz(path).force_constants.shape == (2, 2, 3, 3)


def test_the_cache_key_does_not_see_float_noise():
    """1 − 1e-16 wraps to the same key as 0, and −1e-17 in the lattice to the same key as +0 (the sign of a zero
    once changed keys between runs and lost 80 cached force constants)."""
    s = primitive_rocksalt()
    ff = HarmonicForceField(s, np.zeros((6, 6)))
    lattice = s.lattice.matrix.copy()
    lattice[lattice == 0] = -1e-17
    noisy = Structure(Lattice(lattice), s.species, [[1 - 1e-16, -1e-17, 1e-17], s.frac_coords[1]])
    assert noisy.frac_coords[0, 0] > 0.5  # pymatgen keeps 1 − 1e-16 unwrapped: the key must wrap it
    assert force_constant_key(noisy, ff) == force_constant_key(s, ff)
    moved = Structure(s.lattice, s.species, [[0.01, 0, 0], s.frac_coords[1]])
    assert force_constant_key(moved, ff) != force_constant_key(s, ff)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sevennet", "sevennet-l3i5", "sevennet-mf-0"])
def test_sevennet_gamma_phonon_of_rocksalt_nacl(name):
    """SevenNet-0, -l3i5, MF-0 (PBE) via phonopy: sum rule, symmetry, NaCl's TO mode near the measured 4.9 THz."""
    pytest.importorskip("sevenn")
    from goectp.physics.phonons import force_field

    s = primitive_rocksalt(5.64)
    ff = force_field(name, device="cpu")
    assert ff.name == name and ff.version.endswith(
        {"sevennet": "7net-0", "sevennet-l3i5": "7net-l3i5", "sevennet-mf-0": "7net-mf-0-PBE"}[name]
    )
    assert ff.batch_atoms <= 256  # memory: 2,048 atoms a pass took 11.5 GB (SevenNet-0) and 16 GB (-l3i5)
    fc = gamma_force_constants(s, ff)
    phi = fc.force_constants.transpose(0, 2, 1, 3).reshape(6, 6)
    np.testing.assert_allclose(phi, phi.T, atol=1e-6)
    np.testing.assert_allclose(phi.reshape(6, 2, 3).sum(axis=1), 0, atol=1e-6)  # translational sum rule
    modes = ionic_modes(np.stack([1.1 * np.eye(3), -1.1 * np.eye(3)]), fc.force_constants, s.volume, fc.masses)
    assert modes.num_unstable == 0
    np.testing.assert_allclose(modes.frequency_thz, modes.frequency_thz[0], rtol=1e-6)  # triply degenerate
    assert 3.5 < modes.frequency_thz[0] < 6.5
    assert 1.0 < np.trace(modes.tensor) / 3 < 5.0  # DFT's ionic ε̄ of NaCl: 2.6


def test_an_unknown_force_field_is_named_with_the_choices():
    from goectp.physics.phonons import force_field

    with pytest.raises(ValueError, match="unknown force field 'mace'.*'sevennet-mf-0-r2scan' or 'chgnet'"):
        force_field("mace")


@pytest.mark.slow
def test_sevennet_fidelities_are_checked_and_give_different_forces():
    """MF-0 takes a DFT fidelity by name (PBE by default, named in the cache key), a single-fidelity model none."""
    pytest.importorskip("sevenn")
    from ase import Atoms

    from goectp.physics.phonons import force_field

    with pytest.raises(ValueError, match="no fidelity 'HSE'.*'PBE', 'R2SCAN'"):
        force_field("sevennet-mf-0", modal="HSE")
    with pytest.raises(ValueError, match="single fidelity"):
        force_field("sevennet", modal="PBE")
    with pytest.raises(ValueError, match="is the R2SCAN fidelity"):
        force_field("sevennet-mf-0-r2scan", modal="PBE")
    pbe, scan = force_field("sevennet-mf-0"), force_field("sevennet-mf-0-r2scan")
    assert (pbe.name, scan.name) == ("sevennet-mf-0", "sevennet-mf-0-r2scan") and pbe.version != scan.version
    atoms = Atoms("NaCl", positions=[[0, 0, 0], [2.9, 0.1, 0]], cell=np.eye(3) * 5.64, pbc=True)
    f_pbe, f_scan = pbe([atoms])[0], scan([atoms])[0]
    np.testing.assert_allclose(f_pbe.sum(axis=0), 0, atol=1e-4)
    assert np.abs(f_pbe - f_scan).max() > 1e-3  # the fidelity reaches the model


# ---------------------------------------------------------------------------------------------------- data
def test_born_file_reader_validates_records(tmp_path):
    s = primitive_rocksalt()
    good = {"structure": s.as_dict(), "born_charges": [np.eye(3).tolist(), (-np.eye(3)).tolist()]}
    path = tmp_path / "born.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"mp-1": good, "mp-2": dict(good, born_charges=[np.eye(3).tolist()] * 2)}, f)
    records = read_born_charges(path)
    assert records["mp-1"].sum_rule_holds and not records["mp-2"].sum_rule_holds
    assert records["mp-2"].sum_rule_error == pytest.approx(2.0)
    for bad, message in [
        (dict(good, born_charges=[np.eye(3).tolist()]), r"must be \[2, 3, 3\]"),
        (dict(good, born_charges=[[[float("nan")] * 3] * 3] * 2), "NaN"),
        (dict(good, piezoelectric=[[0] * 5] * 3), "piezoelectric must be 3 x 6"),
        ("text", "is not an object"),
    ]:
        path.write_text(json.dumps({"mp-9": bad}))
        with pytest.raises(ValueError, match=message) as info:
            read_born_charges(path)
        assert str(path) in str(info.value) and "mp-9" in str(info.value)


@pytest.mark.data
def test_shared_born_charges_sum_rule(shared_data_dir):
    records = read_born_charges(shared_data_dir / "mp_born_charges.json.gz")
    assert len(records) == 2125 and sum(len(r.structure) for r in records.values()) == 36737
    errors = np.array([r.sum_rule_error for r in records.values()])
    assert (errors > 1).sum() == 14 and (errors > SUM_RULE_TOLERANCE).sum() == 105  # as the data README says


def test_conventional_cell_maps_onto_the_primitive_one():
    conventional = rocksalt()
    primitive = primitive_rocksalt()
    weights = cell_mapping(
        primitive.lattice.matrix.T, primitive.frac_coords, [1, 2], _with_numbers(conventional, {"Na": 1, "Cl": 2})
    )
    assert weights.shape == (2, 8)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert set(np.flatnonzero(weights[0])) == {0, 2, 4, 6}  # the four Na sites


def _with_numbers(s: Structure, numbers: dict) -> Structure:
    class Numbered:
        cart_coords = s.cart_coords

        def __iter__(self):
            for site in s:
                yield type("Site", (), {"specie": type("Sp", (), {"Z": numbers[site.specie.symbol]})})()

    return Numbered()


# ---------------------------------------------------------------------------------------------------- symmetry
def test_site_symmetry_gives_rutile_its_born_charge_form():
    s = rutile()
    rotations, perms = site_operations(s.lattice.matrix, s.frac_coords, [x.specie.Z for x in s])
    assert rotations.shape == (16, 3, 3) and perms.shape == (16, 6)
    z = symmetrize_site_tensors(np.random.default_rng(0).normal(size=(6, 3, 3)), rotations, perms)
    ti = z[0]
    assert ti[0, 0] == pytest.approx(ti[1, 1]) and abs(ti[0, 2]) < 1e-12 and abs(ti[2, 0]) < 1e-12  # xx = yy, no xz
    np.testing.assert_allclose(symmetrize_site_tensors(z, rotations, perms), z, atol=1e-12)  # a projection
    np.testing.assert_allclose(z[1], rotations[_sends(perms, 0, 1)] @ ti @ rotations[_sends(perms, 0, 1)].T, atol=1e-12)


def _sends(perms: np.ndarray, i: int, j: int) -> int:
    return int(np.flatnonzero(perms[:, i] == j)[0])


# ---------------------------------------------------------------------------------------------------- the model
def _born_model(seed: int = 0) -> BornChargeModel:
    torch.manual_seed(seed)
    model = BornChargeModel(hidden=16, num_rbf=8).double().eval()
    model.set_charges({22: 2.5, 8: -1.2}, scale=0.5)
    return model


def _predict(model: BornChargeModel, s: Structure) -> np.ndarray:
    graph = with_site_operations(build_crystal_graph(s, canonical=True))
    with torch.no_grad():
        return model(Batch.from_data_list([graph])).numpy()


@pytest.mark.parametrize("reflect", [False, True])
def test_born_model_is_equivariant_with_graphs_rebuilt(reflect):
    model = _born_model()
    s = rutile()
    z = _predict(model, s)
    r = Rotation.random(random_state=5).as_matrix() * (-1 if reflect else 1)
    turned = Structure(Lattice(s.lattice.matrix @ r.T), s.species, s.frac_coords)
    np.testing.assert_allclose(_predict(model, turned), r @ z @ r.T, atol=1e-5)
    assert np.abs(z.sum(axis=0)).max() < 1e-12  # acoustic sum rule, exactly


def test_born_model_follows_a_permutation_of_the_sites():
    model = _born_model(1)
    s = rutile()
    order = [3, 0, 5, 1, 4, 2]
    permuted = Structure(s.lattice, [s.species[i] for i in order], s.frac_coords[order])
    np.testing.assert_allclose(_predict(model, permuted), _predict(model, s)[order], atol=1e-5)


def test_born_model_by_hand_without_the_network():
    """With the node head zeroed, Z*_i = (q_i − mean q) I: the isotropic prior with the sum rule."""
    model = _born_model()
    for p in model.node_head.parameters():
        torch.nn.init.zeros_(p)
    z = _predict(model, rutile())
    mean_q = (2 * 2.5 + 4 * -1.2) / 6
    np.testing.assert_allclose(z[0], (2.5 - mean_q) * np.eye(3), atol=1e-12)
    np.testing.assert_allclose(z[2], (-1.2 - mean_q) * np.eye(3), atol=1e-12)


def test_born_model_on_a_cubic_site_is_isotropic():
    model = _born_model(2)
    z = _predict(model, primitive_rocksalt())
    for zi in z:
        np.testing.assert_allclose(zi, zi[0, 0] * np.eye(3), atol=1e-10)


def test_a_born_model_can_start_from_a_trained_backbone(tmp_path):
    """born_model_from_backbone: the backbone's weights are the trained model's, the head is new, and the result is
    still equivariant with the sum rule exact; a checkpoint of another kind is refused with its name."""
    from goectp.checkpoint import save_checkpoint
    from goectp.models.goectp import GoeCTP, GoeCTPConfig
    from goectp.training.born import born_model_from_backbone

    torch.manual_seed(3)
    trained = GoeCTP(GoeCTPConfig(hidden=16, num_rbf=8))
    path = save_checkpoint(tmp_path / "split0.pt", trained, split_seed=0)
    model = born_model_from_backbone(path).double().eval()
    for name, value in trained.state_dict().items():
        if not name.startswith("head."):
            torch.testing.assert_close(model.backbone.state_dict()[name].float(), value.float())
    model.set_charges({22: 2.5, 8: -1.2}, scale=0.5)
    s = rutile()
    r = Rotation.random(random_state=9).as_matrix() * -1
    turned = Structure(Lattice(s.lattice.matrix @ r.T), s.species, s.frac_coords)
    z = _predict(model, s)
    np.testing.assert_allclose(_predict(model, turned), r @ z @ r.T, atol=1e-5)
    assert np.abs(z.sum(axis=0)).max() < 1e-12
    born_path = tmp_path / "born.pt"
    save_checkpoint(born_path, model, split_seed=0)
    with pytest.raises(ValueError, match="born.pt: not a GoeCTP checkpoint"):
        born_model_from_backbone(born_path)


def test_the_ionic_operator_gives_the_closed_form_and_batches():
    """ionic_operator + ionic_tensor (the ε_ion loss of the Born training) equal ionic_modes' tensor for any charges
    obeying the sum rule, graph by graph in a batch of two cells padded to a common mode count; an unstable mode gives
    no operator."""
    from goectp.training.born import ionic_operator, ionic_tensor

    rng = np.random.default_rng(7)
    sizes, volumes = (3, 5), (50.0, 90.0)
    charges, ops, expected = [], [], []
    for n, volume in zip(sizes, volumes):
        born = enforce_acoustic_sum_rule(rng.normal(size=(n, 3, 3)))
        phi = random_force_constants(rng, n)
        masses = rng.uniform(1, 200, n)
        op = ionic_operator(phi, volume, masses)
        assert op.shape == (n, 3 * n - 3, 3)
        expected.append(ionic_modes(born, phi, volume, masses).tensor)
        charges.append(born)
        ops.append(np.pad(op, ((0, 0), (0, 12 - op.shape[1]), (0, 0))))  # zero modes change nothing
    batch = torch.tensor([0] * sizes[0] + [1] * sizes[1])
    eps = ionic_tensor(torch.from_numpy(np.concatenate(charges)), torch.from_numpy(np.concatenate(ops)), batch, 2)
    np.testing.assert_allclose(eps.numpy(), np.stack(expected), rtol=1e-9, atol=1e-12)
    unstable = np.kron(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.diag([2.0, 2.0, -0.5]))
    assert ionic_operator(unstable, 40.0, np.ones(2)) is None


def test_born_training_with_the_ionic_loss_moves_the_charges_toward_dft_eps_ion():
    """A few epochs on two rutile-like cells with an ε_ion term: targets are the DFT-charge ε_ion of each graph, the
    history records the validation ε_ion error, and that error falls from the first epoch to the kept one."""
    from goectp.training.born import BornTrainConfig, ionic_operator, train_born_model, with_ionic_targets

    rng = np.random.default_rng(3)
    graphs, ops = [], []
    for shift in (0.0, 0.02, 0.04):
        s = rutile()
        s.translate_sites([2, 3], [shift, shift, 0])
        graph = with_site_operations(build_crystal_graph(s, canonical=True))
        n = graph.num_nodes
        tr = np.where(graph.z.numpy() == 22, 6.5, -3.25)  # anomalous Ti charges, far from the prior
        graph.born = torch.from_numpy(enforce_acoustic_sum_rule(tr[:, None, None] * np.eye(3)))
        graphs.append(graph)
        ops.append(ionic_operator(random_force_constants(rng, n), 60.0, np.full(n, 30.0)))
    ops[2] = None  # a graph without force constants keeps only the charge loss
    assert with_ionic_targets(graphs, ops) == 2
    assert not bool(graphs[2].has_ionic) and float(graphs[2].ionic_op.abs().sum()) == 0
    cfg = BornTrainConfig(hidden=16, epochs=15, batch_size=2, lr=5e-3, ionic_weight=1.0)
    model, info = train_born_model(graphs, graphs[:2], cfg, log=lambda _: None)
    errors = [h["val_ionic"] for h in info["history"]]
    assert np.isfinite(errors).all() and info["best_val_ionic"] < errors[0]
    with pytest.raises(ValueError, match="ionic operator of shape"):
        with_ionic_targets(graphs[:1], [np.zeros((2, 3, 3))])


def test_a_folder_with_two_members_per_split_is_one_born_ensemble(tmp_path):
    """The shipped layout (split<k>.pt and split<k>-<run>.pt): every file of the folder is a member, a prediction is
    their mean with their spread, and the mean keeps the sum rule exact."""
    from goectp.canonical import canonical_cell
    from goectp.checkpoint import save_checkpoint
    from goectp.models.born import BornEnsemble
    from goectp.physics.predict import load_born_model, predict_born_charges

    members = [_born_model(seed) for seed in (4, 5)]
    for member, name in zip(members, ("split0.pt", "split0-s2.pt")):
        save_checkpoint(tmp_path / name, member.float(), split_seed=0)
    ensemble = load_born_model(tmp_path)
    assert isinstance(ensemble, BornEnsemble) and sorted(ensemble.names) == ["split0", "split0-s2"]
    cell = canonical_cell(rutile())
    mean, std = predict_born_charges(cell, ensemble)
    each = np.stack([predict_born_charges(cell, m.double())[0] for m in members])
    np.testing.assert_allclose(mean, each.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(std, each.std(axis=0), atol=1e-6)
    assert std.max() > 1e-3  # two different members
    assert np.abs(mean.sum(axis=0)).max() < 1e-10


# ---------------------------------------------------------------------------------------------------- end to end
class PairSprings:
    """Forces of nearest-neighbour springs (constant ``k`` along each bond of the reference cell, minimum image): a
    harmonic potential any cell of the same crystal sees alike, for the cell-choice test of :func:`ionic_physics`."""

    name = "springs"
    version = "springs-test-1"

    def __init__(self, k: float = 2.0, cutoff: float = 3.0) -> None:
        self.k, self.cutoff = k, cutoff

    def __call__(self, atoms):
        from ase.neighborlist import neighbor_list

        out = []
        for a in atoms:
            i, j, d, vec = neighbor_list("ijdD", a, self.cutoff)
            f = np.zeros((len(a), 3))
            np.add.at(f, i, self.k * (d - 2.82)[:, None] * vec / d[:, None])
            out.append(f)
        return out


class BitSensitiveSprings(PairSprings):
    """:class:`PairSprings` plus noise of 1e-4 eV/Å seeded by the exact bytes of the input: like a float32 force
    field, two descriptions of one crystal that differ in the last digits get different forces."""

    version = "springs-bit-sensitive-1"

    def __call__(self, atoms):
        import hashlib

        out = []
        for a, f in zip(atoms, super().__call__(atoms)):
            seed = hashlib.sha256(a.positions.tobytes() + a.cell.array.tobytes() + a.numbers.tobytes()).digest()
            out.append(f + 1e-4 * np.random.default_rng(int.from_bytes(seed[:8], "little")).normal(size=f.shape))
        return out


def test_the_standard_cell_gives_every_description_the_same_force_constants(tmp_path):
    """Rotated, reflected, another basis, a supercell, another origin and atom order: one standard cell (one cache
    file), so even a force field that reacts to the last bit of its input gives ε_ion exactly covariant."""
    from goectp.physics.predict import ionic_physics
    from goectp.physics.standard_cell import standard_cell

    model = _born_model(3)
    springs = BitSensitiveSprings()
    base = rutile()
    other = base.copy()
    other.make_supercell([[1, 1, 0], [0, 2, 0], [0, 1, 2]])
    other.translate_sites(list(range(len(other))), [0.13, 0.27, 0.31])
    r = Rotation.random(random_state=4).as_matrix() * -1  # improper
    turned = Structure(Lattice(other.lattice.matrix @ r.T), other.species[::-1], other.frac_coords[::-1])
    a = ionic_physics(base, model, springs, cache_dir=tmp_path)
    b = ionic_physics(other, model, springs, cache_dir=tmp_path)
    c = ionic_physics(turned, model, springs, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1  # one standard cell, bit for bit
    np.testing.assert_allclose(b.tensor, a.tensor, rtol=0, atol=1e-9)
    np.testing.assert_allclose(c.tensor, r @ a.tensor @ r.T, rtol=0, atol=1e-9)
    std = standard_cell(a.cell)
    np.testing.assert_allclose(std.rotation @ std.rotation.T, np.eye(3), atol=1e-12)  # F is orthogonal
    basis = std.structure.lattice.matrix @ std.rotation.T @ np.linalg.inv(a.cell.lattice.matrix)  # same lattice:
    np.testing.assert_allclose(basis, np.rint(basis), atol=1e-6)  # an integer basis change
    assert abs(round(np.linalg.det(basis))) == 1 and sorted(std.structure.species) == sorted(a.cell.species)
    # what an analysis of the cache reads (compute=False) are the numbers the prediction used; none for a new crystal
    from goectp.physics.standard_cell import standard_force_constants

    stored = standard_force_constants(c.cell, springs, tmp_path, compute=False)
    np.testing.assert_array_equal(stored.force_constants, c.force_constants.force_constants)
    assert standard_force_constants(primitive_rocksalt(), springs, tmp_path, compute=False) is None


def test_ionic_physics_is_the_same_for_any_cell_and_turns_with_the_crystal(tmp_path):
    from goectp.physics.predict import ionic_physics

    model = _born_model(3)
    prim = primitive_rocksalt()
    conv = rocksalt()
    springs = PairSprings()
    a = ionic_physics(prim, model, springs, cache_dir=tmp_path)
    b = ionic_physics(conv, model, springs, cache_dir=tmp_path)
    assert len(a.cell) == len(b.cell) == 2  # both on the canonical primitive cell
    np.testing.assert_allclose(b.tensor, a.tensor, atol=1e-8)
    assert a.eps_mean > 0 and a.modes.num_unstable == 0
    r = Rotation.random(random_state=9).as_matrix() * -1
    turned = Structure(Lattice(prim.lattice.matrix @ r.T), prim.species, prim.frac_coords)
    c = ionic_physics(turned, model, springs, cache_dir=tmp_path)
    np.testing.assert_allclose(c.tensor, r @ a.tensor @ r.T, atol=1e-8)
    top = a.dominant_modes(3)  # the triply degenerate TO mode of rock salt: a third each
    assert [m["share"] for m in top] == pytest.approx([1 / 3] * 3) and top[0]["frequency_thz"] > 0


def test_predict_summary_carries_the_parts_and_the_physics_term(tmp_path, monkeypatch):
    import goectp

    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path))
    from goectp.api import build_model
    from goectp.models import Ensemble, SumOfParts

    torch.manual_seed(0)
    parts = {"electronic": build_model(hidden=16, num_rbf=8).double(), "ionic": build_model(hidden=16, num_rbf=8)}
    parts["ionic"] = parts["ionic"].double()
    ensemble = Ensemble([SumOfParts(parts, parts["ionic"].config), build_model(hidden=16, num_rbf=8).double()])
    born = _born_model(4)
    record = goectp.predict_summary(
        [primitive_rocksalt()], ensemble, physics=True, born_model=born, forces=PairSprings()
    )[0]
    el, ion = np.array(record["parts"]["electronic"]), np.array(record["parts"]["ionic"])
    assert el.shape == ion.shape == (3, 3)
    phys = record["physics"]
    assert phys["species"] == ["Na", "Cl"] and np.array(phys["born_charges"]).shape == (2, 3, 3)
    assert phys["eps_ion_mean"] == pytest.approx(np.trace(phys["eps_ion"]) / 3) and phys["unstable_modes"] == 0
    assert json.dumps(record)  # plain numbers only
    assert list((tmp_path / "phonons" / "springs").glob("*.npz"))  # cached under $GOECTP_CACHE


@pytest.mark.slow
def test_goectp_predict_prints_born_charges_and_modes(capsys, tmp_path, monkeypatch):
    """`goectp predict --born-charges --modes 2` on MgO: the shipped Born charges and SevenNet-0, text and JSON."""
    pytest.importorskip("sevenn")
    from pathlib import Path

    from goectp.cli import main

    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path))
    cif = str(Path(__file__).resolve().parents[1] / "assets" / "examples" / "MgO_rocksalt.cif")
    assert main(["predict", cif, "--born-charges", "--modes", "2"]) == 0
    out = capsys.readouterr().out
    assert "physics: ε̄_ion = " in out and "Z*[0] Mg" in out and out.count("% of ε̄_ion") == 2
    assert main(["predict", cif, "--born-charges", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    charges = np.array(row["physics"]["born_charges"])
    assert row["physics"]["species"] == ["Mg", "O"] and abs(charges.sum(axis=0)).max() < 1e-9
    assert 1.5 < charges[0, 0, 0] < 2.5 and row["physics"]["unstable_modes"] == 0  # DFT: Z*(Mg) = 1.96


def test_point_group_average_removes_what_the_symmetry_forbids():
    """The physics tensor is averaged over the crystal's point group: a cubic crystal's becomes (tr/3)·I, a
    tetragonal one keeps ε_xx = ε_yy ≠ ε_zz and loses its off-diagonal noise; the trace never changes."""
    from goectp.physics.predict import point_group_average, point_group_of

    rng = np.random.default_rng(0)
    noisy = rng.normal(size=(3, 3)) + 10 * np.eye(3)
    cubic = point_group_average(noisy, point_group_of(primitive_rocksalt()))
    np.testing.assert_allclose(cubic, np.trace(noisy) / 3 * np.eye(3), atol=1e-12)
    tetragonal = point_group_average(noisy, point_group_of(rutile()))
    assert tetragonal[0, 0] == pytest.approx(tetragonal[1, 1]) and tetragonal[0, 0] != pytest.approx(tetragonal[2, 2])
    np.testing.assert_allclose(tetragonal - np.diag(np.diag(tetragonal)), 0, atol=1e-12)
    assert np.trace(tetragonal) == pytest.approx(np.trace(noisy))
    np.testing.assert_array_equal(point_group_average(noisy, None), noisy)


@pytest.mark.slow
def test_sevennet_physics_term_is_invariant_to_the_cell_to_round_off(tmp_path):
    """With SevenNet-0 (float32) and the shipped Born charges (float64): rutile in another basis, a supercell and
    another origin, or turned by an improper rotation, gives ε_ion to ~1e-11 (it was ~1e-3 before the standard cell)."""
    pytest.importorskip("sevenn")
    from goectp.physics.predict import ionic_physics
    from goectp.structures import load_structures
    from goectp.testing import random_orthogonal, rotate_structure

    s = load_structures(str(REPO / "assets" / "examples" / "TiO2_rutile.cif"))[0]
    other = s.copy()
    other.make_supercell([[1, 1, 0], [0, 2, 0], [0, 1, 2]])
    other.translate_sites(list(range(len(other))), [0.13, 0.27, 0.31])
    r = random_orthogonal(seed=3, reflection=True)
    a = ionic_physics(s, cache_dir=tmp_path).tensor
    assert np.abs(ionic_physics(other, cache_dir=tmp_path).tensor - a).max() < 1e-8
    assert np.abs(ionic_physics(rotate_structure(s, r), cache_dir=tmp_path).tensor - r @ a @ r.T).max() < 1e-8
    assert np.linalg.eigvalsh(a).max() > 100  # a soft polar mode (in-plane): where float32 noise used to be amplified


def test_the_physics_term_refuses_a_cell_too_large_to_compute_in_bounded_time(tmp_path):
    """More than MAX_PHYSICS_SITES atoms in the primitive cell: a one-line ValueError before any force is asked."""
    from goectp.physics.predict import MAX_PHYSICS_SITES, ionic_physics

    class NoForces:
        name = version = "never-called"

        def __call__(self, atoms):
            raise AssertionError("forces were asked for")

    rng = np.random.default_rng(0)
    n = MAX_PHYSICS_SITES + 2
    big = Structure(Lattice.cubic(3.0 * round(n ** (1 / 3) + 1)), ["Na", "Cl"] * (n // 2), rng.random((n, 3)))
    with pytest.raises(ValueError, match=f"{n} atoms in the primitive cell.*at most {MAX_PHYSICS_SITES}"):
        ionic_physics(big, _born_model(0), NoForces(), cache_dir=tmp_path)
