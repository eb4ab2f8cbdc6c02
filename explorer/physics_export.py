"""The physics view's downloads (no Panel): the physics term of the crystal on screen as JSON (ε_ion, every optical
mode, the Born charges, the physics model's ε ± σ where shown) and its modes as CSV, as links that carry the file
(:func:`explorer.html_blocks.download_link`: no server round trip)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd

from explorer.html_blocks import download_link
from explorer.physics_tables import born_rows, mode_rows


def physics_export_dict(
    physics: Any,
    formula: str,
    corrected: np.ndarray | None = None,
    learned: np.ndarray | None = None,
    sigma: float | None = None,
    how: str = "",
    dft_ionic: np.ndarray | None = None,
) -> dict[str, Any]:
    """Plain numbers of ``physics`` (an :class:`~goectp.physics.predict.IonicPhysics`): ε_ion (e²/(ε₀Ω) Z* Φ⁺ Z*ᵀ,
    point-group averaged), every optical mode (:func:`~explorer.physics_tables.mode_rows`), the Born charges per
    site of the canonical cell, the force constants' origin; with ``corrected``, the physics model's ε, its σ of ε̄,
    the learned ε it corrects and how; with ``dft_ionic``, the record's DFT ε_ion."""
    fc = physics.force_constants
    modes, _ = mode_rows(physics, max_rows=len(physics.modes.frequency_thz))
    out: dict[str, Any] = {
        "formula": formula,
        "eps_ion": np.asarray(physics.tensor).tolist(),
        "eps_ion_mean": float(physics.eps_mean),
        "unstable_modes": int(physics.modes.num_unstable),
        "modes": modes,
        "born_charges": [{k: r[k] for k in ("site", "species", "tensor", "spread")} for r in born_rows(physics)],
        "force_constants": {"force_field": fc.force_field, "displaced_cells": fc.num_displacements},
        "units": {"eps": "relative permittivity", "born_charges": "e", "frequency": "THz and cm^-1"},
    }
    if corrected is not None:
        out["physics_model"] = {
            "eps": np.asarray(corrected).tolist(),
            "eps_mean": float(np.trace(corrected) / 3),
            "eps_mean_sigma": sigma,
            "learned_eps": None if learned is None else np.asarray(learned).tolist(),
            "how": how,
        }
    if dft_ionic is not None:
        out["dft_eps_ion"] = np.asarray(dft_ionic, float).tolist()
    return out


def modes_csv(physics: Any, formula: str) -> str:
    """One row per optical mode: index, frequency (THz, cm⁻¹), share of ε̄_ion, |mode charge|, in the sum or not."""
    rows, _ = mode_rows(physics, max_rows=len(physics.modes.frequency_thz))
    buf = io.StringIO()
    pd.DataFrame([{"formula": formula, **row} for row in rows]).to_csv(buf, index=False)
    return buf.getvalue()


def physics_download_links(physics: Any, formula: str, **model_part: Any) -> str:
    """The *Physics JSON* and *Modes CSV* links (``model_part``: the keywords of :func:`physics_export_dict`)."""
    document = json.dumps(physics_export_dict(physics, formula, **model_part), indent=2)
    return (
        "<div style='display:flex;gap:12px;margin-top:6px'>"
        + download_link(document, "goectp-physics.json", "application/json", "Physics JSON", "goectp-physics-json")
        + download_link(modes_csv(physics, formula), "goectp-modes.csv", "text/csv", "Modes CSV", "goectp-modes-csv")
        + "</div>"
    )
