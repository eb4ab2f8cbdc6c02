"""The ε̄ Spearman and its rank-error shares (:mod:`goectp.evaluation.metrics`, used by
``benchmarks/experiments/rank_error_sources.py``), checked against hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from goectp.evaluation import metrics as bench


def _isotropic(values) -> np.ndarray:
    return np.asarray(values, dtype=float)[:, None, None] * np.eye(3)


def test_a_perfect_prediction_ranks_perfectly_and_has_no_error_to_share():
    true = _isotropic([2.0, 5.0, 12.0, 20.0, 50.0, 150.0])
    test = np.array([[True] * 6, [True, False, True, False, True, True]])
    assert bench.mean_spearman(np.stack([true, true]), true, test) == pytest.approx(1.0)
    assert bench.rank_error_share(np.stack([true, true]), true, test) == [0.0, 0.0, 0.0, 0.0]


def test_swapping_two_neighbours_puts_all_rank_error_in_their_bin():
    true = _isotropic([2.0, 5.0, 12.0, 20.0, 50.0, 150.0])
    pred = _isotropic([2.0, 5.0, 20.0, 12.0, 50.0, 150.0])  # the two 10–30 crystals swap places
    test = np.ones((1, 6), dtype=bool)
    # Spearman = 1 - 6 Σd² / (n (n² - 1)) with Σd² = 2, n = 6
    assert bench.mean_spearman(pred[None], true, test) == pytest.approx(1 - 6 * 2 / (6 * 35))
    assert bench.rank_error_share(pred[None], true, test) == pytest.approx([0.0, 1.0, 0.0, 0.0])
