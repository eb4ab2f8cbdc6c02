"""The physics view's computation side: one worker thread per process, the shipped Born-charge ensemble loaded once,
the results shared by every session, torch's threads set for a computation, and how a cancel is signalled."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from pathlib import Path
from typing import Any

from explorer.models import SharedPredictions

#: the physics results of the server process, shared read-only by every session (keyed by model, forces, crystal)
PHYSICS_CACHE = SharedPredictions(size=256)
#: one computation at a time per process (SevenNet uses every core it is given)
PHYSICS_WORKER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="goectp-physics")
_SHIPPED: dict[tuple, Any] = {}
_SHIPPED_LOCK = threading.Lock()


def shipped_born_path() -> Path:
    """Where the shipped Born-charge ensemble lives (``assets/physics/born-charges``)."""
    from goectp.physics.predict import BORN_MODEL
    from goectp.registry import assets_dir

    return assets_dir() / BORN_MODEL


def shipped_born_model() -> Any:
    """The shipped Born-charge ensemble, loaded once per process (FileNotFoundError while it is not shipped)."""
    from goectp.physics.predict import load_born_model

    path = shipped_born_path()
    if not path.exists():
        return load_born_model()  # raises the library's FileNotFoundError, which says how to train one
    key = (str(path), path.stat().st_mtime_ns)
    with _SHIPPED_LOCK:
        if key not in _SHIPPED:
            _SHIPPED.clear()
            _SHIPPED[key] = load_born_model().eval()
        return _SHIPPED[key]


class ComputationCancelledError(Exception):
    """Raised in the worker by the progress callback when the user pressed *Cancel*."""


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``n`` torch threads (``None``: as set), restored after."""
    import torch

    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def duration_text(seconds: float) -> str:
    """``"45 s"``, ``"3 min 20 s"``."""
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"
