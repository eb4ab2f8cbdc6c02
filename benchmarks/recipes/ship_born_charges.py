"""Ship the Born-charge ensemble: the split models of ``benchmarks/experiments/born_charges.py`` runs → checkpoints in
``assets/physics/born-charges/`` with their weight matrices stored as float16 (:func:`goectp.release.half.
store_float16`) and a model card holding their measured metrics.

The first run folder gives ``split<k>.pt``, each further one (another training seed) ``split<k>-<name>.pt``, ``name``
being its folder's name without ``born-``; the ensemble of split ``k`` (used for split k's validation and test
records in the experiments, :func:`born_charges.load_split_model`) is the mean of its members, and a prediction uses
the mean of all of them. The card's ensemble table is measured on the stored files.

    python benchmarks/experiments/born_charges.py --splits 0 1 2 3 4 --epochs 120                 # runs/born
    python benchmarks/experiments/born_charges.py --epochs 120 --seed-offset 2 --out runs/born-s2  # another seed
    python benchmarks/recipes/ship_born_charges.py --runs runs/born runs/born-s2                   # this script
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "experiments"))


def member_name(run: Path, first: bool, seed: int) -> str:
    return f"split{seed}" if first else f"split{seed}-{run.name.removeprefix('born-')}"


def main() -> None:
    import torch
    from born_charges import _graphs, _metrics, load_split_model

    from goectp.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint
    from goectp.data import random_split
    from goectp.registry import assets_dir
    from goectp.release.half import store_float16
    from goectp.training.born import element_charges, predict_born

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", type=Path, default=[ROOT / "runs" / "born"], help="born_charges.py outputs")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--n-dielectric", type=int, default=2733)
    args = p.parse_args()

    out = assets_dir() / "physics" / "born-charges"
    staging = out.with_name("born-charges.new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    members = []
    for n, run in enumerate(args.runs):
        for path in sorted(run.glob("split*.pt")):
            if not path.stem[5:].isdigit():
                continue
            seed = int(path.stem[5:])
            ckpt = read_checkpoint(path)
            model = model_from_checkpoint(ckpt, str(path)).float()  # config and weights checked, as any load
            name = member_name(run, n == 0, seed)
            metrics = run / f"split{seed}.json"
            if metrics.is_file():  # a training run's own numbers
                r = json.loads(metrics.read_text())
                meta = {
                    "train_config": r["train_config"],
                    "val_mae": r["val"]["mae"],
                    "test_mae": r["test"]["mae"],
                    "test_baseline_mae": r["test"]["baseline_mae"],
                }
            else:  # an already shipped member: its stored metrics
                meta = {k: ckpt["meta"][k] for k in ("train_config", "val_mae", "test_mae", "test_baseline_mae")}
            save_checkpoint(staging / f"{name}.pt", model.to(torch.float32), split_seed=seed, **meta)
            members.append({"name": name, "split": seed, **meta})
    store_float16([staging])

    data = _graphs(args.data_dir)
    index = np.asarray(data["index"])
    ensembles = []
    for seed in sorted({m["split"] for m in members}):
        split = random_split(args.n_dielectric, seed)
        part = {name: np.isin(index, split[name]) for name in ("train", "val", "test")}
        train, val, test = ([g for g, m in zip(data["graphs"], part[name]) if m] for name in ("train", "val", "test"))
        model = load_split_model(staging, seed)
        row = {"split": seed, "members": sum(m["split"] == seed for m in members)}
        row["val"] = _metrics(predict_born(model, val), val, element_charges(train))["mae"]
        row.update(_metrics(predict_born(model, test), test, element_charges(train)))
        ensembles.append(row)
        print(f"split {seed}: {row['members']} members, val MAE {row['val']:.4f}, test MAE {row['mae']:.4f} e")
    (staging / "MODEL_CARD.md").write_text(card(members, ensembles, args.runs))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    print(f"wrote {len(members)} members (float16 weight matrices) and MODEL_CARD.md to {out}")


def card(members: list[dict], ensembles: list[dict], runs: list[Path]) -> str:
    run_names = ", ".join(f"`{r.name}`" for r in runs)
    lines = [
        "# born-charges: Born effective charges per atom (goectp.models.born.BornChargeModel)",
        "",
        "What it predicts: the DFPT Born effective charge tensor Z* (e, 3x3, not symmetric) of every atom, exactly",
        "O(3)-equivariant (F z Fᵀ on GoeCTP's frames, averaged over the frames Q·F), averaged over the space group",
        "(symmetric atoms get related charges) and with the acoustic sum rule Σ_i Z*_i = 0 exact. Used by",
        "`goectp.physics.predict.ionic_physics` for the physics term ε_ion = e²/(ε₀Ω) Z* Φ⁺ Z*ᵀ. A prediction",
        "uses the mean of every member (still equivariant, the sum rule still exact) and reports their spread.",
        "",
        "Data: `mp_born_charges.json.gz` (DFPT, mace-field frames of the Materials Project), records whose charges",
        "obey the sum rule (|Σ Z*| < 0.1 e; 105 of 2,125 do not) mapped onto their canonical primitive cells. Splits:",
        "the dielectric set's random 80/10/10 splits (seeds 0-4, `goectp.data.random_split` over",
        "`mp_dielectric_open.json.gz`), so a record in a test split was in no training set of that split.",
        "Architecture: GoeCTP backbone, hidden 64, 2 message layers, a per-atom 9-output head, a learned isotropic",
        "charge per element (initialised at the training mean of tr Z*/3). Huber loss, AdamW, cosine decay, best",
        "validation epoch kept; float32 training. Stored with its weight matrices (≥ 1,024 elements) in float16",
        "(`goectp.release.half.store_float16`); compute stays float64 in the physics term.",
        "",
        "Command: `python benchmarks/experiments/born_charges.py --splits 0 1 2 3 4 --epochs 120 [--seed-offset S",
        "--out runs/born-sS]` per run, then `python benchmarks/recipes/ship_born_charges.py --runs <runs>`",
        f"(runs: {run_names}; training seed = split + 100 × S). Member names: `split<k>` (the first run),",
        "`split<k>-<run>` (the others).",
        "",
        "Each member alone (its training run's numbers):",
        "",
        "| member | split | epochs | training seed | val MAE (e) | test MAE (e) | element-mean baseline, test (e) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in members:
        cfg = m["train_config"]
        lines.append(
            f"| {m['name']} | {m['split']} | {cfg['epochs']} | {cfg['seed']} | {m['val_mae']:.4f} | "
            f"{m['test_mae']:.4f} | {m['test_baseline_mae']:.4f} |"
        )
    lines += [
        "",
        "Each split's ensemble (the mean of its members), measured on the stored files by this recipe:",
        "",
        "| split | members | val MAE (e) | test MAE (e) | per-element-mean baseline, test (e) | test atoms |",
        "|---|---|---|---|---|---|",
    ]
    for e in ensembles:
        lines.append(
            f"| {e['split']} | {e['members']} | {e['val']:.4f} | {e['mae']:.4f} | {e['baseline_mae']:.4f} | "
            f"{e['atoms']} |"
        )
    lines += [
        f"| mean | | {np.mean([e['val'] for e in ensembles]):.4f} | {np.mean([e['mae'] for e in ensembles]):.4f} | "
        f"{np.mean([e['baseline_mae'] for e in ensembles]):.4f} | |",
        "",
        "MAE = mean |Δ| over the nine components of every atom of the split's test records (canonical cells).",
        "The baseline predicts each atom the training mean of tr(Z*)/3 of its element times I, sum rule enforced.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
