"""Shared helper of the benchmark scripts: write a table into a section of BENCHMARKS.md."""

from __future__ import annotations

from goectp.evaluation.report import write_section  # the package's copy (tests use it from there)

__all__ = ["write_section"]
