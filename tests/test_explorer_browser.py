"""End-to-end test: ``panel serve explorer/app.py`` driven by headless Chromium (Playwright).

Starts the server on a free loopback port, opens the app, checks the 3D view rendered from the locally served
3Dmol.js, uploads a CIF, moves a rotation slider and reads the equivariance errors from the page, checks the
screening map rendered, uploads a bad file, and asserts that no request left loopback. Screenshots go to
``test-artifacts/`` only (the tests never rewrite tracked files); ``python scripts/refresh_screenshots.py`` copies
them to ``docs/screenshots/`` for the README.

Chromium missing: skipped on a user's machine, a failure in CI (``CI`` set).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from explorer.room import stop_server

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("GOECTP_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "test-artifacts"
#: Screenshots that scripts/refresh_screenshots.py copies from test-artifacts/ to docs/screenshots/.
DOC_SCREENSHOTS = ("explorer_full", "structure_3d", "tensor", "equivariance", "screening_map", "sidebar")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _require(condition: bool, message: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def playwright_api():
    _require(CHROMIUM.exists(), f"{CHROMIUM} not found: install Debian's chromium (./install.sh does, as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _require(False, "the playwright Python package is not installed")
    return sync_playwright


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _assets_for_test(tmp: Path) -> Path:
    """The repository's assets, plus generated screening files when the real ones are not there yet."""
    assets = tmp / "assets"
    assets.mkdir()
    repo = ROOT / "assets"
    for sub in ("models", "examples"):
        if (repo / sub).exists():
            (assets / sub).symlink_to(repo / sub)
    if (repo / "screening" / "screening_results.csv").exists():
        (assets / "screening").symlink_to(repo / "screening")
    else:
        from explorer.testing import example_structures, write_demo_screening

        write_demo_screening(assets / "screening", example_structures(repo / "examples"))
    return assets


@pytest.fixture(scope="module")
def server(tmp_path_factory, playwright_api):
    tmp = tmp_path_factory.mktemp("explorer-server")
    port = _free_port()
    env = {**os.environ, "GOECTP_ASSETS": str(_assets_for_test(tmp)), "PYTHONPATH": str(ROOT)}
    log = open(tmp / "panel.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "panel",
            "serve",
            "explorer/app.py",
            "tests/explorer_physics_app.py",  # the same app, its physics view on a tiny Born model and springs
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            "--allow-websocket-origin",
            f"127.0.0.1:{port}",
            "--liveness",
            "--warm",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"panel serve exited early:\n{(tmp / 'panel.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/liveness", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"panel serve not ready after 120 s:\n{(tmp / 'panel.log').read_text()[-3000:]}")
            time.sleep(0.5)
        print(f"[browser test] panel serve ready (warmed up) after {time.time() - deadline + 120:.1f} s", flush=True)
        yield base
    finally:
        stop_server(proc)
        log.close()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(tmp / "panel.log", ARTIFACTS / "panel-serve.log")


def _error_values(page) -> tuple[float, float]:
    frame = page.locator("#equivariance-error-frame").get_attribute("data-value")
    backbone = page.locator("#equivariance-error-backbone").get_attribute("data-value")
    return float(frame), float(backbone)


def _rotation_text(page) -> str:
    return page.locator("#rotation-matrix").inner_text()


def _wait_for_change(page, read, old, what: str, timeout: float = 30.0) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        new = read(page)
        if new != old:
            return new
        page.wait_for_timeout(200)
    raise AssertionError(f"{what} did not change within {timeout:.0f} s")


def _shot(target, name: str, **kwargs) -> None:
    """Screenshot a page or locator into test-artifacts/ (never into the tracked docs/screenshots/)."""
    ARTIFACTS.mkdir(exist_ok=True)
    target.screenshot(path=str(ARTIFACTS / f"{name}.png"), **kwargs)


def _cif(name: str) -> bytes:
    return (ROOT / "assets" / "examples" / name).read_bytes()


