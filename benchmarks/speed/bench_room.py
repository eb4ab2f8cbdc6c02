"""A room of thirty: N explorer sessions against one server, without browsers, each switched to the screening map.

Starts ``panel serve explorer/app.py`` on 127.0.0.1 (a free port; ``--warm``: the model and the shared caches are
built once before the first visitor), then speaks to it as a browser's BokehJS does, over loopback only:

- **open**: ``GET /app`` (the server builds the session's document), the session's websocket
  (``/app/ws``, the token from the page), ``PULL-DOC-REQ`` (the server serialises the document) and the
  ``document_ready`` event (Panel's on-load callbacks); all N sessions at the same moment;
- **map**: a ``PATCH-DOC`` setting the tabs' ``active`` to the screening map (what a click on its tab sends), until
  the server's patch carrying the map's plots (``goectp-screening-plots``) arrives; all N at the same moment;
- **close**: the websockets are closed; the server drops a session once unused for ``--unused-session-lifetime``
  (set to 1 s here; Bokeh's default is 15 s), so its memory can be released.

Per session it reports the server's CPU time (psutil: the server and its ``--num-procs`` workers) for the open and
for the map, its resident memory (RSS) growth with N open and what is left after they close, and the latency of
each phase (median and max). Bounded: at most 100 sessions, every wait has a timeout, and the whole run stops
after ``--timeout`` seconds (the server is stopped in every case).

    nice -n 15 python benchmarks/speed/bench_room.py                 # 30 sessions
    nice -n 15 python benchmarks/speed/bench_room.py --sessions 30 --num-procs 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_SESSIONS = 100
MAP_MARKER = "goectp-screening-plots"
TOKEN_RE = re.compile(r'"token"\s*:\s*"([^"]+)"')


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, num_procs: int = 1, warm: bool = True, log: Path | None = None, timeout: float = 300):
    """``panel serve explorer/app.py`` on 127.0.0.1:``port``; returns the process once the port accepts."""
    cmd = [
        sys.executable,
        "-m",
        "panel",
        "serve",
        "explorer/app.py",
        "--address",
        "127.0.0.1",
        "--port",
        str(port),
        "--allow-websocket-origin",
        f"127.0.0.1:{port}",
        "--num-procs",
        str(num_procs),
        "--unused-session-lifetime",
        "1000",
        "--check-unused-sessions",
        "1000",
        *(["--warm"] if warm else []),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = log.open("w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"panel serve exited ({proc.returncode}); log: {log}")
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError(f"panel serve not listening after {timeout:g} s")


def stop_server(proc: subprocess.Popen) -> None:
    """Stop the server and the workers ``--num-procs`` forked."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=10)


def server_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS in MB) of the server and its children."""
    import psutil

    server = psutil.Process(pid)
    cpu = rss = 0.0
    for p in [server, *server.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            cpu += t.user + t.system
            rss += p.memory_info().rss / 2**20
    return cpu, rss


# --- Bokeh's websocket protocol: a message is header, metadata and content frames (text), then binary buffers ---


def _frames(msgtype: str, content: dict, msgid: str) -> list[str]:
    return [json.dumps({"msgid": msgid, "msgtype": msgtype}), "{}", json.dumps(content)]


def find_tabs_id(doc: object) -> str | None:
    """The id of the app's tabs model (css class ``goectp-tabs``) in a serialised document."""
    if isinstance(doc, dict):
        attrs = doc.get("attributes")
        if (
            doc.get("type") == "object"
            and isinstance(attrs, dict)
            and "goectp-tabs" in (attrs.get("css_classes") or [])
        ):
            return doc.get("id")
        children = doc.values()
    elif isinstance(doc, list):
        children = doc
    else:
        return None
    for child in children:
        found = find_tabs_id(child)
        if found:
            return found
    return None


