"""The tail experiments' heads (issue 11.3): electronic + ionic parts, and ε = exp(log ε).

Both keep the model exactly O(3)-equivariant and invariant to the choice of cell (structures are turned or
redescribed and their graphs rebuilt), and both train on what they predict.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from pymatgen.core import Lattice, Structure
from torch_geometric.data import Batch

import goectp
from goectp.checkpoint import load_checkpoint, save_checkpoint
from goectp.graph import build_crystal_graph
from goectp.training import TrainConfig, train
from goectp.training.loop import log_tensor, model_loss

GAN = Structure(
    Lattice.hexagonal(3.19, 5.19),
    ["Ga", "Ga", "N", "N"],
    [[1 / 3, 2 / 3, 0.0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.377], [2 / 3, 1 / 3, 0.877]],
)
TRICLINIC = Structure(
    Lattice.from_parameters(4.1, 5.3, 6.2, 81.0, 97.0, 104.0),
    ["Li", "O", "Ti", "F"],
    [[0.0, 0.0, 0.0], [0.31, 0.12, 0.43], [0.52, 0.61, 0.19], [0.83, 0.37, 0.71]],
)
HEADS = {"decompose": {"decompose": True}, "log_head": {"log_head": True}}


def tiny(head: str, seed: int = 3) -> goectp.GoeCTP:
    torch.manual_seed(seed)
    net = goectp.build_model("goectp", hidden=16, num_rbf=16, **HEADS[head])
    if head == "log_head":
        net.set_target_stats(0.4, 1.5)  # log ε ≈ 1.5 ± 0.4: ε ≈ 4.5
    else:
        net.set_target_stats(3.0, 4.0, part="electronic")
        net.set_target_stats(5.0, 6.0, part="ionic")
    return net.double().eval()


def turned(s: Structure, rot: np.ndarray) -> Structure:
    return Structure(Lattice(s.lattice.matrix @ rot.T), s.species, s.frac_coords)


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("structure", [GAN, TRICLINIC], ids=["GaN", "triclinic"])
def test_rotations_reflections_and_cell_choice_leave_the_prediction_exact(head, structure):
    net = tiny(head)
    q = np.linalg.qr(np.random.default_rng(7).normal(size=(3, 3)))[0]
    for rot in (q, -q, np.diag([1.0, -1.0, 1.0])):
        eps, eps_rot = goectp.predict([structure, turned(structure, rot)], net, device="cpu")
        assert np.abs(eps_rot - rot @ eps @ rot.T).max() < 1e-9
    basis = np.array([[1, 1, 0], [0, 1, 0], [0, 0, -1]])  # a → a + b, c → −c: det −1
    other = Structure(Lattice(basis @ structure.lattice.matrix), [], [])
    for site in structure:
        other.append(site.species, site.coords, coords_are_cartesian=True)
    supercell = structure.copy()
    supercell.make_supercell([2, 2, 1])
    preds = goectp.predict([structure, other, supercell], net, device="cpu")
    assert np.abs(preds[1:] - preds[0]).max() < 1e-9


def test_decompose_predicts_the_total_as_the_sum_of_its_two_parts():
    net = tiny("decompose")
    batch = Batch.from_data_list([build_crystal_graph(s, canonical=True) for s in (GAN, TRICLINIC)])
    parts = net.forward_parts(batch)
    assert set(parts) == {"electronic", "ionic"}
    assert not torch.allclose(parts["electronic"], parts["ionic"])
    torch.testing.assert_close(net(batch), parts["electronic"] + parts["ionic"], rtol=0, atol=1e-12)


def test_log_head_is_the_matrix_exponential_of_its_symmetric_output():
    net = tiny("log_head")
    batch = Batch.from_data_list([build_crystal_graph(s, canonical=True) for s in (GAN, TRICLINIC)])
    log_eps = net.forward_parts(batch)["log"].detach().numpy()
    eps = net(batch).detach().numpy()
    for lg, e in zip(log_eps, eps):
        np.testing.assert_allclose(e, scipy.linalg.expm(lg), rtol=1e-12, atol=1e-12)
        assert np.linalg.eigvalsh(e).min() > 0  # positive definite by construction


def test_log_tensor_is_the_matrix_logarithm_and_clips_small_eigenvalues():
    rng = np.random.default_rng(0)
    q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    spd = q @ np.diag([1.3, 7.0, 240.0]) @ q.T
    got = log_tensor(torch.from_numpy(spd)[None]).numpy()[0]
    np.testing.assert_allclose(got, scipy.linalg.logm(spd).real, atol=1e-10)
    np.testing.assert_allclose(
        log_tensor(torch.diag(torch.tensor([4.0, 4.0, 4.0], dtype=torch.float64))[None])[0],
        np.log(4.0) * np.eye(3),
        atol=1e-12,
    )  # degenerate eigenvalues (cubic) are fine
    clipped = log_tensor(torch.diag(torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64))[None]).numpy()[0]
    np.testing.assert_allclose(np.diag(clipped), np.log([1e-2, 1e-2, 2.0]))


def _graphs() -> list:
    rng = np.random.default_rng(1)
    graphs = []
    for s in [GAN, TRICLINIC] * 4:
        g = build_crystal_graph(s, canonical=True)
        q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        el = torch.from_numpy(q @ np.diag(rng.uniform(2, 6, 3)) @ q.T)[None]
        io = torch.from_numpy(q @ np.diag(rng.uniform(0, 30, 3)) @ q.T)[None]
        g.y_electronic, g.y_ionic, g.y_total = el, io, el + io
        g.y = g.y_total
        graphs.append(g)
    return graphs


def test_the_losses_are_on_what_each_head_predicts():
    graphs = _graphs()
    batch = Batch.from_data_list(graphs[:3])
    cfg = TrainConfig(huber_delta=1.0)
    net = tiny("decompose")
    parts = net.forward_parts(batch)
    huber = torch.nn.functional.huber_loss
    expected = huber(parts["electronic"], batch.y_electronic) + huber(parts["ionic"], batch.y_ionic)
    torch.testing.assert_close(model_loss(net, batch, cfg), expected)
    net = tiny("log_head")
    expected = huber(net.forward_parts(batch)["log"], log_tensor(batch.y))
    torch.testing.assert_close(model_loss(net, batch, cfg), expected)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_training_sets_the_heads_statistics_and_round_trips_a_checkpoint(head, tmp_path):
    graphs = _graphs()
    torch.manual_seed(0)
    net = goectp.build_model("goectp", hidden=8, num_rbf=8, **HEADS[head])
    result = train(net, graphs[:6], graphs[6:], TrainConfig(epochs=2, batch_size=3, progress=False), tmp_path)
    assert np.isfinite(result["best_val_mae"])
    if head == "decompose":
        ionic = torch.cat([g.y_ionic for g in graphs[:6]])
        assert net.ionic_head.shift.item() == pytest.approx(torch.diagonal(ionic, dim1=1, dim2=2).mean().item())
        assert net.head.shift.item() < net.ionic_head.shift.item()  # the electronic part is the smaller here
    else:
        logs = log_tensor(torch.cat([g.y for g in graphs[:6]]))
        assert net.head.shift.item() == pytest.approx(torch.diagonal(logs, dim1=1, dim2=2).mean().item())
    save_checkpoint(tmp_path / "m.pt", net)
    again = load_checkpoint(tmp_path / "m.pt").double()
    net = net.double().eval()
    batch = Batch.from_data_list(graphs[6:])
    torch.testing.assert_close(again(batch), net(batch), rtol=0, atol=1e-12)


def test_decompose_needs_the_total_target_and_the_heads_do_not_mix():
    with pytest.raises(ValueError, match="not with decompose"):
        goectp.build_model("goectp", decompose=True, log_head=True)
    with pytest.raises(ValueError, match="tensor head"):
        goectp.build_model("goectp", head="scalar", log_head=True)
    net = goectp.build_model("goectp", hidden=8, num_rbf=8, decompose=True)
    graphs = _graphs()
    with pytest.raises(ValueError, match="not the 'ionic' one"):
        train(net, graphs[:4], graphs[4:], TrainConfig(epochs=1, target="ionic", progress=False), "/tmp/never")
