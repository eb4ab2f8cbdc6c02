"""Screening throughput: single process vs Dask, cost vs pool size, peak memory.

For every pool size (the first N candidates of the shared pool; ``all`` = the whole pool) and every mode
(``single``: ``--no-dask``; ``dask``: a LocalCluster with ``--workers`` worker processes, one thread each) this
runs the real screening engine from scratch (fresh work dir, training exclusion on, crystal-system column on) and
reports structures/s after start-up, the start-up time, wall time, and peak resident memory (RSS of this process
and of all its child processes, i.e. the Dask nanny/worker processes, sampled every 0.1 s).

The ensemble is ``assets/models/default`` when it exists, otherwise five random members of the paper's size
(GoeCTP, hidden 128, one message-passing layer) saved to a temporary folder: the cost of a forward pass does not
depend on the weights. The table says which one was used.

    python benchmarks/speed/bench_screening.py                      # sizes 1000 5000 all, both modes
    python benchmarks/speed/bench_screening.py --sizes 500 2000     # smaller, e.g. on a shared 2-core machine

The Markdown table is printed and written to BENCHMARKS.md under ``## Screening throughput`` (other sections kept).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import tempfile
import threading
import time
from pathlib import Path

import psutil
import torch

from goectp.api import build_model, save_checkpoint
from goectp.data.paths import data_dir
from goectp.registry import available_models, checkpoint_files, resolve_model_path
from goectp.screening.engine import ScreeningOptions
from goectp.screening.run import run_screening

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Screening throughput"


class PeakRSS:
    """Peak RSS of this process and of this process + all descendants, sampled in a background thread."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval, self.peak_self, self.peak_total = interval, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        own = me.memory_info().rss
        total = own
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        self.peak_self, self.peak_total = max(self.peak_self, own), max(self.peak_total, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def paper_size_ensemble(directory: Path, members: int = 5) -> Path:
    for seed in range(members):
        torch.manual_seed(seed)
        model = build_model("goectp", hidden=128, num_layers=1)
        model.set_target_stats(5.0, 10.0)
        save_checkpoint(directory / f"random{seed}.pt", model, seed=seed)
    return directory


def pool_size(path: Path) -> int:
    from goectp.screening.pool import open_pool

    return open_pool(path).count()


def run_case(
    pool: Path,
    model: Path,
    size: int | None,
    mode: str,
    workers: int,
    chunk_size: int,
    training: Path | None,
    tmp: Path,
) -> dict:
    opts = ScreeningOptions(
        pool=pool,
        model=model,
        out_dir=tmp / f"{mode}-{size}",
        limit=size,
        use_dask=mode == "dask",
        workers=workers,
        chunk_size=chunk_size,
        progress=False,
        exclude_training=training,
        reference_dir=None,
        fresh=True,
    )
    start = time.perf_counter()
    with PeakRSS() as mem:
        run = run_screening(opts)
    wall = time.perf_counter() - start
    rep = run.report
    return {
        "mode": mode,
        "workers": workers if mode == "dask" else 1,
        "size": len(rep.expected_ids),
        "scored": len(run.rankings.results),
        "not_scored": len(run.rankings.rejects),
        "wall_s": wall,
        "startup_s": rep.startup_seconds,
        "per_s": rep.structures_per_s,
        "rss_driver_mb": mem.peak_self / 2**20,
        "rss_total_mb": mem.peak_total / 2**20,
    }


def markdown(rows: list[dict], header: list[str]) -> str:
    base = {(r["size"]): r["per_s"] for r in rows if r["mode"] == "single"}
    lines = [
        "| mode | workers | candidates | scored | not scored | structures/s | vs single | start-up s | "
        "wall s | ms / candidate | peak RSS driver (MiB) | peak RSS incl. workers (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["per_s"] / base[r["size"]] if r["size"] in base else float("nan")
        lines.append(
            f"| {r['mode']} | {r['workers']} | {r['size']} | {r['scored']} | {r['not_scored']} | "
            f"{r['per_s']:.1f} | {ratio:.2f}x | {r['startup_s']:.1f} | {r['wall_s']:.1f} | "
            f"{1000 / r['per_s']:.2f} | {r['rss_driver_mb']:.0f} | {r['rss_total_mb']:.0f} |"
        )
    return "\n".join([*header, "", *lines, ""])


def write_section(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"{SECTION}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


def main() -> None:
    d = data_dir(must_exist=False)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", type=Path, default=d / "screening_candidates.json.gz")
    p.add_argument("--training", type=Path, default=d / "mp_dielectric_open.json.gz")
    p.add_argument("--sizes", nargs="+", default=["1000", "5000", "all"], help="pool sizes; 'all' = whole pool")
    p.add_argument("--modes", nargs="+", default=["single", "dask"], choices=["single", "dask"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk-size", type=int, default=256)
    p.add_argument(
        "--model",
        default=None,
        help="checkpoint folder (default: assets/models/default if present, else a random paper-size ensemble)",
    )
    p.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    p.add_argument("--note", default="", help="extra sentence for the table header (e.g. machine load)")
    args = p.parse_args()

    load_before = os.getloadavg()[0]
    total = pool_size(args.pool)
    sizes = [None if s == "all" else min(int(s), total) for s in args.sizes]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if args.model:
            model, model_note = Path(args.model), f"`{args.model}`"
        elif "default" in available_models():
            shipped = resolve_model_path("default")  # an alias: the folder it names
            model, model_note = shipped, f"the shipped default ensemble `assets/models/{shipped.name}`"
        else:
            model = paper_size_ensemble(tmp / "ensemble")
            model_note = (
                "five **random** members of the paper's size (GoeCTP, hidden 128, 1 layer; "
                "`assets/models/default` was not there yet; cost does not depend on the weights)"
            )
        n_members = len(checkpoint_files(model))
        rows = []
        for size in sizes:
            for mode in args.modes:
                row = run_case(args.pool, model, size, mode, args.workers, args.chunk_size, args.training, tmp)
                rows.append(row)
                print(
                    f"{mode:6s} n={row['size']:6d}: {row['per_s']:.1f} structures/s, wall {row['wall_s']:.1f} s, "
                    f"peak RSS {row['rss_total_mb']:.0f} MiB",
                    flush=True,
                )
    cmd = "python benchmarks/speed/bench_screening.py " + " ".join(
        [f"--sizes {' '.join(args.sizes)}", f"--workers {args.workers}", f"--chunk-size {args.chunk_size}"]
    )
    header = [
        f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')}). Model: {model_note}; {n_members} members.",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
        f"{'CUDA' if torch.cuda.is_available() else 'CPU only'}; one torch thread per worker. "
        "Candidates are the first N of `screening_candidates.json.gz`; every run starts from an empty work dir "
        "with training exclusion and the crystal-system column on. structures/s = candidates handled (scored + "
        "rejected; rejected ones cost almost nothing) per second after start-up; start-up = starting the "
        "LocalCluster, shipping the checkpoints and loading the ensemble on every worker (imports included). "
        "Peak RSS is sampled every 0.1 s; 'incl. workers' adds all child processes (nannies and workers).",
    ]
    header.append(
        f"1-minute load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the runs "
        f"(other jobs share the machine; on {os.cpu_count()} CPUs numbers above ~{os.cpu_count()} mean "
        "contention)." + (f" {args.note}" if args.note else "")
    )
    table = markdown(rows, header)
    print(table)
    write_section(args.output, table)
    print(f"written to {args.output} under '{SECTION}'")


if __name__ == "__main__":
    main()
