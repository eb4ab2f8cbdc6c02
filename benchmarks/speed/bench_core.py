"""Core throughput: crystal-graph construction time and forward throughput of the three GoeCTP backbones.

On ``--count`` real structures of ``mp_dielectric_open.json.gz`` (ids spread evenly over the file):

- graph construction: ``build_crystal_graph`` per structure (k = 16; neighbour list, Niggli and primitive bases,
  spglib point group), and the neighbour search alone;
- forward throughput (structures/s) of 'goectp' (1 layer), 'mat' (4 layers) and 'icom' (4 layers), hidden 128,
  float32, CPU, ``torch.no_grad``, eval mode, at batch size 1 and 64, on prebuilt, pre-collated batches (collation is
  timed separately).

Every number is the median of ``--repeats`` timed passes over all structures (after one warm-up pass).

Run: ``python benchmarks/speed/bench_core.py [--data-dir DIR] [--count 256] [--repeats 5] [--no-write]``; prints a
Markdown table and writes it to ``BENCHMARKS.md`` under ``## Core throughput``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from pymatgen.core import Structure
from torch_geometric.data import Batch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from goectp.api import build_model  # noqa: E402
from goectp.evaluation.report import write_section  # noqa: E402
from goectp.graph import build_crystal_graph, neighbor_edges, symmetry_operations  # noqa: E402
from goectp.structures import structure_from_dict  # noqa: E402

HEADING = "## Core throughput"
BACKBONES = (("goectp", 1), ("mat", 4), ("icom", 4))


def default_data_dir() -> Path:
    env = os.environ.get("GOECTP_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def load_structures(data_dir: Path, count: int) -> list[Structure]:
    path = data_dir / "mp_dielectric_open.json.gz"
    if not path.exists():
        raise SystemExit(f"{path} not found: pass --data-dir or set GOECTP_DATA")
    with gzip.open(path, "rt") as fh:
        records = json.load(fh)
    ids = sorted(records)
    picked = ids[:: max(1, len(ids) // count)][:count]
    return [structure_from_dict(records[i]["structure"]) for i in picked]


def median_time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median ``(wall, CPU)`` seconds of ``repeats`` calls after one warm-up call.

    The CPU time of this process (``time.process_time``) is what the work costs; on a machine shared with other jobs
    the wall time also contains the waits for a core, so both are reported.
    """
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return float(np.median(wall)), float(np.median(cpu))


def time_graphs(structures: Sequence[Structure], repeats: int) -> dict[str, float]:
    """Milliseconds per structure (CPU time of this process, and wall time for the whole set)."""
    per_structure = []
    for structure in structures:  # per-structure medians, to report the spread as well
        per_structure.append(median_time(lambda s=structure: build_crystal_graph(s), repeats)[1])
    wall, cpu = median_time(lambda: [build_crystal_graph(s) for s in structures], repeats)
    _, neighbours = median_time(lambda: [neighbor_edges(s) for s in structures], repeats)
    _, symmetry = median_time(lambda: [symmetry_operations(s) for s in structures], repeats)
    n = len(structures)
    return {
        "cpu_ms": 1e3 * cpu / n,
        "wall_ms": 1e3 * wall / n,
        "median_ms": 1e3 * float(np.median(per_structure)),
        "p90_ms": 1e3 * float(np.percentile(per_structure, 90)),
        "neighbours_ms": 1e3 * neighbours / n,
        "symmetry_ms": 1e3 * symmetry / n,
    }