@dataclass
class Session:
    """One browserless client: its websocket, and the text of every message the server sent it."""

    index: int
    url: str
    timeout: float
    ws: object = None
    tabs_id: str | None = None
    open_s: float = float("nan")
    map_s: float = float("nan")
    error: str = ""
    _seq: int = 0
    _received: list[str] = field(default_factory=list)

    def _msgid(self) -> str:
        self._seq += 1
        return f"room{self.index}-{self._seq}"

    async def _send(self, msgtype: str, content: dict) -> str:
        msgid = self._msgid()
        for frame in _frames(msgtype, content, msgid):
            await self.ws.write_message(frame)
        return msgid

    async def _read_message(self) -> tuple[dict, str]:
        """The next whole message: (header, content text)."""
        parts = []
        while len(parts) < 3:
            frame = await asyncio.wait_for(self.ws.read_message(), self.timeout)
            if frame is None:
                raise ConnectionError("websocket closed by the server")
            parts.append(frame)
        header = json.loads(parts[0])
        for _ in range(int(header.get("num_buffers", 0))):  # buffer header + payload
            for _ in range(2):
                if await asyncio.wait_for(self.ws.read_message(), self.timeout) is None:
                    raise ConnectionError("websocket closed by the server")
        return header, parts[2]

    async def _until(self, predicate) -> tuple[dict, str]:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            header, content = await self._read_message()
            if header.get("msgtype") == "ERROR":
                raise RuntimeError(f"server error: {content[:200]}")
            if predicate(header, content):
                return header, content
        raise TimeoutError(f"no answer within {self.timeout:g} s")

    async def open(self) -> None:
        """GET the page, open the websocket, pull the document, send ``document_ready``."""
        from tornado.httpclient import AsyncHTTPClient, HTTPRequest
        from tornado.websocket import websocket_connect

        start = time.perf_counter()
        try:
            page = await AsyncHTTPClient().fetch(self.url, request_timeout=self.timeout)
            match = TOKEN_RE.search(page.body.decode("utf-8", "replace"))
            if not match:
                raise RuntimeError("no session token in the page")
            ws_url = self.url.replace("http://", "ws://").rstrip("/") + "/ws"
            request = HTTPRequest(ws_url, request_timeout=self.timeout, connect_timeout=self.timeout)
            self.ws = await websocket_connect(
                request, subprotocols=["bokeh", match.group(1)], max_message_size=512 * 2**20
            )
            await self._until(lambda h, _: h.get("msgtype") == "ACK")
            await self._send("PULL-DOC-REQ", {})
            _, content = await self._until(lambda h, _: h.get("msgtype") == "PULL-DOC-REPLY")
            self.tabs_id = find_tabs_id(json.loads(content))
            if self.tabs_id is None:
                raise RuntimeError("no goectp-tabs model in the document")
            ready = {"type": "event", "name": "document_ready", "values": {}}
            await self._send(
                "PATCH-DOC", {"events": [{"kind": "MessageSent", "msg_type": "bokeh_event", "msg_data": ready}]}
            )
            self.open_s = time.perf_counter() - start
        except Exception as exc:  # reported in the table; the other sessions still count
            self.error = f"open: {type(exc).__name__}: {str(exc)[:100]}"

    async def open_map(self, tab: int = 1) -> None:
        """Switch to the screening map's tab; wait for the server's patch that carries the map's plots."""
        if self.error:
            return
        start = time.perf_counter()
        try:
            event = {"kind": "ModelChanged", "model": {"id": self.tabs_id}, "attr": "active", "new": tab}
            await self._send("PATCH-DOC", {"events": [event]})
            await self._until(lambda h, c: h.get("msgtype") == "PATCH-DOC" and MAP_MARKER in c)
            self.map_s = time.perf_counter() - start
        except Exception as exc:
            self.error = f"map: {type(exc).__name__}: {str(exc)[:100]}"

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None


async def open_sessions(url: str, n: int, timeout: float) -> list[Session]:
    """``n`` sessions opened at the same moment (see :meth:`Session.open`)."""
    sessions = [Session(i, url, timeout) for i in range(n)]
    await asyncio.gather(*(s.open() for s in sessions))
    return sessions


