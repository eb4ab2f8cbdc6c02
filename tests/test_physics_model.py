"""The shipped ``physics`` model: the rules that join the physics term to a learned prediction (by hand, equivariant),
its description file, its API/CLI/screen paths. The physics term itself is tested in ``test_physics.py``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from test_physics import PairSprings, _born_model, primitive_rocksalt, rutile


def test_combination_rules_by_hand_and_equivariant():
    from goectp.physics.combine import combine_physics

    d = np.stack([np.eye(3) * 10, np.eye(3) * 40])  # learned totals
    e = np.stack([np.eye(3) * 4, np.eye(3) * 5])  # learned ε∞
    p = np.stack([np.eye(3) * 30, np.eye(3) * 10])  # physics ε_ion
    usable = np.array([True, True])
    np.testing.assert_allclose(combine_physics("replace", d, e, p, usable, 0.5, 0.0), [np.eye(3) * 19, np.eye(3) * 10])
    np.testing.assert_allclose(combine_physics("blend", d, e, p, usable, 0.5, 0.5), [np.eye(3) * 14.5, np.eye(3) * 25])
    # tail-blend raises the first (19 > 10) and keeps the second (10 < 40)
    np.testing.assert_allclose(combine_physics("tail-blend", d, e, p, usable, 0.5, 0.5), [np.eye(3) * 14.5, d[1]])
    # log-blend: the learned tensor times (ε̄_p/ε̄_d)^w: 10·(19/10)^0.5, 40·(10/40)^0.5 = 20; ε̄ ≤ 0 keeps it
    np.testing.assert_allclose(
        combine_physics("log-blend", d, e, p, usable, 0.5, 0.5), [np.eye(3) * 10 * 1.9**0.5, np.eye(3) * 20]
    )
    np.testing.assert_allclose(combine_physics("log-blend", d, -10 * e, p, usable, 0.5, 0.5), d)
    # without a usable physics term the learned prediction stays, NaN or not
    nan = p.copy()
    nan[1] = np.nan
    out = combine_physics("replace", d, e, nan, np.array([True, False]), 0.5, 0.0)
    np.testing.assert_allclose(out[1], d[1])
    r = Rotation.random(random_state=3).as_matrix() * -1
    turn = lambda x: r @ x @ r.T  # noqa: E731
    for rule in ("replace", "blend", "tail-blend", "log-blend"):
        np.testing.assert_allclose(
            combine_physics(rule, turn(d), turn(e), turn(p), usable, 0.7, 0.3),
            turn(combine_physics(rule, d, e, p, usable, 0.7, 0.3)),
            atol=1e-12,
        )
    with pytest.raises(ValueError, match="unknown rule"):
        combine_physics("magic", d, e, p, usable, 1.0, 1.0)


def test_gated_rule_by_hand_a_blend_at_zero_gate_and_equivariant(tmp_path):
    from goectp.physics.combine import combine_physics
    from goectp.physics.config import PhysicsConfig

    d = np.stack([np.eye(3) * 10, np.diag([30.0, 30.0, 60.0]), np.eye(3) * 8])  # learned totals
    e = np.stack([np.eye(3) * 4, np.eye(3) * 5, np.eye(3) * 3])  # learned ε∞
    p = np.stack([np.eye(3) * 30, np.eye(3) * 10, np.eye(3) * np.nan])  # physics ε_ion; none for the third
    usable, unstable, softest = np.array([True, True, False]), np.array([0, 2, 0]), np.array([1.5, 0.4, np.nan])

    def gated(theta):
        return combine_physics("gated", d, e, p, usable, 0.5, 0.0, gate=theta, unstable=unstable, lowest_thz=softest)

    half = np.log(0.5 / 0.5)  # σ(0) = 1/2: the gate is a fixed blend with w = 1/2
    np.testing.assert_allclose(
        gated([0, 0, half, 0, 0, 0, 0, 0]), combine_physics("blend", d, e, p, usable, 0.5, 0.5), atol=1e-12
    )
    np.testing.assert_allclose(gated([np.log(2), 0, -50, 0, 0, 0, 0, 0]), 2 * d, rtol=1e-12)  # w ≈ 0, size × 2
    theta = np.array([-0.2, 0.1, -0.5, 0.2, -0.1, 0.3, 0.4, -0.3])
    out = gated(theta)
    for i in range(
        2
    ):  # by hand: x = (r, |r|, log(1 + ω_min), unstable, log ε̄_d), w = σ(c₀ + c·x), size e^(a + b log ε̄_d)
        eps_d, estimate = np.trace(d[i]) / 3, e[i] + 0.5 * p[i]
        r = np.log(np.trace(estimate) / 3 / eps_d)
        w = 1 / (1 + np.exp(-(theta[2] + theta[3:] @ [r, abs(r), np.log1p(softest[i]), unstable[i], np.log(eps_d)])))
        expected = (d[i] + w * (estimate - d[i])) * np.exp(theta[0] + theta[1] * np.log(eps_d))
        np.testing.assert_allclose(out[i], expected, rtol=1e-12)
    np.testing.assert_allclose(out[2], d[2] * np.exp(theta[0] + theta[1] * np.log(8)), rtol=1e-12)  # no term: size
    r = Rotation.random(random_state=5).as_matrix() * -1  # a rotation times the inversion
    turn = lambda x: r @ x @ r.T  # noqa: E731
    turned = combine_physics(
        "gated", turn(d), turn(e), turn(p), usable, 0.5, 0.0, gate=theta, unstable=unstable, lowest_thz=softest
    )
    np.testing.assert_allclose(turned, turn(out), atol=1e-11)
    # an estimate with a non-finite entry, or an unknown unstable count, is no term at all (not 1e308 or NaN)
    broken, unknown = p.copy(), unstable.astype(float)
    broken[0, 0, 1] = broken[0, 1, 0] = np.inf
    unknown[2] = np.nan
    robust = combine_physics("gated", d, e, broken, usable, 0.5, 0.0, gate=theta, unstable=unknown, lowest_thz=softest)
    np.testing.assert_allclose(robust[0], d[0] * np.exp(theta[0] + theta[1] * np.log(10)), rtol=1e-12)
    np.testing.assert_allclose(robust[1:], out[1:], rtol=1e-12)
    with pytest.raises(ValueError, match="needs 8 parameters"):
        gated(theta[:7])
    with pytest.raises(ValueError, match="needs gate, unstable and lowest_thz"):
        combine_physics("gated", d, e, p, usable, 0.5, 0.0)
    bad = tmp_path / "physics.json"
    for gate in (None, [0.1] * 7, [0.1] * 7 + [float("inf")], [0.1] * 7 + ["x"]):
        bad.write_text(json.dumps({"rule": "gated", "scale": 0.8, "weight": 0.3, "gate": gate}))
        with pytest.raises(ValueError, match="physics.json.*gate must be 8 numbers"):
            PhysicsConfig.load(bad)
    bad.write_text(json.dumps({"rule": "gated", "scale": 0.8, "weight": 0.3, "gate": list(theta)}))
    assert PhysicsConfig.load(bad).gate == tuple(theta)


def test_physics_model_corrects_the_default_where_it_can(tmp_path, monkeypatch):
    from goectp.api import build_model
    from goectp.models import Ensemble
    from goectp.physics.config import PhysicsConfig
    from goectp.physics.model import PhysicsModel

    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path))
    torch.manual_seed(1)
    total = Ensemble([build_model(hidden=16, num_rbf=8).double() for _ in range(2)])
    electronic = Ensemble([build_model(hidden=16, num_rbf=8).double() for _ in range(2)])
    config = PhysicsConfig(rule="replace", scale=0.5, weight=1.0, max_sites=4)
    model = PhysicsModel(config, total, electronic, _born_model(5))
    small, large = primitive_rocksalt(), rutile()  # 2 atoms; 6 atoms > max_sites
    rec_small, rec_large = model.predict_summary([small, large], forces=PairSprings())
    assert rec_small["physics_used"] and rec_small["physics_skipped"] is None
    expected = np.array(rec_small["eps_electronic"]) + 0.5 * np.array(rec_small["physics"]["eps_ion"])
    np.testing.assert_allclose(rec_small["eps_physics"], expected, atol=1e-12)
    assert not rec_large["physics_used"] and "6 atoms" in rec_large["physics_skipped"]
    np.testing.assert_allclose(rec_large["eps_physics"], rec_large["tensor"], atol=1e-12)  # the default kept
    again = model.correct([small], np.array(rec_small["tensor"])[None], forces=PairSprings())[0]  # given the total
    np.testing.assert_allclose(again["eps_physics"], rec_small["eps_physics"], atol=1e-10)
    bad = tmp_path / "physics.json"
    bad.write_text(json.dumps({"rule": "replace", "scale": float("nan"), "weight": 1.0}))
    with pytest.raises(ValueError, match="physics.json.*scale must be a number") as info:
        PhysicsConfig.load(bad)
    assert str(bad) in str(info.value)


def test_the_physics_models_sigma_is_the_defaults_times_its_groups_factor(tmp_path, monkeypatch):
    """``sigma_scale = (k_term, k_unstable)``: every calibrated σ of a record times its group's factor (1 for a cell
    over max_sites: the default's prediction, the default's σ); an uncalibrated σ (raw member spread) is left alone;
    the description refuses factors out of (0, 10]."""
    from goectp.api import build_model
    from goectp.models import Ensemble
    from goectp.physics.config import PhysicsConfig
    from goectp.physics.model import PhysicsModel
    from goectp.uncertainty import Calibration, attach_calibration

    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path))
    torch.manual_seed(1)
    total = Ensemble([build_model(hidden=16, num_rbf=8).double() for _ in range(3)])
    electronic = Ensemble([build_model(hidden=16, num_rbf=8).double() for _ in range(2)])
    scale = {"form": "scale", "s": 2.0, "c": 0.0}
    attach_calibration(
        total, Calibration({"tensor": scale, "eps_mean": scale, "anisotropy": {"form": "propagated", "k": 1.0}}, {})
    )

    def records(sigma_scale, forces, crystals):
        config = PhysicsConfig(rule="replace", scale=0.5, weight=1.0, max_sites=4, sigma_scale=sigma_scale)
        return PhysicsModel(config, total, electronic, _born_model(5)).predict_summary(crystals, forces=forces)

    cases = (  # the term used; 6 atoms > max_sites: no force constants; every optical mode soft: unstable
        (PairSprings(), [primitive_rocksalt(), rutile()], [0.5, 1.0]),
        (PairSprings(k=-2.0), [primitive_rocksalt()], [3.0]),
    )
    for i, (forces, crystals, factors) in enumerate(cases):
        monkeypatch.setenv("GOECTP_CACHE", str(tmp_path / str(i)))  # the two spring sets share a cache key
        plain, scaled = (records(k, forces, crystals) for k in (None, (0.5, 3.0)))
        assert [r["sigma_factor"] for r in scaled] == factors and [r["sigma_factor"] for r in plain] == [1.0] * len(
            factors
        )
        for before, after, k in zip(plain, scaled, factors):
            assert after["eps_physics"] == before["eps_physics"]  # the mean unchanged
            for key in ("eps_mean_std", "anisotropy_std", "eigenvalues_std", "tensor_std"):
                np.testing.assert_allclose(after[key], k * np.asarray(before[key]), rtol=1e-12)
    assert not scaled[0]["physics_used"] and "unstable mode(s)" in scaled[0]["physics_skipped"]
    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path / "0"))  # the stable springs again
    crystals = [primitive_rocksalt(), rutile()]
    plain = records(None, PairSprings(), crystals)
    config = PhysicsConfig(rule="replace", scale=0.5, weight=1.0, max_sites=4, sigma_scale=(0.5, 3.0))
    raw = PhysicsModel(config, total, electronic, _born_model(5)).predict_summary(
        crystals, forces=PairSprings(), calibrated=False
    )
    assert [r["sigma_factor"] for r in raw] == [1.0, 1.0] and raw[0]["eps_mean_std"] < plain[0]["eps_mean_std"]
    for bad in ([0, 1], [1.0], [1.0, float("inf")], "1,2", [1.0, 11.0], [True, 1.0]):
        with pytest.raises(ValueError, match="sigma_scale must be 2 numbers"):
            PhysicsConfig(rule="replace", scale=0.5, weight=1.0, sigma_scale=bad)


@pytest.mark.slow
def test_goectp_predict_model_physics_blends_the_physics_term(capsys, tmp_path, monkeypatch):
    """`goectp predict --model physics` on MgO: the default's tensor moved by the shipped rule toward ε∞ + s ε_phys,
    σ the default's times the shipped factor, and the physics term reported; `--no-frame` is refused with it."""
    pytest.importorskip("sevenn")
    from pathlib import Path

    from goectp.cli import main
    from goectp.physics.combine import combine_physics
    from goectp.physics.config import PHYSICS_FILE, PhysicsConfig
    from goectp.registry import assets_dir

    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path))
    cif = str(Path(__file__).resolve().parents[1] / "assets" / "examples" / "MgO_rocksalt.cif")
    assert main(["predict", cif, "--model", "physics", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    config = PhysicsConfig.load(assets_dir() / PHYSICS_FILE)
    assert row["model"] == "physics" and row["physics_used"] and row["physics_skipped"] is None
    phys = row["physics"]
    expected = combine_physics(  # the shipped rule, by its own definition, on the parts the record reports
        config.rule,
        np.array(row["eps_default"])[None],
        np.array(row["eps_electronic"])[None],
        np.array(phys["eps_ion"])[None],
        np.array([True]),
        config.scale,
        config.weight,
        gate=config.gate,
        unstable=np.array([phys["unstable_modes"]]),
        lowest_thz=np.array([phys["softest_mode_thz"]]),
    )[0]
    np.testing.assert_allclose(row["tensor"], expected, atol=1e-9)
    assert not np.allclose(row["tensor"], row["eps_default"], atol=1e-3)  # the term moved the prediction
    assert row["eps_mean_std"] > 0 and row["calibrated"] and row["sigma_factor"] == config.sigma_factor(True)
    assert main(["predict", cif, "--model", "physics"]) == 0
    assert (
        f"physics term used: ε̄ {float(np.trace(row['eps_default']) / 3):.3f} (default) → "
        in (out := capsys.readouterr().out)
        and f"σ: the default's × {config.sigma_factor(True):.2f}" in out
    )
    assert main(["predict", cif, "--model", "physics", "--no-frame"]) == 2  # a usage error
    assert "--no-frame" in capsys.readouterr().err


def test_the_shipped_physics_description_loads():
    from goectp.physics.config import PHYSICS_FILE, PhysicsConfig
    from goectp.physics.predict import MAX_PHYSICS_SITES
    from goectp.registry import assets_dir

    config = PhysicsConfig.load(assets_dir() / PHYSICS_FILE)
    assert config.rule == "gated" and len(config.gate) == 8 and 0.5 < config.scale < 1.5
    assert 20 <= config.max_sites <= MAX_PHYSICS_SITES  # the validated range, within what ionic_physics computes
    assert config.sigma_factor(True) < 1 < config.sigma_factor(False, unstable=True)  # tighter with the term
    assert config.sigma_factor(False) == 1.0  # a cell over max_sites: the default's prediction and σ
    assert (assets_dir() / config.born_model / "MODEL_CARD.md").is_file()


def test_screen_physics_stage_reranks_the_top_of_the_high_k_list(tmp_path, monkeypatch):
    """The physics stage: the first n rows of the high-κ list re-ordered by ε̄_phys + κσ, the rest kept below; a cell
    over the model's limit gets the rule without the term, an unparseable one keeps its learned ε̄; both say why."""
    import pandas as pd

    from goectp.api import build_model
    from goectp.models import Ensemble
    from goectp.physics.config import PhysicsConfig
    from goectp.physics.model import PhysicsModel
    from goectp.screening.physics_stage import PHYSICS_COLUMNS, physics_rerank

    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path))
    torch.manual_seed(1)
    total = Ensemble([build_model(hidden=16, num_rbf=8).double() for _ in range(2)])
    electronic = Ensemble([build_model(hidden=16, num_rbf=8).double() for _ in range(2)])
    model = PhysicsModel(
        PhysicsConfig(rule="replace", scale=0.5, weight=1.0, max_sites=4), total, electronic, _born_model(5)
    )
    pool = [
        {"id": "big", "structure": rutile().as_dict()},  # 6 atoms > max_sites 4: skipped
        {"id": "nacl", "structure": primitive_rocksalt().as_dict()},
        {"id": "broken", "structure": {"sites": "not a list"}},
        {"id": "tail", "structure": primitive_rocksalt(5.0).as_dict()},  # below n: untouched
    ]
    top = pd.DataFrame(
        {"id": ["big", "nacl", "broken", "tail"], "eps_mean": [1e3, 900.0, 800.0, 700.0], "eps_mean_std": [1.0] * 4}
    )
    for name, value in zip(["eps_11", "eps_12", "eps_13", "eps_22", "eps_23", "eps_33"], [900, 1, 0, 900, 0, 900]):
        top[name] = float(value)  # the screen's tensor, which the stage corrects (not predicted again)
    out, info = physics_rerank(top, pool, 3, kappa=1.0, model=model, forces=PairSprings())
    assert set(PHYSICS_COLUMNS) <= set(out.columns) and list(out["rank_physics"]) == [1, 2, 3, 4]
    row = out.set_index("id")
    screen_tensor = np.array([[900.0, 1, 0], [1, 900, 0], [0, 0, 900]])[None]
    expected = model.correct([primitive_rocksalt()], screen_tensor, forces=PairSprings())[0]["eps_physics_mean"]
    assert row.loc["nacl", "physics_used"] and row.loc["nacl", "eps_mean_physics"] == pytest.approx(expected)
    assert not row.loc["big", "physics_used"] and "6 atoms" in row.loc["big", "physics_note"]
    # over the limit: the rule without the term, on the screen's tensor (ε̄ 900, not the table's 1e3 column)
    assert row.loc["big", "eps_mean_physics"] == pytest.approx(900) and "failed" in row.loc["broken", "physics_note"]
    assert list(out["id"][:3]) == list(out["id"][:3][np.argsort(-out["score_physics"][:3].to_numpy(), kind="stable")])
    assert out["id"].iloc[-1] == "tail" and np.isnan(row.loc["tail", "score_physics"])
    assert info["top"] == 3 and info["n_used"] == 1 and info["seconds_per_candidate"] >= 0
    model.config = PhysicsConfig(rule="replace", scale=0.5, weight=1.0, max_sites=4, sigma_scale=(0.5, 3.0))
    row = physics_rerank(top, pool, 3, kappa=1.0, model=model, forces=PairSprings())[0].set_index("id")
    assert row.loc["nacl", "score_physics"] == pytest.approx(expected + 0.5)  # ε̄ + κ k σ, with σ = 1 in the table
    assert row.loc["big", "score_physics"] == pytest.approx(900 + 1.0)  # no force constants: the default's σ


