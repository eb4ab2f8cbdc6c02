"""Hostile or careless input (issue 14): checkpoints that carry code, shipped names resolved from the cwd, CSV
formula injection, huge files refused before parsing, duplicate ids, and CLI errors as one line, not a traceback."""

from __future__ import annotations

import csv
import gzip
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.core import Lattice, Structure

import goectp
from goectp import checkpoint as ck
from goectp import registry
from goectp.cli import main as cli_main
from goectp.csvsafe import csv_safe_frame, neutralize_cell, restore_cell, write_csv
from goectp.models import Ensemble
from goectp.structures import (
    MAX_SITES,
    StructureError,
    estimate_site_count,
    load_structures,
    precheck_structure_file,
    precheck_structure_text,
    site_count_bounds,
    structure_from_file,
    structure_from_string,
    validate_structure,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "assets" / "models").glob("*/*.pt"))
FORMULA_IDS = ['=HYPERLINK("http://x")', "=cmd|' /C calc'!A0", "+SUM(1,1)", "@SUM(1)", "-1+2", "\tTAB", "\rCR"]


# ------------------------------------------------------------------------------------------------ helpers
class _Payload:
    """Pickles to a call that writes ``marker``: what an attacker's checkpoint would do on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


def tiny_model(seed: int = 0) -> goectp.GoeCTP:
    torch.manual_seed(seed)
    return goectp.build_model("goectp", hidden=8)


def evil_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint with valid keys whose pickle also runs code (in ``meta``)."""
    model = tiny_model()
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), "meta": _Payload(marker)}, path)
    return path


