"""Refresh the README's screenshots (docs/screenshots/) from a fresh run of the browser test.

``python -m pytest`` never writes tracked files: the browser test saves its screenshots to ``test-artifacts/``.
This script runs that test and then copies the README's screenshots into ``docs/screenshots/``; review and commit
them yourself::

    python scripts/refresh_screenshots.py            # run the browser test, then copy
    python scripts/refresh_screenshots.py --no-run   # copy what the last test run left in test-artifacts/
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
DOCS = ROOT / "docs" / "screenshots"
TEST = "tests/test_explorer_browser.py::test_explorer_end_to_end_offline"


def doc_screenshots() -> tuple[str, ...]:
    """The names the browser test declares as the README's screenshots."""
    import ast

    # read the constant from the test file (importing it as `tests.…` can pick up another installed `tests` package)
    tree = ast.parse((ROOT / "tests" / "test_explorer_browser.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "DOC_SCREENSHOTS" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise RuntimeError("DOC_SCREENSHOTS not found in tests/test_explorer_browser.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-run", action="store_true", help="only copy from test-artifacts/")
    args = parser.parse_args(argv)
    if not args.no_run:
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", TEST], cwd=ROOT)
        if rc != 0:
            print(f"the browser test failed (exit {rc}); docs/screenshots/ left as it was", file=sys.stderr)
            return rc
    names = doc_screenshots()
    missing = [n for n in names if not (ARTIFACTS / f"{n}.png").is_file()]
    if missing:
        print(f"not in test-artifacts/: {missing}; run without --no-run", file=sys.stderr)
        return 1
    DOCS.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(ARTIFACTS / f"{name}.png", DOCS / f"{name}.png")
        print(f"docs/screenshots/{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
