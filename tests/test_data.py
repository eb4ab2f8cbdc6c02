"""Data layer: the DTNet/GoeCTP schema reader, filters, real loaders' parsing, splits, graph cache."""

from __future__ import annotations

import gzip
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from goectp.data import (
    DIELECTRIC_FILE,
    filter_records,
    load_graph_set,
    loaders,
    random_split,
    read_dielectric_json,
    write_dielectric_json,
)
from goectp.data.safe_pickle import UnsafePickleError, load_plain_pickle


def _structure(a: float = 4.0) -> Structure:
    return Structure(Lattice.tetragonal(a, a * 1.3), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _entry(scale: float, struct: Structure | None = None) -> dict:
    elec = np.diag([2.0, 2.0, 2.5]) * scale
    ionic = np.array([[3.0, 0.1, 0.0], [0.1, 3.0, 0.0], [0.0, 0.0, 4.0]])
    return {
        "structure": (struct or _structure()).as_dict(),
        "electronic": elec.tolist(),
        "ionic": ionic.tolist(),
        "total": (elec + ionic).tolist(),
        "band_gap": 3.2,
        "material_id": "mp-1",
    }


def test_reads_gzipped_and_plain_schema(tmp_path):
    data = {"mp-1": _entry(1.0), "mp-2": _entry(2.0, _structure(5.0))}
    plain = tmp_path / "d.json"
    plain.write_text(json.dumps(data))
    gz = tmp_path / "d.json.gz"
    with gzip.open(gz, "wt") as f:
        json.dump(data, f)
    for p in (plain, gz):
        recs = read_dielectric_json(p)
        assert [r.id for r in recs] == ["mp-1", "mp-2"]
        np.testing.assert_allclose(recs[1].target("total"), np.diag([4.0, 4.0, 5.0]) + _entry(0)["ionic"])
        assert recs[0].band_gap == 3.2
        assert recs[1].structure.lattice.a == pytest.approx(5.0)


def test_bad_records_raise_clear_errors(tmp_path):
    bad = _entry(1.0)
    bad["total"] = [[1, 2], [3, 4]]
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({"x": bad}))
    with pytest.raises(ValueError, match="x: total tensor must be 3x3"):
        read_dielectric_json(p)
    nan = _entry(1.0)
    nan["electronic"][0][0] = float("nan")
    p.write_text(json.dumps({"y": nan}))
    with pytest.raises(ValueError, match="NaN"):
        read_dielectric_json(p)
    p.write_text("[1, 2]")
    with pytest.raises(ValueError, match="keyed by id"):
        read_dielectric_json(p)
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_dielectric_json(p)
    no_lattice = _entry(1.0)
    del no_lattice["structure"]["lattice"]
    words_for = {  # each malformed record: the words of its one-line error, which names the file and the record
        "an-int": (5, "record an-int: expected an object"),
        "text-structure": ({**_entry(1.0), "structure": "NaCl"}, "'structure' must be a pymatgen Structure dict"),
        "no-lattice": (no_lattice, "record 'no-lattice': not a pymatgen Structure dict"),
        "big-gap": ({**_entry(1.0), "band_gap": "big"}, "band_gap must be a number or null"),
        "text-tensor": ({**_entry(1.0), "total": "eye"}, "total tensor"),
    }
    for rid, (entry, words) in words_for.items():
        p.write_text(json.dumps({rid: entry}))
        with pytest.raises(ValueError, match=words) as err:
            read_dielectric_json(p)
        assert str(p) in str(err.value) and "\n" not in str(err.value)


def test_filter_and_roundtrip(tmp_path):
    recs = read_dielectric_json(_write(tmp_path, {"a": _entry(1.0), "b": _entry(45.0)}))
    assert [r.id for r in filter_records(recs, max_abs=100)] == ["a"]
    out = tmp_path / "rt.json.gz"
    write_dielectric_json(recs, out)
    back = read_dielectric_json(out)
    for r, s in zip(recs, back):
        np.testing.assert_allclose(r.target("total"), s.target("total"))


