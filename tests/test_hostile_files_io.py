"""Issue 32: every file goectp reads is validated with a one-line message naming it; the CLI prints the file and the
reason code (``--json`` carries it); the isolation worker turns a blown limit into such a message."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import os
import socket
import time
import zipfile
from pathlib import Path

import pytest
import torch

import goectp
from goectp.cli import main
from goectp.isolation import IsolatedPool
from goectp.structures import StructureError, load_structures

ROOT = Path(__file__).resolve().parents[1]
NACL = "NaCl\n1.0\n4 0 0\n0 4 0\n0 0 4\nNa Cl\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    goectp.api.save_checkpoint(path, goectp.build_model("goectp", hidden=16))
    return path


# ------------------------------------------------------------------------------------------------ isolation
def test_isolated_worker_turns_blown_limits_into_one_line_errors(monkeypatch):
    pool = IsolatedPool(1, memory_mb=256, seconds=3)
    monkeypatch.chdir(ROOT)
    try:
        assert pool.run(len, "abcd", name="a.cif") == 4
        for fn, args, code in (
            (bytearray, (8 * 2**30,), "out_of_memory"),  # 8 GB: over the 256 MB limit
            (time.sleep, (30,), "timeout"),
            (os._exit, (3,), "worker_died"),
        ):
            start = time.perf_counter()
            with pytest.raises(StructureError) as info:
                pool.run(fn, *args, name="hostile.cif")
            message = str(info.value)
            assert info.value.code == code and message.startswith("hostile.cif: ") and "\n" not in message
            assert code in message and time.perf_counter() - start < 10
            assert pool.run(len, "ab", name="next.cif") == 2  # a fresh worker answers the next file
        with pytest.raises(StructureError, match="no such file"):  # the function's own errors pass through
            pool.run(load_structures, "/nonexistent/x.cif", name="x.cif")
        assert pool.run(os.getcwd) == os.getcwd()  # relative paths resolve where the caller is, even after a cd
        os.chdir(Path(__file__).parent)
        assert pool.run(os.getcwd) == str(Path(__file__).parent)
    finally:
        pool.close()


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_names_the_file_and_the_reason_code(tmp_path, tiny_checkpoint, capsys):
    good = tmp_path / "NaCl.vasp"
    good.write_text(NACL)
    needle = tmp_path / "needle.vasp"
    needle.write_text(NACL.replace("0 0 4\n", "0 0 5000\n"))
    fifo = tmp_path / "pipe.cif"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.cif"
    folder.mkdir()
    args = ["predict", str(good), str(needle), str(fifo), str(folder), "/dev/null", "--model", str(tiny_checkpoint)]
    assert main([*args, "--json"]) == 1
    out = capsys.readouterr()
    rows = {Path(r["file"]).name: r for r in json.loads(out.out)}
    assert "tensor" in rows["NaCl.vasp"]
    assert rows["needle.vasp"]["code"] == "absurd_cell"
    assert rows["pipe.cif"]["code"] == "not_a_file" and "FIFO" in rows["pipe.cif"]["error"]
    assert rows["folder.cif"]["code"] == "not_a_file" and "a directory" in rows["folder.cif"]["error"]
    assert rows["null"]["code"] == "not_a_file" and "device" in rows["null"]["error"]
    errors = [line for line in out.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 4 and all("no such file" not in e for e in errors)
    assert any(f"error: {needle}: " in e and e.endswith("[absurd_cell]") for e in errors)


def test_cli_fatal_errors_carry_the_code_in_json(tmp_path, capsys):
    model = tmp_path / "empty.pt"
    model.write_bytes(b"")
    good = tmp_path / "NaCl.vasp"
    good.write_text(NACL)
    assert main(["predict", str(good), "--model", str(model), "--json"]) == 2
    out = capsys.readouterr()
    assert json.loads(out.out)["code"] == "checkpoint_error"
    assert "empty.pt" in out.err and "[checkpoint_error]" in out.err and "Traceback" not in out.err


@pytest.mark.parametrize("content", ["{not json", '["default"]', '{"default": 3}', "\x00\x01"])
def test_damaged_aliases_never_make_a_traceback(tmp_path, monkeypatch, capsys, content):
    models = tmp_path / "models"
    (models / "fast").mkdir(parents=True)
    (models / "aliases.json").write_text(content)
    monkeypatch.setenv("GOECTP_ASSETS", str(tmp_path))
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "usage: goectp" in capsys.readouterr().out
    good = tmp_path / "NaCl.vasp"
    good.write_text(NACL)
    assert main(["predict", str(good), "--model", "default"]) == 2
    err = capsys.readouterr().err
    assert "aliases.json: damaged" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_predict_batch_size_zero_is_a_clear_error():
    model = goectp.build_model("goectp", hidden=16)
    from pymatgen.core import Lattice, Structure

    structure = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            goectp.predict(structure, model, batch_size=bad)
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            goectp.predict_summary(structure, model, batch_size=bad)
    assert goectp.predict(structure, model, batch_size=1).shape == (1, 3, 3)


# ------------------------------------------------------------------------------------------------ calibration
def _calibration_dict() -> dict:
    from goectp.uncertainty import Calibration

    return Calibration.load(ROOT / "assets" / "models" / "fast" / "calibration.json").to_dict()


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda d: d["quantities"]["eps_mean"].update(s=float("nan")), "quantities.eps_mean.s = nan"),
        (lambda d: d["quantities"]["tensor"].update(s=1e308), "quantities.tensor.s = 1e+308"),
        (lambda d: d["quantities"]["anisotropy"].update(k=-1.6), "quantities.anisotropy.k = -1.6"),
        (lambda d: d["quantities"]["tensor"].update(c=-0.1), "quantities.tensor.c"),
        (lambda d: d["quantities"].pop("tensor"), "quantities.tensor lacks"),
        (lambda d: d.pop("quantities"), "no 'quantities'"),
        (lambda d: d.update(disagreement_p99=float("nan")), "disagreement_p99"),
        (lambda d: d["embedding"][0]["std"].__setitem__(0, 0.0), "embedding[0].std"),
        (lambda d: d.update(version=99), "version 99"),
    ],
)
def test_bad_calibration_files_are_refused_naming_the_file(tmp_path, change, words):
    from goectp.uncertainty import Calibration

    data = _calibration_dict()
    change(data)
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as info:
        Calibration.load(path)
    assert str(path) in str(info.value) and words in str(info.value) and "\n" not in str(info.value)


def test_torn_calibration_file_is_named(tmp_path):
    from goectp.uncertainty import Calibration

    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(_calibration_dict())[:500])
    with pytest.raises(ValueError, match="not a readable calibration file") as info:
        Calibration.load(path)
    assert str(path) in str(info.value)
    assert Calibration.from_dict(_calibration_dict()).quantities  # the shipped one is valid


def test_an_oversized_calibration_file_is_refused_unread(tmp_path, monkeypatch):
    from goectp.uncertainty import Calibration, calibration

    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(_calibration_dict()))
    assert Calibration.load(path).quantities
    monkeypatch.setattr(calibration, "MAX_CALIBRATION_BYTES", 100)
    monkeypatch.setattr(Path, "read_text", lambda *a, **k: pytest.fail("read an oversized calibration file"))
    with pytest.raises(ValueError, match="more than a calibration holds") as info:
        Calibration.load(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------------------------------ manifest
def test_screening_manifest_is_atomic_and_a_torn_one_is_named(tmp_path, monkeypatch):
    from goectp.screening.store import ScreeningError, WorkDir

    work = WorkDir(tmp_path / "work")
    work.prepare({"models": "a", "pool": "b"})
    assert json.loads(work.manifest_path.read_text()) == {"models": "a", "pool": "b"}
    written = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (written.append((Path(a), Path(b))), real_replace(a, b)))
    work.write_part(__import__("pandas").DataFrame({"id": ["x"], "status": ["scored"]}))
    work.prepare({"models": "a", "pool": "b"})  # same settings: resumes
    assert any(b == work.manifest_path and a.parent == b.parent and a != b for a, b in written)
    assert not list(work.path.glob("*.tmp"))
    work.manifest_path.write_text('{"models": "a", "po')  # torn (a crash during a non-atomic write)
    with pytest.raises(ScreeningError) as info:
        work.prepare({"models": "a", "pool": "b"})
    assert str(work.manifest_path) in str(info.value) and "damaged" in str(info.value)


# ------------------------------------------------------------------------------------------------ checkpoints
def test_zip_bomb_checkpoint_is_refused_before_decompressing(tmp_path, tiny_checkpoint):
    from goectp.checkpoint import CheckpointError, safe_load

    bomb = tmp_path / "bomb.pt"
    with (
        zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf,
        zf.open("archive/data.pkl", "w", force_zip64=True) as fh,
    ):
        for _ in range(300):  # 300 MB of zeros: about 300 KB on disk
            fh.write(b"\0" * 2**20)
    assert bomb.stat().st_size < 2_000_000
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="refused before decompressing") as info:
        safe_load(bomb)
    assert "bomb.pt" in str(info.value) and time.perf_counter() - start < 1.0
    with pytest.raises(CheckpointError, match="refused before decompressing"):
        safe_load(bomb.read_bytes(), name="bomb bytes")
    assert isinstance(safe_load(tiny_checkpoint), dict)  # torch.save's stored entries load as before
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, buf)
    assert safe_load(buf.getvalue())["w"].shape == (3,)


# ------------------------------------------------------------------------------------------------ explorer
def test_bad_host_gets_the_403_without_a_redirect():
    import tornado.web

    from explorer.hosts import REJECTED_PATH, AllowedHosts, HostNotAllowed

    provider = AllowedHosts(["127.0.0.1:5006", "localhost"])

    class App(tornado.web.RequestHandler):
        def get_current_user(self):
            return provider.get_user(self)

        @tornado.web.authenticated
        def get(self) -> None:
            self.write("the app")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    def get(path: str, host: str) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", path, headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Location") or "", resp.read()
        finally:
            conn.close()

    async def run() -> list:
        app = tornado.web.Application([("/app", App), (REJECTED_PATH, HostNotAllowed)], login_url=REJECTED_PATH)
        server = app.listen(port, "127.0.0.1")
        loop = asyncio.get_running_loop()
        try:
            return [
                await loop.run_in_executor(None, get, path, host)
                for path, host in (("/app", "attacker.example:5006"), ("/app", "localhost:9"), (REJECTED_PATH, "x"))
            ]
        finally:
            server.stop()

    (bad, good, page) = asyncio.run(run())
    assert bad[0] == 403 and bad[1] == "" and b"does not answer to that host name" in bad[2]
    assert good == (200, "", b"the app")
    assert page[0] == 403


def test_rows_csv_quotes_line_breaks_and_reads_screen_ids_back(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("panel")
    from explorer.screening import ScreeningData, ScreeningMap
    from explorer.testing import example_structures, write_demo_screening
    from goectp.csvsafe import write_csv

    examples = ROOT / "assets" / "examples"
    results = write_demo_screening(tmp_path, example_structures(examples))
    ids = ["mp-1\r=1+1", "mp-2\n=1+1", "=1+1", "'=2+2", "mp-3"]
    results.loc[: len(ids) - 1, "id"] = ids
    write_csv(results, tmp_path / "screening_results.csv", index=False)  # as goectp screen writes it
    data = ScreeningData(tmp_path, pool_dir=tmp_path)
    assert list(data.results["id"][: len(ids)]) == ids  # the ids as screened, not their neutralised form
    smap = ScreeningMap(data=data)
    text = smap.export_csv()
    rows = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert len(rows) == len(smap.export_rows())  # no row split by a carriage return or a newline
    assert {"mp-1\r=1+1", "mp-2\n=1+1", "'=1+1", "''=2+2", "mp-3"} <= set(rows["id"])
    assert not any(i.startswith(("=", "+", "-", "@")) for i in rows["id"])


def test_cli_refuses_a_nan_calibration_instead_of_printing_nan_sigma(tmp_path, tiny_checkpoint, capsys):
    import shutil

    folder = tmp_path / "ensemble"
    folder.mkdir()
    for k in range(2):
        shutil.copy(tiny_checkpoint, folder / f"split{k}.pt")
    data = _calibration_dict()
    data["quantities"]["eps_mean"]["s"] = float("nan")
    (folder / "calibration.json").write_text(json.dumps(data))
    good = tmp_path / "NaCl.vasp"
    good.write_text(NACL)
    assert main(["predict", str(good), "--model", str(folder)]) == 2
    captured = capsys.readouterr()
    assert "nan" not in captured.out and "calibration.json" in captured.err and "eps_mean.s = nan" in captured.err
    (folder / "calibration.json").unlink()
    assert main(["predict", str(good), "--model", str(folder)]) == 0  # without it: raw member spreads
    assert "raw member std" in capsys.readouterr().out