@pytest.mark.slow
def test_the_api_reaches_the_physics_model_by_name(tmp_path, monkeypatch):
    """`goectp.predict_summary(model="physics")` / `goectp.predict(model="physics")` are the shipped PhysicsModel's
    records and corrected tensor (σ: the default's calibrated σ times the factor of ``sigma_scale``)."""
    pytest.importorskip("sevenn")
    from pathlib import Path

    import goectp
    from goectp.physics.model import PhysicsModel

    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path))
    cif = Path(__file__).resolve().parents[1] / "assets" / "examples" / "MgO_rocksalt.cif"
    (record,) = goectp.predict_summary(cif, model="physics")
    (direct,) = PhysicsModel.load().predict_summary([cif])
    assert record["model"] == "physics" and record["physics_used"] == direct["physics_used"]
    np.testing.assert_allclose(record["eps_physics"], direct["eps_physics"], atol=1e-10)
    mean, sigma = goectp.predict(cif, model="physics", return_std=True)
    np.testing.assert_allclose(mean[0], record["eps_physics"], atol=1e-10)
    np.testing.assert_allclose(sigma[0], record["tensor_std"], atol=1e-12)
    assert record["calibrated"]
    _, raw = goectp.predict(cif, model="physics", return_std=True, calibrated=False)  # the members' own spread
    _, default_raw = goectp.predict(cif, model="default", return_std=True, calibrated=False)
    np.testing.assert_allclose(raw, default_raw, atol=1e-6)
    _, default_sigma = goectp.predict(cif, model="default", return_std=True)
    factor = PhysicsModel.load().config.sigma_factor(record["physics_used"], record["physics"]["unstable_modes"] > 0)
    assert factor != 1.0 and record["sigma_factor"] == factor  # the shipped model has its own σ factors
    np.testing.assert_allclose(sigma, factor * default_sigma, rtol=1e-5, atol=1e-6)  # float32 vs float64 zeros
    assert not np.allclose(raw, sigma, atol=1e-4)  # the calibration does rescale it
    (uncalibrated,) = goectp.predict_summary(cif, model="physics", calibrated=False)
    assert not uncalibrated["calibrated"]
    np.testing.assert_allclose(uncalibrated["eps_physics"], record["eps_physics"], atol=1e-10)


