"""``members.json``: an ensemble whose members are files of sibling ensembles (how ``combined`` ships no copies).

The listed files load as members named ``<ensemble>-<member>``, in the listed order; a member whose bytes changed,
a path outside the sibling folders, a malformed list or a folder holding both layouts raise a
:class:`~goectp.checkpoint.CheckpointError` that names the problem.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import goectp
from goectp import checkpoint as ck
from goectp import registry
from goectp.screening.model_spec import load_model_spec


def tiny(seed: int) -> goectp.GoeCTP:
    torch.manual_seed(seed)
    return goectp.build_model(hidden=8, num_rbf=8)


@pytest.fixture()
def models(tmp_path, monkeypatch) -> Path:
    """``assets/models`` with two ensembles ``a`` and ``b`` of two members each."""
    root = tmp_path / "assets" / "models"
    for family, offset in (("a", 0), ("b", 10)):
        for split in (0, 1):
            ck.save_checkpoint(root / family / f"split{split}.pt", tiny(offset + split), split_seed=split)
    monkeypatch.setenv("GOECTP_ASSETS", str(tmp_path / "assets"))
    return root


def write_manifest(folder: Path, files: list[str], sha256s: list[str] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if sha256s is None:
        sha256s = [hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in files]
    entries = [{"file": f, "sha256": h} for f, h in zip(files, sha256s)]
    (folder / registry.MEMBERS_FILE).write_text(json.dumps({"members": entries}))


def test_listed_members_load_in_order_with_their_ensembles_names(models):
    write_manifest(models / "both", ["../b/split1.pt", "../a/split0.pt"])
    assert "both" in registry.available_models()
    ensemble = goectp.load_model("both")
    assert ensemble.names == ["b-split1", "a-split0"]
    direct = [ck.load_checkpoint(models / "b" / "split1.pt"), ck.load_checkpoint(models / "a" / "split0.pt")]
    for member, same in zip(ensemble.members, direct):
        for (k, v), (_, w) in zip(member.state_dict().items(), same.state_dict().items()):
            assert torch.equal(v, w), k
    spec = load_model_spec("both")  # screening ships the members' bytes to its workers
    assert spec.names == ("b-split1", "a-split0")
    assert spec.sha256s[0] == hashlib.sha256((models / "b" / "split1.pt").read_bytes()).hexdigest()


def test_a_member_that_changed_since_it_was_listed_is_refused(models):
    write_manifest(models / "both", ["../a/split0.pt", "../b/split0.pt"])
    ck.save_checkpoint(models / "b" / "split0.pt", tiny(99), split_seed=0)  # retrained under the same name
    with pytest.raises(ck.CheckpointError, match="'../b/split0.pt' changed"):
        goectp.load_model("both")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["../../outside.pt"], "not a checkpoint of a sibling"),
        (["../a/../../models/a/split0.pt/../../../outside.pt"], "not a checkpoint of a sibling"),
        (["../a/MODEL_CARD.md"], "not a checkpoint of a sibling"),
        (["../a/split7.pt"], "missing"),
    ],
)
def test_paths_outside_the_sibling_ensembles_are_refused(models, files, message):
    outside = models.parent.parent / "outside.pt"
    ck.save_checkpoint(outside, tiny(5), split_seed=0)
    write_manifest(models / "both", files, ["0" * 64] * len(files))
    with pytest.raises(ck.CheckpointError, match=message):
        goectp.load_model("both")


@pytest.mark.parametrize(
    "text", ["not json", "[]", '{"members": []}', '{"members": [{"file": "../a/split0.pt"}]}', '{"members": 3}']
)
def test_a_malformed_members_list_is_named(models, text):
    (models / "both").mkdir()
    (models / "both" / registry.MEMBERS_FILE).write_text(text)
    with pytest.raises(ck.CheckpointError, match="members.json"):
        goectp.load_model("both")


def test_a_folder_with_both_layouts_is_ambiguous(models):
    write_manifest(models / "both", ["../a/split0.pt"])
    ck.save_checkpoint(models / "both" / "extra.pt", tiny(3), split_seed=0)
    with pytest.raises(ck.CheckpointError, match="both"):
        goectp.load_model("both")


def test_the_shipped_default_lists_its_members_without_copies():
    default = registry.resolve_model_path("default")
    assert (default / registry.MEMBERS_FILE).is_file()
    members = registry.ensemble_members("default")
    assert not list(default.glob("*.pt")) and len(members) >= 5
    assert all(f.parent.parent == default.parent.resolve() for _, f in members)
    assert np.all([f.is_file() for _, f in members])
