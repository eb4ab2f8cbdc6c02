"""GPU check: train 2 epochs on CUDA, CPU/GPU prediction parity (float64), training and prediction throughput.

    python benchmarks/speed/gpu_check.py [--n 512] [--model fast] [--write]

Without CUDA it prints why and exits 0 (nothing to check). With CUDA it prints a Markdown table; ``--write`` puts
it into BENCHMARKS.md under "GPU check". Parity: the shipped model's ensemble mean on ``--n`` structures of the open
set, float64 on both devices, must agree to 1e-5 (exit 1 otherwise).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PARITY_TOL = 1e-5


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=512, help="structures for throughput and parity")
    ap.add_argument("--model", default="fast", help="shipped model for the parity check")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "gpu_check: skipped, no CUDA device on this machine (torch "
            f"{torch.__version__}, built with CUDA {torch.version.cuda})"
        )
        return 0
    from goectp.api import load_model, predict_graphs
    from goectp.canonical import uses_canonical_cell
    from goectp.data import DIELECTRIC_FILE, data_dir, load_graph_set
    from goectp.models import GoeCTP, GoeCTPConfig
    from goectp.training import TrainConfig
    from goectp.training.loop import train

    model = load_model(args.model).double()
    cfg = model.config
    if cfg.node_features:
        from goectp.features import load_featured_graph_set

        gs, _ = load_featured_graph_set(
            data_dir() / DIELECTRIC_FILE,
            cfg.node_features,
            k=cfg.k_neighbors,
            progress=False,
            canonical=uses_canonical_cell(cfg),
        )
    else:
        gs = load_graph_set(
            data_dir() / DIELECTRIC_FILE, k=cfg.k_neighbors, progress=False, canonical=uses_canonical_cell(cfg)
        )
    graphs = gs.graphs[: args.n]
    rows = [f"Device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; {len(graphs)} structures."]

    times = {}
    for dev in ("cpu", "cuda"):
        predict_graphs(graphs[:8], model, device=dev)  # warm-up
        t0 = time.perf_counter()
        pred = predict_graphs(graphs, model, device=dev).mean(axis=0)
        if dev == "cuda":
            torch.cuda.synchronize()
        times[dev] = (time.perf_counter() - t0, pred)
    parity = float(np.abs(times["cpu"][1] - times["cuda"][1]).max())

    train_graphs = [g for g in gs.with_target("total").graphs[: args.n]]
    split = int(0.9 * len(train_graphs))
    train_speed = {}
    for dev in ("cpu", "cuda"):
        torch.manual_seed(0)
        net = GoeCTP(GoeCTPConfig(**{k: v for k, v in cfg.to_dict().items() if k != "extra"}))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train(
                net,
                train_graphs[:split],
                train_graphs[split:],
                TrainConfig(epochs=2, device=dev, progress=False),
                Path(tmp),
            )
            train_speed[dev] = 2 * split / (time.perf_counter() - t0)
    rows += [
        "",
        "| check | CPU | CUDA | ratio |",
        "|---|---|---|---|",
        f"| prediction, structures/s ({args.model}, float64, ensemble) | {len(graphs) / times['cpu'][0]:.0f} | "
        f"{len(graphs) / times['cuda'][0]:.0f} | {times['cpu'][0] / times['cuda'][0]:.1f}x |",
        f"| training, structures/s (2 epochs, batch 64) | {train_speed['cpu']:.0f} | {train_speed['cuda']:.0f} | "
        f"{train_speed['cuda'] / train_speed['cpu']:.1f}x |",
        f"| CPU/GPU parity, max \\|Δ\\| (float64) | | {parity:.1e} | {'ok' if parity <= PARITY_TOL else 'FAIL'} |",
    ]
    text = "\n".join(rows)
    print(text)
    if args.write:
        from goectp.evaluation.report import write_section

        write_section(
            Path("BENCHMARKS.md"),
            "## GPU check",
            text + f"\n\nCommand: `python benchmarks/speed/gpu_check.py --n {args.n} --model {args.model} --write`.",
        )
    return 0 if parity <= PARITY_TOL else 1


if __name__ == "__main__":
    sys.exit(main())
