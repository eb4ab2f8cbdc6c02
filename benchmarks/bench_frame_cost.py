"""What exact cell-choice invariance costs: ``goectp.predict`` with the canonical cell and frame averaging (as shipped)
against the same ensemble on spglib's primitive cell with one frame (the setting before, ``frame_average=False``).

Each timing is the whole user path — structure → graph (→ canonical cell and frames) → node features → ensemble
forward — for the same structures of the open set, on one torch thread. The two settings alternate within each
repeat so that a busy machine slows both alike; the table gives medians over the repeats and their ratio.

    python benchmarks/bench_frame_cost.py --count 200 --repeats 5 --write
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import goectp
from goectp.canonical import uses_canonical_cell
from goectp.data import DIELECTRIC_FILE, data_dir, read_dielectric_json
from goectp.evaluation.report import write_section


def one_frame(ensemble: torch.nn.Module) -> torch.nn.Module:
    """The same weights on spglib's primitive cell with a single frame (what shipped before frame averaging)."""
    plain = copy.deepcopy(ensemble)
    for member in getattr(plain, "members", [plain]):
        member.config.frame_average = False
    return plain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["fast", "default"])
    ap.add_argument("--count", type=int, default=200, help="structures from the open set (every n-th, spread out)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    records = read_dielectric_json(data_dir() / DIELECTRIC_FILE)
    structures = [r.structure for r in records[:: max(1, len(records) // args.count)][: args.count]]
    lines = [
        f"{len(structures)} structures of the open set (every {max(1, len(records) // args.count)}-th), "
        f"{args.repeats} repeats, one torch thread, CPU; ms per structure for `goectp.predict` "
        "(graph, canonical cell and frames, node features, 5-member ensemble forward).",
        "",
        "| model | one frame, primitive cell (ms) | canonical cell + frame averaging (ms) | ratio | max |Δε| |",
        "|---|---|---|---|---|",
    ]
    for name in args.models:
        shipped = goectp.load_model(name)
        assert uses_canonical_cell(shipped.members[0].config), name
        before = one_frame(shipped)
        goectp.predict(structures[:4], shipped, device="cpu")  # warm-up: imports, feature models
        goectp.predict(structures[:4], before, device="cpu")
        times: dict[str, list[float]] = {"before": [], "shipped": []}
        preds = {}
        for _ in range(args.repeats):
            for label, net in (("before", before), ("shipped", shipped)):
                t0 = time.perf_counter()
                preds[label] = goectp.predict(structures, net, device="cpu")
                times[label].append(1e3 * (time.perf_counter() - t0) / len(structures))
        t_before, t_shipped = statistics.median(times["before"]), statistics.median(times["shipped"])
        diff = float(np.abs(preds["shipped"] - preds["before"]).max())
        lines.append(f"| {name} | {t_before:.1f} | {t_shipped:.1f} | {t_shipped / t_before:.2f}x | {diff:.2f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.write:
        cmd = f"Command: `python benchmarks/bench_frame_cost.py --count {args.count} --repeats {args.repeats} --write`."
        write_section(Path("BENCHMARKS.md"), "## Cost of exact cell-choice invariance", table + "\n\n" + cmd)


if __name__ == "__main__":
    main()
