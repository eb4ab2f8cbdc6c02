"""Train the splits of an ensemble in parallel on Dask: one split per worker process, resumable per split.

``goectp train --splits 0 1 2 3 4 --workers 5`` starts a ``LocalCluster`` (one single-threaded worker process per
split); ``--scheduler tcp://host:8786`` uses a running cluster instead (every worker needs the package, the data
file and the caches' folder). Each task loads the graphs from the on-disk cache itself (only paths and plain
configs travel), trains with :func:`goectp.training.run_split` and resumes from ``split<k>/last.pt`` when it was
interrupted; a finished split (``metrics.json`` present) is not trained again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def train_one_split(
    data_file: str,
    model_config: dict,
    train_config: dict,
    out_dir: str,
    resume: bool = True,
    init_from: str | None = None,
    run_meta: dict | None = None,
    threads: int = 1,
) -> dict:
    """One split, self-contained (runs in a Dask worker): load graphs, train, evaluate; returns the summary."""
    import torch

    from goectp.canonical import uses_canonical_cell
    from goectp.data import load_graph_set, sha256_file
    from goectp.models import GoeCTPConfig
    from goectp.training.config import TrainConfig
    from goectp.training.experiment import run_split

    out = Path(out_dir)
    if resume and (out / "metrics.json").exists():
        return {**json.loads((out / "metrics.json").read_text()), "skipped": True}
    torch.set_num_threads(threads)
    mcfg, cfg = GoeCTPConfig(**model_config), TrainConfig(**train_config)
    canonical = uses_canonical_cell(mcfg)
    if mcfg.node_features:
        from goectp.features import load_featured_graph_set

        gs, _ = load_featured_graph_set(
            data_file, mcfg.node_features, k=mcfg.k_neighbors, progress=False, canonical=canonical
        )
    else:
        gs = load_graph_set(data_file, k=mcfg.k_neighbors, progress=False, canonical=canonical)
    init, data_sha256 = None, sha256_file(data_file)  # hashed once: the init check and the checkpoints use it
    if init_from:
        from goectp.training.pretrain import backbone_state, init_checkpoint

        source = init_checkpoint(init_from, cfg.split_seed)
        init = backbone_state(source, mcfg, verbose=False, split_seed=cfg.split_seed, data_sha256=data_sha256)
    t0 = time.perf_counter()
    res = run_split(gs, mcfg, cfg, out, resume=resume, data_sha256=data_sha256, init_state=init, run_meta=run_meta)
    res["wall_seconds"] = time.perf_counter() - t0
    return res


def train_splits_on_dask(
    data_file: str | Path,
    model_config: dict,
    train_configs: Sequence[dict],
    out_dirs: Sequence[str | Path],
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = True,
    init_from: str | None = None,
    run_meta: dict | None = None,
) -> list[dict]:
    """Run :func:`train_one_split` for every split on a Dask cluster (local unless ``scheduler`` is given)."""
    from dask.distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        n = workers or len(train_configs)
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        )
        client = Client(cluster)
    try:
        futures = [
            client.submit(
                train_one_split,
                str(data_file),
                model_config,
                cfg,
                str(out),
                resume=resume,
                init_from=init_from,
                run_meta=run_meta,
                threads=1,  # one single-threaded worker process per split
                pure=False,
                key=f"train-split-{cfg['split_seed']}-{time.time_ns()}",
            )
            for cfg, out in zip(train_configs, out_dirs)
        ]
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def sequential_or_parallel(
    data_file: str | Path,
    model_config: dict,
    train_configs: Sequence[dict],
    out_dirs: Sequence[str | Path],
    workers: int = 1,
    scheduler: str | None = None,
    **kwargs: Any,
) -> list[dict]:
    """Dask when ``workers > 1`` or a scheduler is given, else one split after the other in this process."""
    if scheduler or workers > 1:
        return train_splits_on_dask(
            data_file, model_config, train_configs, out_dirs, workers=workers, scheduler=scheduler, **kwargs
        )
    return [
        train_one_split(str(data_file), model_config, cfg, str(out), **kwargs, threads=_threads())
        for cfg, out in zip(train_configs, out_dirs)
    ]


def _threads() -> int:
    """Torch's current thread count (a split trained in this process keeps it)."""
    import torch

    return torch.get_num_threads()