def _write(tmp_path, data):
    p = tmp_path / "f.json"
    p.write_text(json.dumps(data))
    return p


def test_matminer_frame_parsing():
    s = _structure()
    df = pd.DataFrame(
        [
            {
                "material_id": "mp-7",
                "structure": s,
                "e_total": np.diag([5.0, 5, 6]).tolist(),
                "e_electronic": np.diag([2.0, 2, 2.5]).tolist(),
                "band_gap": 1.5,
            }
        ]
    )
    (r,) = loaders.records_from_matminer_frame(df)
    assert r.id == "mp-7" and r.band_gap == 1.5
    np.testing.assert_allclose(r.target("ionic"), np.diag([3.0, 3, 3.5]))


def test_mp_docs_parsing_skips_docs_without_tensors():
    s = _structure()

    class Doc:  # the attribute-style documents mp-api returns
        def __init__(self, **kw):
            self.__dict__.update(kw)

    docs = [
        Doc(
            material_id="mp-9",
            structure=s,
            e_electronic=np.eye(3) * 3,
            e_ionic=np.eye(3),
            e_total=np.eye(3) * 4,
            band_gap=2.0,
        ),
        {"material_id": "mp-10", "structure": s, "e_total": None, "e_electronic": None},
    ]
    (r,) = loaders.records_from_mp_docs(docs)
    assert r.id == "mp-9" and r.source == "materials-project"
    np.testing.assert_allclose(r.target("total"), np.eye(3) * 4)


def test_jarvis_pickle_parsing(tmp_path):
    atoms = {
        "lattice_mat": [[4, 0, 0], [0, 4, 0], [0, 0, 5]],
        "coords": [[0, 0, 0], [2, 2, 2.5]],
        "elements": ["Na", "Cl"],
        "cartesian": True,
    }
    entries = [
        {"jid": "JVASP-1", "atoms": atoms, "dielectric": np.diag([3.0, 3, 4]).tolist(), "optb88vdw_bandgap": 5.0},
        {"jid": "JVASP-2", "atoms": atoms, "dielectric": None},
    ]
    p = tmp_path / "jarvis_diele_piezo.pkl"
    with open(p, "wb") as f:
        pickle.dump(entries, f)
    (r,) = loaders.read_jarvis_pickle(p)
    assert r.id == "JVASP-1" and r.band_gap == 5.0
    np.testing.assert_allclose(r.structure.frac_coords[1], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(r.target("total"), np.diag([3.0, 3, 4]))


def test_random_split_is_seeded_and_disjoint():
    a, b = random_split(1000, 3), random_split(1000, 3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert [len(a[k]) for k in ("train", "val", "test")] == [800, 100, 100]
    assert len(np.unique(np.concatenate(list(a.values())))) == 1000
    assert not np.array_equal(random_split(1000, 4)["test"], a["test"])


def test_graph_cache_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path / "cache"))
    p = _write(tmp_path, {"a": _entry(1.0), "b": _entry(2.0, _structure(5.0))})
    gs = load_graph_set(p, progress=False)
    assert len(gs) == 2 and gs.crystal_systems == ["tetragonal", "tetragonal"]
    assert len(list((tmp_path / "cache").glob("graphs-*.pt"))) == 1
    again = load_graph_set(p, progress=False)
    assert again.ids == gs.ids
    np.testing.assert_allclose(again.targets("electronic"), gs.targets("electronic"))


@pytest.mark.data
def test_shared_open_set_matches_its_readme(shared_data_dir):
    recs = read_dielectric_json(shared_data_dir / DIELECTRIC_FILE)
    assert len(recs) == 2733
    assert sum(np.abs(r.target("total")).max() > 100 for r in recs) == 47
    assert len(filter_records(recs, max_abs=100)) == 2733 - 47
    assert sum(r.band_gap is not None for r in recs) == 2192
    r = recs[0]
    np.testing.assert_allclose(r.target("total"), r.target("electronic") + r.target("ionic"), atol=1e-6)


