"""The explorer's physics view: the physics term of the crystal on screen (Born charges, modes, ε_ion) on a tiny
Born-charge model and nearest-neighbour springs (seconds, no SevenNet), its 3D views, its cache and its messages."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

pn = pytest.importorskip("panel")

from explorer.models import ModelSelector  # noqa: E402
from explorer.physics_scene import (  # noqa: E402
    N_FRAMES,
    born_document,
    drawn_sites,
    frame_phases,
    mode_displacements,
    mode_document,
)
from explorer.physics_tables import born_rows, mode_rows  # noqa: E402
from explorer.physics_view import BORN_VIEW, MODE_VIEW, PHYSICS_CACHE, PhysicsView  # noqa: E402
from explorer.scene import CAMERA  # noqa: E402
from explorer.testing import SpringForceField, tiny_born_model  # noqa: E402
from goectp.physics.predict import ionic_physics  # noqa: E402

CHARGES = {22: 2.5, 8: -1.25}


def rutile() -> Structure:
    return Structure(
        Lattice.tetragonal(4.6, 2.96),
        ["Ti", "Ti", "O", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.3, 0.3, 0], [0.7, 0.7, 0], [0.8, 0.2, 0.5], [0.2, 0.8, 0.5]],
    )


@pytest.fixture(scope="module")
def born():
    return tiny_born_model(CHARGES)


@pytest.fixture(scope="module")
def fc_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("phonons")


@pytest.fixture(scope="module")
def computed(born, fc_cache):
    """A view that computed rutile's physics term, and ``ionic_physics`` called directly with the same inputs."""
    springs = SpringForceField()
    view = PhysicsView(structure=rutile(), born_model=born, forces=springs, cache_dir=fc_cache)
    assert view.result is None and not view._button.disabled
    view.param.trigger("compute")  # not served: computed in this thread
    assert view.error == "" and view.result is not None and not view.busy
    direct = ionic_physics(rutile(), born_model=born, forces=springs, cache_dir=fc_cache)
    return view, direct


def test_tables_are_the_physics_term_of_the_crystal(computed):
    view, direct = computed
    rows = born_rows(view.result)
    assert [r["species"] for r in rows] == [s.specie.symbol for s in direct.cell]
    for r, z in zip(rows, direct.born_charges):
        assert r["mean"] == pytest.approx(np.trace(z) / 3, abs=1e-12)
        np.testing.assert_allclose(r["principal"], np.linalg.eigvalsh(0.5 * (z + z.T)), atol=1e-12)
        assert r["spread"] is None  # one model, no members
    assert sum(r["mean"] for r in rows) == pytest.approx(0, abs=1e-10)  # the acoustic sum rule shows in the table

    modes, shares = direct.modes, direct.modes.shares()
    table, left_out = mode_rows(view.result)
    assert left_out == 0 and len(table) == len(shares) == 3 * 6 - 3
    dominant = int(np.argmax(shares))
    assert table[0]["index"] == dominant == view.mode and table[0]["share"] == pytest.approx(shares.max())
    for r in table:
        i = r["index"]
        assert r["frequency_thz"] == pytest.approx(modes.frequency_thz[i])
        assert r["frequency_cm1"] == pytest.approx(modes.frequency_thz[i] * 33.35641)
        assert r["share"] == pytest.approx(shares[i], abs=1e-12)
        assert r["mode_charge"] == pytest.approx(np.linalg.norm(modes.mode_charge[i]))
        assert r["unstable"] == (modes.frequency_thz[i] < 0) and r["included"] == bool(modes.included[i])
    stable = [r["share"] for r in table if not r["unstable"]]
    assert stable == sorted(stable, reverse=True) and sum(stable) == pytest.approx(1.0)
    assert modes.num_unstable > 0 and all(r["unstable"] for r in table[-modes.num_unstable :])

    html = view._tables().object
    assert html.count("<tr data-site=") == 6 and html.count("<tr data-mode=") == len(shares)
    assert f"data-value='{rows[0]['mean']:.6f}'" in html
    assert html.count("unstable (ω² &lt; 0): left out") == modes.num_unstable
    comparison = view._comparison().object
    assert f"data-value='{direct.eps_mean:.6f}'" in comparison and f"{direct.eps_mean:.2f}" in comparison
    assert f"{modes.num_unstable} unstable mode(s)" in comparison
    status = view._status().object
    assert "e²/(ε₀Ω)" in status and "springs-demo-1" in status and re.search(r"computed in \d+\.\d s", status)


