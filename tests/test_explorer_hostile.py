"""The explorer against hostile or careless input (issue 14): user text never becomes HTML, uploads are pre-checked
before the expensive parse and parsed off the event loop, absurd structures are refused at the door, CSV cells
cannot run as formulas, the map's hover shows the right numbers, and ``python explorer/app.py`` listens on
loopback only."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pn = pytest.importorskip("panel")

from explorer import loader as loader_module  # noqa: E402
from explorer.loader import (  # noqa: E402
    SEARCH_EXAMPLES,
    DatasetIndex,
    ExampleGallery,
    StructureLoader,
    precheck_text,
)
from explorer.room import stop_server  # noqa: E402
from explorer.safe import escape_text, estimate_sites  # noqa: E402
from explorer.screening import ScreeningData, ScreeningMap  # noqa: E402
from explorer.tensor_view import TensorEllipsoid  # noqa: E402
from explorer.testing import example_structures, write_demo_screening  # noqa: E402
from goectp.csvsafe import neutralize_cell as neutralize_csv_cell  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assets" / "examples"
XSS_NAME = "<img src=x onerror=alert(1)>.cif"
XSS_SEARCH = "<script>alert(8)</script>"


def _structure(lattice: float = 4.0, coords=((0, 0, 0), (0.5, 0.5, 0.5))):
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice.cubic(lattice), ["Na", "Cl"], list(coords))


def _cif(structure) -> str:
    from pymatgen.io.cif import CifWriter

    relabelled = structure.copy()
    relabelled.relabel_sites()
    return str(CifWriter(relabelled))


def p1_cif(n: int, seed: int = 0, a: float = 60.0) -> str:
    """A P1 CIF listing ``n`` random O sites (the issue's 0.7 MB, 20,000-site file for n = 20,000)."""
    rng = np.random.default_rng(seed)
    head = (
        f"data_big\n_cell_length_a {a}\n_cell_length_b {a}\n_cell_length_c {a}\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n"
        " _symmetry_equiv_pos_as_xyz\n 'x, y, z'\nloop_\n _atom_site_label\n _atom_site_type_symbol\n"
        " _atom_site_fract_x\n _atom_site_fract_y\n _atom_site_fract_z\n _atom_site_occupancy\n"
    )
    return head + "".join(f" O{i} O {x:.5f} {y:.5f} {z:.5f} 1\n" for i, (x, y, z) in enumerate(rng.random((n, 3))))


def _rendered(viewable) -> str:
    """The markup a pane sends to the browser."""
    return str(viewable.object)


@pytest.fixture()
def loader():
    return StructureLoader(gallery=ExampleGallery(EXAMPLES), dataset=DatasetIndex(Path("/nonexistent")))


# ---------------------------------------------------------------------------------------------------- escaping
def test_escape_text_neutralises_html_and_markdown():
    out = escape_text(XSS_NAME + " [x](javascript:alert(2)) *b*")
    assert "<" not in out and ">" not in out and "&lt;img" in out
    assert "\\[x\\]" in out and "\\*b\\*" in out  # no link, no emphasis


@pytest.mark.parametrize("valid", [True, False])
def test_uploaded_file_name_is_shown_as_text(loader, valid):
    content = (EXAMPLES / "MgO_rocksalt.cif").read_bytes() if valid else b"data_x\nnot a crystal\n"
    assert loader.load_bytes(content, XSS_NAME) is valid
    shown = _rendered(loader._status())
    assert "<img" not in shown and "&lt;img src=x onerror=alert(1)&gt;" in shown


def test_search_text_and_dataset_ids_are_shown_as_text(tmp_path):
    s = _structure()
    record = {
        "structure": s.as_dict(),
        "electronic": np.eye(3).tolist(),
        "ionic": np.eye(3).tolist(),
        "total": (2 * np.eye(3)).tolist(),
        "band_gap": 3.0,
    }
    with gzip.open(tmp_path / "mp_dielectric_open.json.gz", "wt") as fh:
        json.dump({"<b onmouseover=alert(5)>mp-1": record}, fh)
    ld = StructureLoader(gallery=ExampleGallery(EXAMPLES), dataset=DatasetIndex(tmp_path))
    ld.search_dataset(XSS_SEARCH)
    assert "<script" not in _rendered(ld._status()) and "&lt;script&gt;" in _rendered(ld._status())
    assert ld.load_dataset_record("<b onmouseover=alert(5)>mp-1")
    shown = _rendered(ld._status())
    assert "<b " not in shown and "&lt;b onmouseover" in shown


def test_screening_ids_are_shown_as_text(tmp_path):
    write_demo_screening(tmp_path, example_structures(EXAMPLES))
    smap = ScreeningMap(data=ScreeningData(tmp_path, pool_dir=tmp_path))
    assert not smap.pick(XSS_SEARCH)
    assert "<script" not in _rendered(smap._message()) and "&lt;script&gt;" in _rendered(smap._message())


# ---------------------------------------------------------------------------------------------------- pre-check
def test_twenty_thousand_site_cif_is_refused_before_parsing(loader, monkeypatch):
    text = p1_cif(20_000)
    assert 0.5e6 < len(text) < loader.max_upload_bytes  # under the size cap: only the site count refuses it

    def no_parse(*_a, **_k):  # the pre-check must refuse it without pymatgen
        raise AssertionError("pymatgen was asked to parse a 20,000-site file")

    monkeypatch.setattr("goectp.structures.structure_from_string", no_parse)
    start = time.perf_counter()
    assert not loader.load_bytes(text.encode(), "big.cif")
    assert time.perf_counter() - start < 2.0
    assert "20000 sites" in loader.error and "limit of 200" in loader.error


def test_site_estimates_bracket_the_real_count():
    from pymatgen.io.vasp import Poscar

    for s in example_structures(EXAMPLES):
        low, high = estimate_sites(_cif(s), "cif")
        assert low <= len(s) <= high
        assert estimate_sites(str(Poscar(s)), "poscar") == (len(s), len(s))
        assert precheck_text(_cif(s), "cif") == ""
    for name in json.loads((EXAMPLES / "index.json").read_text())["examples"]:  # symmetrised CIFs
        text = (EXAMPLES / name["file"]).read_text()
        low, high = estimate_sites(text, "cif")
        n = len(ExampleGallery(EXAMPLES).structure(name["name"]))
        assert low <= n <= high, name["file"]


def test_huge_symmetry_expansion_is_refused_before_parsing():
    mgo = (EXAMPLES / "MgO_rocksalt.cif").read_text()
    head, _, _ = mgo.partition(" _atom_site_type_symbol")
    rows = "".join(f"  Mg  Mg{i}  1  {0.013 * i:.4f}  0.1  0.2  1\n" for i in range(60))
    text = (
        head + " _atom_site_type_symbol\n _atom_site_label\n _atom_site_symmetry_multiplicity\n"
        " _atom_site_fract_x\n _atom_site_fract_y\n _atom_site_fract_z\n _atom_site_occupancy\n" + rows
    )
    low, high = estimate_sites(text, "cif")
    assert (low, high) == (60, 60 * 192)
    assert "symmetry operations" in precheck_text(text, "cif")


# ---------------------------------------------------------------------------------------------------- off the loop
def _ticks_during(coro_factory) -> tuple[int, object]:
    """Run ``coro_factory()`` while a 10 ms ticker runs on the same event loop; count the ticks."""
    done = [False]

    async def runner() -> tuple[int, object]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while not done[0]:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.ensure_future(ticker())
        result = await coro_factory()
        done[0] = True
        await task
        return ticks, result

    return asyncio.run(runner())


def test_upload_is_parsed_off_the_event_loop(loader, monkeypatch):
    """A slow parse (1.5 s, simulated) runs in a worker thread: the loop keeps ticking meanwhile. The same parse
    run synchronously on the loop (what the app did before) stalls it: the check can fail."""
    real = loader_module.prepare_upload_isolated

    def slow(*args, **kwargs):
        time.sleep(1.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(loader_module, "prepare_upload_isolated", slow)
    data = (EXAMPLES / "MgO_rocksalt.cif").read_bytes()
    seen = []
    loader.precompute = lambda s: seen.append(len(s))
    ticks, ok = _ticks_during(lambda: loader.load_bytes_async(data, "MgO.cif"))
    assert ok and loader.label == "MgO.cif" and seen == [8]
    assert ticks > 40, f"the event loop ticked only {ticks} times in 1.5 s"

    async def blocking() -> bool:
        return loader.load_bytes(data, "MgO-again.cif")

    ticks_blocking, ok = _ticks_during(blocking)
    assert ok and ticks_blocking < 5


# ---------------------------------------------------------------------------------------------------- at the door
def test_empty_upload_through_the_widget_shows_a_red_message(loader):
    before = loader.structure
    loader._file_input.param.update(value=None, filename="empty.cif")  # what Panel makes of a 0-byte file
    assert "empty.cif: the file is empty" in loader.error
    assert "goectp-load-error" in loader._status().css_classes and loader.structure is before


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: _structure(coords=((0, 0, 0), (0.01, 0, 0))), "overlap"),
        (lambda: _structure(lattice=1e30), "longer than"),
    ],
)
def test_absurd_structures_are_refused_by_the_loader(loader, make, words):
    before = loader.structure
    assert not loader.load_bytes(_cif(make()).encode(), "absurd.cif")
    assert words in loader.error and loader.structure is before
    assert not loader.set_structure(make(), "absurd (python)", "python")
    assert words in loader.error and loader.structure is before


