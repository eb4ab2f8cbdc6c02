"""Scalar pretraining, fine-tuning from a pretrained backbone, and foundation-model (CHGNet) node features."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from torch_geometric.data import Batch

from goectp.checkpoint import load_cache, save_checkpoint
from goectp.cli import main as cli_main
from goectp.cli.train import init_from as _init_from
from goectp.graph import build_crystal_graph
from goectp.models import GoeCTP, GoeCTPConfig
from goectp.training import TrainConfig
from goectp.training.augment import random_orthogonal
from goectp.training.pretrain import (
    SCALAR_DATASETS,
    ScalarRecord,
    backbone_state,
    pretrain,
    records_from_megnet,
    scalar_graphs,
    write_scalar_json,
)


def _scalar_items(n: int = 24, seed: int = 0) -> list[tuple[str, Structure, float]]:
    """Rock-salt-like cells whose label is 2a + c (Å) (a learnable invariant signal)."""
    gen = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, c = gen.uniform(3.8, 5.0), gen.uniform(3.8, 5.5)
        s = Structure(Lattice.tetragonal(a, c), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        out.append((f"s{i}", s, 2 * a + c))
    return out


def _write_dielectric_json(path, n: int, seed: int) -> None:
    """A tiny dielectric data file (DTNet schema): isotropic ε = (2a + c)/5 on the cells of :func:`_scalar_items`."""
    diel = {}
    for i, s, v in _scalar_items(n, seed=seed):
        eps = (np.eye(3) * v / 5).tolist()
        diel[i] = {"structure": s.as_dict(), "total": eps, "electronic": eps, "ionic": np.zeros((3, 3)).tolist()}
    path.write_text(json.dumps(diel))


def _tiny(**kw) -> GoeCTPConfig:
    return GoeCTPConfig(hidden=16, num_rbf=16, **kw)


def _rotated(s: Structure, q: np.ndarray) -> Structure:
    """The crystal turned by the orthogonal ``q`` (Cartesian), same fractional coordinates."""
    return Structure(Lattice(s.lattice.matrix @ q.T), s.species, s.frac_coords)


def _rotation_and_reflection() -> list[np.ndarray]:
    qs = random_orthogonal(8, torch.Generator().manual_seed(3)).numpy()
    dets = np.linalg.det(qs)
    return [qs[dets > 0][0], qs[dets < 0][0]]


@pytest.fixture(scope="module")
def scalar_set():
    return scalar_graphs(_scalar_items(), "toy", progress=False)


@pytest.fixture(scope="module")
def pretrained(scalar_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    torch.manual_seed(0)
    res = pretrain(scalar_set, _tiny(), TrainConfig(epochs=15, batch_size=8, lr=1e-2, progress=False), out)
    return out, res


# ------------------------------------------------------------------------------------------- pretraining
def test_pretraining_reduces_the_loss_and_writes_a_scalar_checkpoint(pretrained):
    out, res = pretrained
    losses = [h["train_loss"] for h in json.loads((out / "history.json").read_text())]
    assert np.mean(losses[-3:]) < 0.7 * losses[0]
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert ckpt["config"]["head"] == "scalar" and ckpt["meta"]["pretrain_dataset"] == "toy"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["n_train"] == 19 and saved["test_mae"] == pytest.approx(res["test_mae"])
    assert 0 < saved["best_val_mae"] < saved["label_std"]  # better than predicting the mean


def test_backbone_is_loaded_and_head_reinitialised(pretrained):
    out, _ = pretrained
    src = torch.load(out / "best.pt", weights_only=True)["state_dict"]
    cfg = _tiny()
    for init in (backbone_state(out / "best.pt", cfg, verbose=False), _init_from(str(out / "best.pt"), cfg)):
        torch.manual_seed(5)
        fresh = GoeCTP(cfg)
        torch.manual_seed(5)
        model = GoeCTP(cfg)
        model.load_state_dict(init, strict=False)
        own = model.state_dict()
        backbone = [k for k in own if not k.startswith("head.")]
        assert set(init) == set(backbone)
        for k in backbone:
            torch.testing.assert_close(own[k], src[k], rtol=0, atol=0)
        assert not torch.equal(own["atom_embed.weight"], fresh.state_dict()["atom_embed.weight"])
        for k in (k for k in own if k.startswith("head.")):  # the tensor head is fresh, not the scalar one
            torch.testing.assert_close(own[k], fresh.state_dict()[k], rtol=0, atol=0)
    with pytest.raises(ValueError, match="does not fit the model configuration"):
        backbone_state(out / "best.pt", GoeCTPConfig(hidden=8, num_rbf=8), verbose=False)


@pytest.mark.parametrize("change", [{"hidden": 24}, {"num_rbf": 6}, {"variant": "icom"}])
def test_init_from_raises_on_any_mismatch(pretrained, change):
    """A checkpoint of another width/depth must not silently leave the model at its random initialisation."""
    out, _ = pretrained
    cfg = GoeCTPConfig(**{**_tiny().to_dict(), **change})
    for load in (
        lambda: backbone_state(out / "best.pt", cfg, verbose=False),
        lambda: _init_from(str(out / "best.pt"), cfg),
    ):
        with pytest.raises(ValueError, match="does not fit the model configuration"):
            load()


def test_cli_pretrain_then_train_init_from(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path / "cache"))
    data = write_scalar_json(
        [ScalarRecord(i, s, v) for i, s, v in _scalar_items(12, seed=1)], tmp_path / "scalar.json.gz"
    )
    env_out = tmp_path / "pt"
    assert (
        cli_main(
            [
                "pretrain",
                "--dataset",
                str(data),
                "--epochs",
                "2",
                "--hidden",
                "16",
                "--batch-size",
                "4",
                "--out",
                str(env_out),
                "--quiet",
            ]
        )
        == 0
    )
    assert "fine-tune with: goectp train --init-from" in capsys.readouterr().out
    _write_dielectric_json(tmp_path / "diel.json", 12, seed=2)
    assert (
        cli_main(
            [
                "train",
                "--data-file",
                str(tmp_path / "diel.json"),
                "--splits",
                "0",
                "--epochs",
                "1",
                "--hidden",
                "16",
                "--batch-size",
                "4",
                "--init-from",
                str(env_out / "best.pt"),
                "--out",
                str(tmp_path / "ft"),
            ]
        )
        == 0
    )
    assert "head re-initialised" in capsys.readouterr().out
    assert (tmp_path / "ft" / "split0" / "metrics.json").exists()


def test_init_from_a_fine_tuned_model_takes_the_same_split(tmp_path, capsys, monkeypatch):
    """A model fine-tuned on split 0 has seen split 1's test crystals: starting split 1 from it is refused; an
    ensemble folder starts each split from its own member."""
    import shutil

    from goectp.data import sha256_file
    from goectp.training.pretrain import init_checkpoint

    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "diel.json"
    _write_dielectric_json(data, 12, seed=2)
    common = ["--data-file", str(data), "--epochs", "1", "--hidden", "16", "--batch-size", "4"]
    assert cli_main(["train", *common, "--splits", "0", "1", "--out", str(tmp_path / "ft")]) == 0
    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    for split in (0, 1):
        shutil.copy(tmp_path / "ft" / f"split{split}" / "best.pt", ensemble / f"member{split}.pt")
    sha, cfg = sha256_file(data), GoeCTPConfig(hidden=16)  # what --hidden 16 trained
    split0 = tmp_path / "ft" / "split0" / "best.pt"

    with pytest.raises(ValueError, match="fine-tuned on split 0 of this data"):
        _init_from(str(split0), cfg, 1, sha)
    assert set(_init_from(str(split0), cfg, 0, sha)) == set(backbone_state(split0, cfg, verbose=False))
    assert _init_from(str(split0), cfg, 1, "another data file")  # other data: its splits are other crystals
    assert init_checkpoint(ensemble, 1) == ensemble / "member1.pt"
    assert init_checkpoint(tmp_path / "ft", 1) == tmp_path / "ft" / "split1" / "best.pt"  # a run is an ensemble
    assert f"goectp predict FILE --model {tmp_path / 'ft'}" in capsys.readouterr().out
    assert init_checkpoint(split0, 1) == split0  # a file is taken as given (and then checked)
    with pytest.raises(ValueError, match=r"no member fine-tuned on split 3 \(its members' splits: \[0, 1\]\)"):
        init_checkpoint(ensemble, 3)

    capsys.readouterr()
    bad = ["train", *common, "--splits", "1", "--init-from", str(split0), "--out", str(tmp_path / "bad")]
    assert cli_main(bad) == 2  # refused before any training, with the reason
    assert "fine-tuned on split 0 of this data" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    args = ["train", *common, "--target", "ionic", "--splits", "0", "1", "--init-from", str(ensemble)]
    assert cli_main([*args, "--out", str(tmp_path / "ionic")]) == 0
    out = capsys.readouterr().out
    assert (
        "split 0: all" in out and f"from {ensemble / 'member0.pt'}" in out and f"from {ensemble / 'member1.pt'}" in out
    )
    for split in (0, 1):
        trained = torch.load(tmp_path / "ionic" / f"split{split}" / "best.pt", weights_only=True)
        assert trained["meta"]["split_seed"] == split and trained["meta"]["train_config"]["target"] == "ionic"


def test_scalar_head_is_rotation_invariant(triclinic):
    torch.manual_seed(1)
    model = GoeCTP(_tiny(head="scalar")).double().eval()
    with torch.no_grad():
        ref = model(Batch.from_data_list([build_crystal_graph(triclinic)]))
        for q in _rotation_and_reflection():
            out = model(Batch.from_data_list([build_crystal_graph(_rotated(triclinic, q))]))
            torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    assert ref.shape == (1,)


def test_megnet_and_pool_parsing():
    atoms = {
        "lattice_mat": [[4, 0, 0], [0, 4, 0], [0, 0, 4]],
        "coords": [[0, 0, 0], [0.5, 0.5, 0.5]],
        "elements": ["Cs", "Cl"],
        "cartesian": False,
    }
    recs = records_from_megnet(
        [
            {"id": "mp-22865", "atoms": atoms, "formation_energy_per_atom": -2.2},
            {"id": "x", "atoms": atoms, "formation_energy_per_atom": "na"},
            {"id": "mp-1", "atoms": atoms, "e_form": -1.5},
        ]
    )
    assert [(r.id, r.value) for r in recs] == [("mp-22865", -2.2), ("mp-1", -1.5)]
    assert recs[0].structure.composition.reduced_formula == "CsCl" and recs[0].structure.volume == pytest.approx(64)
    pool = [
        {
            "id": "perov5-1",
            "source": "cdvae-perov_5-val",
            "structure": {},
            "formation_energy": 1.2,
            "band_gap": 0.0,
            "extra": {},
        },
        {
            "id": "mp-2",
            "source": "matcalc-mp-binary-pbe-elasticity-2025.1",
            "structure": {},
            "formation_energy": None,
            "band_gap": None,
            "extra": {"bulk_modulus_vrh": 100.0, "shear_modulus_vrh": 10.0},
        },
        {
            "id": "wbm-1-1",
            "source": "matcalc-wbm-random-pbe52-equilibrium-2025.1",
            "structure": {},
            "formation_energy": -0.5,
            "band_gap": 1.5,
            "extra": {},
        },
    ]
    pick = {name: [(i, v) for i, _, v in sel(pool)] for name, (_, sel) in SCALAR_DATASETS.items()}
    assert pick == {
        "perov5-formation": [("perov5-1", 1.2)],
        "wbm-formation": [("wbm-1-1", -0.5)],
        "band-gap": [("perov5-1", 0.0), ("wbm-1-1", 1.5)],
        "log-bulk-modulus": [("mp-2", 2.0)],
        "log-shear-modulus": [("mp-2", 1.0)],
    }


# ------------------------------------------------------------------------------------------- foundation features
def test_model_with_node_features_demands_them():
    with pytest.raises(ValueError, match="go together"):
        GoeCTPConfig(node_features="chgnet")
    model = GoeCTP(_tiny(node_features="chgnet", node_feature_dim=4))
    s = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="needs 'chgnet' node features"):
        model(Batch.from_data_list([build_crystal_graph(s)]))


def test_chgnet_feature_model_is_exactly_equivariant(triclinic):
    pytest.importorskip("chgnet", reason="CHGNet features need chgnet==0.4.2 (the 'foundation' extra)")
    from goectp.api import graphs_for as graphs_for_model
    from goectp.features import feature_dim

    torch.manual_seed(2)
    model = GoeCTP(_tiny(node_features="chgnet", node_feature_dim=feature_dim("chgnet"))).double().eval()
    ref_graph = graphs_for_model(triclinic, model)
    assert ref_graph[0].x_extra.shape == (len(triclinic), 128) and ref_graph[0].x_extra.abs().max() > 0.1
    with torch.no_grad():
        ref = model(Batch.from_data_list(ref_graph))[0]
        for q in _rotation_and_reflection():  # rotate the *structure*, recompute features and graph
            g = graphs_for_model(_rotated(triclinic, q), model)
            out = model(Batch.from_data_list(g))[0]
            qt = torch.from_numpy(q)
            torch.testing.assert_close(out, qt @ ref @ qt.T, rtol=0, atol=1e-5)
            torch.testing.assert_close(g[0].x_extra, ref_graph[0].x_extra, rtol=0, atol=1e-5)
        shuffled = ref_graph[0].clone()
        shuffled.x_extra = shuffled.x_extra.flip(0)  # the features really enter the prediction
        assert (model(Batch.from_data_list([shuffled]))[0] - ref).abs().max() > 1e-4


def test_sevennet_feature_model_is_exactly_equivariant(triclinic):
    pytest.importorskip("sevenn", reason="SevenNet features need sevenn==0.13.0 (the 'foundation' extra)")
    from goectp.api import graphs_for as graphs_for_model
    from goectp.features import feature_dim, structure_features

    torch.manual_seed(4)
    model = GoeCTP(_tiny(node_features="sevennet", node_feature_dim=feature_dim("sevennet"))).double().eval()
    ref_graph = graphs_for_model(triclinic, model)
    x = ref_graph[0].x_extra
    assert x.shape == (len(triclinic), 128) and x.abs().max() > 0.1 and torch.isfinite(x).all()
    with torch.no_grad():
        ref = model(Batch.from_data_list(ref_graph))[0]
        for q in _rotation_and_reflection():  # rotate the *structure*, recompute features and graph
            g = graphs_for_model(_rotated(triclinic, q), model)
            # invariant features (float32), atoms of the canonical cell possibly in another order
            rows = lambda t: t[np.lexsort(np.round(t.numpy(), 3).T[::-1])]  # noqa: E731
            torch.testing.assert_close(rows(g[0].x_extra), rows(x), rtol=0, atol=1e-4)
            qt = torch.from_numpy(q)
            torch.testing.assert_close(model(Batch.from_data_list(g))[0], qt @ ref @ qt.T, rtol=0, atol=1e-5)
    swapped = Structure(triclinic.lattice, ["Li", "Ti", "O", "O", "O", "Ba"], triclinic.frac_coords)
    own = structure_features([triclinic], "sevennet")[0]
    assert np.abs(structure_features([swapped], "sevennet")[0][0] - own[0]).max() > 0.1  # chemistry enters
    with pytest.raises(ValueError, match="no embedding for Og"):
        structure_features([Structure(Lattice.cubic(4.0), ["Og"], [[0, 0, 0]])], "sevennet")


def test_cli_train_and_evaluate_with_node_features(tmp_path, capsys, monkeypatch):
    pytest.importorskip("chgnet", reason="CHGNet features need chgnet==0.4.2 (the 'foundation' extra)")
    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path / "cache"))
    _write_dielectric_json(tmp_path / "diel.json", 10, seed=3)
    assert (
        cli_main(
            [
                "train",
                "--data-file",
                str(tmp_path / "diel.json"),
                "--splits",
                "0",
                "--epochs",
                "1",
                "--hidden",
                "16",
                "--batch-size",
                "4",
                "--node-features",
                "chgnet",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    assert "chgnet node features: computed" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "split0" / "metrics.json").read_text())
    assert metrics["model_config"]["node_features"] == "chgnet" and metrics["model_config"]["node_feature_dim"] == 128
    assert (
        cli_main(
            [
                "evaluate",
                "--data-file",
                str(tmp_path / "diel.json"),
                "--model",
                str(tmp_path / "run" / "split0" / "best.pt"),
                "--out",
                str(tmp_path / "eval" / "r"),
            ]
        )
        == 0
    )
    assert "chgnet node features: cache hit" in capsys.readouterr().out


def test_feature_cache_hit_needs_no_extractor(tmp_path, monkeypatch):
    pytest.importorskip("chgnet", reason="CHGNet features need chgnet==0.4.2 (the 'foundation' extra)")
    import goectp.features as features

    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path / "cache"))
    structs = {
        "nacl": Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "gan": Structure(
            Lattice.hexagonal(3.19, 5.19),
            ["Ga", "Ga", "N", "N"],
            [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.377], [2 / 3, 1 / 3, 0.877]],
        ),
    }
    eps = (np.eye(3) * 5).tolist()
    data = tmp_path / "diel.json"
    data.write_text(json.dumps({k: {"structure": s.as_dict(), "total": eps} for k, s in structs.items()}))
    first, info = features.load_featured_graph_set(data, progress=False)
    assert not info["hit"] and info["cache"].exists() and info["ms_per_structure"] > 0

    def no_extractor(name):
        raise AssertionError("a cache hit must not run the extractor")

    monkeypatch.setattr("goectp.features.cache.get_extractor", no_extractor)
    second, info2 = features.load_featured_graph_set(data, progress=False)
    assert info2["hit"] and info2["cache"] == info["cache"]
    for a, b in zip(first.graphs, second.graphs):
        torch.testing.assert_close(a.x_extra, b.x_extra, rtol=0, atol=0)
    stored = load_cache(info["cache"])  # weights_only=True
    with pytest.raises(ValueError, match="do not match its graph"):
        features.attach_features(first.graphs[:1], ["gan" if first.ids[0] == "nacl" else "nacl"], stored)


def test_feature_cache_adds_only_missing_structures(tmp_path, monkeypatch):
    from goectp.features import dataset_features

    class CountingExtractor:  # stands in for CHGNet: any object with name, version and __call__
        name, version, seen = "toy", "toy-1", []

        def __call__(self, structures):
            self.seen.extend(len(s) for s in structures)
            return [np.tile(np.array([[s.volume]], dtype=np.float32), (len(s), 3)) for s in structures]

    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path / "cache"))
    items = {i: s for i, s, _ in _scalar_items(4)}
    data = write_scalar_json([ScalarRecord(i, s, 0.0) for i, s in items.items()], tmp_path / "s.json")
    ext = CountingExtractor()
    first = dataset_features(data, ["s0", "s1"], lambda: items, ext, progress=False)
    assert not first["hit"] and len(ext.seen) == 2
    both = dataset_features(data, ["s1", "s2"], lambda: items, ext, progress=False)
    assert not both["hit"] and len(ext.seen) == 3  # only s2 was computed, s1 came from the file
    again = dataset_features(data, ["s0", "s1", "s2"], lambda: {}, ext, progress=False)
    assert again["hit"] and len(ext.seen) == 3
    np.testing.assert_array_equal(again["features"]["s2"], np.full((2, 3), items["s2"].volume, dtype=np.float32))
    data.write_text(data.read_text().replace('"value": 0.0', '"value": 1.0', 1))  # a changed file is a new key
    assert not dataset_features(data, ["s0"], lambda: items, ext, progress=False)["hit"]


def test_pretraining_with_node_features_end_to_end(tmp_path, monkeypatch):
    import goectp.features as features
    from goectp.training.pretrain import featured_scalar_set, load_scalar_set

    def volume_features(structures):
        return [np.tile(np.array([[s.volume / len(s), s.density]], dtype=np.float32), (len(s), 1)) for s in structures]

    volume_features.name, volume_features.version = "toy", "toy-1"
    monkeypatch.setitem(
        features.EXTRACTORS, "toy", {"dim": 2, "factory": lambda: volume_features, "version": lambda: "toy-1"}
    )
    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path / "cache"))
    data = write_scalar_json([ScalarRecord(i, s, v) for i, s, v in _scalar_items(10)], tmp_path / "s.json")
    ss = featured_scalar_set(load_scalar_set(str(data), progress=False), "toy", progress=False)
    assert all(g.x_extra.shape == (2, 2) for g in ss.graphs)
    res = pretrain(
        ss,
        _tiny(node_features="toy", node_feature_dim=2),
        TrainConfig(epochs=2, batch_size=4, progress=False),
        tmp_path / "run",
    )
    assert res["model_config"]["node_features"] == "toy" and np.isfinite(res["test_mae"])
    init = backbone_state(tmp_path / "run" / "best.pt", _tiny(node_features="toy", node_feature_dim=2), verbose=False)
    assert "node_feature_embed.1.weight" in init


# ------------------------------------------------------------------------------------------- the benchmark's report
def _fake_metrics(mae: float, pooling: str = "mean") -> dict:
    subset = {"n": 10, "mae": mae, "frobenius": 3 * mae, "per_system": {"all": mae, "cubic": mae + 0.1}}
    return {
        "model_config": {"variant": "goectp", "pooling": pooling, "cell_reduction": "primitive", "symmetrize": True},
        "best_val_mae": mae,
        "epoch_seconds_median": 2.0,
        "test": {"all": subset, "filtered": {**subset, "mae": mae - 0.5}},
    }


def test_pretraining_report_pairs_each_route_with_scratch_of_the_same_setting(tmp_path):
    from goectp.evaluation.compare import collect_split_metrics, paired_comparison, route_order
    from goectp.evaluation.report import write_section

    runs = tmp_path / "runs"
    maes = {"scratch": [2.0, 1.5, 1.8], "chgnet": [1.8, 1.6, 1.5], "plain": [1.9, None, None]}
    for route, values in maes.items():
        for split, mae in enumerate(values):
            if mae is not None:
                (runs / route / f"split{split}").mkdir(parents=True)
                (runs / route / f"split{split}" / "metrics.json").write_text(
                    json.dumps(_fake_metrics(mae, pooling="sum" if route == "plain" else "mean"))
                )
    results = collect_split_metrics(runs)
    assert route_order(results) == ["scratch", "chgnet", "plain"]
    lines, routes = paired_comparison(results)
    delta = routes["chgnet"]["delta_vs_scratch"]
    assert delta["all"] == pytest.approx({0: -0.2, 1: 0.1, 2: -0.3})
    assert routes["plain"]["delta_vs_scratch"]["all"] == {}  # no scratch run with sum pooling
    row = "| chgnet | mean/primitive/sym | 0,1,2 | 1.800 1.600 1.500 | -0.200 +0.100 -0.300 | -0.133 | -0.133 | 2 of 3"
    assert any(line.startswith(row) for line in lines)
    bench_md = tmp_path / "BENCHMARKS.md"
    bench_md.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    write_section(bench_md, "## Pretraining and foundation features", "\n".join(lines))
    write_section(bench_md, "## Pretraining and foundation features", "\n".join(lines))  # replaced, not added
    text = bench_md.read_text()
    assert text.count("## Pretraining and foundation features") == 1 and "kept" in text and "-0.133" in text


def test_pretraining_benchmark_layers_option_builds_deeper_routes_paired_with_deeper_scratch(tmp_path):
    """``benchmarks/experiments/pretraining.py --layers 2``: every route's backbone has two message layers, its runs
    are named apart from the one-layer runs, and the report pairs it with scratch of the same depth only."""
    from goectp.evaluation import compare as bench
    from goectp.evaluation.compare import collect_split_metrics, paired_comparison

    assert bench.model_config().num_layers == 1 and bench.model_config().node_features is None
    deep = bench.model_config("chgnet", 2)
    assert (deep.num_layers, deep.node_features, deep.pooling) == (2, "chgnet", "mean")
    assert bench.route_name("scratch", "log-bulk-modulus", 100, 1e-3) == "scratch"
    assert bench.route_name("scratch", "log-bulk-modulus", 100, 1e-3, 2) == "scratch-layers2"
    one = bench.route_name("pretrained", "log-bulk-modulus", 100, 1e-3)
    assert bench.route_name("pretrained", "log-bulk-modulus", 100, 1e-3, 2) == one + "-layers2"

    runs = tmp_path / "runs"
    maes = {"scratch": 2.0, "scratch-layers2": 1.9, "pretrained": 1.8, "pretrained-layers2": 1.6}
    for route, mae in maes.items():
        metrics = _fake_metrics(mae)
        metrics["model_config"]["num_layers"] = 2 if route.endswith("layers2") else 1
        (runs / route / "split0").mkdir(parents=True)
        (runs / route / "split0" / "metrics.json").write_text(json.dumps(metrics))
    _, routes = paired_comparison(collect_split_metrics(runs))
    assert routes["pretrained"]["delta_vs_scratch"]["all"] == pytest.approx({0: -0.2})
    assert routes["pretrained-layers2"]["delta_vs_scratch"]["all"] == pytest.approx({0: -0.3})  # not -0.4


@pytest.mark.parametrize("head", [{"decompose": True}, {"log_head": True}])
def test_the_tail_heads_start_from_a_pretrained_backbone_with_fresh_heads(pretrained, head):
    out, _ = pretrained
    cfg = GoeCTPConfig(**{**_tiny().to_dict(), **head})
    init = backbone_state(out / "best.pt", cfg, verbose=False)
    assert not any(k.startswith(("head.", "ionic_head.")) for k in init)
    model = GoeCTP(cfg)
    model.load_state_dict(init, strict=False)
    src = torch.load(out / "best.pt", weights_only=True)["state_dict"]
    torch.testing.assert_close(model.state_dict()["atom_embed.weight"], src["atom_embed.weight"], rtol=0, atol=0)
    if head.get("decompose"):  # and a decompose checkpoint's second head is a head, not a foreign backbone tensor
        save_checkpoint(out / "decompose.pt", model)
        assert set(backbone_state(out / "decompose.pt", _tiny(), verbose=False)) == set(init)
