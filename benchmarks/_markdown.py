"""Shared helper of the benchmark scripts: write a table into a section of BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace (or append) the section that starts with ``heading`` in a Markdown file, keeping the others."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.rstrip("\n").split("\n")
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = [heading, "", *body.rstrip("\n").split("\n"), ""]
    else:
        lines += ["", heading, "", *body.rstrip("\n").split("\n")]
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
