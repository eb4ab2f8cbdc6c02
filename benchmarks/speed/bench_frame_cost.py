"""What exact cell-choice invariance costs: ``goectp.predict`` with the canonical cell and frame averaging (as shipped)
against the same ensemble on spglib's primitive cell with one frame (the setting before, ``frame_average=False``).

Each timing is the whole user path — structure → graph (→ canonical cell and frames) → node features → ensemble
forward — for the same structures of the open set, on one torch thread. The two settings alternate within each
repeat so that a busy machine slows both alike; the table gives medians over the repeats and their ratio.

    python benchmarks/speed/bench_frame_cost.py --count 200 --repeats 5 --write

``--baseline REF`` also times the code of an older commit (a temporary git worktree, run in a subprocess that loads
the same structures and its own shipped ``--baseline-model``) in the same alternation: the prediction cost of the
day before frame averaging (``c7f70f5^``, where today's ``fast`` weights shipped as ``default``), to compare the
new cost against.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import goectp
from goectp.canonical import uses_canonical_cell
from goectp.data import DIELECTRIC_FILE, data_dir, read_dielectric_json
from goectp.evaluation.report import write_section
from goectp.models import networks


def one_frame(ensemble: torch.nn.Module) -> torch.nn.Module:
    """The same weights on spglib's primitive cell with a single frame (what shipped before frame averaging)."""
    plain = copy.deepcopy(ensemble)
    for network in networks(plain):
        network.config.frame_average = False
    return plain


BASELINE_SNIPPET = """
import json, sys, time, warnings
import torch
import goectp
from goectp.data import DIELECTRIC_FILE, data_dir, read_dielectric_json
warnings.filterwarnings("ignore")
torch.set_num_threads(1)
records = read_dielectric_json(data_dir() / DIELECTRIC_FILE)
step, count = int(sys.argv[1]), int(sys.argv[2])
structures = [r.structure for r in records[::step][:count]]
model = goectp.load_model(sys.argv[3])
goectp.predict(structures[:4], model, device="cpu")
t0 = time.perf_counter()
goectp.predict(structures, model, device="cpu")
print(json.dumps({"ms": 1e3 * (time.perf_counter() - t0) / len(structures)}))
"""


def time_baseline(tree: Path, model: str, step: int, count: int) -> float:
    """ms per structure of ``goectp.predict`` with the code (and shipped models) of ``tree``, in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(tree), "GOECTP_DATA": str(data_dir())}
    out = subprocess.run(
        [sys.executable, "-c", BASELINE_SNIPPET, str(step), str(count), model],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["ms"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["fast", "default"])
    ap.add_argument("--count", type=int, default=200, help="structures from the open set (every n-th, spread out)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    ap.add_argument("--baseline", help="also time this git commit's code (e.g. c7f70f5^: before frame averaging)")
    ap.add_argument("--baseline-for", default="fast", help="the model of --models the baseline is compared with")
    ap.add_argument("--baseline-model", default="default", help="that model's name in the baseline commit")
    args = ap.parse_args()
    tree = None
    if args.baseline:
        tree = Path(tempfile.mkdtemp(prefix="goectp-baseline-")) / "tree"
        add = ["git", "worktree", "add", "--detach", str(tree), args.baseline]
        subprocess.run(add, check=True, capture_output=True)
    try:
        run(args, tree)
    finally:
        if tree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], check=False, capture_output=True)


def run(args: argparse.Namespace, tree: Path | None) -> None:
    torch.set_num_threads(1)
    records = read_dielectric_json(data_dir() / DIELECTRIC_FILE)
    step = max(1, len(records) // args.count)
    structures = [r.structure for r in records[::step][: args.count]]
    lines = [
        f"{len(structures)} structures of the open set (every {max(1, len(records) // args.count)}-th), "
        f"{args.repeats} repeats, one torch thread, CPU; ms per structure for `goectp.predict` "
        "(graph, canonical cell and frames, node features, the forward pass of every ensemble member)."
        + (
            f" `{args.baseline}`: that commit's code and its shipped `{args.baseline_model}` model (the same weights"
            f" as `{args.baseline_for}`), run in a subprocess in the same alternation."
            if tree
            else ""
        ),
        "",
        "| model | one frame, primitive cell (ms) | canonical cell + frame averaging (ms) | ratio | max |Δε| |"
        + (f" `{args.baseline}` one frame (ms) | frame averaging / `{args.baseline}` |" if tree else ""),
        "|---|---|---|---|---|" + ("---|---|" if tree else ""),
    ]
    for name in args.models:
        shipped = goectp.load_model(name)
        assert uses_canonical_cell(shipped.members[0].config), name
        before = one_frame(shipped)
        goectp.predict(structures[:4], shipped, device="cpu")  # warm-up: imports, feature models
        goectp.predict(structures[:4], before, device="cpu")
        times: dict[str, list[float]] = {"before": [], "shipped": [], "baseline": []}
        preds = {}
        for _ in range(args.repeats):
            if tree is not None and name == args.baseline_for:
                times["baseline"].append(time_baseline(tree, args.baseline_model, step, len(structures)))
            for label, net in (("before", before), ("shipped", shipped)):
                t0 = time.perf_counter()
                preds[label] = goectp.predict(structures, net, device="cpu")
                times[label].append(1e3 * (time.perf_counter() - t0) / len(structures))
        t_before, t_shipped = statistics.median(times["before"]), statistics.median(times["shipped"])
        diff = float(np.abs(preds["shipped"] - preds["before"]).max())
        row = f"| {name} | {t_before:.1f} | {t_shipped:.1f} | {t_shipped / t_before:.2f}x | {diff:.2f} |"
        if tree is not None:
            t_base = statistics.median(times["baseline"]) if times["baseline"] else None
            row += f" {t_base:.1f} | {t_shipped / t_base:.2f}x |" if t_base else " – | – |"
        lines.append(row)
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.write:
        extra = f" --baseline '{args.baseline}'" if args.baseline else ""
        script = "python benchmarks/speed/bench_frame_cost.py"
        cmd = f"{script} --count {args.count} --repeats {args.repeats}{extra} --write"
        cmd = f"Command: `{cmd}`."
        write_section(Path("BENCHMARKS.md"), "## Cost of exact cell-choice invariance", table + "\n\n" + cmd)


if __name__ == "__main__":
    main()
