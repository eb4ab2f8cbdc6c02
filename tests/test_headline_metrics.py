"""The headline metrics of the shipped ensembles (:func:`goectp.evaluation.metrics.headline_metrics`), by hand."""

from __future__ import annotations

import numpy as np
import pytest

from goectp.evaluation.metrics import EPS_BINS, headline_metrics, split_scores


def _isotropic(values) -> np.ndarray:
    return np.asarray(values, dtype=float)[:, None, None] * np.eye(3)


def test_headline_metrics_of_a_hand_made_case():
    true = _isotropic([2.0, 5.0, 12.0, 20.0, 50.0, 150.0])
    pred = true.copy()
    pred[5] = np.eye(3) * 120.0  # the ≥ 100 record under-predicted by 30 on the diagonal: component error 10
    pred[0, 0, 1] = pred[0, 1, 0] = 0.9  # an off-diagonal error of 0.9 twice: component error 0.2 on a ε̄ < 10 record
    out = headline_metrics(pred, true, np.array(["cubic"] * 5 + ["triclinic"]))
    assert out["n"] == 6
    assert out["mae"] == pytest.approx((0.2 + 10.0) / 6)
    assert out["mae_filtered"] == pytest.approx(0.2 / 5)  # the record with |ε| ≥ 100 is left out
    assert out["spearman_eps_mean"] == pytest.approx(1.0)  # 120 still ranks first
    assert out["top5_recall"] == 1.0  # 5 % of 6 records rounds to the top 1
    assert out["bin 0-10"] == pytest.approx(0.1) and out["n bin 0-10"] == 2
    assert out["bin 100-inf"] == pytest.approx(10.0) and out["eps ratio 100-inf"] == pytest.approx(0.8)
    assert out["cubic"] == pytest.approx(0.2 / 5) and out["triclinic"] == pytest.approx(10.0)
    assert np.isnan(out["hexagonal"])
    assert [f"{lo}-{hi}" for lo, hi in EPS_BINS] == ["0-10", "10-30", "30-100", "100-inf"]


def test_a_swapped_top_record_costs_recall_and_rank():
    true = _isotropic(np.arange(1.0, 41.0))  # 40 records: the top 5 % is the top 2
    pred = true.copy()
    pred[39], pred[0] = true[0], true[39]  # the largest and the smallest swap places
    out = headline_metrics(pred, true)
    assert out["top5_recall"] == 0.5 and out["spearman_eps_mean"] < 0.9
    assert "cubic" not in out  # no systems given, no per-system MAE


def test_split_scores_score_each_split_on_its_own_rows():
    true = _isotropic([1.0, 2.0, 3.0, 4.0])
    members = np.stack([true + 1.0, true])  # member 0 is off by 1 everywhere, member 1 exact
    sets = np.array([[True, True, False, False], [False, False, True, True]])
    mae, rho = split_scores([members], true, sets)
    np.testing.assert_allclose(mae, [1.0, 0.0])  # off by 1 in all 9 components
    np.testing.assert_allclose(rho, [1.0, 1.0])