def test_the_physics_term_uses_the_physics_models_force_field_unless_told(tmp_path, monkeypatch):
    """`ionic_physics(forces=None)` (what `goectp predict --modes` and `predict_summary(physics=True)` call) computes
    with the force field physics.json names, so the term shown is the one the `physics` model adds; 'sevennet' when
    no physics model ships; a named force field wins."""
    import goectp.physics.predict as predict
    import goectp.registry
    from goectp.physics.config import PHYSICS_FILE, shipped_force_field

    (tmp_path / PHYSICS_FILE).parent.mkdir(parents=True)
    monkeypatch.setattr(goectp.registry, "assets_dir", lambda: tmp_path)
    assert shipped_force_field() == "sevennet"  # nothing ships
    config = {"rule": "blend", "scale": 0.8, "weight": 0.3, "force_field": "sevennet-l3i5"}
    (tmp_path / PHYSICS_FILE).write_text(json.dumps(config))
    assert shipped_force_field() == "sevennet-l3i5"
    asked = []

    def refuse(name):
        asked.append(name)
        raise RuntimeError("no force field in this test")

    monkeypatch.setattr(predict, "_force_field", refuse)
    for forces in (None, "chgnet"):
        with pytest.raises(RuntimeError, match="no force field"):
            predict.ionic_physics(primitive_rocksalt(), forces=forces, cache_dir=None)
    assert asked == ["sevennet-l3i5", "chgnet"]


