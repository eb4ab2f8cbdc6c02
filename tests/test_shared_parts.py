"""Sum members that name their ε∞ part's file (goectp ensemble share): same weights and predictions, smaller
files, and a reference that can only point at an unchanged checkpoint of this or a sibling folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from goectp.api import build_model, graphs_for, predict_graphs
from goectp.checkpoint import (
    SHARED_PARTS_VERSION,
    CheckpointError,
    checkpoint_dict,
    load_checkpoint,
    safe_load,
    sum_checkpoint_dict,
)
from goectp.cli import main as cli_main
from goectp.data.paths import sha256_file
from goectp.registry import load_model
from goectp.release.share import refresh_manifests, refresh_screening_provenance, share_parts
from goectp.uncertainty import ensemble_fingerprint


def tiny(seed: int, target: str):
    torch.manual_seed(seed)
    model = build_model("goectp", hidden=16, num_rbf=8)
    model.meta = {"target": target, "split_seed": seed % 2, "data_sha256": "d"}
    return model.eval()


@pytest.fixture()
def assets(tmp_path, write_sum_family):
    """assets/models/{electronic, decomposed, combined} with two splits (conftest), and a screening summary."""
    models = write_sum_family(16)
    members = json.loads((models / "combined" / "members.json").read_text())["members"]
    (tmp_path / "screening").mkdir()
    summary = {"provenance": {"model_sha256": ";".join(m["sha256"] for m in members), "kappa": 1.0}}
    (tmp_path / "screening" / "screening_summary.json").write_text(json.dumps(summary, indent=2))
    return tmp_path


@pytest.fixture()
def crystals() -> list[Structure]:
    return [
        Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure(Lattice.tetragonal(4.6, 2.96), ["Ti", "O"], [[0, 0, 0], [0.3, 0.3, 0]]),
    ]


def test_shared_members_predict_the_same_from_smaller_files(assets, crystals):
    models = assets / "models"
    before = load_model(models / "combined")
    graphs = graphs_for(crystals, before)
    expected, fingerprint = predict_graphs(graphs, before), ensemble_fingerprint(before)
    sizes = {f: f.stat().st_size for f in (models / "decomposed").glob("*.pt")}

    changed = share_parts(models / "decomposed", models / "electronic")
    assert sorted(p.name for p in changed) == ["split0.pt", "split1.pt"]
    assert all(f.stat().st_size < 0.7 * size for f, size in sizes.items())  # the ε∞ network is no longer copied
    raw = safe_load(models / "decomposed" / "split1.pt")
    assert raw["schema_version"] == SHARED_PARTS_VERSION  # a goectp from before says "upgrade goectp"
    assert raw["parts"]["electronic"] == {
        "file": "../electronic/split1.pt",
        "sha256": sha256_file(models / "electronic" / "split1.pt"),
    }
    assert refresh_manifests(models, changed) == [models / "combined" / "members.json"]
    assert refresh_screening_provenance(assets / "screening" / "screening_summary.json", changed)
    summary = json.loads((assets / "screening" / "screening_summary.json").read_text())["provenance"]
    assert summary["model_sha256"].split(";") == [new for _, new in changed.values()] and "repacked" in summary

    after = load_model(models / "combined")  # the manifest's sha256 are checked on load
    assert ensemble_fingerprint(after) == fingerprint  # the calibration still applies
    np.testing.assert_array_equal(predict_graphs(graphs, after), expected)
    assert share_parts(models / "decomposed", models / "electronic") == {}  # already shared: nothing to do


def test_a_reference_only_reaches_an_unchanged_checkpoint_of_a_sibling_folder(assets, tmp_path):
    models = assets / "models"
    share_parts(models / "decomposed", models / "electronic")
    member = models / "decomposed" / "split0.pt"
    raw = safe_load(member)

    def rewrite(**reference) -> None:
        torch.save({**raw, "parts": {**raw["parts"], "electronic": reference}}, member)

    good = raw["parts"]["electronic"]
    cases = [
        ({"file": "../../outside.pt", "sha256": good["sha256"]}, "not a checkpoint of this or a sibling folder"),
        ({"file": "../electronic/split0.json", "sha256": good["sha256"]}, "not a checkpoint of this or a sibling"),
        ({"file": "../electronic/split9.pt", "sha256": good["sha256"]}, "is missing"),
        ({"file": good["file"], "sha256": "0" * 64}, "changed since it was referenced"),
        ({"file": "split1.pt", "sha256": sha256_file(models / "decomposed" / "split1.pt")}, "cannot be a part"),
    ]
    for reference, message in cases:
        rewrite(**reference)
        with pytest.raises(CheckpointError, match=message) as info:
            load_checkpoint(member)
        assert str(member) in str(info.value)
    rewrite(**good)
    torch.save({**safe_load(member), "schema_version": 1}, member)  # a reference needs the version that says so
    with pytest.raises(CheckpointError, match="needs schema version 2"):
        load_checkpoint(member)
    rewrite(**good)
    with pytest.raises(CheckpointError, match="load it from its file"):
        load_checkpoint(member.read_bytes())
    electronic = load_checkpoint(models / "electronic" / "split0.pt").state_dict()
    shared = load_checkpoint(member).parts["electronic"].state_dict()  # the part is the referenced file's network
    assert shared.keys() == electronic.keys() and all(torch.equal(v, electronic[k]) for k, v in shared.items())


def test_goectp_ensemble_share_command(assets, capsys):
    models = assets / "models"
    code = cli_main(
        [
            "ensemble",
            "share",
            str(models / "decomposed"),
            "--parts-from",
            str(models / "electronic"),
            "--assets",
            str(assets),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "2 members now share their ε∞ part" in out and "members.json" in out
    assert "screening_summary.json" in out
    load_model(models / "combined")


def test_a_screen_ships_shared_members_to_its_workers_as_self_contained_bytes(assets):
    """A screening worker gets bytes, not files: a part named by reference travels inlined, and the provenance
    keeps the files' own sha256."""
    from goectp.checkpoint import self_contained_bytes
    from goectp.screening.model_spec import cached_ensemble, load_model_spec

    models = assets / "models"
    share_parts(models / "decomposed", models / "electronic")
    member = models / "decomposed" / "split0.pt"
    blob = self_contained_bytes(member)
    assert len(blob) > member.stat().st_size and not safe_load(blob)["parts"]["electronic"].get("file")
    electronic = models / "electronic" / "split0.pt"
    assert self_contained_bytes(electronic) == electronic.read_bytes()  # nothing to inline
    spec = load_model_spec(models / "decomposed")
    assert spec.sha256s == tuple(sha256_file(f) for f in sorted((models / "decomposed").glob("*.pt")))
    ensemble = cached_ensemble(spec, "cpu")
    reference = load_model(models / "decomposed")
    for a, b in zip(ensemble.members, reference.members, strict=True):
        assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_a_network_that_two_sum_members_hold_runs_once_per_batch(tmp_path, crystals):
    """The default's two decomposed families hold the same `electronic` member of each split: loaded into one
    ensemble they share that module and run it once per batch, with the predictions of the members run apart."""
    from goectp.checkpoint import load_checkpoint
    from goectp.inference import run_model
    from goectp.models.ensemble import share_identical_parts

    files = []
    for k in (0, 1):
        electronic = checkpoint_dict(tiny(20 + k, "electronic"), split_seed=k, target="electronic", data_sha256="d")
        for family in ("a", "b"):
            ionic_model = tiny(30 + 2 * k + (family == "b"), "ionic")
            ionic = checkpoint_dict(ionic_model, split_seed=k, target="ionic", data_sha256="d")
            path = tmp_path / f"{family}{k}.pt"
            torch.save(sum_checkpoint_dict(electronic, ionic), path)
            files.append(path)
    apart = [load_checkpoint(f) for f in files]  # four members, each with its own copy of its ε∞ network
    together = [load_checkpoint(f) for f in files]
    from goectp.models import Ensemble

    ensemble = Ensemble(together, [f.stem for f in files])
    electronic_parts = [m.parts["electronic"] for m in ensemble.members]
    assert electronic_parts[0] is electronic_parts[1] and electronic_parts[2] is electronic_parts[3]
    assert electronic_parts[0] is not electronic_parts[2]  # another split, other weights
    assert len({id(m.parts["ionic"]) for m in ensemble.members}) == 4
    assert share_identical_parts(ensemble.members) == 0  # already shared

    calls = []
    for part in {id(p): p for p in electronic_parts}.values():  # count the passes (a test-side wrapper)

        def counted(*args, _run=part.outputs, **kwargs):
            calls.append(1)
            return _run(*args, **kwargs)

        part.outputs = counted
    graphs = graphs_for(crystals, ensemble)
    shared = run_model(graphs, ensemble)
    assert len(calls) == 2  # two distinct ε∞ networks, one batch: each ran once (four members hold them)
    alone = np.stack([run_model(graphs, member).predictions[0] for member in apart])
    np.testing.assert_array_equal(shared.predictions, alone)
    np.testing.assert_array_equal(shared.parts["electronic"][0], shared.parts["electronic"][1])
