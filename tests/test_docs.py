"""The documentation site builds with warnings as errors, offline, and the README stays a front page.

``mkdocs build --strict`` fails on a broken link or anchor between pages, a page missing from the nav, a docstring
the API reference cannot render, or a notebook that does not convert. The notebooks are rendered as they are, never
executed. Without mkdocs installed (``pip install -e '.[dev]'``) the build is skipped locally and fails in CI
(``CI=true``), like the data tests.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_jupyter")


def _missing_plugins() -> list[str]:
    missing = []
    for name in PLUGINS:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            missing.append(name)
    return missing


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = _missing_plugins()
    if missing:
        msg = f"the docs tools are not installed ({', '.join(missing)}): pip install -e '.[dev]'"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # material's end-of-life banner, not a build warning
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, "mkdocs build --strict failed:\n" + done.stderr[-6000:]
    return out


def test_the_site_builds_strictly_with_every_page(site):
    for page in (
        "index.html",
        "getting-started/index.html",
        "how-it-works/index.html",
        "explorer/index.html",
        "results/index.html",
        "benchmarks/index.html",
        "changelog/index.html",
        "models/combined/index.html",
    ):
        assert (site / page).is_file(), page
    api = (site / "api" / "api" / "index.html").read_text()
    assert "predict_summary" in api  # the API reference is read from the docstrings
    notebooks = sorted(p.parent.name for p in (site / "notebooks").glob("*/index.html"))
    assert notebooks == sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert (site / "screenshots" / "explorer_full.png").is_file()


def test_the_site_loads_nothing_from_the_web(site):
    """No web fonts or theme assets from a CDN: the pages read offline (the search index is local too)."""
    for page in ("index.html", "results/index.html", "api/api/index.html", "notebooks/01_frame_averaging/index.html"):
        html = (site / page).read_text()
        remote = re.findall(r"<(?:link|script)[^>]+(?:href|src)=\"(https?://[^\"]+)\"", html)
        assert not remote, (page, remote)


def test_readme_is_a_front_page_with_the_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ("./install.sh", "python -m pytest"):
        assert command in ci and command in readme, command
    assert "docs/screenshots/explorer_full.png" in readme
