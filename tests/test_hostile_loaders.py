"""Hostile data files and options beyond structures and checkpoints: dielectric datasets (library and explorer),
candidate pools, pretraining pools, run config files and screening options. Each gives one clear error naming the
file (or the option) and the problem: never a traceback of another type, a silent wrong answer, or a process that
fills its memory or dies in spglib."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from goectp.data import read_dielectric_json

BIG_INT = "9" * 400  # valid JSON, too large for a float: OverflowError, not ValueError


def _structure() -> Structure:
    return Structure(Lattice.cubic(4.2), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _record(**changes) -> dict:
    rec = {
        "structure": _structure().as_dict(),
        "electronic": np.eye(3).tolist(),
        "ionic": np.eye(3).tolist(),
        "total": (2 * np.eye(3)).tolist(),
        "band_gap": 3.0,
    }
    rec.update(changes)
    return rec


def _write_gz(path: Path, text: str) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(text)
    return path


def _truncated_gz(path: Path, value: object) -> Path:
    """A gzip file of ``value`` cut in the middle (random strings: the cut lies past the first block)."""
    gzip_bytes = gzip.compress(json.dumps(value).encode())
    path.write_bytes(gzip_bytes[: len(gzip_bytes) // 2])
    return path


def _pool(n: int = 400) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {"id": f"c-{i}", "source": "x", "structure": _structure().as_dict(), "pad": rng.random(20).tolist()}
        for i in range(n)
    ]


# ------------------------------------------------------------------------------------------------ dielectric JSON
@pytest.mark.parametrize(
    ("text", "words"),
    [
        (json.dumps({"a": _record(total="T")}).replace('"T"', f"[[{BIG_INT}, 0, 0], [0, 1, 0], [0, 0, 1]]"), "total"),
        (json.dumps({"a": _record(band_gap="G")}).replace('"G"', BIG_INT), "band_gap"),
    ],
)
def test_numbers_too_large_for_a_float_are_named(tmp_path, text, words):
    path = tmp_path / "d.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=words) as exc:
        read_dielectric_json(path)
    assert "d.json" in str(exc.value) and "record a" in str(exc.value)


@pytest.mark.parametrize("gap", ["NaN", "Infinity", "-1.5", '"nan"'])
def test_band_gaps_that_are_not_a_gap_are_refused(tmp_path, gap):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"a": _record(band_gap=12345)}).replace("12345", gap))
    with pytest.raises(ValueError, match=r"band_gap must be a number or null \(a finite gap >= 0 eV\)") as exc:
        read_dielectric_json(path)
    assert "d.json" in str(exc.value)


def test_a_duplicate_id_is_refused_not_silently_dropped(tmp_path):
    first, second = json.dumps(_record()), json.dumps(_record(band_gap=1.0))
    path = _write_gz(tmp_path / "d.json.gz", f'{{"mp-1": {first}, "mp-1": {second}}}')
    with pytest.raises(ValueError, match="'mp-1' appears twice") as exc:
        read_dielectric_json(path)
    assert "d.json.gz" in str(exc.value)


# ------------------------------------------------------------------------------------------------ explorer data set
def _loader(directory: Path):
    from explorer.loader import DatasetIndex, ExampleGallery, StructureLoader

    return StructureLoader(gallery=ExampleGallery(directory / "no-examples"), dataset=DatasetIndex(directory))


def _dataset(directory: Path, records: dict) -> Path:
    return _write_gz(directory / "mp_dielectric_open.json.gz", json.dumps(records))


def test_explorer_search_reports_a_truncated_data_file(tmp_path):
    _truncated_gz(tmp_path / "mp_dielectric_open.json.gz", {f"mp-{i}": _record() for i in range(300)})
    ld = _loader(tmp_path)
    assert ld.search_dataset("NaCl") == []
    assert "mp_dielectric_open.json.gz" in ld.error and "not a readable" in ld.error


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({"structure": {"sites": [{"species": [{"element": "Na", "occu": "1"}]}]}}, "occupancy"),
        ({"structure": {"sites": "NaCl"}}, "list of 'sites'"),
        ([1, 2, 3], "list of 'sites'"),
    ],
)
def test_explorer_search_reports_a_record_it_cannot_index(tmp_path, record, words):
    _dataset(tmp_path, {"mp-1": _record(), "mp-2": record})
    ld = _loader(tmp_path)
    assert ld.search_dataset("NaCl") == []
    assert "mp_dielectric_open.json.gz" in ld.error and "'mp-2'" in ld.error and words in ld.error


def test_explorer_data_file_is_read_within_a_size_limit(tmp_path):
    _dataset(tmp_path, {"mp-1": _record(pad="x" * 50_000)})
    ld = _loader(tmp_path)
    ld.dataset.max_bytes = 10_000
    assert ld.search_dataset("NaCl") == []
    assert "more than 10,000 bytes once decompressed" in ld.error


def test_explorer_record_with_a_bad_tensor_is_an_error_not_a_crash(tmp_path):
    _dataset(tmp_path, {"mp-1": _record(total=[[1, 2], [3, 4]]), "mp-2": _record(ionic=None)})
    ld = _loader(tmp_path)
    assert [hit[0] for hit in ld.search_dataset("NaCl")] == ["mp-1", "mp-2"]
    assert not ld.load_dataset_record("mp-1") and "must be 3x3" in ld.error and "json.gz" in ld.error
    assert not ld.load_dataset_record("mp-2") and "no ionic tensor" in ld.error
    ok = tmp_path / "ok"
    ok.mkdir()
    _dataset(ok, {"mp-3": _record()})
    good = _loader(ok)
    good.search_dataset("mp-3")
    assert good.load_dataset_record("mp-3") and good.reference["band_gap"] == 3.0
    np.testing.assert_allclose(good.reference["total"], 2 * np.eye(3))


def test_explorer_screening_structures_are_read_within_a_size_limit(tmp_path, monkeypatch):
    import explorer.screening_data as screening_data

    (tmp_path / "screening_results.csv").write_text(",".join(screening_data.RESULT_COLUMNS) + "\n")
    _write_gz(tmp_path / "top_structures.json.gz", json.dumps({"c-1": _structure().as_dict(), "pad": "x" * 50_000}))
    monkeypatch.setattr(screening_data, "MAX_JSON_BYTES", 10_000)
    data = screening_data.ScreeningData(tmp_path, pool_dir=tmp_path / "none")
    with pytest.raises(ValueError, match="more than 10,000 bytes"):
        data.structure("c-1")


# ------------------------------------------------------------------------------------------------ candidate pools
def test_a_truncated_gzip_pool_is_a_value_error_naming_the_file(tmp_path):
    from goectp.screening.pool import open_pool

    path = _truncated_gz(tmp_path / "pool.json.gz", _pool())
    with pytest.raises(ValueError, match=r"pool\.json\.gz: element \d+: not a readable JSON\(\.gz\) file"):
        open_pool(path).ids()


def test_a_training_record_with_a_huge_occupancy_is_named(tmp_path):
    from goectp.screening.filters import load_training_index

    text = json.dumps({"a": _record()}).replace('"occu": 1', f'"occu": {BIG_INT}', 1)
    path = _write_gz(tmp_path / "train.json.gz", text)
    with pytest.raises(ValueError, match="record 'a' has a malformed structure"):
        load_training_index(path)


# ------------------------------------------------------------------------------------------------ pretraining pools
def test_pretraining_pool_problems_name_the_file(tmp_path):
    from goectp.training.scalar_sets import SCALAR_DATASETS, read_candidate_pool

    with pytest.raises(ValueError, match="cut.json.gz: not a readable"):
        read_candidate_pool(_truncated_gz(tmp_path / "cut.json.gz", _pool()))
    pool = _pool(3)
    pool[1]["source"] = None
    with pytest.raises(ValueError, match="bad.json.gz: candidate 1 needs a string 'id' and 'source'"):
        read_candidate_pool(_write_gz(tmp_path / "bad.json.gz", json.dumps(pool)))
    pool = _pool(4)
    for entry, gap in zip(pool, ["1.5", True, "n/a", 2]):
        entry["band_gap"] = gap
    entries = read_candidate_pool(_write_gz(tmp_path / "ok.json.gz", json.dumps(pool)))
    assert [(cid, v) for cid, _, v in SCALAR_DATASETS["band-gap"][1](entries)] == [("c-0", 1.5), ("c-3", 2.0)]


def test_a_scalar_file_with_a_nan_label_is_refused(tmp_path):
    from goectp.training.scalar_sets import read_scalar_json

    path = tmp_path / "s.json"
    path.write_text(json.dumps({"x-1": {"structure": _structure().as_dict(), "value": 1.0}}).replace("1.0", "NaN"))
    with pytest.raises(ValueError, match="s.json: record 'x-1': 'value' must be a finite number"):
        read_scalar_json(path)


# ------------------------------------------------------------------------------------------------ run config files
def _parse(*argv: str):
    from goectp.cli import build_parser

    return build_parser().parse_args(["train", *argv])


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('[train]\nepochs = "200"', "[train] epochs = '200': expected an integer, got str"),
        ('[train]\nprogress = "no"', "[train] progress = 'no': expected true or false"),
        ("[train]\nlr_end = nan", "[train] lr_end = 'nan': expected a finite number"),
        ("[train]\ngrad_clip = inf", "expected a finite number"),
        ('[train]\nloss = "l1"', "expected one of huber, mse"),
        ('[run]\nsplits = "01"', "[run] splits = '01': expected a list"),
        ('[run]\nsplits = [0, "1"]', "expected an integer"),
        ('[run]\nworkers = "x"', "[run] workers = 'x': expected an integer"),
        ("[run]\nno_resume = 1", "expected true or false"),
    ],
)
def test_config_file_values_must_have_their_field_types(tmp_path, capsys, body, words):
    path = tmp_path / "run.toml"
    path.write_text(body + "\n")
    with pytest.raises(SystemExit) as exc:
        _parse("--config", str(path))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "run.toml" in err


def test_config_file_with_good_values_still_reads(tmp_path):
    from goectp.cli.config import training_configs

    path = tmp_path / "run.toml"
    path.write_text('[model]\nhidden = 16\n[train]\nlr = 1\ngrad_clip = 5\n[run]\nsplits = [1, 2]\nout = "o"\n')
    args = _parse("--config", str(path))
    mcfg, values = training_configs(args, "train")
    assert (mcfg.hidden, values["lr"], values["grad_clip"], args.splits, args.out) == (16, 1, 5, [1, 2], "o")


def test_yaml_aliases_are_refused_before_they_expand(tmp_path, capsys):
    pytest.importorskip("yaml")
    lines = ["model:", "  extra:", '    a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"    a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10⁹ strings
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit):
        _parse("--config", str(path))
    err = capsys.readouterr().err
    assert "laughs.yaml: not valid YAML" in err and "aliases" in err


def test_config_file_that_is_a_device_or_huge_is_refused_unread(tmp_path, capsys):
    big = tmp_path / "big.toml"
    big.write_text("#" * 2_000_000)
    with pytest.raises(SystemExit):
        _parse("--config", str(big))
    assert "big.toml: larger than 1,048,576 bytes" in capsys.readouterr().err
    if Path("/dev/zero").exists():
        with pytest.raises(SystemExit):
            _parse("--config", "/dev/zero")
        assert "/dev/zero: not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "value"), [("--lr", "nan"), ("--grad-clip", "inf"), ("--lr-end", "Infinity")])
def test_non_finite_numbers_on_the_command_line_are_argparse_errors(capsys, option, value):
    with pytest.raises(SystemExit):
        _parse(option, value)
    assert f"argument {option}: expected a finite float" in capsys.readouterr().err


def test_zero_epochs_or_batch_size_is_a_clear_error():
    from goectp.training import TrainConfig

    for change in ({"epochs": 0}, {"batch_size": 0}, {"epochs": True}):
        with pytest.raises(ValueError, match="must be an integer of at least 1"):
            TrainConfig(**change)


# ------------------------------------------------------------------------------------------------ screening options
@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"kappa": float("nan")}, "kappa must be a finite number"),
        ({"min_gap": float("nan")}, "min_gap must be a finite number"),
        ({"aniso_min_gap": float("inf")}, "aniso_min_gap must be a finite number"),
        ({"symprec": float("nan")}, "symprec must be a tolerance above 0"),
        ({"symprec": -0.1}, "symprec must be a tolerance above 0"),
        ({"torch_threads": -1}, "torch_threads >= 0"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
    ],
)
def test_screening_options_that_would_empty_the_lists_or_crash_spglib(change, words):
    from goectp.screening.engine import ScreeningOptions

    with pytest.raises(ValueError, match=words):
        ScreeningOptions(pool="pool.json.gz", **change)
    ScreeningOptions(pool="pool.json.gz", symprec=None)  # none (and 0) skip the column
    ScreeningOptions(pool="pool.json.gz", symprec=0)


def test_crystal_system_refuses_a_tolerance_spglib_would_crash_on():
    code = (
        "from pymatgen.core import Lattice, Structure\n"
        "from goectp.data.splits import crystal_system\n"
        "s = Structure(Lattice.cubic(4.2), ['Na', 'Cl'], [[0, 0, 0], [0.5, 0.5, 0.5]])\n"
        "for bad in (float('nan'), -0.1):\n"
        "    try:\n"
        "        crystal_system(s, symprec=bad)\n"
        "    except ValueError as exc:\n"
        "        print(exc)\n"
        "print(crystal_system(s))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)  # before: SIGSEGV
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.count("symprec must be a finite tolerance above 0") == 2 and "cubic" in out.stdout