def _open_card(page, css_class: str, root: str = "") -> None:
    """Open a view built on demand (press its toggle, ``explorer.live.add_on_demand``); it arrives from the server."""
    page.locator(f"{root} .{css_class}-toggle button".strip()).first.click()


def _log(msg: str, start: list[float] = []) -> None:  # noqa: B006 - a deliberate timer
    if not start:
        start.append(time.time())
    print(f"[browser test {time.time() - start[0]:6.1f} s] {msg}", flush=True)


def test_explorer_end_to_end_offline(server, playwright_api):
    requests: list[str] = []
    _log("server ready")
    with playwright_api() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"{server}/app", wait_until="domcontentloaded", timeout=90_000)

            # the Crystal tab's checks are built when their button is first pressed; then the check reports its errors
            page.locator(".goectp-card-equivariance-toggle button").wait_for(timeout=90_000)
            assert page.locator("#equivariance-error-frame").count() == 0
            _open_card(page, "goectp-card-equivariance")
            page.locator("#equivariance-error-frame[data-value]").wait_for(timeout=90_000)
            frame_err, backbone_err = _error_values(page)
            assert frame_err < 1e-5 < 1e-3 < backbone_err

            _log("errors read")
            # the 3D view drew with the locally served 3Dmol.js
            view = page.frame_locator("iframe.goectp-3d")
            view.locator("body[data-rendered='1']").wait_for(timeout=30_000)
            assert view.locator("canvas").count() >= 1
            # MSAA off exactly when WebGL is software-rendered (it costs seconds of CPU there; free on a GPU)
            antialias, renderer = view.locator("body").evaluate("b => [b.dataset.antialias, window.goectpRenderer]")
            software = any(w in renderer.lower() for w in ("swiftshader", "llvmpipe", "softpipe", "software"))
            assert antialias == ("0" if software else "1"), (antialias, renderer)

            _log("3D view rendered")
            page.wait_for_timeout(1000)
            _shot(page, "explorer_full", full_page=True)
            # the screening map is not built until its tab is shown; then it renders (Bokeh canvases) over its table
            assert page.locator(".goectp-screening-plots").count() == 0
            page.locator(".bk-tab", has_text="Screening map").click()
            page.locator(".goectp-screening-plots canvas").first.wait_for(timeout=120_000)
            assert page.locator(".goectp-screening-plots canvas").count() >= 1
            page.locator(".goectp-screening-table").wait_for(timeout=10_000)
            page.wait_for_timeout(1500)
            _shot(page.locator(".goectp-card-screening"), "screening_map")
            page.locator(".bk-tab", has_text="Crystal").click()
            page.locator(".goectp-upload input[type=file]").wait_for(timeout=10_000)

            _log("map rendered")
            # upload a CIF: the summary, the 3D view and the check follow
            rot_before = _rotation_text(page)
            old_errors = _error_values(page)
            page.locator(".goectp-upload input[type=file]").set_input_files(
                files=[
                    {
                        "name": "uploaded_BaTiO3.cif",
                        "mimeType": "chemical/x-cif",
                        "buffer": _cif("BaTiO3_tetragonal.cif"),
                    }
                ]
            )
            page.get_by_text("Loaded uploaded_BaTiO3.cif: BaTiO3").wait_for(timeout=30_000)
            assert page.get_by_text("BaTiO3 — uploaded_BaTiO3.cif").count() == 1  # the structure summary
            _wait_for_change(page, _error_values, old_errors, "equivariance errors after the upload")
            view.locator("body[data-rendered='1']").wait_for(timeout=30_000)

            _log("CIF uploaded")
            # move the rotation-angle slider with the mouse: R changes, the errors are re-measured
            handle = page.locator(".goectp-slider-angle .noUi-handle")
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2 + 45, box["y"] + box["height"] / 2, steps=6)
            page.mouse.up()
            rot_after = _wait_for_change(page, _rotation_text, rot_before, "the rotation matrix")
            page.wait_for_timeout(500)
            frame_err, backbone_err = _error_values(page)
            assert frame_err < 1e-5, f"f(RX) != R f(X) Rᵀ in the page: {frame_err}"
            assert backbone_err > 1e-3, f"the backbone alone looks equivariant in the page: {backbone_err}"

            _log("slider moved")
            # random rotation + the rotated view: the crystal and its ellipsoid are redrawn
            page.locator(".goectp-random-rotation button").click()
            _wait_for_change(page, _rotation_text, rot_after, "the rotation after 'Random rotation'")
            page.get_by_text("rotated (R X)").first.click()
            page.wait_for_timeout(800)
            view.locator("body[data-rendered='1']").wait_for(timeout=30_000)
            page.wait_for_timeout(800)
            assert _error_values(page)[0] < 1e-5

            _log("random rotation")
            # exports: the PNG of the 3D view (3Dmol's pngURI, in the browser) and the tensor CSV
            with page.expect_download(timeout=30_000) as png:
                view.locator("#save-png").click()
            png_path = ARTIFACTS / "goectp-structure.png"
            png.value.save_as(png_path)
            assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            with page.expect_download(timeout=30_000) as csv:
                page.locator("a.goectp-export-csv").click()
            csv_path = ARTIFACTS / "goectp-tensor.csv"
            csv.value.save_as(csv_path)
            header, *rows = csv_path.read_text().strip().splitlines()
            assert header.startswith("formula,component") and len(rows) == 9 and rows[0].startswith("BaTiO3,xx")
            _log("exports downloaded")

            # screenshots of each view
            _shot(page.locator(".goectp-card-3d"), "structure_3d")
            _shot(page.locator(".goectp-card-tensor"), "tensor")
            _shot(page.locator(".goectp-card-equivariance"), "equivariance")
            _shot(page.locator("#sidebar"), "sidebar")

            _log("screenshots")
            # a bad file: a clear message, the previous structure stays, the app keeps working
            page.locator(".goectp-upload input[type=file]").set_input_files(
                files=[{"name": "broken.cif", "mimeType": "chemical/x-cif", "buffer": b"data_x\nnot a crystal\n"}]
            )
            error = page.get_by_text("Could not load the structure.")
            error.wait_for(timeout=30_000)
            assert page.get_by_text("broken.cif: could not parse").count() >= 1
            assert page.get_by_text("BaTiO3 — uploaded_BaTiO3.cif").count() == 1  # still the previous structure
            _shot(page.locator(".goectp-load-error"), "upload_error")
            _shot(page, "explorer_end", full_page=True)
        finally:
            browser.close()

    outside = sorted(
        {
            u
            for u in requests
            if urlparse(u).scheme in ("http", "https", "ws", "wss") and urlparse(u).hostname not in LOOPBACK
        }
    )
    assert requests and not outside, f"requests left loopback: {outside}"


