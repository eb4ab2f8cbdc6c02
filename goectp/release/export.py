"""Export a training run's best-validation checkpoints into ``<assets>/<name>/`` with a model card."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from goectp.checkpoint import SCHEMA_VERSION, atomic_save, read_checkpoint
from goectp.data import DIELECTRIC_FILE, data_dir, sha256_file
from goectp.evaluation import table2_markdown
from goectp.evaluation.metrics import summarize_splits
from goectp.registry import ALIASES_FILE, model_aliases

#: How the card names each target.
TARGET_DESCRIPTIONS = {
    "total": "static: electronic + ionic",
    "electronic": "ε∞, the electronic high-frequency part; n = √λ gives the refractive indices",
    "ionic": "the ionic (lattice) part",
}

#: The card's limits, per target.
LIMITS = {
    "total": (
        "ionic contributions of soft-mode\n  (ferroelectric-like) materials are poorly predicted "
        "(see the filtered vs unfiltered MAE)."
    ),
    "electronic": (
        "PBE underestimates band gaps, so its ε∞\n  (and n) run high, most for small-gap materials; "
        "metals and near-metals have no finite ε∞."
    ),
    "ionic": "soft-mode (ferroelectric-like)\n  materials are poorly predicted.",
}


def export_ensemble(
    run: str | Path,
    name: str | None = None,
    assets: str | Path = "assets/models",
    command: str = "",
    notes: str | Path | None = None,
    calibrate: bool = True,
    float16: bool = False,
) -> tuple[Path, str, float]:
    """Copy ``run/split*/best.pt`` (float32, ``weights_only``) to ``assets/name/split*.pt`` and write the model card
    (``command``: the line that produced the run; ``notes``: a Markdown file inserted after the model section).

    ``float16``: store the weight matrices as float16 (:mod:`goectp.release.half`; half the bytes, predictions
    within ~1e-3), before the calibration is fitted.

    ``name``: the folder under ``assets`` (default: the run folder's name); a name that ``assets/aliases.json``
    uses as an alias (``default``) is refused, since a folder of that name would hide the alias.

    Returns ``(folder, card, median test MAE)``. ``calibrate`` fits ``calibration.json`` as well (a re-exported
    ensemble must never ship a stale one).
    """
    name = name or Path(run).resolve().name
    aliases = model_aliases(assets)
    if name in aliases:
        raise ValueError(
            f"{name!r} is an alias in {Path(assets) / ALIASES_FILE} (→ {aliases[name]!r}): a folder of that name "
            "would hide it; export under another --name (and point the alias at it to make it the default)"
        )
    out = Path(assets) / name
    out.mkdir(parents=True, exist_ok=True)
    metrics, rows = [], []
    for split_dir in sorted(Path(run).glob("split*")):
        ck = read_checkpoint(split_dir / "best.pt")  # weights_only=True
        m = json.loads((split_dir / "metrics.json").read_text())
        slim = {
            "schema_version": SCHEMA_VERSION,
            "config": ck["config"],
            "state_dict": {k: v.float() if v.is_floating_point() else v for k, v in ck["state_dict"].items()},
            "meta": {**ck["meta"], "test_mae": m["test"]["all"]["mae"]},
        }
        atomic_save(slim, out / f"{split_dir.name}.pt")
        metrics.append(m)
        rows.append(
            f"| {m['split_seed']} | {m['n_train']}/{m['n_val']}/{m['n_test']} | {m['best_epoch']} | "
            f"{m['best_val_mae']:.3f} | {m['test']['all']['mae']:.3f} | {m['test']['filtered']['mae']:.3f} |"
        )
    if float16:
        from goectp.release.half import store_float16

        store_float16([out])
    data_file = data_dir() / DIELECTRIC_FILE
    per = summarize_splits([m["test"]["all"]["per_system"] for m in metrics])
    perf = summarize_splits([m["test"]["filtered"]["per_system"] for m in metrics])
    cfg, tcfg = metrics[0]["model_config"], metrics[0]["train_config"]
    size = sum(f.stat().st_size for f in out.glob("*.pt")) / 1e6
    stored = " (weight matrices stored as float16, computed in float32)" if float16 else ""
    note_text = "\n" + Path(notes).read_text().strip() + "\n" if notes else ""
    card = f"""# Model card: `{name}` — GoeCTP ensemble ({len(metrics)} split models)

Produced by this project's own training code on {dt.date.today().isoformat()}; {size:.1f} MB in total{stored}.

## Data
- File: `{DIELECTRIC_FILE}` (shared data directory), sha256 `{sha256_file(data_file)}`.
- 2,733 Materials Project DFPT records (Petousis 2017 + mace-field), CC BY 4.0 — see the data README.
- Target: the **{tcfg["target"]}** dielectric tensor ({TARGET_DESCRIPTIONS[tcfg["target"]]}), relative permittivity.
- Splits: random 80/10/10 with split seeds {[m["split_seed"] for m in metrics]} (`goectp.data.random_split`);
  training seeds equal the split seeds. Train/val filter `max_abs` = {tcfg["max_abs"]}.

## Model
```json
{json.dumps(cfg, indent=1)}
```
Training: {json.dumps({k: tcfg[k] for k in ("epochs", "batch_size", "lr", "lr_end", "weight_decay", "huber_delta")})}.
Checkpoint = best validation MAE epoch of each split.
{note_text}
## Command
```
{command}
goectp ensemble export {run} --name {name}{f" --notes {notes}" if notes else ""}
```

## Metrics (test sets; MAE = mean |Δ| over the 9 components)

| split | train/val/test | best epoch | val MAE | test MAE | test MAE (\\|component\\| < 100) |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Mean ± std over splits, per crystal system, all test structures:

{table2_markdown({name: per})}
Test structures with every |component| < 100:

{table2_markdown({name: perf})}
Ensemble use: `goectp.load_model("{name}")` returns all members; `goectp.predict(..., return_std=True)` gives
the mean and the member standard deviation. Each member was tested on its own split's test set only (members
have seen the other splits' test structures in training), so the numbers above are per-member numbers.

## Limits
- Trained on ≤ 96-atom ordered inorganic crystals with PBE DFPT labels; {LIMITS[tcfg["target"]]}
- The paper's 6,648-structure DTNet set is not redistributable here; numbers are not like-for-like with the paper.
"""
    (out / "MODEL_CARD.md").write_text(card)
    if calibrate:
        from goectp.release.calibrate import calibrate as fit

        fit(out)
    return out, card, float(np.median([m["test"]["all"]["mae"] for m in metrics]))
