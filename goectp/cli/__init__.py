"""Command line: ``goectp predict | models | train | sum | evaluate | data | screen | pretrain | ensemble``.

One module per command (``goectp/cli/<command>.py``, each with ``add_parser`` and its ``cmd_*``), the shared
helpers in :mod:`goectp.cli.common`, the options generated from the config dataclasses in :mod:`goectp.cli.config`.
Run ``goectp <command> --help``.
"""

from __future__ import annotations

import argparse
import json
import sys

from goectp.cli.common import one_line, reason_code
from goectp.logs import setup_logging

__all__ = ["build_parser", "main", "reason_code"]


def build_parser() -> argparse.ArgumentParser:
    """The ``goectp`` parser with every command."""
    from goectp.cli import data, ensemble, evaluate, models, predict, pretrain, screen, sum_parts, train

    ap = argparse.ArgumentParser(prog="goectp", description="GoeCTP: equivariant dielectric tensor prediction")
    ap.add_argument(
        "--debug",
        action="store_true",
        help="on an error, show the full traceback instead of a one-line message (also accepted after the subcommand)",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    for command in (predict, models, train, sum_parts, evaluate, data, screen, pretrain, ensemble):
        command.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the CLI. Any error ends with a one-line message and exit status 2 (130 when interrupted); ``--debug``
    (anywhere on the command line, or ``GOECTP_DEBUG=1``) shows the traceback instead."""
    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("GOECTP_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    setup_logging(debug)  # the library's progress messages (logging) on stderr
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"goectp {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        if getattr(args, "json", False):  # the reason code on stdout too, for scripts reading --json
            print(json.dumps({"error": one_line(exc), "code": reason_code(exc)}))
        print(
            f"goectp {args.command}: error: {one_line(exc)} [{reason_code(exc)}] (--debug shows the traceback)",
            file=sys.stderr,
        )
        return 2
