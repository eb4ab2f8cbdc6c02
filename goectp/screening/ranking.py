"""From merged per-candidate rows to the ranked result table and the two top lists."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from goectp.screening.filters import anisotropy_mask, high_k_mask, top_n
from goectp.screening.scoring import acquisition_score

REJECT_COLUMNS = ["id", "pool_index", "status", "reason_code", "reason", "source", "formula", "material_id", "n_sites"]


@dataclass
class Rankings:
    results: pd.DataFrame  # every scored candidate, with scores and ranks
    rejects: pd.DataFrame  # everything not scored: id, status, reason_code, reason
    top_high_k: pd.DataFrame
    top_anisotropy: pd.DataFrame
    unknown_gap_excluded: int  # scored candidates left out of the high-κ list because their band gap is unknown


def rank_candidates(
    table: pd.DataFrame,
    kappa: float,
    top: int,
    min_gap: float,
    aniso_min_gap: float | None,
    list_from: str | None = None,
) -> Rankings:
    """Add ``score``/``score_aniso`` (mean + κ·std) and the ranks, and select the top lists (see filters).

    ``list_from``: only rows whose ``scored_by`` is this model enter the top lists (a funnel's second stage, so
    the lists never mix the two models' scores)."""
    scored = table[table["status"] == "scored"].copy()
    rejects = table.loc[table["status"] != "scored", REJECT_COLUMNS].reset_index(drop=True)
    scored["score"] = acquisition_score(
        scored["eps_mean"].to_numpy(float), scored["eps_mean_std"].to_numpy(float), kappa
    )
    scored["score_aniso"] = acquisition_score(
        scored["anisotropy"].to_numpy(float), scored["anisotropy_std"].to_numpy(float), kappa
    )
    hk = high_k_mask(scored, min_gap)
    an = anisotropy_mask(scored, aniso_min_gap)
    if list_from is not None:
        second = (scored["scored_by"] == list_from).to_numpy(bool)
        hk, an = hk & second, an & second
    top_hk = top_n(scored, hk, "score", top)
    top_an = top_n(scored, an, "score_aniso", top)
    scored["rank_high_k"] = pd.Series(pd.NA, index=scored.index, dtype="Int64")
    scored["rank_anisotropy"] = pd.Series(pd.NA, index=scored.index, dtype="Int64")
    for column, frame in (("rank_high_k", top_hk), ("rank_anisotropy", top_an)):
        ranks = dict(zip(frame["id"], frame["rank"], strict=True))
        scored[column] = scored["id"].map(ranks).astype("Int64")
    unknown_gap = int((scored["band_gap"].isna() & np.isfinite(scored["score"])).sum())
    return Rankings(scored.reset_index(drop=True), rejects, top_hk, top_an, unknown_gap)