def test_the_dominant_mode_is_animated_back_and_forth(computed):
    view, direct = computed
    assert not view._mode_row.visible  # the animation's controls show with the animation only
    view.show = MODE_VIEW
    assert view._mode_row.visible
    i, masses = view.mode, direct.force_constants.masses
    u = view.displacements()
    expected = direct.modes.eigenvectors[i] / np.sqrt(masses)[:, None]  # e_m / √M_i, up to the scale
    np.testing.assert_allclose(u, expected * (view.amplitude / np.linalg.norm(expected, axis=1).max()), atol=1e-12)
    assert np.linalg.norm(u, axis=1).max() == pytest.approx(0.3)

    doc = view.document
    assert 'animate({"loop": "backAndForth"' in doc and "dataset.frames" in doc
    data = json.loads(re.search(r'addModelsAsFrames\(("(?:[^"\\]|\\.)*"),\s*"xyz"\)', doc).group(1))
    lines = data.strip().split("\n")
    sites, positions = drawn_sites(direct.cell)
    block = len(sites) + 2
    assert len(lines) == N_FRAMES * block  # one xyz block per frame
    frames = np.array(
        [
            [[float(x) for x in line.split()[1:]] for line in lines[k * block + 2 : (k + 1) * block]]
            for k in range(N_FRAMES)
        ]
    )
    first, last = frames[0] @ CAMERA, frames[-1] @ CAMERA  # back from the screen frame to the crystal's
    np.testing.assert_allclose(last - first, 2 * u[sites], atol=2e-4)  # sin φ from −1 to +1
    np.testing.assert_allclose(frames[N_FRAMES // 2] @ CAMERA, positions, atol=2e-4)  # the middle frame: at rest
    np.testing.assert_allclose(frame_phases(5), [-1, -np.sqrt(0.5), 0, np.sqrt(0.5), 1], atol=1e-12)

    view.amplitude = 0.5  # the animation follows the amplitude
    assert np.linalg.norm(view.displacements(), axis=1).max() == pytest.approx(0.5)
    other = next(r["index"] for r in mode_rows(view.result)[0] if r["index"] != i)
    view._select.value = other  # the mode selector picks which mode moves
    assert view.mode == other and view.document != doc
    view.param.update(show=BORN_VIEW, amplitude=0.3, mode=i)


def test_born_charges_are_drawn_as_ellipsoids_per_atom(computed):
    view, direct = computed
    view.show = BORN_VIEW
    sites, _ = drawn_sites(direct.cell)
    doc = view.document
    assert doc.count('addCustom({"vertexArr"') == len(
        sites
    )  # one ellipsoid per drawn atom (images on the faces included)
    assert doc.count('addCylinder({"start"') == 3 * len(sites)  # its principal axes
    cations = sum(np.trace(direct.born_charges[s]) > 0 for s in sites)
    assert doc.count('"color": "#2b6cb0", "opacity"') == cations
    assert doc.count('"color": "#c53030", "opacity"') == len(sites) - cations
    assert "goectp-physics-3d" in view._pane.object and 'addModelsAsFrames("' not in doc
    # a structure with no charge draws the atoms and no ellipsoid
    assert born_document(direct.cell, np.zeros((6, 3, 3))).count('addCustom({"vertexArr"') == 0
    assert mode_document(direct.cell, mode_displacements(np.zeros((6, 3)), np.ones(6))).count('addArrow({"start"') == 0


def test_the_result_is_cached_per_crystal_and_shown_at_once(computed, born, fc_cache):
    view, _ = computed
    springs = view.forces
    calls = springs.calls
    again = PhysicsView(structure=rutile(), born_model=born, forces=springs, cache_dir=fc_cache)
    assert again.cached and again.result is view.result and springs.calls == calls  # no force evaluation
    assert again._button.disabled and "from the cache (first computed in" in again._status().object
    other = rutile()
    other.perturb(0.05, min_distance=0.05)
    again.structure = other
    assert again.result is None and not again.cached and not again._button.disabled
    again.structure = rutile()
    assert again.cached and again.result is view.result


class OneCellAtATime(SpringForceField):
    """Springs, one displaced cell per batch; ``during(view)`` runs inside the force evaluation (what a user does
    while the computation runs)."""

    version = "springs-one-cell"

    def __init__(self, during=None, wait: float = 0.0) -> None:
        super().__init__(delay=wait, batch_atoms=6)  # rutile: 6 atoms
        self.during, self.view = during, None

    def __call__(self, atoms):
        assert len(atoms) == 1
        if self.during is not None and self.calls == 2:
            self.during(self.view)
        return super().__call__(atoms)


def test_progress_is_shown_and_cancel_stops_the_computation_without_caching(born, tmp_path):
    springs = OneCellAtATime(during=lambda view: view.param.trigger("cancel"))
    view = PhysicsView(structure=rutile(), born_model=born, forces=springs, cache_dir=tmp_path)
    springs.view = view
    seen = []
    view.param.watch(lambda e: seen.append(e.new), "progress")
    busy_text = []
    springs.during = lambda v: (busy_text.append(v._status()), v.param.trigger("cancel"))
    view.param.trigger("compute")  # not served: in this thread; Cancel pressed during the third batch
    assert view.result is None and not view.busy and view.error == ""
    total = seen[-1][1]
    assert view.cancelled == f"2 of {total} displaced cells" and seen[-3:] == [(0, total), (1, total), (2, total)]
    status = view._status()
    assert isinstance(status, pn.pane.Alert) and "Cancelled after 2 of" in status.object
    assert "nothing was cached" in status.object and not list(tmp_path.iterdir())
    (alert, bar) = busy_text[0].objects  # while busy: the progress in words and as a bar, and a Cancel button
    assert "Force constants: 2 of" in alert.object and "left" in alert.object and bar.value == 2
    assert not view._button.disabled and not view._cancel_button.visible
    springs.during = None  # press Compute again: it runs to the end and is cached
    view.param.trigger("compute")
    assert view.result is not None and view.cancelled == "" and view.progress[0] == view.progress[1] > 2
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_served_the_worker_reports_progress_to_the_session(born, tmp_path, monkeypatch):
    """The served path: the force constants in the worker thread, the view's progress updated from the event loop
    while it runs, the result applied at the end."""
    import asyncio

    import explorer.physics_view as physics_view

    monkeypatch.setattr(physics_view, "PROGRESS_INTERVAL", 0.02)
    springs = OneCellAtATime(wait=0.05)
    view = PhysicsView(structure=rutile(), born_model=born, forces=springs, cache_dir=tmp_path)
    seen = []
    view.param.watch(lambda e: seen.append(e.new), "progress")
    asyncio.run(view._compute_async())
    total = seen[-1][1]
    assert view.result is not None and not view.busy and total > 2
    partial = {done for done, t in seen if t == total and 0 < done < total}
    assert partial, f"no progress seen between the first and last cell: {seen}"
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_missing_born_model_is_said_plainly(tmp_path, monkeypatch):
    monkeypatch.setenv("GOECTP_ASSETS", str(tmp_path))
    view = PhysicsView(structure=rutile(), forces=SpringForceField(), cache_dir=None)
    assert view.model_missing and view._button.disabled
    status = view._status()
    assert isinstance(status, pn.pane.Alert) and "No Born-charge model is shipped yet" in status.object
    assert "born\\_charges.py" in status.object  # Markdown-escaped, still the training script's name
    view.param.trigger("compute")
    assert view.result is None and "physics" in view.error and "born-charges" in view.error


class Hostile(SpringForceField):
    version = "<img src=x onerror=alert(1)>"

    def __call__(self, atoms):
        raise ValueError("<script>alert(2)</script> [x](http://evil)")


def test_user_text_is_escaped(born, selector):
    view = PhysicsView(structure=rutile(), born_model=born, forces=Hostile(), cache_dir=None)
    view.param.trigger("compute")
    assert "<script>" in view.error  # the message itself is kept …
    shown = view._status().object  # … and shown as text
    assert "<script>" not in shown and "&lt;script&gt;" in shown and "\\[x\\]" in shown
    ok = PhysicsView(structure=rutile(), born_model=born, forces=SpringForceField(), cache_dir=None)
    ok.forces.version = "<img src=x onerror=alert(1)>"
    ok.param.trigger("compute")
    assert "<img" not in ok._status().object and "&lt;img" in ok._status().object
    ok.models = selector("<b>x</b>", "plain")
    html = ok._comparison().object
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


@pytest.fixture(scope="module")
def selector():
    """``selector(name, kind)``: a ModelSelector named ``name`` on an ensemble of one member, hidden 16: a sum member
    (ε∞ + ionic networks, ``kind='sum'``), a plain network of the total ε (``kind='plain'``) or of ε ionic."""
    import goectp
    from goectp.checkpoint import checkpoint_dict, load_checkpoint, sum_checkpoint_dict
    from goectp.models import Ensemble

    def part(target: str, seed: int) -> dict:
        torch.manual_seed(seed)
        net = goectp.build_model(hidden=16, num_rbf=16).double()
        net.set_target_stats(3.0, 4.0 if target == "electronic" else 6.0)
        train = {"target": target, "split_seed": 0, "max_abs": None}
        return checkpoint_dict(net, train_config=train, split_seed=0, data_sha256="abc")

    def make(name: str, kind: str = "sum") -> ModelSelector:
        buffer = io.BytesIO()
        ckpt = (
            sum_checkpoint_dict(part("electronic", 1), part("ionic", 2))
            if kind == "sum"
            else part({"plain": "total"}.get(kind, kind), 3)
        )
        torch.save(ckpt, buffer)
        member = load_checkpoint(buffer.getvalue(), name=f"{kind}.pt").double()
        return ModelSelector(models={name: Ensemble([member], [kind])}, model_name=name)

    return make


def test_physics_next_to_the_models_ionic_part_and_dft(computed, selector):
    view, _ = computed
    summed = selector("sum")
    parts = summed.predict_parts([rutile()])
    view.param.update(models=summed, reference={"ionic": np.diag([80.0, 80.0, 160.0])})
    model, what = view.model_ionic()
    np.testing.assert_allclose(model, parts["ionic"][0, 0], atol=1e-12)
    assert what == "the ionic part of 1 of the 1 members"
    html = view._comparison().object
    assert f"ε̄_ion model = <b>{np.trace(model) / 3:.2f}</b>" in html and "ε̄_ion DFT = <b>106.67</b>" in html
    assert {"physics-eps-ion", "model-eps-ion", "dft-eps-ion"} <= set(re.findall(r'id="([\w-]+)"', html))
    view.models = selector("ion", "ionic")  # a model of the ionic part alone: its prediction is the ionic part
    model, what = view.model_ionic()
    np.testing.assert_allclose(model, view.models.predict_one(rutile())[0], atol=1e-12)
    assert what == "the model ion (target ε ionic)" and "model-eps-ion" in view._comparison().object
    view.models = selector("plain", "plain")
    assert view.model_ionic() == (None, "the model plain predicts ε total with no ionic part apart")
    assert "no ionic part apart" in view._comparison().object
    view.param.update(models=None, reference=None)


def test_the_physics_models_total_for_the_crystal_on_screen(computed, selector, monkeypatch):
    """The physics model's ε: the shipped rule on the selected ensemble's mean, ε∞ and the view's ε_ion; only for the
    model the rule corrects; the learned ε kept, and why said, when the term is not usable (too large, unstable)."""
    from dataclasses import replace
    from types import SimpleNamespace

    from explorer import physics_total
    from goectp.physics.config import PhysicsConfig

    eps_inf, eps_ion = np.diag([5.0, 5.0, 7.0]), np.diag([40.0, 40.0, 90.0])
    monkeypatch.setattr(physics_total, "shared_electronic_prediction", lambda s, name: eps_inf)
    config = PhysicsConfig(  # fitted, as it were, on the springs' ε_ion: the force field the view computed with
        rule="blend", scale=0.8, weight=0.5, total_model="sum", max_sites=10, force_field=SpringForceField.version
    )
    monkeypatch.setattr(physics_total, "shipped_physics_config", lambda: config)
    stable = SimpleNamespace(cell=[0] * 6, modes=SimpleNamespace(num_unstable=0, softest_thz=2.0), tensor=eps_ion)
    plain = selector("plain", "plain")
    eps, _, how = physics_total.corrected_total(stable, rutile(), plain)
    assert eps is None and how.endswith("ensemble mean: select it above")
    summed = selector("sum")
    total = summed.predict([rutile()])[0][0]
    eps, learned, how = physics_total.corrected_total(stable, rutile(), summed)
    np.testing.assert_allclose(eps, total + 0.5 * (eps_inf + 0.8 * eps_ion - total), atol=1e-12)
    np.testing.assert_allclose(learned, total, atol=1e-12)
    assert how.startswith("rule 'blend' (w = 0.5, s = 0.8)")
    unstable = SimpleNamespace(cell=[0] * 6, modes=SimpleNamespace(num_unstable=2, softest_thz=2.0), tensor=eps_ion)
    eps, learned, how = physics_total.corrected_total(unstable, rutile(), summed)
    np.testing.assert_allclose(eps, total, atol=1e-12)
    assert how.startswith("physics term not used (2 unstable mode(s))")
    gate = (0.0,) * 8  # w = σ(0) = 1/2 whatever the crystal, size kept
    monkeypatch.setattr(physics_total, "shipped_physics_config", lambda: replace(config, rule="gated", gate=gate))
    eps, learned, how = physics_total.corrected_total(unstable, rutile(), summed)  # gated: stable modes still count
    np.testing.assert_allclose(eps, total + 0.5 * (eps_inf + 0.8 * eps_ion - total), atol=1e-12)
    assert how.startswith("rule 'gated' (a weight per crystal, s = 0.8; 2 unstable mode(s) left out of the sum)")
    monkeypatch.setattr(physics_total, "shipped_physics_config", lambda: config)
    too_big = SimpleNamespace(cell=[0] * 12, modes=SimpleNamespace(num_unstable=0, softest_thz=2.0), tensor=eps_ion)
    assert "12 atoms > 10" in physics_total.corrected_total(too_big, rutile(), summed)[2]
    view, _ = computed  # the view shows it under its own id, with the learned ε̄ next to it
    view.models = summed
    eps, learned, how = view.corrected_total()
    html = view._comparison().object
    assert f"ε̄ physics model = <b>{np.trace(eps) / 3:.2f}</b> (learned: {np.trace(learned) / 3:.2f}" in html
    view.models = plain
    assert "select it above" in view._comparison().object and "physics-model-eps-mean" in view._comparison().object
    view.models = summed  # a rule fitted on another force field's ε_ion is not applied to this one's
    monkeypatch.setattr(physics_total, "shipped_physics_config", lambda: replace(config, force_field="sevennet-l3i5"))
    eps, learned, how = view.corrected_total()
    assert eps is None and how == (
        f"the physics model's rule is fitted on sevennet-l3i5 force constants, not {SpringForceField.version}"
    )
    assert "fitted on sevennet-l3i5" in view._comparison().object
    view.models = None
    default = PhysicsView(structure=rutile())  # no force field given: the physics model's own, as the app passes it
    assert default._forces_name() == physics_total.shipped_force_field() == "sevennet-l3i5"


def test_the_physics_models_sigma_for_the_crystal_on_screen(computed, selector, monkeypatch):
    """ε̄ ± σ of the physics model: the selected ensemble's calibrated σ of ε̄ times the shipped factor of the
    crystal's group (term used / not), as `goectp predict --model physics` gives it; no ± without a calibration."""
    from types import SimpleNamespace

    from explorer import physics_total
    from goectp.physics.config import PhysicsConfig
    from goectp.uncertainty import Calibration, attach_calibration

    monkeypatch.setattr(physics_total, "shared_electronic_prediction", lambda s, name: np.diag([5.0, 5.0, 7.0]))
    config = PhysicsConfig(
        rule="blend",
        scale=0.8,
        weight=0.5,
        total_model="sum",
        max_sites=10,
        sigma_scale=(0.5, 3),
        force_field=SpringForceField.version,
    )
    monkeypatch.setattr(physics_total, "shipped_physics_config", lambda: config)
    summed = selector("sum")
    modes = SimpleNamespace(num_unstable=0, softest_thz=2.0)
    stable = SimpleNamespace(cell=[0] * 6, modes=modes, tensor=np.diag([40.0, 40.0, 90.0]))
    assert physics_total.corrected_sigma(stable, rutile(), summed) is None  # no calibration: no σ to scale
    floor = {"form": "scale+relative", "s": 1.0, "c": 0.1}  # one member: σ = 0.1 |ε̄| (no spread)
    calibration = Calibration({"tensor": floor, "eps_mean": floor, "anisotropy": {"form": "propagated", "k": 1.0}}, {})
    attach_calibration(summed.model, calibration)
    learned = summed.statistics([rutile()])["eps_mean"][0]
    assert physics_total.corrected_sigma(stable, rutile(), summed) == pytest.approx(0.5 * 0.1 * abs(learned))
    too_big = SimpleNamespace(cell=[0] * 12, modes=modes, tensor=stable.tensor)  # no term: the default's σ
    assert physics_total.corrected_sigma(too_big, rutile(), summed) == pytest.approx(0.1 * abs(learned))
    soft = SimpleNamespace(num_unstable=2, softest_thz=2.0)  # no term for its unstable modes: the other factor
    unstable = SimpleNamespace(cell=[0] * 6, modes=soft, tensor=stable.tensor)
    assert physics_total.corrected_sigma(unstable, rutile(), summed) == pytest.approx(3 * 0.1 * abs(learned))
    view, _ = computed
    view.models = summed
    eps, _, _ = view.corrected_total()
    sigma = physics_total.corrected_sigma(view.result, view.structure, summed)
    assert f"ε̄ physics model = <b>{np.trace(eps) / 3:.2f}</b> ± {sigma:.2f} (learned" in view._comparison().object
    view.models = None


def test_the_physics_downloads_carry_the_term_the_view_shows(computed, selector, monkeypatch):
    """*Physics JSON* and *Modes CSV*: links carrying the files; the JSON holds the view's ε_ion, every optical mode
    (shares of the included ones summing to 1), the charges per site and, with the default selected, the physics
    model's ε and σ; the CSV one row per optical mode."""
    import base64
    import io
    import json

    import pandas as pd

    from explorer import physics_total
    from goectp.physics.config import PhysicsConfig

    def download(html: str, css_class: str) -> str:
        match = re.search(rf"class='{css_class}' download='[^']+' href='data:[^;]+;charset=utf-8;base64,([^']+)'", html)
        assert match, f"no {css_class} link"
        return base64.b64decode(match.group(1)).decode()

    view, _ = computed
    phys = view.result
    n_modes = 3 * len(phys.cell) - 3
    document = json.loads(download(view._comparison().object, "goectp-physics-json"))
    np.testing.assert_allclose(document["eps_ion"], phys.tensor, atol=1e-12)
    assert document["formula"] == "TiO2" and document["eps_ion_mean"] == pytest.approx(phys.eps_mean)
    assert len(document["modes"]) == n_modes and len(document["born_charges"]) == len(phys.cell)
    shares = sum(m["share"] for m in document["modes"] if m["included"])
    assert shares == pytest.approx(1.0) and "physics_model" not in document
    np.testing.assert_allclose(document["born_charges"][0]["tensor"], phys.born_charges[0], atol=1e-12)
    table = pd.read_csv(io.StringIO(download(view._comparison().object, "goectp-modes-csv")))
    assert len(table) == n_modes and set(table["formula"]) == {"TiO2"}
    monkeypatch.setattr(physics_total, "shared_electronic_prediction", lambda s, name: np.diag([5.0, 5.0, 7.0]))
    config = PhysicsConfig(  # fitted, as it were, on the springs' ε_ion: the force field the view computed with
        rule="blend", scale=0.8, weight=0.5, total_model="sum", max_sites=10, force_field=SpringForceField.version
    )
    monkeypatch.setattr(physics_total, "shipped_physics_config", lambda: config)
    view.models = selector("sum")
    try:
        eps, learned, how = view.corrected_total()
        model = json.loads(download(view._comparison().object, "goectp-physics-json"))["physics_model"]
        np.testing.assert_allclose(model["eps"], eps, atol=1e-12)
        np.testing.assert_allclose(model["learned_eps"], learned, atol=1e-12)
        assert model["how"] == how and model["eps_mean_sigma"] is None  # no calibration on this selector
    finally:
        view.models = None


def test_the_explorer_has_the_physics_tab_wired_to_the_loader(computed, born, fc_cache, selector):
    from explorer.app import PHYSICS_TAB, Explorer
    from explorer.loader import DatasetIndex, StructureLoader

    loader = StructureLoader(dataset=DatasetIndex("/nonexistent"))
    loader.set_structure(rutile(), "rutile", "python")
    app = Explorer(
        models=selector("sum"),
        loader=loader,
        physics={"born_model": born, "forces": SpringForceField(), "cache_dir": fc_cache},
    )
    tabs = app.main_area()
    assert "high-κ" in tabs._names[PHYSICS_TAB] and app.physics.structure is loader.structure
    assert app.physics.cached  # rutile's physics term was computed by an earlier test of this process
    loader.set_structure(Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]), "MgO", "python")
    assert app.physics.structure is loader.structure and app.physics.result is None
    assert PHYSICS_CACHE.get(app.physics._key(rutile())) is not None


