"""Compare predictions with DFT-validated screening hits (``reference/*.csv``: ``mp-id`` + six components of the
electronic, ionic and total tensors, from Mao, Li, Tan, arXiv:2405.09052).

A reference hit *overlaps* the pool when its ``mp-id`` equals a candidate's ``id`` or ``material_id``. The shared
pool was built without Materials Project DFPT records, so the overlap is small; every overlapping hit is reported,
also when the candidate was rejected or excluded (with the reason), and the counts say how many were not in the pool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from goectp.screening.scoring import COMPONENT_NAMES, anisotropy_ratio, tensors_from_components

COMPARISON_COLUMNS = [
    "reference_list",
    "mp_id",
    "candidate_id",
    "status",
    "reason",
    "formula",
    "band_gap",
    "eps_mean_dft",
    "eps_mean_pred",
    "eps_mean_std",
    "eps_mean_error",
    "anisotropy_dft",
    "anisotropy_pred",
    "anisotropy_std",
    "anisotropy_error",
    "rank_high_k",
    "rank_anisotropy",
]


def load_reference_hits(directory: str | os.PathLike, tensor: str = "total") -> pd.DataFrame:
    """One row per (list, mp-id): ``reference_list``, ``mp_id``, ``eps_mean_dft``, ``anisotropy_dft`` and the
    eigenvalues of the DFT ``tensor`` ('total', 'electronic' or 'ionic')."""
    directory = Path(directory)
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no reference CSV files in {directory}")
    frames = []
    for f in files:
        try:
            raw = pd.read_csv(f)
        except Exception as exc:  # not CSV text
            raise ValueError(f"{f.name}: not a readable CSV file ({type(exc).__name__}: {exc})"[:300]) from exc
        cols = [f"{tensor}_{c}" for c in COMPONENT_NAMES]
        missing = [c for c in ["mp-id", *cols] if c not in raw.columns]
        if missing:
            raise ValueError(f"{f.name}: missing columns {missing}")
        try:
            values = raw[cols].to_numpy(float)
        except ValueError as exc:
            raise ValueError(f"{f.name}: the {tensor} components must be numbers ({exc})"[:300]) from exc
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{f.name}: the {tensor} components contain empty, NaN or infinite cells")
        eig = np.linalg.eigvalsh(tensors_from_components(values))
        alpha, _ = anisotropy_ratio(eig)
        frames.append(
            pd.DataFrame(
                {
                    "reference_list": f.stem,
                    "mp_id": raw["mp-id"].astype(str),
                    "eps_mean_dft": eig.mean(axis=1),
                    "anisotropy_dft": alpha,
                    "dft_eig1": eig[:, 0],
                    "dft_eig2": eig[:, 1],
                    "dft_eig3": eig[:, 2],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@dataclass
class ReferenceComparison:
    table: pd.DataFrame  # one row per overlapping (reference hit, candidate)
    n_reference: int  # reference rows (over all lists)
    n_in_pool: int  # of those, found in the screened pool
    n_scored: int  # of those, scored (not rejected/excluded)

    def summary(self) -> str:
        lines = [
            f"DFT reference hits: {self.n_reference}; in the screened pool: {self.n_in_pool}; scored: {self.n_scored}"
        ]
        scored = self.table[self.table["status"] == "scored"]
        if len(scored):
            mae = np.abs(scored["eps_mean_error"]).mean()
            lines.append(f"  mean |error| of eps_mean on the overlap: {mae:.2f}")
        return "\n".join(lines)


def compare_with_reference(
    results: pd.DataFrame, rejects: pd.DataFrame, reference: pd.DataFrame
) -> ReferenceComparison:
    """Predicted vs DFT ε̄ and α for reference hits found in the pool (by ``id`` or ``material_id``)."""
    everything = pd.concat(
        [results.assign(reason=pd.NA) if "reason" not in results else results, rejects], ignore_index=True
    )
    rows = []
    for ref in reference.itertuples(index=False):
        hit = everything[(everything["id"] == ref.mp_id) | (everything["material_id"] == ref.mp_id)]
        for cand in hit.to_dict("records"):
            pred_eps, pred_alpha = cand.get("eps_mean", np.nan), cand.get("anisotropy", np.nan)
            rows.append(
                {
                    "reference_list": ref.reference_list,
                    "mp_id": ref.mp_id,
                    "candidate_id": cand["id"],
                    "status": cand["status"],
                    "reason": cand.get("reason"),
                    "formula": cand.get("formula"),
                    "band_gap": cand.get("band_gap"),
                    "eps_mean_dft": ref.eps_mean_dft,
                    "eps_mean_pred": pred_eps,
                    "eps_mean_std": cand.get("eps_mean_std", np.nan),
                    "eps_mean_error": pred_eps - ref.eps_mean_dft,
                    "anisotropy_dft": ref.anisotropy_dft,
                    "anisotropy_pred": pred_alpha,
                    "anisotropy_std": cand.get("anisotropy_std", np.nan),
                    "anisotropy_error": pred_alpha - ref.anisotropy_dft,
                    "rank_high_k": cand.get("rank_high_k"),
                    "rank_anisotropy": cand.get("rank_anisotropy"),
                }
            )
    table = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    for col in (
        "eps_mean_pred",
        "eps_mean_std",
        "eps_mean_error",
        "anisotropy_pred",
        "anisotropy_std",
        "anisotropy_error",
        "band_gap",
    ):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    in_pool = table[["reference_list", "mp_id"]].drop_duplicates()
    scored = table.loc[table["status"] == "scored", ["reference_list", "mp_id"]].drop_duplicates()
    return ReferenceComparison(table, len(reference), len(in_pool), len(scored))