async def wait_released(pid: int, baseline_mb: float, seconds: float, margin_mb: float) -> float:
    """Wait (at most ``seconds``) for the server's RSS to come back within ``margin_mb`` of ``baseline_mb``."""
    deadline = time.monotonic() + seconds
    rss = server_usage(pid)[1]
    while time.monotonic() < deadline and rss > baseline_mb + margin_mb:
        await asyncio.sleep(1)
        rss = server_usage(pid)[1]
    return rss


async def room(port: int, pid: int, n: int, timeout: float, with_map: bool = True, settle: float = 20) -> dict:
    """Open ``n`` sessions, switch each to the map, close them; the server's cost per session."""
    url = f"http://127.0.0.1:{port}/app"
    warm = await open_sessions(url, 1, timeout)  # the first session pays one-off imports: not counted
    if with_map:
        await warm[0].open_map()
    warm[0].close()
    await asyncio.sleep(3)
    cpu0, rss0 = server_usage(pid)
    t0 = time.perf_counter()
    sessions = await open_sessions(url, n, timeout)
    open_wall = time.perf_counter() - t0
    cpu1, rss1 = server_usage(pid)
    cpu2, rss2, map_wall = cpu1, rss1, float("nan")
    if with_map:
        t0 = time.perf_counter()
        await asyncio.gather(*(s.open_map() for s in sessions))
        map_wall = time.perf_counter() - t0
        cpu2, rss2 = server_usage(pid)
    for s in sessions:
        s.close()
    rss3 = await wait_released(pid, rss0, settle, margin_mb=max(20.0, 0.1 * (rss2 - rss0)))
    ok = [s for s in sessions if not s.error]
    return {
        "sessions": n,
        "ok": len(ok),
        "errors": sorted({s.error for s in sessions if s.error}),
        "open_cpu_s": (cpu1 - cpu0) / n,
        "map_cpu_s": (cpu2 - cpu1) / n,
        "rss_base_mb": rss0,
        "rss_open_mb_per_session": (rss1 - rss0) / n,
        "rss_map_mb_per_session": (rss2 - rss0) / n,
        "rss_after_close_mb": rss3 - rss0,
        "open_wall_s": open_wall,
        "map_wall_s": map_wall,
        "open_s": [s.open_s for s in ok],
        "map_s": [s.map_s for s in ok],
    }


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
            f"| server RSS before (MB) | {r['rss_base_mb']:.0f} |",
            f"| RSS growth per open session (MB) | {r['rss_open_mb_per_session']:.1f} |",
            f"| RSS growth per session with its map (MB) | {r['rss_map_mb_per_session']:.1f} |",
            f"| RSS left after all closed (MB, total) | {r['rss_after_close_mb']:.0f} |",
            f"| open latency median / max (s) | {_median_max(r['open_s'])} |",
            f"| map latency median / max (s) | {_median_max(r['map_s'])} |",
            f"| wall time: all open / all maps (s) | {r['open_wall_s']:.1f} / {r['map_wall_s']:.1f} |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=30, help=f"sessions (1–{MAX_SESSIONS}; default 30)")
    parser.add_argument("--num-procs", type=int, default=1, help="panel serve --num-procs (default 1)")
    parser.add_argument("--no-map", action="store_true", help="open the sessions only")
    parser.add_argument("--session-timeout", type=float, default=240, help="seconds per request (default 240)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole run (default 900)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    n = max(1, min(args.sessions, MAX_SESSIONS))
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="goectp-room-") as tmp:
        log = Path(tmp) / "server.log"
        proc = start_server(port, args.num_procs, warm=True, log=log)
        try:
            coro = room(port, proc.pid, n, args.session_timeout, with_map=not args.no_map)
            result = asyncio.run(asyncio.wait_for(coro, args.timeout))
        finally:
            stop_server(proc)
    load = os.getloadavg()
    result["load_avg"] = load
    label = f"{n} sessions, --num-procs {args.num_procs}, load {load[0]:.1f} on {os.cpu_count()} cores"
    print(table(result, label))
    for error in result["errors"]:
        print("error:", error)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if result["ok"] == n else 1


if __name__ == "__main__":
    sys.exit(main())
