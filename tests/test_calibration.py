"""Tensor statistics (one α convention), calibrated σ, and out-of-distribution flags."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from goectp.tensor_stats import anisotropy, ensemble_statistics, summary_records
from goectp.uncertainty import (
    Calibration,
    attach_calibration,
    calibration_points,
    coverage,
    fit_calibration,
    tau_hat,
)


# ---------------------------------------------------------------------------------------------------- tensor stats
def test_anisotropy_is_inf_for_nonpositive_and_sigma_uses_all_members():
    good = np.diag([2.0, 3.0, 4.0])
    bad = np.diag([-1.0, 3.0, 4.0])
    assert anisotropy(good) == pytest.approx(2.0)
    assert math.isinf(anisotropy(bad))
    # one of three members has λmin <= 0: σ(α) is inf (no positive-only subset), the flag counts it
    stats = ensemble_statistics(np.stack([good, good * 1.1, bad])[:, None])
    assert math.isinf(stats["anisotropy_std"][0]) and stats["members_nonpositive"][0] == 1
    assert not stats["nonpositive"][0]  # the mean tensor itself is positive definite


def test_explorer_summary_uses_the_same_convention():
    from explorer.geometry import summarize_tensor

    assert math.isinf(summarize_tensor(np.diag([0.0, 1.0, 2.0])).anisotropy)
    assert summarize_tensor(np.diag([1.0, 1.0, 3.0])).anisotropy == pytest.approx(3.0)


# ---------------------------------------------------------------------------------------------------- calibration
def synthetic_held(n: int = 600, m: int = 5, seed: int = 0, noise_ratio: float = 4.0) -> dict:
    """Members whose spread is ``noise_ratio`` times narrower than their error: calibration must widen σ."""
    rng = np.random.default_rng(seed)
    eps = rng.uniform(3, 30, n)
    true = np.einsum("n,ij->nij", eps, np.eye(3))
    spread = 0.05 * eps
    shared = rng.normal(0, noise_ratio * spread)  # the error the members share (what a spread cannot see)
    members = true[None] + (shared + rng.normal(0, 1, (m, n)) * spread)[..., None, None] * np.eye(3)
    trained = rng.random((m, n)) < 0.5  # about half the members did not train on each record
    elements = [{"O", "Ti"} if i % 2 else {"O", "Mg"} for i in range(n)]
    pooled = rng.normal(0, 1, (m, n, 8))
    return {
        "members": members,
        "true": true,
        "trained": trained,
        "test": ~trained,
        "ids": [str(i) for i in range(n)],
        "elements": elements,
        "pooled": pooled,
        "model": "synthetic",
        "files": [],
        "fingerprint": "x",
    }


def test_calibration_widens_too_narrow_sigma_to_the_target_coverage():
    held = synthetic_held()
    cal = fit_calibration(held, seed=0)
    pts = calibration_points(held)["eps_mean"]
    raw = pts["tau"] * np.sqrt(4 / 5)
    assert coverage(pts["err"], raw, 2) < 0.6  # the raw spread is far too narrow
    calibrated = cal.sigma("eps_mean", raw, pts["mu"], 5)
    assert np.all(calibrated >= raw)
    assert 0.88 <= coverage(pts["err"], calibrated, 2) <= 0.97
    assert 0.55 <= coverage(pts["err"], calibrated, 1) <= 0.80
    sel = cal.quantities["eps_mean"]["selection"][cal.quantities["eps_mean"]["form"]]
    assert 0.85 <= sel["coverage_2sigma_oof"] <= 0.98  # out-of-fold, not only in-sample


def test_calibration_roundtrips_through_json(tmp_path):
    cal = fit_calibration(synthetic_held(n=300), seed=0)
    cal.save(tmp_path)
    back = Calibration.load(tmp_path)
    stats = ensemble_statistics(synthetic_held(n=20)["members"])
    a, b = cal.apply(stats), back.apply(stats)
    np.testing.assert_allclose(a["eps_mean_std"], b["eps_mean_std"], rtol=1e-6)
    np.testing.assert_array_equal(a["mean"], stats["mean"])  # calibration never changes the prediction
    assert np.all(a["eps_mean_std"] > a["eps_mean_std_raw"])
    assert (tmp_path / "calibration.json").stat().st_size < 50_000


def test_tau_hat_puts_sub_ensembles_on_one_scale():
    assert tau_hat(np.array([1.0]), 2)[0] == pytest.approx(math.sqrt(2))
    assert tau_hat(np.array([1.0]), 1)[0] == 0.0


def test_ood_flags_unseen_rare_elements_far_embeddings_and_disagreement():
    held = synthetic_held(n=300)
    cal = fit_calibration(held, seed=0)
    assert cal.element_counts["O"] > 100 and "Np" not in cal.element_counts
    cal.element_counts["Ba"] = 2  # rare
    near = np.zeros((5, 1, 8))
    far = np.full((5, 1, 8), 50.0)
    stats = {"eps_mean": np.array([10.0]), "eps_mean_std": np.array([0.01]), "n_members": np.array([5])}
    ok = cal.ood([{"O", "Ti"}], stats, near)[0]
    assert not ok["flag"] and ok["reasons"] == []
    assert "Np" in cal.ood([{"O", "Np"}], stats, near)[0]["reasons"][0]
    assert "rare" in cal.ood([{"O", "Ba"}], stats, near)[0]["reasons"][0]
    assert "embedding" in cal.ood([{"O", "Ti"}], stats, far)[0]["reasons"][0]
    wild = dict(stats, eps_mean_std=np.array([9.0]))
    assert "disagree" in cal.ood([{"O", "Ti"}], wild, near)[0]["reasons"][0]


# ---------------------------------------------------------------------------------------------------- API
@pytest.fixture(scope="module")
def tiny_ensemble():
    from goectp.api import Ensemble, build_model

    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        members.append(build_model("goectp", hidden=16, num_rbf=8).double().eval())
    return Ensemble(members)


def test_predict_returns_calibrated_sigma_and_summary_flags_unseen_element(tiny_ensemble):
    import goectp

    cal = Calibration(
        quantities={
            "tensor": {"form": "scale", "s": 3.0, "c": 0.0},
            "eps_mean": {"form": "scale", "s": 3.0, "c": 0.0},
            "anisotropy": {"form": "propagated", "k": 1.0},
        },
        element_counts={"Mg": 50, "O": 100},
        disagreement_p99=float("inf"),
    )
    mgo = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    npo = Structure(Lattice.cubic(4.2), ["Np", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    attach_calibration(tiny_ensemble, None)
    mean_raw, std_raw = goectp.predict([mgo], tiny_ensemble, return_std=True)
    attach_calibration(tiny_ensemble, cal)
    mean, std = goectp.predict([mgo], tiny_ensemble, return_std=True)
    np.testing.assert_array_equal(mean, mean_raw)
    diag = np.arange(3)
    np.testing.assert_allclose(std[0][diag, diag], 3.0 * np.sqrt(2) * std_raw[0][diag, diag], rtol=1e-9)
    summary = goectp.predict_summary([mgo, npo], tiny_ensemble)
    assert summary[0]["calibrated"] and not summary[0]["ood"]["flag"]
    assert summary[1]["ood"]["flag"] and "Np" in summary[1]["ood"]["reasons"][0]
    assert summary[0]["eps_mean"] == pytest.approx(np.trace(mean[0]) / 3)
    assert summary[0]["eps_mean_std"] > summary[0]["eps_mean_std_raw"]
    assert summary_records(ensemble_statistics(np.zeros((2, 1, 3, 3)) + np.eye(3)))[0]["anisotropy"] == 1.0
    attach_calibration(tiny_ensemble, None)


# ---------------------------------------------------------------------------------------------------- explorer
def test_tensor_card_shows_calibrated_sigma_and_a_yellow_ood_alert(tiny_ensemble):
    from explorer.models import ModelSelector
    from explorer.tensor_view import TensorEllipsoid

    cal = Calibration(
        quantities={
            "tensor": {"form": "scale", "s": 3.0, "c": 0.0},
            "eps_mean": {"form": "scale", "s": 3.0, "c": 0.0},
            "anisotropy": {"form": "propagated", "k": 1.0},
        },
        element_counts={"Mg": 50, "O": 100},
    )
    attach_calibration(tiny_ensemble, cal)
    try:
        models = ModelSelector(models={"tiny": tiny_ensemble}, model_name="tiny")
        npo = Structure(Lattice.cubic(4.2), ["Np", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        card = TensorEllipsoid(structure=npo, models=models)
        body = card._body().object
        assert "goectp-ood alert alert-warning" in body and "Out of distribution" in body and "Np" in body
        table = card.table()
        raw = models.predict_members([npo])[:, 0]
        raw_eps_std = (np.trace(raw, axis1=-2, axis2=-1) / 3).std()
        eps_row = table[table["quantity"].str.startswith("ε̄")].iloc[0]
        assert eps_row["ensemble std"] == pytest.approx(3.0 * math.sqrt(2) * raw_eps_std, rel=1e-6)
        assert card.export_dict()["ood"]["flag"] and card.export_dict()["sigma"] == "calibrated"
        mgo = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        card.structure = mgo
        assert "goectp-ood" not in card._body().object and "goectp-in-distribution" in card._body().object
    finally:
        attach_calibration(tiny_ensemble, None)


def test_map_hides_metals_by_default_and_marks_the_pareto_front(tmp_path):
    import pandas as pd

    from explorer.screening import GAP_METAL, ScreeningData, ScreeningMap, pareto_front

    rows = [("m", 0.0, 50.0), ("u", None, 30.0), ("a", 1.0, 20.0), ("b", 3.0, 10.0), ("c", 2.0, 5.0)]
    frame = pd.DataFrame(
        [
            {
                "id": i,
                "formula": i.upper() + "O",
                "source": "s",
                "band_gap": g,
                "n_sites": 2,
                "eps_mean": e,
                "eps_mean_std": 1.0,
                "anisotropy": 1.0,
                "anisotropy_std": 0.1,
                "score": e + 1.0,
            }
            for i, g, e in rows
        ]
    )
    frame.to_csv(tmp_path / "screening_results.csv", index=False)
    smap = ScreeningMap(data=ScreeningData(tmp_path, pool_dir=tmp_path))
    assert set(smap.filtered["id"]) == {"u", "a", "b", "c"}  # the metal is hidden, the unknown gap is not
    smap.gap_classes = [*smap.gap_classes, GAP_METAL]
    assert "m" in set(smap.filtered["id"])
    front = pareto_front(np.array([1.0, 3.0, 2.0]), np.array([20.0, 10.0, 5.0]))
    assert front.tolist() == [0, 1]  # (2 eV, 5) is dominated by (3 eV, 10)
    assert "Acquisition score" in smap.score_explanation() and "raw ensemble std" in smap.score_explanation()


def test_split_means_average_the_members_of_each_split_and_refuse_a_missing_one():
    from goectp.uncertainty import split_means

    tests = np.array([[True, False, False], [False, True, True]])
    members = np.arange(3 * 3 * 9, dtype=float).reshape(3, 3, 3, 3)
    held = {"members": members, "test": [tests[1], tests[0], tests[1]], "model": "toy"}
    got = split_means(held, tests)
    np.testing.assert_array_equal(got[0], members[1])
    np.testing.assert_array_equal(got[1], (members[0] + members[2]) / 2)
    with pytest.raises(ValueError, match="no member was tested on split 1"):
        split_means({"members": members[:1], "test": [tests[0]]}, tests)


def test_relative_form_keeps_the_member_spread():
    """Errors that a relative floor alone would cover: the fit still keeps s > 0 (σ follows the members'
    disagreement) and the ±2σ coverage lands inside its band with the fitting margin."""
    from goectp.uncertainty.sigma import FIT_MARGIN, TARGET_2SIGMA, fit_form

    rng = np.random.default_rng(1)
    mu = rng.uniform(2, 50, 4000)
    err = 0.1 * mu * rng.standard_normal(4000)
    tau = rng.uniform(0.01, 0.2, 4000)  # spread unrelated to the error
    p = fit_form(err, tau, mu, "scale+relative")
    assert p["s"] > 1e-6
    sig = np.sqrt((p["s"] * tau) ** 2 + (p["c"] * mu) ** 2)
    assert TARGET_2SIGMA[0] + FIT_MARGIN - 0.005 <= coverage(err, sig, 2) <= TARGET_2SIGMA[1]


@pytest.mark.parametrize("name", ["combined", "fast", "electronic"])
def test_shipped_calibrations_cover_the_band_out_of_fold(name):
    """What a user of the shipped models reads as ±2σ covers 90-97 % of held-out records (5-fold, out of fold)."""
    from goectp.registry import resolve_model_path

    cal = Calibration.load(resolve_model_path(name) / "calibration.json")
    for quantity, params in cal.quantities.items():
        selected = params["selection"][params["form"]]
        assert 0.90 <= selected["coverage_2sigma_oof"] <= 0.97, (name, quantity, selected)


def test_fit_factor_recovers_the_scale_of_gaussian_errors():
    """Errors drawn with σ = 2.5 × base: the fitted factor gives ±2σ coverage inside the 90-97 % band and lands
    near 2.5 (a Gaussian's ±1σ 68 % also lies in its band, so the tie-break picks the Gaussian coverages)."""
    from goectp.uncertainty import coverage, fit_factor

    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 2.0, 20_000)
    err = np.abs(rng.normal(size=base.size)) * 2.5 * base
    k = fit_factor(err, base)
    assert k == pytest.approx(2.5, rel=0.03)
    assert 0.90 <= coverage(err, k * base, 2) <= 0.97 and 0.60 <= coverage(err, k * base, 1) <= 0.75


def test_the_reliability_plot_leaves_the_callers_matplotlib_backend_alone(tmp_path):
    import matplotlib

    from goectp.release.calibrate import LEVELS, plot_reliability

    before = matplotlib.get_backend()
    matplotlib.use("svg")  # a caller's own backend (a notebook's, say): not Agg
    try:
        curve = {"before": np.asarray(LEVELS) * 0.8, "after": np.asarray(LEVELS)}
        path = plot_reliability({"eps_mean": curve, "tensor": curve}, tmp_path / "r.png", "title")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
