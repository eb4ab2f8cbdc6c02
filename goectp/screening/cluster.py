"""Dask clients: an in-process LocalCluster by default, or a running cluster given its scheduler address."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def dask_client(
    workers: int = 2, scheduler: str | None = None, processes: bool = True, threads_per_worker: int = 1
) -> Iterator[Any]:
    """Yield a ``distributed.Client``; a LocalCluster started here is shut down on exit.

    ``processes=True`` gives each worker its own process (parallel graph building, which holds the GIL), not
    daemonic, so that it can parse candidates in :mod:`goectp.isolation`'s bounded workers; ``processes=False`` runs
    the workers as threads of this process (faster start, shared model cache).
    """
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    import dask

    # non-daemonic worker processes may start goectp.isolation's bounded readers (a daemonic one may not have
    # children, and would parse every candidate file in its own process, without a memory or time limit)
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def worker_count(client: Any) -> int:
    """Number of workers currently connected (at least 1, for sizing the in-flight window)."""
    try:
        return max(1, len(client.scheduler_info().get("workers", {})))
    except Exception:
        return 1


def workers_can_isolate(client: Any) -> bool:
    """Whether every connected worker may start :mod:`goectp.isolation`'s bounded readers (not a daemonic process:
    a cluster started elsewhere, e.g. ``dask worker`` with its nanny's default, parses in the worker itself)."""
    from goectp.screening.worker import _isolation_possible

    try:
        return all(client.run(_isolation_possible).values())
    except Exception:
        return False
