"""Out-of-distribution statistics: element counts and the distance of a pooled embedding to the training set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

RARE_THRESHOLD = 5  # an element in fewer training records than this is "rare"


def embedding_distance(pooled: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
    """RMS z-score distance of ``pooled [n, D]`` to a training set summarised by per-dimension mean and std."""
    mu, sd = np.asarray(stats["mean"]), np.asarray(stats["std"])
    return np.sqrt(np.mean(((pooled - mu) / sd) ** 2, axis=-1))


def embedding_stats(pooled: np.ndarray, trained: np.ndarray) -> list[dict[str, Any]]:
    """Per member: mean/std of its training records' pooled features and the 99th percentile of their distances."""
    out = []
    for m in range(pooled.shape[0]):
        x = pooled[m][trained[m]].astype(np.float64)
        st = {"mean": x.mean(axis=0), "std": np.maximum(x.std(axis=0), 1e-6)}
        d = embedding_distance(x, st)
        out.append(
            {
                "mean": [float(f"{v:.5g}") for v in st["mean"]],
                "std": [float(f"{v:.5g}") for v in st["std"]],
                "p99": float(np.percentile(d, 99)),
            }
        )
    return out


def element_counts(elements: Sequence[set[str]], records: np.ndarray) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in np.flatnonzero(records):
        for el in elements[i]:
            counts[el] = counts.get(el, 0) + 1
    return dict(sorted(counts.items()))
