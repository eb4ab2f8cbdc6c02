"""Warm up every process of a ``panel serve --num-procs N`` server before its first visitor.

    panel serve explorer/app.py --num-procs 2 --setup explorer/warm_process.py --unused-session-lifetime 60000

Panel's ``--warm`` does nothing useful with several processes on Python < 3.12 (it runs before the fork without
executing the app), so without this each process would load the model, read the screening data and start its upload
worker with its first session (~14 CPU-s and seconds of waiting for that visitor). Panel runs a ``--setup`` script in
each process once its server has started (with ``--num-procs 1`` it runs before the server starts; ``--warm`` covers
that case too).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # Panel executes this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import os
import time

from explorer.app import Explorer
from explorer.session import prepare_process
from explorer.uploads import upload_pool


def warm_up() -> None:
    """Load and cache what every session of this process shares, then say so in the server's log."""
    start = time.perf_counter()
    prepare_process(force=True)  # the shared model and data, then the heap frozen
    upload_pool().warm()  # the upload worker (a forkserver with the readers imported)
    Explorer()  # one session's components, not shown: the first example predicted and cached, every import done
    print(f"goectp explorer: process {os.getpid()} warmed up in {time.perf_counter() - start:.1f} s", flush=True)


# Panel runs this file as the module ``panel_setup_module``; not when multiprocessing re-imports it (``__mp_main__``)
if __name__ in ("__main__", "panel_setup_module"):
    warm_up()
