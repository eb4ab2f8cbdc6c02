"""Does a refactor change any prediction? Checks out two commits side by side (``git worktree``), predicts the example
gallery with each commit's own code and shipped checkpoints in float64, and compares the tensors bit for bit.

    python benchmarks/bit_identity.py --before f21f2ec --after 4d03b56 \
        --models default pretrained-bulk-modulus chgnet pretrained-bulk-modulus-chgnet
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
paths = sorted(glob.glob(sys.argv[1] + "/assets/examples/*.cif"))
np.savez(sys.argv[2], **{name: goectp.predict(paths, goectp.load_model(name).double(), device="cpu")
                         for name in sys.argv[3:]})
"""


def predictions(repo: Path, rev: str, models: list[str], tmp: Path) -> dict[str, np.ndarray]:
    tree = tmp / rev
    subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "-f", "--detach", str(tree), rev], check=True, capture_output=True
    )
    try:
        env = {**os.environ, "GOECTP_ASSETS": str(tree / "assets"), "PYTHONPATH": str(tree)}
        out = tmp / f"{rev}.npz"
        subprocess.run([sys.executable, "-c", PREDICT, str(tree), str(out), *models], check=True, env=env, cwd=tree)
        return dict(np.load(out))
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", default="HEAD")
    ap.add_argument("--models", nargs="+", default=["fast", "default"])
    args = ap.parse_args()
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="goectp-bit-identity-") as tmp:
        before = predictions(repo, args.before, args.models, Path(tmp))
        after = predictions(repo, args.after, args.models, Path(tmp))
    print(f"| model | {args.before} → {args.after} (gallery, float64) |\n|---|---|")
    for name in args.models:
        same = np.array_equal(before[name], after[name])
        print(f"| {name} | {'bit-identical' if same else f'max |Δ| {np.abs(before[name] - after[name]).max():.3e}'} |")


if __name__ == "__main__":
    main()
