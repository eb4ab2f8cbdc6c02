"""Held-out predictions of an ensemble, or of a *sum* of ensembles written ``A,B``.

An ε∞ model and an ionic-only model, each with one member per split, make a static-tensor model when their members
are added split by split (``electronic,runs/ionic``); their targets must then add up to the total, which the caller
checks against the data. Member predictions come from (and are cached like)
:func:`goectp.uncertainty.heldout_predictions`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from goectp.uncertainty import heldout_predictions

__all__ = ["heldout_sum", "model_label"]


def model_label(spec: str) -> str:
    """A short name for a model spec: each comma-separated part that is a path is shown by its folder name."""
    return ",".join(Path(part).name if "/" in part else part for part in spec.split(","))


def heldout_sum(spec: str) -> dict:
    """Held-out predictions of ``spec``; ``A,B`` sums the parts' members and targets (e.g. ε∞ + ionic = total).

    Raises ``ValueError`` when the parts were not evaluated on the same records with the same number of members.
    """
    parts = [heldout_predictions(part) for part in spec.split(",")]
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    for part in parts[1:]:
        if not np.array_equal(part["ids"], first["ids"]) or len(part["members"]) != len(first["members"]):
            raise ValueError(f"{spec}: the parts were not evaluated on the same records and splits")
    return {
        **first,
        "members": np.sum([p["members"] for p in parts], axis=0),
        "true": np.sum([p["true"] for p in parts], axis=0),
    }
