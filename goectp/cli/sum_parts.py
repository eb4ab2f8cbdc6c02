"""``goectp sum``: one static-ε ensemble from an ε∞ ensemble and an ionic-only one (member k = ε∞ k + ionic k)."""

from __future__ import annotations

import argparse

HELP = "one ensemble of the static tensor from an ε∞ ensemble and an ionic-only one (member k = ε∞ k + ionic k)"
DESCRIPTION = (
    "Pair the members of an ε∞ (--target electronic) ensemble and an ionic-only (--target ionic) one by split seed "
    "and write each pair as one sum checkpoint OUT/split<k>.pt: an ordinary ensemble for predict, evaluate, screen, "
    "calibration and the explorer. Both must be trained on the same data and splits."
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``sum``."""
    p = sub.add_parser("sum", help=HELP, description=DESCRIPTION)
    p.add_argument("electronic", help="the ε∞ ensemble (a shipped name, a folder of members or a training run's)")
    p.add_argument("ionic", help="the ionic-only ensemble (a shipped name, a folder of members or a training run's)")
    p.add_argument("--out", required=True, help="folder written with split<seed>.pt")
    p.set_defaults(func=cmd_sum)


def cmd_sum(args: argparse.Namespace) -> int:
    """Write the sum checkpoints and print their paths and sizes."""
    from goectp.registry import sum_ensembles

    for path in sum_ensembles(args.electronic, args.ionic, args.out):
        print(f"{path}  ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"predict with: goectp predict FILE --model {args.out}")
    return 0
