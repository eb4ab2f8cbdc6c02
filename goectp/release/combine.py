"""One ensemble from several shipped ones: ``<assets>/<name>/members.json`` lists their members, with a card.

Members are not copied: ``members.json`` names each file of the shipped families with its sha256 (a loader refuses a
member that changed); the member ``<family>/split<k>.pt`` is called ``<family>-split<k>``. They must read the same
graphs (:class:`goectp.models.Ensemble` checks it). The card reports, per split ``k``, the sub-ensemble of the
members trained on split ``k`` (the mean of their predictions) on that split's validation and test sets, next to
each family alone: the comparison the combination was chosen by (validation) and what it gives (test).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np

from goectp.checkpoint import read_checkpoint
from goectp.data import DIELECTRIC_FILE, data_dir, sha256_file, split_masks
from goectp.evaluation.metrics import inlier_mask
from goectp.registry import MEMBERS_FILE, checkpoint_files, is_model_name, load_model, resolve_model_path
from goectp.uncertainty import heldout_predictions


def per_split_mae(
    members: np.ndarray, split_of: np.ndarray, true: np.ndarray, seeds: list[int]
) -> dict[str, np.ndarray]:
    """Component MAE of the mean of the members of each split on its validation and test sets (and the test records
    with every |component| < 100): ``{"val", "test", "test_filtered"}``, each ``[len(seeds)]``.

    ``members`` ``[M, N, 3, 3]`` (predictions of every record), ``split_of`` ``[M]`` (each member's split seed),
    ``true`` ``[N, 3, 3]``."""
    masks = split_masks(len(true), seeds)
    val, test = masks["val"], masks["test"]
    keep = inlier_mask(true)
    out = {"val": [], "test": [], "test_filtered": []}
    for i, seed in enumerate(seeds):
        pred = members[split_of == seed].mean(axis=0)
        err = np.abs(pred - true).mean(axis=(1, 2))
        out["val"].append(err[val[i]].mean())
        out["test"].append(err[test[i]].mean())
        out["test_filtered"].append(err[test[i] & keep].mean())
    return {k: np.array(v) for k, v in out.items()}


def combine_ensembles(
    families: list[str], name: str, assets: str | Path = "assets/models", notes: str | Path | None = None
) -> tuple[Path, str]:
    """Write ``assets/name/members.json`` (the members of the shipped ``families``) and its model card; sections
    that other tools added to an earlier card stay. Returns ``(folder, card)``; calibrate it afterwards."""
    if not is_model_name(name) or name in families:
        raise ValueError(f"--name {name!r}: give a new folder name (no path)")
    out = Path(assets) / name
    out.mkdir(parents=True, exist_ok=True)
    sources = []  # (family, file, member name)
    for family in families:
        folder = resolve_model_path(family)
        if not folder.is_dir() or folder.parent.resolve() != out.parent.resolve():
            raise ValueError(f"{family}: not an ensemble folder next to {out}")
        sources += [(family, f, f"{family}-{f.stem}") for f in checkpoint_files(family)]
    sources.sort(key=lambda source: source[2])  # by member name: the order (and fingerprint) of earlier copies
    for stale in out.glob("*.pt"):
        stale.unlink()  # a copied member of the layout before members.json
    manifest = [{"file": f"../{family}/{f.name}", "sha256": sha256_file(f)} for family, f, _ in sources]
    (out / MEMBERS_FILE).write_text(json.dumps({"members": manifest}, indent=1) + "\n")
    ensemble = load_model(out)  # raises if the members cannot share graphs

    # each family and the combination, per split, from the members' predictions of every record
    split_seed = {member: int(read_checkpoint(f)["meta"]["split_seed"]) for _, f, member in sources}
    seeds = sorted(set(split_seed.values()))
    preds = heldout_predictions(out, progress=True)
    true = preds["true"]
    by_member = {member: (family, split_seed[member]) for family, _, member in sources}
    family_of = np.array([by_member[member][0] for member in preds["files"]])  # the members' order in ``preds``
    split_of = np.array([by_member[member][1] for member in preds["files"]])
    rows = {}
    for family in families:
        sel = family_of == family
        rows[f"`{family}` alone"] = per_split_mae(preds["members"][sel], split_of[sel], true, seeds)
    rows[f"`{name}` (all {len(sources)} members)"] = per_split_mae(preds["members"], split_of, true, seeds)

    def fmt(values: np.ndarray) -> str:
        return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"

    table = [
        "| sub-ensemble per split | val MAE | test MAE | test MAE (\\|ε\\| < 100) | val, per split |",
        "|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        per = ", ".join(f"{v:.3f}" for v in r["val"])
        table.append(f"| {label} | {fmt(r['val'])} | {fmt(r['test'])} | {fmt(r['test_filtered'])} | {per} |")
    best_family = min(families, key=lambda f: rows[f"`{f}` alone"]["val"].mean())
    base = rows[f"`{best_family}` alone"]["val"]
    comb = rows[f"`{name}` (all {len(sources)} members)"]["val"]
    member_lines = "\n".join(
        f"| `{member}` | `{family}/{f.name}` | {split_seed[member]} | `{sha256_file(f)[:16]}…` |"
        for family, f, member in sources
    )
    size = sum(f.stat().st_size for _, f, _ in sources) / 1e6
    note_text = "\n" + Path(notes).read_text().strip() + "\n" if notes else ""
    command = "goectp ensemble combine " + " ".join(families) + f" --name {name}"
    if notes:
        command += f" --notes {notes}"
    card = f"""# Model card: `{name}` — {len(sources)} GoeCTP models from {len(families)} shipped ensembles

Assembled on {dt.date.today().isoformat()} from this project's own trained members; {size:.1f} MB of member files,
none of them copied: `{MEMBERS_FILE}` lists the files of the shipped ensembles below, with their sha256.
A prediction is the mean of all {len(sources)} members; σ is their calibrated spread (below).

## Members
Each member is a file of a shipped ensemble, unchanged; its training, data and exposure are on that ensemble's
card: {", ".join(f"[`{f}`](../{f}/MODEL_CARD.md)" for f in families)}. Data: `{DIELECTRIC_FILE}`
(sha256 `{sha256_file(data_dir() / DIELECTRIC_FILE)}`), random 80/10/10 splits with seeds {seeds}; every
family has one member per split, so {len(sources) // len(seeds)} members share each split's training set.
Graphs: the canonical cell, frame averaging, {ensemble.config.k_neighbors} neighbours, node features
`{ensemble.config.node_features}` (members without node features ignore them).

| member | file (in `assets/models/`) | split seed | sha256 |
|---|---|---|---|
{member_lines}

## Why this combination
Chosen on the **validation** sets only: of all combinations tried with `benchmarks/experiments/ensemble_search.py`
(docs/results.md), this one has the lowest mean validation MAE of the per-split sub-ensembles, lower than the best
family alone, `{best_family}`, on {int((comb < base).sum())} of {len(seeds)} splits (mean Δ
{np.mean(comb - base):+.3f}). The test columns were read after that choice.
{note_text}
{chr(10).join(table)}

Each row: for each split, the mean prediction of that row's members trained on the split, on the split's own
validation / test structures (274 each); mean ± std over the {len(seeds)} splits. The ensemble a user gets also
holds the members of the other splits, which have seen these structures: its accuracy on crystals no member saw
is in `BENCHMARKS.md`, "Shipped ensembles as users get them".

## Cost
{len(sources)} member forwards per prediction on one set of graphs and CHGNet features (computed once): see
`BENCHMARKS.md`, "Cost of exact cell-choice invariance".

## Limits
- As the members': ≤ 96-atom ordered inorganic crystals with PBE DFPT labels; the high-ε tail (ε̄ ≥ 30) is
  under-predicted (docs/changelog.md, "The high-ε tail").
- Members of one split are correlated (same training set), so the member spread underestimates the error before
  calibration.

## Command
```
{command}
```
"""
    card_file = out / "MODEL_CARD.md"
    if card_file.exists():  # sections other scripts added (calibration, cell-choice invariance) stay
        titles = set(re.findall(r"^## (.+)$", card, flags=re.M))
        kept = [s for s in card_file.read_text().split("\n## ")[1:] if s.splitlines()[0] not in titles]
        card = card.rstrip("\n") + "".join(f"\n\n## {s.rstrip()}" for s in kept) + "\n"
    card_file.write_text(card)
    return out, card
