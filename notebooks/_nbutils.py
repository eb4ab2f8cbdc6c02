"""Small helpers shared by the notebooks: fast mode, where the data is, and skipping cleanly without it.

- ``GOECTP_NOTEBOOK_FAST=1`` (set by ``tests/test_notebooks.py``) picks tiny settings so every notebook runs in
  well under three minutes on a laptop CPU.
- The data directory is ``$GOECTP_DATA`` or ``../shared/data`` next to the repository (as everywhere in GoeCTP).
  Without it a notebook prints what is missing and skips the data-dependent cells; in CI (``CI`` set) a missing
  data set is an error instead, so that CI never passes by skipping.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Tiny settings (CI, quick look) instead of the paper-like ones.
FAST = os.environ.get("GOECTP_NOTEBOOK_FAST", "").strip().lower() not in ("", "0", "false", "no")
#: Running in continuous integration: missing data is an error there.
IN_CI = bool(os.environ.get("CI"))
#: The repository root (this file lives in ``<repo>/notebooks``).
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # import this checkout's goectp and explorer, also without `pip install -e .`
    sys.path.insert(0, str(REPO))


def find_data_dir() -> Path | None:
    """``$GOECTP_DATA`` or ``<repo>/../shared/data`` if it holds the dielectric data set, else ``None``."""
    from goectp.data.paths import DIELECTRIC_FILE, find_data_dir  # the one resolver

    root = find_data_dir()
    return root if root is not None and (root / DIELECTRIC_FILE).is_file() else None


def data_file(name: str) -> Path | None:
    """Path of a shared data file, or ``None`` after printing why the cells that need it are skipped.

    Raises:
        FileNotFoundError: in CI, where skipping would hide a broken setup.
    """
    root = find_data_dir()
    path = root / name if root is not None else None
    if path is not None and path.is_file():
        return path
    msg = (f"Data file {name!r} not found (looked in $GOECTP_DATA and {REPO.parent / 'shared' / 'data'}). "
           "Set GOECTP_DATA to the folder holding the shared data")
    if IN_CI:
        raise FileNotFoundError(msg + " (CI must run every cell).")
    print(msg + "; the cells that need it are skipped.")
    return None


def settings_banner() -> str:
    """One line saying which settings the notebook runs with."""
    if FAST:
        return ("GOECTP_NOTEBOOK_FAST=1: small settings (a few hundred structures, short training, small pools) — "
                "the numbers are a demo.")
    return "Full settings (unset GOECTP_NOTEBOOK_FAST). Set GOECTP_NOTEBOOK_FAST=1 for a quick run."


def decorate(fig, structures, frames=None, legend: bool = True):
    """Add the polar frame F (columns F₁ F₂ F₃, black arrows from the cell centre) to each 3D panel of a
    :func:`goectp.viz.crystal_tensor_figure` and one species legend (Jmol colours) under the row. Returns ``fig``."""
    from matplotlib.lines import Line2D

    from goectp.frame import polar_frame
    from goectp.viz import element_color

    axes = [ax for ax in fig.axes if hasattr(ax, "zaxis")]
    for i, (ax, s) in enumerate(zip(axes, structures)):
        f = polar_frame(s.lattice.matrix.T)[0] if frames is None else frames[i]
        if f is None:
            continue
        centre = 0.5 * s.lattice.matrix.sum(axis=0)
        length = 0.45 * float(max(s.lattice.abc))
        for k in range(3):
            tip = centre + length * f[:, k]
            ax.quiver(*centre, *(length * f[:, k]), color="k", lw=1.6, arrow_length_ratio=0.15)
            ax.text(*tip, f"F{'₁₂₃'[k]}", fontsize=9, color="k")
    if legend:
        species = sorted({site.specie.symbol for s in structures for site in s})
        handles = [Line2D([], [], marker="o", ls="", markerfacecolor=element_color(e), markeredgecolor="k",
                          markersize=8, label=e) for e in species]
        handles.append(Line2D([], [], color="k", lw=1.6, label="polar frame F"))
        handles += [Line2D([], [], color=c, lw=1, label=f"lab {a}") for c, a in zip(_axis_colors(), "xyz")]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
        fig.subplots_adjust(bottom=0.1)
    return fig


def _axis_colors():
    from goectp.viz import AXIS_COLORS

    return AXIS_COLORS


def run_exercise(name: str, student, solution, grade) -> str:
    """Grade an exercise: ``grade(student)`` when it is written; an unwritten one (raising NotImplementedError)
    is graded through ``solution`` when ``GOECTP_NOTEBOOK_SOLUTIONS=1`` (CI), else skipped with a hint.
    A wrong answer raises the grader's ``AssertionError``, which says what is wrong. Returns the verdict printed."""
    try:
        detail = grade(student)
        verdict = f"✓ {name}: your answer passes. {detail or ''}"
    except NotImplementedError:
        if not SOLUTIONS:
            verdict = f"… {name}: not attempted yet — replace `raise NotImplementedError` (solution: solutions_01.py)"
        else:
            detail = grade(solution)
            verdict = f"✓ {name}: not attempted here; the reference solution (solutions_01.py) passes. {detail or ''}"
    print(verdict)
    return verdict


#: Grade unwritten exercises through their reference solutions (set by tests/test_notebooks.py).
SOLUTIONS = os.environ.get("GOECTP_NOTEBOOK_SOLUTIONS", "").strip().lower() not in ("", "0", "false", "no")
