"""Sum members (:class:`goectp.models.SumOfParts`): ε = ε∞ + ε_ionic from two networks, stored as one checkpoint.

Checked against the math: the sum equals its parts' sum, turns with the crystal (structure rotated, graph rebuilt)
and is unchanged by a change of cell; and every way two checkpoints can fail to make a sum raises.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from scipy.spatial.transform import Rotation

import goectp
from goectp.checkpoint import CheckpointError, atomic_save, checkpoint_dict, load_checkpoint, sum_checkpoint_dict
from goectp.data import random_split
from goectp.models import Ensemble, SumOfParts, networks, prediction_target
from goectp.registry import load_model
from goectp.training.pretrain import backbone_state
from goectp.uncertainty import training_masks

ROOT = Path(__file__).resolve().parents[1]


def part(target: str, split_seed: int = 0, seed: int = 0, **train: object) -> dict:
    """A small float64 network's checkpoint dict, as training writes it for ``target`` on split ``split_seed``."""
    torch.manual_seed(seed)
    net = goectp.build_model(hidden=16, num_rbf=16).double()
    net.set_target_stats(3.0, 4.0 if target == "electronic" else 6.0)
    train_config = {"target": target, "split_seed": split_seed, "max_abs": None, **train}
    return checkpoint_dict(net, train_config=train_config, split_seed=split_seed, data_sha256="abc")


def summed(split_seed: int = 0) -> SumOfParts:
    ckpt = sum_checkpoint_dict(part("electronic", split_seed, seed=1), part("ionic", split_seed, seed=2))
    return load_checkpoint(_bytes(ckpt), name="sum.pt").double()  # weights_only=True, like any file


def crystal() -> Structure:
    lattice = Lattice.from_parameters(4.1, 4.6, 5.3, 82.0, 97.0, 104.0)
    return Structure(lattice, ["Ba", "Ti", "O", "O"], [[0, 0, 0], [0.5, 0.45, 0.55], [0.2, 0.6, 0.1], [0.7, 0.1, 0.4]])


def test_the_sum_is_the_parts_sum_and_predicts_the_total():
    model = summed()
    assert isinstance(model, SumOfParts) and prediction_target(model) == "total"
    eps = goectp.predict([crystal()], model, device="cpu")
    parts = [goectp.predict([crystal()], network, device="cpu") for network in model.networks()]
    np.testing.assert_allclose(eps, parts[0] + parts[1], atol=1e-12)
    assert np.abs(parts[0] - parts[1]).max() > 1e-3  # two different networks, not one counted twice
    assert [prediction_target(n) for n in networks(model)] == ["electronic", "ionic"]


@pytest.mark.parametrize("proper", [True, False])
def test_the_sum_turns_with_the_crystal(proper):
    rot = Rotation.random(random_state=3).as_matrix() @ np.diag([1.0, 1.0, 1.0 if proper else -1.0])
    structure = crystal()
    rotated = Structure(Lattice(structure.lattice.matrix @ rot.T), structure.species, structure.frac_coords)
    eps, eps_rot = goectp.predict([structure, rotated], summed(), device="cpu")  # the graph is rebuilt
    assert np.abs(eps_rot - rot @ eps @ rot.T).max() < 1e-5


def test_the_sum_does_not_depend_on_the_choice_of_cell():
    structure = crystal()
    u = np.array([[1, 1, 0], [0, 1, 0], [0, 0, -1]])  # a → a + b, det −1
    other = Structure(
        Lattice((structure.lattice.matrix.T @ u).T), structure.species, structure.frac_coords @ np.linalg.inv(u).T
    )
    supercell = structure.make_supercell([2, 1, 1], in_place=False)
    eps = goectp.predict([structure, other, supercell], summed(), device="cpu")
    assert np.abs(eps[1:] - eps[0]).max() < 1e-6


def test_an_ensemble_may_mix_sum_members_with_plain_ones_of_the_total():
    plain = load_checkpoint(_bytes(part("total")), name="plain.pt").double()
    ensemble = Ensemble([summed(), plain], ["sum", "plain"])
    assert ensemble.target == "total" and len(networks(ensemble)) == 3
    electronic_only = load_checkpoint(_bytes(part("electronic")), name="e.pt")
    with pytest.raises(ValueError, match="different tensors"):
        Ensemble([summed(), electronic_only], ["sum", "electronic"])