def test_load_text_is_handled_like_an_upload(loader, monkeypatch):
    """The Python API's text path goes through the same bounded worker and size cap as an upload."""
    import explorer.loader as loader_module

    calls = []
    real = loader_module.prepare_upload_isolated
    monkeypatch.setattr(loader_module, "prepare_upload_isolated", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    before = loader.structure
    assert not loader.load_text("x" * (loader.max_upload_bytes + 1), "huge.cif")
    assert "huge.cif" in loader.error and "MB" in loader.error and loader.structure is before
    assert loader.load_text(_cif(_structure()), "fine.cif") and loader.error == ""
    assert calls == ["huge.cif", "fine.cif"]


# ---------------------------------------------------------------------------------------------------- exports
def test_tensor_downloads_after_a_failed_prediction_explain_themselves(loader):
    from explorer.models import ModelSelector

    view = TensorEllipsoid(structure=loader.structure, models=ModelSelector())
    assert "goectp-export-csv" in view._body().object  # a prediction: both downloads are offered
    view.error = "prediction failed: FloatingPointError: <overflow>"
    shown = view._body().object
    assert "Nothing to show or export" in shown and "FloatingPointError: &lt;overflow&gt;" in shown
    assert "goectp-export-csv" not in shown and "goectp-export-json" not in shown  # no link to an empty file


def test_tensor_download_links_carry_the_files():
    import base64

    from explorer.models import ModelSelector

    view = TensorEllipsoid(structure=_structure(), models=ModelSelector())
    links = dict(
        re.findall(
            r"class='goectp-export-(\w+)' download='[^']+' href='data:[^;]+;charset=utf-8;base64,([^']+)'",
            view._body().object,
        )
    )
    assert set(links) == {"csv", "json"}
    assert base64.b64decode(links["csv"]).decode() == view.export_csv()
    assert json.loads(base64.b64decode(links["json"]))["prediction"]["tensor"] == view.mean.tolist()


def test_rows_csv_neutralises_formula_cells(tmp_path):
    results = write_demo_screening(tmp_path, example_structures(EXAMPLES))
    payloads = ['=HYPERLINK("http://x","y")', "=cmd|' /C calc'!A0", "+SUM(1,1)", "@SUM(1)", "-2+3", "\tx"]
    results.loc[: len(payloads) - 1, "id"] = payloads
    results.to_csv(tmp_path / "screening_results.csv", index=False)
    smap = ScreeningMap(data=ScreeningData(tmp_path, pool_dir=tmp_path))
    rows = pd.read_csv(io.StringIO(smap.export_csv()), dtype=str, keep_default_na=False)
    ids = set(rows["id"])
    assert {"'" + p for p in payloads} <= ids
    assert not any(i.startswith(("=", "+", "-", "@")) for i in ids)
    assert neutralize_csv_cell(-2.5) == -2.5 and neutralize_csv_cell("mp-1") == "mp-1"


def _tooltips(smap: ScreeningMap) -> list:
    from bokeh.models import HoverTool

    model = smap.static_layout()
    return [t.tooltips for t in model.select({"type": HoverTool}) if t.tooltips]


def test_map_hover_shows_the_std_column(tmp_path):
    write_demo_screening(tmp_path, example_structures(EXAMPLES))
    smap = ScreeningMap(data=ScreeningData(tmp_path, pool_dir=tmp_path))
    tips = [dict(t) for t in _tooltips(smap) if "id" in dict(t)]  # the candidates' hover (not OOD's, top 10's)
    assert sorted(t["std"] for t in tips) == ["@{anisotropy_std}{0.00}", "@{eps_mean_std}{0.00}"]
    assert not any("}_std" in v for t in tips for v in t.values())
    # the named column exists in the plotted data, so the hover shows its value (not ε̄'s)
    assert {"eps_mean_std", "anisotropy_std"} <= set(smap.filtered.columns)


def test_offline_map_export_requests_no_cdn(tmp_path):
    write_demo_screening(tmp_path, example_structures(EXAMPLES))
    html = ScreeningMap(data=ScreeningData(tmp_path, pool_dir=tmp_path)).export_html()
    tags = re.findall(r"<(?:link|script)\b[^>]*>", html, flags=re.IGNORECASE)
    remote = [t for t in tags if re.search(r"(?:href|src)\s*=\s*[\"']?\s*(?:https?:)?//", t, re.IGNORECASE)]
    imports = re.findall(r"@import\s+(?:url\()?[\"']?(?:https?:)?//", html)
    assert tags and not remote and not imports, remote[:3] + imports[:3]


def test_search_placeholder_finds_records(shared_data_dir):
    index = DatasetIndex(shared_data_dir)
    for query in SEARCH_EXAMPLES:
        assert index.search(query), f"the placeholder's {query!r} finds nothing"


# ---------------------------------------------------------------------------------------------------- server
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_app_parse_args_default_to_loopback():
    from explorer.app import parse_args

    args = parse_args([])
    assert args.address == "127.0.0.1" and args.port == 5006
    assert parse_args(["--address", "0.0.0.0", "--allow-websocket-origin", "h:1"]).allow_websocket_origin == ["h:1"]


def test_host_allowlist_matches_names_and_ports():
    from explorer.hosts import host_allowed, split_host

    assert split_host("Example.ORG:5006") == ("example.org", 5006)
    assert split_host("[::1]:80") == ("[::1]", 80) and split_host("::1") == ("::1", None)
    allowed = ["localhost:5006", "127.0.0.1:5006", "lab.example"]
    assert host_allowed("127.0.0.1:5006", allowed) and host_allowed("LOCALHOST:5006", allowed)
    assert host_allowed("lab.example:8080", allowed)  # an entry without a port: any port
    assert not host_allowed("127.0.0.1:5007", allowed)
    assert not host_allowed("attacker.example:5006", allowed)  # DNS rebinding: the attacker's name
    assert not host_allowed("127.0.0.1.attacker.example:5006", allowed)
    assert not host_allowed("", allowed)


def _get(port: int, path: str, host: str) -> tuple[int, str, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Location") or "", resp.read()
    finally:
        conn.close()


@pytest.mark.timeout(240)
def test_python_app_listens_on_loopback_only(tmp_path):
    psutil = pytest.importorskip("psutil")
    port = _free_port()
    log = tmp_path / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "explorer/app.py", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 200
        listening: list = []
        while time.time() < deadline and proc.poll() is None:
            listening = [
                c.laddr
                for c in psutil.Process(proc.pid).net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port
            ]
            if listening:
                break
            time.sleep(0.5)
        assert listening, "python explorer/app.py never listened"
        assert {a.ip for a in listening} == {"127.0.0.1"}, listening
        # a request naming another host (DNS rebinding) gets no session: the 403 at once, no 302 first
        status, location, body = _get(port, "/app", f"attacker.example:{port}")
        assert status == 403 and location == "" and b"does not answer to that host name" in body
        status, _, body = _get(port, "/host-not-allowed", f"attacker.example:{port}")
        assert status == 403 and b"does not answer to that host name" in body
        status, _, body = _get(port, "/app", f"127.0.0.1:{port}")
        assert status == 200 and b"GoeCTP Explorer" in body
        _check_autoload(port)
    finally:
        stop_server(proc)
    assert b"Uncaught exception" not in log.read_bytes(), log.read_text()[-2000:]


def _request(port: int, method: str, path: str, headers: dict) -> tuple[int, dict]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def _check_autoload(port: int) -> None:
    """/app/autoload.js: a preflight without Origin is a 204 (Bokeh's handler raised, a 500 and a traceback), and
    no other web site is allowed to read it (Bokeh answered * or echoed any Origin that came with cookies)."""
    host = {"Host": f"127.0.0.1:{port}"}
    status, headers = _request(port, "OPTIONS", "/app/autoload.js", host)
    assert status == 204 and "access-control-allow-origin" not in headers
    evil = {**host, "Origin": "http://attacker.example", "Cookie": "a=b"}
    status, headers = _request(port, "OPTIONS", "/app/autoload.js", evil)
    assert status == 204 and "access-control-allow-origin" not in headers
    query = "/app/autoload.js?bokeh-autoload-element=x&bokeh-app-path=/app"
    status, headers = _request(port, "GET", query, evil)
    assert status == 200 and "access-control-allow-origin" not in headers
    own = {**host, "Origin": f"http://127.0.0.1:{port}"}
    status, headers = _request(port, "GET", query, own)
    assert status == 200 and headers.get("access-control-allow-origin") == f"http://127.0.0.1:{port}"
    status, _ = _request(port, "GET", "/app/autoload.js", host)  # no element: Bokeh's 400, not an exception
    assert status == 400


def test_error_texts_in_the_equivariance_card_and_screening_tab_are_shown_as_text(tmp_path):
    from explorer.equivariance import EquivarianceCheck

    card = EquivarianceCheck()
    card.error = f"could not rebuild {XSS_NAME}"
    shown = card._results().object
    assert "<img" not in shown and "&lt;img" in shown
    (tmp_path / "screening_results.csv").write_text(f"id,formula\n{XSS_SEARCH},x\n")  # lacks the other columns
    data = ScreeningData(tmp_path)
    data.problem = f"could not read {XSS_SEARCH}"
    alert = ScreeningMap(data=data).__panel__()[0].object
    assert "<script" not in alert and "&lt;script" in alert


def test_a_gallery_example_with_too_many_sites_is_refused_before_pymatgen_parses_it(tmp_path, monkeypatch):
    """An example folder is a file the explorer opens too: its site count is read from the text first."""
    import pymatgen.io.cif

    from goectp.structures import StructureError

    rows = "\n".join(f"Na{i} Na {i / 3000:.6f} 0 0 1" for i in range(3000))
    (tmp_path / "big.cif").write_text(
        "data_big\n_cell_length_a 4\n_cell_length_b 4\n_cell_length_c 4\n_cell_angle_alpha 90\n_cell_angle_beta 90\n"
        "_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
        "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_occupancy\n" + rows + "\n"
    )
    (tmp_path / "index.json").write_text(json.dumps({"examples": [{"name": "big", "file": "big.cif"}]}))
    monkeypatch.setattr(pymatgen.io.cif.CifParser, "__init__", lambda *a, **k: pytest.fail("pymatgen parsed it"))
    with pytest.raises(StructureError, match="3000 sites, more than the limit"):
        ExampleGallery(tmp_path).prepared("big")
