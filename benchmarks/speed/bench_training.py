"""Epoch time and peak memory per backbone on this machine.

Each variant trains for a few epochs on the first ``--n`` structures of the shared open set in a fresh subprocess
(so the peak resident memory of that process is the variant's own). Prints a Markdown table of median epoch time,
time per structure, ratio to the GoeCTP backbone, and peak RSS.

    python benchmarks/speed/bench_training.py --n 512 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
from torch_geometric.loader import DataLoader
from goectp.data import DIELECTRIC_FILE, data_dir, load_graph_set
from goectp.models import GoeCTP, GoeCTPConfig
from torch.nn import functional as fn
variant, n, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
gs = load_graph_set(data_dir() / DIELECTRIC_FILE, progress=False).with_target("total")[:n]
torch.manual_seed(0)
model = GoeCTP(GoeCTPConfig(variant=variant))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-5)
loader = DataLoader(gs, batch_size=64, shuffle=True)
times = []
for _ in range(epochs):
    t = time.perf_counter()
    for b in loader:
        loss = fn.huber_loss(model(b), b.y.float())
        opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.perf_counter() - t)
print(json.dumps({"epoch_s": float(np.median(times)), "peak_rss_mb":
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      "params": sum(p.numel() for p in model.parameters())}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", nargs="*", default=["goectp", "mat", "icom"])
    args = ap.parse_args()
    rows = {}
    for v in args.variants:
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, v, str(args.n), str(args.epochs), str(args.threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows[v] = json.loads(out.stdout.strip().splitlines()[-1])
        rows[v]["wall_s"] = time.perf_counter() - t0
    base = rows.get("goectp", next(iter(rows.values())))["epoch_s"]
    print(
        f"Training cost per backbone: {args.n} structures, batch 64, {args.threads} threads, median of "
        f"{args.epochs} epochs (CPU, this machine)\n"
    )
    print("| backbone | parameters | epoch (s) | ms / structure | ratio to goectp | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for v, r in rows.items():
        print(
            f"| {v} | {r['params']:,} | {r['epoch_s']:.2f} | {1000 * r['epoch_s'] / args.n:.2f} | "
            f"{r['epoch_s'] / base:.1f}x | {r['peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