def test_the_gated_model_leaves_unstable_crystals_to_the_learned_tensor_when_chosen_so(tmp_path, monkeypatch):
    """physics.json's ``keep_unstable`` (what the validation choice says): true, a crystal with unstable modes gets
    the term of its stable modes through the gate; false, it keeps the learned tensor (times the size factor) and
    says why: the shipped model must do what the evaluated candidate did."""
    from goectp.api import build_model
    from goectp.models import Ensemble
    from goectp.physics.config import PhysicsConfig
    from goectp.physics.model import PhysicsModel

    def positive(model, shift):  # + shift·I at the readout (F I Fᵀ = I): ε̄ > 0, so the gate sees the estimate
        with torch.no_grad():
            model.head.mlp[4].bias[[0, 4, 8]] += shift
        return model.double()

    monkeypatch.setenv("GOECTP_CACHE", str(tmp_path))
    torch.manual_seed(1)
    total = Ensemble([positive(build_model(hidden=16, num_rbf=8), 5.0) for _ in range(2)])
    electronic = Ensemble([positive(build_model(hidden=16, num_rbf=8), 2.0) for _ in range(2)])
    theta = (0.0,) * 8  # w = σ(0) = 1/2, size factor 1
    for keep in (True, False):
        config = PhysicsConfig(rule="gated", scale=0.5, weight=0.3, max_sites=4, gate=theta, keep_unstable=keep)
        model = PhysicsModel(config, total, electronic, _born_model(5))
        (rec,) = model.predict_summary([primitive_rocksalt()], forces=PairSprings(k=-2.0))  # every optical mode soft
        assert rec["physics"]["unstable_modes"] == 3
        learned = np.array(rec["tensor"])
        if keep:
            assert rec["physics_used"] and rec["physics_skipped"] is None
            estimate = np.array(rec["eps_electronic"]) + 0.5 * np.array(rec["physics"]["eps_ion"])
            np.testing.assert_allclose(rec["eps_physics"], learned + 0.5 * (estimate - learned), atol=1e-10)
            assert np.abs(estimate - learned).max() > 1  # the term moved it
        else:
            assert not rec["physics_used"] and "3 unstable mode(s)" in rec["physics_skipped"]
            np.testing.assert_allclose(rec["eps_physics"], learned, atol=1e-12)
    bad = tmp_path / "physics.json"
    bad.write_text(json.dumps({"rule": "gated", "scale": 0.8, "weight": 0.3, "gate": theta, "keep_unstable": "no"}))
    with pytest.raises(ValueError, match="keep_unstable must be true or false"):
        PhysicsConfig.load(bad)