def rocksalt(a: float = 5.64) -> Structure:
    return Structure(Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def write_cif(path: Path, structure: Structure | None = None) -> Path:
    (structure or rocksalt()).to(filename=str(path))
    return path


def p1_cif(n_sites: int, a: float = 200.0) -> str:
    """A P1 CIF with ``n_sites`` distinct Na sites on a grid (no parsing needed to count them)."""
    rng = np.random.default_rng(0)
    rows = [f"Na{i} Na {x:.5f} {y:.5f} {z:.5f} 1" for i, (x, y, z) in enumerate(rng.random((n_sites, 3)))]
    return "\n".join(
        [
            "data_big",
            "_symmetry_space_group_name_H-M 'P 1'",
            f"_cell_length_a {a}",
            f"_cell_length_b {a}",
            f"_cell_length_c {a}",
            "_cell_angle_alpha 90",
            "_cell_angle_beta 90",
            "_cell_angle_gamma 90",
            "loop_",
            " _symmetry_equiv_pos_as_xyz",
            " 'x, y, z'",
            "loop_",
            " _atom_site_label",
            " _atom_site_type_symbol",
            " _atom_site_fract_x",
            " _atom_site_fract_y",
            " _atom_site_fract_z",
            " _atom_site_occupancy",
            *rows,
            "",
        ]
    )


def stderr_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.fixture()
def members(tmp_path) -> Path:
    folder = tmp_path / "members"
    folder.mkdir()
    for i in range(2):
        ck.save_checkpoint(folder / f"m{i}.pt", tiny_model(i), split_seed=i)
    return folder


# ------------------------------------------------------------------------------------------------ checkpoints
def test_crafted_checkpoint_runs_with_plain_torch_load(tmp_path):
    """The payload is real: an unsafe load executes it (so the tests below can fail)."""
    marker = tmp_path / "marker"
    evil_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.read_text() == "pwned"


def test_load_model_never_executes_code(tmp_path, members):
    marker = tmp_path / "marker"
    evil = evil_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(ck.CheckpointError, match="evil.pt") as info:
        goectp.load_model(evil)
    assert "\n" not in str(info.value)
    evil_checkpoint(members / "m9.pt", marker)  # a folder of members with one bad member
    with pytest.raises(ck.CheckpointError, match="m9.pt"):
        goectp.load_model(members)
    with pytest.raises(ck.CheckpointError, match="<checkpoint bytes>: not a valid checkpoint, or one holding code"):
        goectp.api.load_checkpoint(evil.read_bytes())
    assert not marker.exists()


def test_cli_predict_and_screen_never_execute_code(tmp_path, capsys):
    marker = tmp_path / "marker"
    evil = evil_checkpoint(tmp_path / "evil.pt", marker)
    cif = write_cif(tmp_path / "NaCl.cif")
    assert cli_main(["predict", str(cif), "--model", str(evil)]) == 2
    err = stderr_lines(capsys)
    assert len(err) == 1 and "evil.pt" in err[0] and "Traceback" not in err[0]
    pool = tmp_path / "pool"
    pool.mkdir()
    write_cif(pool / "NaCl.cif")
    out = tmp_path / "out"
    rc = cli_main(
        [
            "screen",
            "--pool",
            str(pool),
            "--model",
            str(evil),
            "--out",
            str(out),
            "--no-dask",
            "--exclude-training",
            "none",
            "--reference",
            "none",
            "--no-progress",
        ]
    )
    assert rc != 0 and "evil.pt" in capsys.readouterr().err
    assert not (out / "screening.csv").exists() and not (out / "work").exists()  # failed before scoring
    assert not marker.exists()


def test_screening_workers_load_checkpoint_bytes_safely(tmp_path):
    from goectp.screening.model_spec import ModelSpec, cached_ensemble, load_model_spec

    marker = tmp_path / "marker"
    evil = evil_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(ck.CheckpointError, match="evil.pt"):
        load_model_spec(evil)
    spec = ModelSpec(names=("evil",), sha256s=("0" * 64,), blobs=(evil.read_bytes(),))  # as shipped to a worker
    with pytest.raises(ck.CheckpointError, match="<checkpoint bytes>: not a valid checkpoint, or one holding code"):
        cached_ensemble(spec, "cpu")
    assert not marker.exists()


def test_a_file_named_default_in_the_cwd_is_never_loaded(tmp_path, monkeypatch, capsys):
    assert "default" in registry.available_models()  # shipped in assets/models: its absence is a failure
    marker = tmp_path / "marker"
    evil_checkpoint(tmp_path / "default", marker)
    cif = write_cif(tmp_path / "NaCl.cif")
    monkeypatch.chdir(tmp_path)
    model = goectp.load_model("default")  # the shipped ensemble
    shipped = [name for name, _ in registry.ensemble_members(registry.model_aliases()["default"])]
    assert isinstance(model, Ensemble) and model.names == shipped and len(shipped) >= 5
    assert cli_main(["predict", "NaCl.cif", "--json", "--device", "cpu"]) == 0  # no --model: the shipped default
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["formula"] == "NaCl" and np.isfinite(rows[0]["tensor"]).all()
    with pytest.raises(ck.CheckpointError, match="default"):  # an explicit path is a path
        goectp.load_model("./default")
    assert not marker.exists()
    assert cif.exists()


def test_names_resolve_only_from_assets(tmp_path, monkeypatch, members):
    monkeypatch.chdir(tmp_path)
    assert registry.is_model_name("default") and not registry.is_model_name("./default")
    assert (
        not registry.is_model_name("x.pt")
        and not registry.is_model_name("runs/default")
        and not registry.is_model_name(members)
    )
    with pytest.raises(FileNotFoundError, match="give it as a path"):
        goectp.load_model("members")  # exists in the cwd, but a bare name means a shipped model
    assert isinstance(goectp.load_model("./members"), Ensemble)
    ck.save_checkpoint(tmp_path / "x.pt", tiny_model())
    assert isinstance(goectp.load_model("x.pt"), goectp.GoeCTP)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_checkpoints_load_with_weights_only(path):
    raw = torch.load(path, map_location="cpu", weights_only=True)
    model = ck.load_checkpoint(path)
    if raw.get("kind") == "sum":  # two networks' checkpoints: an ε∞ part and an ionic part
        assert set(raw["parts"]) == {"electronic", "ionic"} and "meta" in raw
        parts = {  # a part named by reference (goectp ensemble share) is the checkpoint of that file
            part: torch.load(path.parent / sub["file"], weights_only=True) if ck.is_part_reference(sub) else sub
            for part, sub in raw["parts"].items()
        }
        weights = {f"parts.{part}.{k}": v for part, sub in parts.items() for k, v in sub["state_dict"].items()}
    else:
        assert {"config", "state_dict", "meta"} <= set(raw)
        weights = raw["state_dict"]
    assert model.state_dict().keys() == weights.keys()
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def test_every_shipped_ensemble_is_covered_by_the_weights_only_check():
    """The parametrised load test above sees every member of every shipped folder: 7 ensembles of 5 (four trained
    on the static ε, ``electronic`` on ε∞, two of sum members ε∞ + ionic); ``combined`` lists 25 of them in
    ``members.json`` and holds no file. The research families (and ``combined-15``, the previous default) are not
    shipped. The checkpoints are part of the repository: none found is a failure, not a skip."""
    folders = {p.parent.name for p in SHIPPED}
    assert {
        "fast",
        "pretrained-bulk-modulus-chgnet",
        "pretrained-bulk-modulus-layers2",
        "pretrained-bulk-modulus-chgnet-layers2",
        "electronic",
        "decomposed-bulk-modulus-chgnet-layers2",
        "decomposed-bulk-modulus-layers2",
    } == folders
    assert len(SHIPPED) == 7 * 5
    listed = [f for name in registry.available_models() for f in registry.checkpoint_files(name)]
    assert len(registry.checkpoint_files("combined")) == 25 and "combined-15" not in registry.available_models()
    assert {f.resolve() for f in listed} <= {f.resolve() for f in SHIPPED}


@pytest.mark.parametrize("kind", ["text", "truncated", "empty", "list", "unknown_config_key", "future_schema"])
def test_bad_checkpoint_files_give_one_line_errors_naming_the_file(tmp_path, kind):
    path = tmp_path / f"bad-{kind}.pt"
    model = tiny_model()
    good = tmp_path / "good.pt"
    ck.save_checkpoint(good, model)
    if kind == "text":
        path.write_text("this is not a checkpoint\n" * 3)
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "list":
        torch.save([1, 2, 3], path)
    elif kind == "unknown_config_key":
        torch.save({"config": {**model.config.to_dict(), "bogus": 1}, "state_dict": model.state_dict()}, path)
    else:
        torch.save({**ck.checkpoint_dict(model), "schema_version": ck.SHARED_PARTS_VERSION + 1}, path)
    with pytest.raises(ck.CheckpointError) as info:
        goectp.load_model(path)
    message = str(info.value)
    assert path.name in message and "\n" not in message


def test_checkpoint_schema_is_versioned_and_old_files_still_load(tmp_path):
    model = tiny_model(3)
    ck.save_checkpoint(tmp_path / "new.pt", model, epoch=4)
    raw = torch.load(tmp_path / "new.pt", weights_only=True)
    assert raw["schema_version"] == ck.SCHEMA_VERSION and raw["meta"] == {"epoch": 4}
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), "meta": {}}, tmp_path / "old.pt")
    loaded = goectp.load_model(tmp_path / "old.pt")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_training_state_round_trips_with_weights_only(tmp_path):
    model = tiny_model(1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    loss = sum((p**2).sum() for p in model.parameters())
    loss.backward()
    opt.step()
    sched.step()
    gen = torch.Generator().manual_seed(7)
    state = {"epoch": 1, "best_val": float("inf"), "best_epoch": -1, "history": [{"epoch": 1, "val_mae": 0.5}]}
    ck.save_training_state(
        tmp_path / "last.pt",
        model,
        opt,
        sched,
        state=state,
        rng={"loader": gen.get_state(), "torch": torch.get_rng_state()},
    )
    raw = torch.load(tmp_path / "last.pt", weights_only=True)  # optimiser, scheduler and RNG states are data
    assert raw["rng"]["loader"].dtype == torch.uint8
    back = ck.load_training_state(tmp_path / "last.pt")
    gen2 = torch.Generator()
    gen2.set_state(back["rng"]["loader"])
    assert torch.equal(torch.rand(4, generator=gen), torch.rand(4, generator=gen2))
    opt2 = torch.optim.AdamW(tiny_model(2).parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])
    assert back["state"] == state
    # a resume file of the schema before version 1 ("model" key, *_rng keys)
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "loader_rng": gen.get_state(),
            "aug_rng": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "state": state,
        },
        tmp_path / "old_last.pt",
    )
    old = ck.load_training_state(tmp_path / "old_last.pt")
    assert set(old["rng"]) == {"loader", "aug", "torch"} and set(old["state_dict"]) == set(model.state_dict())


