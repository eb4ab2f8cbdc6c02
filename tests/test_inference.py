"""The one inference path: one pass of message passing per network, calibration loaded with the model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

import goectp
from goectp.api import build_model, graphs_for, predict_graphs, save_checkpoint
from goectp.checkpoint import sum_checkpoint_dict
from goectp.inference import run_model
from goectp.models import Ensemble, GoeCTP, SumOfParts
from goectp.registry import load_model
from goectp.uncertainty import Calibration, ensemble_fingerprint

ROOT = Path(__file__).resolve().parents[1]


def tiny(seed: int, **kw) -> GoeCTP:
    torch.manual_seed(seed)
    return build_model("goectp", hidden=16, num_rbf=8, **kw).double().eval()


@pytest.fixture()
def crystals() -> list[Structure]:
    mgo = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    zno = Structure(
        Lattice.hexagonal(3.25, 5.2),
        ["Zn", "Zn", "O", "O"],
        [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.38], [2 / 3, 1 / 3, 0.88]],
    )
    tio2 = Structure(
        Lattice.tetragonal(4.6, 2.96),
        ["Ti", "Ti", "O", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.3, 0.3, 0], [0.7, 0.7, 0], [0.8, 0.2, 0.5], [0.2, 0.8, 0.5]],
    )
    return [mgo, zno, tio2]


@pytest.fixture()
def ensemble() -> Ensemble:
    parts = {"electronic": tiny(2), "ionic": tiny(3)}
    sum_member = SumOfParts(parts, parts["ionic"].config)
    return Ensemble([tiny(0), tiny(1), sum_member], ["a", "b", "sum"])


def test_each_network_runs_message_passing_once_per_batch(ensemble, crystals, monkeypatch):
    graphs = graphs_for(crystals, ensemble)
    calls: list[int] = []
    original = GoeCTP._message_passing

    def counted(self, *args, **kwargs):
        calls.append(id(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GoeCTP, "_message_passing", counted)
    run = run_model(graphs, ensemble)
    assert len(calls) == 4 and len(set(calls)) == 4  # two plain members + the two parts of the sum member
    calls.clear()
    goectp.predict_summary(crystals, ensemble)
    assert len(calls) == 4  # prediction, σ and the OOD embedding from the same pass
    monkeypatch.undo()
    # the pass gives what the separate calls give
    np.testing.assert_array_equal(run.predictions, predict_graphs(graphs, ensemble))
    from torch_geometric.data import Batch

    batch = Batch.from_data_list(graphs)
    with torch.no_grad():
        embed = torch.stack([ensemble.members[0].embed(batch)[0], ensemble.members[2].embed(batch)[0]])
        parts = ensemble.members[2].forward_parts(batch)
    np.testing.assert_allclose(run.embeddings[[0, 2]], embed.numpy(), rtol=0, atol=1e-12)
    assert sorted(run.parts) == ["electronic", "ionic"] and run.parts["ionic"].shape == (1, 3, 3, 3)
    np.testing.assert_allclose(run.parts["ionic"][0], parts["ionic"].numpy(), atol=1e-12)
    np.testing.assert_allclose(run.parts["electronic"][0] + run.parts["ionic"][0], run.predictions[2], atol=1e-12)


def test_single_network_and_empty_input(crystals):
    model = tiny(5)
    run = run_model(graphs_for(crystals, model), model)
    assert run.predictions.shape == (1, 3, 3, 3) and run.embeddings.shape == (1, 3, 16) and run.parts == {}
    assert run.calibration is None and run.summary()[0]["ood"] is None
    empty = run_model([], model)
    assert empty.predictions.shape == (1, 0, 3, 3)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        run_model(graphs_for(crystals, model), model, batch_size=0)


def _calibration(fingerprint: str) -> Calibration:
    return Calibration(
        quantities={
            "tensor": {"form": "scale", "s": 2.0, "c": 0.0},
            "eps_mean": {"form": "scale", "s": 2.0, "c": 0.0},
            "anisotropy": {"form": "propagated", "k": 1.0},
        },
        element_counts={"Mg": 40, "O": 90},
        meta={"fingerprint": fingerprint},
    )


def test_load_model_reads_the_folder_calibration_and_ignores_a_stale_one(tmp_path, crystals):
    folder = tmp_path / "ens"
    members = [tiny(0), tiny(1)]
    for i, m in enumerate(members):
        save_checkpoint(folder / f"split{i}.pt", m, split_seed=i)
    loaded = load_model(folder)
    assert loaded.calibration is None  # no calibration.json: σ is the raw spread
    _calibration(ensemble_fingerprint(loaded)).save(folder)
    loaded = load_model(folder)
    assert isinstance(loaded.calibration, Calibration) and loaded.calibration.quantities["tensor"]["s"] == 2.0
    summary = goectp.predict_summary(crystals[:1], loaded)
    assert summary[0]["calibrated"] and summary[0]["ood"]["flag"] is False
    save_checkpoint(folder / "split1.pt", tiny(7), split_seed=1)  # retrained: the calibration is stale
    with pytest.warns(UserWarning, match="fitted on other weights"):
        stale = load_model(folder)
    assert stale.calibration is None and not goectp.predict_summary(crystals[:1], stale)[0]["calibrated"]


def test_sum_checkpoint_member_keeps_one_pass(tmp_path, crystals):
    def meta(target: str) -> dict:
        return {"target": target, "split_seed": 0}

    parts = {"electronic": tiny(2), "ionic": tiny(3)}
    ckpt = sum_checkpoint_dict(
        *(
            {"schema_version": 1, "config": p.config.to_dict(), "state_dict": p.state_dict(), "meta": meta(t)}
            for t, p in parts.items()
        )
    )
    torch.save(ckpt, tmp_path / "sum.pt")
    model = load_model(tmp_path / "sum.pt")
    run = run_model(graphs_for(crystals, model), model)
    np.testing.assert_allclose(run.parts["electronic"][0] + run.parts["ionic"][0], run.predictions[0], atol=1e-12)


def test_no_monkey_patching_in_the_inference_path():
    """Nothing in the package replaces a model's methods at run time (the old capture of ``model.embed``)."""
    pattern = re.compile(r"\b(model|member|net|self)\.(embed|forward|_embed_frames)\s*=[^=]")
    offenders = [
        f"{path.relative_to(ROOT)}:{i}"
        for folder in ("goectp", "explorer")
        for path in (ROOT / folder).rglob("*.py")
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders
