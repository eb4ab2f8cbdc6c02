"""Calibrate an ensemble's σ and store its OOD statistics: ``<ensemble folder>/calibration.json``.

Re-run whenever an ensemble is re-exported (:func:`goectp.release.export_ensemble` calls it). The member predictions
of the data set's records are cached in ``runs/calibration/`` (keyed by the members' and the data file's sha256),
so a re-run after a change of the calibration code takes seconds. How the calibration works:
:mod:`goectp.uncertainty`. It also writes a reliability diagram (``reliability.png``) and a "Calibration" section
of the model card.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from goectp.registry import resolve_model_path
from goectp.uncertainty import (
    CALIBRATION_FILE,
    Calibration,
    calibrated_sigma,
    calibration_points,
    fit_calibration,
    heldout_predictions,
)

#: Nominal coverage levels of the reliability diagram.
LEVELS = np.linspace(0.05, 0.99, 20)


def reliability(err: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Observed fraction of |err| within the central Gaussian interval of each nominal level in ``LEVELS``."""
    from scipy.stats import norm

    z = norm.ppf(0.5 + LEVELS / 2)
    ok = np.isfinite(err) & np.isfinite(sigma) & (sigma > 0)
    return np.array([np.mean(np.abs(err[ok]) <= k * sigma[ok]) for k in z])


def reliability_curves(held: dict, cal: Calibration) -> dict[str, dict[str, np.ndarray]]:
    """Before/after curves for ε̄ and the diagonal components on the calibration points."""
    pts = calibration_points(held)
    out = {}
    for q in ("eps_mean", "tensor"):
        p = pts[q]
        raw = p["tau"] * np.sqrt(4 / 5)  # the raw 5-member population std the API used to return
        after = calibrated_sigma(cal.quantities[q], raw, p["mu"], 5)
        out[q] = {"before": reliability(p["err"], raw), "after": reliability(p["err"], after)}
    return out


def plot_reliability(curves: dict, path: Path, title: str) -> Path:
    """The reliability diagram (before/after, ε̄ and the diagonal components) as a PNG at ``path``."""
    from matplotlib.figure import Figure  # not pyplot: the caller's backend (a notebook's) stays as it is

    fig = Figure(figsize=(8, 3.8))
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (q, label) in zip(axes, (("eps_mean", "ε̄ (mean eigenvalue)"), ("tensor", "diagonal components"))):
        ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--", label="ideal")
        ax.plot(LEVELS, curves[q]["before"], "o-", color="#d62728", ms=3, label="raw member std")
        ax.plot(LEVELS, curves[q]["after"], "o-", color="#1f77b4", ms=3, label="calibrated σ")
        ax.set_title(label)
        ax.set_xlabel("nominal coverage (Gaussian interval)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("observed coverage (held-out)")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)  # small: one per shipped ensemble, in git
    return path


def card_section(cal: Calibration, name: str) -> str:
    """The model card's "Calibration" section: the fitted forms, their coverage and the OOD thresholds."""
    rows = []
    for q, label in (
        ("tensor", "tensor components (fitted on diagonals)"),
        ("eps_mean", "ε̄"),
        ("anisotropy", "α = λmax/λmin"),
    ):
        p = cal.quantities[q]
        sel = p["selection"][p["form"]]
        params = f"k = {p['k']:.3g}" if p["form"] == "propagated" else f"s = {p['s']:.3g}, c = {p['c']:.3g}"
        rows.append(
            f"| {label} | {p['form']} | {params} | {p['n_points']} | "
            f"{100 * p['coverage_raw']['1sigma']:.0f} % / {100 * p['coverage_raw']['2sigma']:.0f} % | "
            f"{100 * sel['coverage_1sigma_oof']:.0f} % / {100 * sel['coverage_2sigma_oof']:.0f} % |"
        )
    return f"""## Calibration

`calibration.json` (written by `goectp ensemble calibrate --model {name}`) rescales the member spread
into a calibrated σ: σ² = (s·τ̂)² + (c·|μ|)², τ̂ = member std with ddof=1; σ(α) = k·α·√((σ₃/λ₃)² + (σ₁/λ₁)²)
from the calibrated eigenvalue σ's ("propagated"). Fitted on held-out
**sub-ensembles**: for each record, the members that did not train on it ({cal.meta.get("n_calibration_records")}
records are unseen by ≥ 2 members). Coverage: raw = the uncalibrated member std, calibrated = 5-fold out-of-fold.

| quantity | form | parameters | points | raw ±1σ / ±2σ | calibrated ±1σ / ±2σ |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Out-of-distribution flags (`goectp predict`, `goectp.predict_summary`, explorer, screening): an element in no
training record or in fewer than {cal.rare_threshold}; a pooled-embedding distance above the training set's
99th percentile (per member); raw σ(ε̄)/|ε̄| above {cal.disagreement_p99:.3f} (99th percentile of the calibration
points). ![reliability diagram](reliability.png)
"""


def update_card(folder: Path, section: str) -> None:
    """Replace (or append) the "Calibration" section of ``folder/MODEL_CARD.md``, when the card exists."""
    card = folder / "MODEL_CARD.md"
    if not card.exists():
        return
    text = card.read_text()
    text = re.sub(r"\n## Calibration\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip() + "\n\n" + section
    card.write_text(text)


def calibrate(
    model: str | Path, data_file: Path | None = None, cache: str | None = "runs/calibration", plot: bool = True
) -> Calibration:
    """Fit the calibrated σ of the ensemble ``model`` (a shipped name or a folder of members) on held-out
    sub-ensembles; write ``calibration.json``, ``reliability.png`` (unless ``plot`` is off) and the card section.
    The member predictions are cached in ``cache`` (``None``: no cache)."""
    folder = resolve_model_path(str(model))
    held = heldout_predictions(folder, data_file=data_file, cache=cache)
    cal = fit_calibration(held)
    cal.save(folder / CALIBRATION_FILE)
    if plot:
        plot_reliability(
            reliability_curves(held, cal),
            folder / "reliability.png",
            f"{folder.name}: held-out reliability before/after calibration",
        )
    update_card(folder, card_section(cal, folder.name))
    return cal


def coverage_lines(cal: Calibration) -> list[str]:
    """One line per quantity: the fitted form and parameters, raw and calibrated (out-of-fold) coverage."""
    lines = []
    for q, p in cal.quantities.items():
        sel = p["selection"][p["form"]]
        lines.append(
            f"{q:10s} form={p['form']:15s} s={p['s']:.3g} c={p['c']:.3g} k={p.get('k', 1):.3g}  raw ±1σ/±2σ "
            f"{p['coverage_raw']['1sigma']:.2f}/{p['coverage_raw']['2sigma']:.2f}  calibrated (out-of-fold) "
            f"{sel['coverage_1sigma_oof']:.2f}/{sel['coverage_2sigma_oof']:.2f}"
        )
    return lines
