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
