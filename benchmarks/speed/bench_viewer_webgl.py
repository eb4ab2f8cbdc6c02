"""Browser CPU of one 3D view (3Dmol.js) in headless Chromium, with and without MSAA.

Without a GPU, Chromium renders WebGL in software (SwiftShader), where a multisampled context costs seconds of CPU;
the explorer's view therefore asks the browser for its renderer and turns MSAA off only there
(``explorer/scene.py`` ``ANTIALIAS_JS``). This loads the explorer's 3D view of the first gallery example (3Dmol.js
inlined, as a download or notebook gets it) at the card's size and reports the browser's CPU seconds until the scene
has drawn, for MSAA forced on, forced off, and ``auto`` (what ships). Prints a Markdown table (medians).

    python benchmarks/speed/bench_viewer_webgl.py --repeats 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/speed/

from bench_explorer_load import CHROMIUM, CHROMIUM_ARGS, cpu_seconds  # noqa: E402

AUTO = "antialias:goectpAntialias()"
VARIANTS = {"MSAA on": "antialias:true", "MSAA off": "antialias:false", "auto (shipped)": AUTO}


def documents() -> dict[str, str]:
    from explorer.loader import StructureLoader
    from explorer.models import ModelSelector
    from explorer.viewer import StructureViewer

    viewer = StructureViewer(structure=StructureLoader().structure, models=ModelSelector(), script="inline")
    doc = viewer.document
    assert doc.count(AUTO) == 1, "the 3D view's config changed"
    return {name: doc.replace(AUTO, config) for name, config in VARIANTS.items()}


def browser_cpu() -> float:
    import psutil

    return cpu_seconds(psutil.Process().children(recursive=True))


async def measure(files: dict[str, Path], repeats: int, width: int, height: int) -> tuple[dict, str]:
    from playwright.async_api import async_playwright

    rows: dict[str, dict[str, list[float]]] = {name: {"cpu": [], "wall": []} for name in files}
    renderer = ""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for _ in range(repeats):
                for name, path in files.items():  # interleaved: machine load hits every variant alike
                    context = await browser.new_context(viewport={"width": width, "height": height})
                    page = await context.new_page()
                    cpu0, wall0 = browser_cpu(), time.perf_counter()
                    await page.goto(path.as_uri())
                    await page.locator("body[data-rendered='1']").wait_for(timeout=120_000)
                    rows[name]["wall"].append(time.perf_counter() - wall0)
                    await page.wait_for_timeout(300)  # let the first frame finish
                    rows[name]["cpu"].append(browser_cpu() - cpu0)
                    renderer = await page.evaluate("window.goectpRenderer || ''") or renderer
                    await context.close()
        finally:
            await browser.close()
    return rows, renderer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--width", type=int, default=560)
    parser.add_argument("--height", type=int, default=460)
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} not found: run ./install.sh as root (or set GOECTP_CHROMIUM)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for i, (name, doc) in enumerate(documents().items()):
            files[name] = Path(tmp) / f"view{i}.html"
            files[name].write_text(doc, encoding="utf-8")
        load0 = os.getloadavg()[0]
        rows, renderer = asyncio.run(measure(files, args.repeats, args.width, args.height))
    base = statistics.median(rows["MSAA on"]["cpu"])
    print(
        f"One 3D view ({args.width}×{args.height} px, 3Dmol.js inlined), headless Chromium; WebGL renderer: "
        f"{renderer or 'unknown'}. Medians of {args.repeats} loads, interleaved; {os.cpu_count()} CPUs, load "
        f"average {load0:.1f} before, {os.getloadavg()[0]:.1f} after.\n"
    )
    print("| MSAA | browser CPU (s) | ratio to MSAA on | wall until drawn (s) |")
    print("|---|---:|---:|---:|")
    for name, r in rows.items():
        cpu = statistics.median(r["cpu"])
        print(f"| {name} | {cpu:.2f} | {cpu / base:.2f} | {statistics.median(r['wall']):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
