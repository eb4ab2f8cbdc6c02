"""Markdown + JSON reports in the paper's Table 2 layout (mean ± std over splits, per crystal system)."""

from __future__ import annotations

import json
from pathlib import Path

from goectp.data.splits import CRYSTAL_SYSTEMS

COLUMNS = ("all", *CRYSTAL_SYSTEMS)


def _fmt(v: tuple[float, float] | float | None, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, tuple):
        return f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}" if v[1] > 0 else f"{v[0]:.{digits}f}"
    return f"{v:.{digits}f}"


def table2_markdown(rows: dict[str, dict[str, tuple[float, float]]]) -> str:
    """``rows``: model name → {column → (mean, std)}. One row per model, columns all + crystal systems."""
    head = "| model | " + " | ".join(COLUMNS) + " |\n|---|" + "---|" * len(COLUMNS) + "\n"
    return head + "".join(
        f"| {name} | " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |\n" for name, r in rows.items()
    )


def metrics_markdown(rows: dict[str, dict[str, tuple[float, float]]]) -> str:
    cols = ("mae", "frobenius", "mae_eps_mean", "mae_eigenvalues", "ewt_25", "ewt_10", "ewt_5")
    head = "| model | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols) + "\n"
    return head + "".join(
        f"| {name} | " + " | ".join(_fmt(r.get(c)) for c in cols) + " |\n" for name, r in rows.items()
    )


def write_report(path: str | Path, title: str, sections: dict[str, str], data: dict) -> None:
    """Write ``path``.md and ``path``.json."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    md = f"# {title}\n\n" + "".join(f"## {h}\n\n{body}\n\n" for h, body in sections.items())
    path.with_suffix(".md").write_text(md)
    path.with_suffix(".json").write_text(json.dumps(data, indent=1, default=str))


def write_section(path: str | Path, heading: str, body: str) -> None:
    """Replace (or append) the section that starts with ``heading`` in a Markdown file, keeping the others."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.rstrip("\n").split("\n")
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = [heading, "", *body.rstrip("\n").split("\n"), ""]
    else:
        lines += ["", heading, "", *body.rstrip("\n").split("\n")]
    path.write_text("\n".join(lines).rstrip("\n") + "\n")
