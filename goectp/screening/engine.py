"""The screening driver: stream the pool in chunks, score them (in this process or on Dask), write one part file
per chunk, then merge, rank and write the result tables.

Memory stays bounded: the pool is read lazily, at most ``max_in_flight`` chunks (default 2 per worker) are
submitted at any time, and each finished chunk goes to disk before the next is read. An interrupted run is resumed
by running the same command again: ids already in a part file are skipped (see :mod:`goectp.screening.store`).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from goectp.data.paths import sha256_file
from goectp.screening.filters import TrainingIndex, load_training_index
from goectp.screening.model_spec import ModelSpec, load_model_spec
from goectp.screening.pool import open_pool
from goectp.screening.store import ScreeningError, WorkDir, deduplicate
from goectp.screening.worker import ScoringContext, rows_to_frame, score_chunk, warm_up

log = logging.getLogger(__name__)


@dataclass
class ScreeningOptions:
    """Settings of one screening run (the CLI's options; see ``goectp screen --help``)."""

    pool: str | Path
    model: str | Path = "default"
    out_dir: str | Path = "runs/screening"
    kappa: float = 1.0
    max_sites: int = 20
    min_gap: float = 1.8
    aniso_min_gap: float | None = 0.5
    top: int = 60
    workers: int = 2
    scheduler: str | None = None
    chunk_size: int = 256
    limit: int | None = None
    use_dask: bool = True
    processes: bool = True
    exclude_training: str | Path | None = None
    reference_dir: str | Path | None = None
    device: str | None = None
    batch_size: int = 64
    torch_threads: int | None = 1  # intra-op threads per worker; structures are the unit of parallelism
    symprec: float | None = 0.1  # crystal-system column (SpacegroupAnalyzer); None/0 skips it
    max_in_flight: int | None = None
    progress: bool = True
    fresh: bool = False
    stop_after_chunks: int | None = None  # simulate an interruption (tests, benchmarks)
    #: the funnel: ``model`` ranks the whole pool, then ``rescore_model`` re-scores the ``rescore_top`` best
    #: candidates of each top list (high-κ and anisotropy) and the lists are ranked again (None/0: one stage)
    rescore_model: str | Path | None = None
    rescore_top: int = 0
    #: the physics stage: the ``physics_top`` best of the high-κ list re-ranked with the physics term
    physics_top: int = 0
    stage: str = "screening"  # the progress bar's label

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {self.chunk_size}")
        if self.max_sites < 1:
            raise ValueError(f"max_sites must be at least 1, got {self.max_sites}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if self.top < 1:
            raise ValueError(f"top must be at least 1, got {self.top}")
        if self.rescore_top < 0 or (self.rescore_model is not None and self.rescore_top < self.top):
            raise ValueError(
                f"rescore_top must be at least the list size top={self.top} when a rescore model is given,"
                f" got {self.rescore_top}"
            )
        if self.physics_top < 0:
            raise ValueError(f"physics_top must be >= 0, got {self.physics_top}")
        if self.batch_size < 1 or (self.torch_threads is not None and self.torch_threads < 0):
            raise ValueError(
                f"batch_size must be >= 1 and torch_threads >= 0, got {self.batch_size} and {self.torch_threads}"
            )
        for name in ("kappa", "min_gap", "aniso_min_gap"):  # NaN: every comparison false, empty lists without a word
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value}")
        if self.symprec and not (math.isfinite(self.symprec) and self.symprec > 0):  # spglib segfaults on these
            raise ValueError(f"symprec must be a tolerance above 0 Å (0 or none skips the column), got {self.symprec}")

    @property
    def work_dir(self) -> Path:
        return Path(self.out_dir) / "work"


@dataclass
class PassReport:
    """What one pass over the pool did."""

    expected_ids: list[str] = field(default_factory=list)
    skipped_done: int = 0
    processed: int = 0
    chunks: int = 0
    failed_chunks: int = 0
    interrupted: bool = False
    seconds: float = 0.0  # the whole pass, including starting the cluster
    startup_seconds: float = 0.0  # starting the cluster and shipping the models to every worker
    status_counts: dict[str, int] = field(default_factory=dict)

    @property
    def structures_per_s(self) -> float:
        """Throughput after start-up (candidates handled per second of scoring)."""
        busy = self.seconds - self.startup_seconds
        return self.processed / busy if busy > 0 and self.processed else float("nan")


def load_training(path: str | Path | None) -> tuple[TrainingIndex | None, str | None]:
    if path is None:
        return None, None
    path = Path(path)
    if not path.exists():
        raise ScreeningError(f"training data {path} does not exist (--exclude-training)")
    return load_training_index(path), sha256_file(path)


def duplicate_key(original: str, pool_index: int, taken: Callable[[str], bool]) -> str:
    """``<id>#dup<pool_index>``, extended with further ``#dup<pool_index>`` until ``taken(key)`` is False, so the
    key of a repeated id never equals another record's id."""
    key = f"{original}#dup{pool_index}"
    while taken(key):
        key = f"{key}#dup{pool_index}"
    return key


def iter_chunks(
    records: Iterable[dict], chunk_size: int, done: set[str], report: PassReport, all_ids: set[str] | None = None
) -> Iterator[list[dict]]:
    """Group pool records into chunks, skipping done ids and renaming duplicate ids (rejected as such).

    A repeated id gets a key (:func:`duplicate_key`) that is neither an id seen so far nor, when ``all_ids`` (every
    literal id of the pool) is given, any id still to come; without ``all_ids`` a later record whose literal id
    equals an earlier key is renamed in turn. Either way every record keeps its own row in every output.
    """
    seen: set[str] = set()
    chunk: list[dict] = []
    ids = all_ids or set()
    for rec in records:
        if rec["id"] in seen:
            original = rec["id"]
            key = duplicate_key(original, rec["pool_index"], lambda k: k in seen or k in ids)
            rec = {
                **rec,
                "id": key,
                "reject_code": "duplicate_id",
                "reject_reason": f"id {original!r} occurs more than once in the pool",
            }
        seen.add(rec["id"])
        report.expected_ids.append(rec["id"])
        if rec["id"] in done:
            report.skipped_done += 1
            continue
        chunk.append(rec)
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _failed_frame(meta: list[dict], exc: BaseException) -> pd.DataFrame:
    rows = [
        {
            **m,
            "status": "failed",
            "reason_code": "chunk_failed",
            "reason": f"the task failed ({type(exc).__name__}: {exc}); it is retried on the next run",
        }
        for m in meta
    ]
    return rows_to_frame(rows)


def _chunk_meta(chunk: list[dict]) -> list[dict]:
    keys = ("id", "pool_index", "source", "formula", "material_id", "band_gap")
    return [{k: rec.get(k) for k in keys} for rec in chunk]


def _run_in_process(
    chunks: Iterator[list[dict]], context: ScoringContext, handle: Callable[[pd.DataFrame], bool]
) -> None:
    for chunk in chunks:
        try:
            frame = score_chunk(chunk, context)
        except Exception as exc:  # a bug or resource error: record it, keep going
            log.exception("chunk failed")
            frame = _failed_frame(_chunk_meta(chunk), exc)
        if handle(frame):
            return


def _run_dask(
    chunks: Iterator[list[dict]],
    context: ScoringContext,
    handle: Callable[[pd.DataFrame], bool],
    opts: ScreeningOptions,
    report: PassReport,
) -> None:
    from distributed import as_completed

    from goectp.screening.cluster import dask_client, worker_count, workers_can_isolate

    start = time.perf_counter()
    with dask_client(opts.workers, opts.scheduler, processes=opts.processes) as client:
        client.wait_for_workers(1)
        if context.isolate and not workers_can_isolate(client):
            log.warning(
                "the Dask workers are daemonic processes: candidate files are parsed in the worker itself, without "
                "goectp.isolation's memory and time limits (start them non-daemonic: distributed.worker.daemon: False)"
            )
        ctx_future = client.scatter(context, broadcast=True, hash=False)
        warm = [
            client.submit(warm_up, ctx_future, workers=[addr], pure=False, allow_other_workers=False)
            for addr in client.scheduler_info()["workers"]
        ]
        client.gather(warm)  # imports and model loading happen here, not in the first chunk
        report.startup_seconds = time.perf_counter() - start
        window = opts.max_in_flight or 2 * worker_count(client)
        queue = as_completed()
        meta: dict[str, list[dict]] = {}
        pending: set = set()

        def finish(fut: Any) -> bool:
            pending.discard(fut)
            try:
                frame = fut.result()
            except Exception as exc:
                log.warning("chunk failed on a worker: %s", exc)
                frame = _failed_frame(meta[fut.key], exc)
            meta.pop(fut.key, None)
            fut.release()
            return handle(frame)

        try:
            for chunk in chunks:
                fut = client.submit(score_chunk, chunk, ctx_future, pure=False, retries=1)
                meta[fut.key] = _chunk_meta(chunk)
                pending.add(fut)
                queue.add(fut)
                del chunk
                while queue.count() >= window:
                    if finish(next(queue)):
                        return
            for fut in queue:
                if finish(fut):
                    return
        finally:
            if pending:
                client.cancel(list(pending))


def score_pool(
    opts: ScreeningOptions,
    model: ModelSpec | None = None,
    training: TrainingIndex | None = None,
    pool: Any = None,
    manifest_extra: dict | None = None,
) -> tuple[PassReport, WorkDir]:
    """Score every not-yet-done candidate of the pool into part files. Returns the pass report and work dir."""
    from tqdm.auto import tqdm

    model = model or load_model_spec(opts.model)
    pool = pool if pool is not None else open_pool(opts.pool, max_sites=opts.max_sites)
    manifest = {
        "model_sha256": list(model.sha256s),
        "max_sites": opts.max_sites,
        "symprec": opts.symprec,
        **(manifest_extra or {}),
    }
    work = WorkDir(opts.work_dir)
    work.prepare(manifest, fresh=opts.fresh)
    done = work.done_ids()
    context = ScoringContext(
        model=model,
        training=training,
        max_sites=opts.max_sites,
        device=opts.device,
        batch_size=opts.batch_size,
        torch_threads=opts.torch_threads,
        symprec=opts.symprec,
    )
    report = PassReport()
    total, all_ids = opts.limit, None
    if total is None and hasattr(pool, "ids"):  # one cheap pass: the total, and the ids duplicate keys must avoid
        ids = pool.ids()
        total, all_ids = len(ids), set(ids)
    elif total is None and hasattr(pool, "count"):
        total = pool.count()
    records = itertools.islice(iter(pool), opts.limit) if opts.limit is not None else iter(pool)
    bar = tqdm(total=total, unit="struct", desc=opts.stage, disable=not opts.progress, smoothing=0.1)

    def handle(frame: pd.DataFrame) -> bool:
        work.write_part(frame)
        report.chunks += 1
        report.processed += len(frame)
        for status, n in frame["status"].value_counts().items():
            report.status_counts[str(status)] = report.status_counts.get(str(status), 0) + int(n)
        report.failed_chunks += int((frame["status"] == "failed").all())
        bar.n = report.processed + report.skipped_done
        bar.set_postfix(report.status_counts, refresh=False)
        bar.update(0)
        if opts.stop_after_chunks is not None and report.chunks >= opts.stop_after_chunks:
            report.interrupted = True
            return True
        return False

    chunks = iter_chunks(records, opts.chunk_size, done, report, all_ids=all_ids)
    start = time.perf_counter()
    try:
        if opts.use_dask:
            _run_dask(chunks, context, handle, opts, report)
        else:
            _run_in_process(chunks, context, handle)
    except KeyboardInterrupt:
        report.interrupted = True
        raise
    finally:
        report.seconds = time.perf_counter() - start
        bar.close()
    return report, work


def merge_parts(work: WorkDir, expected_ids: list[str]) -> tuple[pd.DataFrame, int]:
    """All rows for ``expected_ids``, one per id (see :func:`~goectp.screening.store.deduplicate`).

    Raises :class:`ScreeningError` if any expected id is missing: a scored candidate is never silently lost.
    """
    parts = work.read_parts()
    if parts.empty:
        if expected_ids:
            raise ScreeningError(f"no part files in {work.parts_dir} although {len(expected_ids)} ids were expected")
        return parts, 0
    wanted = set(expected_ids)
    parts = parts[parts["id"].isin(wanted)]
    table, n_dupes = deduplicate(parts)
    missing = wanted - set(table["id"])
    if missing:
        raise ScreeningError(
            f"{len(missing)} candidate ids have no result (e.g. {sorted(missing)[:5]}); "
            "the part files are incomplete: rerun to score them"
        )
    order = {cid: i for i, cid in enumerate(expected_ids)}
    table = table.assign(_order=table["id"].map(order)).sort_values("_order").drop(columns="_order")
    return table.reset_index(drop=True), n_dupes


def options_dict(opts: ScreeningOptions) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}
