"""Screening engine: scoring math, filters, training exclusion, pools and rejects, Dask, resume, CLI, exports."""

from __future__ import annotations

import argparse
import gzip
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.core import Lattice, Structure

from goectp.api import build_model, save_checkpoint
from goectp.cli import screen as cli
from goectp.screening.engine import ScreeningOptions
from goectp.screening.export import compact_structure_dict, export_assets, fit_structures, gzip_json_size
from goectp.screening.filters import anisotropy_mask, high_k_mask, load_training_index, top_n
from goectp.screening.jsonstream import iter_json_items
from goectp.screening.materials_project import MaterialsProjectPool, candidate_from_mp_doc
from goectp.screening.pool import PoolError, open_pool
from goectp.screening.reference import compare_with_reference, load_reference_hits
from goectp.screening.run import run_screening
from goectp.screening.scoring import (
    COMPONENT_NAMES,
    acquisition_score,
    ensemble_statistics,
    tensor_components,
    tensors_from_components,
)
from goectp.screening.store import ScreeningError

STAT_COLUMNS = [
    "eps_mean",
    "eps_mean_std",
    "anisotropy",
    "anisotropy_std",
    "eps_eig1",
    "eps_eig2",
    "eps_eig3",
    *[f"eps_{c}" for c in COMPONENT_NAMES],
    *[f"std_{c}" for c in COMPONENT_NAMES],
]
ROCKSALTS = [
    ("Na", "Cl"),
    ("K", "Cl"),
    ("Mg", "O"),
    ("Ca", "O"),
    ("Li", "F"),
    ("Sr", "S"),
    ("Ba", "Se"),
    ("Rb", "Br"),
    ("Zn", "S"),
    ("Cs", "I"),
]
GAPS = [None, 0.0, 1.0, 2.5, 4.0, 6.0]


# ---------------------------------------------------------------------------------------------------- fixtures
def _save_ensemble(directory: Path, n: int = 3, scale: float = 5.0, **config) -> Path:
    for seed in range(n):
        torch.manual_seed(seed)
        model = build_model("goectp", hidden=16, **config)
        model.set_target_stats(scale, 5.0)
        save_checkpoint(directory / f"member{seed}.pt", model, seed=seed)
    return directory


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory) -> Path:
    """Three tiny random members with positive-definite heads (ε = I + s·F AAᵀ Fᵀ, s = 0.2): α is finite and
    well conditioned, so the anisotropy list is exercised and float32 batch effects stay below 1e-5."""
    return _save_ensemble(tmp_path_factory.mktemp("ensemble"), scale=0.2, positive_definite=True)


