"""What storing the shipped weights in float16 would cost: bytes saved and how far the predictions move.

Every floating-point tensor of every member of ``--model`` is rounded to float16 and back (what loading a float16
file into the float64 model does); both versions then predict the first ``--count`` records of each split's test
set with the members of that split only (never a record a member trained on). Prints the weights' bytes at
float32 and float16, the largest and mean |Δε| between the two versions, and both versions' MAE against DFT and
ε̄ Spearman. Nothing is written: this measures whether a float16 re-pack (which changes the ensemble's
fingerprint, so its calibration and the shipped screen must be re-made) is worth it.

    python benchmarks/experiments/half_precision_storage.py --model default --count 60
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch


def main() -> None:
    from scipy.stats import spearmanr

    from goectp.api import graphs_for
    from goectp.data import DIELECTRIC_FILE, data_dir, read_dielectric_json, split_masks
    from goectp.data.splits import SPLIT_SEEDS
    from goectp.inference import run_model
    from goectp.models import Ensemble
    from goectp.registry import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--count", type=int, default=60, help="test records per split")
    args = p.parse_args()
    torch.set_num_threads(1)

    model = load_model(args.model).double().eval()
    half = copy.deepcopy(model)
    n32 = n16 = 0
    with torch.no_grad():
        seen = set()
        for tensor in half.state_dict().values():
            if tensor.is_floating_point() and tensor.data_ptr() not in seen:
                seen.add(tensor.data_ptr())
                n32 += 4 * tensor.numel()
                n16 += 2 * tensor.numel()
                tensor.copy_(tensor.to(torch.float16).to(tensor.dtype))
    records = read_dielectric_json(data_dir() / DIELECTRIC_FILE)
    sets = split_masks(len(records), SPLIT_SEEDS)
    names = list(model.names)
    full, rounded, true = [], [], []
    for k, seed in enumerate(SPLIT_SEEDS):
        idx = np.flatnonzero(sets["test"][k])[: args.count]
        members = [i for i, n in enumerate(names) if n.endswith(f"split{seed}")]
        structures = [records[i].structure for i in idx]
        for ens, out in ((model, full), (half, rounded)):
            sub = Ensemble([ens.members[i] for i in members], [names[i] for i in members])
            out.append(run_model(graphs_for(structures, sub), sub).predictions.mean(axis=0))
        true.append(np.stack([records[i].target("total") for i in idx]))
    full, rounded, true = (np.concatenate(a) for a in (full, rounded, true))
    diff = np.abs(full - rounded)
    eps_bar = lambda t: np.trace(t, axis1=1, axis2=2) / 3  # noqa: E731
    print(
        f"| {args.model}: {len(true)} test records (members of their own split) | float32 weights | float16 weights |"
    )
    print("|---|---:|---:|")
    print(f"| weight bytes (MB, each tensor once) | {n32 / 1e6:.1f} | {n16 / 1e6:.1f} |")
    print(
        f"| MAE against DFT (9 components) | {np.abs(full - true).mean():.4f} | {np.abs(rounded - true).mean():.4f} |"
    )
    rho = spearmanr(eps_bar(full), eps_bar(true)).statistic, spearmanr(eps_bar(rounded), eps_bar(true)).statistic
    print(f"| ε̄ Spearman against DFT | {rho[0]:.4f} | {rho[1]:.4f} |")
    print(f"| max / mean \\|Δε\\| between the two | – | {diff.max():.2e} / {diff.mean():.2e} |")


if __name__ == "__main__":
    main()
