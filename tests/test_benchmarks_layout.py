"""``benchmarks/`` is sorted by kind, and the tests use the package, never a benchmark file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"speed", "accuracy", "experiments", "recipes"}


def test_every_benchmark_lives_in_a_folder_of_its_kind():
    loose = [p.name for p in (ROOT / "benchmarks").iterdir() if p.is_file() and p.name != "README.md"]
    folders = {p.name for p in (ROOT / "benchmarks").iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    assert not loose, f"sort these into benchmarks/{{{','.join(sorted(KINDS))}}}/: {loose}"
    assert folders <= KINDS, folders - KINDS


def test_tests_never_import_benchmark_files():
    offenders = []
    for p in sorted(set((ROOT / "tests").glob("*.py")) - {Path(__file__).resolve()}):
        text = p.read_text()
        if (
            "spec_from_file_location" in text
            and "benchmarks" in text
            or re.search(r"^\s*(from|import) benchmarks", text, re.M)
        ):
            offenders.append(p.name)
    assert not offenders, f"move what these tests need into the package: {offenders}"


def test_commands_in_the_benchmarks_name_files_that_exist():
    missing = []
    for p in sorted((ROOT / "benchmarks").rglob("*")):
        if p.suffix in {".py", ".sh"}:
            for ref in re.findall(r"benchmarks/[\w/]+\.(?:py|sh|json)", p.read_text()):
                if not (ROOT / ref).exists():
                    missing.append(f"{p.relative_to(ROOT)}: {ref}")
    assert not missing, missing


def test_nothing_outside_benchmarks_loads_a_benchmark_file():
    """The package, the explorer and the scripts import what they share from the package, not from benchmarks/."""
    offenders = []
    for folder in ("goectp", "explorer", "scripts"):
        for p in sorted((ROOT / folder).rglob("*.py")):
            for line in p.read_text().splitlines():
                if "benchmarks" in line and ("sys.path" in line or "spec_from_file_location" in line):
                    offenders.append(f"{p.relative_to(ROOT)}: {line.strip()}")
    assert not offenders, offenders
