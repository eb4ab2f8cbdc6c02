"""Read user files in worker processes with a memory and a time limit: no file can take the caller down.

The pre-checks (:mod:`goectp.structure_checks`) refuse what they can see in the text; whatever slips past them
runs here. :func:`run_isolated` calls a function (a top-level one: it is sent to the worker by name) in a worker
process whose address space is capped with ``resource.setrlimit(RLIMIT_AS)`` at its size on start plus
``memory_mb``, and waits at most ``seconds`` for the answer. A worker over either limit is killed and replaced;
the caller gets a one-line :class:`~goectp.structure_checks.StructureError` naming the file, with the code
``out_of_memory``, ``timeout`` or ``worker_died``. Any other exception of the function is raised as it is.

Workers are started from a ``forkserver`` that has imported the readers already (a fresh worker, e.g. after a
kill, is a fork of it: ~0.1 s) and are kept for the next file. Measured on the 2-core development machine (shared,
loaded): the first start costs 4–8 s once per process (the forkserver's imports; ``goectp predict`` starts it in
a thread while the model loads); then a file costs ~3–4 ms more than in-process (median 15.4 ms against 11.7 ms
for parse + checks + canonical cell of the 10 example CIFs; an empty round trip 0.1–0.2 ms).
``GOECTP_FILE_MEMORY_MB`` and ``GOECTP_FILE_SECONDS`` change the default limits. The worker runs in the caller's
current directory (sent with each request), so relative paths mean the same in both.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable
from typing import Any

from goectp.structure_checks import StructureError, _short

#: Memory a worker may add to its size on start (MB): a 500-site structure needs well under 200 MB.
MEMORY_MB = int(os.environ.get("GOECTP_FILE_MEMORY_MB", "2048"))
#: Seconds a worker may take per file (pymatgen parses a 500-site CIF with symmetry in a few seconds).
SECONDS = float(os.environ.get("GOECTP_FILE_SECONDS", "120"))
#: Modules the forkserver imports once, so that every worker starts with them (the readers' heavy imports).
PRELOAD = [
    "goectp.structures",
    "goectp.canonical",
    "pymatgen.core",
    "pymatgen.symmetry.analyzer",
    "pymatgen.io.cif",
    "pymatgen.io.vasp",
]


def _vm_bytes() -> int:
    """This process's address-space size (bytes), from ``/proc/self/status`` (0 where there is none)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _serve(conn: Any, memory_mb: int) -> None:
    """The worker's loop: cap the address space, then answer ``(fn, args, kwargs)`` requests until EOF."""
    import resource

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    limit = _vm_bytes() + memory_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        except MemoryError:  # the request itself is past the limit (unpickling it allocates)
            with contextlib.suppress(Exception):
                conn.send(("memory", None))
            return
        if request is None:
            return
        fn, args, kwargs, cwd = request
        try:
            os.chdir(cwd)  # relative paths mean what they mean to the caller (the worker may be older than its cd)
            answer = ("ok", fn(*args, **kwargs))
        except MemoryError:
            answer = ("memory", None)
        except Exception as exc:
            answer = ("error", exc)
        try:
            conn.send(answer)
        except Exception as exc:  # an unpicklable result or exception: its text
            conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
        if answer[0] == "memory":
            return  # after a MemoryError the process may be in any state: the parent starts a new one


def _context() -> Any:
    """The ``forkserver`` context with :data:`PRELOAD` (``spawn`` where there is no forkserver)."""
    try:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    except ValueError:
        return multiprocessing.get_context("spawn")


class _Worker:
    """One worker process and its pipe."""

    def __init__(self, memory_mb: int) -> None:
        ctx = _context()
        self.memory_mb = memory_mb
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, memory_mb), daemon=True, name="goectp-file-worker")
        self.process.start()
        child.close()

    def call(self, fn: Callable, args: tuple, kwargs: dict, seconds: float, name: str) -> Any:
        try:
            self.conn.send((fn, args, kwargs, os.getcwd()))
            ready = self.conn.poll(seconds)
            status, value = self.conn.recv() if ready else ("timeout", None)
        except (EOFError, OSError, BrokenPipeError):
            status, value = "died", None
        if status == "ok":
            return value
        if status == "error":
            raise value
        self.close(kill=True)
        if status == "timeout":
            raise StructureError(f"{name}: took longer than the limit of {seconds:g} s (timeout)", code="timeout")
        if status == "memory" or self.process.exitcode in (-signal.SIGKILL, -signal.SIGSEGV):
            raise StructureError(
                f"{name}: needed more memory than the limit of {self.memory_mb} MB (out_of_memory)",
                code="out_of_memory",
            )
        raise StructureError(
            f"{name}: the process reading it ended without an answer (exit status {self.process.exitcode}; "
            "worker_died)",
            code="worker_died",
        )

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def close(self, kill: bool = False) -> None:
        if kill and self.process.is_alive():
            self.process.kill()
        else:
            with contextlib.suppress(OSError):
                self.conn.send(None)
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()


