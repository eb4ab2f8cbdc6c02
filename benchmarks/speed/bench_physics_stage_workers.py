"""Does the screen's physics stage gain from Dask worker processes? One process against ``--workers`` of them.

The stage (:func:`goectp.screening.physics_stage.correct_candidate` per candidate) on the ``--top`` best rows of the
shipped high-κ list, each run on an empty force-constant cache: once in this process (torch's default threads), once
on a LocalCluster of ``--workers`` processes (one torch thread each, the shipped ``physics`` model scattered to every
worker once). Prints seconds, their ratio and the largest difference of the corrected ε̄ (float32 forces summed in
another order move the force constants by ~1e-4).

    python benchmarks/speed/bench_physics_stage_workers.py --top 60 --workers 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _in_worker(model, record, tensor, cache: str):
    """One candidate in a Dask worker: one torch thread, the run's own empty cache."""
    import torch

    from goectp.screening.physics_stage import correct_candidate

    os.environ["GOECTP_CACHE"] = cache
    torch.set_num_threads(1)
    return correct_candidate(model, record, tensor)


def main() -> None:
    import pandas as pd

    from goectp.physics.model import PhysicsModel
    from goectp.registry import assets_dir
    from goectp.screening.cluster import dask_client
    from goectp.screening.physics_stage import correct_candidate, table_tensors
    from goectp.screening.pool import open_pool

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--top", type=int, default=60)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--pool", default="../shared/data/screening_candidates.json.gz")
    args = p.parse_args()
    top = pd.read_csv(assets_dir() / "screening" / "top_high_k.csv").sort_values("rank", kind="stable")
    head = top.head(args.top)
    wanted = set(head["id"])
    records = {rec["id"]: rec for rec in open_pool(Path(args.pool)) if rec.get("id") in wanted}
    items = [(records.get(cid), tensor) for cid, tensor in zip(head["id"], table_tensors(head))]
    model = PhysicsModel.load()

    os.environ["GOECTP_CACHE"] = tempfile.mkdtemp()
    start = time.perf_counter()
    one = [correct_candidate(model, record, tensor) for record, tensor in items]
    seconds_one = time.perf_counter() - start

    cache = tempfile.mkdtemp()
    start = time.perf_counter()
    with dask_client(args.workers) as client:
        shared = client.scatter(model, broadcast=True, hash=False)
        futures = [client.submit(_in_worker, shared, r, t, cache, pure=False) for r, t in items]
        many = client.gather(futures)
    seconds_many = time.perf_counter() - start

    values = [(a[0], b[0]) for a, b in zip(one, many) if a[0] is not None and b[0] is not None]
    drift = max((abs(a - b) for a, b in values), default=float("nan"))
    same_use = all(a[1] == b[1] for a, b in zip(one, many))
    print(f"| physics stage, top {len(items)} of the shipped list | seconds | × one process |")
    print("|---|---|---|")
    print(f"| one process (torch threads: default) | {seconds_one:.1f} | 1.00 |")
    print(
        f"| {args.workers} Dask worker processes, one thread each | {seconds_many:.1f} | "
        f"{seconds_many / seconds_one:.2f} |"
    )
    print(
        f"\nlargest |Δ ε̄| {drift:.2g}; the same candidates use the term: {same_use}; "
        f"median ε̄ {np.median([a for a, _ in values]):.2f}"
    )


if __name__ == "__main__":
    main()