class _WriteFailedError(Exception):
    pass


class _FailsToPickle:
    """Raises while ``torch.save`` writes it: a write that fails half-way (as a full disk would)."""

    def __reduce__(self):
        raise _WriteFailedError("disk full")


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "a.pt"
    ck.atomic_save({"x": torch.ones(2)}, path)
    with pytest.raises(_WriteFailedError, match="disk full"):  # the writer's own error, re-raised unchanged
        ck.atomic_save({"x": torch.zeros(2), "y": _FailsToPickle()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


# ------------------------------------------------------------------------------------------------ CSV injection
def test_neutralize_cell_quotes_formulas_only():
    assert [neutralize_cell(i) for i in FORMULA_IDS] == ["'" + i for i in FORMULA_IDS]
    assert neutralize_cell("NaCl") == "NaCl" and neutralize_cell(-1.5) == -1.5 and neutralize_cell(None) is None
    for value in [*FORMULA_IDS, "'=x", "''=x", "'abc", "abc", "", "-"]:
        assert restore_cell(neutralize_cell(value)) == value


def test_write_csv_neutralises_text_but_not_negative_numbers(tmp_path):
    frame = pd.DataFrame(
        {
            "id": FORMULA_IDS,
            "value": -np.arange(1, len(FORMULA_IDS) + 1) * 1.5,
            "n": pd.array(range(-3, len(FORMULA_IDS) - 3), dtype="Int64"),
            "label": pd.Series(FORMULA_IDS, dtype="string"),
        }
    )
    write_csv(frame, tmp_path / "x.csv", index=False)
    with open(tmp_path / "x.csv", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    assert [r[0] for r in rows] == ["'" + i for i in FORMULA_IDS]
    assert [r[3] for r in rows] == ["'" + i for i in FORMULA_IDS]
    assert rows[0][1] == "-1.5" and rows[0][2] == "-3"  # numbers stay numbers
    assert list(csv_safe_frame(frame)["value"]) == list(frame["value"])


def _formula_pool(tmp_path: Path) -> Path:
    records = []
    for i, cid in enumerate(FORMULA_IDS[:5]):
        s = rocksalt(5.0 + 0.2 * i)
        records.append(
            {
                "id": cid,
                "structure": s.as_dict(),
                "formula": "=1+1" if i == 0 else None,
                "band_gap": 3.0,
                "source": "@evil",
            }
        )
    records.append({"id": "+broken", "structure": {"lattice": "nonsense"}, "band_gap": 1.0})
    path = tmp_path / "pool.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(records, fh)
    return path


def _assert_no_formula_cells(path: Path) -> None:
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            for cell in row:
                try:
                    float(cell)  # numbers (negative ones too) are written as numbers
                    continue
                except ValueError:
                    pass
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (path.name, cell)


def test_screening_csv_outputs_have_no_formula_cells(tmp_path, members):
    from goectp.screening.engine import ScreeningOptions
    from goectp.screening.export import export_assets
    from goectp.screening.pool import open_pool
    from goectp.screening.run import run_screening

    opts = ScreeningOptions(
        pool=_formula_pool(tmp_path),
        model=members,
        out_dir=tmp_path / "out",
        use_dask=False,
        progress=False,
        top=5,
        exclude_training=None,
        symprec=None,
        aniso_min_gap=None,
    )
    run = run_screening(opts)
    assert sorted(run.rankings.results["id"]) == sorted(FORMULA_IDS[:5])
    paths = export_assets(run, open_pool(opts.pool), tmp_path / "assets")
    files = [*(tmp_path / "out").glob("*.csv"), *(p for p in paths.values() if p.suffix == ".csv")]
    assert {p.name for p in files} >= {"screening.csv", "rejects.csv", "top_high_k.csv", "screening_results.csv"}
    for path in files:
        _assert_no_formula_cells(path)
    back = pd.read_csv(tmp_path / "out" / "screening.csv")
    assert sorted(back["id"].map(restore_cell)) == sorted(FORMULA_IDS[:5])


# ------------------------------------------------------------------------------------------------ screening
def test_duplicate_ids_get_keys_that_collide_with_no_literal_id(tmp_path, members, capsys):
    from goectp.screening.engine import PassReport, ScreeningOptions, iter_chunks
    from goectp.screening.run import run_screening

    recs = [{"id": cid, "pool_index": i} for i, cid in enumerate(["X", "X", "X#dup1"])]
    for all_ids in (None, {"X", "X#dup1"}):  # streaming only, and with the pool's ids known up front
        report = PassReport()
        keys = [r["id"] for chunk in iter_chunks(recs, 2, set(), report, all_ids=all_ids) for r in chunk]
        assert len(set(keys)) == 3 and keys[0] == "X"
        if all_ids:
            assert keys[2] == "X#dup1"  # the literal id keeps its name
    records = [
        {"id": cid, "structure": rocksalt(5.0 + 0.1 * i).as_dict(), "band_gap": 2.0}
        for i, cid in enumerate(["X", "X", "X#dup1"])
    ]
    pool = tmp_path / "pool.json.gz"
    with gzip.open(pool, "wt", encoding="utf-8") as fh:
        json.dump(records, fh)
    run = run_screening(
        ScreeningOptions(
            pool=pool,
            model=members,
            out_dir=tmp_path / "out",
            use_dask=False,
            progress=False,
            top=5,
            exclude_training=None,
            symprec=None,
        )
    )
    scored, rejects = run.rankings.results, run.rankings.rejects
    assert sorted(scored["id"]) == ["X", "X#dup1"]
    assert list(rejects["id"]) == ["X#dup1#dup1"] and list(rejects["reason_code"]) == ["duplicate_id"]
    assert run.summary["n_candidates"] == 3


def test_screen_fails_fast_on_a_model_it_cannot_load(tmp_path, members, capsys):
    bad = tmp_path / "truncated.pt"
    good = members / "m0.pt"
    bad.write_bytes(good.read_bytes()[:1000])
    pool = tmp_path / "pool"
    pool.mkdir()
    write_cif(pool / "NaCl.cif")
    out = tmp_path / "out"
    rc = cli_main(
        [
            "screen",
            "--pool",
            str(pool),
            "--model",
            str(bad),
            "--out",
            str(out),
            "--no-dask",
            "--exclude-training",
            "none",
            "--reference",
            "none",
            "--no-progress",
        ]
    )
    err = stderr_lines(capsys)
    assert rc == 1 and len(err) == 1 and "truncated.pt" in err[0]
    assert not out.exists()


def test_worker_uses_the_one_validator(tmp_path):
    from goectp.screening.worker import Rejected, check_structure

    overlapping = Structure(Lattice.cubic(5.0), ["Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.501]])
    with pytest.raises(Rejected) as info:
        check_structure(overlapping, max_sites=20)
    assert info.value.code == "overlapping_atoms"
    with pytest.raises(StructureError) as info2:
        validate_structure(overlapping)
    assert info2.value.code == "overlapping_atoms" and str(info2.value) == info.value.reason


# ------------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("make", "code", "words"),
    [
        (
            lambda: Structure(Lattice.cubic(1e30), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
            "absurd_lattice",
            ["longer than the limit"],
        ),
        (
            lambda: Structure(Lattice.orthorhombic(5, 5, 2e4), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
            "absurd_lattice",
            ["lattice vector"],
        ),
        (lambda: Structure(Lattice.cubic(30.0), ["Na"], [[0, 0, 0]]), "too_few_neighbors", ["no neighbour", "Na"]),
        (
            lambda: Structure(Lattice.cubic(5.0), ["Na", "Na"], [[0, 0, 0], [0.001, 0, 0]]),
            "overlapping_atoms",
            ["overlap"],
        ),
        (lambda: Structure(Lattice.cubic(0.5), ["Na"], [[0, 0, 0]]), "too_dense", ["too dense"]),
    ],
)
def test_validation_at_the_door_has_reason_codes(make, code, words):
    with pytest.raises(StructureError) as info:
        load_structures(make())
    assert info.value.code == code
    for word in words:
        assert word in str(info.value)


def test_python_api_errors_are_structure_errors(tmp_path):
    from ase import Atoms

    model = tiny_model()
    with pytest.raises(StructureError, match="must be a file path"):
        goectp.predict("data_x\n" + "x" * 5000, model, device="cpu")
    with pytest.raises(StructureError, match="cannot open|no such file"):
        goectp.predict(str(tmp_path / ("a" * 300 + ".cif")), model, device="cpu")
    atoms = Atoms("NaCl", positions=[[0, 0, 0], [1, 1, 1]], cell=np.zeros((3, 3)), pbc=True)
    with pytest.raises(StructureError, match="singular or zero cell") as info:
        goectp.predict(atoms, model, device="cpu")
    assert info.value.code == "degenerate_lattice"


def test_a_20k_site_cif_is_refused_in_milliseconds(tmp_path):
    text = p1_cif(20_000)
    path = tmp_path / "big.cif"
    path.write_text(text)
    assert path.stat().st_size < 2_000_000
    start = time.perf_counter()
    with pytest.raises(StructureError, match="at least 20000 sites") as info:
        load_structures(path, max_sites=200)
    assert time.perf_counter() - start < 1.0 and info.value.code == "too_large"
    start = time.perf_counter()
    assert precheck_structure_file(path, max_sites=None) is None
    with pytest.raises(StructureError, match="limit of 200"):
        precheck_structure_text(text, "cif", max_sites=200, name="big.cif")
    with pytest.raises(StructureError, match="limit of 500"):
        structure_from_file(path, max_sites=500)
    assert time.perf_counter() - start < 1.0


def test_reading_a_file_has_the_same_site_limit_by_default(tmp_path):
    """structure_from_file / structure_from_string refuse what load_structures would (MAX_SITES) unless asked."""
    text = p1_cif(MAX_SITES + 1, a=40.0)
    path = tmp_path / "big.cif"
    path.write_text(text)
    for read in (lambda: structure_from_file(path), lambda: structure_from_string(text, "cif")):
        with pytest.raises(StructureError, match=f"limit of {MAX_SITES}") as info:
            read()
        assert info.value.code == "too_large"
    assert len(structure_from_file(path, max_sites=None)) == MAX_SITES + 1


def test_site_count_estimates_from_text():
    poscar = "NaCl\n1.0\n5 0 0\n0 5 0\n0 0 5\nNa Cl\n400 300\nDirect\n"
    assert estimate_site_count(poscar, "poscar") == 700
    assert estimate_site_count(poscar.replace("Na Cl\n", ""), "vasp") == 700
    assert estimate_site_count('1234\nLattice="1 0 0 0 1 0 0 0 1"\n', "extxyz") == 1234
    assert estimate_site_count(json.dumps(rocksalt().as_dict()), "json") == 2
    assert estimate_site_count(p1_cif(37), "cif") == 37
    assert estimate_site_count(rocksalt().to(fmt="cif"), "cif") == 2
    assert estimate_site_count("garbage", "cif") is None
    with pytest.raises(StructureError) as info:
        precheck_structure_text(poscar, "poscar", max_sites=500)
    assert info.value.code == "too_large"
    with pytest.raises(StructureError) as info:
        precheck_structure_text("  \n", "cif")
    assert info.value.code == "empty"


# ------------------------------------------------------------------------------------------------ CLI
@pytest.fixture()
def ckpt(tmp_path) -> Path:
    return ck.save_checkpoint(tmp_path / "tiny.pt", tiny_model())


def test_predict_max_sites_reaches_predict(tmp_path, ckpt, capsys):
    cif = write_cif(tmp_path / "NaCl.cif")
    assert cli_main(["predict", str(cif), "--model", str(ckpt), "--max-sites", "1", "--device", "cpu"]) == 1
    assert "limit of 1" in capsys.readouterr().err
    big = rocksalt()
    big.make_supercell([7, 6, 6])  # 504 sites > the default 500
    path = tmp_path / "big.json"
    path.write_text(json.dumps(big.as_dict()))
    assert cli_main(["predict", str(path), "--model", str(ckpt), "--device", "cpu"]) == 1
    assert "limit of 500" in capsys.readouterr().err
    assert (
        cli_main(["predict", str(path), "--model", str(ckpt), "--max-sites", "600", "--device", "cpu", "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)[0]["formula"] == "NaCl"


def test_cli_errors_are_one_line_without_traceback(tmp_path, ckpt, capsys):
    cif = write_cif(tmp_path / "NaCl.cif")
    text_model = tmp_path / "model.txt"
    text_model.write_text("not a model\n")
    bad_config = tmp_path / "bad_config.pt"
    model = tiny_model()
    torch.save({"config": {**model.config.to_dict(), "bogus": 1}, "state_dict": model.state_dict()}, bad_config)
    huge = Structure(Lattice.cubic(1e30), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    (tmp_path / "huge.json").write_text(json.dumps(huge.as_dict()))
    cases = [
        (["predict", str(tmp_path / ("x" * 300 + ".cif")), "--model", str(ckpt)], 1, "x" * 20),
        (["predict", str(tmp_path / "huge.json"), "--model", str(ckpt), "--device", "cpu"], 1, "lattice vector"),
        (["predict", str(cif), "--model", str(text_model)], 2, "model.txt"),
        (["predict", str(cif), "--model", str(bad_config)], 2, "bad_config.pt"),
    ]
    if not torch.cuda.is_available():
        cases.append((["predict", str(cif), "--model", str(ckpt), "--device", "cuda"], 2, "CUDA is not available"))
    for argv, rc, words in cases:
        assert cli_main(argv) == rc, argv
        err = stderr_lines(capsys)
        assert len(err) == 1 and words in err[0] and "Traceback" not in err[0], (argv, err)
        assert len(err[0]) < 600


def test_debug_flag_shows_the_exception(tmp_path, ckpt):
    cif = write_cif(tmp_path / "NaCl.cif")
    text_model = tmp_path / "model.txt"
    text_model.write_text("not a model\n")
    with pytest.raises(ck.CheckpointError, match=r"model\.txt: not a valid checkpoint"):
        cli_main(["predict", str(cif), "--model", str(text_model), "--debug"])
    with pytest.raises(ck.CheckpointError, match=r"model\.txt: not a valid checkpoint"):
        cli_main(["--debug", "predict", str(cif), "--model", str(text_model)])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_screen_refuses_a_missing_cuda_device_before_scoring(tmp_path, members, capsys):
    pool = tmp_path / "pool"
    pool.mkdir()
    write_cif(pool / "NaCl.cif")
    out = tmp_path / "out"
    rc = cli_main(
        [
            "screen",
            "--pool",
            str(pool),
            "--model",
            str(members),
            "--out",
            str(out),
            "--no-dask",
            "--exclude-training",
            "none",
            "--reference",
            "none",
            "--no-progress",
            "--device",
            "cuda",
        ]
    )
    err = stderr_lines(capsys)
    assert rc == 1 and len(err) == 1 and "CUDA is not available" in err[0]
    assert not out.exists()


# ------------------------------------------------------------------ JSON that names Python classes (MontyDecoder)
def _monty_payload(tmp_path, monkeypatch) -> tuple[dict, Path, Path]:
    """A Structure dict whose site properties name (a) a module that writes a marker when imported and (b) a
    pymatgen loader class that would read a local file: what ``Structure.from_dict`` decodes with MontyDecoder."""
    marker, secret = tmp_path / "imported", tmp_path / "secret.txt"
    secret.write_text("the user's private file")
    plugin = tmp_path / "plugin_dir"
    plugin.mkdir()
    (plugin / "goectp_test_hostile_plugin.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nclass X: pass\n")
    monkeypatch.syspath_prepend(str(plugin))
    s = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).as_dict()
    s["sites"][0]["properties"] = {
        "a": {"@module": "goectp_test_hostile_plugin", "@class": "X"},
        "b": {"@module": "pymatgen.io.qchem.outputs", "@class": "QCOutput", "filename": str(secret)},
        "magmom": 0.5,
    }
    return s, marker, secret


def test_json_structures_cannot_import_modules_or_read_files(tmp_path, monkeypatch):
    from explorer.loader import prepare_upload
    from goectp.data.dielectric import parse_dielectric_dict
    from goectp.screening.worker import parse_candidate
    from goectp.structures import structure_from_dict, structure_from_string, to_structure

    payload, marker, secret = _monty_payload(tmp_path, monkeypatch)
    text = json.dumps(payload)
    path = tmp_path / "NaCl.json"
    path.write_text(text)
    (tmp_path / "NaCl.json.gz").write_bytes(gzip.compress(text.encode()))
    loaded = [
        structure_from_file(path),
        structure_from_file(tmp_path / "NaCl.json.gz"),
        structure_from_string(text, "json"),
        to_structure(payload),
        structure_from_dict(payload),
        parse_candidate({"id": "c", "structure": payload}),
        parse_dielectric_dict({"r": {"structure": payload, "total": np.eye(3).tolist()}})[0].structure,
        prepare_upload(text.encode(), "NaCl.json").structure,
        load_structures([path])[0],
    ]
    numpy_valued = {
        **payload,
        "sites": [{**site, "properties": {"m": np.array([1.0, 2.0])}} for site in payload["sites"]],
    }
    assert structure_from_dict(numpy_valued)[0].properties["m"] == [1.0, 2.0]  # an in-memory dict with NumPy values
    for s in loaded:
        assert s.composition.reduced_formula == "NaCl"
        assert s[0].properties["magmom"] == 0.5  # plain properties are kept, as plain data
        assert s[0].properties["b"] == {"filename": str(secret)}  # the loader class was never called
    assert not marker.exists()
    Structure.from_dict(payload)  # pymatgen's own decoder does import the module: the payload is real
    assert marker.exists()


def test_yaml_and_mson_structure_files_are_refused(tmp_path):
    for name in ("x.yaml", "x.yml", "x.mson", "x.mson.gz"):
        (tmp_path / name).write_text("anything: 1\n")
        with pytest.raises(StructureError, match="YAML/MSON files are not read"):
            structure_from_file(tmp_path / name)


def test_malformed_json_structures_are_one_line_structure_errors(tmp_path):
    from goectp.structures import structure_from_dict, structure_from_string

    deep = "[" * 5000 + "]" * 5000
    short = rocksalt().as_dict()
    short["sites"][1]["abc"] = [0.5, 0.5]
    for text, words in ((json.dumps(short), "site 1 has 2 coordinates, not 3"),
                        ("{", "not valid JSON"), ('"NaCl"', "not a str"), ('{"sites": []}', "not a pymatgen"),
                        (deep, "")):  # fmt: skip
        with pytest.raises(StructureError, match=words) as err:
            structure_from_string(text, "json")
        assert err.value.code == "unparseable" and "\n" not in str(err.value)
    nested: dict = {}
    for _ in range(100):
        nested = {"x": nested}
    with pytest.raises(StructureError, match="nested more than"):
        structure_from_dict({"lattice": nested})


def test_sevennet_never_loads_a_file_planted_in_the_working_directory(tmp_path, monkeypatch):
    pytest.importorskip("sevenn")
    from goectp.features.sevennet import packaged_checkpoint

    marker = tmp_path / "ran"
    monkeypatch.chdir(tmp_path)
    torch.save({"x": _Payload(marker)}, tmp_path / "7net-0")  # sevenn would torch.load(weights_only=False) it
    path = Path(packaged_checkpoint("7net-0"))
    assert path.is_absolute() and "sevenn" in path.parts and path.parent != tmp_path
    with pytest.raises(ValueError, match="inside the sevenn package"):
        packaged_checkpoint("no-such-model")
    from goectp.features.registry import get_extractor

    assert get_extractor("sevennet").cutoff > 0  # the packaged model loads, from the planted file's folder
    assert not marker.exists()


def test_compressed_structure_files_are_checked_after_decompression(tmp_path):
    import bz2
    import lzma

    cif = rocksalt().to(fmt="cif")
    for suffix, compress in ((".gz", gzip.compress), (".bz2", bz2.compress), (".xz", lzma.compress)):
        path = tmp_path / f"NaCl.cif{suffix}"
        path.write_bytes(compress(cif.encode()))
        assert structure_from_file(path).composition.reduced_formula == "NaCl"
    bomb = tmp_path / "bomb.cif.gz"  # 60 kB that expand to 60 MB
    bomb.write_bytes(gzip.compress(b" " * 60_000_000))
    assert bomb.stat().st_size < 1_000_000
    start = time.perf_counter()
    with pytest.raises(StructureError, match="once decompressed") as err:
        structure_from_file(bomb)
    assert err.value.code == "file_too_large" and time.perf_counter() - start < 5
    big = Structure(Lattice.cubic(40.0), ["Na"] * 600, np.random.default_rng(0).random((600, 3)))
    (tmp_path / "big.cif.gz").write_bytes(gzip.compress(big.to(fmt="cif").encode()))
    with pytest.raises(StructureError, match="big.cif.gz.*more than the limit of 500") as err:
        structure_from_file(tmp_path / "big.cif.gz", max_sites=500)  # counted on the text, before the parse
    assert err.value.code == "too_large"
    (tmp_path / "cut.cif.gz").write_bytes(gzip.compress(cif.encode())[:40])
    with pytest.raises(StructureError, match="cut.cif.gz: cannot decompress"):
        structure_from_file(tmp_path / "cut.cif.gz")
    packed = bytearray(gzip.compress(cif.encode()))
    packed[20:30] = b"\xff" * 10  # a corrupt deflate stream (zlib.error, not an OSError)
    (tmp_path / "bad.cif.gz").write_bytes(bytes(packed))
    with pytest.raises(StructureError, match="bad.cif.gz: cannot decompress"):
        structure_from_file(tmp_path / "bad.cif.gz")
    (tmp_path / "what.gz").write_bytes(gzip.compress(cif.encode()))
    with pytest.raises(StructureError, match="cannot tell the format"):
        structure_from_file(tmp_path / "what.gz")


def test_site_counts_that_int_reads_but_isdigit_does_not_are_still_counted(tmp_path):
    poscar = "NaCl\n1.0\n5.6 0 0\n0 5.6 0\n0 0 5.6\nNa Cl\n1 +1000000000\nDirect\n0 0 0\n0.5 0.5 0.5\n"
    for fmt, text in (("poscar", poscar), ("extxyz", '+999999999\nLattice="5 0 0 0 5 0 0 0 5"\n'),
                      ("poscar", poscar.replace("+1000000000", "1_000_000"))):  # fmt: skip
        start = time.perf_counter()
        with pytest.raises(StructureError, match="more than the limit of 500") as err:
            precheck_structure_text(text, fmt, max_sites=500)
        assert err.value.code == "too_large" and time.perf_counter() - start < 1


def test_a_cif_with_all_atoms_on_one_line_or_a_huge_symmetry_expansion_is_refused_before_parsing(tmp_path):
    head = "data_x\n_cell_length_a 40\n_cell_length_b 40\n_cell_length_c 40\n"
    head += "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
    atoms = "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
    one_line = " ".join(f"Na{i} {i / 2000:.4f} 0.1 0.2" for i in range(1000))
    assert site_count_bounds(head + atoms + one_line + "\n", "cif")[0] == 1000
    with pytest.raises(StructureError, match="at least 1000 sites"):
        precheck_structure_text(head + atoms + one_line + "\n", "cif", max_sites=500)
    ops = "loop_\n_symmetry_equiv_pos_as_xyz\n" + "".join(f"'x,y,z+{k}/192'\n" for k in range(192))
    rows = "".join(f"Na{i} {i / 400:.4f} 0.1 0.2\n" for i in range(300))
    text = head + ops + atoms + rows
    assert site_count_bounds(text, "cif") == (300, 300 * 192)
    path = tmp_path / "expand.cif"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(StructureError, match="symmetry operations would generate up to 57,600 sites"):
        structure_from_file(path, max_sites=500)
    assert time.perf_counter() - start < 1


def test_elements_heavier_than_chgnet_knows_are_named_not_a_shape_error():
    from goectp.features import with_node_features
    from goectp.graph import build_crystal_graph

    s = Structure(Lattice.cubic(4.0), ["Am", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(StructureError, match=r"Am \(Z = 95\) is heavier .* chgnet node features know \(Z ≤ 94\)") as e:
        with_node_features([build_crystal_graph(s)], [s], "chgnet")  # refused before CHGNet is even loaded
    assert e.value.code == "unknown_element"


def test_files_pymatgen_would_silently_change_are_refused():
    from goectp.structures import structure_from_string

    srtio3 = Structure(Lattice.cubic(3.905), ["Sr", "Ti", "O", "O", "O"],
                       [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0.5, 0]])  # fmt: skip
    cif = srtio3.to(fmt="cif")
    ti_row = next(line for line in cif.splitlines() if line.split()[:2] == ["Ti", "Ti1"])
    for occupancy in ("0", "-1", "nan"):  # pymatgen drops the Ti site and returns SrO3
        bad = cif.replace(ti_row, ti_row.rsplit(" ", 1)[0] + " " + occupancy)
        with pytest.raises(StructureError, match="lacks elements of the file.s formula.*Missing elements Ti"):
            structure_from_string(bad, "cif")
    lines = srtio3.to(fmt="poscar").splitlines()
    coords = [" ".join(line.split()[:3]) for line in lines[8:]]  # without the species labels
    vasp4 = "\n".join(["comment", *lines[1:5], *lines[6:8], *coords]) + "\n"  # no element names anywhere
    with pytest.raises(StructureError, match="does not name its elements"):
        structure_from_string(vasp4, "poscar")
    assert structure_from_string(cif, "cif").composition.reduced_formula == "SrTiO3"


def test_an_empty_model_name_never_loads_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"x": _Payload(tmp_path / "ran")}, tmp_path / "member.pt")
    for spec in ("", " "):
        with pytest.raises(FileNotFoundError, match="no model given"):
            registry.load_model(spec)
    assert not (tmp_path / "ran").exists()