def _bytes(obj: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("electronic", "ionic", "message"),
    [
        (part("electronic", 0), part("ionic", 1), "same split"),
        (part("ionic", 0), part("ionic", 0, seed=3), "electronic part predicts the ionic"),
        (part("electronic", 0), part("total", 0), "ionic part predicts the total"),
        (part("electronic", 0), part("ionic", 0, max_abs=100.0), "without the large records"),
    ],
)
def test_parts_that_do_not_make_a_total_are_refused(electronic, ionic, message):
    with pytest.raises(ValueError, match=message):
        sum_checkpoint_dict(electronic, ionic)


def test_broken_sum_files_raise_a_checkpoint_error_naming_the_file():
    good = sum_checkpoint_dict(part("electronic"), part("ionic"))
    missing = {**good, "parts": {"ionic": good["parts"]["ionic"]}}
    nested = {**good, "parts": {"electronic": good, "ionic": good["parts"]["ionic"]}}
    for broken in (missing, nested):
        with pytest.raises(CheckpointError, match="bad-sum.pt"):
            load_checkpoint(_bytes(broken), name="bad-sum.pt")


def test_goectp_sum_pairs_members_by_split(tmp_path, capsys):
    from goectp.cli import main as cli_main

    for seed in (0, 1):
        atomic_save(part("electronic", seed, seed=seed), tmp_path / "el" / f"split{seed}.pt")
        atomic_save(part("ionic", seed, seed=10 + seed), tmp_path / "ion" / f"m{1 - seed}.pt")  # other file order
    run = ["sum", str(tmp_path / "el"), str(tmp_path / "ion"), "--out", str(tmp_path / "sum")]
    assert cli_main(run) == 0
    assert f"goectp predict FILE --model {tmp_path / 'sum'}" in capsys.readouterr().out
    ensemble = load_model(tmp_path / "sum")
    assert ensemble.names == ["split0", "split1"] and ensemble.target == "total"
    assert [m.meta["split_seed"] for m in ensemble.members] == [0, 1]
    assert [p.meta["split_seed"] for m in ensemble.members for p in m.networks()] == [0, 0, 1, 1]

    (tmp_path / "ion" / "m0.pt").unlink()  # split 1 has no ionic member any more
    assert cli_main([*run[:-1], str(tmp_path / "sum2")]) == 2
    assert "different splits: [0, 1] vs [0]" in capsys.readouterr().err and not (tmp_path / "sum2").exists()
    atomic_save(part("electronic", 1, seed=5), tmp_path / "ion" / "m0.pt")  # split 1: an ε∞ model as the ionic part
    assert cli_main([*run[:-1], str(tmp_path / "sum3")]) == 2
    assert "split 1:" in capsys.readouterr().err and not (tmp_path / "sum3").exists()  # nothing half-written


def test_a_training_runs_output_folder_is_an_ensemble_of_its_best_checkpoints(tmp_path, capsys):
    """``goectp train --out RUN`` writes ``RUN/split<k>/best.pt``: RUN loads, predicts and sums as an ensemble."""
    from goectp.cli import main as cli_main
    from goectp.registry import ensemble_members

    for seed in (0, 1, 10):  # split10 sorts after split1 by number, not by text
        atomic_save(part("electronic", seed, seed=seed), tmp_path / "el" / f"split{seed}" / "best.pt")
        atomic_save(part("electronic", seed, seed=seed + 1), tmp_path / "el" / f"split{seed}" / "last.pt")
        atomic_save(part("ionic", seed, seed=20 + seed), tmp_path / "ion" / f"split{seed}" / "best.pt")
    (tmp_path / "el" / "split2").mkdir()  # a split still training: no best.pt yet
    (tmp_path / "el" / "splitx").mkdir()
    assert [name for name, _ in ensemble_members(tmp_path / "el")] == ["split0", "split1", "split10"]
    assert load_model(tmp_path / "el").target == "electronic"
    assert cli_main(["sum", str(tmp_path / "el"), str(tmp_path / "ion"), "--out", str(tmp_path / "sum")]) == 0
    ensemble = load_model(tmp_path / "sum")
    assert [m.meta["split_seed"] for m in ensemble.members] == [0, 1, 10]
    (tmp_path / "empty" / "split0").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no \\*.pt checkpoints and no split<k>/best.pt"):
        ensemble_members(tmp_path / "empty")


def test_calibration_reads_a_sum_members_split_from_its_metadata():
    metas = [summed(2).meta, summed(4).meta]
    trained, test = training_masks(100, metas)
    expected = [random_split(100, s) for s in (2, 4)]
    for m, idx in enumerate(expected):
        assert trained[m].sum() == len(idx["train"]) and test[m][idx["test"]].all()


