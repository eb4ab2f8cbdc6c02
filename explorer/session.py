"""What a served explorer process does once, and what a served session needs to know about its server.

- :func:`running_on_server`: inside a ``panel serve`` session (cheap: Panel's ``state.served`` walks the call stack
  with its source files, ~0.1 s a call on a busy server);
- :func:`prepare_process`: the first session of a process loads what every session shares (the default model, the
  screening data, the lazy imports) and then *freezes* that heap: ``gc.freeze`` moves the ~800,000 objects alive
  then out of the garbage collector's reach, so a full collection (Panel runs one after sessions close, Python's
  own as sessions build) walks only the sessions' objects: 0.38 CPU-s per collection before, ~0 after (measured
  in-process with the shipped default loaded);
- :data:`SESSION_LIFETIME_MS`: how long a session the browser has not connected to yet (or has left) is kept.
  Bokeh's default, 15 s, is shorter than the queue a class opening the app at once builds: a session whose
  websocket arrives later is dropped and built a second time, which doubles the server's work just when it has
  the most.
"""

from __future__ import annotations

import gc

#: Milliseconds a session without a connection is kept (``python explorer/app.py``; for ``panel serve`` pass
#: ``--unused-session-lifetime 60000``).
SESSION_LIFETIME_MS = 60_000

_prepared = False


def running_on_server() -> bool:
    """True inside a Bokeh/Panel server session (``panel serve``), False in Jupyter or plain Python."""
    from panel.io.state import state

    doc = state.curdoc
    return bool(doc is not None and doc.session_context is not None and not state._is_pyodide)


def prepare_process(force: bool = False) -> bool:
    """Once per served process (a no-op elsewhere and afterwards): build the shared state, then freeze the heap.
    ``force``: also outside a session (a server process warming itself up, :mod:`explorer.warm_process`).
    Returns whether it ran now."""
    global _prepared
    if _prepared or not (force or running_on_server()):
        return False
    _prepared = True
    from explorer.models import ModelSelector

    ModelSelector()  # the shared default model (Panel's cache) and the imports predicting needs
    shared_screening_data()
    gc.collect()  # the throw-away selector goes before the freeze, not into the frozen heap
    gc.freeze()
    return True


def shared_screening_data():
    """The screening files (:class:`~explorer.screening_data.ScreeningData`), read once per server process and
    shared read-only by every session."""
    import panel as pn

    from explorer.paths import SCREENING_RESULTS_FILE, screening_dir
    from explorer.screening_data import ScreeningData

    results = screening_dir() / SCREENING_RESULTS_FILE
    stamp = results.stat().st_mtime_ns if results.is_file() else 0
    return pn.state.as_cached(f"goectp-screening-{results}-{stamp}", ScreeningData)
