"""The model menu: one line per shipped model — what it is, how accurate, how costly.

``assets/models/catalog.json`` (written by ``benchmarks/accuracy/accuracy_per_cost.py --write-catalog``, every number
measured by that run) maps a model folder to ``{"description", "val_mae", "test_mae", "spearman", "coverage",
"ms_per_structure", "cost_vs_fast"}`` (numbers may be ``null`` where not measured). ``goectp models`` prints it and
the explorer's model menu shows the selected model's line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields

from goectp.registry import assets_dir, model_aliases

CATALOG_FILE = "catalog.json"
MAX_CATALOG_BYTES = 1 << 20


@dataclass(frozen=True)
class ModelInfo:
    """One model's line of the menu (numbers: 5-split test set, ``coverage`` = calibrated ±2σ of ε̄)."""

    description: str
    val_mae: float | None = None
    test_mae: float | None = None
    spearman: float | None = None
    coverage: float | None = None
    ms_per_structure: float | None = None
    cost_vs_fast: float | None = None

    def line(self) -> str:
        """``description — test MAE 1.713, ε̄ Spearman 0.913, ±2σ 89.6 %, 4.9× fast's cost``."""
        parts = []
        if self.test_mae is not None:
            parts.append(f"test MAE {self.test_mae:.3f}")
        if self.spearman is not None:
            parts.append(f"ε̄ Spearman {self.spearman:.3f}")
        if self.coverage is not None:
            parts.append(f"±2σ {100 * self.coverage:.1f} %")
        if self.cost_vs_fast is not None:
            parts.append(f"{self.cost_vs_fast:.1f}× fast's cost")
        return self.description + (f" — {', '.join(parts)}" if parts else "")


def model_catalog() -> dict[str, ModelInfo]:
    """``{folder name: ModelInfo}`` from ``assets/models/catalog.json`` (``{}`` when there is none); a damaged file
    raises ``ValueError`` naming it."""
    path = assets_dir() / "models" / CATALOG_FILE
    if not path.is_file():
        return {}
    try:
        if path.stat().st_size > MAX_CATALOG_BYTES:
            raise ValueError(f"{path.stat().st_size} bytes, more than {MAX_CATALOG_BYTES}")
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object {model: {...}}")
        return {str(name): _info(entry) for name, entry in raw.items()}
    except (OSError, UnicodeDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise ValueError(f"{path}: damaged model catalog ({str(exc)[:200]})") from exc


def model_info(name: str) -> ModelInfo | None:
    """The catalog line of a shipped name or alias (``None`` when it has none)."""
    catalog = model_catalog()
    return catalog.get(name) or catalog.get(model_aliases().get(name, ""))


def _info(entry: object) -> ModelInfo:
    if not isinstance(entry, dict) or not isinstance(entry.get("description"), str):
        raise ValueError("each entry needs a 'description' string")
    known = {f.name for f in fields(ModelInfo)}
    values = {k: v for k, v in entry.items() if k in known}
    for key, value in values.items():
        if key == "description" or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{key} must be a finite non-negative number or null, got {value!r}")
    values["description"] = values["description"][:300]
    return ModelInfo(**values)
