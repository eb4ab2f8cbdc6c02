"""Parity plots (PNG) of ε̄ and of eigenvalues."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from goectp.evaluation.metrics import eigenvalues, mean_eigenvalue


def parity_plot(pred: np.ndarray, true: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Two panels: ε̄ (mean eigenvalue) and all eigenvalues, each with its MAE, log-log axes."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's (e.g. a notebook's) backend alone

    fig = Figure(figsize=(9, 4.2))
    axes = fig.subplots(1, 2)
    pairs = [
        (mean_eigenvalue(true), mean_eigenvalue(pred), "ε̄ (mean eigenvalue)"),
        (eigenvalues(true).ravel(), eigenvalues(pred).ravel(), "eigenvalues"),
    ]
    for ax, (t, p, name) in zip(axes, pairs):
        mae = np.abs(p - t).mean()
        lo = max(min(t.min(), p.min()), 0.5)
        hi = max(t.max(), p.max()) * 1.1
        ax.scatter(np.clip(t, lo, None), np.clip(p, lo, None), s=6, alpha=0.5)
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(
            xscale="log",
            yscale="log",
            xlim=(lo, hi),
            ylim=(lo, hi),
            xlabel=f"DFT {name}",
            ylabel=f"predicted {name}",
            title=f"{name}: MAE {mae:.3f}",
        )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
