"""Explorer under load: N concurrent headless-Chromium sessions of ``panel serve explorer/app.py`` on loopback.

Starts the server on 127.0.0.1 (a free port, ``--warm``: the model and the gallery's first predictions are loaded
and cached once, before the first visitor), opens N pages at the same moment (one browser, one context each) and
measures per session

- **first render**: from ``page.goto`` until the predicted tensor (``#tensor-predicted``) and the 3D view's frame
  are on the page (the part above the fold);
- **screening map**: then, once every session has rendered, all of them click the *Screening map* tab at the
  same moment (the map is built the first time its tab is shown): from the click until its plots have drawn.

It also reports the CPU time the server and the browser (Chromium, sharing the same cores) spent per session.

Prints a Markdown table (median, max, per session). Run (Chromium from ./install.sh)::

    nice -n 15 python benchmarks/speed/bench_explorer_load.py            # 8 sessions
    nice -n 15 python benchmarks/speed/bench_explorer_load.py --sessions 4 --num-procs 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from explorer.room import free_port, start_server, stop_server  # one copy of the server helpers

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("GOECTP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def cpu_seconds(procs) -> float:
    """User + system CPU time used so far by ``procs`` (psutil processes; ones that have exited count 0)."""
    import psutil

    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def server_cpu_seconds(pid: int) -> float:
    """CPU time used so far by the server and its children (``--num-procs`` forks workers)."""
    import psutil

    server = psutil.Process(pid)
    return cpu_seconds([server, *server.children(recursive=True)])


async def open_session(browser, url: str, index: int, timeout_ms: int) -> tuple[dict, object]:
    """Phase 1: open the app; first render = the tensor and the 3D view's frame are on the page."""
    context = await browser.new_context(viewport={"width": 1500, "height": 1900})
    page = await context.new_page()
    row = {"session": index, "first_render_s": float("nan"), "map_s": float("nan"), "error": ""}
    start = time.perf_counter()
    try:
        await page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
        await page.locator("#tensor-predicted").wait_for(timeout=timeout_ms)
        await page.locator("iframe.goectp-3d").wait_for(timeout=timeout_ms)
        row["first_render_s"] = time.perf_counter() - start
    except Exception as exc:  # reported in the table, not raised: the other sessions still count
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    return row, page


async def open_map(page, row: dict, timeout_ms: int) -> None:
    """Phase 2: click the screening-map tab; map = until its plots have drawn (built on first show)."""
    if row["error"]:
        return
    start = time.perf_counter()
    try:
        await page.locator(".bk-tab", has_text="Screening map").click(timeout=timeout_ms)
        await page.locator(".goectp-screening-plots canvas").first.wait_for(timeout=timeout_ms)
        row["map_s"] = time.perf_counter() - start
    except Exception as exc:
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"


async def run_sessions(url: str, sessions: int, timeout_ms: int, server_pid: int) -> tuple[list[dict], dict]:
    """Open ``sessions`` pages at the same moment, wait for every first render, then open every map at once.

    Returns the rows and the CPU seconds of the server and of the browser in each phase."""
    import psutil
    from playwright.async_api import async_playwright

    def browser_cpu() -> float:  # every child of this process but the server and its workers
        server = [psutil.Process(server_pid)]
        server += server[0].children(recursive=True)
        return cpu_seconds(psutil.Process().children(recursive=True)) - cpu_seconds(server)

    cpu: dict[str, float] = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            s0, b0 = server_cpu_seconds(server_pid), browser_cpu()
            opened = await asyncio.gather(*(open_session(browser, url, i + 1, timeout_ms) for i in range(sessions)))
            s1, b1 = server_cpu_seconds(server_pid), browser_cpu()
            await asyncio.gather(*(open_map(page, row, timeout_ms) for row, page in opened))
            s2, b2 = server_cpu_seconds(server_pid), browser_cpu()
            cpu = {"server_open": s1 - s0, "browser_open": b1 - b0, "server_map": s2 - s1, "browser_map": b2 - b1}
            return [row for row, _ in opened], cpu
        finally:
            await browser.close()


def markdown_table(rows: list[dict], sessions: int, num_procs: int) -> str:
    def fmt(v: float) -> str:
        return "–" if v != v else f"{v:.1f}"

    first = [r["first_render_s"] for r in rows if r["first_render_s"] == r["first_render_s"]]
    complete = [r["map_s"] for r in rows if r["map_s"] == r["map_s"]]
    lines = [
        f"{sessions} concurrent sessions, `--num-procs {num_procs}`: seconds from `page.goto` to",
        "",
        "| | first render (tensor + 3D view) | screening map (from the tab click until its plots drew) |",
        "|---|---:|---:|",
        f"| **median** | {fmt(statistics.median(first)) if first else '–'} | "
        f"{fmt(statistics.median(complete)) if complete else '–'} |",
        f"| **max** | {fmt(max(first)) if first else '–'} | {fmt(max(complete)) if complete else '–'} |",
    ]
    for r in rows:
        note = f" ({r['error']})" if r["error"] else ""
        lines.append(f"| session {r['session']} | {fmt(r['first_render_s'])} | {fmt(r['map_s'])}{note} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--num-procs", type=int, default=1, help="panel serve --num-procs")
    parser.add_argument("--timeout", type=float, default=180.0, help="per-session timeout (s)")
    parser.add_argument("--budget", type=float, default=5.0, help="first-render target (s): exit 1 if exceeded")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} not found: run ./install.sh as root (or set GOECTP_CHROMIUM)", file=sys.stderr)
        return 2
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "panel.log"
        t0 = time.perf_counter()
        proc = start_server(port, args.num_procs, warm=True, log=log)
        print(f"server ready (warm) after {time.perf_counter() - t0:.1f} s", flush=True)
        try:
            load0 = os.getloadavg()[0]
            rows, cpu = asyncio.run(
                run_sessions(f"http://127.0.0.1:{port}/app", args.sessions, int(args.timeout * 1000), proc.pid)
            )
        finally:
            stop_server(proc)
    print(markdown_table(rows, args.sessions, args.num_procs))
    n = args.sessions
    print(
        f"\nCPU seconds per session (user + sys; independent of how busy the machine is): opening — server "
        f"{cpu['server_open'] / n:.2f}, browser {cpu['browser_open'] / n:.2f}; screening map — server "
        f"{cpu['server_map'] / n:.2f}, browser {cpu['browser_map'] / n:.2f}. "
        f"{os.cpu_count()} CPUs; 1-minute load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after."
    )
    worst = max((r["first_render_s"] for r in rows), default=float("inf"))
    return 0 if worst == worst and worst <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
