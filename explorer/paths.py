"""Where the explorer finds its files: assets (models, examples, screening), the data directory, 3Dmol.js."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent

#: 3Dmol.js as installed by ``./install.sh`` (``npm install --prefix explorer/static/vendor 3dmol@2.5.5``).
THREEDMOL_RELATIVE = "static/vendor/node_modules/3dmol/build/3Dmol-min.js"
THREEDMOL_JS = PACKAGE_DIR / THREEDMOL_RELATIVE
INSTALL_HINT = (
    "3Dmol.js is not installed, so the 3D view is off. Run ./install.sh (or: npm install --prefix "
    "explorer/static/vendor 3dmol@2.5.5) and reload; the viewer never loads scripts from the internet."
)

DATASET_FILE = "mp_dielectric_open.json.gz"
CANDIDATES_FILE = "screening_candidates.json.gz"
SCREENING_RESULTS_FILE = "screening_results.csv"
SCREENING_TRAINING_FILE = "training_set.csv"
SCREENING_STRUCTURES_FILE = "top_structures.json.gz"
SCREENING_TOP_HIGH_K_FILE = "top_high_k.csv"  # its physics columns join the results (goectp screen --physics-top)


def assets_dir() -> Path:
    from goectp.api import assets_dir as core_assets_dir

    return core_assets_dir()


def examples_dir() -> Path:
    return assets_dir() / "examples"


def screening_dir() -> Path:
    return assets_dir() / "screening"


def data_dir() -> Path | None:
    """The data directory (``$GOECTP_DATA`` or ``../shared/data``) when it exists, else ``None``: the library's one
    resolver, :func:`goectp.data.paths.find_data_dir`."""
    from goectp.data.paths import find_data_dir

    return find_data_dir()