def _p1_cif(n: int, seed: int = 0) -> bytes:
    """A P1 CIF of ``n`` random O sites in a 60 Å cube (n = 20,000: 0.7 MB, under the 2 MB upload cap)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    head = (
        "data_big\n_cell_length_a 60\n_cell_length_b 60\n_cell_length_c 60\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n"
        " _symmetry_equiv_pos_as_xyz\n 'x, y, z'\nloop_\n _atom_site_label\n _atom_site_type_symbol\n"
        " _atom_site_fract_x\n _atom_site_fract_y\n _atom_site_fract_z\n _atom_site_occupancy\n"
    )
    rows = "".join(f" O{i} O {x:.5f} {y:.5f} {z:.5f} 1\n" for i, (x, y, z) in enumerate(rng.random((n, 3))))
    return (head + rows).encode()


def _get_seconds(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as resp:
        assert resp.status == 200
        resp.read()
    return time.perf_counter() - start


@pytest.mark.timeout(400)
def test_hostile_names_and_search_text_stay_text(server, playwright_api):
    """An uploaded file named like an HTML tag (valid and invalid CIF) and script tags typed into the dataset
    search: no dialog ever opens, the text shows literally."""
    dialogs: list[str] = []
    name = "<img src=x onerror=alert(1)>.cif"
    with playwright_api() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1400})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{server}/app", wait_until="domcontentloaded", timeout=90_000)
            upload = page.locator(".goectp-upload input[type=file]")
            upload.wait_for(state="attached", timeout=90_000)
            upload.set_input_files(
                files=[{"name": name, "mimeType": "chemical/x-cif", "buffer": _cif("MgO_rocksalt.cif")}]
            )
            page.get_by_text(f"Loaded {name}: MgO").wait_for(timeout=60_000)
            assert page.get_by_text(f"MgO — {name}").count() == 1  # the structure summary, as text
            upload.set_input_files(
                files=[{"name": name, "mimeType": "chemical/x-cif", "buffer": b"data_x\nnot a crystal\n"}]
            )
            page.get_by_text(f"{name}: could not parse").wait_for(timeout=60_000)
            _open_card(page, "goectp-dataset-search")  # built on demand
            page.wait_for_timeout(1500)
            search = page.get_by_placeholder("e.g. TiO2")
            if search.count():  # the dataset browser is on when the shared data is there
                search.fill("<script>alert(8)</script>")
                search.press("Enter")
                page.get_by_text("records match '<script>alert(8)</script>'").wait_for(timeout=180_000)
            page.wait_for_timeout(1500)
            _shot(page.locator("#sidebar"), "hostile_names")
        finally:
            browser.close()
    assert dialogs == [], f"user text ran as script: {dialogs}"


def test_heavy_upload_does_not_stall_other_sessions(server, playwright_api):
    """One session uploads a 20,000-site CIF (0.7 MB): refused before pymatgen parses it, and off the event loop,
    so a second client's GET /app is as fast as without it (before: 63 s, the length of the parse)."""
    baseline = _get_seconds(f"{server}/app")
    with playwright_api() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1400})
            page.goto(f"{server}/app", wait_until="domcontentloaded", timeout=90_000)
            upload = page.locator(".goectp-upload input[type=file]")
            upload.wait_for(state="attached", timeout=90_000)
            page.get_by_text("Loaded TiO2 rutile").first.wait_for(timeout=90_000)  # the session is live
            upload.set_input_files(
                files=[{"name": "big20k.cif", "mimeType": "chemical/x-cif", "buffer": _p1_cif(20_000)}]
            )
            page.wait_for_timeout(300)  # the file is on its way over the websocket
            during = _get_seconds(f"{server}/app")
            page.get_by_text("big20k.cif: the file lists 20000 sites").wait_for(timeout=60_000)
        finally:
            browser.close()
    print(f"GET /app: {baseline:.2f} s alone, {during:.2f} s during the heavy upload")
    assert during < baseline + 8.0, f"GET /app took {during:.1f} s during another session's upload"