def time_forward(graphs: list, variant: str, layers: int, batch_size: int, repeats: int) -> tuple[float, float]:
    """Structures per (wall, CPU) second of ``model(batch)`` over all graphs, batches collated beforehand."""
    torch.manual_seed(0)
    model = build_model(variant, hidden=128, num_layers=layers).float().eval()
    batches = [Batch.from_data_list(graphs[i : i + batch_size]) for i in range(0, len(graphs), batch_size)]

    def run() -> None:
        with torch.no_grad():
            for batch in batches:
                model(batch)

    wall, cpu = median_time(run, repeats)
    return len(graphs) / wall, len(graphs) / cpu


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="folder with mp_dielectric_open.json.gz (default: $GOECTP_DATA or ../shared/data)",
    )
    parser.add_argument("--count", type=int, default=256, help="structures (default 256)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per number (default 5)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a loaded machine 2 OpenMP threads were 30x slower)",
    )
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="only print the table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    structures = load_structures(args.data_dir, args.count)
    sizes = np.array([len(s) for s in structures])
    graph_times = time_graphs(structures, args.repeats)
    graphs = [build_crystal_graph(s) for s in structures]
    edges = np.array([g.edge_index.size(1) for g in graphs])
    _, collate = median_time(
        lambda: [Batch.from_data_list(graphs[i : i + 64]) for i in range(0, len(graphs), 64)], args.repeats
    )
    print(f"graphs: {graph_times}")

    rows = []
    for variant, layers in BACKBONES:
        params = sum(p.numel() for p in build_model(variant, hidden=128, num_layers=layers).parameters())
        single = time_forward(graphs, variant, layers, 1, args.repeats)
        batched = time_forward(graphs, variant, layers, 64, args.repeats)
        rows.append((variant, layers, params, single, batched))
        print(f"{variant}: batch 1 {single}/s, batch 64 {batched}/s (wall, CPU)")

    cpu = cpu_name()
    load_after = os.getloadavg()[0]
    table = [
        "| backbone | layers | parameters | batch 1: structures / CPU s | batch 64: structures / CPU s | ratio 64 / 1 "
        "| batch 1: structures / wall s | batch 64: structures / wall s | ratio 64 / 1 (wall) |",
        "|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {v} | {n} | {p:,} | {a[1]:.1f} | {b[1]:.1f} | {b[1] / a[1]:.1f}x | {a[0]:.1f} | {b[0]:.1f} | "
            f"{b[0] / a[0]:.1f}x |"
            for v, n, p, a, b in rows
        ),
    ]
    body = (
        f"{len(structures)} structures of `mp_dielectric_open.json.gz` (ids spread evenly; atoms per cell median "
        f"{np.median(sizes):.0f}, max {sizes.max()}; edges per structure median {np.median(edges):.0f} with k = 16 "
        f"and ties kept). CPU `{cpu}` ({os.cpu_count()} cores), {torch.get_num_threads()} torch thread(s), torch "
        f"{torch.__version__}, float32, `torch.no_grad`, eval mode, hidden 128. Medians of {args.repeats} passes "
        f"after a warm-up. The 2 cores were shared with other jobs (load average {load_before:.1f} at the start, "
        f"{load_after:.1f} at the end), so wall-clock numbers include waiting for a core and are pessimistic and "
        "noisy; the CPU-time columns (CPU seconds of this single-threaded process) measure the work itself.\n\n"
        f"**Graph construction** (`build_crystal_graph`, one structure at a time): "
        f"{graph_times['cpu_ms']:.1f} CPU ms per structure on average ({graph_times['wall_ms']:.1f} ms wall; "
        f"per-structure median {graph_times['median_ms']:.1f} ms, 90th percentile {graph_times['p90_ms']:.1f} ms), "
        f"of which the neighbour search with tie handling takes {graph_times['neighbours_ms']:.1f} ms and the "
        f"spglib point group and primitive lattice {graph_times['symmetry_ms']:.1f} ms; the rest is validation and "
        f"the Niggli bases. Collating 64 graphs into a `Batch`: {1e3 * collate / len(graphs):.2f} ms per "
        "structure.\n\n"
        "**Forward throughput** (pre-collated batches):\n\n" + "\n".join(table) + "\n\n"
        "On one CPU thread the work grows with the number of edges, so batching saves only the per-call overhead "
        "(Python and operator dispatch, the frame's SVD), hence the small ratios; GPUs were not measured.\n\n"
        f"Command: `python benchmarks/speed/bench_core.py --count {args.count} --repeats {args.repeats} "
        f"--threads {args.threads}`.\n"
    )
    print(body)
    if not args.no_write:
        write_section(args.output, HEADING, body)
        print(f"wrote {args.output} ({HEADING})")


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else (platform.processor() or platform.machine())


if __name__ == "__main__":
    main()
