"""What one explorer session's first page costs to build, in-process: the whole page and each part of it.

Builds ``Explorer().template()`` into a fresh Bokeh ``Document`` (what ``panel serve`` does for every visitor, less
the serialisation and the HTML) after the process has loaded the shared model and data and frozen its heap
(:func:`explorer.session.prepare_process`), and the sidebar's and the Crystal tab's parts alone in an empty
template. Prints the median CPU time of ``--repeats`` builds and the Bokeh models of the document.
``benchmarks/speed/bench_room.py`` measures the same over a real server and thirty browserless sessions.

    python benchmarks/speed/bench_session_build.py --repeats 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    import panel as pn
    from bokeh.document import Document

    from explorer.app import Explorer, offline_fast_design
    from explorer.session import prepare_process

    pn.extension("tabulator", notifications=False)
    prepare_process()

    def template(main: list, sidebar: list) -> pn.template.FastListTemplate:
        return pn.template.FastListTemplate(
            title="x", main=main, sidebar=sidebar, design=offline_fast_design(), font_url=""
        )

    cases = {
        "Explorer() alone (components, no document)": None,
        "the whole first page": lambda e: e.template(),
        "an empty template": lambda e: template([pn.pane.HTML("x")], []),
        "  + the model selector": lambda e: template([pn.pane.HTML("x")], [e.models]),
        "  + the structure loader": lambda e: template([pn.pane.HTML("x")], [e.loader]),
        "  + the 3D view": lambda e: template([e.viewer], []),
        "  + the tensor panel": lambda e: template([e.tensor], []),
        "  + the four tabs (Crystal tab built)": lambda e: template([e.main_area()], []),
    }
    print("| what | ms per session (median) | Bokeh models |")
    print("|---|---:|---:|")
    for name, build in cases.items():
        times, models = [], 0
        for _ in range(args.repeats + 2):  # two warm-up builds
            doc = Document()
            start = time.process_time()
            explorer = Explorer()
            if build is not None:
                build(explorer).server_doc(doc)
            times.append(time.process_time() - start)
            models = sum(1 for _ in doc.models)
        print(f"| {name} | {1000 * statistics.median(times[2:]):.1f} | {models} |")


if __name__ == "__main__":
    main()
