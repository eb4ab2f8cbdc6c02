"""Does a refactor change any prediction? Checks out two commits side by side (``git worktree``), predicts the example
gallery (or, with ``--open-set N``, N structures spread over the open set) with each commit's own code and shipped
checkpoints in float64, and compares the tensors bit for bit.

    python benchmarks/accuracy/bit_identity.py --before f21f2ec --after 4d03b56 \
        --models default pretrained-bulk-modulus chgnet pretrained-bulk-modulus-chgnet
    python benchmarks/accuracy/bit_identity.py --before HEAD~1 --models fast --open-set 300
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

PREDICT = r"""
import glob, sys
import numpy as np, torch
sys.path.insert(0, sys.argv[1])
import goectp
torch.set_num_threads(1)
count = int(sys.argv[3])
if count:
    from goectp.data import DIELECTRIC_FILE, data_dir, read_dielectric_json
    records = read_dielectric_json(data_dir() / DIELECTRIC_FILE)
    inputs = [r.structure for r in records[:: max(1, len(records) // count)][:count]]
else:
    inputs = sorted(glob.glob(sys.argv[1] + "/assets/examples/*.cif"))
np.savez(sys.argv[2], **{name: goectp.predict(inputs, goectp.load_model(name).double(), device="cpu")
                         for name in sys.argv[4:]})
"""


def predictions(repo: Path, rev: str, models: list[str], tmp: Path, count: int = 0) -> dict[str, np.ndarray]:
    tree = tmp / rev
    subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "-f", "--detach", str(tree), rev], check=True, capture_output=True
    )
    try:
        env = {**os.environ, "GOECTP_ASSETS": str(tree / "assets"), "PYTHONPATH": str(tree)}
        if count:
            from goectp.data import data_dir

            env["GOECTP_DATA"] = str(data_dir())  # the worktree has no ../shared next to it
        out = tmp / f"{rev.replace('/', '_')}.npz"
        cmd = [sys.executable, "-c", PREDICT, str(tree), str(out), str(count), *models]
        subprocess.run(cmd, check=True, env=env, cwd=tree)
        return dict(np.load(out))
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", default="HEAD")
    ap.add_argument("--models", nargs="+", default=["fast", "default"])
    ap.add_argument("--open-set", type=int, default=0, help="N structures of the open set instead of the gallery")
    args = ap.parse_args()
    repo = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="goectp-bit-identity-") as tmp:
        before = predictions(repo, args.before, args.models, Path(tmp), args.open_set)
        after = predictions(repo, args.after, args.models, Path(tmp), args.open_set)
    inputs = f"{args.open_set} open-set structures" if args.open_set else "gallery"
    print(f"| model | {args.before} → {args.after} ({inputs}, float64) |\n|---|---|")
    for name in args.models:
        same = np.array_equal(before[name], after[name])
        print(f"| {name} | {'bit-identical' if same else f'max |Δ| {np.abs(before[name] - after[name]).max():.3e}'} |")


if __name__ == "__main__":
    main()
