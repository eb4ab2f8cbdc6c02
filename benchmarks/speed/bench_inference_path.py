"""Before/after of the single inference path: predict_summary, predict, `goectp predict` and `goectp screen`.

Runs two source trees side by side in one session — ``before`` (a git ref, checked out into a temporary worktree)
and ``after`` (this checkout) — each in fresh subprocesses with one torch thread, alternating the two for every
repeat so that machine load hits both alike, and prints the median CPU seconds of each
(``time.process_time`` in the API runs, the children's user + system time for the commands: robust to the
machine's other load) and the ratio before/after.

    python benchmarks/speed/bench_inference_path.py --before d3b0dc0 --repeats 3

Workloads (the shipped ``default`` model, the first ``--n`` records of the shared dielectric set by id):

- ``predict_summary``: ε̄ ± σ, α ± σ and the OOD flag of ``--n`` structures (after a warm-up call);
- ``predict``: the mean tensors of the same structures;
- ``goectp predict``: the CLI on the ten example CIFs, start-up and model loading included;
- ``goectp screen``: ``--limit --screen-n`` candidates of the shared pool, one process (``--no-dask``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TIMED = r"""
import gzip, json, sys, time, torch
torch.set_num_threads(1)
from goectp.api import load_model, predict, predict_summary
from goectp.structures import structure_from_dict
data = json.load(gzip.open(sys.argv[1], "rt"))
ids = sorted(data)[: int(sys.argv[2])]
structures = [structure_from_dict(data[k]["structure"]) for k in ids]
model = load_model("default")
predict_summary(structures[:2], model)
t = time.process_time(); predict_summary(structures, model); summary = time.process_time() - t
t = time.process_time(); predict(structures, model); plain = time.process_time() - t
print(json.dumps({"predict_summary": summary, "predict": plain}))
"""


def _env(tree: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["GOECTP_ASSETS"] = str(ROOT / "assets")  # the same shipped weights for both trees
    return env


def _api(tree: Path, data: Path, n: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", TIMED, str(data), str(n)], env=_env(tree), cwd=tree, capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(f"{tree}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _timed(cmd: list[str], tree: Path) -> float:
    """CPU seconds (user + system) of the command and its children: robust to the machine's other load."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, env=_env(tree), cwd=tree, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} in {tree}: {out.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cli(tree: Path) -> float:
    cifs = sorted(str(p) for p in (ROOT / "assets" / "examples").glob("*.cif"))
    return _timed([sys.executable, "-m", "goectp.cli", "predict", *cifs], tree)


def _screen(tree: Path, pool: Path, n: int) -> float:
    training = pool.parent / "mp_dielectric_open.json.gz"
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "goectp.screening", "--pool", str(pool), "--limit", str(n), "--no-dask"]
        cmd += ["--exclude-training", str(training)]
        cmd += ["--out", out, "--reference", "none", "--no-progress", "--torch-threads", "1"]
        return _timed(cmd, tree)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", default="d3b0dc0", help="git ref of the 'before' tree")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n", type=int, default=40, help="structures for predict/predict_summary")
    p.add_argument("--screen-n", type=int, default=150, help="candidates for goectp screen")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    args = p.parse_args()
    data_dir = Path(args.data_dir)
    before = Path(tempfile.mkdtemp(prefix="goectp-before-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=ROOT, check=True)
    try:
        times: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.repeats):
            for name, tree in (("before", before), ("after", ROOT)):
                api = _api(tree, data_dir / "mp_dielectric_open.json.gz", args.n)
                row = {
                    f"predict_summary ({args.n} structures)": api["predict_summary"],
                    f"predict ({args.n} structures)": api["predict"],
                    "goectp predict (10 example CIFs, CLI)": _cli(tree),
                    f"goectp screen ({args.screen_n} candidates, --no-dask)": _screen(
                        tree, data_dir / "screening_candidates.json.gz", args.screen_n
                    ),
                }
                for key, value in row.items():
                    times.setdefault(key, {}).setdefault(name, []).append(value)
        print(f"before = {args.before}, after = this checkout; medians of {args.repeats} alternating runs, 1 thread\n")
        print("| workload | before (CPU s) | after (CPU s) | before / after |")
        print("|---|---|---|---|")
        for key, by in times.items():
            b, a = statistics.median(by["before"]), statistics.median(by["after"])
            print(f"| {key} | {b:.2f} | {a:.2f} | {b / a:.2f}× |")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
