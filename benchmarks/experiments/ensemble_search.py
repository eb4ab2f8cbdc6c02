"""Which ensembles to combine: every combination of the given ensembles, ranked by **validation** MAE.

Each ensemble has one member per split (seeds 0-4). A combination is evaluated per split as the mean prediction of
its members trained on that split, on that split's validation set (for the choice) and test set (read after it);
the table gives the mean over the 5 splits, the paired difference to the first model on validation, and ε̄
Spearman (:func:`goectp.evaluation.metrics.split_scores`). Member predictions come from (and are cached like)
:func:`goectp.uncertainty.heldout_predictions`; ``A,B`` sums are :func:`goectp.evaluation.ensembles.heldout_sum`.

    python benchmarks/experiments/ensemble_search.py --models pretrained-bulk-modulus-chgnet pretrained-bulk-modulus \
        chgnet fast \
        runs/tail/ensembles/baseline runs/tail/ensembles/decompose runs/tail/ensembles/log-head \
        runs/tail/ensembles/max-abs runs/tail/ensembles/mse --max-size 4

A model written ``A,B`` is the **sum** of two ensembles' predictions, split by split: an ε∞ model and an ionic-only
model make a total (``electronic,runs/ionic/ensembles/pretrained-bmc-layers2``); the parts' targets must add up
to the total, which is checked against the data.

``--reference A+B+C`` compares every row with that set instead of the first model (how the default was chosen):

    python benchmarks/experiments/ensemble_search.py --models pretrained-bulk-modulus-chgnet chgnet-layers2 \
        pretrained-bulk-modulus-layers2 pretrained-bulk-modulus chgnet --max-size 5 \
        --reference pretrained-bulk-modulus-chgnet+pretrained-bulk-modulus+chgnet
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
from scipy.stats import ttest_rel

from goectp.data import SPLIT_SEEDS, split_masks
from goectp.evaluation.ensembles import heldout_sum
from goectp.evaluation.ensembles import model_label as label
from goectp.evaluation.metrics import split_scores as per_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, help="shipped names or folders of split*.pt members")
    ap.add_argument("--max-size", type=int, default=4, help="largest combination tried")
    ap.add_argument("--top", type=int, default=12, help="rows shown (best validation first)")
    ap.add_argument(
        "--reference",
        default=None,
        help="the set the Δ columns compare with, as A+B+C (default: the first model alone)",
    )
    ap.add_argument(
        "--rank-by",
        choices=["mae", "spearman"],
        default="mae",
        help="order by validation MAE (default) or by validation ε̄ Spearman (highest first)",
    )
    args = ap.parse_args()
    reference = args.reference.split("+") if args.reference else args.models[:1]
    members, true, val, test = {}, None, None, None
    for spec in dict.fromkeys([*args.models, *reference]):
        try:
            held = heldout_sum(spec)
        except ValueError as err:
            raise SystemExit(str(err)) from None
        if true is None:
            true = held["true"]
            masks = split_masks(len(true))
            val, test = masks["val"], masks["test"]
        if not np.allclose(held["true"], true, atol=1e-6):
            raise SystemExit(f"{spec}: its targets do not add up to the first model's (is a part missing?)")
        # member k must be the model of split k (sorted file names split0 ... split4): its test set is split k's
        in_order = all(np.array_equal(a, b) for a, b in zip(held["test"], test))
        if len(held["members"]) != len(SPLIT_SEEDS) or not in_order:
            raise SystemExit(f"{spec}: needs one member per split {SPLIT_SEEDS}, in file order")
        members[spec] = held["members"]
    base_val, _ = per_split([members[c] for c in reference], true, val)
    base_test, _ = per_split([members[c] for c in reference], true, test)
    rows = []
    for size in range(1, args.max_size + 1):
        for combo in itertools.combinations(args.models, size):
            preds = [members[c] for c in combo]
            v, rho_val = per_split(preds, true, val)
            t, rho = per_split(preds, true, test)
            rows.append((v.mean(), combo, v, t, rho, rho_val))
    rows.sort(key=lambda r: r[0] if args.rank_by == "mae" else -r[5].mean())
    print(
        f"{len(rows)} combinations of {len(args.models)} ensembles; best validation {args.rank_by} first (reference: "
        f"{' + '.join(label(c) for c in reference)}, val {base_val.mean():.3f}, test {base_test.mean():.3f})\n"
    )
    print(
        "| combination | members | val MAE | Δ val vs reference (better splits, p) | test MAE | Δ test (better splits) "
        "| val ε̄ Spearman | test ε̄ Spearman |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for v_mean, combo, v, t, rho, rho_val in rows[: args.top]:
        diff, diff_test = v - base_val, t - base_test
        p = ttest_rel(v, base_val).pvalue if np.any(diff) else float("nan")
        print(
            f"| {' + '.join(label(c) for c in combo)} | {5 * len(combo)} | {v_mean:.3f} | "
            f"{diff.mean():+.3f} ({int((diff < 0).sum())}/5, p = {p:.2f}) | {t.mean():.3f} | "
            f"{diff_test.mean():+.3f} ({int((diff_test < 0).sum())}/5) | {rho_val.mean():.3f} | {rho.mean():.3f} |"
        )


if __name__ == "__main__":
    main()
