"""Where the ε̄ rank errors come from: the electronic or the ionic part, and which ε̄ range.

ε = ε∞ + ε_ion. On the test set of each of the 5 random splits, the static model's split sub-ensemble (``--static``,
default ``combined``) predicts ε; the ε∞ model (``--electronic``, default ``electronic``) predicts ε∞, so the static
model's implied ionic part is their difference. Swapping one part for the DFT value gives two oracles:

- **perfect ε∞**: DFT ε∞ + the model's ionic part (what a perfect electronic model would add);
- **perfect ionic**: the ε∞ model's ε∞ + DFT ionic part.

Their ε̄ Spearman (mean over the splits) bounds what fixing one part could give. The second table splits Σd² of the
Spearman (d = rank difference of a record) by true ε̄ bin. ``--ionic MODEL`` (an ensemble trained on the ionic
tensor, one member per split) adds its sum with the ε∞ model as a row, and a table of how well the static model's
implied ionic part and that model rank the DFT ionic ε̄.

    python benchmarks/experiments/rank_error_sources.py
    python benchmarks/experiments/rank_error_sources.py --ionic runs/ionic/ensembles/pretrained-bmc-layers2

Member predictions come from (and are cached like) :func:`goectp.uncertainty.heldout_predictions`.
"""

from __future__ import annotations

import argparse

import numpy as np

from goectp.data import split_masks
from goectp.evaluation.metrics import EPS_BINS as BINS
from goectp.evaluation.metrics import mean_spearman, rank_error_share
from goectp.tensor_stats import mean_eigenvalue
from goectp.uncertainty import heldout_predictions, split_means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--static", default="combined", help="an ensemble of the static tensor, members per split")
    ap.add_argument("--electronic", default="electronic", help="an ensemble trained on ε∞, one member per split")
    ap.add_argument("--ionic", default=None, help="an ensemble trained on the ionic tensor, one member per split")
    args = ap.parse_args()
    static, optical = heldout_predictions(args.static), heldout_predictions(args.electronic)
    ionic = heldout_predictions(args.ionic) if args.ionic else None
    if any(list(h["ids"]) != list(static["ids"]) for h in (optical, ionic) if h is not None):
        raise SystemExit("the models' held-out predictions are not of the same records in the same order")
    total, eps_inf = static["true"], optical["true"]  # each model's own target: ε and ε∞
    test = split_masks(len(total))["test"]
    pred_total, pred_inf = split_means(static, test), split_means(optical, test)
    rows = {
        f"`{args.static}` as it is": pred_total,
        "perfect ε∞ (DFT ε∞ + the model's ionic part)": eps_inf[None] + pred_total - pred_inf,
        f"perfect ionic (`{args.electronic}` ε∞ + DFT ionic part)": pred_inf + (total - eps_inf)[None],
    }
    if ionic is not None:
        pred_ionic = split_means(ionic, test)
        rows[f"`{args.electronic}` ε∞ + `{args.ionic}` ionic part"] = pred_inf + pred_ionic
    print("| ε̄ of | test ε̄ Spearman (mean of 5 splits) |\n|---|---|")
    for name, pred in rows.items():
        print(f"| {name} | {mean_spearman(pred, total, test):.3f} |")
    labels = [f"{lo:g}–{hi:g}" if np.isfinite(hi) else f"≥ {lo:g}" for lo, hi in BINS]
    true_mean = mean_eigenvalue(total)
    counts = [int(((true_mean >= lo) & (true_mean < hi)).sum()) for lo, hi in BINS]
    print("\n| true ε̄ | records (whole data file) | share of Σd² |\n|---|---|---|")
    for label, n, share in zip(labels, counts, rank_error_share(pred_total, total, test)):
        print(f"| {label} | {n} | {share:.2f} |")
    if ionic is not None:
        print("\n| ionic part of | test ionic ε̄ Spearman (mean of 5 splits) |\n|---|---|")
        implied = {f"`{args.static}` − `{args.electronic}`": pred_total - pred_inf, f"`{args.ionic}`": pred_ionic}
        for name, pred in implied.items():
            print(f"| {name} | {mean_spearman(pred, ionic['true'], test):.3f} |")


if __name__ == "__main__":
    main()
