"""One ensemble of the static tensor from an ε∞ ensemble and an ionic-only one: member k = ε∞ member k + ionic member k.

    python scripts/sum_ensembles.py electronic runs/ionic/ensembles/pretrained-bmc-layers2 \
        --out runs/decomposed/pretrained-bmc-layers2

Members are paired by split seed (both ensembles need one member per split, trained on the same data); each pair is
written as one sum checkpoint ``split<seed>.pt`` (:func:`goectp.checkpoint.sum_checkpoint_dict`), so the result is
an ordinary folder of members: ``goectp predict --model``, ``benchmarks/ensemble_search.py``,
``scripts/calibrate_ensemble.py`` and ``scripts/combine_ensembles.py`` take it as they take any ensemble.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from goectp.checkpoint import atomic_save, checkpoint_files, read_checkpoint, sum_checkpoint_dict


def by_split(spec: str) -> dict[int, dict]:
    """``{split seed: checkpoint dict}`` of an ensemble (a shipped name or a folder); one member per seed."""
    members: dict[int, dict] = {}
    for f in checkpoint_files(spec):
        ckpt = read_checkpoint(f)  # weights_only=True
        seed = ckpt["meta"].get("split_seed")
        if seed is None or seed in members:
            raise SystemExit(f"{f}: {'no split seed' if seed is None else f'a second member of split {seed}'}")
        members[int(seed)] = ckpt
    return members


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("electronic", help="the ε∞ ensemble (a shipped name or a folder of members)")
    ap.add_argument("ionic", help="the ionic-only ensemble (a shipped name or a folder of members)")
    ap.add_argument("--out", type=Path, required=True, help="folder written with split<seed>.pt")
    args = ap.parse_args()
    electronic, ionic = by_split(args.electronic), by_split(args.ionic)
    if sorted(electronic) != sorted(ionic):
        raise SystemExit(f"the ensembles cover different splits: {sorted(electronic)} vs {sorted(ionic)}")
    for seed in sorted(ionic):
        try:
            ckpt = sum_checkpoint_dict(electronic[seed], ionic[seed])
        except ValueError as exc:
            raise SystemExit(f"split {seed}: {exc}") from exc
        path = atomic_save(ckpt, args.out / f"split{seed}.pt")
        print(f"{path}  ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