def test_the_explorer_computes_the_physics_term_with_the_physics_models_force_field(selector, monkeypatch):
    """The tab's force field is the shipped physics model's (so its corrected ε is the model's own); an explicit
    one wins."""
    from dataclasses import replace

    from explorer import physics_total
    from explorer.app import Explorer
    from goectp.physics.config import PhysicsConfig

    assert physics_total.shipped_force_field() == physics_total.shipped_physics_config().force_field
    config = replace(PhysicsConfig(rule="blend", scale=0.8, weight=0.5), force_field="sevennet-l3i5")
    monkeypatch.setattr(physics_total, "shipped_physics_config", lambda: config)
    app = Explorer(models=selector("sum"))
    assert app.physics.forces == "sevennet-l3i5" and app.physics.forces_label() == "SevenNet-l3i5"
    assert Explorer(models=selector("sum"), physics={"forces": "chgnet"}).physics.forces == "chgnet"


@pytest.mark.slow
def test_the_shipped_born_model_and_sevennet_on_rocksalt_mgo(tmp_path):
    """The real path: the shipped Born-charge ensemble (its member spread in the table) and, with no force field
    given, the physics model's own (SevenNet-l3i5)."""
    pytest.importorskip("sevenn")
    from explorer.physics_view import shipped_born_path

    assert shipped_born_path().is_dir()  # shipped in assets/physics: its absence is a failure, not a skip
    mgo = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    view = PhysicsView(structure=mgo, cache_dir=tmp_path)
    assert not view.model_missing and not view._button.disabled
    view.param.trigger("compute")
    assert view.error == "" and len(view.result.cell) == 2  # the primitive cell of the conventional one
    rows = born_rows(view.result)
    assert [r["species"] for r in rows] == ["Mg", "O"] and 1.5 < rows[0]["mean"] < 2.5  # DFT: Z*(Mg) ≈ 1.96
    assert all(r["spread"] is not None for r in rows)  # an ensemble: its members' spread
    assert view.result.modes.num_unstable == 0 and 3 < view.result.eps_mean < 20  # DFT ε̄_ion of MgO: about 6.5
    assert "SevenNet-l3i5" in view._status().object and "shipped Born-charge ensemble" in view._status().object
