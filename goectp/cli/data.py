"""``goectp data``: inspect the dielectric data file, or fetch / convert a data set."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from goectp.cli.common import data_file


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``data``."""
    p = sub.add_parser("data", help="inspect or fetch dielectric datasets")
    p.add_argument("action", choices=["info", "fetch-matminer", "fetch-mp", "fetch-jarvis", "convert-jarvis"])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--data-file", default=None)
    p.add_argument("--input", default=None, help="input file for convert-jarvis (jarvis_diele_piezo.pkl)")
    p.add_argument("--out", default="mp_dielectric.json.gz")
    p.set_defaults(func=cmd_data)


def cmd_data(args: argparse.Namespace) -> int:
    """``info`` prints a summary of the data file; the other actions write ``--out``."""
    from goectp.data import loaders

    if args.action == "info":
        from collections import Counter

        from goectp.data import read_dielectric_json

        path = data_file(args)
        recs = read_dielectric_json(path)
        n_out = sum(np.abs(r.tensors["total"]).max() >= 100 for r in recs if "total" in r.tensors)
        print(
            f"{path}: {len(recs)} records; sources {dict(Counter(r.source for r in recs))}; "
            f"with band gap {sum(r.band_gap is not None for r in recs)}; any |total component| >= 100: {n_out}"
        )
        return 0
    out = Path(args.out)
    if args.action == "fetch-matminer":
        loaders.fetch_matminer(out)
    elif args.action == "fetch-mp":
        loaders.fetch_materials_project(out)
    elif args.action == "fetch-jarvis":
        loaders.fetch_jarvis(out)
    elif args.action == "convert-jarvis":
        from goectp.data import write_dielectric_json

        write_dielectric_json(loaders.read_jarvis_pickle(args.input), out)
    print(f"wrote {out}")
    return 0
