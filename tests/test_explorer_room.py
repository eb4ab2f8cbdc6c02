"""The room benchmark's browserless opener (explorer.room) against a served explorer: sessions open (document,
websocket, pull, ready) and show the map, close, the server drops them and its memory returns near its baseline."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("psutil")

from explorer.room import free_port as _free_port
from explorer.room import open_sessions, server_usage, start_server, stop_server, wait_released

#: RSS the server may keep after three sessions closed (MB): each costs ~20 MB with its map (bench_room.py);
#: without explorer.memory's trim glibc kept ~85 % of it.
MARGIN_MB = 40


@pytest.mark.timeout(480)
def test_three_sessions_open_close_and_the_server_memory_returns(tmp_path):
    port = _free_port()
    log = tmp_path / "server.log"
    # --warm: the model loads before the port opens; sessions dropped 2 s after their close (the app keeps them 60 s)
    proc = start_server(port, warm=True, log=log, timeout=240, session_lifetime_ms=2000)
    url = f"http://127.0.0.1:{port}/app"

    async def room() -> tuple:
        first = await open_sessions(url, 1, 180)  # one-off imports and the shared caches
        await first[0].open_map()
        assert not first[0].error, first[0].error
        first[0].close()
        await asyncio.sleep(2)
        _, rss0 = server_usage(proc.pid)
        sessions = await open_sessions(url, 3, 120)
        await asyncio.gather(*(s.open_map() for s in sessions))  # the map: ~20 MB a session (bench_room.py)
        _, rss1 = server_usage(proc.pid)
        for s in sessions:
            s.close()
        rss2 = await wait_released(proc.pid, rss0, 20, margin_mb=MARGIN_MB)
        return sessions, rss0, rss1, rss2

    try:
        sessions, rss0, rss1, rss2 = asyncio.run(asyncio.wait_for(room(), 400))
    finally:
        stop_server(proc)
    assert [s.error for s in sessions] == ["", "", ""]
    assert all(s.tabs_id and s.open_s > 0 and s.map_s > 0 for s in sessions)
    assert len({s.tabs_id for s in sessions}) == 3  # each session its own document (and tabs model)
    text = log.read_text()
    assert text.count("ServerConnection created") == 4, text[-2000:]
    assert text.count("WebSocket connection closed") == 4, text[-2000:]
    assert rss1 > rss0 - MARGIN_MB and rss2 <= rss0 + MARGIN_MB, (rss0, rss1, rss2)


@pytest.mark.timeout(480)
def test_every_process_of_a_multi_process_server_warms_itself_up(tmp_path):
    """`--num-procs 2`: Panel's --warm does not reach the processes (Python < 3.12), explorer/warm_process.py (run
    as --setup) does: each process says so in the log before a visitor comes, and sessions open on the server."""
    import time

    port = _free_port()
    log = tmp_path / "server.log"
    proc = start_server(port, num_procs=2, warm=True, log=log, timeout=240)
    try:
        deadline = time.monotonic() + 300
        while log.read_text().count("warmed up in") < 2 and time.monotonic() < deadline:
            time.sleep(1)
        text = log.read_text()
        assert text.count("warmed up in") == 2, text[-2000:]

        async def visit() -> list:
            sessions = await open_sessions(f"http://127.0.0.1:{port}/app", 2, 120)
            for s in sessions:
                s.close()
            return sessions

        sessions = asyncio.run(asyncio.wait_for(visit(), 200))
        assert [s.error for s in sessions] == ["", ""] and all(s.tabs_id for s in sessions)
    finally:
        stop_server(proc)
