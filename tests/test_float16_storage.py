"""Weights stored as float16 (goectp ensemble float16): smaller files, weight matrices in float16 and small tensors
untouched, predictions within float16 rounding, references and manifests re-hashed, a second run a no-op."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from goectp.api import graphs_for, predict_graphs
from goectp.checkpoint import safe_load
from goectp.cli import main as cli_main
from goectp.data.paths import sha256_file
from goectp.registry import load_model
from goectp.release.half import MIN_ELEMENTS, half_state_dict, store_float16
from goectp.release.share import share_parts
from goectp.uncertainty import ensemble_fingerprint


@pytest.fixture()
def assets(tmp_path, write_sum_family):
    """assets/models/{electronic, decomposed (sums naming electronic's files), combined (a manifest)}."""
    from goectp.release.share import refresh_manifests

    models = write_sum_family(32)  # 32 x 32 weight matrices: large enough to be converted
    refresh_manifests(models, share_parts(models / "decomposed", models / "electronic"))  # the shipped layout
    return tmp_path


def test_half_state_dict_converts_weight_matrices_only():
    state = {
        "big": torch.randn(64, 64),
        "bias": torch.randn(64),
        "steps": torch.arange(4096),
        "huge": torch.full((64, 64), 1e6),
        "nan": torch.full((64, 64), float("nan")),
    }
    out, n = half_state_dict(state)
    assert n == 1 and out["big"].dtype == torch.float16
    assert MIN_ELEMENTS > 64 and out["bias"] is state["bias"]  # small: kept as it is
    assert out["steps"].dtype == torch.int64 and out["huge"].dtype == out["nan"].dtype == torch.float32


def test_float16_files_are_smaller_and_predict_within_rounding(assets):
    models = assets / "models"
    crystals = [
        Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure(Lattice.tetragonal(4.6, 2.96), ["Ti", "O"], [[0, 0, 0], [0.3, 0.3, 0]]),
    ]
    before = load_model(models / "combined")
    graphs = graphs_for(crystals, before)
    expected, fingerprint = predict_graphs(graphs, before), ensemble_fingerprint(before)
    sizes = {f: f.stat().st_size for f in models.glob("*/*.pt")}

    changed = store_float16([models / "electronic", models / "decomposed"])
    assert len(changed) == 4  # both folders' files; the sums because their part and their ionic network changed
    assert all(f.stat().st_size < 0.6 * size for f, size in sizes.items())
    raw = safe_load(models / "decomposed" / "split0.pt")
    assert raw["parts"]["electronic"]["sha256"] == sha256_file(models / "electronic" / "split0.pt")
    ionic = raw["parts"]["ionic"]
    assert ionic["meta"]["weights_stored_as"] == "float16"
    assert {t.dtype for t in ionic["state_dict"].values() if t.numel() >= MIN_ELEMENTS} <= {torch.float16, torch.int64}
    assert any(t.dtype == torch.float32 for t in ionic["state_dict"].values())  # the small tensors

    from goectp.release.share import refresh_manifests

    assert refresh_manifests(models, changed) == [models / "combined" / "members.json"]
    after = load_model(models / "combined")  # sha256 of the manifest and of the references checked on load
    assert next(after.members[0].parameters()).dtype == torch.float32  # computed in the model's precision
    assert ensemble_fingerprint(after) != fingerprint  # its calibration must be re-fitted
    got = predict_graphs(graphs, after)
    assert not np.array_equal(got, expected)
    np.testing.assert_allclose(got, expected, atol=5e-3 * max(1.0, np.abs(expected).max()))
    assert store_float16([models / "electronic", models / "decomposed"]) == {}


def test_converting_a_part_folder_alone_keeps_the_sums_that_name_it_loadable(assets):
    models = assets / "models"
    weights = {f: safe_load(f)["parts"]["ionic"]["state_dict"] for f in (models / "decomposed").glob("*.pt")}
    changed = store_float16([models / "electronic"])
    assert sorted(p.relative_to(models.resolve()).as_posix() for p in changed) == [
        "decomposed/split0.pt",  # only its reference to the electronic file changed
        "decomposed/split1.pt",
        "electronic/split0.pt",
        "electronic/split1.pt",
    ]
    for file, state in weights.items():  # the ionic networks are untouched
        after = safe_load(file)["parts"]["ionic"]["state_dict"]
        assert all(torch.equal(after[k], v) and after[k].dtype == v.dtype for k, v in state.items())
    from goectp.release.share import refresh_manifests

    refresh_manifests(models, changed)
    load_model(models / "combined")  # every sha256 on the way checks out


def test_goectp_ensemble_float16_command(assets, capsys):
    models = assets / "models"
    args = ["ensemble", "float16", str(models / "electronic"), str(models / "decomposed"), "--assets", str(assets)]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "4 checkpoint files rewritten" in out and "members.json" in out and "re-fit each calibration" in out
    load_model(models / "combined")
    assert cli_main(args) == 0 and "0 checkpoint files rewritten" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        cli_main(["ensemble", "float16"])  # names at least one ensemble
    assert refused.value.code == 2 and "the following arguments are required: models" in capsys.readouterr().err


def test_the_shipped_assets_fit_their_budget_with_float16_weights():
    """A clone carries ≤ 25 MB of assets (issue 31); a re-export that forgets `goectp ensemble float16` fails here."""
    from goectp.registry import assets_dir, checkpoint_files

    root = assets_dir()
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    assert size <= 25_000_000, f"assets/ holds {size / 1e6:.1f} MB"
    for name in ("fast", "electronic", "combined"):
        for file in checkpoint_files(name):
            raw = safe_load(file)
            parts = raw["parts"].values() if raw.get("kind") == "sum" else [raw]
            states = [part["state_dict"] for part in parts if "state_dict" in part]
            big = [t.dtype for state in states for t in state.values() if t.numel() >= MIN_ELEMENTS]
            assert big and set(big) <= {torch.float16, torch.int64}, file
    for file in sorted((root / "physics" / "born-charges").glob("split*.pt")):  # the physics term's Born charges
        big = [t.dtype for t in safe_load(file)["state_dict"].values() if t.numel() >= MIN_ELEMENTS]
        assert big and set(big) <= {torch.float16, torch.int64}, file
