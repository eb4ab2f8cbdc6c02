"""Hostile checkpoint configs, metadata and ``members.json``: each is a one-line :class:`CheckpointError` naming the
file and the field, raised quickly and before anything large is allocated."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import goectp
from goectp.api import build_model
from goectp.checkpoint import CheckpointError, checkpoint_dict, load_checkpoint, read_checkpoint, sum_checkpoint_dict
from goectp.cli import main as cli_main
from goectp.models import GoeCTP, GoeCTPConfig
from goectp.models.born import BornChargeModel
from goectp.models.ensemble import member_target
from goectp.models.goectp import MAX_RBF_CUTOFF, SIZE_LIMITS
from goectp.registry import MAX_JSON_BYTES, load_model

#: Extra resident memory a refused checkpoint may cost (the limits keep it to a few MB).
MAX_GROWTH_MB = 300


def tiny(**config) -> dict:
    """The checkpoint dict of a small GoeCTP model."""
    torch.manual_seed(0)
    return checkpoint_dict(build_model(config.pop("variant", "goectp"), hidden=8, num_rbf=8, **config).eval())


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def refused(path: Path | str, *words: str, loader=load_checkpoint) -> str:
    """Load ``path`` with ``loader``: a one-line CheckpointError naming the file and ``words``, within 5 s and
    without a large allocation; returns the message."""
    before, start = peak_mb(), time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        loader(path)
    message = str(info.value)
    assert time.perf_counter() - start < 5
    assert peak_mb() - before < MAX_GROWTH_MB
    assert str(path) in message and "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


BAD_CONFIGS = [
    ("num_layers", 10**8),
    ("num_layers", 0),
    ("num_layers", 2.5),
    ("k_neighbors", 10**6),
    ("k_neighbors", -5),
    ("k_neighbors", 0),
    ("k_neighbors", True),
    ("hidden", 2**40),
    ("hidden", "abc"),
    ("hidden", -8),
    ("heads", 0),
    ("heads", 65),
    ("num_rbf", 1),
    ("num_rbf", 10**6),
    ("rbf_cutoff", float("nan")),
    ("rbf_cutoff", float("inf")),
    ("rbf_cutoff", -1.0),
    ("rbf_cutoff", 1e6),
    ("rbf_cutoff", "8"),
    ("node_feature_dim", -1),
    ("node_feature_dim", 10**7),
    ("node_features", 5),
    ("variant", "zzz"),
    ("variant", ["goectp"]),
    ("pooling", "max"),
    ("cell_reduction", 1),
    ("atom_features", "onehot"),
    ("head", "vector"),
    ("symmetrize", "yes"),
    ("frame_average", 1),
    ("extra", [1]),
]


@pytest.mark.parametrize(("field", "value"), BAD_CONFIGS, ids=[f"{f}={v!r}"[:40] for f, v in BAD_CONFIGS])
def test_bad_config_value_is_a_checkpoint_error(tmp_path, field, value):
    ckpt = tiny()
    path = tmp_path / "bad.pt"
    torch.save({**ckpt, "config": {**ckpt["config"], field: value}}, path)
    refused(path, field, "invalid model config")
    refused(path, field, loader=goectp.load_model)


def test_heads_must_divide_hidden_for_attention_variants(tmp_path):
    ckpt = tiny(variant="mat", heads=2)
    path = tmp_path / "mat.pt"
    torch.save({**ckpt, "config": {**ckpt["config"], "heads": 3}}, path)
    refused(path, "hidden", "heads")


def test_unknown_config_key_is_a_checkpoint_error(tmp_path):
    ckpt = tiny()
    path = tmp_path / "unknown.pt"
    torch.save({**ckpt, "config": {**ckpt["config"], "hiden": 8}}, path)
    refused(path, "hiden", "does not match this goectp version")


def test_config_within_the_limits_but_without_its_weights_is_refused_before_building(tmp_path):
    """The largest config the limits allow (~47 GB of float32 weights) in a 50 kB file."""
    ckpt = tiny()
    path = tmp_path / "huge.pt"
    huge = {"variant": "mat", "hidden": 4096, "num_layers": 64, "heads": 64, "num_rbf": 1024}
    torch.save({**ckpt, "config": {**ckpt["config"], **huge}}, path)
    refused(path, "weights do not match the model config", "Missing key")


def test_weights_that_are_views_of_one_tensor_cannot_make_the_model_allocate_gigabytes(tmp_path):
    """Every tensor of the right shape but an expanded view of one number: the file is small, the model is not."""
    config = GoeCTPConfig(variant="mat", hidden=4096, num_layers=64, heads=64)
    with torch.device("meta"):
        skeleton = GoeCTP(config)
    state = {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in skeleton.state_dict().items()}
    state["element_table"] = tiny()["state_dict"]["element_table"]
    path = tmp_path / "views.pt"
    torch.save({**tiny(), "config": config.to_dict(), "state_dict": state}, path)
    assert path.stat().st_size < 2**20
    refused(path, "bytes of weights", "holds only")


def test_weights_that_are_not_named_tensors_are_refused(tmp_path):
    ckpt = tiny()
    for i, state in enumerate(({}, {**ckpt["state_dict"], "head.scale": [1.0]}, {**ckpt["state_dict"], 3: ckpt})):
        path = tmp_path / f"state{i}.pt"
        torch.save({**ckpt, "state_dict": state}, path)
        refused(path, "state_dict")


def test_born_and_sum_checkpoints_check_their_configs(tmp_path):
    born = checkpoint_dict(BornChargeModel(GoeCTPConfig(hidden=8, num_rbf=8)))
    path = tmp_path / "born.pt"
    torch.save({**born, "config": {**born["config"], "num_layers": 10**8}}, path)
    refused(path, "num_layers")
    parts = {}
    for target in ("electronic", "ionic"):
        ckpt = tiny()
        parts[target] = {**ckpt, "meta": {"target": target, "split_seed": 0, "data_sha256": "d"}}
    total = sum_checkpoint_dict(parts["electronic"], parts["ionic"])
    bad_ionic = {**parts["ionic"], "config": {**parts["ionic"]["config"], "k_neighbors": -5}}
    path = tmp_path / "sum.pt"
    torch.save({**total, "parts": {**total["parts"], "ionic": bad_ionic}}, path)
    assert "(ionic part)" in refused(path, "k_neighbors")
    for i, part in enumerate(({**parts["ionic"], "kind": "born"}, [1, 2])):
        path = tmp_path / f"sum_part{i}.pt"
        torch.save({**total, "parts": {**total["parts"], "ionic": part}}, path)
        refused(path, "ionic part")


BAD_META = [
    ([1, 2], "'meta' is a list"),
    ("x", "'meta' is a str"),
    ({"train_config": [1]}, "meta['train_config']"),
    ({"train_config": "total"}, "meta['train_config']"),
    ({"target": 5}, "meta['target']"),
    ({"split_seed": "zero"}, "meta['split_seed']"),
    ({"split_seed": [0]}, "meta['split_seed']"),
    ({"data_sha256": {}}, "meta['data_sha256']"),
    ({"train_config": {"target": ["ionic"]}}, "meta['train_config']['target']"),
    ({"train_config": {"split_seed": 1.5}}, "meta['train_config']['split_seed']"),
    ({"target": "bogus"}, "bogus"),
    ({"train_config": {"target": "bogus"}}, "bogus"),
]


@pytest.mark.parametrize(("meta", "words"), BAD_META, ids=[repr(m)[:40] for m, _ in BAD_META])
def test_bad_meta_is_a_checkpoint_error(tmp_path, meta, words):
    path = tmp_path / "meta.pt"
    torch.save({**tiny(), "meta": meta}, path)
    refused(path, words)
    folder = tmp_path / "ensemble"  # a bad member of an ensemble folder
    folder.mkdir()
    torch.save({**tiny(), "meta": {"split_seed": 0}}, folder / "a.pt")
    torch.save({**tiny(), "meta": meta}, folder / "b.pt")
    refused(folder / "b.pt", words, loader=lambda _: load_model(folder))


def test_bad_meta_of_a_sum_or_its_part_is_a_checkpoint_error(tmp_path):
    parts = {t: {**tiny(), "meta": {"target": t, "split_seed": 0}} for t in ("electronic", "ionic")}
    total = sum_checkpoint_dict(parts["electronic"], parts["ionic"])
    path = tmp_path / "sum_meta.pt"
    torch.save({**total, "meta": [1]}, path)
    refused(path, "'meta' is a list")
    torch.save({**total, "meta": {"target": "ionic"}}, path)  # a sum predicts the total tensor
    refused(path, "predicts the")
    torch.save({**total, "parts": {**total["parts"], "ionic": {**parts["ionic"], "meta": "x"}}}, path)
    refused(path, "ionic part", "'meta' is a str")


def test_absent_meta_reads_as_empty(tmp_path):
    for meta in (None, {}):
        path = tmp_path / "none.pt"
        torch.save({**tiny(), "meta": meta}, path)
        assert read_checkpoint(path)["meta"] == {} and member_target(load_checkpoint(path)) == "total"


def test_member_target_names_the_problem_for_metadata_that_is_not_a_dict():
    model = build_model("goectp", hidden=8, num_rbf=8)
    for meta in ([1, 2], "x", {"train_config": [1]}):
        model.meta = meta
        with pytest.raises(ValueError, match="not a dict"):
            member_target(model)


def write_manifest(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "models" / "combined"
    folder.mkdir(parents=True)
    (folder / "members.json").write_text(text)
    return folder


def test_deeply_nested_members_json_is_a_checkpoint_error(tmp_path):
    folder = write_manifest(tmp_path, '{"members": ' + "[" * 100_000 + "]" * 100_000 + "}")
    refused(folder / "members.json", "nested too deeply", loader=lambda _: load_model(folder))


def test_oversized_members_json_is_refused_unread(tmp_path):
    folder = write_manifest(tmp_path, json.dumps({"members": [], "pad": "x" * MAX_JSON_BYTES}))
    refused(folder / "members.json", "larger than", loader=lambda _: load_model(folder))


@pytest.mark.parametrize(
    "manifest",
    [
        {"members": {"file": "../a/b.pt", "sha256": "0"}},
        {"members": ["../a/b.pt"]},
        {"members": [{"file": ["../a/b.pt"], "sha256": "0"}]},
        [{"file": "../a/b.pt", "sha256": "0"}],
        {"members": []},
    ],
)
def test_malformed_members_json_is_a_checkpoint_error(tmp_path, manifest):
    folder = write_manifest(tmp_path, json.dumps(manifest))
    refused(folder / "members.json", "members", loader=lambda _: load_model(folder))


def test_a_folder_mixing_born_and_dielectric_models_is_refused(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    torch.save(checkpoint_dict(BornChargeModel(GoeCTPConfig(hidden=8, num_rbf=8))), folder / "a.pt")
    torch.save(tiny(), folder / "b.pt")
    refused(folder, "Born", loader=load_model)


def test_cli_predict_reports_a_bad_config_in_one_line(tmp_path, capsys):
    ckpt = tiny()
    path = tmp_path / "k_neg.pt"
    torch.save({**ckpt, "config": {**ckpt["config"], "k_neighbors": -5}}, path)
    cif = Path(goectp.__file__).resolve().parents[1] / "assets" / "examples" / "TiO2_rutile.cif"
    assert cli_main(["predict", str(cif), "--model", str(path), "--device", "cpu"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "k_neg.pt" in err[0] and "k_neighbors" in err[0] and "Traceback" not in err[0]


def test_config_limits_accept_their_bounds_and_refuse_beyond():
    for field, (low, high) in SIZE_LIMITS.items():
        for value in (low, high):
            features = {"node_features": "chgnet"} if field == "node_feature_dim" and value else {}
            assert getattr(GoeCTPConfig(**{field: value, **features}), field) == value
        with pytest.raises(ValueError, match=field):
            GoeCTPConfig(**{field: high + 1})
    assert GoeCTPConfig(rbf_cutoff=MAX_RBF_CUTOFF).rbf_cutoff == MAX_RBF_CUTOFF
    numpy_ints = GoeCTPConfig(hidden=np.int64(16), k_neighbors=np.int32(8))  # e.g. from a sweep: stored as ints
    assert type(numpy_ints.hidden) is int and type(numpy_ints.k_neighbors) is int


def test_valid_checkpoint_still_loads_and_round_trips(tmp_path):
    ckpt = tiny(variant="icom", heads=2, decompose=True)
    path = tmp_path / "ok.pt"
    torch.save(ckpt, path)
    model = load_checkpoint(path)
    assert model.config == GoeCTPConfig(**ckpt["config"])
    assert all(torch.equal(v, ckpt["state_dict"][k]) for k, v in model.state_dict().items())
