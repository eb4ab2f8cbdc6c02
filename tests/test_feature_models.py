"""Models with pretrained node features (``config.node_features``) work through every entry point that builds
graphs itself: ``goectp.predict``, the screening worker (and so ``goectp screen``) and the explorer's selector.

An invariant stand-in extractor replaces CHGNet here, so these tests need no optional package; the CHGNet
extractor itself is tested in ``tests/test_pretrain.py``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

import goectp.features as features
from goectp.api import build_model, load_model, predict, save_checkpoint
from goectp.screening.engine import ScreeningOptions
from goectp.screening.run import run_screening

NAME = "toy_volume"  # a name no other test registers (get_extractor caches per name)


def volume_features(structures):
    out = []
    for s in structures:
        if any(site.specie.symbol == "Xe" for site in s):
            raise RuntimeError("this extractor cannot handle Xe")
        per_site = [[s.volume / len(s), site.specie.X] for site in s]
        out.append(np.asarray(per_site, dtype=np.float32))
    return out


volume_features.name, volume_features.version = NAME, f"{NAME}-1"


@pytest.fixture(autouse=True)
def toy_extractor(monkeypatch):
    monkeypatch.setitem(
        features.EXTRACTORS, NAME, {"dim": 2, "factory": lambda: volume_features, "version": lambda: f"{NAME}-1"}
    )
    features.get_extractor.cache_clear()
    yield
    features.get_extractor.cache_clear()


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("goectp", hidden=16, num_rbf=16, node_features=NAME, node_feature_dim=2).double().eval()


def _triclinic() -> Structure:
    lat = Lattice.from_parameters(4.1, 5.3, 6.2, 77.0, 84.0, 101.0)
    return Structure(lat, ["Mg", "O", "Si", "O"], [[0, 0, 0], [0.31, 0.12, 0.44], [0.6, 0.55, 0.2], [0.8, 0.3, 0.9]])


def _rocksalt(a: float, cation: str, anion: str) -> Structure:
    lat = Lattice(0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]))
    return Structure(lat, [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_predict_computes_the_features_and_stays_equivariant():
    model, s = _model(), _triclinic()
    ref = predict(s, model)[0]
    q = np.linalg.qr(np.random.default_rng(4).normal(size=(3, 3)))[0]
    for r in (q, -q):  # a rotation or a rotoreflection, applied to the *structure*
        turned = Structure(Lattice(s.lattice.matrix @ r.T), s.species, s.frac_coords)
        np.testing.assert_allclose(predict(turned, model)[0], r @ ref @ r.T, rtol=0, atol=1e-5)
    model.node_feature_embed[1].weight.data.zero_()  # the features really enter: removing them changes ε
    assert np.abs(predict(s, model)[0] - ref).max() > 1e-4


def test_an_ensemble_mixes_featured_and_plain_members_and_predicts_their_mean():
    """Members with and without node features share one set of graphs (the featured member's); the ensemble's
    prediction is the mean of what each member predicts alone, whichever member comes first."""
    from goectp.models import Ensemble

    torch.manual_seed(1)
    plain = build_model("goectp", hidden=16, num_rbf=16).double().eval()
    featured = _model(2)
    s = _triclinic()
    alone = [predict(s, m)[0] for m in (plain, featured)]
    for members in ((plain, featured), (featured, plain)):
        ensemble = Ensemble(list(members))
        assert ensemble.config.node_features == NAME
        np.testing.assert_allclose(predict(s, ensemble)[0], np.mean(alone, axis=0), rtol=0, atol=1e-12)
    other_k = build_model("goectp", hidden=16, num_rbf=16, k_neighbors=12).double().eval()
    with pytest.raises(ValueError, match="need different graphs"):
        Ensemble([featured, other_k])


def _pool(tmp_path: Path, structures: list[Structure]) -> Path:
    records = [
        {
            "id": f"c{i}",
            "structure": s.as_dict(),
            "formula": s.composition.reduced_formula,
            "band_gap": 3.0,
            "material_id": None,
            "source": "test",
        }
        for i, s in enumerate(structures)
    ]
    path = tmp_path / "pool.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(records, fh)
    return path


def test_screening_a_feature_model_matches_predict_and_rejects_only_the_failing_structure(tmp_path):
    members = tmp_path / "ensemble"
    for seed in range(2):
        save_checkpoint(members / f"member{seed}.pt", _model(seed).float(), seed=seed)
    structures = [_rocksalt(4.2, "Mg", "O"), _triclinic(), _rocksalt(5.6, "Xe", "F"), _rocksalt(5.1, "Ca", "S")]
    opts = ScreeningOptions(
        pool=_pool(tmp_path, structures),
        model=members,
        out_dir=tmp_path / "out",
        use_dask=False,
        chunk_size=8,
        progress=False,
        top=3,
        exclude_training=None,
        symprec=None,
    )
    run = run_screening(opts)
    rejects = run.rankings.rejects.set_index("id")
    assert list(rejects.index) == ["c2"] and rejects.loc["c2", "reason_code"] == "features_error"
    assert "cannot handle Xe" in rejects.loc["c2", "reason"]
    rows = run.rankings.results.set_index("id").sort_index()
    ok = ["c0", "c1", "c3"]
    assert list(rows.index) == ok and (rows["status"] == "scored").all()
    mean = predict([structures[i] for i in (0, 1, 3)], load_model(members))
    np.testing.assert_allclose(rows.loc[ok, "eps_11"].to_numpy(), mean[:, 0, 0], rtol=1e-5)
    np.testing.assert_allclose(rows.loc[ok, "eps_mean"].to_numpy(), np.linalg.eigvalsh(mean).mean(axis=1), rtol=1e-5)


def test_explorer_selector_predicts_with_a_feature_model():
    pytest.importorskip("panel")
    from explorer.models import ModelSelector

    model = _model()
    selector = ModelSelector(models={"featured": model}, model_name="featured")
    mean, std = selector.predict_one(_triclinic())
    np.testing.assert_allclose(mean, predict(_triclinic(), model)[0], rtol=0, atol=1e-10)
    assert np.all(std == 0)
    assert f"+ {NAME} node features" in selector.description


@pytest.mark.parametrize(
    "name",
    [
        "pretrained-bulk-modulus-chgnet",
        "pretrained-bulk-modulus-layers2",
        "pretrained-bulk-modulus-chgnet-layers2",
        "decomposed-bulk-modulus-chgnet-layers2",
        "decomposed-bulk-modulus-layers2",
    ],
)
def test_shipped_extra_ensembles_are_selectable_and_equivariant(name):
    """The shipped ensembles besides ``default`` load by name, predict a real example exactly equivariantly, and
    are offered by the explorer's model selector next to ``default``, which stays the default."""
    uses_chgnet = "chgnet" in name or name.startswith("decomposed")  # a sum's ε∞ part reads CHGNet features
    if uses_chgnet:
        pytest.importorskip("chgnet", reason=f"the shipped {name!r} model needs chgnet==0.4.2 (the 'foundation' extra)")
    pytest.importorskip("panel")
    from explorer.models import ModelSelector
    from goectp.api import assets_dir, available_models

    assert {"default", name} <= set(available_models())
    model = load_model(name).double()
    assert len(model.members) == 5
    assert model.config.node_features == ("chgnet" if uses_chgnet else None)
    s = Structure.from_file(assets_dir() / "examples" / "GaN_wurtzite.cif")
    mean, std = predict(s, model, return_std=True)
    lam = np.linalg.eigvalsh(mean[0])
    assert 5 < lam[0] <= lam[-1] < 20 and std.max() > 0  # a trained wurtzite-like tensor, members disagree a bit
    r = np.linalg.qr(np.random.default_rng(7).normal(size=(3, 3)))[0]
    turned = Structure(Lattice(s.lattice.matrix @ r.T), s.species, s.frac_coords)
    np.testing.assert_allclose(predict(turned, model)[0], r @ mean[0] @ r.T, rtol=0, atol=1e-5)
    selector = ModelSelector(model_name=name)
    assert selector.model_name == name and name in selector.description
    assert ("+ chgnet node features" in selector.description) == uses_chgnet
    layers = 2 if name.endswith("layers2") else 1
    assert {m.config.num_layers for m in model.members} == {layers}
    assert f", {layers} message layer{'s' if layers > 1 else ''}," in selector.description
    assert ModelSelector().model_name == "default"  # the default stays the default


def test_the_default_is_the_combined_ensemble_of_five_families():
    """``default`` = 25 members: CHGNet-feature and plain, one- and two-layer members and sums of an ε∞ and an
    ionic network, 5 per split, read from one set of graphs; its prediction is the mean of its families'."""
    pytest.importorskip("chgnet", reason="the shipped default needs chgnet==0.4.2 (the 'foundation' extra)")
    from goectp.api import assets_dir
    from goectp.models import SumOfParts, networks
    from goectp.registry import model_aliases

    assert model_aliases()["default"] == "combined"
    model = load_model("default").double()
    families = (
        "pretrained-bulk-modulus-chgnet",
        "pretrained-bulk-modulus-layers2",
        "pretrained-bulk-modulus-chgnet-layers2",
        "decomposed-bulk-modulus-chgnet-layers2",
        "decomposed-bulk-modulus-layers2",
    )
    assert len(model.members) == 25 and model.config.node_features == "chgnet"
    assert sum(isinstance(m, SumOfParts) for m in model.members) == 10
    assert sorted({n.config.num_layers for n in networks(model)}) == [1, 2]
    pytest.importorskip("panel")
    from explorer.models import ModelSelector

    assert ", 1 or 2 message layers," in ModelSelector().description  # the explorer says so
    assert {n.rsplit("-split", 1)[0] for n in model.names} == set(families)
    s = Structure.from_file(assets_dir() / "examples" / "GaN_wurtzite.cif")
    parts = [predict(s, load_model(f).double())[0] for f in families]
    np.testing.assert_allclose(predict(s, model)[0], np.mean(parts, axis=0), rtol=0, atol=1e-10)
