"""A model written ``A,B`` (``benchmarks/experiments/ensemble_search.py``) is the sum of two ensembles' held-out
predictions (:mod:`goectp.evaluation.ensembles`)."""

from __future__ import annotations

import numpy as np
import pytest

from goectp.evaluation import ensembles as bench


def _held(members: np.ndarray, true: np.ndarray, ids: list[str]) -> dict:
    return {"members": members, "true": true, "ids": ids, "test": np.ones((len(members), len(ids)), dtype=bool)}


def test_a_comma_sums_the_parts_members_and_targets(monkeypatch):
    rng = np.random.default_rng(0)
    ids = ["mp-1", "mp-2", "mp-3"]
    parts = {
        "electronic": _held(rng.normal(size=(5, 3, 3, 3)), rng.normal(size=(3, 3, 3)), ids),
        "runs/ionic": _held(rng.normal(size=(5, 3, 3, 3)), rng.normal(size=(3, 3, 3)), ids),
    }
    monkeypatch.setattr(bench, "heldout_predictions", lambda spec: parts[spec])
    held = bench.heldout_sum("electronic,runs/ionic")
    np.testing.assert_array_equal(held["members"], parts["electronic"]["members"] + parts["runs/ionic"]["members"])
    np.testing.assert_array_equal(held["true"], parts["electronic"]["true"] + parts["runs/ionic"]["true"])
    assert bench.heldout_sum("electronic") is parts["electronic"]
    assert bench.model_label("electronic,runs/ionic") == "electronic,ionic"


def test_parts_evaluated_on_different_records_are_refused(monkeypatch):
    members, true = np.zeros((5, 2, 3, 3)), np.zeros((2, 3, 3))
    parts = {"a": _held(members, true, ["mp-1", "mp-2"]), "b": _held(members, true, ["mp-1", "mp-9"])}
    monkeypatch.setattr(bench, "heldout_predictions", lambda spec: parts[spec])
    with pytest.raises(ValueError, match="same records"):
        bench.heldout_sum("a,b")
