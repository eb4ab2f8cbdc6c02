"""The model menu: ``assets/models/catalog.json``, ``goectp models`` and its checks."""

from __future__ import annotations

import json

import pytest

from goectp.catalog import CATALOG_FILE, ModelInfo, model_catalog, model_info
from goectp.registry import assets_dir


def _assets(tmp_path, monkeypatch, catalog) -> None:
    models = tmp_path / "models"
    for name in ("combined", "fast"):
        (models / name).mkdir(parents=True)
        (models / name / "split0.pt").write_bytes(b"")  # listed, never loaded here
    (models / "aliases.json").write_text(json.dumps({"default": "combined"}))
    (models / CATALOG_FILE).write_text(catalog if isinstance(catalog, str) else json.dumps(catalog))
    monkeypatch.setenv("GOECTP_ASSETS", str(tmp_path))


GOOD = {
    "combined": {
        "description": "the default",
        "test_mae": 1.7134,
        "spearman": 0.9127,
        "coverage": 0.896,
        "cost_vs_fast": 4.89,
    },
    "fast": {"description": "the cheapest", "test_mae": 2.0, "ms_per_structure": None},
}


def test_catalog_lines_and_aliases(tmp_path, monkeypatch):
    _assets(tmp_path, monkeypatch, GOOD)
    catalog = model_catalog()
    assert catalog["fast"] == ModelInfo("the cheapest", test_mae=2.0)
    assert model_info("default") == catalog["combined"] and model_info("nothing") is None
    assert catalog["combined"].line() == (
        "the default — test MAE 1.713, ε̄ Spearman 0.913, ±2σ 89.6 %, 4.9× fast's cost"
    )
    assert catalog["fast"].line() == "the cheapest — test MAE 2.000"


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"fast": {"test_mae": 1.0}}),
        json.dumps({"fast": {"description": "x", "test_mae": float("nan")}}),
        json.dumps({"fast": {"description": "x", "cost_vs_fast": -1}}),
        json.dumps({"fast": {"description": "x", "spearman": True}}),
        json.dumps({"fast": {"description": "x", "spearman": "high"}}),
    ],
)
def test_a_damaged_catalog_names_the_file(tmp_path, monkeypatch, bad):
    _assets(tmp_path, monkeypatch, bad)
    with pytest.raises(ValueError, match="catalog.json: damaged model catalog"):
        model_catalog()


def test_goectp_models_prints_each_shipped_model(tmp_path, monkeypatch, capsys):
    from goectp.cli import main

    _assets(tmp_path, monkeypatch, GOOD)
    assert main(["models"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("combined  the default — test MAE 1.713")
    assert out[1].startswith("default   (= combined) the default — test MAE 1.713")
    assert out[2] == "fast      the cheapest — test MAE 2.000" and out[3].startswith("physics ")
    assert "test MAE" not in out[3]  # no physics.json in these assets: the line without numbers
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["default"]["alias_of"] == "combined" and rows["fast"]["test_mae"] == 2.0


def test_the_shipped_catalog_describes_every_shipped_model():
    """Every shipped folder has a line; the numbers are the ones accuracy_per_cost.py measured (plausible ranges).
    Every model of the static ε (target ``total``, the one the test MAE and the ε̄ ranking are measured on) has them;
    only a model of another tensor (``electronic``: ε∞) may go without."""
    from goectp.registry import available_models, load_model, model_aliases

    if not (assets_dir() / "models" / CATALOG_FILE).is_file():
        pytest.fail("assets/models/catalog.json is missing: run accuracy_per_cost.py --write-catalog")
    catalog = model_catalog()
    aliases = model_aliases()
    scored = []
    for name in available_models():
        info = catalog[aliases.get(name, name)]
        assert info.description
        if load_model(name).target == "total":
            assert 1.0 < info.test_mae < 3.0 and 0.5 < info.spearman <= 1.0, name
            assert 0.0 < info.coverage <= 1.0 and info.cost_vs_fast >= 1.0, name  # fast is the cheapest
            scored.append(name)
    assert {"default", "fast"} <= set(scored)
    assert catalog["fast"].cost_vs_fast == 1.0 and catalog["combined"].cost_vs_fast > 1.0


def test_the_explorer_menu_shows_the_selected_models_line(tmp_path, monkeypatch):
    pytest.importorskip("panel")
    import goectp
    from explorer.models import ModelSelector

    _assets(tmp_path, monkeypatch, GOOD)
    tiny = goectp.build_model(hidden=8, num_rbf=8)
    selector = ModelSelector(models={"fast": tiny, "mine": tiny}, model_name="fast")
    assert selector.menu_line == "the cheapest — test MAE 2.000"
    assert "the cheapest" in selector._status().object
    selector.model_name = "mine"
    assert selector.menu_line == "" and "goectp-model-menu-line" not in selector._status().object
    (tmp_path / "models" / CATALOG_FILE).write_text("{broken")
    selector.model_name = "fast"
    assert "damaged model catalog" in selector.menu_line


def test_goectp_models_gives_the_physics_models_numbers(capsys):
    """With the shipped assets: the physics line carries the test MAE and ε̄ Spearman of ``physics.json``'s rule."""
    from goectp.cli import main
    from goectp.physics.config import PHYSICS_FILE

    raw = json.loads((assets_dir() / PHYSICS_FILE).read_text())
    metrics = raw["metrics_5_split_mean"][raw["rule"]]
    assert main(["models"]) == 0
    line = [r for r in capsys.readouterr().out.splitlines() if r.startswith("physics ")][0]
    assert f"test MAE {metrics['mae']:.3f}, ε̄ Spearman {metrics['spearman_eps_mean']:.3f}" in line
    assert line.endswith(f", ±2σ {100 * metrics['coverage_2sigma_mean_fitted']:.1f} %")
