"""A room of thirty: N explorer sessions against one server, without browsers, each switched to the screening map.

Starts ``panel serve explorer/app.py`` on 127.0.0.1 (a free port; ``--warm``: the model and the shared caches are
built once before the first visitor), then speaks to it as a browser's BokehJS does, over loopback only:

- **open**: ``GET /app`` (the server builds the session's document), the session's websocket
  (``/app/ws``, the token from the page), ``PULL-DOC-REQ`` (the server serialises the document) and the
  ``document_ready`` event (Panel's on-load callbacks); all N sessions at the same moment;
- **map**: a ``PATCH-DOC`` setting the tabs' ``active`` to the screening map (what a click on its tab sends), until
  the server's patch carrying the map's plots (``goectp-screening-plots``) arrives; all N at the same moment;
- **close**: the websockets are closed; the server drops a session once unused for ``--unused-session-lifetime``
  (the app's own 60 s, :data:`explorer.session.SESSION_LIFETIME_MS`: Bokeh's 15 s is shorter than a room's queue,
  and a session dropped before its websocket arrives is built twice), then releases its memory.

Per session it reports the server's CPU time (psutil: the server and its ``--num-procs`` workers) for the open, the
map and the close (each counted until the server is quiet again), its resident memory (RSS) growth with N open
and what is left after they close, and the latency of each phase (median and max). Bounded: at most 100 sessions,
every wait has a timeout, and the whole run stops after ``--timeout`` seconds (the server is stopped in every case).

    nice -n 15 python benchmarks/speed/bench_room.py                 # 30 sessions
    nice -n 15 python benchmarks/speed/bench_room.py --sessions 30 --num-procs 2
    nice -n 15 python benchmarks/speed/bench_room.py --sessions 30 --rooms 3   # is a room's memory reused?
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from explorer.room import MAX_SESSIONS, free_port, room, start_server, stop_server  # noqa: E402


def _median_max(values: list[float]) -> str:
    values = [v for v in values if v == v]
    return f"{statistics.median(values):.2f} / {max(values):.2f}" if values else "–"


def table(result: dict, label: str) -> str:
    r = result
    return "\n".join(
        [
            f"| {label} | value |",
            "|---|---|",
            f"| sessions open / asked | {r['ok']} / {r['sessions']} |",
            f"| server CPU-s per session: open | {r['open_cpu_s']:.3f} |",
            f"| server CPU-s per session: map | {r['map_cpu_s']:.3f} |",
            f"| server CPU-s per session: close | {r['close_cpu_s']:.3f} |",
            f"| server RSS before (MB) | {r['rss_base_mb']:.0f} |",
            f"| RSS growth per open session (MB) | {r['rss_open_mb_per_session']:.1f} |",
            f"| RSS growth per session with its map (MB) | {r['rss_map_mb_per_session']:.1f} |",
            f"| RSS left after all closed (MB, total) | {r['rss_after_close_mb']:.0f} |",
            f"| open latency median / max (s) | {_median_max(r['open_s'])} |",
            f"| map latency median / max (s) | {_median_max(r['map_s'])} |",
            f"| wall time: all open / all maps (s) | {r['open_wall_s']:.1f} / {r['map_wall_s']:.1f} |",
        ]
        + (
            [
                "| RSS left after rooms 1, 2, … (MB over the first base) | "
                + ", ".join(f"{v:.0f}" for v in r["rss_left_after_rooms_mb"])
                + f" (sessions open per room: {', '.join(map(str, r['ok_per_room']))}) |"
            ]
            if len(r.get("rss_left_after_rooms_mb", [])) > 1
            else []
        )
    )


def measure(root: Path, args: argparse.Namespace, n: int) -> dict:
    """One server (of the checkout ``root``), ``args.rooms`` rooms one after another: the first room's figures,
    and the server's RSS over its first base after each room has left (``rss_left_after_rooms_mb``: flat when
    the memory a room leaves is reused by the next, growing if sessions leak)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="goectp-room-") as tmp:
        proc = start_server(port, args.num_procs, warm=True, log=Path(tmp) / "server.log", root=root)
        try:
            rooms = []
            for _ in range(max(1, args.rooms)):
                coro = room(port, proc.pid, n, args.session_timeout, with_map=not args.no_map)
                rooms.append(asyncio.run(asyncio.wait_for(coro, args.timeout)))
        finally:
            stop_server(proc)
    result = rooms[0]
    base = result["rss_base_mb"]
    result["rss_left_after_rooms_mb"] = [r["rss_base_mb"] + r["rss_after_close_mb"] - base for r in rooms]
    result["ok_per_room"] = [r["ok"] for r in rooms]
    result["load_avg"] = os.getloadavg()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=30, help=f"sessions (1–{MAX_SESSIONS}; default 30)")
    parser.add_argument("--num-procs", type=int, default=1, help="panel serve --num-procs (default 1)")
    parser.add_argument("--no-map", action="store_true", help="open the sessions only")
    parser.add_argument("--session-timeout", type=float, default=240, help="seconds per request (default 240)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per room (default 900)")
    parser.add_argument(
        "--before", type=Path, help="another checkout (e.g. `git archive REV | tar -x -C DIR`): its room first"
    )
    parser.add_argument("--rooms", type=int, default=1, help="rooms one after another on the same server (default 1)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    n = max(1, min(args.sessions, MAX_SESSIONS))
    runs = {}
    if args.before is not None:
        runs["before"] = measure(args.before.resolve(), args, n)
    runs["this checkout"] = measure(ROOT, args, n)
    for name, result in runs.items():
        load = result["load_avg"]
        print(f"\n{name}: {n} sessions, --num-procs {args.num_procs}, load {load[0]:.1f} on {os.cpu_count()} cores\n")
        print(table(result, name))
        for error in result["errors"]:
            print("error:", error)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    return 0 if all(all(k == n for k in r["ok_per_room"]) for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