# ------------------------------------------------------------------------------------------------ teaching cards
#: The teaching cards and what must not overlap inside them: every widget (select, number box, button, slider,
#: check box) and every result block (the matrices with their titles, the ✓/✗ badges, the one-line notes).
TEACHING_CARDS = (".goectp-card-equivariance", ".goectp-card-cell-choice")
_BOXES_JS = """card => {
    const picked = [];
    const walk = root => {
        root.querySelectorAll('*').forEach(el => {
            const tag = el.tagName.toLowerCase(), cls = el.classList;
            let kind = null;
            if (tag === 'select' || tag === 'button' || cls.contains('noUi-target')) kind = 'widget';
            else if (tag === 'input' && el.type !== 'hidden' && el.type !== 'file') kind = 'widget';
            else if (tag === 'table') { picked.push(['matrix', el.parentElement]); }
            else if (tag === 'span' && /^(equivariance-error|cell-drift)/.test(el.id)) kind = 'badge';
            else if (cls.contains('goectp-note')) kind = 'note';
            else if (tag === 'iframe') kind = 'view';
            if (kind) picked.push([kind, el]);
            if (el.shadowRoot) walk(el.shadowRoot);
        });
    };
    if (card.shadowRoot) walk(card.shadowRoot);
    walk(card);
    return picked.map(([kind, el]) => {
        const r = el.getBoundingClientRect();
        const name = kind + ':' + (el.id || el.getAttribute('aria-label') || el.textContent.trim().slice(0, 30));
        return [name, r.left, r.top, r.right, r.bottom];
    }).filter(b => b[3] - b[1] > 0 && b[4] - b[2] > 0);
}"""


