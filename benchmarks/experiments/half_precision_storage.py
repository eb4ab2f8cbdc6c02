"""What storing the shipped weights in float16 costs: bytes saved and how far the predictions move.

Two versions of ``--model`` predict the first ``--count`` records of each split's test set with the members of
that split only (never a record a member trained on): with ``--before REV``, the shipped files against those of
git revision ``REV`` (``assets/models`` extracted to a temporary folder: e.g. the float32 files before
``goectp ensemble float16``); without it, the loaded weights against the same weights rounded to float16 and back
(every floating tensor: what a re-pack would do, measured before applying it). Prints the bytes of the weights,
the largest and mean |Δε| between the two versions, and both versions' MAE against DFT and ε̄ Spearman.

    python benchmarks/experiments/half_precision_storage.py --model default --count 60               # before
    python benchmarks/experiments/half_precision_storage.py --model default --count 60 --before 769b801  # after
"""

from __future__ import annotations

import argparse
import copy
import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from scipy.stats import spearmanr

    from goectp.api import graphs_for
    from goectp.data import DIELECTRIC_FILE, data_dir, read_dielectric_json, split_masks
    from goectp.data.splits import SPLIT_SEEDS
    from goectp.inference import run_model
    from goectp.models import Ensemble
    from goectp.registry import load_model, resolve_model_path

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--count", type=int, default=60, help="test records per split")
    p.add_argument("--before", default=None, help="git revision whose assets/models are the other version")
    args = p.parse_args()
    torch.set_num_threads(1)

    if args.before:
        tmp = tempfile.TemporaryDirectory()
        archive = subprocess.run(["git", "archive", args.before, "assets/models"], capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp.name, filter="data")
        folder = resolve_model_path(args.model)
        model = load_model(Path(tmp.name) / "assets" / "models" / folder.name).double().eval()
        half = load_model(args.model).double().eval()
        shipped = lambda root: sum(f.stat().st_size for f in root.glob("*/*.pt"))  # noqa: E731
        n32, n16 = shipped(Path(tmp.name) / "assets" / "models"), shipped(folder.parent)
        label = f"{args.before} files", "shipped files"
    else:
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
        label = "float32 weights", "float16 weights"
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
    print(f"| {args.model}: {len(true)} test records (members of their own split) | {label[0]} | {label[1]} |")
    print("|---|---:|---:|")
    what = "bytes of every shipped *.pt (MB)" if args.before else "weight bytes (MB, each tensor once)"
    print(f"| {what} | {n32 / 1e6:.1f} | {n16 / 1e6:.1f} |")
    print(
        f"| MAE against DFT (9 components) | {np.abs(full - true).mean():.4f} | {np.abs(rounded - true).mean():.4f} |"
    )
    rho = spearmanr(eps_bar(full), eps_bar(true)).statistic, spearmanr(eps_bar(rounded), eps_bar(true)).statistic
    print(f"| ε̄ Spearman against DFT | {rho[0]:.4f} | {rho[1]:.4f} |")
    print(f"| max / mean \\|Δε\\| between the two | – | {diff.max():.2e} / {diff.mean():.2e} |")


if __name__ == "__main__":
    main()