class IsolatedPool:
    """Up to ``size`` workers, each used by one caller at a time (thread-safe); a worker over a limit is replaced."""

    def __init__(self, size: int = 1, memory_mb: int = MEMORY_MB, seconds: float = SECONDS) -> None:
        self.memory_mb, self.seconds = memory_mb, seconds
        self._slots: queue.LifoQueue[_Worker | None] = queue.LifoQueue()
        for _ in range(size):
            self._slots.put(None)  # started on first use

    def warm(self) -> None:
        """Start one worker in a background thread (the first start takes seconds: the forkserver's imports)."""

        def start() -> None:
            worker = self._slots.get()
            try:
                if worker is None or not worker.alive:
                    worker = _Worker(self.memory_mb)
            except Exception:  # the next run reports it
                worker = None
            finally:
                self._slots.put(worker)

        threading.Thread(target=start, daemon=True, name="goectp-file-worker-start").start()

    def run(self, fn: Callable, *args: Any, name: str = "structure", seconds: float | None = None, **kwargs: Any):
        """``fn(*args, **kwargs)`` in a worker; see the module docstring for the errors."""
        worker = self._slots.get()
        try:
            if worker is None or not worker.alive:
                worker = _Worker(self.memory_mb)
            result = worker.call(fn, args, kwargs, self.seconds if seconds is None else seconds, _short(str(name)))
        except StructureError as exc:
            if exc.code in ("timeout", "out_of_memory", "worker_died"):
                worker = None
            raise
        finally:
            self._slots.put(worker if worker is not None and worker.alive else None)
        return result

    def close(self) -> None:
        """Stop the workers (they also end with the process: daemonic)."""
        while True:
            try:
                worker = self._slots.get_nowait()
            except queue.Empty:
                return
            if worker is not None:
                worker.close()


_POOLS: dict[tuple, IsolatedPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(size: int = 1, memory_mb: int = MEMORY_MB, seconds: float = SECONDS) -> IsolatedPool:
    """One :class:`IsolatedPool` per process and setting (the CLI and the explorer share their workers)."""
    key = (size, memory_mb, seconds)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = IsolatedPool(size, memory_mb, seconds)
        return _POOLS[key]


def run_isolated(fn: Callable, *args: Any, name: str = "structure", **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in the shared worker (default limits); see the module docstring."""
    return shared_pool().run(fn, *args, name=name, **kwargs)


def load_checked(path: str, max_sites: int, canonical: bool = False) -> Any:
    """The validated structure of the file ``path`` (and, for models that use it, its canonical cell computed
    once, so that a lattice search that would blow up does so here): the work :func:`run_isolated` bounds for
    ``goectp predict``."""
    from goectp.structures import load_structures

    return _canonical_checked(load_structures(path, max_sites=max_sites)[0], canonical)


def load_untrusted(paths: str | os.PathLike | list, max_sites: int | None = None) -> list:
    """Structures of user files, each parsed and checked in the shared bounded worker (what ``goectp predict`` does):
    a file past the memory or time limit raises :class:`~goectp.structure_checks.StructureError` naming it
    (``out_of_memory``, ``timeout``, ``worker_died``) and this process lives on. ``max_sites``: default
    :data:`goectp.structures.MAX_SITES`. (``goectp.predict`` and ``load_structures`` parse in the caller's process.)"""
    from goectp.structures import MAX_SITES

    limit = MAX_SITES if max_sites is None else max_sites
    pool = shared_pool()
    out = []
    for path in paths if isinstance(paths, list | tuple) else [paths]:
        name = os.fspath(path)
        try:
            out.append(pool.run(load_checked, name, limit, name=name))
        except StructureError as exc:  # the checks say what is wrong; the file is named here, once
            label = _short(os.path.basename(name))
            raise StructureError(str(exc) if label in str(exc) else f"{label}: {exc}", exc.code) from exc
    return out


def load_text_checked(text: str, fmt: str, max_sites: int, canonical: bool = False) -> Any:
    """:func:`load_checked` of file contents in format ``fmt`` (an upload, a fuzzed text)."""
    from goectp.structures import load_structures, structure_from_string

    return _canonical_checked(
        load_structures(structure_from_string(text, fmt, max_sites=max_sites), max_sites)[0], canonical
    )


def _canonical_checked(structure: Any, canonical: bool) -> Any:
    if canonical:
        from goectp.canonical import canonical_cell

        canonical_cell(structure)
    return structure