def rocksalt(a: float, cation: str, anion: str) -> Structure:
    """Primitive (2-atom) rock-salt cell with conventional lattice constant ``a``."""
    lat = Lattice(0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]))
    return Structure(lat, [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def layered(i: int) -> Structure:
    """A small tetragonal/orthorhombic ABO3-like cell, distorted by i (anisotropic, 5 sites)."""
    lat = Lattice.orthorhombic(3.9 + 0.02 * i, 3.95, 4.3 + 0.05 * i)
    return Structure(
        lat, ["Sr", "Ti", "O", "O", "O"], [[0, 0, 0], [0.5, 0.5, 0.52], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
    )


def pool_records(n: int = 30) -> list[dict]:
    """Synthetic candidates in the shared pool's schema (ids cand-000..., cycling band gaps)."""
    records = []
    for i in range(n):
        if i % 3 == 2:
            s = layered(i)
        else:
            cat, an = ROCKSALTS[i % len(ROCKSALTS)]
            s = rocksalt(4.0 + 0.07 * i, cat, an)
        records.append(
            {
                "id": f"cand-{i:03d}",
                "structure": s.as_dict(),
                "formula": s.composition.reduced_formula,
                "band_gap": GAPS[i % len(GAPS)],
                "material_id": None,
                "source": "synthetic",
            }
        )
    return records


def write_json_gz(path: Path, obj) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(obj, fh)
    return path


@pytest.fixture()
def pool_file(tmp_path) -> Path:
    return write_json_gz(tmp_path / "pool.json.gz", pool_records())


def run_opts(pool: Path, model: Path, out: Path, **kw) -> ScreeningOptions:
    base = {"use_dask": False, "chunk_size": 4, "progress": False, "top": 5, "exclude_training": None, "symprec": None}
    return ScreeningOptions(pool=pool, model=model, out_dir=out, **{**base, **kw})


def scored_values(run) -> pd.DataFrame:
    return run.rankings.results.set_index("id").sort_index()[STAT_COLUMNS]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, ensemble_dir):
    """An uninterrupted single-process run over the synthetic pool (the baseline for Dask and resume tests)."""
    tmp = tmp_path_factory.mktemp("reference_run")
    pool = write_json_gz(tmp / "pool.json.gz", pool_records())
    return run_screening(run_opts(pool, ensemble_dir, tmp / "out"))


# ------------------------------------------------------------------------------------------------ scoring math
def _random_members(rng: np.random.Generator, m: int, n: int) -> np.ndarray:
    a = rng.normal(size=(m, n, 3, 3))
    return np.einsum("mnij,mnkj->mnik", a, a) + 2.0 * np.eye(3)  # symmetric positive definite


def test_ensemble_statistics_against_numpy(rng):
    members = _random_members(rng, 5, 7)
    stats = ensemble_statistics(members)
    for i in range(7):
        mean = members[:, i].mean(axis=0)
        lam = np.linalg.eigvalsh(mean)
        member_eps = [np.linalg.eigvalsh(members[m, i]).mean() for m in range(5)]
        member_alpha = [np.linalg.eigvalsh(members[m, i])[-1] / np.linalg.eigvalsh(members[m, i])[0] for m in range(5)]
        np.testing.assert_allclose(stats["mean"][i], mean, rtol=1e-12)
        np.testing.assert_allclose(stats["std"][i], members[:, i].std(axis=0), rtol=1e-12)
        np.testing.assert_allclose(stats["eigenvalues"][i], lam, rtol=1e-12)
        assert stats["eps_mean"][i] == pytest.approx(lam.mean(), rel=1e-12)
        assert stats["anisotropy"][i] == pytest.approx(lam[-1] / lam[0], rel=1e-12)
        assert stats["eps_mean_std"][i] == pytest.approx(np.std(member_eps), rel=1e-10)
        assert stats["anisotropy_std"][i] == pytest.approx(np.std(member_alpha), rel=1e-10)
    assert not stats["nonpositive"].any()
    assert np.all(stats["n_members"] == 5)


def test_statistics_of_known_tensors():
    # two members: diag(2, 3, 8) and diag(4, 3, 8) -> mean diag(3, 3, 8): ε̄ = 14/3, α = 8/3
    members = np.array([np.diag([2.0, 3.0, 8.0]), np.diag([4.0, 3.0, 8.0])])[:, None]
    stats = ensemble_statistics(members)
    assert stats["eps_mean"][0] == pytest.approx(14 / 3)
    assert stats["anisotropy"][0] == pytest.approx(8 / 3)
    np.testing.assert_allclose(stats["eigenvalues"][0], [3, 3, 8])
    assert stats["eps_mean_std"][0] == pytest.approx(np.std([13 / 3, 15 / 3]))  # = 1/3
    assert stats["anisotropy_std"][0] == pytest.approx(2 / 3)  # member α: 8/2 = 4 and 8/3 -> std 2/3
    np.testing.assert_allclose(stats["std"][0], np.diag([1.0, 0.0, 0.0]))
    score = acquisition_score(stats["eps_mean"], stats["eps_mean_std"], kappa=2.0)
    assert score[0] == pytest.approx(14 / 3 + 2 / 3)
    np.testing.assert_array_equal(acquisition_score(stats["eps_mean"], stats["eps_mean_std"], 0.0), stats["eps_mean"])


def test_rotated_tensor_keeps_invariants(rng):
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    members = _random_members(rng, 4, 3)
    rotated = np.einsum("ij,mnjk,lk->mnil", rot, members, rot)
    a, b = ensemble_statistics(members), ensemble_statistics(rotated)
    for key in ("eps_mean", "anisotropy", "eps_mean_std", "anisotropy_std", "eigenvalues"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-10)


def test_nonpositive_tensor_gives_infinite_anisotropy_and_flag():
    good = np.diag([1.0, 2.0, 3.0])
    bad = np.diag([-1.0, 2.0, 3.0])
    stats = ensemble_statistics(np.stack([np.stack([good, bad]), np.stack([bad, bad])]))  # [M=2, n=2]
    # structure 0: mean diag(0, 2, 3) -> λmin = 0 -> α = inf, flagged; one member non-positive
    assert math.isinf(stats["anisotropy"][0]) and stats["nonpositive"][0]
    assert stats["members_nonpositive"].tolist() == [1, 2]
    assert math.isinf(stats["anisotropy_std"][0])
    assert math.isinf(acquisition_score(stats["anisotropy"], stats["anisotropy_std"], 1.0)[0])


def test_tensor_components_round_trip(rng):
    t = _random_members(rng, 1, 4)[0]
    comps = tensor_components(t)
    assert comps.shape == (4, 6)
    np.testing.assert_allclose(tensors_from_components(comps), t)


def test_bad_member_shapes_raise():
    with pytest.raises(ValueError, match=r"\[M, n, 3, 3\]"):
        ensemble_statistics(np.zeros((2, 3, 3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        ensemble_statistics(np.full((1, 1, 3, 3), np.nan))


# ------------------------------------------------------------------------------------------------------ filters
def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e", "f"],
            "band_gap": [None, 1.0, 1.8, 2.5, 4.0, 0.0],
            "score": [50.0, 40.0, 30.0, 20.0, 20.0, 60.0],
            "score_aniso": [9.0, np.inf, 3.0, 2.0, 5.0, 8.0],
        }
    )


def test_high_k_list_needs_known_gap_above_threshold():
    t = _table()
    mask = high_k_mask(t, min_gap=1.8)
    assert t.loc[mask, "id"].tolist() == ["d", "e"]  # unknown gap (a) and gap == 1.8 (c) are excluded
    top = top_n(t, mask, "score", 10)
    assert top["id"].tolist() == ["d", "e"] and top["rank"].tolist() == [1, 2]  # tie on score broken by id


def test_anisotropy_list_keeps_known_insulators_with_finite_scores():
    t = _table()
    assert t.loc[anisotropy_mask(t, 0.5), "id"].tolist() == ["c", "d", "e"]  # a: gap unknown, b: inf, f: metal
    assert t.loc[anisotropy_mask(t, None), "id"].tolist() == ["a", "c", "d", "e", "f"]
    assert top_n(t, anisotropy_mask(t, 0.5), "score_aniso", 2)["id"].tolist() == ["e", "c"]


def _training_file(tmp_path: Path) -> Path:
    nacl = rocksalt(5.64, "Na", "Cl")
    mgo = rocksalt(4.21, "Mg", "O")
    eps = np.diag([3.0, 4.0, 6.0]).tolist()
    data = {
        "mp-22862": {
            "structure": nacl.as_dict(),
            "total": eps,
            "band_gap": 5.0,
            "material_id": "mp-22862",
            "source": "test",
        },
        "mf-x-1": {"structure": mgo.as_dict(), "total": eps, "band_gap": None, "material_id": None, "source": "test"},
    }
    return write_json_gz(tmp_path / "train.json.gz", data)


def test_training_exclusion_rules(tmp_path):
    index = load_training_index(_training_file(tmp_path))
    assert len(index) == 2
    assert "mp-22862" in index.match("mp-22862", None, "Xy", 3, 10.0)  # same id
    assert "mp-22862" in index.match("alex-mp-22862", "mp-22862", "Xy", 3, 10.0)  # same material_id
    v = rocksalt(4.21, "Mg", "O").volume
    assert "mf-x-1" in index.match("other", None, "MgO", 2, v * 1.009)  # formula + n_sites + volume within 1 %
    assert index.match("other", None, "MgO", 2, v * 1.02) is None  # volume 2 % off
    assert index.match("other", None, "MgO", 4, v * 1.0) is None  # different number of sites
    assert index.match("other", None, "CaO", 2, v) is None


def test_a_pool_keyed_by_id_is_a_pool_even_when_its_records_name_pymatgen_classes(tmp_path):
    from goectp.screening.pool import FilePool, JsonPool, open_pool

    s = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).as_dict()  # has "@module"
    (tmp_path / "keyed.json").write_text(json.dumps({f"c{i}": {"structure": s} for i in range(3)}))
    (tmp_path / "one.json").write_text(json.dumps(s))
    keyed = open_pool(tmp_path / "keyed.json")
    assert isinstance(keyed, JsonPool) and keyed.count() == 3  # was read as one structure: "1 candidate"
    assert isinstance(open_pool(tmp_path / "one.json"), FilePool)


def test_an_empty_pool_is_an_error_that_says_so(tmp_path, ensemble_dir):
    from goectp.screening.store import ScreeningError

    for name, text in (("empty_list.json", "[]"), ("empty_obj.json", "{}")):
        (tmp_path / name).write_text(text)
        with pytest.raises(ScreeningError, match="holds no candidates"):
            run_screening(run_opts(tmp_path / name, ensemble_dir, tmp_path / f"out-{name}"))


def test_training_candidates_are_excluded_from_a_run(tmp_path, ensemble_dir):
    records = pool_records(6)
    nacl = rocksalt(5.64, "Na", "Cl")
    records.append({"id": "copy-of-nacl", "structure": nacl.as_dict(), "band_gap": 5.0, "material_id": None})
    records.append(
        {"id": "alex-mp-22862", "structure": layered(1).as_dict(), "band_gap": 5.0, "material_id": "mp-22862"}
    )
    pool = write_json_gz(tmp_path / "pool.json.gz", records)
    run = run_screening(run_opts(pool, ensemble_dir, tmp_path / "out", exclude_training=_training_file(tmp_path)))
    excluded = run.rankings.rejects.set_index("id")
    assert excluded.loc["copy-of-nacl", "reason_code"] == "in_training"
    assert "volume" in excluded.loc["copy-of-nacl", "reason"]
    assert excluded.loc["alex-mp-22862", "status"] == "excluded"
    assert not {"copy-of-nacl", "alex-mp-22862"} & set(run.rankings.results["id"])
    assert len(run.rankings.results) == 6


# ------------------------------------------------------------------------------------------------------- pools
def test_json_stream_equals_json_load(tmp_path):
    data = [{"id": i, "x": [1.5, {"y": "a,]}"}], "z": None} for i in range(50)]
    p = tmp_path / "list.json"
    p.write_text(json.dumps(data, indent=1))
    assert [v for _, v in iter_json_items(p, block=7)] == data
    d = {f"k{i}": {"v": i * 1.25} for i in range(20)}
    q = write_json_gz(tmp_path / "dict.json.gz", d)
    assert dict(iter_json_items(q, block=5)) == d
    bad = tmp_path / "bad.json"
    bad.write_text('[{"a": 1}, {"b": ')
    with pytest.raises(ValueError, match="malformed JSON"):
        list(iter_json_items(bad, block=4))


def test_json_pool_records(pool_file):
    pool = open_pool(pool_file)
    recs = list(pool)
    assert pool.count() == len(recs) == 30
    assert recs[3]["id"] == "cand-003" and recs[3]["pool_index"] == 3 and recs[3]["band_gap"] == 2.5
    assert recs[0]["band_gap"] is None and recs[0]["source"] == "synthetic"
    assert Structure.from_dict(recs[2]["structure"]).composition.reduced_formula == "SrTiO3"


def test_missing_pool_is_a_clear_error(tmp_path):
    with pytest.raises(PoolError, match="does not exist"):
        open_pool(tmp_path / "nope.json.gz")


def _structure_dir(tmp_path: Path) -> Path:
    d = tmp_path / "structures"
    (d / "sub").mkdir(parents=True)
    rocksalt(5.64, "Na", "Cl").to(filename=str(d / "NaCl.cif"))
    layered(0).to(filename=str(d / "sub" / "POSCAR"))
    (d / "broken.cif").write_text("data_broken\n_cell_length_a not-a-number\nloop_\n_atom_site_label\n")
    dis = Structure(
        Lattice.cubic(4.0),
        [{"Sr": 0.5, "Ba": 0.5}, "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )
    dis.to(filename=str(d / "disordered.cif"))
    big = layered(0) * (2, 2, 2)  # 40 sites > 20
    big.to(filename=str(d / "big.vasp"), fmt="poscar")
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = [AseAtomsAdaptor.get_atoms(rocksalt(4.2 + 0.1 * i, "Mg", "O")) for i in range(2)]
    write(str(d / "frames.extxyz"), frames, format="extxyz")
    (d / "notes.txt").write_text("not a structure, ignored")
    return d


def test_directory_pool_rejects_bad_structures_and_continues(tmp_path, ensemble_dir):
    d = _structure_dir(tmp_path)
    run = run_screening(run_opts(d, ensemble_dir, tmp_path / "out"))
    rejects = pd.read_csv(tmp_path / "out" / "rejects.csv").set_index("id")
    assert rejects.loc["broken", "reason_code"] == "unparseable"
    assert rejects.loc["disordered", "reason_code"] == "disordered"
    assert "Sr" in rejects.loc["disordered", "reason"]
    assert rejects.loc["big", "reason_code"] == "too_large"
    assert "40 sites" in rejects.loc["big", "reason"]
    assert set(run.rankings.results["id"]) == {"NaCl", "sub/POSCAR", "frames#0", "frames#1"}
    assert run.summary["n_candidates"] == 7
    results = pd.read_parquet(tmp_path / "out" / "screening.parquet").set_index("id")
    assert results.loc["NaCl", "formula"] == "NaCl" and results.loc["NaCl", "n_sites"] == 2


def test_json_pool_rejects_unparseable_unknown_element_and_duplicates(tmp_path, ensemble_dir):
    records = pool_records(3)
    broken = dict(records[0], id="broken", structure={"lattice": "nonsense"})
    alien = json.loads(json.dumps(records[1]))
    alien["id"] = "alien"
    alien["structure"]["sites"][0]["species"][0]["element"] = "Xx"
    records += [broken, alien, dict(records[2])]  # the last one repeats the id cand-002
    pool = write_json_gz(tmp_path / "pool.json.gz", records)
    run = run_screening(run_opts(pool, ensemble_dir, tmp_path / "out"))
    rejects = run.rankings.rejects.set_index("id")
    assert rejects.loc["broken", "reason_code"] == "unparseable"
    assert rejects.loc["alien", "reason_code"] == "unknown_element"
    assert rejects.loc["cand-002#dup5", "reason_code"] == "duplicate_id"
    assert sorted(run.rankings.results["id"]) == ["cand-000", "cand-001", "cand-002"]


class _FakeMPID:
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def test_materials_project_doc_parsing_without_network(monkeypatch):
    s = layered(0)
    doc = SimpleNamespace(
        material_id=_FakeMPID("mp-5229"),
        formula_pretty="SrTiO3",
        structure=s,
        band_gap=1.77,
        energy_above_hull=0.0,
        is_stable=True,
    )
    rec = candidate_from_mp_doc(doc, 4)
    assert rec["id"] == rec["material_id"] == "mp-5229"
    assert rec["band_gap"] == 1.77 and rec["formula"] == "SrTiO3" and rec["pool_index"] == 4
    assert Structure.from_dict(rec["structure"]) == s
    as_dict = candidate_from_mp_doc({"material_id": "mp-1", "structure": s.as_dict(), "band_gap": None}, 0)
    assert as_dict["structure"] == s.as_dict() and as_dict["band_gap"] is None
    assert candidate_from_mp_doc({"material_id": "mp-2"}, 1)["reject_code"] == "unparseable"
    pool = MaterialsProjectPool(chemsys="Sr-Ti-O", max_sites=20)
    assert pool.query() == {"is_stable": True, "band_gap": (1e-4, 1e3), "chemsys": "Sr-Ti-O", "num_sites": (1, 20)}
    monkeypatch.delenv("MP_API_KEY", raising=False)
    with pytest.raises(PoolError, match="MP_API_KEY"):
        list(pool)
    assert isinstance(open_pool("mp:Sr-Ti-O"), MaterialsProjectPool)


# ------------------------------------------------------------------------------------------- engine and Dask
def test_single_process_run_outputs(reference_run):
    rk, out = reference_run.rankings, Path(reference_run.options.out_dir)
    assert len(rk.results) == 30 and rk.rejects.empty
    # score = mean + κ std with κ = 1 (the default)
    np.testing.assert_allclose(rk.results["score"], rk.results["eps_mean"] + rk.results["eps_mean_std"])
    gaps = rk.top_high_k["band_gap"]
    assert (gaps > 1.8).all() and len(rk.top_high_k) == 5
    assert rk.top_high_k["score"].is_monotonic_decreasing
    eligible = rk.results[rk.results["band_gap"] > 1.8]
    assert rk.top_high_k["id"].tolist() == eligible.nlargest(5, "score")["id"].tolist()
    assert rk.top_anisotropy["score_aniso"].is_monotonic_decreasing and len(rk.top_anisotropy) == 5
    assert rk.unknown_gap_excluded == 5  # GAPS has None once per 6 candidates
    for name in ("screening", "top_high_k", "top_anisotropy"):
        table = pd.read_parquet(out / f"{name}.parquet")
        csv = pd.read_csv(out / f"{name}.csv")
        assert len(table) == len(csv)
        assert table["model_sha256"].str.count(";").eq(2).all() and table["kappa"].eq(1.0).all()
        assert table["model_names"].iloc[0] == "member0;member1;member2"
        assert len(table["pool_sha256"].iloc[0]) == 64 and table["goectp_version"].notna().all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_scored"] == 30 and summary["duplicate_rows_dropped_in_merge"] == 0


def test_predictions_match_the_api(reference_run, ensemble_dir):
    from goectp.api import load_model, predict

    rows = reference_run.rankings.results.set_index("id")
    structures = [Structure.from_dict(r["structure"]) for r in pool_records(4)]
    mean, std = predict(structures, load_model(ensemble_dir), return_std=True)
    for i, s in enumerate(structures):
        row = rows.loc[f"cand-{i:03d}"]
        lam = np.linalg.eigvalsh(mean[i])
        assert row["eps_mean"] == pytest.approx(lam.mean(), rel=1e-6)
        assert row["anisotropy"] == pytest.approx(lam[-1] / lam[0], rel=1e-6)
        assert row["std_11"] == pytest.approx(std[i, 0, 0], rel=1e-6, abs=1e-9)
        assert row["n_sites"] == len(s)


def test_two_worker_local_cluster_matches_single_process(tmp_path, ensemble_dir, reference_run):
    # Thread workers (processes=False) start in a second; process workers (the CLI default) spend 20-80 s importing
    # torch on a loaded 2-core machine, so they are exercised by the benchmark and the CLI run instead.
    pool = write_json_gz(tmp_path / "pool.json.gz", pool_records())
    run = run_screening(
        run_opts(pool, ensemble_dir, tmp_path / "out", use_dask=True, workers=2, chunk_size=8, processes=False)
    )
    assert not run.interrupted
    workers = set(
        pd.concat([pd.read_parquet(f) for f in (tmp_path / "out" / "work" / "parts").glob("*.parquet")])["worker"]
    )
    assert len(workers) == 2  # both workers got chunks
    pd.testing.assert_frame_equal(scored_values(run), scored_values(reference_run), rtol=1e-5, atol=1e-6)


def test_interrupted_dask_run_resumes_without_loss_or_duplicates(tmp_path, ensemble_dir, reference_run):
    pool = write_json_gz(tmp_path / "pool.json.gz", pool_records())
    out = tmp_path / "out"
    first = run_screening(
        run_opts(
            pool, ensemble_dir, out, use_dask=True, workers=2, processes=False, stop_after_chunks=2, max_in_flight=2
        )
    )
    assert first.interrupted and first.rankings is None
    parts = sorted((out / "work" / "parts").glob("part-*.parquet"))
    assert len(parts) == 2
    done = set(pd.concat([pd.read_parquet(p) for p in parts])["id"])
    assert len(done) == 8
    (out / "work" / "parts" / "part-leftover-000001.parquet.tmp").write_bytes(b"half-written")  # ignored
    second = run_screening(run_opts(pool, ensemble_dir, out))
    assert second.report.skipped_done == 8 and second.report.processed == 22
    ids = second.rankings.results["id"]
    assert ids.is_unique and set(ids) == {f"cand-{i:03d}" for i in range(30)}
    pd.testing.assert_frame_equal(scored_values(second), scored_values(reference_run), rtol=1e-5, atol=1e-6)


def test_deleted_part_files_are_rescored(tmp_path, ensemble_dir, reference_run):
    pool = write_json_gz(tmp_path / "pool.json.gz", pool_records())
    out = tmp_path / "out"
    run_screening(run_opts(pool, ensemble_dir, out))
    parts = sorted((out / "work" / "parts").glob("part-*.parquet"))
    assert len(parts) == 8  # 30 candidates in chunks of 4
    lost = set(pd.read_parquet(parts[3])["id"]) | set(pd.read_parquet(parts[6])["id"])
    parts[3].unlink()
    parts[6].unlink()
    again = run_screening(run_opts(pool, ensemble_dir, out))
    assert again.report.processed == len(lost) == 8
    assert again.report.skipped_done == 22
    pd.testing.assert_frame_equal(scored_values(again), scored_values(reference_run), rtol=1e-5, atol=1e-6)
    # re-running with everything done scores nothing and still returns the full table
    third = run_screening(run_opts(pool, ensemble_dir, out, kappa=0.0))
    assert third.report.processed == 0 and len(third.rankings.results) == 30
    np.testing.assert_array_equal(third.rankings.results["score"], third.rankings.results["eps_mean"])


def test_merge_deduplicates_repeated_parts(tmp_path, ensemble_dir):
    pool = write_json_gz(tmp_path / "pool.json.gz", pool_records(8))
    out = tmp_path / "out"
    run_screening(run_opts(pool, ensemble_dir, out))
    part = sorted((out / "work" / "parts").glob("part-*.parquet"))[0]
    (out / "work" / "parts" / "part-zzcopy-000001.parquet").write_bytes(part.read_bytes())
    again = run_screening(run_opts(pool, ensemble_dir, out))
    assert again.summary["duplicate_rows_dropped_in_merge"] == 4
    assert again.rankings.results["id"].is_unique and len(again.rankings.results) == 8


def test_work_dir_refuses_parts_of_another_model(tmp_path, ensemble_dir):
    pool = write_json_gz(tmp_path / "pool.json.gz", pool_records(4))
    other = _save_ensemble(tmp_path / "other", n=2)
    run_screening(run_opts(pool, ensemble_dir, tmp_path / "out"))
    with pytest.raises(ScreeningError, match="model_sha256"):
        run_screening(run_opts(pool, other, tmp_path / "out"))
    fresh = run_screening(run_opts(pool, other, tmp_path / "out", fresh=True))
    assert fresh.rankings.results["n_members"].eq(2).all()


# --------------------------------------------------------------------------------- reference comparison, export
def test_reference_comparison(tmp_path, reference_run):
    ref_dir = tmp_path / "reference"
    ref_dir.mkdir()
    comps = {f"{kind}_{c}": [] for kind in ("electronic", "ionic", "total") for c in COMPONENT_NAMES}
    tensors = [np.diag([2.0, 4.0, 10.0]), np.array([[5.0, 1.0, 0.0], [1.0, 5.0, 0.0], [0.0, 0.0, 7.0]])]
    for t in tensors:
        for kind, scale in (("electronic", 0.5), ("ionic", 0.5), ("total", 1.0)):
            for c, v in zip(COMPONENT_NAMES, tensor_components(scale * t[None])[0], strict=True):
                comps[f"{kind}_{c}"].append(v)
    pd.DataFrame({"mp-id": ["cand-003", "mp-not-in-pool"], **comps}).to_csv(ref_dir / "hits.csv", index=False)
    ref = load_reference_hits(ref_dir)
    assert ref["eps_mean_dft"].tolist() == pytest.approx([16 / 3, 17 / 3])
    assert ref["anisotropy_dft"].tolist() == pytest.approx([5.0, 7.0 / 4.0])
    comp = compare_with_reference(reference_run.rankings.results, reference_run.rankings.rejects, ref)
    assert (comp.n_reference, comp.n_in_pool, comp.n_scored) == (2, 1, 1)
    row = comp.table.iloc[0]
    pred = reference_run.rankings.results.set_index("id").loc["cand-003"]
    assert row["eps_mean_pred"] == pred["eps_mean"]
    assert row["eps_mean_error"] == pytest.approx(pred["eps_mean"] - 16 / 3)
    assert "in the screened pool: 1" in comp.summary()


def test_hostile_files_in_a_pool_folder_are_rejected_one_by_one(tmp_path):
    import gzip

    from goectp.screening.pool import open_pool

    cif = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(fmt="cif")
    (tmp_path / "good.cif").write_text(cif)
    (tmp_path / "bomb.cif.gz").write_bytes(gzip.compress(b" " * 60_000_000))  # 60 kB → 60 MB
    (tmp_path / "cut.cif.gz").write_bytes(gzip.compress(cif.encode())[:40])
    header = 'Lattice="5 0 0 0 5 0 0 0 5" Properties=species:S:1:pos:R:3\n'
    (tmp_path / "liar.xyz").write_text("+999999999\n" + header + "Na 0 0 0\n")  # ASE would read for minutes
    (tmp_path / "two.xyz").write_text(("1\n" + header + "Na 0 0 0\n") * 2)
    got = {c["id"]: (c.get("reject_code"), c.get("reject_reason", "")) for c in open_pool(tmp_path)}
    assert got["good"] == (None, "") and got["two#0"] == (None, "") and got["two#1"] == (None, "")
    assert got["bomb"][0] == "too_large" and "once decompressed" in got["bomb"][1]
    assert got["cut"][0] == "unparseable" and "cannot decompress" in got["cut"][1]
    assert got["liar"][0] == "unparseable" and "999,999,999 atoms" in got["liar"][1]


def test_one_endless_record_in_a_pool_is_refused_quickly(tmp_path):
    import gzip
    import time

    p = tmp_path / "pool.json.gz"  # 80 kB that expand to one 80-million-character string
    p.write_bytes(gzip.compress(b'[{"id": "a", "structure": "' + b"a" * 80_000_000))
    start = time.perf_counter()
    with pytest.raises(ValueError, match="one element is longer than 50,000,000 characters"):
        list(iter_json_items(p))
    assert time.perf_counter() - start < 20


def test_a_damaged_reference_csv_is_named_in_a_one_line_error(tmp_path):
    comps = {f"total_{c}": [1.0, 2.0] for c in COMPONENT_NAMES}
    first = f"total_{COMPONENT_NAMES[0]}"
    for name, frame, words in (
        ("text.csv", {"mp-id": ["a", "b"], **comps, first: ["big", 1.0]}, "must be numbers"),
        ("empty.csv", {"mp-id": ["a", "b"], **comps, first: [np.nan, 1.0]}, "empty, NaN or infinite"),
    ):
        folder = tmp_path / name
        folder.mkdir()
        pd.DataFrame(frame).to_csv(folder / name, index=False)
        with pytest.raises(ValueError, match=words) as err:
            load_reference_hits(folder)
        assert name in str(err.value) and "\n" not in str(err.value)


def test_export_assets(tmp_path, reference_run):
    training = _training_file(tmp_path)
    pool = open_pool(reference_run.options.pool)
    paths = export_assets(reference_run, pool, tmp_path / "assets", training_path=training)
    results = pd.read_csv(paths["screening_results"])
    for col in (
        "id",
        "formula",
        "source",
        "band_gap",
        "n_sites",
        "eps_mean",
        "eps_mean_std",
        "anisotropy",
        "anisotropy_std",
        "score",
        "score_aniso",
        "material_id",
        "eps_eig1",
        "eps_eig3",
        "has_structure",
    ):
        assert col in results.columns
    assert len(results) == 30 and results["has_structure"].all()  # everything fits in the budget
    with gzip.open(paths["top_structures"], "rt") as fh:
        shipped = json.load(fh)
    assert set(shipped) == set(results["id"])
    assert Structure.from_dict(shipped["cand-002"]).composition.reduced_formula == "SrTiO3"
    train = pd.read_csv(paths["training_set"]).set_index("id")
    assert train.loc["mp-22862", "crystal_system"] == "cubic"
    assert train.loc["mp-22862", "eps_mean"] == pytest.approx(13 / 3) and train.loc["mp-22862", "anisotropy"] == 2
    top = pd.read_csv(paths["top_high_k"])
    assert top["id"].tolist() == reference_run.rankings.top_high_k["id"].tolist() and "model_sha256" in top


def test_structure_budget_keeps_the_top_lists():
    structures = {f"s{i}": layered(i).as_dict() for i in range(20)}
    order = [f"s{i}" for i in range(20)]
    budget = gzip_json_size({k: structures[k] for k in order[:5]})
    assert list(fit_structures(structures, order, max_bytes=budget, required=3)) == order[:5]
    assert list(fit_structures(structures, order, max_bytes=10, required=3)) == order[:3]  # top lists always kept
    assert len(fit_structures(structures, order, max_bytes=10**7)) == 20


def test_compact_structure_dicts_rebuild_the_same_crystal_in_fewer_bytes():
    from goectp.structures import structure_from_dict

    crystal = Structure(
        Lattice.from_parameters(4.1, 5.2, 6.3, 80, 95, 110),
        ["Sr", "Ti", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.1, 0.2, 0.3]],
    )
    charged = crystal.copy(site_properties={"magmom": [1.0, -1.0, 0.0]})
    for original in (crystal, charged):
        compact = compact_structure_dict(original.as_dict())
        assert gzip_json_size(compact) < 0.8 * gzip_json_size(original.as_dict())
        rebuilt = structure_from_dict(json.loads(json.dumps(compact)))
        assert [str(s.specie) for s in rebuilt] == [str(s.specie) for s in original]
        np.testing.assert_array_equal(rebuilt.frac_coords, original.frac_coords)
        np.testing.assert_allclose(rebuilt.lattice.matrix, original.lattice.matrix, rtol=0, atol=1e-12)
        assert rebuilt.site_properties == original.site_properties  # kept when there are any


# ------------------------------------------------------------------------------------------------------ the CLI
def test_cli_subcommand_and_module_entry(tmp_path, ensemble_dir, pool_file, capsys, caplog):
    parser = argparse.ArgumentParser(prog="goectp")
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "screen",
            "--pool",
            str(pool_file),
            "--model",
            str(ensemble_dir),
            "--out",
            str(tmp_path / "out"),
            "--no-dask",
            "--limit",
            "10",
            "--top",
            "3",
            "--kappa",
            "0.5",
            "--exclude-training",
            "none",
            "--reference",
            "none",
            "--no-progress",
            "--export-assets",
            str(tmp_path / "assets"),
        ]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "screened 10 candidates" in out and "top high-k" in out
    # an ensemble without a matching calibration.json: said before scoring starts and in the report
    assert any("has no calibration.json fitted on its weights" in r.getMessage() for r in caplog.records)
    assert "σ: the raw member spread for 10 candidates" in out
    table = pd.read_parquet(tmp_path / "out" / "screening.parquet")
    assert len(table) == 10 and table["kappa"].eq(0.5).all()
    assert (tmp_path / "assets" / "top_structures.json.gz").exists()
    # python -m goectp.screening takes the same options; a missing pool is a clear error with exit code 1
    assert (
        cli.main(
            [
                "--pool",
                str(tmp_path / "missing.json.gz"),
                "--model",
                str(ensemble_dir),
                "--no-dask",
                "--exclude-training",
                "none",
                "--out",
                str(tmp_path / "o2"),
            ]
        )
        == 1
    )
    assert "does not exist" in capsys.readouterr().err


def test_screening_refuses_a_model_of_eps_inf(tmp_path, pool_file, capsys):
    """The high-κ list ranks the static ε̄: a model trained on ε∞ alone is refused before anything is scored."""
    torch.manual_seed(0)
    folder = tmp_path / "eps-inf"
    for k in range(2):
        save_checkpoint(folder / f"split{k}.pt", build_model(hidden=16), train_config={"target": "electronic"})
    argv = ["--pool", str(pool_file), "--model", str(folder), "--no-dask", "--exclude-training", "none"]
    assert cli.main([*argv, "--out", str(tmp_path / "out"), "--reference", "none", "--no-progress"]) == 1
    assert "predicts the electronic tensor only" in capsys.readouterr().err
    assert not (tmp_path / "out" / "screening.parquet").exists()


def test_cli_defaults_point_at_the_shared_data(monkeypatch, tmp_path):
    monkeypatch.setenv("GOECTP_DATA", str(tmp_path))
    args = cli.build_parser().parse_args([])
    assert Path(args.pool) == tmp_path / "screening_candidates.json.gz"
    assert args.exclude_training == tmp_path / "mp_dielectric_open.json.gz"
    assert (args.max_sites, args.min_gap, args.top, args.workers) == (20, 1.8, 60, 2)
    assert args.model is None and args.rescore_model is None  # no --model: the funnel fast -> default


# ----------------------------------------------------------------------------------------- the real shared pool
@pytest.mark.data
def test_real_candidates_from_the_shared_pool(shared_data_dir, ensemble_dir, tmp_path):
    path = shared_data_dir / "screening_candidates.json.gz"
    with gzip.open(path, "rt") as fh:
        first = json.load(fh)[:24]
    streamed = [rec for _, rec in zip(range(24), open_pool(path), strict=False)]
    assert [r["id"] for r in streamed] == [r["id"] for r in first]
    run = run_screening(
        run_opts(
            path,
            ensemble_dir,
            tmp_path / "out",
            limit=24,
            chunk_size=12,
            exclude_training=shared_data_dir / "mp_dielectric_open.json.gz",
            reference_dir=shared_data_dir / "reference",
            symprec=0.1,
        )
    )
    results = run.rankings.results.set_index("id")
    rejected = run.rankings.rejects.set_index("id")
    assert len(results) + len(rejected) == 24
    by_id = {r["id"]: r for r in first}
    for cid, row in results.iterrows():
        s = Structure.from_dict(by_id[cid]["structure"])
        assert row["n_sites"] == len(s) <= 20
        assert row["formula"] == by_id[cid]["formula"]
        assert (pd.isna(row["band_gap"]) and by_id[cid]["band_gap"] is None) or row["band_gap"] == by_id[cid][
            "band_gap"
        ]
        assert row["crystal_system"] in {
            "cubic",
            "hexagonal",
            "trigonal",
            "tetragonal",
            "orthorhombic",
            "monoclinic",
            "triclinic",
        }
    for cid in rejected.index[rejected["reason_code"] == "too_large"]:
        assert len(by_id[cid]["structure"]["sites"]) > 20
    ref = load_reference_hits(shared_data_dir / "reference")
    assert len(ref) == 76 and run.comparison.n_reference == 76
    row = pd.read_csv(shared_data_dir / "reference" / "high_dielectric_bandgap.csv").iloc[0]
    t = tensors_from_components(row[[f"total_{c}" for c in COMPONENT_NAMES]].to_numpy(float)[None])[0]
    assert ref.iloc[[i for i in range(len(ref)) if ref["mp_id"][i] == row["mp-id"]][0]][
        "eps_mean_dft"
    ] == pytest.approx(np.trace(t) / 3)


def test_an_extxyz_pool_file_is_read_one_frame_at_a_time_and_keeps_every_frame(tmp_path, monkeypatch):
    """Frames stream from ASE's iread (the first candidate comes after at most two frames were read), none is lost,
    one frame keeps the file's id, and a bad frame rejects itself after the good ones."""
    import ase.io
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = [AseAtomsAdaptor.get_atoms(rocksalt(4.0 + 0.05 * i, "Mg", "O")) for i in range(6)]
    write(str(tmp_path / "many.extxyz"), frames, format="extxyz")
    write(str(tmp_path / "one.extxyz"), frames[:1], format="extxyz")
    read = []
    real_iread = ase.io.iread

    def counting_iread(*args, **kwargs):
        for atoms in real_iread(*args, **kwargs):
            read.append(atoms)
            yield atoms

    monkeypatch.setattr(ase.io, "iread", counting_iread)
    candidates = iter(open_pool(tmp_path / "many.extxyz"))
    first = next(candidates)
    assert first["id"] == "many#0" and len(read) <= 2
    rest = list(candidates)
    assert [c["id"] for c in rest] == [f"many#{i}" for i in range(1, 6)] and len(read) == 6
    sizes = [round(Structure.from_dict(c["structure"]).lattice.a, 4) for c in [first, *rest]]
    assert sizes == [round(f.cell.lengths()[0], 4) for f in frames]  # in file order, each frame once
    assert [c["id"] for c in open_pool(tmp_path / "one.extxyz")] == ["one"]
    text = (tmp_path / "many.extxyz").read_text().splitlines()
    per_frame = len(text) // 6  # frame 3 names an element that does not exist: ASE fails there, not before
    bad = text[: 3 * per_frame] + ["1", 'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3', "Qq 0 0 0"]
    (tmp_path / "bad.extxyz").write_text("\n".join(bad) + "\n")
    got = list(open_pool(tmp_path / "bad.extxyz"))
    assert [c["id"] for c in got[:3]] == ["bad#0", "bad#1", "bad#2"] and all(c.get("structure") for c in got[:3])
    assert got[-1]["reject_code"] == "unparseable" and "frame 3" in got[-1]["reject_reason"]


def test_the_screen_reports_the_formula_of_the_structure_it_scored(tmp_path, ensemble_dir):
    """A pool record whose own formula contradicts its structure: the results carry the scored structure's."""
    records = pool_records(3)
    records[0] = dict(records[0], formula="KBr")
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(records))
    run = run_screening(run_opts(pool, ensemble_dir, tmp_path / "out"))
    got = run.rankings.results.set_index("id")
    expected = Structure.from_dict(records[0]["structure"]).composition.reduced_formula
    assert got.loc[records[0]["id"], "formula"] == expected != "KBr"