class _RunsCode:
    """A pickle payload that would create a file when unpickled by ``pickle.load``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_pickle_that_would_run_code_is_refused_before_the_call(tmp_path):
    marker = tmp_path / "was-run"
    p = tmp_path / "jarvis_diele_piezo.pkl"
    with open(p, "wb") as f:
        pickle.dump([{"jid": "JVASP-1", "atoms": _RunsCode(marker), "dielectric": None}], f)
    with pytest.raises(UnsafePickleError, match=r"refusing to load (posix|nt|os)\.mkdir"):
        loaders.read_jarvis_pickle(p)
    assert not marker.exists()
    with open(p, "rb") as f:  # the same file does run code with the standard loader: the test's payload is real
        pickle.load(f)
    assert marker.exists()


def test_the_plain_pickle_reader_keeps_numpy_arrays_and_refuses_objects(tmp_path):
    data = {
        "a": np.arange(6.0).reshape(2, 3),
        "b": np.float32(2.5),
        "c": [1, "x", None, (2, 3), {4}, 1j],
        "d": np.array(["Na", "Cl"]),
    }
    p = tmp_path / "plain.pkl"
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        p.write_bytes(pickle.dumps(data, protocol=protocol))
        back = load_plain_pickle(p)
        np.testing.assert_array_equal(back["a"], data["a"])
        assert back["b"] == np.float32(2.5) and back["c"] == data["c"] and list(back["d"]) == ["Na", "Cl"]
    p.write_bytes(pickle.dumps(Path("somewhere")))  # any class is refused, harmless or not
    with pytest.raises(UnsafePickleError, match="pathlib"):
        load_plain_pickle(p)
    p.write_bytes(b"not a pickle at all")
    with pytest.raises(pickle.UnpicklingError, match="not a readable pickle"):
        load_plain_pickle(p)
    p.write_bytes(pickle.dumps({"not": "a list"}))
    with pytest.raises(ValueError, match="expected a list of dicts"):
        loaders.read_jarvis_pickle(p)


def test_convert_jarvis_reports_an_unsafe_pickle_in_one_line(tmp_path, capsys):
    from goectp.cli import main

    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps([{"atoms": _RunsCode(tmp_path / "was-run")}]))
    assert main(["data", "convert-jarvis", "--input", str(p), "--out", str(tmp_path / "out.json.gz")]) == 2
    err = capsys.readouterr().err
    assert "refusing to load" in err and "mkdir" in err and not (tmp_path / "was-run").exists()


def test_datasets_too_small_or_absurd_are_refused_with_their_reason(tmp_path, capsys):
    from goectp.cli import main

    def write(name: str, data: dict) -> str:
        (tmp_path / name).write_text(json.dumps(data))
        return str(tmp_path / name)

    one = write("one.json", {"a": _entry(1.0)})
    huge = write("huge.json", {"a": {**_entry(1.0), "total": (np.eye(3) * 1e300).tolist()}})
    no_total = {f"r{i}": _entry(1.0) for i in range(12)}
    del no_total["r3"]["total"]
    partial = write("partial.json", no_total)
    for path, words in (
        (one, "split 0 leaves the val, test set(s) empty: 1 usable records"),
        (huge, "record a: total tensor has a component of 1e+300"),
        (partial, "1 records have no 'total' tensor (e.g. 'r3')"),
        ("/dev/zero", "not a regular file"),
    ):
        out = tmp_path / f"run-{Path(path).stem}"
        assert (
            main(["train", "--data-file", path, "--epochs", "1", "--hidden", "8", "--out", str(out), "--no-progress"])
            == 2
        )
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
        assert not (out / "split0" / "best.pt").exists()
