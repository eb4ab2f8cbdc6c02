"""Markdown + JSON reports in the paper's Table 2 layout (mean ± std over splits, per crystal system)."""

from __future__ import annotations

import json
from pathlib import Path

from goectp.data.splits import CRYSTAL_SYSTEMS

#: Columns of the Table 2 layout: the MAE on all test records, then per crystal system.
COLUMNS = ("all", *CRYSTAL_SYSTEMS)
#: Columns of :func:`metrics_markdown` (keys of :func:`goectp.evaluation.metrics.tensor_metrics`).
METRIC_COLUMNS = ("mae", "frobenius", "mae_eps_mean", "mae_eigenvalues", "ewt_25", "ewt_10", "ewt_5")


def _fmt(v: tuple[float, float] | float | None, digits: int = 3) -> str:
    """``mean ± std`` (the std left out when 0), a plain number, or ``–`` for a missing value."""
    if v is None:
        return "–"
    if isinstance(v, tuple):
        return f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}" if v[1] > 0 else f"{v[0]:.{digits}f}"
    return f"{v:.{digits}f}"


def _model_table(rows: dict[str, dict[str, tuple[float, float]]], columns: tuple[str, ...]) -> str:
    """A Markdown table: one row per model of ``rows`` (name → {column → (mean, std)}), one column per ``columns``."""
    head = "| model | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns) + "\n"
    return head + "".join(
        f"| {name} | " + " | ".join(_fmt(r.get(c)) for c in columns) + " |\n" for name, r in rows.items()
    )


def table2_markdown(rows: dict[str, dict[str, tuple[float, float]]]) -> str:
    """``rows``: model name → {column → (mean, std)}. One row per model, columns all + crystal systems."""
    return _model_table(rows, COLUMNS)


def metrics_markdown(rows: dict[str, dict[str, tuple[float, float]]]) -> str:
    """``rows``: model name → {metric → (mean, std)}. One row per model, columns :data:`METRIC_COLUMNS`."""
    return _model_table(rows, METRIC_COLUMNS)


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