def test_a_sum_is_not_a_backbone_to_fine_tune_from(tmp_path):
    atomic_save(sum_checkpoint_dict(part("electronic"), part("ionic")), tmp_path / "sum.pt")
    with pytest.raises(ValueError, match="sum of two networks"):
        backbone_state(tmp_path / "sum.pt", goectp.GoeCTPConfig(hidden=16, num_rbf=16))


def test_the_explorer_shows_the_eps_inf_part_and_the_refractive_index_it_gives():
    """For an ensemble with a sum member the tensor panel shows that member's ε∞ part, and n = √λ(ε∞) from it;
    ε∞ + ionic is exactly what the member predicts."""
    import json

    from explorer.models import SINGLE_MEMBER, ModelSelector
    from explorer.tensor_view import TensorEllipsoid
    from goectp.api import predict_graphs, predict_graphs_and_parts

    plain = load_checkpoint(_bytes(part("total", seed=3)), name="plain.pt").double()
    ensemble = Ensemble([plain, summed()], ["plain", "sum"])
    graphs = goectp.api.graphs_for([crystal()], ensemble)
    members, parts = predict_graphs_and_parts(graphs, ensemble)
    np.testing.assert_array_equal(members, predict_graphs(graphs, ensemble))  # one pass gives the same numbers
    np.testing.assert_array_equal(parts["electronic"][0] + parts["ionic"][0], members[1])
    assert predict_graphs_and_parts(graphs, plain)[1] == {}  # no sum member: nothing to split
    selector = ModelSelector(models={"mixed": ensemble}, model_name="mixed")
    parts = selector.predict_parts([crystal(), crystal()])
    assert set(parts) == {"electronic", "ionic"} and parts["electronic"].shape == (1, 2, 3, 3)
    members = selector.predict_members([crystal()])  # [2, 1, 3, 3]
    np.testing.assert_allclose(parts["electronic"][0, 0] + parts["ionic"][0, 0], members[1, 0], atol=1e-12)

    reference = {"electronic": np.diag([4.0, 5.0, 6.25]), "ionic": np.eye(3), "total": np.diag([5.0, 6.0, 7.25])}
    panel = TensorEllipsoid(models=selector, structure=crystal(), reference=reference)
    np.testing.assert_allclose(panel.electronic, parts["electronic"][0, 0], atol=1e-12)
    n, how = panel.refractive_index()
    np.testing.assert_allclose(n, np.sqrt(np.clip(np.linalg.eigvalsh(panel.electronic), 0, None)), atol=1e-12)
    assert "predicted electronic ε∞ (the ε∞ part of 1 of the 2 members" in how
    row = panel.table().set_index("quantity").loc["n (mean √λ of ε∞)"]
    assert row["predicted"] == pytest.approx(np.mean(n)) and row["DFT"] == pytest.approx(np.mean([2.0, 5**0.5, 2.5]))
    exported = json.loads(panel.export_json())
    np.testing.assert_allclose(exported["electronic_part"]["tensor"], panel.electronic, atol=1e-12)
    assert exported["electronic_part"]["from"] == "1 of the 2 members"

    selector.param.update(mode=SINGLE_MEMBER, member=0)  # the plain member alone: no parts, the DFT ε∞ gives n
    assert panel.electronic is None and "DFT electronic" in panel.refractive_index()[1]
    selector.member = 1
    assert panel.parts_from == "the model" and panel.electronic is not None


def test_a_network_that_outputs_nan_raises_on_both_prediction_paths():
    """A broken checkpoint (a NaN weight) gives a clear error, never a NaN tensor, with or without the parts."""
    from goectp.api import graphs_for, predict_graphs, predict_graphs_and_parts

    plain = load_checkpoint(_bytes(part("total", seed=3)), name="plain.pt").double()
    broken = summed()
    with torch.no_grad():
        next(broken.parts["ionic"].parameters()).fill_(float("nan"))
    model = Ensemble([plain, broken])
    graphs = graphs_for([crystal()], model)
    assert np.isfinite(predict_graphs(graphs, plain, device="cpu")).all()  # the healthy member alone is fine
    for predict in (predict_graphs, predict_graphs_and_parts):
        with pytest.raises(FloatingPointError, match="NaN or infinite"):
            predict(graphs, model, device="cpu")
