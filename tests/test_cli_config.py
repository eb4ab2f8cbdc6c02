"""`goectp train` / `goectp pretrain` options generated from the config dataclasses, and `--config FILE`."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from goectp.api import load_model
from goectp.cli import build_parser
from goectp.cli import main as cli_main
from goectp.cli.config import training_configs
from goectp.models import GoeCTPConfig
from goectp.training import TrainConfig


def _parse(*argv: str, command: str = "train"):
    return build_parser().parse_args([command, *argv])


def _configs(*argv: str, command: str = "train") -> tuple[GoeCTPConfig, TrainConfig]:
    mcfg, values = training_configs(_parse(*argv, command=command), command)
    return mcfg, TrainConfig(**values)


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    return capsys.readouterr().out


def test_train_help_lists_every_config_field_and_config(capsys):
    text = _help("train", capsys)
    for f in dataclasses.fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}" in text, f.name
    derived = {"node_feature_dim", "extra", "head"}  # from --node-features / config file only / fixed by the command
    for f in dataclasses.fields(GoeCTPConfig):
        if f.name not in derived:
            assert f"--{f.name.replace('_', '-')}" in text, f.name
    assert "--config FILE" in text and "(default: 1e-05)" in text


def test_pretrain_shares_the_generated_options(capsys):
    text = _help("pretrain", capsys)
    assert "--weight-decay" in text and "--grad-clip" in text and "--config" in text and "--quiet" in text
    mcfg, cfg = _configs("--quiet", "--split-seed", "3", command="pretrain")
    assert cfg.epochs == 500 and not cfg.progress and cfg.split_seed == 3  # pretraining's one documented default


def test_defaults_are_the_dataclasses():
    mcfg, cfg = _configs()
    assert mcfg == GoeCTPConfig() and cfg == TrainConfig()


def test_every_field_is_reachable_from_the_command_line():
    mcfg, cfg = _configs(
        "--weight-decay",
        "0.1",
        "--lr-end",
        "1e-6",
        "--huber-delta",
        "0.5",
        "--grad-clip",
        "none",
        "--lr-power",
        "2",
        "--max-abs",
        "100",
        "--seed",
        "7",
        "--no-progress",
        "--augment",
        "--target",
        "ionic",
        "--device",
        "cpu",
        "--variant",
        "mat",
        "--layers",
        "2",
        "--heads",
        "2",
        "--no-symmetrize",
        "--no-frame",
        "--k-neighbors",
        "12",
        "--sign-average",
        "--num-rbf",
        "8",
    )
    assert (cfg.weight_decay, cfg.lr_end, cfg.huber_delta, cfg.grad_clip, cfg.lr_power, cfg.max_abs) == (
        0.1,
        1e-6,
        0.5,
        None,
        2.0,
        100.0,
    )
    assert (cfg.seed, cfg.progress, cfg.augment_rotations, cfg.target, cfg.device) == (7, False, True, "ionic", "cpu")
    assert (
        mcfg.variant,
        mcfg.num_layers,
        mcfg.heads,
        mcfg.symmetrize,
        mcfg.use_frame,
        mcfg.k_neighbors,
        mcfg.sign_average,
        mcfg.num_rbf,
    ) == ("mat", 2, 2, False, False, 12, True, 8)


def test_bad_values_and_choices_are_argparse_errors(capsys):
    for argv in (["--variant", "nope"], ["--weight-decay", "abc"], ["--grad-clip", "x"], ["--target", "both"]):
        with pytest.raises(SystemExit):
            _parse(*argv)
    assert "invalid choice" in capsys.readouterr().err


def test_choices_come_from_the_registries(monkeypatch):
    from goectp.features.registry import EXTRACTORS
    from goectp.models import VARIANTS

    monkeypatch.setitem(EXTRACTORS, "toy", {"dim": 3, "factory": None, "version": lambda: "toy-1"})
    mcfg, _ = _configs("--node-features", "toy")
    assert (mcfg.node_features, mcfg.node_feature_dim) == ("toy", 3)  # the dimension follows from the registry
    action = next(
        a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions if a.dest == "model.variant"
    )
    assert list(action.choices) == list(VARIANTS)


def test_config_file_sets_a_whole_run_and_the_command_line_wins(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        '[model]\nhidden = 32\nvariant = "icom"\nextra = {note = "x"}\n'
        '[train]\nweight_decay = 0.01\nepochs = 3\n[run]\nsplits = [2, 4]\nout = "runs/x"\n'
    )
    args = _parse("--config", str(path), "--epochs", "5")
    mcfg, values = training_configs(args, "train")
    cfg = TrainConfig(**values)
    assert (mcfg.hidden, mcfg.variant, mcfg.extra) == (32, "icom", {"note": "x"})
    assert (cfg.weight_decay, cfg.epochs) == (0.01, 5)
    assert args.splits == [2, 4] and args.out == "runs/x"
    assert args.config["content"]["train"]["epochs"] == 3 and len(args.config["sha256"]) == 64


def test_yaml_config_file(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  hidden: 24\ntrain:\n  grad_clip: null\n")
    mcfg, cfg = _configs("--config", str(path))
    assert mcfg.hidden == 24 and cfg.grad_clip is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[model]\nhiden = 3\n", "unknown key 'hiden' in [model]"),
        ("[train]\nweight_decy = 0.1\n", "unknown key 'weight_decy' in [train]"),
        ("[run]\noutput = 'x'\n", "unknown key 'output' in [run]"),
        ("[optim]\nlr = 1\n", "unknown section [optim]"),
        ("[model\n", "not valid TOML"),
    ],
)
def test_config_file_errors_name_the_key(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SystemExit) as exc:
        _parse("--config", str(path))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "bad.toml" in err


def test_missing_config_file_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _parse("--config", str(tmp_path / "none.toml"))
    assert "cannot read the config file" in capsys.readouterr().err


def _dataset(n: int = 12) -> dict:
    gen = np.random.default_rng(5)
    out = {}
    for i in range(n):
        a = gen.uniform(3.8, 5.0)
        s = Structure(Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        out[f"id-{i}"] = {"structure": s.as_dict(), "total": (np.eye(3) * a).tolist()}
    return out


def test_train_with_a_config_file_records_it_in_the_checkpoint(tmp_path):
    data = tmp_path / "data.json"
    data.write_text(json.dumps(_dataset()))
    path = tmp_path / "run.toml"
    out = tmp_path / "run"
    path.write_text(
        f"[model]\nhidden = 8\nnum_rbf = 8\nk_neighbors = 8\n"
        f"[train]\nepochs = 1\nbatch_size = 4\nprogress = false\nweight_decay = 0.02\n"
        f'[run]\nsplits = [1]\nout = "{out.as_posix()}"\ndata_file = "{data.as_posix()}"\n'
    )
    assert cli_main(["train", "--config", str(path)]) == 0
    model = load_model(out / "split1" / "best.pt")
    meta = model.meta
    assert meta["run_config"]["content"]["train"]["weight_decay"] == 0.02
    assert meta["train_config"]["weight_decay"] == 0.02 and meta["train_config"]["seed"] == 1
    assert model.config.hidden == 8 and model.config.k_neighbors == 8


def test_pretrain_with_a_config_file_records_it(tmp_path, monkeypatch):
    from goectp.training.pretrain import ScalarRecord, write_scalar_json

    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path / "cache"))
    gen = np.random.default_rng(3)
    records = []
    for i in range(10):
        a = gen.uniform(3.8, 5.0)
        records.append(ScalarRecord(f"s{i}", Structure(Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5] * 3]), a))
    data = write_scalar_json(records, tmp_path / "scalar.json")
    out = tmp_path / "pt"
    path = tmp_path / "pre.toml"
    path.write_text(
        f"[model]\nhidden = 8\nnum_rbf = 8\n[train]\nepochs = 1\nbatch_size = 4\nlr_end = 1e-4\n"
        f'[run]\ndataset = "{data.as_posix()}"\nout = "{out.as_posix()}"\n'
    )
    assert cli_main(["pretrain", "--config", str(path), "--quiet"]) == 0
    model = load_model(out / "best.pt")
    assert model.config.head == "scalar" and model.config.hidden == 8
    assert model.meta["train_config"]["lr_end"] == 1e-4 and model.meta["train_config"]["epochs"] == 1
    assert model.meta["run_config"]["content"]["run"]["out"] == out.as_posix()
