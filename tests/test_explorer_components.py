"""Unit tests of the explorer's components: their state, not their pixels (the browser test does pixels)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bokeh.models import ColumnDataSource

pn = pytest.importorskip("panel")

from explorer.equivariance import EquivarianceCheck  # noqa: E402
from explorer.geometry import (  # noqa: E402
    ellipsoid_geometry,
    orthogonal_matrix,
    random_rotation,
    rotate_structure,
    rotation_to_axis_angle,
    summarize_tensor,
)
from explorer.loader import DatasetIndex, ExampleGallery, StructureLoader, guess_format  # noqa: E402
from explorer.models import SINGLE_MEMBER, ModelSelector  # noqa: E402
from explorer.scene import scene_view, structure_scene, viewer_document  # noqa: E402
from explorer.screening import ScreeningData, ScreeningMap  # noqa: E402
from explorer.tensor_view import TensorEllipsoid  # noqa: E402
from explorer.testing import write_demo_screening  # noqa: E402
from explorer.viewer import CANONICAL, ORIGINAL, ROTATED, StructureViewer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "assets" / "examples"


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny_ensemble():
    """Two untrained GoeCTP members, hidden 16 (positive-definite head): fast, as equivariant as a trained one."""
    import torch

    import goectp

    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        members.append(
            goectp.build_model("goectp", hidden=16, num_rbf=16, k_neighbors=8, positive_definite=True).eval()
        )
    return goectp.Ensemble(members, ["tiny0", "tiny1"]).eval()


@pytest.fixture()
def models(tiny_ensemble):
    return ModelSelector(models={"tiny": tiny_ensemble}, model_name="tiny")


@pytest.fixture(scope="module")
def gallery():
    g = ExampleGallery(EXAMPLES)
    if not g.names:
        pytest.fail("assets/examples/index.json is missing: run scripts/build_examples.py")
    return g


@pytest.fixture()
def loader(gallery):
    return StructureLoader(gallery=gallery, dataset=DatasetIndex(Path("/nonexistent")))


def cif_text(structure) -> str:
    from pymatgen.io.cif import CifWriter

    relabelled = structure.copy()
    relabelled.relabel_sites()
    return str(CifWriter(relabelled))


# ---------------------------------------------------------------------------------------------------- gallery
def test_gallery_examples_parse_with_their_space_groups(gallery):
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    index = json.loads((EXAMPLES / "index.json").read_text())["examples"]
    assert len(index) >= 10
    names = {e["name"] for e in index}
    for wanted in (
        "SrTiO3 cubic",
        "BaTiO3 tetragonal",
        "TiO2 rutile",
        "ZnO wurtzite",
        "SiO2 alpha-quartz",
        "CaCO3 calcite",
        "MoS2 2H",
        "HfO2 monoclinic",
    ):
        assert wanted in names
    for entry in index:
        s = gallery.structure(entry["name"])
        assert s.composition.reduced_formula == entry["formula"]
        number = int(re.search(r"#(\d+)", entry["spacegroup"]).group(1))
        assert SpacegroupAnalyzer(s, symprec=0.01).get_space_group_number() == number
        assert entry["reference"]


# ---------------------------------------------------------------------------------------------------- loader
def test_loading_a_cif_updates_the_structure(loader, gallery):
    rutile = gallery.structure("TiO2 rutile")
    bto = gallery.structure("BaTiO3 tetragonal")
    loader.set_structure(rutile, "rutile", "python")
    events = []
    loader.param.watch(lambda e: events.append(e.new), "structure")
    assert loader.load_bytes(cif_text(bto).encode(), "my_batio3.cif")
    assert loader.structure.composition.reduced_formula == "BaTiO3"
    assert loader.source == "upload" and loader.label == "my_batio3.cif" and loader.error == ""
    assert loader.info["spacegroup"].startswith("P4mm")
    assert len(events) == 1


def test_poscar_and_extxyz_uploads(loader, gallery):
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.vasp import Poscar

    zno = gallery.structure("ZnO wurtzite")
    assert loader.load_bytes(str(Poscar(zno)).encode(), "POSCAR")
    assert loader.structure.composition.reduced_formula == "ZnO"
    buf = io.StringIO()
    write(buf, AseAtomsAdaptor.get_atoms(gallery.structure("GaN wurtzite")), format="extxyz")
    assert loader.load_bytes(buf.getvalue().encode(), "gan.extxyz")
    assert loader.structure.composition.reduced_formula == "GaN"
    np.testing.assert_allclose(loader.structure.lattice.abc, gallery.structure("GaN wurtzite").lattice.abc)


@pytest.mark.parametrize(
    "payload, filename, phrase",
    [
        (b"data_broken\n_cell_length_a 3.0\nthis is not a cif\n", "broken.cif", "could not parse"),
        (b"", "empty.cif", "empty"),
        (b"\x00\x01\x02\xff\xfe" * 20, "binary.cif", "binary"),
        (b"hello", "notes.txt", "file format"),
    ],
)
def test_a_bad_file_sets_an_error_and_keeps_the_old_structure(loader, payload, filename, phrase):
    before = loader.structure
    assert not loader.load_bytes(payload, filename)
    assert loader.structure is before
    assert filename in loader.error and phrase in loader.error.lower()
    view = loader._status()
    assert "goectp-load-error" in view.css_classes and "alert-danger" in view.object
    # the app keeps working: the next good file loads
    assert loader.load_bytes(cif_text(before).encode(), "again.cif") and loader.error == ""


def test_oversized_and_too_many_sites_are_refused(loader, gallery):
    before = loader.structure
    loader.max_upload_bytes = 1000
    big = cif_text(gallery.structure("CaCO3 calcite")).encode()
    assert len(big) > 1000
    assert not loader.load_bytes(big, "calcite.cif")
    assert "MB" in loader.error and "limit" in loader.error and loader.structure is before
    loader.max_upload_bytes = 10_000_000
    huge = gallery.structure("MgO rock salt") * (4, 4, 4)  # 512 sites > MAX_SITES
    assert not loader.load_bytes(cif_text(huge).encode(), "mgo_supercell.cif")
    assert "sites" in loader.error and loader.structure is before


def test_guess_format():
    assert guess_format("a.cif") == "cif" and guess_format("POSCAR") == "poscar"
    assert guess_format("x.vasp") == "poscar" and guess_format("t.extxyz") == "extxyz"
    assert guess_format("CONTCAR_relaxed") == "poscar" and guess_format("a.pdf") is None


@pytest.mark.data
def test_dataset_browser_finds_and_loads_records_with_dft_tensors(shared_data_dir, models):
    index = DatasetIndex(shared_data_dir)
    assert not index.loaded
    hits = index.search("TiO2")
    assert index.loaded and hits and all(f == "TiO2" for _, f, _ in hits[:3])
    assert index.search("O2Ti")[0][1] == "TiO2"  # formula in any order
    key = hits[0][0]
    assert index.search(key)[0][0] == key
    loader = StructureLoader(gallery=ExampleGallery(EXAMPLES), dataset=index)
    assert loader.load_dataset_record(key)
    assert loader.source == "dataset" and loader.reference["id"] == key
    np.testing.assert_allclose(
        loader.reference["total"], loader.reference["electronic"] + loader.reference["ionic"], atol=1e-6
    )
    panel = TensorEllipsoid(models=models, structure=loader.structure, reference=loader.reference)
    table = panel.table()
    assert "DFT" in table and "error (pred − DFT)" in table
    dft_eigs = np.linalg.eigvalsh(loader.reference[models.target])
    np.testing.assert_allclose(table["DFT"].iloc[:3].astype(float), dft_eigs)
    n, how = panel.refractive_index()
    np.testing.assert_allclose(n, np.sqrt(np.linalg.eigvalsh(loader.reference["electronic"])))
    assert "electronic" in how
    exported = json.loads(panel.export_json())
    assert exported["dft"]["id"] == key
    assert exported["max_abs_error"] == pytest.approx(np.abs(panel.mean - panel.dft_tensor).max())


# ---------------------------------------------------------------------------------------------------- geometry
def test_rotation_round_trip_and_random_rotations():
    rng = np.random.default_rng(3)
    for _ in range(20):
        rot = random_rotation(rng)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)
        theta, phi, angle = rotation_to_axis_angle(rot)
        np.testing.assert_allclose(orthogonal_matrix(theta, phi, angle), rot, atol=1e-9)
    mirror = orthogonal_matrix(30, 40, 50, reflect=True)
    assert np.linalg.det(mirror) == pytest.approx(-1.0)


def test_ellipsoid_geometry_matches_the_eigen_decomposition():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    tensor = a @ a.T + 2 * np.eye(3)
    lam, vec = np.linalg.eigh(tensor)
    center = np.array([1.0, 2.0, 3.0])
    ell = ellipsoid_geometry(tensor, center=center, size=2.0)
    np.testing.assert_allclose(ell.eigenvalues, lam)
    np.testing.assert_allclose(ell.semi_axes, 2.0 * lam / lam.max())  # semi-axes ∝ eigenvalues
    for i in range(3):  # principal axes = eigenvectors (up to sign)
        assert abs(ell.axes[:, i] @ vec[:, i]) == pytest.approx(1.0)
    shape_inv2 = vec @ np.diag(1.0 / ell.semi_axes**2) @ vec.T
    d = ell.vertices - center
    np.testing.assert_allclose(np.einsum("pi,ij,pj->p", d, shape_inv2, d), 1.0, atol=1e-10)
    # extreme points along each principal axis are at ± s_i v_i
    for i in range(3):
        proj = d @ vec[:, i]
        assert proj.max() == pytest.approx(ell.semi_axes[i], rel=2e-2)
    np.testing.assert_allclose(np.linalg.norm(ell.normals, axis=1), 1.0)
    assert ell.faces.max() < len(ell.vertices)
    s = summarize_tensor(tensor)
    assert s.eps_mean == pytest.approx(np.trace(tensor) / 3)
    assert s.anisotropy == pytest.approx(lam.max() / lam.min())


def test_the_refractive_index_is_goectps_one_definition_and_zero_for_a_negative_eigenvalue():
    """n = √λ of ε∞; λ < 0 has no real index: n = 0 in the explorer as in ``goectp predict`` (finite JSON)."""
    from goectp.tensor_stats import refractive_indices

    rot = np.linalg.qr(np.random.default_rng(4).normal(size=(3, 3)))[0]
    tensor = rot @ np.diag([-1.0, 4.0, 9.0]) @ rot.T
    n = summarize_tensor(tensor).refractive_indices()
    np.testing.assert_allclose(n, [0.0, 2.0, 3.0], atol=1e-12)
    np.testing.assert_array_equal(n, refractive_indices(summarize_tensor(tensor).tensor))


# ---------------------------------------------------------------------------------------------------- models
def test_model_selector_member_mode_and_cache(models, gallery, tiny_ensemble):
    s = gallery.structure("TiO2 rutile")
    mean, std = models.predict_one(s)
    assert np.any(std > 0) and mean.shape == (3, 3)
    members = models.predict_members([s])[:, 0]
    np.testing.assert_allclose(mean, members.mean(axis=0))
    models.param.update(mode=SINGLE_MEMBER, member=1)
    m1, s1 = models.predict_one(s)
    np.testing.assert_allclose(m1, members[1], atol=1e-10)
    assert np.all(s1 == 0)
    assert "member 1" in models.description and "CPU" in models.description.upper()
    with pytest.raises(ValueError, match="'ModelSelector.member' must be at most 1, not 5"):  # 2 members: 0 and 1
        models.member = 5


def test_demo_model_is_labelled_when_no_model_is_shipped(monkeypatch, tmp_path):
    monkeypatch.setenv("GOECTP_ASSETS", str(tmp_path))
    selector = ModelSelector()
    assert selector.is_demo and "UNTRAINED DEMO MODEL" in selector.description
    assert "alert-warning" in selector._status().object


# ---------------------------------------------------------------------------------------------------- equivariance
def test_rotation_parameters_update_the_reported_equivariance_error(models, gallery):
    check = EquivarianceCheck(models=models, structure=gallery.structure("HfO2 monoclinic"))
    first = check.error_frame
    assert first < 1e-5
    assert check.error_backbone > 1e-3  # the backbone alone is visibly not equivariant
    rot_before = check.rotation.copy()
    check.param.update(axis_theta=100.0, axis_phi=200.0, angle=-140.0)
    assert not np.allclose(check.rotation, rot_before)
    np.testing.assert_allclose(check.rotation, orthogonal_matrix(100.0, 200.0, -140.0))
    assert check.error_frame < 1e-5 and check.error_backbone > 1e-3
    np.testing.assert_allclose(check.rf_x, check.rotation @ check.f_x @ check.rotation.T)
    check.reflect = True
    assert np.linalg.det(check.rotation) == pytest.approx(-1.0)
    assert check.error_frame < 1e-5 and check.error_backbone > 1e-3
    check.reflect = False
    drawn = check.random_rotation()
    np.testing.assert_allclose(check.rotation, drawn, atol=1e-9)  # sliders moved to the drawn rotation
    assert check.error_frame < 1e-5
    html = check._results().object
    value = float(re.search(r'id="equivariance-error-frame" data-value="([^"]+)"', html).group(1))
    assert value == pytest.approx(check.error_frame, rel=1e-5, abs=1e-20)


def test_identity_rotation_gives_zero_backbone_error(models, gallery):
    check = EquivarianceCheck(models=models, structure=gallery.structure("ZnO wurtzite"), angle=0.0)
    assert check.error_frame == 0.0 and check.error_backbone == 0.0


# ---------------------------------------------------------------------------------------------------- viewer
def test_viewer_renders_offline_with_frame_axes_and_ellipsoid(models, gallery):
    s = gallery.structure("TiO2 rutile")
    viewer = StructureViewer(structure=s, models=models, script="inline")
    doc = viewer.document
    assert "$3Dmol" in doc and "addCustom" in doc and "addArrow" in doc
    assert "cdn.jsdelivr" not in doc and not re.search(r"<script[^>]+src=[\"']https?://", doc)
    assert [a[3] for a in viewer.scene.arrows] == ["F₁", "F₂", "F₃"]
    assert viewer.scene.n_atoms >= len(s)
    np.testing.assert_allclose(viewer.displayed_tensor, models.predict_one(s)[0])
    assert 'class="goectp-3d"' in viewer._pane.object and "srcdoc=" in viewer._pane.object
    served = StructureViewer(structure=s, script="url")
    assert "components/explorer.viewer/ThreeDmolAsset/__javascript__/static/vendor" in served.document
    assert "$3Dmol=" not in served.document  # not inlined
    exported = viewer._download_html().getvalue()
    assert exported.startswith("<!DOCTYPE html>") and "$3Dmol" in exported


def test_ellipsoid_turns_rigidly_with_the_crystal(models, gallery):
    s = gallery.structure("HfO2 monoclinic")
    rot = orthogonal_matrix(70.0, 20.0, 110.0)
    viewer = StructureViewer(structure=s, models=models, script="inline", rotation=rot, orientation=ORIGINAL)
    original = viewer.displayed_tensor.copy()
    viewer.orientation = ROTATED
    np.testing.assert_allclose(viewer.displayed_tensor, rot @ original @ rot.T, atol=1e-8)
    np.testing.assert_allclose(
        viewer.scene.ellipsoid.axes @ np.diag(viewer.scene.ellipsoid.eigenvalues) @ viewer.scene.ellipsoid.axes.T,
        rot @ original @ rot.T,
        atol=1e-8,
    )
    shown = viewer.displayed_structure()
    np.testing.assert_allclose(shown.lattice.matrix, s.lattice.matrix @ rot.T)


def test_canonical_orientation_shows_lattice_h_and_identity_frame(models, gallery):
    from goectp.frame import polar_frame

    s = rotate_structure(gallery.structure("SiO2 alpha-quartz"), orthogonal_matrix(30, 60, 75))
    viewer = StructureViewer(structure=s, models=models, script="inline", orientation=CANONICAL)
    shown = viewer.displayed_structure()
    _, h = polar_frame(s.lattice.matrix.T)
    np.testing.assert_allclose(shown.lattice.matrix.T, h, atol=1e-10)
    for i, (start, end, _, _) in enumerate(viewer.scene.arrows):
        direction = (end - start) / np.linalg.norm(end - start)
        np.testing.assert_allclose(direction, np.eye(3)[i], atol=1e-10)


def test_viewer_display_buttons_and_flags_agree(models, gallery):
    """One button group for bonds / frame F / ε ellipsoid: pressing redraws without them; setting a flag in code
    presses its button."""
    viewer = StructureViewer(structure=gallery.structure("MgO rock salt"), models=models, script="inline")
    assert viewer._display.value == ["bonds", "frame F", "ε ellipsoid"] and viewer.scene.arrows
    viewer._display.value = ["bonds"]
    assert (viewer.show_bonds, viewer.show_frame, viewer.show_ellipsoid) == (True, False, False)
    assert not viewer.scene.arrows and viewer.scene.ellipsoid is None and viewer.displayed_tensor is None
    viewer.show_ellipsoid = True
    assert viewer._display.value == ["bonds", "ε ellipsoid"] and viewer.scene.ellipsoid is not None
    assert "3D structure" in viewer._pane.object and "polar frame F" in viewer._pane.object  # title and legend


def test_viewer_without_3dmol_shows_the_install_instruction(monkeypatch, gallery):
    import explorer.scene

    monkeypatch.setattr(explorer.scene, "THREEDMOL_JS", Path("/nonexistent/3Dmol-min.js"))
    viewer = StructureViewer(structure=gallery.structure("MgO rock salt"))
    assert "install.sh" in viewer._pane.object and "install.sh" in viewer.error


def test_scene_bonds_and_cell(gallery):
    scene = structure_scene(gallery.structure("SrTiO3 cubic"))
    assert len(scene.cell_edges) == 12
    # 8 Sr corners + 1 Ti + 6 O face centres
    assert scene.n_atoms == 15
    lengths = [np.linalg.norm(b - a) for a, b, _ in scene.bonds]
    assert min(lengths) == pytest.approx(3.9053 / 4, rel=1e-6)  # half of the Ti–O bond
    assert not structure_scene(gallery.structure("SrTiO3 cubic"), bonds=False).bonds
    doc = viewer_document(scene_view(scene), "inline")
    assert doc.count("addCylinder") >= len(scene.bonds)


@pytest.mark.slow
def test_crystal_toolkit_scene_is_converted(gallery):
    from explorer.scene import crystal_toolkit_scene

    scene = crystal_toolkit_scene(gallery.structure("SrTiO3 cubic"))
    assert scene.n_atoms >= 5 and len(scene.cell_edges) >= 12
    assert {a[0] for a in scene.atoms} >= {"Sr", "Ti", "O"}


# ---------------------------------------------------------------------------------------------------- tensor panel
def test_tensor_panel_table_and_exports(models, gallery):
    s = gallery.structure("BaTiO3 tetragonal")
    panel = TensorEllipsoid(models=models, structure=s, label="bto")
    lam = np.linalg.eigvalsh(panel.mean)
    table = panel.table()
    np.testing.assert_allclose(table["predicted"].iloc[:3], lam)
    assert table["predicted"].iloc[3] == pytest.approx(lam.mean())
    assert table["predicted"].iloc[4] == pytest.approx(lam.max() / lam.min())
    assert "DFT" in table and table["DFT"].isna().all()
    csv = pd.read_csv(io.StringIO(panel.export_csv()))
    assert len(csv) == 9 and list(csv["component"])[:3] == ["xx", "xy", "xz"]
    np.testing.assert_allclose(csv["predicted"].to_numpy().reshape(3, 3), panel.mean)
    np.testing.assert_allclose(csv["std"].to_numpy().reshape(3, 3), panel.std)
    data = json.loads(panel.export_json())
    np.testing.assert_allclose(data["prediction"]["eigenvalues"], lam)
    assert data["formula"] == "BaTiO3" and data["target"] == models.target
    n, how = panel.refractive_index()
    assert n == pytest.approx(np.sqrt(lam.mean())) and "upper bound" in how
    ell = panel.ellipsoid(size=1.0)
    np.testing.assert_allclose(ell.eigenvalues, lam)


# ---------------------------------------------------------------------------------------------------- screening
@pytest.fixture()
def screening_dir(tmp_path, gallery):
    structures = [gallery.structure(n) for n in gallery.names]
    write_demo_screening(tmp_path, structures)
    return tmp_path


def test_map_table_shows_the_physics_column_of_the_high_k_list(screening_dir, loader):
    """`goectp screen --physics-top N` wrote ε̄ with the physics term into top_high_k.csv: the map's rows carry it
    (blank elsewhere), the table shows it; an unreadable list leaves the map working and says why."""
    top = pd.DataFrame(
        {"id": ["demo-1", "demo-2"], "eps_mean_physics": [41.5, 12.25], "physics_used": [True, False], "rank": [1, 2]}
    )
    top.to_csv(screening_dir / "top_high_k.csv", index=False)
    smap = ScreeningMap(data=ScreeningData(screening_dir, pool_dir=screening_dir), loader=loader)
    rows = smap.data.results.set_index("id")
    assert rows.loc["demo-1", "eps_mean_physics"] == 41.5 and rows["eps_mean_physics"].notna().sum() == 2
    assert "eps_mean_physics" in smap._table_frame().columns
    (screening_dir / "top_high_k.csv").write_bytes(b"\x00\xff not a csv \x00")
    data = ScreeningData(screening_dir, pool_dir=screening_dir)
    assert data.available and "eps_mean_physics" not in data.results.columns
    assert "top_high_k.csv" in data.physics_problem
    assert "top_high_k.csv" in ScreeningMap(data=data, loader=loader).message


def test_map_filters_and_selection_populate_the_table(screening_dir, loader):
    smap = ScreeningMap(data=ScreeningData(screening_dir, pool_dir=screening_dir), loader=loader)
    results = smap.data.results
    assert len(smap.filtered) == len(results)
    smap.min_band_gap = float(results["band_gap"].median())
    assert len(smap.filtered) == int((results["band_gap"] >= smap.min_band_gap).sum())
    smap.min_band_gap = 0.0
    smap.sources = ["demo-a"]
    assert set(smap.filtered["source"]) == {"demo-a"}
    smap.sources = ["demo-a", "demo-b"]
    smap.search = "TiO"
    assert all("tio" in f.lower() for f in smap.filtered["formula"])
    smap.search = ""
    smap.__panel__()  # builds the map: one figure over the candidates' source
    plots = smap._plots
    assert plots.source in plots.figure.select({"type": ColumnDataSource})
    assert plots.colorbar.title == "eps_mean_std" and plots.points.glyph.y == "eps_mean"
    assert all(item.visible for item in plots.eps_only)  # the Pareto front and the top 10 on the ε̄ map
    smap.y_axis = "anisotropy"  # the switch: the same points, α on y, coloured by α's std
    assert plots.points.glyph.y == plots.background.glyph.y == "anisotropy"
    assert plots.colorbar.title == "anisotropy_std" and "α" in plots.figure.yaxis.axis_label
    assert not any(item.visible for item in plots.eps_only)
    assert ("std", "@{anisotropy_std}{0.00}") in plots.hover.tooltips
    smap.color_by = "score"  # recoloured in place: the colour column, the bar's title and its range
    assert plots.colorbar.title == "score"
    np.testing.assert_array_equal(plots.source.data["color_anisotropy"], smap.filtered["score"].to_numpy(float))
    assert plots.mapper.high == pytest.approx(smap.filtered["score"].max())
    smap.param.update(color_by="ensemble std", y_axis="eps_mean")
    plots.source.selected.indices = [0, 2, 3]  # a box/lasso selection (the browser's, in either map)
    assert list(smap.selected["id"]) == list(smap.filtered["id"].iloc[[0, 2, 3]])
    assert list(smap._table.value["id"]) == list(smap.selected["id"])
    rows = pd.read_csv(io.StringIO(smap.export_csv()), dtype={"id": str})
    assert list(rows["id"]) == list(smap.selected["id"])
    records = json.loads(smap.export_json())
    assert [r["id"] for r in records] == list(smap.selected["id"])
    # a tap (single point) loads that structure into the loader
    plots.source.selected.indices = [1]
    key = smap.filtered["id"].iloc[1]
    assert smap.picked == key and loader.source == "screening" and key in loader.label
    assert loader.structure.composition.reduced_formula == smap.filtered["formula"].iloc[1]
    # the last candidate has no stored structure: a clear message, nothing changes
    before = loader.structure
    missing = results["id"].iloc[-1]
    assert not smap.pick(missing) and "not in top_structures" in smap.message and loader.structure is before


def test_map_html_export_is_offline(screening_dir):
    html = ScreeningMap(data=ScreeningData(screening_dir)).export_html()
    assert "Bokeh" in html and not re.search(r"<(script|link)[^>]+(src|href)=[\"']https?://", html)


def test_missing_screening_results_show_a_message(tmp_path):
    smap = ScreeningMap(data=ScreeningData(tmp_path))
    assert "No screening results found" in smap.data.problem
    assert len(smap.filtered) == 0
    layout = smap.__panel__()
    assert isinstance(layout[0], pn.pane.Alert) and "No screening results found" in layout[0].object


def test_damaged_screening_files_give_messages_not_a_broken_tab(screening_dir, loader):
    from explorer.screening import STRUCTURES_FILE, TRAINING_FILE

    (screening_dir / TRAINING_FILE).write_bytes(b'"unclosed,quote\n\x00\xff' * 3)
    (screening_dir / STRUCTURES_FILE).write_bytes(b"not gzip at all")
    data = ScreeningData(screening_dir)
    assert data.available and data.problem == "" and TRAINING_FILE in data.training_problem
    smap = ScreeningMap(data=data, loader=loader)
    assert TRAINING_FILE in smap.message
    smap.__panel__()
    before = loader.structure
    assert not smap.pick(str(data.results["id"].iloc[0]))
    assert f"could not read {STRUCTURES_FILE}" in smap.message and loader.structure is before


def test_malformed_screening_results_name_the_missing_columns(tmp_path):
    pd.DataFrame({"id": ["a"], "formula": ["X"]}).to_csv(tmp_path / "screening_results.csv", index=False)
    assert "lacks the columns" in ScreeningData(tmp_path).problem


# ---------------------------------------------------------------------------------------------------- app
def test_app_wires_the_components(models, gallery, screening_dir, loader):
    from explorer.app import Explorer

    app = Explorer(models=models, loader=loader, screening=ScreeningMap(data=ScreeningData(screening_dir)))
    template = app.template()
    assert template.title == "GoeCTP Explorer"
    loader.load_example("HfO2 monoclinic")
    for component in (app.tensor, app.equivariance, app.viewer):
        assert component.structure is loader.structure
    assert app.equivariance.error_frame < 1e-5
    app.equivariance.angle = 33.0
    np.testing.assert_allclose(app.viewer.rotation, app.equivariance.rotation)
    app.screening.pick("demo-0")
    assert (
        app.tensor.structure.composition.reduced_formula
        == gallery.structure(gallery.names[0]).composition.reduced_formula
    )


def test_screening_map_is_built_only_when_its_tab_is_shown(models, gallery, screening_dir, loader):
    """Every visitor pays for the crystal tab only; the map's plots are built the first time its tab is shown, and
    a point picked on the map brings the crystal tab back with the picked structure."""
    from bokeh.document import Document
    from bokeh.models import Plot

    from explorer.app import CRYSTAL_TAB, SCREENING_TAB, Explorer

    default = Explorer(models=models, loader=loader)
    default.template()
    assert default._screening is None  # not even the map's filters and table exist before its tab is shown
    app = Explorer(models=models, loader=loader, screening=ScreeningMap(data=ScreeningData(screening_dir)))
    doc = Document()
    app.template().server_doc(doc)
    assert app._tabs.active == CRYSTAL_TAB and app._tabs.dynamic
    assert not [m for m in doc.models if isinstance(m, Plot)]  # no map plots yet
    # the Crystal tab's checks: built when their button is first pressed, shown below it, hidden by a second press
    crystal = app._tabs.objects[CRYSTAL_TAB]
    toggle = crystal.select(pn.widgets.Toggle)[-1]
    n_objects = len(crystal.objects)
    assert app.cell_choice._view is None and "goectp-card-cell-choice-toggle" in toggle.css_classes
    toggle.value = True
    assert app.cell_choice._view is not None and len(crystal.objects) == n_objects + 1
    shown = crystal.objects[crystal.objects.index(toggle) + 1]
    assert shown.visible and toggle.label.startswith("▾") and "goectp-card-cell-choice" in shown.css_classes
    toggle.value = False
    assert not shown.visible and len(crystal.objects) == n_objects + 1  # hidden, not built again
    assert "candidates)" in app._tabs._names[SCREENING_TAB]
    app._tabs.active = SCREENING_TAB
    assert len([m for m in doc.models if isinstance(m, Plot)]) == 1  # built on first show: one map, ε̄/α switch
    app.screening.pick("demo-0")
    assert app._tabs.active == CRYSTAL_TAB
    assert app.tensor.structure is loader.structure


def test_sessions_share_the_ood_flag_and_the_paper_setting_predictions(gallery, monkeypatch):
    """A second session on a shipped model reuses the first one's OOD flag and *change of cell* predictions."""
    import goectp.api as api
    from explorer.cell_choice import CellChoiceCheck

    s = gallery.structure(gallery.names[0])
    first = ModelSelector(model_name="fast")
    assert first.shared_key is not None and first.calibration is not None
    check1 = CellChoiceCheck(models=first, structure=s)
    check1.update()
    flag1 = first.ood_one(s)
    calls: list[int] = []
    real = api.graphs_for
    monkeypatch.setattr(api, "graphs_for", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = ModelSelector(model_name="fast")
    check2 = CellChoiceCheck(models=second, structure=s)
    check2.update()
    assert second.ood_one(s) == flag1
    np.testing.assert_array_equal(check2.paper_x, check1.paper_x)
    np.testing.assert_array_equal(check2.shipped_ux, check1.shipped_ux)
    assert calls == [], "the second session rebuilt graphs that the first one had predicted"
    assert check2._paper_model() is check1._paper_model()  # one paper-setting copy per process


def test_shipped_eps_inf_model_gives_the_refractive_index_in_the_tensor_panel(gallery):
    """With the shipped ``electronic`` model the panel labels its tensor ε∞ and gives n = √λ of the prediction."""
    from goectp.api import available_models

    assert "electronic" in available_models()  # shipped in assets/models: its absence is a failure, not a skip
    selector = ModelSelector(model_name="electronic")
    assert selector.target == "electronic"
    panel = TensorEllipsoid(models=selector, structure=gallery.structure("SrTiO3 cubic"))
    n, how = panel.refractive_index()
    np.testing.assert_allclose(n, np.sqrt(np.linalg.eigvalsh(panel.mean)), rtol=1e-10)
    assert "predicted electronic" in how and 1.5 < float(np.mean(n)) < 4.0  # SrTiO3: DFT n ≈ 2.4
    assert json.loads(panel.export_json())["target"] == "electronic"


def test_components_render_outside_a_server_as_in_a_notebook(models, gallery, screening_dir, loader):
    """Each component builds its Bokeh models on its own (as in Jupyter); the 3D view then inlines 3Dmol.js."""
    from bokeh.document import Document

    s = gallery.structure("GaN wurtzite")
    viewer = StructureViewer(structure=s, models=models)
    assert "var $3Dmolpromise = Promise.resolve()" in viewer.document  # inlined: no server to load it from
    components = [
        models,
        loader,
        viewer,
        TensorEllipsoid(models=models, structure=s),
        EquivarianceCheck(models=models, structure=s),
        ScreeningMap(data=ScreeningData(screening_dir), loader=loader),
    ]
    for component in components:
        root = pn.panel(component).get_root(Document())
        assert len(list(root.references())) > 3
    viewer_root = pn.panel(viewer).get_root(Document())
    texts = [getattr(m, "text", "") or "" for m in viewer_root.references()]
    assert any("goectp-3d" in t and "srcdoc" in t for t in texts)


def test_shipped_screening_results_name_the_model_that_made_them(tmp_path):
    from explorer.paths import screening_dir as shipped_screening_dir
    from goectp.registry import model_aliases

    data = ScreeningData(shipped_screening_dir())
    # matched by checkpoint sha256, an alias named first, then the ensemble it points to: the shipped tables were
    # screened with today's default, the 25-member `combined`
    assert model_aliases()["default"] == "combined"
    label = "the `default` ensemble (`combined`)"
    assert data.available and data.model_label() == label
    assert f"Screened with {label} on 20" in data.caption()
    summary = json.loads((shipped_screening_dir() / "screening_summary.json").read_text())
    summary["provenance"]["model_sha256"] = "0" * 64
    (tmp_path / "screening_summary.json").write_text(json.dumps(summary))
    (tmp_path / "screening_results.csv").write_text((shipped_screening_dir() / "screening_results.csv").read_text())
    assert ScreeningData(tmp_path).model_label() == "a model not shipped here (1 checkpoint)"
    caption = ScreeningMap(data=data).__panel__()[0]  # shown above the map
    assert isinstance(caption, pn.pane.Markdown) and caption.object == data.caption()
    # how to read σ: the screening model's own ±2σ coverage, from the model menu; a generic band without one
    from goectp.catalog import model_info

    coverage = model_info("default").coverage
    assert f"±2σ covers {100 * coverage:.1f} % of held-out DFT values" in ScreeningMap(data=data).score_explanation()
    unknown = ScreeningMap(data=ScreeningData(tmp_path))
    assert unknown.data.model_name is None and "90-97 %" in unknown._coverage_text()


def test_change_of_cell_leaves_the_shipped_setting_unchanged_and_moves_the_paper_setting(models, gallery):
    from explorer.cell_choice import CHANGES, CellChoiceCheck

    models.precision = "float64"
    check = CellChoiceCheck(models=models, structure=gallery.structure("GaN wurtzite"))
    assert check.drift_shipped is None  # nothing computed before the card is shown
    html = pn.panel(check).get_root()  # first display computes
    assert html is not None and check.drift_shipped is not None
    paper = []
    for change in CHANGES:
        check.change = change
        assert check.error == ""
        assert check.drift_shipped < 1e-6, change
        paper.append(check.drift_paper)
    assert max(paper) > 1e-2  # sum pooling over a supercell, the input cell's frame: the paper setting drifts
    shown = check._results().object
    assert 'id="cell-drift-shipped"' in shown and "unchanged" in shown and "drifts" in shown


def test_equivariance_card_layout_is_built_once(models, gallery):
    check = EquivarianceCheck(models=models, structure=gallery.structure("ZnO wurtzite"))
    watchers = len(check.param.watchers.get("angle", {}).get("value", []))
    first = check.__panel__()
    assert check.__panel__() is first  # displayed twice: the same layout, no new slider watchers
    assert len(check.param.watchers.get("angle", {}).get("value", [])) == watchers + 1


def test_components_follow_typed_references_and_build_their_layout_once(models, gallery, screening_dir):
    """Panel's idiom: a structure (or R) given as a reference is followed without a watcher; a wrong type is refused;
    every display shows the one layout built for the component."""

    import param
    from pymatgen.core import Structure

    class Source(param.Parameterized):
        structure = param.ClassSelector(class_=Structure, default=None, allow_None=True)
        rotation = param.Array(default=np.eye(3))

    source = Source(structure=gallery.structure("TiO2 rutile"))
    viewer = StructureViewer(models=models, structure=source.param.structure, rotation=source.param.rotation)
    tensor = TensorEllipsoid(models=models, structure=source.param.structure)
    first = tensor.mean
    zno = gallery.structure("ZnO wurtzite")
    source.structure = zno
    assert viewer.structure is zno and tensor.structure is zno
    assert not np.allclose(tensor.mean, first)
    np.testing.assert_allclose(tensor.mean, models.predict_one(zno)[0])
    rot = random_rotation(np.random.default_rng(0))
    source.rotation = rot
    np.testing.assert_array_equal(viewer.rotation, rot)
    smap = ScreeningMap(data=ScreeningData(screening_dir))
    for component in (viewer, tensor, models, smap):
        assert component.__panel__() is component.__panel__(), type(component).__name__
    for component in (StructureViewer, TensorEllipsoid):
        with pytest.raises(ValueError, match="structure"):
            component(structure="not a crystal")
    with pytest.raises(ValueError, match="loader"):
        ScreeningMap(data=ScreeningData(screening_dir), loader=object())
