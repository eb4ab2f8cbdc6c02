"""Speed-up of ``goectp train --splits ... --workers N`` (splits in parallel on a Dask LocalCluster) over training
the same splits one after the other in one process.

Both runs train the same splits with the same settings from scratch into fresh folders; the graph cache is warmed
first so that neither run pays for building graphs. Reports the wall time of each run, the median seconds per
epoch of the splits in each, and the ratio.

    python benchmarks/speed/bench_parallel_training.py --splits 0 1 --epochs 4 --hidden 64 --workers 2 --write
    python benchmarks/speed/bench_parallel_training.py --data-file subset.json.gz ...   # a smaller set for a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from goectp.checkpoint import load_training_state
from goectp.evaluation.report import write_section


def train(out: Path, args: argparse.Namespace, workers: int, splits: list[int], epochs: int) -> float:
    cmd = [
        "goectp",
        "train",
        "--splits",
        *map(str, splits),
        "--epochs",
        str(epochs),
        "--hidden",
        str(args.hidden),
        "--out",
        str(out),
        "--no-progress",
        "--workers",
        str(workers),
    ]
    if args.data_file:
        cmd += ["--data-file", str(args.data_file)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def epoch_seconds(out: Path, splits: list[int]) -> list[float]:
    secs = []
    for s in splits:
        state = load_training_state(out / f"split{s}" / "last.pt")["state"]
        secs += [h["seconds"] for h in state["history"]]
    return secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splits", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data-file", type=Path, default=None, help="default: the open set in the data directory")
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="goectp-bench-parallel-") as tmp:
        root = Path(tmp)
        train(root / "warm", args, 1, args.splits[:1], 1)  # builds and caches the graph set
        wall_seq = train(root / "sequential", args, 1, args.splits, args.epochs)
        wall_par = train(root / "parallel", args, args.workers, args.splits, args.epochs)
        ep_seq = statistics.median(epoch_seconds(root / "sequential", args.splits))
        ep_par = statistics.median(epoch_seconds(root / "parallel", args.splits))
    data = args.data_file.name if args.data_file else "the open set (2,733 records)"
    table = "\n".join(
        [
            f"{len(args.splits)} splits × {args.epochs} epochs, GoeCTP hidden {args.hidden}, data: {data}; "
            f"{os.cpu_count()} logical CPUs, one torch thread per split. Wall time includes start-up (imports, "
            "loading the cached graphs; for Dask, the LocalCluster).",
            "",
            "| run | wall (s) | median s / epoch / split | speed-up (wall) |",
            "|---|---|---|---|",
            f"| sequential (`--workers 1`) | {wall_seq:.1f} | {ep_seq:.2f} | 1.00x |",
            f"| Dask LocalCluster (`--workers {args.workers}`) | {wall_par:.1f} | {ep_par:.2f} "
            f"| {wall_seq / wall_par:.2f}x |",
        ]
    )
    print(table)
    if args.write:
        cmd = (
            "Command: `python benchmarks/speed/bench_parallel_training.py --splits "
            f"{' '.join(map(str, args.splits))} --epochs {args.epochs} --hidden {args.hidden} "
            f"--workers {args.workers}{' --data-file ' + str(args.data_file) if args.data_file else ''} --write`."
        )
        write_section(Path("BENCHMARKS.md"), "## Training splits in parallel on Dask", table + "\n\n" + cmd)


if __name__ == "__main__":
    main()
