"""``goectp ensemble export | calibrate | combine``: each subcommand's help, and a real export of a tiny run.

The release path lives in :mod:`goectp.release`; ``scripts/*_ensemble(s).py`` only forward to the CLI.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from goectp.api import predict
from goectp.cli import main as cli_main
from goectp.data import DIELECTRIC_FILE
from goectp.registry import load_model

ROOT = Path(__file__).resolve().parents[1]


def tiny_dataset(n: int = 40) -> dict:
    """Rock-salt-like cells whose ε grows with the lattice constant."""
    gen = np.random.default_rng(3)
    out = {}
    for i in range(n):
        a, c = gen.uniform(3.8, 5.0), gen.uniform(3.8, 6.0)
        s = Structure(Lattice.tetragonal(a, c), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        eps = np.diag([a, a, c]) * 1.5
        out[f"id-{i}"] = {"structure": s.as_dict(), "total": eps.tolist(), "band_gap": 2.0}
    return out


@pytest.mark.parametrize("action", [[], ["export"], ["calibrate"], ["combine"], ["share"], ["float16"]])
def test_each_ensemble_subcommand_has_help(action, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["ensemble", *action, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: goectp ensemble {' '.join(action)}".rstrip())
    if not action:
        assert "{export,calibrate,combine,share,float16}" in text


def test_ensemble_needs_a_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["ensemble"])
    assert exit_.value.code == 2


def train_tiny_run(tmp_path: Path, monkeypatch, splits: list[str], hidden: int) -> Path:
    """``goectp train`` for one epoch on :func:`tiny_dataset` (the data directory pointed at it); the run folder."""
    data = tmp_path / "data"
    data.mkdir()
    with gzip.open(data / DIELECTRIC_FILE, "wt") as f:
        json.dump(tiny_dataset(), f)
    monkeypatch.setenv("GOECTP_DATA", str(data))
    run = tmp_path / "run"
    train = ["train", "--splits", *splits, "--epochs", "1", "--hidden", str(hidden), "--num-rbf", "8"]
    assert cli_main([*train, "--batch-size", "8", "--out", str(run), "--no-progress"]) == 0
    return run


def test_export_then_calibrate_a_tiny_run(tmp_path, monkeypatch, capsys):
    """A real export (members, card naming the command) and calibration (calibration.json, card section)."""
    run = train_tiny_run(tmp_path, monkeypatch, ["0", "1", "2"], hidden=8)
    notes = tmp_path / "notes.md"
    notes.write_text("Pretrained on nothing: a test.")
    argv = ["ensemble", "export", str(run), "--name", "tiny", "--assets", str(tmp_path / "models")]
    assert cli_main([*argv, "--notes", str(notes), "--command", "goectp train ...", "--no-calibrate"]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "models" / "tiny"
    assert sorted(p.name for p in folder.glob("*.pt")) == ["split0.pt", "split1.pt", "split2.pt"]
    card = (folder / "MODEL_CARD.md").read_text()
    assert card in out and "median test MAE" in out and "calibrated:" not in out
    assert f"goectp ensemble export {run} --name tiny --notes {notes}" in card
    assert "Pretrained on nothing: a test." in card and "goectp train ..." in card
    assert not (folder / "calibration.json").exists()
    ensemble = load_model(folder)
    assert sorted(m.meta["split_seed"] for m in ensemble.members) == [0, 1, 2]

    assert cli_main(["ensemble", "calibrate", "--model", str(folder), "--cache", "", "--no-plot"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["tensor", "eps_mean", "anisotropy"]
    assert json.loads((folder / "calibration.json").read_text())
    card = (folder / "MODEL_CARD.md").read_text()
    assert "## Calibration" in card and f"goectp ensemble calibrate --model {folder.name}" in card

    (tmp_path / "models" / "aliases.json").write_text(json.dumps({"default": "tiny"}))
    bare = ["ensemble", "export", str(run), "--assets", str(tmp_path / "models"), "--no-calibrate"]
    assert cli_main([*bare, "--name", "default"]) != 0  # a folder "default" would hide the alias
    assert "'default' is an alias" in capsys.readouterr().err and not (tmp_path / "models" / "default").exists()
    assert cli_main(bare) == 0  # no --name: the run folder's name
    assert sorted(p.name for p in (tmp_path / "models" / run.name).glob("*.pt")) == [
        "split0.pt",
        "split1.pt",
        "split2.pt",
    ]


def test_export_with_float16_stores_half_the_weight_bytes(tmp_path, monkeypatch, capsys):
    """`--float16`: the weight matrices of the exported members are float16, the card says so, and the members
    predict what the float32 export does to float16 rounding."""
    import torch

    from goectp.checkpoint import safe_load
    from goectp.release.half import MIN_ELEMENTS

    run = train_tiny_run(tmp_path, monkeypatch, ["0"], hidden=32)
    export = ["ensemble", "export", str(run), "--assets", str(tmp_path / "models"), "--no-calibrate"]
    assert cli_main([*export, "--name", "full"]) == 0
    assert cli_main([*export, "--name", "half", "--float16"]) == 0
    assert "stored as float16" in capsys.readouterr().out
    full, half = (tmp_path / "models" / name / "split0.pt" for name in ("full", "half"))
    assert half.stat().st_size < 0.75 * full.stat().st_size
    dtypes = {t.dtype for t in safe_load(half)["state_dict"].values() if t.numel() >= MIN_ELEMENTS}
    assert dtypes == {torch.float16}
    structures = [Structure.from_dict(r["structure"]) for r in list(tiny_dataset().values())[:3]]
    a = predict(structures, load_model(full.parent))
    b = predict(structures, load_model(half.parent))
    np.testing.assert_allclose(a, b, atol=1e-2 * max(1.0, np.abs(a).max()))
    assert not np.array_equal(a, b)  # the weights did change


def test_combine_refuses_a_name_that_is_a_path_with_a_one_line_error(tmp_path, capsys):
    argv = ["ensemble", "combine", "a", "b", "--name", "../elsewhere", "--assets", str(tmp_path), "--no-calibrate"]
    assert cli_main(argv) == 2
    assert "give a new folder name (no path)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        ([str(ROOT / "scripts" / "export_ensemble.py"), "--help"], "usage: goectp ensemble export"),
        ([str(ROOT / "scripts" / "combine_ensembles.py"), "--help"], "usage: goectp ensemble combine"),
        (["-m", "goectp.cli", "ensemble", "calibrate", "--help"], "usage: goectp ensemble calibrate"),
    ],
)
def test_the_old_scripts_and_python_m_goectp_cli_reach_the_same_commands(argv, usage):
    res = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and res.stdout.startswith(usage), res.stderr
