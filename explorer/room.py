"""A browserless explorer client: what a browser's BokehJS sends, over loopback, for benchmarks and tests.

:class:`Session` opens a session as a browser does (``GET /app``: the server builds the document; the websocket
``/app/ws`` with the page's token; ``PULL-DOC-REQ``: the server serialises the document; the ``document_ready``
event: Panel's on-load callbacks) and switches it to the screening map (a ``PATCH-DOC`` setting the tabs'
``active``, what a click on the tab sends) until the server's patch carrying the map's plots arrives.
:func:`start_server` serves ``panel serve explorer/app.py`` on 127.0.0.1 (sessions without a connection dropped
after the app's own lifetime, :data:`explorer.session.SESSION_LIFETIME_MS`, or a shorter one for tests);
:func:`server_usage` reads its CPU time and RSS (psutil).
``benchmarks/speed/bench_room.py`` runs a room of thirty with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from explorer.session import SESSION_LIFETIME_MS

ROOT = Path(__file__).resolve().parents[1]
MAX_SESSIONS = 100
MAP_MARKER = "goectp-screening-plots"
TOKEN_RE = re.compile(r'"token"\s*:\s*"([^"]+)"')


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    port: int,
    num_procs: int = 1,
    warm: bool = True,
    log: Path | None = None,
    timeout: float = 300,
    root: Path = ROOT,
    session_lifetime_ms: int = SESSION_LIFETIME_MS,
):
    """``panel serve explorer/app.py`` (of the checkout ``root``) on 127.0.0.1:``port``; returns the process once
    the port accepts. A session without a connection is dropped after ``session_lifetime_ms`` (checked every
    second): as long as the app's own server keeps them, so that no session of a room is built twice."""
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
        str(session_lifetime_ms),
        "--check-unused-sessions",
        "1000",
        *(["--warm"] if warm else []),
        # several processes: each warms itself up once started (Panel's --warm does not reach them)
        *(["--setup", "explorer/warm_process.py"] if warm and num_procs > 1 else []),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "GOECTP_ASSETS": os.environ.get("GOECTP_ASSETS", str(ROOT / "assets")),
    }
    out = log.open("w") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
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
            client = AsyncHTTPClient(force_instance=True, max_clients=1)  # its own: no queue behind other sessions
            try:
                page = await client.fetch(self.url, request_timeout=self.timeout)
            finally:
                client.close()
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


async def quiet(pid: int, idle_cpu_s: float = 0.05, every: float = 0.5, limit: float = 60) -> None:
    """Wait (at most ``limit`` s) until the server spends under ``idle_cpu_s`` of CPU in ``every`` seconds: what a
    session's messages set off (on-load callbacks, patches) is counted in the phase that set it off."""
    deadline = time.monotonic() + limit
    before = server_usage(pid)[0]
    while time.monotonic() < deadline:
        await asyncio.sleep(every)
        now = server_usage(pid)[0]
        if now - before < idle_cpu_s:
            return
        before = now


async def room(
    port: int, pid: int, n: int, timeout: float, with_map: bool = True, lifetime_s: float = 60, settle: float = 30
) -> dict:
    """Open ``n`` sessions, switch each to the map, close them; the server's cost per session in each phase (CPU
    counted until the server is quiet again). ``lifetime_s``: the server's unused-session lifetime (sessions are
    dropped that long after their close); ``settle``: seconds more for the memory to come back."""
    url = f"http://127.0.0.1:{port}/app"
    warm = await open_sessions(url, 1, timeout)  # the first session pays one-off imports: not counted
    if with_map:
        await warm[0].open_map()
    await quiet(pid)
    cpu0, rss0 = server_usage(pid)
    t0 = time.perf_counter()
    sessions = await open_sessions(url, n, timeout)
    open_wall = time.perf_counter() - t0
    await quiet(pid)
    cpu1, rss1 = server_usage(pid)
    cpu2, rss2, map_wall = cpu1, rss1, float("nan")
    if with_map:
        t0 = time.perf_counter()
        await asyncio.gather(*(s.open_map() for s in sessions))
        map_wall = time.perf_counter() - t0
        await quiet(pid)
        cpu2, rss2 = server_usage(pid)
    for s in [*warm, *sessions]:  # the warm-up session leaves with the room (its drop is counted with theirs)
        s.close()
    await asyncio.sleep(lifetime_s + 2)  # the server drops them, then releases their memory
    rss3 = await wait_released(pid, rss0, settle, margin_mb=max(20.0, 0.1 * (rss2 - rss0)))
    await quiet(pid)
    cpu3 = server_usage(pid)[0]
    ok = [s for s in sessions if not s.error]
    return {
        "sessions": n,
        "ok": len(ok),
        "errors": sorted({s.error for s in sessions if s.error}),
        "open_cpu_s": (cpu1 - cpu0) / max(1, len(ok)),  # per session opened (failures cost little)
        "map_cpu_s": (cpu2 - cpu1) / max(1, len(ok)),
        "close_cpu_s": (cpu3 - cpu2) / max(1, len(ok)),
        "rss_base_mb": rss0,
        "rss_open_mb_per_session": (rss1 - rss0) / n,
        "rss_map_mb_per_session": (rss2 - rss0) / n,
        "rss_after_close_mb": rss3 - rss0,
        "open_wall_s": open_wall,
        "map_wall_s": map_wall,
        "open_s": [s.open_s for s in ok],
        "map_s": [s.map_s for s in ok],
    }
