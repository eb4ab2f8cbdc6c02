"""Refractive indices from the ε∞ model against the alternatives, on the test sets of the 5 random splits.

DFT n = √λ of each record's electronic tensor ε∞. Compared, per split on its own test set (mean ± std over splits):

- the shipped ε∞ model (``--model``, default ``electronic``), member k on split k: n = √λ of its prediction;
- the training split's mean ε∞ tensor;
- the static tensor of ``--static`` (default ``combined``; its split sub-ensembles): n = √λ, the upper bound the
  explorer shows for models of the static ε.

    python benchmarks/experiments/refractive_index.py

Member predictions come from (and are cached like) :func:`goectp.uncertainty.heldout_predictions`.
"""

from __future__ import annotations

import argparse

import numpy as np

from goectp.data import split_masks
from goectp.tensor_stats import refractive_indices
from goectp.uncertainty import heldout_predictions, split_means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="electronic", help="an ensemble trained on ε∞, one member per split")
    ap.add_argument("--static", default="combined", help="an ensemble of the static tensor")
    args = ap.parse_args()
    optical, static = heldout_predictions(args.model), heldout_predictions(args.static)
    if list(optical["ids"]) != list(static["ids"]):
        raise SystemExit("the two models' held-out predictions are not of the same records in the same order")
    eps_inf = optical["true"]  # the ε∞ model's own target
    n_true = refractive_indices(eps_inf)
    masks = split_masks(len(eps_inf))
    errors: dict[str, list[float]] = {"ε∞ model": [], "training-set mean ε∞": [], "static ε of the static model": []}
    optical_means, static_means = split_means(optical, masks["test"]), split_means(static, masks["test"])
    for k, test in enumerate(masks["test"]):
        train = ~(test | masks["val"][k])
        errors["ε∞ model"].append(np.abs(refractive_indices(optical_means[k][test]) - n_true[test]).mean())
        errors["training-set mean ε∞"].append(np.abs(refractive_indices(eps_inf[train].mean(0)) - n_true[test]).mean())
        errors["static ε of the static model"].append(
            np.abs(refractive_indices(static_means[k][test]) - n_true[test]).mean()
        )
    print(f"median DFT n: {np.median(n_true):.2f}\n\n| n from | mean |Δn| |\n|---|---|")
    for name, values in errors.items():
        print(f"| {name} | {np.mean(values):.3f} ± {np.std(values):.3f} |")


if __name__ == "__main__":
    main()