def overlaps(boxes: list[list]) -> list[tuple[str, str]]:
    """Pairs of boxes ``[name, left, top, right, bottom]`` whose interiors intersect (1 px slack), neither inside
    the other (a check box inside its label row is not an overlap)."""

    def inside(a: list, b: list) -> bool:
        return a[1] >= b[1] - 1 and a[2] >= b[2] - 1 and a[3] <= b[3] + 1 and a[4] <= b[4] + 1

    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            meet = min(a[3], b[3]) - max(a[1], b[1]) > 1 and min(a[4], b[4]) - max(a[2], b[2]) > 1
            if meet and not inside(a, b) and not inside(b, a):
                found.append((a[0], b[0]))
    return found


def test_overlap_detector() -> None:
    assert overlaps([["a", 0, 0, 10, 10], ["b", 5, 5, 15, 15]]) == [("a", "b")]
    assert overlaps([["a", 0, 0, 10, 10], ["b", 10, 0, 20, 10], ["c", 0, 11, 10, 20]]) == []  # touching is fine
    assert overlaps([["row", 0, 0, 100, 10], ["box", 2, 2, 8, 8]]) == []  # nested


@pytest.mark.timeout(400)
@pytest.mark.parametrize("width", [1280, 1600])
def test_teaching_cards_do_not_overlap(server, playwright_api, width):
    """At projector-like widths no widget of the equivariance and change-of-cell cards overlaps another widget,
    a matrix or a badge (at 1600 px the cell card's dropdown and seed box used to cover the U matrix), on the
    Crystal tab and on the Teach tab."""
    with playwright_api() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.goto(f"{server}/app", wait_until="domcontentloaded", timeout=90_000)
            for tab in ("Crystal", "Teach"):
                if tab == "Teach":
                    page.locator(".bk-tab", has_text="Teach").click()
                root = page.locator(".goectp-teach" if tab == "Teach" else ".goectp-crystal")
                if tab == "Crystal":  # built on demand there
                    root.locator(".goectp-card-equivariance-toggle button").wait_for(timeout=90_000)
                    for card in ("goectp-card-equivariance", "goectp-card-cell-choice"):
                        _open_card(page, card, ".goectp-crystal")
                root.locator("#equivariance-error-frame[data-value]").wait_for(timeout=90_000)
                root.locator("#cell-drift-paper[data-value]").wait_for(timeout=90_000)
                page.wait_for_timeout(1000)
                for card in TEACHING_CARDS:
                    target = root.locator(card)
                    boxes = target.evaluate(_BOXES_JS)
                    kinds = {b[0].split(":")[0] for b in boxes}
                    assert {"widget", "matrix", "badge"} <= kinds, (card, boxes)
                    assert not overlaps(boxes), f"{tab} tab, {card} at {width} px: {overlaps(boxes)}"
                    if card.endswith("cell-choice"):  # the paper's-setting row says what its numbers are
                        assert "run here with sum pooling" in target.locator(".goectp-note").inner_text()
                    _shot(target, f"{tab.lower()}_{card.split('-card-')[1]}_{width}")
                    print(f"{tab} {card} at {width} px: {len(boxes)} boxes, no overlap")
        finally:
            browser.close()


# ------------------------------------------------------------------------------------------------ physics tab
def _viewer_state(view) -> dict:
    return view.locator("body").evaluate(
        "b => ({kind: b.dataset.kind, frames: Number(b.dataset.frames), shapes: Number(b.dataset.shapes),"
        " animated: b.dataset.animated, frame: window.goectpViewer ? window.goectpViewer.getFrame() : null})"
    )


@pytest.mark.timeout(400)
def test_physics_tab_shows_born_charges_and_the_dominant_mode_moving(server, playwright_api):
    """The *Why high-κ?* tab at 1280 px (tiny Born model, springs): on its button, ε̄_ion, the Born-charge and mode
    tables, the Born-charge ellipsoids in 3D, then the dominant mode animated by 3Dmol's frames; nothing overlaps,
    nothing leaves loopback."""
    requests: list[str] = []
    with playwright_api() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1900})  # tall: the whole card in a shot
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"{server}/app", wait_until="domcontentloaded", timeout=90_000)  # no Born model shipped here
            page.locator(".bk-tab", has_text="Why high-κ?").click()
            page.get_by_text("No Born-charge model is shipped yet").wait_for(timeout=90_000)
            assert page.locator(".goectp-physics-compute button").is_disabled()
            page.goto(f"{server}/explorer_physics_app", wait_until="domcontentloaded", timeout=90_000)
            page.get_by_text("Loaded TiO2 rutile").first.wait_for(timeout=90_000)
            page.locator(".bk-tab", has_text="Why high-κ?").click()
            card = page.locator(".goectp-card-physics")
            card.locator(".goectp-physics-compute button").click()
            # while the force constants run (0.6 s per displaced cell here): the progress in words, a bar, Cancel
            card.locator(".goectp-physics-busy").get_by_text("displaced cells").wait_for(timeout=60_000)
            assert card.locator(".goectp-physics-progress").first.is_visible()
            assert card.locator(".goectp-physics-cancel button").is_visible()
            card.locator("#physics-eps-mean[data-value]").wait_for(timeout=120_000)
            assert not card.locator(".goectp-physics-cancel button").is_visible()
            assert float(card.locator("#physics-eps-mean").get_attribute("data-value")) > 0
            assert card.locator("#physics-born-table tbody tr").count() == 6  # rutile's primitive cell
            assert card.locator("#physics-mode-table tbody tr").count() == 15  # 3N − 3 optical modes
            assert card.get_by_text("ε_ion = e²/(ε₀Ω)").count() == 1  # what the physics term is, and its cost
            assert card.get_by_text("displaced cells); cached for this crystal").count() == 1
            assert card.locator(".goectp-physics-compute button").is_disabled()  # computed: nothing more to ask

            view = page.frame_locator("iframe.goectp-physics-3d")
            view.locator("body[data-rendered='1'][data-kind='born']").wait_for(timeout=60_000)
            born = _viewer_state(view)
            assert born["shapes"] >= 4 * 6 and born["frames"] <= 1 and born["animated"] == "0", (
                born
            )  # ellipsoids + axes
            page.wait_for_timeout(800)
            _shot(card, "physics_born_1280")

            card.get_by_text("mode, animated").click()
            view.locator("body[data-rendered='1'][data-kind='mode']").wait_for(timeout=60_000)
            first = _viewer_state(view)
            assert first["frames"] == 13 and first["animated"] == "1" and first["shapes"] >= 1, first  # + arrows
            seen = {first["frame"]}
            for _ in range(20):  # the frames advance (back and forth)
                page.wait_for_timeout(150)
                seen.add(_viewer_state(view)["frame"])
            assert len(seen) >= 3, seen

            boxes = card.evaluate(_BOXES_JS)
            kinds = {b[0].split(":")[0] for b in boxes}
            assert {"widget", "matrix", "view"} <= kinds, boxes
            assert not overlaps(boxes), f"physics card at 1280 px: {overlaps(boxes)}"
            _shot(card, "physics_mode_1280")
        finally:
            browser.close()
    outside = sorted(
        {
            u
            for u in requests
            if urlparse(u).scheme in ("http", "https", "ws", "wss") and urlparse(u).hostname not in LOOPBACK
        }
    )
    assert requests and not outside, f"requests left loopback: {outside}"
